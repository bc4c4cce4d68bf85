//! Per-user secret files: `<secret_dir>/<user>`, TOML, root-owned, mode 0600.
//!
//! The module opens them without following links, checks the opened
//! descriptor (not the path), and keeps the decoded key in memory that is
//! wiped on drop.
#![forbid(unsafe_code)]

use crate::base::address::{EmailAddress, PhoneNumber};
use crate::base::tomlread::{Bad, Doc, Table, Value};
use crate::base::user::UserName;
use crate::config::{Algorithm, TotpParams};
use crate::files::fsutil;
use serde::Serialize;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use zeroize::{Zeroize, Zeroizing};

pub mod devices;

pub use devices::{DEFAULT_DEVICE, Device, DeviceName, MAX_DEVICES};

/// A secret file is a few hundred bytes; anything near this is not one.
pub const MAX_FILE_BYTES: u64 = 64 * 1024;
/// RFC 4226 section 4: at least 128 bits.
pub const MIN_SECRET_BYTES: usize = 16;
/// Nothing sane is longer than a SHA-512 block.
pub const MAX_SECRET_BYTES: usize = 128;

/// How a user's codes reach them: the secret file's `method`.
#[derive(Serialize, Clone, Copy, PartialEq, Eq, Debug, Default)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// An authenticator app (TOTP).
    #[default]
    Totp,
    /// A fresh code by email at each login.
    Email,
    /// A fresh code by text message at each login.
    Sms,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Totp => "totp",
            Method::Email => "email",
            Method::Sms => "sms",
        }
    }
}

/// The file as stored. `secret` is wiped when this is dropped.
#[derive(Serialize, Clone, PartialEq, Eq, Default)]
pub struct SecretFile {
    /// Required for `method = "totp"`. For the other methods it keys the
    /// hash under which a sent code is kept (enrollment makes one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<Zeroizing<String>>,
    #[serde(skip_serializing_if = "is_totp")]
    pub method: Method,
    /// For email codes, the lost-device path and notifications.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// E.164, for SMS codes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digits: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<Algorithm>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recovery_codes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Several named authenticators instead of `secret` (`devices`). Last:
    /// TOML writes tables after plain keys.
    #[serde(rename = "authenticator", skip_serializing_if = "Vec::is_empty")]
    pub authenticators: Vec<devices::Entry>,
}

fn is_totp(m: &Method) -> bool {
    *m == Method::Totp
}

impl std::fmt::Debug for SecretFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretFile")
            .field("secret", &"[redacted]")
            .field("method", &self.method)
            .field("email", &self.email)
            .field("phone", &self.phone)
            .field("digits", &self.digits)
            .field("period", &self.period)
            .field("algorithm", &self.algorithm)
            .field("recovery_codes", &self.recovery_codes.len())
            .field("created", &self.created)
            .field("authenticators", &self.authenticators)
            .finish()
    }
}

/// A user's decoded, validated secret and the code parameters that apply.
pub struct UserSecret {
    /// The TOTP secret (of the first authenticator, with several); empty
    /// for an email or SMS user without one. It keys the hashes of sent
    /// codes (`code_key`).
    pub key: Zeroizing<Vec<u8>>,
    /// The code parameters of that first authenticator (the config's for a
    /// user without one).
    pub params: TotpParams,
    /// Every authenticator whose codes are accepted: the top-level secret
    /// as one named `default`, or the `[[authenticator]]` list. Empty for
    /// an email or SMS user.
    pub devices: Vec<Device>,
    pub method: Method,
    pub email: Option<EmailAddress>,
    pub phone: Option<PhoneNumber>,
    pub file: SecretFile,
}

#[derive(Debug)]
pub enum SecretError {
    /// No secret file: the user is not enrolled.
    Missing,
    /// A file is there but must not be trusted. The string says why, for the log.
    Bad(String),
    Io(io::Error),
}

impl std::fmt::Display for SecretError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretError::Missing => f.write_str("no secret file"),
            SecretError::Bad(why) => write!(f, "secret file refused: {why}"),
            SecretError::Io(e) => write!(f, "secret file: {e}"),
        }
    }
}

