//! Validated leaf values of the configuration: each one's error says what
//! is allowed. Shared by every section.
#![forbid(unsafe_code)]

use super::{RawTier, Tier};
use serde::Deserialize;
use serde::de::{self, Deserializer};
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

// ---- validated leaf values: each one's error says what is allowed -------------

/// A number in a range, with the range in the error message.
pub(crate) fn ranged<'de, D: Deserializer<'de>>(
    d: D,
    lo: i64,
    hi: i64,
    what: &str,
) -> Result<i64, D::Error> {
    let v = i64::deserialize(d)?;
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(de::Error::custom(format!("{v} is out of range: {what}")))
    }
}

macro_rules! ranged_newtype {
    ($name:ident, $ty:ty, $lo:expr, $hi:expr, $what:expr) => {
        pub(crate) struct $name(pub(crate) $ty);
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let v = ranged(d, $lo, $hi, $what)?;
                <$ty>::try_from(v).map($name).map_err(de::Error::custom)
            }
        }
    };
}

pub(crate) use ranged_newtype;

ranged_newtype!(Digits, u8, 6, 8, "must be 6, 7 or 8");
ranged_newtype!(Period, u32, 15, 300, "must be 15 to 300 seconds");
ranged_newtype!(Skew, u8, 0, 10, "must be 0 to 10 steps");
ranged_newtype!(TierFailures, u32, 1, 1000, "must be 1 to 1000 failures");

pub(crate) struct AbsPath(pub(crate) PathBuf);
impl<'de> Deserialize<'de> for AbsPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if !s.starts_with('/') || s.contains('\0') {
            return Err(de::Error::custom(format!("{s:?} must be an absolute path")));
        }
        Ok(AbsPath(PathBuf::from(s)))
    }
}

pub(crate) struct Issuer(pub(crate) String);
impl<'de> Deserialize<'de> for Issuer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        // The otpauth label is "issuer:account": a colon would split it wrongly.
        if s.is_empty() || s.len() > 100 || s.contains(':') || s.chars().any(char::is_control) {
            return Err(de::Error::custom(
                "must be 1 to 100 characters, without ':' or control characters",
            ));
        }
        Ok(Issuer(s))
    }
}

pub(crate) struct GroupName(pub(crate) String);
impl<'de> Deserialize<'de> for GroupName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() || s.len() > 256 || s.contains(['\0', '\n', ':']) {
            return Err(de::Error::custom(format!("{s:?} is not a group name")));
        }
        Ok(GroupName(s))
    }
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

pub(crate) fn duration_in<'de, D: Deserializer<'de>>(
    d: D,
    lo: u64,
    hi: u64,
    what: &str,
) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    let v = parse_duration(&s).map_err(de::Error::custom)?;
    if !(lo..=hi).contains(&v.as_secs()) {
        return Err(de::Error::custom(format!("{s:?} is out of range: {what}")));
    }
    Ok(v)
}

pub(crate) const DAY: u64 = 24 * 60 * 60;

pub(crate) struct LockDuration(pub(crate) Duration);
impl<'de> Deserialize<'de> for LockDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        duration_in(d, 1, 365 * DAY, "a lock lasts from 1s to 365d").map(LockDuration)
    }
}

pub(crate) struct Remember(pub(crate) Duration);
impl<'de> Deserialize<'de> for Remember {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        duration_in(d, 0, 90 * DAY, "from 0s (off) to 90d").map(Remember)
    }
}

pub(crate) struct Tiers(pub(crate) Vec<Tier>);
impl<'de> Deserialize<'de> for Tiers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Vec::<RawTier>::deserialize(d)?;
        if raw.is_empty() {
            return Err(de::Error::custom(
                "needs at least one tier, like [{failures = 5, lock = \"5m\"}]",
            ));
        }
        if raw.len() > 16 {
            return Err(de::Error::custom("at most 16 tiers"));
        }
        Ok(Tiers(
            raw.into_iter()
                .map(|t| Tier {
                    failures: t.failures.0,
                    lock: t.lock.0,
                })
                .collect(),
        ))
    }
}

/// An RFC 3339 date, given as a string or as a TOML date-time.
pub(crate) struct Rfc3339(pub(crate) SystemTime);
impl<'de> Deserialize<'de> for Rfc3339 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Text(String),
            Toml(toml::value::Datetime),
        }
        let text = match Either::deserialize(d)? {
            Either::Text(s) => s,
            Either::Toml(dt) => dt.to_string(),
        };
        parse_rfc3339(&text).map(Rfc3339).map_err(de::Error::custom)
    }
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

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Cidr::parse(&s).map_err(de::Error::custom)
    }
}
