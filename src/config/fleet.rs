//! `[store]`: the shared state store of a fleet (Valkey or Redis), and
//! `[self_service]`.
#![forbid(unsafe_code)]

use super::values::AbsPath;
use serde::Deserialize;
use serde::de::{self, Deserializer};
use std::path::PathBuf;
use std::time::Duration;

/// Where per-user state is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `""`: this host's `state_dir`.
    Local,
    /// `redis://HOST:PORT` or, with `tls`, `rediss://HOST:PORT`.
    Tcp { host: String, port: u16, tls: bool },
    /// `unix:///PATH`.
    Unix(PathBuf),
}

impl StoreUrl {
    pub fn parse(s: &str) -> Result<StoreUrl, String> {
        if s.is_empty() {
            return Ok(StoreUrl::Local);
        }
        let bad = |why: &str| {
            format!(
                "{s:?} {why}: use \"redis://HOST:PORT\", \"rediss://HOST:PORT\" or \"unix:///PATH\""
            )
        };
        if let Some(path) = s.strip_prefix("unix://") {
            if !path.starts_with('/') || path.contains(['\0', '?', '#']) {
                return Err(bad("needs an absolute socket path"));
            }
            return Ok(StoreUrl::Unix(PathBuf::from(path)));
        }
        let (tls, rest) = match (s.strip_prefix("redis://"), s.strip_prefix("rediss://")) {
            (Some(rest), _) => (false, rest),
            (_, Some(rest)) => (true, rest),
            _ => return Err(bad("is not a store address")),
        };
        if rest.contains('@') {
            return Err(bad(
                "carries credentials: use store.user and store.password_file",
            ));
        }
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err(bad(
                "has a path or options: keys are separated by store.prefix",
            ));
        }
        let (host, port) = match rest.rsplit_once(':') {
            // [v6]:port, host:port
            Some((h, p)) if !h.ends_with(':') || h.starts_with('[') => {
                let port = p.parse::<u16>().ok().filter(|&p| p > 0);
                (h, port.ok_or_else(|| bad("has a bad port"))?)
            }
            _ => (rest, 6379),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':');
        if host.is_empty() || !host.chars().all(plain) {
            return Err(bad("has a bad host"));
        }
        Ok(StoreUrl::Tcp {
            host: host.to_string(),
            port,
            tls,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnUnavailable {
    Deny,
    Local,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Store {
    pub url: StoreUrl,
    /// The ACL user; empty: `default`.
    pub user: String,
    pub password_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    /// The most one attempt may spend on the store, connecting included.
    pub timeout: Duration,
    pub on_unavailable: OnUnavailable,
    pub prefix: String,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            url: StoreUrl::Local,
            user: String::new(),
            password_file: None,
            ca_file: None,
            timeout: Duration::from_millis(500),
            on_unavailable: OnUnavailable::Deny,
            prefix: "twostep:".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SelfService {
    pub enabled: bool,
    pub allow_disable: bool,
}

// ---- as written ----------------------------------------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    url: Option<Url>,
    user: Option<AclUser>,
    password_file: Option<EmptyOrPath>,
    ca_file: Option<EmptyOrPath>,
    timeout: Option<StoreTimeout>,
    on_unavailable: Option<OnUnavailable>,
    prefix: Option<Prefix>,
}

impl RawStore {
    pub(super) fn into_section(self) -> Store {
        let d = Store::default();
        Store {
            url: self.url.map_or(d.url, |u| u.0),
            user: self.user.map_or(d.user, |u| u.0),
            password_file: self.password_file.and_then(|p| p.0),
            ca_file: self.ca_file.and_then(|p| p.0),
            timeout: self.timeout.map_or(d.timeout, |t| t.0),
            on_unavailable: self.on_unavailable.unwrap_or(d.on_unavailable),
            prefix: self.prefix.map_or(d.prefix, |p| p.0),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSelfService {
    enabled: Option<bool>,
    allow_disable: Option<bool>,
}

impl RawSelfService {
    pub(super) fn into_section(self) -> SelfService {
        SelfService {
            enabled: self.enabled.unwrap_or(false),
            allow_disable: self.allow_disable.unwrap_or(false),
        }
    }
}

struct Url(StoreUrl);
impl<'de> Deserialize<'de> for Url {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        StoreUrl::parse(&s).map(Url).map_err(de::Error::custom)
    }
}

struct EmptyOrPath(Option<PathBuf>);
impl<'de> Deserialize<'de> for EmptyOrPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Path(AbsPath),
            Text(String),
        }
        match Either::deserialize(d)? {
            Either::Path(p) => Ok(EmptyOrPath(Some(p.0))),
            Either::Text(s) if s.is_empty() => Ok(EmptyOrPath(None)),
            Either::Text(s) => Err(de::Error::custom(format!(
                "{s:?} must be an absolute path, or \"\" for none"
            ))),
        }
    }
}

/// An ACL user name: printable, no spaces.
struct AclUser(String);
impl<'de> Deserialize<'de> for AclUser {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.len() > 128 || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(de::Error::custom(format!(
                "{s:?} is not an ACL user name (printable, no spaces, at most 128)"
            )));
        }
        Ok(AclUser(s))
    }
}

/// A key prefix: 1 to 64 of `[A-Za-z0-9:_.-]` (no braces: hash tags are
/// added by twostep itself).
struct Prefix(String);
impl<'de> Deserialize<'de> for Prefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '.' | '-');
        if s.is_empty() || s.len() > 64 || !s.chars().all(ok) {
            return Err(de::Error::custom(format!(
                "{s:?}: 1 to 64 of letters, digits and : _ . -"
            )));
        }
        Ok(Prefix(s))
    }
}

