//! `/etc/twostep/twostep.toml` -> a typed, validated [`Config`].
//!
//! Every key is optional. An unknown key, a wrong type or an out-of-range value
//! is an error that names the key and its line; the module then denies every
//! login (fails closed) and the CLI exits 2.
#![forbid(unsafe_code)]

use serde::Deserialize;
use serde::de::{self, Deserializer};
use std::fmt;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

pub const DEFAULT_PATH: &str = "/etc/twostep/twostep.toml";
/// A config larger than this is refused: it is a sign of a wrong path.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub secret_dir: PathBuf,
    pub state_dir: PathBuf,
    /// `None`: the host name, looked up when it is needed.
    pub issuer: Option<String>,
    pub prompt: String,
    pub unenrolled: Unenrolled,
    pub totp: TotpParams,
    pub lockout: Lockout,
    pub log_socket: PathBuf,
    pub policy: Policy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unenrolled {
    Deny,
    Allow,
    Enroll,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
pub enum Algorithm {
    SHA1,
    SHA256,
    SHA512,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::SHA1 => "SHA1",
            Algorithm::SHA256 => "SHA256",
            Algorithm::SHA512 => "SHA512",
        }
    }
}

/// The code parameters: the config's defaults, possibly overridden per user by
/// the secret file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotpParams {
    pub digits: u8,
    pub period: u32,
    pub algorithm: Algorithm,
    pub skew: u8,
}

