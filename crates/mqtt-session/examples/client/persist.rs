//! `--session-file`: the client's session kept across runs.
//!
//! [`SessionState`] (with mqtt-session's `serde` feature) holds what a
//! restarted client needs to keep its promises: the QoS 1/2 messages not
//! yet acknowledged (resent on the next connection), the QoS 2 messages
//! received whose PUBREL has not come (not delivered twice), and the
//! packet identifier counter. Subscriptions live in the broker's session.

use std::error::Error;
use std::path::Path;

use mqtt_session::SessionState;

/// The session stored in `path`, if the file exists.
pub(crate) fn load(path: &Path) -> Result<Option<SessionState>, Box<dyn Error>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display()).into()),
    };
    let state = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{} is not a saved session: {e}", path.display()))?;
    Ok(Some(state))
}

/// Writes `state` to `path` atomically: a temporary file renamed over it,
/// so a crash leaves the old session or the new one, never half of one.
pub(crate) fn save(path: &Path, state: &SessionState) -> Result<(), Box<dyn Error>> {
    let json = serde_json::to_vec(state)?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, json)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(())
}