/// `store.timeout`: milliseconds allowed (`"500ms"`), 10ms to 10s.
struct StoreTimeout(Duration);
impl<'de> Deserialize<'de> for StoreTimeout {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let bad = || format!("{s:?} is not a duration like \"500ms\" or \"2s\"");
        if !s.starts_with(|c: char| c.is_ascii_digit())
            || !s.ends_with(|c: char| c.is_ascii_alphabetic())
        {
            return Err(de::Error::custom(bad()));
        }
        let v = humantime::parse_duration(&s).map_err(|_| de::Error::custom(bad()))?;
        if v < Duration::from_millis(10) || v > Duration::from_secs(10) {
            return Err(de::Error::custom(format!(
                "{s:?} is out of range: from 10ms to 10s"
            )));
        }
        Ok(StoreTimeout(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_addresses() {
        let tcp = |host: &str, port, tls| StoreUrl::Tcp {
            host: host.into(),
            port,
            tls,
        };
        let good = [
            ("", StoreUrl::Local),
            ("redis://10.0.0.5:6379", tcp("10.0.0.5", 6379, false)),
            (
                "redis://valkey.example.com",
                tcp("valkey.example.com", 6379, false),
            ),
            (
                "rediss://valkey.example.com:6380/",
                tcp("valkey.example.com", 6380, true),
            ),
            (
                "redis://[2001:db8::5]:7000",
                tcp("2001:db8::5", 7000, false),
            ),
            (
                "unix:///run/valkey/valkey.sock",
                StoreUrl::Unix("/run/valkey/valkey.sock".into()),
            ),
        ];
        for (text, want) in good {
            assert_eq!(StoreUrl::parse(text), Ok(want), "{text}");
        }
        let bad = [
            "valkey:6379",
            "http://x:1",
            "redis://user:pw@host:6379",
            "redis://host:0",
            "redis://host:99999",
            "redis://host:6379/2",
            "redis://host:6379?db=2",
            "redis://",
            "redis://ho st:1",
            "unix://relative.sock",
            "unix:///run/x.sock?db=1",
        ];
        for text in bad {
            assert!(StoreUrl::parse(text).is_err(), "{text}");
        }
    }
}
