//! What a new enrollment is made of and how it is written, shared by
//! `twostep enroll` (the CLI) and enrollment at login (the module), so that
//! both write the same secret file the same way.
#![forbid(unsafe_code)]

use crate::base::user::UserName;
use crate::config::{Config, TotpParams};
use crate::files::secret::{self, SecretFile};
use std::path::Path;
use zeroize::Zeroizing;

/// Size of a new secret: 160 bits, as RFC 4226 recommends.
pub const KEY_BYTES: usize = 20;

/// A fresh random secret.
pub fn new_key() -> Result<Zeroizing<Vec<u8>>, String> {
    let mut key = Zeroizing::new(vec![0u8; KEY_BYTES]);
    getrandom::fill(&mut key).map_err(|e| format!("no randomness: {e}"))?;
    Ok(key)
}

/// The name apps show above the code: `issuer`, or the host name.
pub fn issuer(config: &Config) -> String {
    config.issuer.clone().unwrap_or_else(hostname)
}

pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The key in groups of four, as apps ask for it to be typed.
pub fn grouped(b32: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(b32.len() * 5 / 4));
    for (i, c) in b32.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// `YYYY-MM-DDTHH:MM:SSZ` now.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// A new enrollment's secret file: the code parameters are written out, so
/// that a later change of the config's defaults cannot break an app that was
/// set up with these.
pub fn secret_file(b32: &str, params: &TotpParams, recovery_codes: Vec<String>) -> SecretFile {
    SecretFile {
        secret: Some(Zeroizing::new(b32.to_string())),
        method: crate::files::secret::Method::Totp,
        email: None,
        phone: None,
        digits: Some(params.digits),
        period: Some(params.period),
        algorithm: Some(params.algorithm),
        recovery_codes,
        created: Some(now_rfc3339()),
        authenticators: Vec::new(),
    }
}

/// Writes the secret file of a user who has none: root-owned, 0600,
/// atomically and durably, and never over an existing file (the error is
/// then `AlreadyExists`), so that of two enrollments racing, one wins whole.
/// The caller holds the user's state lock.
pub fn write_new(secret_dir: &Path, user: &UserName, file: &SecretFile) -> std::io::Result<()> {
    secret::store(secret_dir, user, file, false).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_groups() {
        assert_eq!(grouped("ABCDEFGHIJ").as_str(), "ABCD EFGH IJ");
        assert_eq!(grouped("ABCD").as_str(), "ABCD");
        assert_eq!(grouped("").as_str(), "");
    }

    #[test]
    fn new_keys_are_random_and_160_bits() {
        let (a, b) = (new_key().unwrap(), new_key().unwrap());
        assert_eq!(a.len(), 20);
        assert_ne!(a, b);
    }

    #[test]
    fn secret_files_spell_out_the_parameters() {
        let p = TotpParams::default();
        let f = secret_file("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", &p, vec![]);
        assert_eq!(
            (f.digits, f.period, f.algorithm),
            (Some(6), Some(30), Some(p.algorithm))
        );
        assert!(f.recovery_codes.is_empty());
        assert!(f.created.as_deref().is_some_and(|c| c.ends_with('Z')));
        assert!(f.into_user_secret(&p).is_ok());
    }
}