impl Default for TotpParams {
    fn default() -> Self {
        TotpParams {
            digits: 6,
            period: 30,
            algorithm: Algorithm::SHA1,
            skew: 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tier {
    pub failures: u32,
    pub lock: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lockout {
    /// Never empty: validated at load time.
    pub tiers: Vec<Tier>,
}

impl Default for Lockout {
    fn default() -> Self {
        Lockout {
            tiers: vec![
                Tier {
                    failures: 5,
                    lock: Duration::from_secs(5 * 60),
                },
                Tier {
                    failures: 5,
                    lock: Duration::from_secs(60 * 60),
                },
            ],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Console {
    Challenge,
    Skip,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub enroll_until: Option<SystemTime>,
    pub require_groups: Vec<String>,
    pub exempt_groups: Vec<String>,
    pub trusted_networks: Vec<Cidr>,
    pub remember: Duration,
    pub always_challenge_groups: Vec<String>,
    pub console: Console,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            enroll_until: None,
            require_groups: Vec::new(),
            exempt_groups: Vec::new(),
            trusted_networks: Vec::new(),
            remember: Duration::ZERO,
            always_challenge_groups: Vec::new(),
            console: Console::Challenge,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            secret_dir: PathBuf::from("/var/lib/twostep/secrets"),
            state_dir: PathBuf::from("/var/lib/twostep/state"),
            issuer: None,
            prompt: "Verification code: ".to_string(),
            unenrolled: Unenrolled::Deny,
            totp: TotpParams::default(),
            lockout: Lockout::default(),
            log_socket: PathBuf::from("/dev/log"),
            policy: Policy::default(),
        }
    }
}

/// A configuration error, already phrased for an administrator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: PathBuf,
    pub line: Option<usize>,
    pub message: String,
    /// `log.socket` as the refused file still says it, if it could be read
    /// from it and the file is one only root can write: so that the
    /// "config is broken" record goes where records go.
    pub log_socket: Option<PathBuf>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.path.display(), line, self.message),
            None => write!(f, "{}: {}", self.path.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Loads `path`. `explicit` is false for the built-in default path, whose
    /// absence means "all defaults"; a path the administrator named must exist.
    ///
    /// The file decides who gets a second factor, so it must be a regular
    /// file that only root can change: owned by root, not writable by group
    /// or others. It is opened without blocking (a FIFO put in its place
    /// cannot hang a login) and read once, with a bound.
    pub fn load(path: &Path, explicit: bool) -> Result<Config, ConfigError> {
        let err = |message: String| ConfigError {
            path: path.to_path_buf(),
            line: None,
            message,
            log_socket: None,
        };
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
            .open(path)
        {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                return Ok(Config::default());
            }
            Err(e) => return Err(err(format!("cannot read: {e}"))),
            Ok(file) => file,
        };
        let meta = file
            .metadata()
            .map_err(|e| err(format!("cannot read: {e}")))?;
        if let Some(problem) = file_problem(&meta) {
            return Err(err(problem));
        }
        let text = crate::fsutil::read_text(&file, meta.len(), MAX_CONFIG_BYTES)
            .map_err(|e| err(format!("cannot read: {e}")))?;
        Config::parse(&text).map_err(|(line, message)| ConfigError {
            path: path.to_path_buf(),
            line,
            message,
            log_socket: log_socket_hint(&text),
        })
    }

    /// Parses the text of a config file. The error is (line, message).
    pub fn parse(text: &str) -> Result<Config, (Option<usize>, String)> {
        // The plain parse is the hot path (every login). Only when it fails is
        // the file parsed again with key tracking, to name the key.
        match toml::from_str::<RawConfig>(text) {
            Ok(raw) => raw.into_config(),
            Err(_) => {
                let de = toml::Deserializer::parse(text).map_err(|e| toml_error(text, &e, None))?;
                let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
                    let key = e.path().to_string();
                    toml_error(text, e.inner(), Some(key))
                })?;
                raw.into_config()
            }
        }
    }
}

/// Why an opened config file must not be used, if it must not: it is not a
/// regular file, not root's, or group or others can write it.
pub fn file_problem(meta: &std::fs::Metadata) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    if !meta.is_file() {
        return Some("not a regular file".into());
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Some("larger than 1 MiB: is this the right file?".into());
    }
    if meta.uid() != crate::fsutil::expected_owner() {
        return Some(format!(
            "owned by uid {}, not root: only root may decide who is asked for a code",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Some(format!(
            "mode {:04o}: group or others can write it (chmod go-w)",
            meta.mode() & 0o7777
        ));
    }
    None
}

/// `log.socket` from the text of a file that failed validation, if it can
/// still be read from it.
fn log_socket_hint(text: &str) -> Option<PathBuf> {
    let table: toml::Table = toml::from_str(text).ok()?;
    let socket = table.get("log")?.get("socket")?.as_str()?;
    socket.starts_with('/').then(|| PathBuf::from(socket))
}

fn toml_error(text: &str, e: &toml::de::Error, key: Option<String>) -> (Option<usize>, String) {
    let line = e
        .span()
        .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
    let message = e.message().trim().to_string();
    match key {
        // serde_path_to_error says "." for the document itself.
        Some(key) if key != "." && !message.contains(&format!("`{key}`")) => {
            (line, format!("{key}: {message}"))
        }
        _ => (line, message),
    }
}

// ---- the file as written: every key optional --------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    secret_dir: Option<AbsPath>,
    state_dir: Option<AbsPath>,
    issuer: Option<Issuer>,
    prompt: Option<String>,
    unenrolled: Option<Unenrolled>,
    #[serde(default)]
    totp: RawTotp,
    #[serde(default)]
    lockout: RawLockout,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    policy: RawPolicy,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTotp {
    digits: Option<Digits>,
    period: Option<Period>,
    algorithm: Option<Algorithm>,
    skew: Option<Skew>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLockout {
    tiers: Option<Tiers>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTier {
    failures: TierFailures,
    lock: LockDuration,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLog {
    socket: Option<AbsPath>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    enroll_until: Option<Rfc3339>,
    require_groups: Option<Vec<GroupName>>,
    exempt_groups: Option<Vec<GroupName>>,
    trusted_networks: Option<Vec<Cidr>>,
    remember: Option<Remember>,
    always_challenge_groups: Option<Vec<GroupName>>,
    console: Option<Console>,
}

impl RawConfig {
    fn into_config(self) -> Result<Config, (Option<usize>, String)> {
        let d = Config::default();
        let p = self.policy;
        let groups =
            |g: Option<Vec<GroupName>>| g.unwrap_or_default().into_iter().map(|g| g.0).collect();
        let prompt = self.prompt.unwrap_or(d.prompt);
        if prompt.contains('\0') {
            return Err((None, "prompt: may not contain a NUL character".into()));
        }
        Ok(Config {
            secret_dir: self.secret_dir.map_or(d.secret_dir, |p| p.0),
            state_dir: self.state_dir.map_or(d.state_dir, |p| p.0),
            issuer: self.issuer.map(|i| i.0),
            prompt,
            unenrolled: self.unenrolled.unwrap_or(d.unenrolled),
            totp: TotpParams {
                digits: self.totp.digits.map_or(d.totp.digits, |v| v.0),
                period: self.totp.period.map_or(d.totp.period, |v| v.0),
                algorithm: self.totp.algorithm.unwrap_or(d.totp.algorithm),
                skew: self.totp.skew.map_or(d.totp.skew, |v| v.0),
            },
            lockout: self
                .lockout
                .tiers
                .map_or(d.lockout, |t| Lockout { tiers: t.0 }),
            log_socket: self.log.socket.map_or(d.log_socket, |p| p.0),
            policy: Policy {
                enroll_until: p.enroll_until.map(|t| t.0),
                require_groups: groups(p.require_groups),
                exempt_groups: groups(p.exempt_groups),
                trusted_networks: p.trusted_networks.unwrap_or_default(),
                remember: p.remember.map_or(d.policy.remember, |r| r.0),
                always_challenge_groups: groups(p.always_challenge_groups),
                console: p.console.unwrap_or(d.policy.console),
            },
        })
    }
}

// ---- validated leaf values: each one's error says what is allowed -------------

/// A number in a range, with the range in the error message.
fn ranged<'de, D: Deserializer<'de>>(d: D, lo: i64, hi: i64, what: &str) -> Result<i64, D::Error> {
    let v = i64::deserialize(d)?;
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(de::Error::custom(format!("{v} is out of range: {what}")))
    }
}

macro_rules! ranged_newtype {
    ($name:ident, $ty:ty, $lo:expr, $hi:expr, $what:expr) => {
        struct $name($ty);
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let v = ranged(d, $lo, $hi, $what)?;
                <$ty>::try_from(v).map($name).map_err(de::Error::custom)
            }
        }
    };
}

ranged_newtype!(Digits, u8, 6, 8, "must be 6, 7 or 8");
ranged_newtype!(Period, u32, 15, 300, "must be 15 to 300 seconds");
ranged_newtype!(Skew, u8, 0, 10, "must be 0 to 10 steps");
ranged_newtype!(TierFailures, u32, 1, 1000, "must be 1 to 1000 failures");

struct AbsPath(PathBuf);
impl<'de> Deserialize<'de> for AbsPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if !s.starts_with('/') || s.contains('\0') {
            return Err(de::Error::custom(format!("{s:?} must be an absolute path")));
        }
        Ok(AbsPath(PathBuf::from(s)))
    }
}

