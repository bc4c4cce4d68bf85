//! The validated user name: the only way a name from PAM or the command line
//! reaches a path under `secret_dir` or `state_dir`.
#![forbid(unsafe_code)]

use std::fmt;

/// The longest name accepted, in bytes (the contract's bound).
pub const MAX_LEN: usize = 256;

/// A login name that is safe to use as a single path component.
///
/// Constructed only through [`UserName::parse`], so holding one proves that the
/// name is 1..=256 bytes of `[A-Za-z0-9._@-]` and does not start with `-` or `.`
/// (no `..`, no `/`, no option-looking names, no hidden files).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserName(String);

/// Why a name was refused. Deliberately carries no copy of the name: a hostile
/// name is not something to echo into logs or terminals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadUserName {
    Empty,
    TooLong,
    BadFirstChar,
    BadChar,
}

impl fmt::Display for BadUserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BadUserName::Empty => "the user name is empty",
            BadUserName::TooLong => "the user name is longer than 256 bytes",
            BadUserName::BadFirstChar => "a user name may not start with '-' or '.'",
            BadUserName::BadChar => "a user name may contain only letters, digits and . _ @ -",
        })
    }
}

impl std::error::Error for BadUserName {}

fn allowed(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-')
}

impl UserName {
    /// Validates raw bytes (PAM hands us bytes, not UTF-8).
    pub fn parse_bytes(raw: &[u8]) -> Result<Self, BadUserName> {
        match raw {
            [] => Err(BadUserName::Empty),
            _ if raw.len() > MAX_LEN => Err(BadUserName::TooLong),
            [b'-' | b'.', ..] => Err(BadUserName::BadFirstChar),
            _ if !raw.iter().all(|&b| allowed(b)) => Err(BadUserName::BadChar),
            // All bytes are ASCII here, so this is lossless.
            _ => Ok(UserName(raw.iter().map(|&b| b as char).collect())),
        }
    }

    pub fn parse(raw: &str) -> Result<Self, BadUserName> {
        Self::parse_bytes(raw.as_bytes())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserName({:?})", self.0)
    }
}

impl std::str::FromStr for UserName {
    type Err = BadUserName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plausible_login_names() {
        let long = "a".repeat(MAX_LEN);
        for name in [
            "alice",
            "a",
            "Bob_2",
            "svc-backup",
            "first.last",
            "user@example.com",
            "a..b",
            "x-",
            "0",
            "_apt",
            long.as_str(),
        ] {
            let parsed = UserName::parse(name).unwrap_or_else(|e| panic!("{name:?}: {e}"));
            assert_eq!(parsed.as_str(), name);
        }
    }

    #[test]
    fn refuses_hostile_names() {
        let too_long = "a".repeat(MAX_LEN + 1);
        let cases: &[(&[u8], BadUserName)] = &[
            (b"", BadUserName::Empty),
            (too_long.as_bytes(), BadUserName::TooLong),
            (b"-x", BadUserName::BadFirstChar),
            (b"-", BadUserName::BadFirstChar),
            (b".x", BadUserName::BadFirstChar),
            (b".", BadUserName::BadFirstChar),
            (b"..", BadUserName::BadFirstChar),
            (b"../x", BadUserName::BadFirstChar),
            (b"a/../../etc/shadow", BadUserName::BadChar),
            (b"/", BadUserName::BadChar),
            (b"a/b", BadUserName::BadChar),
            (b"alice\n", BadUserName::BadChar),
            (b"al\0ice", BadUserName::BadChar),
            (b"al ice", BadUserName::BadChar),
            (b"al\tice", BadUserName::BadChar),
            (b"alice\\x", BadUserName::BadChar),
            (b"al*", BadUserName::BadChar),
            (b"$(id)", BadUserName::BadChar),
            (b"al=ice", BadUserName::BadChar),
            (b"al\"ice", BadUserName::BadChar),
            ("jos\u{e9}".as_bytes(), BadUserName::BadChar),
            (b"\xff\xfe", BadUserName::BadChar),
        ];
        for (raw, want) in cases {
            assert_eq!(UserName::parse_bytes(raw), Err(*want), "{raw:?}");
        }
    }

    #[test]
    fn every_byte_is_classified() {
        // Exhaustive over single bytes, in the middle of a name.
        for b in 0u8..=255 {
            let raw = [b'a', b, b'z'];
            let ok = UserName::parse_bytes(&raw).is_ok();
            assert_eq!(
                ok,
                b.is_ascii_alphanumeric() || b".-_@".contains(&b),
                "byte {b}"
            );
        }
    }
}
