//! `--cafile`: TLS to the broker with rustls, trusting the certificates of
//! a PEM file (as mosquitto_pub / mosquitto_sub do).

use std::error::Error;
use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio_rustls::TlsConnector;

/// A TLS connector trusting the certificates in `cafile`, and the name the
/// server's certificate must carry (`host`: a DNS name or an IP address).
pub(crate) fn connector(
    cafile: &Path,
    host: &str,
) -> Result<(TlsConnector, ServerName<'static>), Box<dyn Error>> {
    let certs = CertificateDer::pem_file_iter(cafile)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read certificates from {}: {e}", cafile.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", cafile.display()).into());
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("unusable certificate in {}: {e}", cafile.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| format!("{host:?} is not a valid TLS server name: {e}"))?;
    Ok((TlsConnector::from(Arc::new(config)), name))
}