impl std::error::Error for SecretError {}

pub fn path_for(secret_dir: &Path, user: &UserName) -> PathBuf {
    secret_dir.join(user.as_str())
}

/// Decodes RFC 4648 base32 (case-insensitive, padding optional).
pub fn decode_base32(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let mut upper = Zeroizing::new(text.trim_end_matches('=').to_ascii_uppercase());
    let out = totp_rs::Secret::try_from_base32(upper.as_str()).ok();
    upper.zeroize();
    out.map(|s| Zeroizing::new(s.as_bytes().to_vec()))
}

pub fn encode_base32(key: &[u8]) -> Zeroizing<String> {
    Zeroizing::new(totp_rs::Secret::from(key).to_base32())
}

/// One of an authenticator's own `digits`, `period` and `algorithm`, as
/// written (checked against the config's by `devices::decode`); false for
/// another key.
pub(crate) fn read_param(
    key: &str,
    v: &Value,
    digits: &mut Option<u8>,
    period: &mut Option<u32>,
    algorithm: &mut Option<Algorithm>,
) -> Result<bool, Bad> {
    match key {
        "digits" => *digits = Some(v.int_in(0, u8::MAX.into(), "out of range")? as u8),
        "period" => *period = Some(v.int_in(0, u32::MAX.into(), "out of range")? as u32),
        "algorithm" => *algorithm = Some(v.one_of(&Algorithm::NAMES)?),
        _ => return Ok(false),
    }
    Ok(true)
}

/// A string kept in memory that is wiped on drop.
pub(crate) fn secret_text(v: &Value) -> Result<Zeroizing<String>, Bad> {
    Ok(Zeroizing::new(v.str()?.to_string()))
}

pub(crate) fn string(v: &Value) -> Result<String, Bad> {
    v.str().map(str::to_string)
}

impl SecretFile {
    /// The file as written, its values not yet checked.
    pub fn from_toml(text: &str) -> Result<SecretFile, SecretError> {
        let parsed = Doc::parse(text).and_then(|doc| SecretFile::read(&doc.root()));
        parsed.map_err(|bad| {
            // Only the line: the message may quote a value, and this one
            // may be the secret.
            let (line, _) = bad.into_line(text);
            SecretError::Bad(format!(
                "not a valid secret file (TOML error at line {})",
                line.map_or("?".into(), |l| l.to_string())
            ))
        })
    }

    /// Reads the file's keys, refusing any other.
    fn read(t: &Table) -> Result<SecretFile, Bad> {
        const KEYS: &str = "\
            secret, method, email, phone, digits, period, algorithm, recovery_codes, \
            created, authenticator";
        let mut f = SecretFile::default();
        t.each(KEYS, |key, v| {
            match key {
                "secret" => f.secret = Some(secret_text(v)?),
                "method" => {
                    f.method = v.one_of(&[
                        ("totp", Method::Totp),
                        ("email", Method::Email),
                        ("sms", Method::Sms),
                    ])?
                }
                "email" => f.email = Some(string(v)?),
                "phone" => f.phone = Some(string(v)?),
                "recovery_codes" => f.recovery_codes = v.array(string)?,
                "created" => f.created = Some(string(v)?),
                "authenticator" => {
                    f.authenticators = v.array(|e| devices::Entry::read(&e.table()?))?
                }
                _ => return read_param(key, v, &mut f.digits, &mut f.period, &mut f.algorithm),
            }
            Ok(true)
        })?;
        Ok(f)
    }

