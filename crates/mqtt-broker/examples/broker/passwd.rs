//! mosquitto_passwd's password file, so existing files work unchanged.
//!
//! One `user:hash` per line; `#` comment lines and blank lines are skipped.
//! Hashes:
//! - `$7$ITERATIONS$SALT$HASH`: PBKDF2-HMAC-SHA512 of the password with the
//!   salt, 64 bytes (what mosquitto_passwd 2.x writes, 101 iterations).
//! - `$6$SALT$HASH`: SHA-512 of the password followed by the salt (1.x).
//!
//! SALT and HASH are standard base64; the salt is the decoded bytes.

use std::collections::HashMap;
use std::error::Error;
use std::path::Path;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha512};

/// The users of a password file and their hashes.
#[derive(Debug, Default)]
pub(crate) struct PasswordFile {
    users: HashMap<String, Hash>,
}

#[derive(Debug)]
enum Hash {
    Sha512 {
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
    Pbkdf2 {
        iterations: u32,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
}

impl PasswordFile {
    /// Reads and parses `path`; an error names the file and the line.
    pub(crate) fn load(path: &Path) -> Result<Self, Box<dyn Error>> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read password file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("password file {}: {e}", path.display()).into())
    }

    fn parse(text: &str) -> Result<Self, String> {
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let n = n + 1;
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| format!("line {n}: expected user:hash"))?;
            let hash = parse_hash(hash).map_err(|e| format!("line {n} (user {user}): {e}"))?;
            users.insert(user.to_owned(), hash);
        }
        Ok(PasswordFile { users })
    }

    /// Whether `password` is `user`'s.
    pub(crate) fn verify(&self, user: &str, password: &[u8]) -> bool {
        match self.users.get(user) {
            Some(Hash::Sha512 { salt, hash }) => {
                let digest = Sha512::new()
                    .chain_update(password)
                    .chain_update(salt)
                    .finalize();
                same(&digest, hash)
            }
            Some(Hash::Pbkdf2 {
                iterations,
                salt,
                hash,
            }) => {
                let mut out = vec![0u8; hash.len()];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, *iterations, &mut out);
                same(&out, hash)
            }
            None => false,
        }
    }
}

fn parse_hash(s: &str) -> Result<Hash, String> {
    let parts: Vec<&str> = s.split('$').collect();
    let b64 = |what: &str, v: &str| {
        STANDARD
            .decode(v)
            .map_err(|e| format!("{what} is not base64: {e}"))
    };
    match parts.as_slice() {
        ["", "6", salt, hash] => {
            let hash = b64("hash", hash)?;
            if hash.len() != 64 {
                return Err("a $6$ hash has 64 bytes".to_owned());
            }
            Ok(Hash::Sha512 {
                salt: b64("salt", salt)?,
                hash,
            })
        }
        ["", "7", iterations, salt, hash] => {
            let iterations: u32 = iterations
                .parse()
                .ok()
                .filter(|&i| i > 0)
                .ok_or("the iteration count is not a positive number")?;
            let hash = b64("hash", hash)?;
            if hash.is_empty() || hash.len() > 64 {
                return Err("a $7$ hash has 1 to 64 bytes".to_owned());
            }
            Ok(Hash::Pbkdf2 {
                iterations,
                salt: b64("salt", salt)?,
                hash,
            })
        }
        ["", kind, ..] => Err(format!(
            "hash type ${kind}$ is not supported (only $6$ and $7$)"
        )),
        _ => Err("the password is not hashed (run mosquitto_passwd -U on the file)".to_owned()),
    }
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
// Tests: a failed unwrap is a failed test.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn mosquitto_passwd_hashes_verify() {
        // alice: written by `mosquitto_passwd -c -b pw alice secret`
        // (2.0.11). bob: SHA-512("pw6" + salt) computed with Python's
        // hashlib for salt b"0123456789abcdef", in the $6$ layout.
        let f = PasswordFile::parse(
            "# comment\n\
             bob:$6$MDEyMzQ1Njc4OWFiY2RlZg==$Jc9lD3RLLod1Oggsn52YzPM3fSdQfd2uwxvJ8ZjbQdu1kJYTEUILV3FeNyRvCpv4q/TQiIMpmrWf0+1UhoG7bw==\n\
             alice:$7$101$2ZGqdSyk/y2tIof9$PaFcj/kHYjJyGb5o5X/TurBQ3OREUHRw7/hqJq2kWqQ5zdIG7HQlt13T5IUQH74LWnEMB5WzFxL0JafnXnMOWw==\n",
        );
        let f = f.unwrap();
        assert!(f.verify("alice", b"secret"));
        assert!(!f.verify("alice", b"secreT"));
        assert!(f.verify("bob", b"pw6"));
        assert!(!f.verify("bob", b"secret"));
        assert!(!f.verify("carol", b"secret"));
    }

    #[test]
    fn refuses_plain_and_unknown() {
        assert!(PasswordFile::parse("a:plain\n").is_err());
        assert!(PasswordFile::parse("a:$8$x$y\n").is_err());
        assert!(PasswordFile::parse("nocolon\n").is_err());
    }
}
