//! What can go wrong with the store, as the records name it.
#![forbid(unsafe_code)]

use std::fmt;

/// Why a store call failed. [`StoreError::reason`] is the one word that
/// records carry (`store_unavailable reason=...`); `Display` is the
/// sentence for an administrator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The deadline passed; `during` says what was being waited for.
    Timeout { during: &'static str },
    /// No connection: refused, reset, unreachable, closed before a reply.
    Connect(String),
    /// `AUTH` was refused (a wrong password or user).
    Auth(String),
    /// The server answered with an error (`NOPERM`, a script's error, ...).
    Refused(String),
    /// Bytes that are not a reply, or a reply past the bounds.
    Protocol(String),
    /// The TLS handshake failed (certificate, host name, protocol).
    Tls(String),
    /// The configuration cannot be used (a password file that others can
    /// read, a host name that would need DNS, ...).
    Config(String),
    /// With a Sentinel URL: no sentinel answered, or none named a primary.
    Sentinel(String),
    /// With a Sentinel URL: the server named says it is not a primary
    /// (`ROLE`); nothing was written there.
    NotPrimary(String),
}

impl StoreError {
    /// `timeout`, `connect`, `auth`, `refused`, `protocol`, `tls`, `config`,
    /// `sentinel` or `not_primary`.
    pub fn reason(&self) -> &'static str {
        match self {
            StoreError::Timeout { .. } => "timeout",
            StoreError::Connect(_) => "connect",
            StoreError::Auth(_) => "auth",
            StoreError::Refused(_) => "refused",
            StoreError::Protocol(_) => "protocol",
            StoreError::Tls(_) => "tls",
            StoreError::Config(_) => "config",
            StoreError::Sentinel(_) => "sentinel",
            StoreError::NotPrimary(_) => "not_primary",
        }
    }

    /// The error code a server's error reply starts with (`NOSCRIPT`,
    /// `NOPERM`, `WRONGPASS`, `ERR`), if this is one.
    pub fn server_code(&self) -> Option<&str> {
        match self {
            StoreError::Refused(m) | StoreError::Auth(m) => m.split(' ').next(),
            _ => None,
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Timeout { during } => {
                write!(f, "the store did not answer in time ({during})")
            }
            StoreError::Connect(why) => write!(f, "cannot reach the store: {why}"),
            StoreError::Auth(why) => write!(f, "the store refused the credentials: {why}"),
            StoreError::Refused(why) => write!(f, "the store refused: {why}"),
            StoreError::Protocol(why) => {
                write!(f, "the store's answer is not a valid reply: {why}")
            }
            StoreError::Tls(why) => write!(f, "TLS with the store failed: {why}"),
            StoreError::Config(why) => write!(f, "store configuration: {why}"),
            StoreError::Sentinel(why) => write!(f, "no sentinel named the primary: {why}"),
            StoreError::NotPrimary(why) => write!(f, "the server named is not a primary: {why}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// A server's words, made safe for a record or a terminal: printable ASCII
/// only (anything else escaped), at most 200 bytes.
pub(super) fn server_text(bytes: &[u8]) -> String {
    const MAX: usize = 200;
    let mut out = String::new();
    for &b in bytes.iter().take(MAX) {
        if b == b' ' || b.is_ascii_graphic() {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    if bytes.len() > MAX {
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_one_word() {
        let all = [
            StoreError::Timeout { during: "x" },
            StoreError::Connect("x".into()),
            StoreError::Auth("x".into()),
            StoreError::Refused("x".into()),
            StoreError::Protocol("x".into()),
            StoreError::Tls("x".into()),
            StoreError::Config("x".into()),
            StoreError::Sentinel("x".into()),
            StoreError::NotPrimary("x".into()),
        ];
        let words: Vec<_> = all.iter().map(StoreError::reason).collect();
        assert_eq!(
            words,
            [
                "timeout",
                "connect",
                "auth",
                "refused",
                "protocol",
                "tls",
                "config",
                "sentinel",
                "not_primary"
            ]
        );
    }

    #[test]
    fn server_text_is_escaped_and_bounded() {
        assert_eq!(
            server_text(b"NOPERM no\r\nevent=x"),
            "NOPERM no\\x0d\\x0aevent=x"
        );
        let long = server_text(&[b'a'; 300]);
        assert_eq!(long.len(), 203);
        assert_eq!(
            StoreError::Refused(server_text(b"NOSCRIPT No matching script")).server_code(),
            Some("NOSCRIPT")
        );
    }
}
