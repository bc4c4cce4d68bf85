//! `/etc/twostep/twostep.toml` -> a typed, validated [`Config`].
//!
//! Every key is optional. An unknown key, a wrong type or an out-of-range value
//! is an error that names the key and its line; the module then denies every
//! login (fails closed) and the CLI exits 2.
#![forbid(unsafe_code)]

mod fleet;
mod outbound;
mod values;

pub use fleet::{OnUnavailable, SelfService, Store, StoreUrl};
pub use outbound::{
    Codes, Email, LostDevice, LostDeviceMethod, MAX_SENDS_PER_HOUR, Notify, NotifyEvent, Sms,
};
pub(crate) use values::*;

use serde::Deserialize;
use std::fmt;
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
    /// The one question of a `preauth single` stack (echo off).
    pub prompt_single: String,
    pub unenrolled: Unenrolled,
    pub totp: TotpParams,
    pub lockout: Lockout,
    pub log_socket: PathBuf,
    pub policy: Policy,
    pub email: Email,
    pub sms: Sms,
    pub codes: Codes,
    pub lost_device: LostDevice,
    pub notify: Notify,
    pub store: Store,
    pub self_service: SelfService,
    /// `[audit]`: what `twostep audit` accepts.
    pub audit: Audit,
}

/// `[audit]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Audit {
    /// The ways in the site means to allow (`crate::ways_in::accept`).
    pub accept: Vec<crate::ways_in::accept::Accept>,
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
            prompt_single: "Password and code: ".to_string(),
            unenrolled: Unenrolled::Deny,
            totp: TotpParams::default(),
            lockout: Lockout::default(),
            log_socket: PathBuf::from("/dev/log"),
            policy: Policy::default(),
            email: Email::default(),
            sms: Sms::default(),
            codes: Codes::default(),
            lost_device: LostDevice::default(),
            notify: Notify::default(),
            store: Store::default(),
            self_service: SelfService::default(),
            audit: Audit::default(),
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
        let text = crate::files::fsutil::read_text(&file, meta.len(), MAX_CONFIG_BYTES)
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
        match toml::from_str::<RawConfig>(text) {
            Ok(raw) => raw.into_config(),
            Err(e) => Err(toml_error(text, &e)),
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
    if meta.uid() != crate::files::fsutil::expected_owner() {
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

/// A TOML or value error as (line, message), the message led by the key it
/// is about ("totp.digits: 9 is out of range...").
fn toml_error(text: &str, e: &toml::de::Error) -> (Option<usize>, String) {
    let message = e.message().trim().to_string();
    let Some(start) = e.span().map(|span| span.start.min(text.len())) else {
        return (None, message);
    };
    let line = text[..start].matches('\n').count() + 1;
    match key_at(text, line) {
        Some(key) if !message.contains(&format!("`{key}`")) => {
            (Some(line), format!("{key}: {message}"))
        }
        _ => (Some(line), message),
    }
}

/// The dotted name of the key whose value spans line `line` (1-based): the
/// nearest `key =` at or above it, under the nearest `[table]` above that.
/// Found from the text rather than by tracking the deserializer's path,
/// which would compile the whole config's deserializer a second time into
/// the module.
fn key_at(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().take(line).collect();
    let bare = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    let (at, key) = lines.iter().enumerate().rev().find_map(|(i, l)| {
        let (k, _) = l.split_once('=')?;
        let k = k.trim();
        (!k.is_empty() && k.chars().all(bare)).then_some((i, k))
    })?;
    let table = lines[..at].iter().rev().find_map(|l| {
        let l = l.trim();
        let inner = l
            .strip_prefix('[')?
            .split(']')
            .next()?
            .trim_start_matches('[');
        Some(inner.trim())
    });
    Some(match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key.to_string(),
    })
}

// ---- the file as written: every key optional --------------------------------

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    secret_dir: Option<AbsPath>,
    state_dir: Option<AbsPath>,
    issuer: Option<Issuer>,
    prompt: Option<String>,
    prompt_single: Option<String>,
    unenrolled: Option<Unenrolled>,
    #[serde(default)]
    totp: RawTotp,
    #[serde(default)]
    lockout: RawLockout,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    policy: RawPolicy,
    #[serde(default)]
    email: outbound::RawEmail,
    #[serde(default)]
    sms: outbound::RawSms,
    #[serde(default)]
    codes: outbound::RawCodes,
    #[serde(default)]
    lost_device: outbound::RawLostDevice,
    #[serde(default)]
    notify: outbound::RawNotify,
    #[serde(default)]
    store: fleet::RawStore,
    #[serde(default)]
    self_service: fleet::RawSelfService,
    #[serde(default)]
    audit: RawAudit,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    accept: Option<Vec<AcceptEntry>>,
}

/// One `audit.accept` entry, checked as it is read.
struct AcceptEntry(crate::ways_in::accept::Accept);
impl<'de> Deserialize<'de> for AcceptEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        crate::ways_in::accept::Accept::parse(&s)
            .map(AcceptEntry)
            .map_err(serde::de::Error::custom)
    }
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
pub(crate) struct RawTier {
    pub(crate) failures: TierFailures,
    pub(crate) lock: LockDuration,
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
        let prompt_single = self.prompt_single.unwrap_or(d.prompt_single);
        if prompt_single.contains('\0') {
            return Err((
                None,
                "prompt_single: may not contain a NUL character".into(),
            ));
        }
        Ok(Config {
            secret_dir: self.secret_dir.map_or(d.secret_dir, |p| p.0),
            state_dir: self.state_dir.map_or(d.state_dir, |p| p.0),
            issuer: self.issuer.map(|i| i.0),
            prompt,
            prompt_single,
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
            email: self.email.into_section(),
            sms: self.sms.into_section(),
            codes: self.codes.into_section().map_err(|e| (None, e))?,
            lost_device: self.lost_device.into_section(),
            notify: self.notify.into_section(),
            store: self.store.into_section(),
            self_service: self.self_service.into_section(),
            audit: Audit {
                accept: self
                    .audit
                    .accept
                    .unwrap_or_default()
                    .into_iter()
                    .map(|a| a.0)
                    .collect(),
            },
        })
    }
}

#[cfg(test)]
mod tests;
