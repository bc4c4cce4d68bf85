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

use crate::base::tomlread::{Bad, Doc, Table, Value, message};
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unenrolled {
    Deny,
    Allow,
    Enroll,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Algorithm {
    SHA1,
    SHA256,
    SHA512,
}

impl Algorithm {
    /// The names the config and the secret files use.
    pub const NAMES: [(&'static str, Algorithm); 3] = [
        ("SHA1", Algorithm::SHA1),
        ("SHA256", Algorithm::SHA256),
        ("SHA512", Algorithm::SHA512),
    ];

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
        let doc = Doc::parse(text).map_err(|bad| syntax_error(text, bad))?;
        Config::read(&doc.root()).map_err(|bad| bad.into_line(text))
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
    let doc = Doc::parse(text).ok()?;
    let log = doc.root().get("log")?.table().ok()?;
    abs_path(&log.get("socket")?).ok()
}

/// A TOML syntax error as (line, message), the message led by the key it is
/// about, if one is found on its line.
fn syntax_error(text: &str, bad: Bad) -> (Option<usize>, String) {
    let (line, message) = bad.into_line(text);
    let Some(line) = line else {
        return (None, message);
    };
    match key_at(text, line) {
        Some(key) if !message.contains(&format!("`{key}`")) => {
            (Some(line), format!("{key}: {message}"))
        }
        _ => (Some(line), message),
    }
}

/// The dotted name of the key whose value spans line `line` (1-based): the
/// nearest `key =` at or above it, under the nearest `[table]` above that.
/// Found from the text: a syntax error has no parse tree to name it.
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

// Each reader starts from the defaults and sets only the keys the file has,
// so that a login runs the code of those keys alone; a section's reader is
// kept out of line (`inline(never)`) so that its code is not in the
// login's way when the section is absent (link/hot-symbols.sh).

impl Config {
    fn read(root: &Table) -> Result<Config, Bad> {
        const KEYS: &str = "\
            secret_dir, state_dir, issuer, prompt, prompt_single, unenrolled, totp, \
            lockout, log, policy, email, sms, codes, lost_device, notify, store, \
            self_service, audit";
        let mut c = Config::default();
        root.each(KEYS, |key, v| {
            match key {
                "secret_dir" => c.secret_dir = abs_path(v)?,
                "state_dir" => c.state_dir = abs_path(v)?,
                "issuer" => c.issuer = Some(issuer(v)?),
                "prompt" => c.prompt = prompt(v)?,
                "prompt_single" => c.prompt_single = prompt(v)?,
                "unenrolled" => c.unenrolled = unenrolled(v)?,
                "totp" => c.totp = TotpParams::read(&v.table()?)?,
                "lockout" => c.lockout = Lockout::read(&v.table()?)?,
                "log" => c.log_socket = read_log(&v.table()?)?,
                "policy" => c.policy = Policy::read(&v.table()?)?,
                "email" => c.email = Email::read(&v.table()?)?,
                "sms" => c.sms = Sms::read(&v.table()?)?,
                "codes" => c.codes = Codes::read(&v.table()?)?,
                "lost_device" => c.lost_device = LostDevice::read(&v.table()?)?,
                "notify" => c.notify = Notify::read(&v.table()?)?,
                "store" => c.store = Store::read(&v.table()?)?,
                "self_service" => c.self_service = SelfService::read(&v.table()?)?,
                "audit" => c.audit = Audit::read(&v.table()?)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(c)
    }
}

#[inline(never)]
fn prompt(v: &Value) -> Result<String, Bad> {
    let s = v.str()?;
    if s.contains('\0') {
        return Err(message("may not contain a NUL character"));
    }
    Ok(s.to_string())
}

#[inline(never)]
fn unenrolled(v: &Value) -> Result<Unenrolled, Bad> {
    v.one_of(&[
        ("deny", Unenrolled::Deny),
        ("allow", Unenrolled::Allow),
        ("enroll", Unenrolled::Enroll),
    ])
}

/// `[log]`: the socket.
#[inline(never)]
fn read_log(t: &Table) -> Result<PathBuf, Bad> {
    let mut socket = Config::default().log_socket;
    t.each("socket", |key, v| {
        match key {
            "socket" => socket = abs_path(v)?,
            _ => return Ok(false),
        }
        Ok(true)
    })?;
    Ok(socket)
}

impl TotpParams {
    #[inline(never)]
    fn read(t: &Table) -> Result<TotpParams, Bad> {
        let mut p = TotpParams::default();
        t.each("digits, period, algorithm, skew", |key, v| {
            match key {
                "digits" => p.digits = v.int_in(6, 8, "must be 6, 7 or 8")? as u8,
                "period" => p.period = v.int_in(15, 300, "must be 15 to 300 seconds")? as u32,
                "algorithm" => p.algorithm = v.one_of(&Algorithm::NAMES)?,
                "skew" => p.skew = v.int_in(0, 10, "must be 0 to 10 steps")? as u8,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(p)
    }
}

impl Lockout {
    #[inline(never)]
    fn read(t: &Table) -> Result<Lockout, Bad> {
        let mut lockout = Lockout::default();
        t.each("tiers", |key, v| {
            match key {
                "tiers" => lockout.tiers = tiers(v)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(lockout)
    }
}

impl Policy {
    #[inline(never)]
    fn read(t: &Table) -> Result<Policy, Bad> {
        const KEYS: &str = "\
            enroll_until, require_groups, exempt_groups, trusted_networks, remember, \
            always_challenge_groups, console";
        let mut p = Policy::default();
        t.each(KEYS, |key, v| {
            match key {
                "enroll_until" => p.enroll_until = Some(rfc3339(v)?),
                "require_groups" => p.require_groups = group_names(v)?,
                "exempt_groups" => p.exempt_groups = group_names(v)?,
                "trusted_networks" => p.trusted_networks = networks(v)?,
                "remember" => p.remember = duration_in(v, 0, 90 * DAY, "from 0s (off) to 90d")?,
                "always_challenge_groups" => p.always_challenge_groups = group_names(v)?,
                "console" => {
                    p.console =
                        v.one_of(&[("challenge", Console::Challenge), ("skip", Console::Skip)])?
                }
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(p)
    }
}

impl Audit {
    #[inline(never)]
    fn read(t: &Table) -> Result<Audit, Bad> {
        let mut audit = Audit::default();
        t.each("accept", |key, v| {
            match key {
                "accept" => {
                    audit.accept = v.array(|a| {
                        crate::ways_in::accept::Accept::parse(a.str()?).map_err(message)
                    })?
                }
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(audit)
    }
}

#[cfg(test)]
mod tests;