struct Issuer(String);
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

struct GroupName(String);
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

fn duration_in<'de, D: Deserializer<'de>>(
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

const DAY: u64 = 24 * 60 * 60;

struct LockDuration(Duration);
impl<'de> Deserialize<'de> for LockDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        duration_in(d, 1, 365 * DAY, "a lock lasts from 1s to 365d").map(LockDuration)
    }
}

struct Remember(Duration);
impl<'de> Deserialize<'de> for Remember {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        duration_in(d, 0, 90 * DAY, "from 0s (off) to 90d").map(Remember)
    }
}

struct Tiers(Vec<Tier>);
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
struct Rfc3339(SystemTime);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, (Option<usize>, String)> {
        Config::parse(text)
    }

    #[test]
    fn empty_file_is_all_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn shipped_sample_is_exactly_the_defaults() {
        // conf/twostep.toml documents every key with its default value; if the
        // two drift apart, this fails.
        let sample = include_str!("../conf/twostep.toml");
        assert_eq!(parse(sample).unwrap(), Config::default());
        let uncommented: String = sample
            .lines()
            .map(|l| {
                l.strip_prefix("# ")
                    .filter(|r| {
                        r.split_once(" = ").is_some_and(|(k, _)| {
                            k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                        })
                    })
                    .unwrap_or(l)
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let want = Config {
            issuer: Some("host.example.com".into()),
            policy: Policy {
                enroll_until: Some(parse_rfc3339("2027-01-31T00:00:00Z").unwrap()),
                ..Policy::default()
            },
            ..Config::default()
        };
        assert_eq!(parse(&uncommented).unwrap(), want, "{uncommented}");
    }

    #[test]
    fn every_key_is_read() {
        let cfg = parse(
            r#"
secret_dir = "/s"
state_dir = "/t"
issuer = "ACME"
prompt = "Code: "
unenrolled = "enroll"
[totp]
digits = 8
period = 60
algorithm = "SHA512"
skew = 2
[lockout]
tiers = [{failures = 3, lock = "30s"}, {failures = 2, lock = "2d"}]
[log]
socket = "/run/x.sock"
[policy]
enroll_until = 2027-01-31T00:00:00+01:00
require_groups = ["staff"]
exempt_groups = ["svc"]
trusted_networks = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]
remember = "12h"
always_challenge_groups = ["sudo"]
console = "skip"
"#,
        )
        .unwrap();
        assert_eq!(cfg.secret_dir, PathBuf::from("/s"));
        assert_eq!(cfg.state_dir, PathBuf::from("/t"));
        assert_eq!(cfg.issuer.as_deref(), Some("ACME"));
        assert_eq!(cfg.prompt, "Code: ");
        assert_eq!(cfg.unenrolled, Unenrolled::Enroll);
        assert_eq!(
            cfg.totp,
            TotpParams {
                digits: 8,
                period: 60,
                algorithm: Algorithm::SHA512,
                skew: 2
            }
        );
        assert_eq!(
            cfg.lockout.tiers,
            vec![
                Tier {
                    failures: 3,
                    lock: Duration::from_secs(30)
                },
                Tier {
                    failures: 2,
                    lock: Duration::from_secs(2 * DAY)
                }
            ]
        );
        assert_eq!(cfg.log_socket, PathBuf::from("/run/x.sock"));
        assert_eq!(
            cfg.policy.enroll_until,
            Some(parse_rfc3339("2027-01-30T23:00:00Z").unwrap())
        );
        assert_eq!(cfg.policy.require_groups, vec!["staff"]);
        assert_eq!(cfg.policy.exempt_groups, vec!["svc"]);
        assert_eq!(cfg.policy.trusted_networks.len(), 3);
        assert_eq!(cfg.policy.remember, Duration::from_secs(12 * 3600));
        assert_eq!(cfg.policy.always_challenge_groups, vec!["sudo"]);
        assert_eq!(cfg.policy.console, Console::Skip);
    }

    #[test]
    fn errors_name_the_key_and_line() {
        // (document, line, words the message must contain)
        let cases: &[(&str, usize, &[&str])] = &[
            ("\n[totp]\ndigits = 9\n", 3, &["totp.digits", "6, 7 or 8"]),
            (
                "[totp]\ndigits = \"6\"\n",
                2,
                &["totp.digits", "invalid type"],
            ),
            ("[totp]\nperiod = 10\n", 2, &["totp.period", "15 to 300"]),
            ("[totp]\nskew = 11\n", 2, &["totp.skew", "0 to 10"]),
            ("[totp]\nskew = -1\n", 2, &["totp.skew"]),
            (
                "[totp]\nalgorithm = \"MD5\"\n",
                2,
                &["totp.algorithm", "SHA1"],
            ),
            ("\n\nfrobnicate = 1\n", 3, &["frobnicate"]),
            ("[totp]\ndigit = 6\n", 2, &["digit"]),
            ("unenrolled = \"maybe\"\n", 1, &["unenrolled", "deny"]),
            (
                "secret_dir = \"relative\"\n",
                1,
                &["secret_dir", "absolute"],
            ),
            (
                "[lockout]\ntiers = []\n",
                2,
                &["lockout.tiers", "at least one"],
            ),
            (
                "[lockout]\ntiers = [{failures = 5, lock = \"5\"}]\n",
                2,
                &["lock", "unit"],
            ),
            (
                "[lockout]\ntiers = [{failures = 0, lock = \"5m\"}]\n",
                2,
                &["failures", "1 to 1000"],
            ),
            ("[lockout]\ntiers = [{failures = 5}]\n", 2, &["lock"]),
            (
                "[policy]\nremember = \"forever\"\n",
                2,
                &["policy.remember", "duration"],
            ),
            (
                "[policy]\ntrusted_networks = [\"10.0.0.1/8\"]\n",
                2,
                &["policy.trusted_networks", "host bits"],
            ),
            (
                "[policy]\ntrusted_networks = [\"example.com\"]\n",
                2,
                &["policy.trusted_networks"],
            ),
            (
                "[policy]\nenroll_until = \"next week\"\n",
                2,
                &["policy.enroll_until", "RFC 3339"],
            ),
            ("[policy]\nconsole = \"maybe\"\n", 2, &["policy.console"]),
            ("issuer = \"a:b\"\n", 1, &["issuer", "':'"]),
            ("[totp\n", 1, &[]),
        ];
        for (doc, line, words) in cases {
            let (got_line, msg) = parse(doc).expect_err(doc);
            assert_eq!(got_line, Some(*line), "{doc:?}: {msg}");
            for w in *words {
                assert!(msg.contains(w), "{doc:?}: {msg:?} lacks {w:?}");
            }
            assert!(!msg.contains('\n'), "one line: {msg:?}");
        }
    }

    #[test]
    fn missing_default_file_is_defaults_but_missing_named_file_is_an_error() {
        let p = Path::new("/nonexistent/twostep.toml");
        assert_eq!(Config::load(p, false).unwrap(), Config::default());
        let e = Config::load(p, true).unwrap_err();
        assert!(e.to_string().contains("cannot read"), "{e}");
    }

    #[test]
    fn what_is_not_a_regular_file_is_refused_without_hanging() {
        let dir = std::env::temp_dir().join(format!("twostep-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo.toml");
        let _ = std::fs::remove_file(&fifo);
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // Opening a FIFO for reading blocks until a writer comes, unless
        // O_NONBLOCK: run it where a hang shows as a timeout, not a stuck test.
        let (tx, rx) = std::sync::mpsc::channel();
        let (f, d) = (fifo.clone(), dir.clone());
        std::thread::spawn(move || {
            let _ = tx.send((Config::load(&f, true), Config::load(&d, true)));
        });
        let (from_fifo, from_dir) = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("Config::load hung on a FIFO");
        for e in [from_fifo.unwrap_err(), from_dir.unwrap_err()] {
            assert!(e.to_string().contains("not a regular file"), "{e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn durations() {
        let ok = [
            ("30s", 30),
            ("5m", 300),
            ("1h", 3600),
            ("2d", 2 * DAY),
            ("1h30m", 5400),
            ("0s", 0),
        ];
        for (s, secs) in ok {
            assert_eq!(parse_duration(s), Ok(Duration::from_secs(secs)), "{s}");
        }
        for s in [
            "",
            "5",
            "m",
            "-5m",
            "5 parsecs",
            "1.5s",
            "500ms",
            " 5m",
            "5m ",
        ] {
            assert!(parse_duration(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn rfc3339() {
        let base = parse_rfc3339("2027-01-31T00:00:00Z").unwrap();
        assert_eq!(
            base,
            humantime::parse_rfc3339("2027-01-31T00:00:00Z").unwrap()
        );
        assert_eq!(parse_rfc3339("2027-01-31T01:00:00+01:00").unwrap(), base);
        assert_eq!(parse_rfc3339("2027-01-30T23:30:00-00:30").unwrap(), base);
        for bad in [
            "2027-01-31",
            "2027-01-31T00:00:00",
            "tomorrow",
            "2027-01-31T00:00:00+25:00",
            "+01:00",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cidr_matching() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // (network, address, inside?)
        let cases = [
            ("10.0.0.0/8", "10.1.2.3", true),
            ("10.0.0.0/8", "11.0.0.0", false),
            ("10.0.0.0/8", "::ffff:10.9.9.9", true),
            ("10.0.0.0/8", "::ffff:11.9.9.9", false),
            ("192.0.2.7", "192.0.2.7", true),
            ("192.0.2.7", "192.0.2.8", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("0.0.0.0/0", "2001:db8::1", false),
            ("2001:db8::/32", "2001:db8:ffff::1", true),
            ("2001:db8::/32", "2001:db9::1", false),
            ("2001:db8::/32", "10.0.0.1", false),
            ("::/0", "2001:db8::1", true),
            ("::/0", "::ffff:10.0.0.1", false),
            ("::ffff:0:0/96", "10.0.0.1", false),
        ];
        for (net, addr, want) in cases {
            assert_eq!(
                Cidr::parse(net).unwrap().contains(ip(addr)),
                want,
                "{net} {addr}"
            );
        }
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0/8",
            "host",
            "10.0.0.1/24",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }
}