    /// Validates and decodes; `defaults` are the config's code parameters.
    pub fn into_user_secret(self, defaults: &TotpParams) -> Result<UserSecret, SecretError> {
        let email = self
            .email
            .as_deref()
            .map(EmailAddress::parse)
            .transpose()
            .map_err(|e| SecretError::Bad(format!("email: {e}")))?;
        let phone = self
            .phone
            .as_deref()
            .map(PhoneNumber::parse)
            .transpose()
            .map_err(|e| SecretError::Bad(format!("phone: {e}")))?;
        if self.method == Method::Sms && phone.is_none() {
            return Err(SecretError::Bad(
                "phone is missing (required with method = \"sms\")".into(),
            ));
        }
        let devices = match &self.secret {
            _ if !self.authenticators.is_empty() => devices::decode_list(&self, defaults)?,
            Some(text) => vec![devices::decode(
                DeviceName::default_name(),
                text,
                self.digits,
                self.period,
                self.algorithm,
                self.created.clone(),
                defaults,
            )?],
            None if self.method == Method::Totp => {
                return Err(SecretError::Bad(
                    "secret is missing (required with method = \"totp\")".into(),
                ));
            }
            None => Vec::new(),
        };
        let (key, params) = match devices.first() {
            Some(d) => (d.key.clone(), d.params),
            None => (Zeroizing::new(Vec::new()), *defaults),
        };
        Ok(UserSecret {
            key,
            params,
            // An email or SMS user's secret keys their sent codes; it is
            // not an app whose codes count.
            devices: if self.method == Method::Totp {
                devices
            } else {
                Vec::new()
            },
            method: self.method,
            email,
            phone,
            file: self,
        })
    }

    pub fn to_toml(&self) -> Zeroizing<String> {
        // Serializing a struct of strings and integers cannot fail.
        Zeroizing::new(toml::to_string(self).unwrap_or_default())
    }
}

/// Writes `<secret_dir>/<user>` atomically and durably, root-owned 0600:
/// a reader sees the old file or the new one, never part of one. With
/// `replace` false an existing file is kept and the error is `AlreadyExists`.
///
/// Writers of an existing user's file (the module consuming a recovery code,
/// the CLI) hold that user's state lock, so that none overwrites another's
/// change with a stale copy.
/// Returns what it wrote.
pub fn store(
    secret_dir: &Path,
    user: &UserName,
    file: &SecretFile,
    replace: bool,
) -> io::Result<Held> {
    let path = path_for(secret_dir, user);
    let text = file.to_toml();
    // Every enrollment marks the directory as the real one.
    mark_dir(secret_dir)?;
    if replace {
        fsutil::replace_complete(secret_dir, &path, text.as_bytes())?;
    } else {
        fsutil::create_complete(secret_dir, &path, text.as_bytes())?;
    }
    Ok(Held::Text(text))
}

/// The empty file that says "this is the real secret_dir" (INTERFACE.md,
/// Files). Made by the package and by every enrollment. A directory without
/// it is treated as missing: an empty volume mounted over it, or the mount
/// point of one that failed to mount, must not read as "nobody is enrolled".
pub const MARKER: &str = ".twostep-secret-dir";

