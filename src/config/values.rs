//! Validated leaf values of the configuration: each one's error says what
//! is allowed. Shared by every section.
#![forbid(unsafe_code)]

use super::Tier;
use crate::base::tomlread::{Bad, Value, message};
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

// ---- validated leaf values: each one's error says what is allowed -------------

/// An absolute path.
pub(crate) fn abs_path(v: &Value) -> Result<PathBuf, Bad> {
    let s = v.str()?;
    if !s.starts_with('/') || s.contains('\0') {
        return Err(message(format!("{s:?} must be an absolute path")));
    }
    Ok(PathBuf::from(s))
}

/// The issuer shown in authenticator apps.
pub(crate) fn issuer(v: &Value) -> Result<String, Bad> {
    let s = v.str()?;
    // The otpauth label is "issuer:account": a colon would split it wrongly.
    if s.is_empty() || s.len() > 100 || s.contains(':') || s.chars().any(char::is_control) {
        return Err(message(
            "must be 1 to 100 characters, without ':' or control characters",
        ));
    }
    Ok(s.to_string())
}

/// A list of group names (not looked up: a group may be made later).
pub(crate) fn group_names(v: &Value) -> Result<Vec<String>, Bad> {
    v.array(|g| {
        let s = g.str()?;
        if s.is_empty() || s.len() > 256 || s.contains(['\0', '\n', ':']) {
            return Err(message(format!("{s:?} is not a group name")));
        }
        Ok(s.to_string())
    })
}

/// A list of IP networks.
pub(crate) fn networks(v: &Value) -> Result<Vec<Cidr>, Bad> {
    v.array(|n| Cidr::parse(n.str()?).map_err(message))
}

/// Parses `"30s"`, `"5m"`, `"1h"`, `"2d"` (and combinations like `"1h30m"`).
/// A bare number is refused: the unit is never guessed.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "{s:?} is not a duration: use a number and a unit, like \"30s\", \"5m\", \"1h\" or \"2d\""
        )
    };
    if !s.starts_with(|c: char| c.is_ascii_digit())
        || !s.ends_with(|c: char| c.is_ascii_alphabetic())
    {
        return Err(bad());
    }
    let d = humantime::parse_duration(s).map_err(|_| bad())?;
    if d.subsec_nanos() != 0 {
        return Err(format!("{s:?}: durations are counted in whole seconds"));
    }
    Ok(d)
}

/// A duration (`"5m"`) of `lo..=hi` seconds; `what` says what is allowed.
pub(crate) fn duration_in(v: &Value, lo: u64, hi: u64, what: &str) -> Result<Duration, Bad> {
    let s = v.str()?;
    let d = parse_duration(s).map_err(message)?;
    if !(lo..=hi).contains(&d.as_secs()) {
        return Err(message(format!("{s:?} is out of range: {what}")));
    }
    Ok(d)
}

pub(crate) const DAY: u64 = 24 * 60 * 60;

/// `lockout.tiers`: 1 to 16 of `{failures = N, lock = "5m"}`.
pub(crate) fn tiers(v: &Value) -> Result<Vec<Tier>, Bad> {
    let tiers = v.array(|t| {
        let t = t.table()?;
        let (mut failures, mut lock) = (None, None);
        t.each("failures, lock", |key, v| {
            match key {
                "failures" => {
                    failures = Some(v.int_in(1, 1000, "must be 1 to 1000 failures")? as u32)
                }
                "lock" => {
                    lock = Some(duration_in(
                        v,
                        1,
                        365 * DAY,
                        "a lock lasts from 1s to 365d",
                    )?)
                }
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        match (failures, lock) {
            (Some(failures), Some(lock)) => Ok(Tier { failures, lock }),
            _ => Err(t.bad(format_args!(
                "{}: a tier needs failures and lock, like {{failures = 5, lock = \"5m\"}}",
                t.name()
            ))),
        }
    })?;
    if tiers.is_empty() {
        return Err(message(
            "needs at least one tier, like [{failures = 5, lock = \"5m\"}]",
        ));
    }
    if tiers.len() > 16 {
        return Err(message("at most 16 tiers"));
    }
    Ok(tiers)
}

/// An RFC 3339 date, given as a string or as a TOML date-time.
pub(crate) fn rfc3339(v: &Value) -> Result<SystemTime, Bad> {
    parse_rfc3339(&v.datetime_text()?).map_err(message)
}

/// RFC 3339 with `Z` or a numeric offset, e.g. `2027-01-31T00:00:00+01:00`.
pub fn parse_rfc3339(text: &str) -> Result<SystemTime, String> {
    let bad = || format!("{text:?} is not an RFC 3339 date like \"2027-01-31T00:00:00Z\"");
    let t = text.trim();
    let (local, offset_secs): (&str, i64) = if let Some(stripped) = t.strip_suffix(['Z', 'z']) {
        (stripped, 0)
    } else {
        let split = t.len().checked_sub(6).ok_or_else(bad)?;
        let (local, off) = t.split_at(split);
        let sign = match off.as_bytes().first() {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => return Err(bad()),
        };
        let (h, m) = off[1..].split_once(':').ok_or_else(bad)?;
        let h: i64 = h.parse().map_err(|_| bad())?;
        let m: i64 = m.parse().map_err(|_| bad())?;
        if h > 23 || m > 59 {
            return Err(bad());
        }
        (local, sign * (h * 3600 + m * 60))
    };
    if local.len() < 19 || !matches!(local.as_bytes()[10], b'T' | b't') {
        return Err(bad());
    }
    let utc = humantime::parse_rfc3339_weak(local).map_err(|_| bad())?;
    let shifted = if offset_secs >= 0 {
        utc.checked_sub(Duration::from_secs(offset_secs.unsigned_abs()))
    } else {
        utc.checked_add(Duration::from_secs(offset_secs.unsigned_abs()))
    };
    shifted.ok_or_else(bad)
}

/// An IPv4 or IPv6 network. A bare address is a network of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (addr_text, prefix_text) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr_text.parse().map_err(|_| {
            format!("{s:?} is not an IP network like \"10.0.0.0/8\" or \"2001:db8::/32\"")
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && !p.starts_with('+') => n,
                _ => return Err(format!("{s:?}: the prefix length must be 0 to {max}")),
            },
        };
        let cidr = Cidr { addr, prefix };
        if cidr.network() != addr {
            return Err(format!(
                "{s:?} has host bits set; did you mean \"{}/{prefix}\"?",
                cidr.network()
            ));
        }
        Ok(cidr)
    }

    fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4((u32::from(a) & mask).into())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(a) & mask).into())
            }
        }
    }

    /// Whether `ip` is inside this network. An IPv4-mapped IPv6 address
    /// (`::ffff:192.0.2.1`) is matched as the IPv4 address it carries.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let inside = Cidr {
            addr: ip,
            prefix: self.prefix,
        };
        ip.is_ipv4() == self.addr.is_ipv4() && inside.network() == self.addr
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}
