//! `[store]`: the shared state store of a fleet (Valkey or Redis), and
//! `[self_service]`.
#![forbid(unsafe_code)]

use super::outbound::optional_path;
use crate::base::tomlread::{Bad, Table, Value, message};
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
    /// `redis+sentinel://HOST:PORT[,HOST:PORT...]/SERVICE` or, with `tls`,
    /// `rediss+sentinel://...` (TLS to the sentinels and to the servers):
    /// the primary of SERVICE, as the sentinels name it.
    Sentinel {
        sentinels: Vec<(String, u16)>,
        service: String,
        tls: bool,
    },
}

/// The port of a sentinel when the URL gives none.
pub const SENTINEL_PORT: u16 = 26379;
/// The most sentinels a URL may list (a quorum is 3 or 5).
pub const MAX_SENTINELS: usize = 16;
/// The most `store.wait_replicas` can be.
pub const MAX_WAIT_REPLICAS: u32 = 16;

impl StoreUrl {
    pub fn parse(s: &str) -> Result<StoreUrl, String> {
        if s.is_empty() {
            return Ok(StoreUrl::Local);
        }
        let bad = |why: &str| {
            format!(
                "{s:?} {why}: use \"redis://HOST:PORT\", \"rediss://HOST:PORT\", \"unix:///PATH\" \
                 or \"redis+sentinel://HOST:PORT,HOST:PORT/SERVICE\""
            )
        };
        if let Some(path) = s.strip_prefix("unix://") {
            if !path.starts_with('/') || path.contains(['\0', '?', '#']) {
                return Err(bad("needs an absolute socket path"));
            }
            return Ok(StoreUrl::Unix(PathBuf::from(path)));
        }
        let schemes = [
            ("redis://", false, false),
            ("rediss://", true, false),
            ("redis+sentinel://", false, true),
            ("rediss+sentinel://", true, true),
        ];
        let Some((rest, tls, sentinel)) = schemes
            .iter()
            .find_map(|&(scheme, tls, sentinel)| Some((s.strip_prefix(scheme)?, tls, sentinel)))
        else {
            return Err(bad("is not a store address"));
        };
        if rest.contains('@') {
            return Err(bad(
                "carries credentials: use store.user and store.password_file \
                 (store.sentinel_user and store.sentinel_password_file for sentinels)",
            ));
        }
        if rest.contains(['?', '#']) {
            return Err(bad("has options: there are none"));
        }
        if sentinel {
            let Some((list, service)) = rest.split_once('/') else {
                return Err(bad("names no service after the sentinels (/SERVICE)"));
            };
            let service = service.strip_suffix('/').unwrap_or(service);
            let name = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
            if service.is_empty() || service.len() > 64 || !service.chars().all(name) {
                return Err(bad(
                    "has a bad service name (1 to 64 of letters, digits and . _ -)",
                ));
            }
            let sentinels = list
                .split(',')
                .map(|one| host_port(one, SENTINEL_PORT).map_err(&bad))
                .collect::<Result<Vec<_>, _>>()?;
            if sentinels.len() > MAX_SENTINELS {
                return Err(bad("lists more than 16 sentinels"));
            }
            return Ok(StoreUrl::Sentinel {
                sentinels,
                service: service.to_string(),
                tls,
            });
        }
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') {
            return Err(bad(
                "has a path or options: keys are separated by store.prefix",
            ));
        }
        let (host, port) = host_port(rest, 6379).map_err(bad)?;
        Ok(StoreUrl::Tcp { host, port, tls })
    }

    /// A Sentinel URL: the servers are found through sentinels.
    pub fn is_sentinel(&self) -> bool {
        matches!(self, StoreUrl::Sentinel { .. })
    }

    /// TLS to the servers (and to the sentinels).
    pub fn is_tls(&self) -> bool {
        matches!(
            self,
            StoreUrl::Tcp { tls: true, .. } | StoreUrl::Sentinel { tls: true, .. }
        )
    }
}

/// `HOST[:PORT]`, `[V6]:PORT` or a bare IPv6 address: the host (without
/// brackets) and the port (`default` when none is given).
fn host_port(text: &str, default: u16) -> Result<(String, u16), &'static str> {
    let (host, port) = match text.rsplit_once(':') {
        // [v6]:port, host:port
        Some((h, p)) if !h.ends_with(':') || h.starts_with('[') => {
            let port = p.parse::<u16>().ok().filter(|&p| p > 0);
            (h, port.ok_or("has a bad port")?)
        }
        _ => (text, default),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':');
    if host.is_empty() || !host.chars().all(plain) {
        return Err("has a bad host");
    }
    Ok((host.to_string(), port))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    /// With a Sentinel URL: the sentinels' ACL user; empty: `default`.
    pub sentinel_user: String,
    pub sentinel_password_file: Option<PathBuf>,
    /// After a successful login's write: how many replicas must have
    /// acknowledged it (`WAIT`) within the budget; 0: none.
    pub wait_replicas: u32,
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
            sentinel_user: String::new(),
            sentinel_password_file: None,
            wait_replicas: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SelfService {
    pub enabled: bool,
    pub allow_disable: bool,
}

// ---- as written ----------------------------------------------------------------