/// Whether `secret_dir` carries [`MARKER`]: a regular file, owned by root.
/// `Err` says what is wrong, for the log and `twostep check`.
pub fn check_marker(secret_dir: &Path) -> Result<(), String> {
    let path = secret_dir.join(MARKER);
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.file_type().is_file() && meta.uid() == fsutil::expected_owner() => Ok(()),
        Ok(_) => Err(format!(
            "{} is not a regular file owned by root",
            path.display()
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(format!(
            "secret_dir {} has no {MARKER} marker: not mounted? (`twostep enroll` or \
             `touch {}` as root once it is the right directory)",
            secret_dir.display(),
            path.display()
        )),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Makes [`MARKER`] in `secret_dir` if it is not there (every enrollment
/// does), durably.
pub fn mark_dir(secret_dir: &Path) -> io::Result<()> {
    let path = secret_dir.join(MARKER);
    match fsutil::create_complete(secret_dir, &path, b"") {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

/// The host's key for the hashes of codes sent to users whose secret file
/// has no `secret` (the contract allows it for `method = "email"` and
/// `"sms"`): 32 random bytes, root-owned, mode 0600, in `secret_dir` beside
/// the secret files (a name no user can have), made on first need. With a
/// shared store, distribute it with the secret files: a code sent on one
/// host is then good on another.
pub const CODE_KEY: &str = ".twostep-code-key";
const CODE_KEY_BYTES: usize = 32;

/// The key a sent code's hash is made with: the user's own `secret`, else
/// this host's [`CODE_KEY`]. Never empty: an unkeyed hash of a six-digit
/// code gives the code back to anyone who reads the state (a backup, a
/// store dump) after a million hashes, a fraction of a second.
pub fn code_key(secret_dir: &Path, secret: &UserSecret) -> Result<Zeroizing<Vec<u8>>, String> {
    if !secret.key.is_empty() {
        return Ok(secret.key.clone());
    }
    let path = secret_dir.join(CODE_KEY);
    let shown = path.display();
    for _ in 0..2 {
        match read_code_key(&path) {
            Ok(key) => return Ok(key),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("{shown}: {e}")),
        }
        let mut key = Zeroizing::new(vec![0u8; CODE_KEY_BYTES]);
        getrandom::fill(&mut key).map_err(|e| format!("{shown}: no randomness: {e}"))?;
        // Linked into place whole, never over one that a parallel login
        // made first: then that one is read.
        match fsutil::with_file_size_limit_lifted(|| {
            fsutil::create_complete(secret_dir, &path, &key)
        }) {
            Ok(()) => return Ok(key),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("{shown}: cannot create it: {e}")),
        }
    }
    Err(format!("{shown}: keeps changing"))
}

fn read_code_key(path: &Path) -> io::Result<Zeroizing<Vec<u8>>> {
    use std::io::Read;
    let mut file = fsutil::open_nofollow(path, false)?;
    let meta = file.metadata()?;
    fsutil::check_private_file(&meta, fsutil::expected_owner()).map_err(io::Error::other)?;
    if meta.len() != CODE_KEY_BYTES as u64 {
        return Err(io::Error::other(format!(
            "is {} bytes, not {CODE_KEY_BYTES}",
            meta.len()
        )));
    }
    let mut key = Zeroizing::new(vec![0u8; CODE_KEY_BYTES]);
    file.read_exact(&mut key)?;
    Ok(key)
}

/// No file at a user's path. Only when `secret_dir` itself is there does
/// that mean "not enrolled": without the directory (an unmounted file
/// system, a typo in the config) every user would look unenrolled, and
/// `unenrolled = "allow"` would let everyone in without a code.
fn missing(secret_dir: &Path) -> SecretError {
    match std::fs::metadata(secret_dir) {
        Ok(meta) if meta.is_dir() => SecretError::Missing,
        Ok(_) => SecretError::Io(io::Error::other(format!(
            "secret_dir {} is not a directory",
            secret_dir.display()
        ))),
        Err(e) => SecretError::Io(io::Error::new(
            e.kind(),
            format!("secret_dir {}: {e}", secret_dir.display()),
        )),
    }
}

/// Reads and checks `<secret_dir>/<user>`.
pub fn load(
    secret_dir: &Path,
    user: &UserName,
    defaults: &TotpParams,
) -> Result<UserSecret, SecretError> {
    load_versioned(secret_dir, user, defaults).map(|(secret, _)| secret)
}

/// Which file, in which state, a secret was read from: any change to the file
/// (a write, a chmod or chown, a replacement) changes its inode or ctime. And
/// what it held, exactly ([`Held`]).
pub struct Version {
    stat: Stat,
    held: Held,
}

/// What one `lstat` tells of a file, for [`unchanged`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    dev: u64,
    ino: u64,
    size: u64,
    ctime: i64,
    ctime_nsec: i64,
}

impl Stat {
    fn of(meta: &std::fs::Metadata) -> Stat {
        Stat {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            ctime: meta.ctime(),
            ctime_nsec: meta.ctime_nsec(),
        }
    }
}

impl Version {
    /// The bytes the secret was read from.
    pub fn held(self) -> Held {
        self.held
    }
}

/// What a user's secret file held: its text, or that there was none. Kept
/// (and wiped when dropped) rather than digested at once: its
/// [`Fingerprint`] is worked out only when asked for, by twostep-self, so
/// that a login pays nothing for it.
pub enum Held {
    Absent,
    Text(Zeroizing<String>),
}

impl Held {
    pub fn fingerprint(&self) -> Fingerprint {
        match self {
            Held::Absent => Fingerprint::Absent,
            Held::Text(text) => Fingerprint::of(text.as_bytes()),
        }
    }
}

/// What a user's secret file held, exactly: a digest of its bytes
/// (BLAKE2b-256), or that there was none. Unlike [`Version`]'s `lstat`, it
/// cannot be fooled by a file replaced within the same clock tick by one of
/// the same size that got a reused inode number. twostep-self writes a
/// change only over the file its proof was judged against (`cli::proven`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fingerprint {
    /// No file: not enrolled.
    Absent,
    Digest([u8; 32]),
}

impl Fingerprint {
    fn of(bytes: &[u8]) -> Fingerprint {
        Fingerprint::Digest(crate::files::state::checksum(bytes))
    }
}

/// Whether `<secret_dir>/<user>` is still exactly the file `version` was read
/// from: one `lstat` instead of reading and parsing it again.
pub fn unchanged(secret_dir: &Path, user: &UserName, version: &Version) -> bool {
    std::fs::symlink_metadata(path_for(secret_dir, user))
        .is_ok_and(|meta| meta.file_type().is_file() && Stat::of(&meta) == version.stat)
}

/// [`load`], and the version of the file it read.
pub fn load_versioned(
    secret_dir: &Path,
    user: &UserName,
    defaults: &TotpParams,
) -> Result<(UserSecret, Version), SecretError> {
    let (text, meta) = read(secret_dir, user)?;
    let secret = parse(&text, defaults)?;
    let version = Version {
        stat: Stat::of(&meta),
        held: Held::Text(text),
    };
    Ok((secret, version))
}

/// The [`Fingerprint`] of `<secret_dir>/<user>` as it is now, read as
/// [`load`] reads it (a file that [`load`] would refuse is an error).
pub fn fingerprint(secret_dir: &Path, user: &UserName) -> Result<Fingerprint, SecretError> {
    match read(secret_dir, user) {
        Ok((text, _)) => Ok(Fingerprint::of(text.as_bytes())),
        Err(SecretError::Missing) => Ok(Fingerprint::Absent),
        Err(e) => Err(e),
    }
}

/// The text of `<secret_dir>/<user>`, opened without following links, its
/// owner, mode and size checked on the descriptor.
fn read(
    secret_dir: &Path,
    user: &UserName,
) -> Result<(Zeroizing<String>, std::fs::Metadata), SecretError> {
    let path = path_for(secret_dir, user);
    let file = match fsutil::open_nofollow(&path, false) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(missing(secret_dir)),
        Err(e) => {
            return Err(fsutil::classify_open_error(
                e,
                SecretError::Bad,
                SecretError::Io,
            ));
        }
    };
    let meta = file.metadata().map_err(SecretError::Io)?;
    fsutil::check_private_file(&meta, fsutil::expected_owner()).map_err(SecretError::Bad)?;
    if meta.size() > MAX_FILE_BYTES {
        return Err(SecretError::Bad(format!(
            "{} bytes is too large for a secret file",
            meta.size()
        )));
    }
    let text = Zeroizing::new(
        fsutil::read_text(&file, meta.size(), MAX_FILE_BYTES).map_err(|e| match e.kind() {
            io::ErrorKind::InvalidData => SecretError::Bad("is not UTF-8 text".into()),
            io::ErrorKind::FileTooLarge => SecretError::Bad("grew while being read".into()),
            _ => SecretError::Io(e),
        })?,
    );
    Ok((text, meta))
}

/// Parses and validates the text of a secret file.
pub fn parse(text: &str, defaults: &TotpParams) -> Result<UserSecret, SecretError> {
    SecretFile::from_toml(text)?.into_user_secret(defaults)
}

#[cfg(test)]
mod tests;