impl Store {
    #[inline(never)]
    pub(super) fn read(t: &Table) -> Result<Store, Bad> {
        const KEYS: &str = "\
            url, user, password_file, ca_file, timeout, on_unavailable, prefix, \
            sentinel_user, sentinel_password_file, wait_replicas";
        let mut s = Store::default();
        t.each(KEYS, |key, v| {
            match key {
                "url" => s.url = StoreUrl::parse(v.str()?).map_err(message)?,
                "user" => s.user = acl_user(v)?,
                "password_file" => s.password_file = optional_path(v)?,
                "ca_file" => s.ca_file = optional_path(v)?,
                "timeout" => s.timeout = store_timeout(v)?,
                "on_unavailable" => {
                    s.on_unavailable = v.one_of(&[
                        ("deny", OnUnavailable::Deny),
                        ("local", OnUnavailable::Local),
                    ])?
                }
                "prefix" => s.prefix = prefix(v)?,
                "sentinel_user" => s.sentinel_user = acl_user(v)?,
                "sentinel_password_file" => s.sentinel_password_file = optional_path(v)?,
                "wait_replicas" => {
                    s.wait_replicas = v.int_in(
                        0,
                        MAX_WAIT_REPLICAS.into(),
                        &format!("from 0 (do not wait) to {MAX_WAIT_REPLICAS} replicas"),
                    )? as u32
                }
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(s)
    }
}

impl SelfService {
    #[inline(never)]
    pub(super) fn read(t: &Table) -> Result<SelfService, Bad> {
        let mut s = SelfService::default();
        t.each("enabled, allow_disable", |key, v| {
            match key {
                "enabled" => s.enabled = v.bool()?,
                "allow_disable" => s.allow_disable = v.bool()?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(s)
    }
}

/// An ACL user name: printable, no spaces.
fn acl_user(v: &Value) -> Result<String, Bad> {
    let s = v.str()?;
    if s.len() > 128 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(message(format!(
            "{s:?} is not an ACL user name (printable, no spaces, at most 128)"
        )));
    }
    Ok(s.to_string())
}

/// A key prefix: 1 to 64 of `[A-Za-z0-9:_.-]` (no braces: hash tags are
/// added by twostep itself).
fn prefix(v: &Value) -> Result<String, Bad> {
    let s = v.str()?;
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '.' | '-');
    if s.is_empty() || s.len() > 64 || !s.chars().all(ok) {
        return Err(message(format!(
            "{s:?}: 1 to 64 of letters, digits and : _ . -"
        )));
    }
    Ok(s.to_string())
}

/// `store.timeout`: milliseconds allowed (`"500ms"`), 10ms to 10s.
fn store_timeout(v: &Value) -> Result<Duration, Bad> {
    let s = v.str()?;
    let bad = || message(format!("{s:?} is not a duration like \"500ms\" or \"2s\""));
    if !s.starts_with(|c: char| c.is_ascii_digit())
        || !s.ends_with(|c: char| c.is_ascii_alphabetic())
    {
        return Err(bad());
    }
    let t = humantime::parse_duration(s).map_err(|_| bad())?;
    if t < Duration::from_millis(10) || t > Duration::from_secs(10) {
        return Err(message(format!("{s:?} is out of range: from 10ms to 10s")));
    }
    Ok(t)
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
        let sentinel = |list: &[(&str, u16)], service: &str, tls| StoreUrl::Sentinel {
            sentinels: list.iter().map(|&(h, p)| (h.to_string(), p)).collect(),
            service: service.into(),
            tls,
        };
        let good = [
            (
                "redis+sentinel://10.0.0.1:26379,10.0.0.2:26380,s3.example.com/twostep",
                sentinel(
                    &[
                        ("10.0.0.1", 26379),
                        ("10.0.0.2", 26380),
                        ("s3.example.com", 26379),
                    ],
                    "twostep",
                    false,
                ),
            ),
            (
                "rediss+sentinel://[2001:db8::7]:5000/my_svc.1-a/",
                sentinel(&[("2001:db8::7", 5000)], "my_svc.1-a", true),
            ),
            (
                "redis+sentinel://s1/x",
                sentinel(&[("s1", SENTINEL_PORT)], "x", false),
            ),
        ];
        for (text, want) in good {
            let got = StoreUrl::parse(text);
            assert_eq!(got, Ok(want), "{text}");
            assert!(got.is_ok_and(|u| u.is_sentinel()), "{text}");
        }
        let seventeen = vec!["10.0.0.1:26379"; 17].join(",");
        // (URL, words the message must contain)
        let bad_sentinels = [
            ("redis+sentinel://s1:26379", "no service"),
            ("redis+sentinel://s1:26379/", "service name"),
            ("redis+sentinel://s1:26379/a/b", "service name"),
            ("redis+sentinel://s1:26379/a b", "service name"),
            ("redis+sentinel://s1:26379/{x}", "service name"),
            ("redis+sentinel:///svc", "bad host"),
            ("redis+sentinel://s1,,s2/svc", "bad host"),
            ("redis+sentinel://s1:0/svc", "bad port"),
            ("redis+sentinel://s1:99999/svc", "bad port"),
            ("redis+sentinel://u:pw@s1/svc", "sentinel_password_file"),
            ("redis+sentinel://s1/svc?db=1", "options"),
            ("sentinel://s1/svc", "not a store address"),
            ("redis+sentinels://s1/svc", "not a store address"),
            (&format!("redis+sentinel://{seventeen}/svc"), "more than 16"),
        ];
        for (text, why) in bad_sentinels {
            let err = StoreUrl::parse(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
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
