//! Several authenticators per user (INTERFACE.md, "Several authenticators"):
//! a secret file may hold up to [`MAX_DEVICES`] named `[[authenticator]]`
//! entries instead of the top-level `secret`, which reads as one named
//! [`DEFAULT_DEVICE`].
//!
//! A file is changed only by whole-file edits made here ([`add`],
//! [`remove`]): a file of the old form that gains a second authenticator
//! becomes a list whose first entry is the old secret, named `default`, with
//! its own digits, period, algorithm and creation time. A list is never
//! written with a top-level `secret` beside it, so a version of twostep that
//! predates lists refuses the file (it knows no `authenticator` key) rather
//! than reading one authenticator of several.
#![forbid(unsafe_code)]

use super::{SecretError, SecretFile};
use crate::base::tomlread::{Bad, Table};
use crate::config::{Algorithm, TotpParams};
use serde::Serialize;
use zeroize::Zeroizing;

/// Authenticators per user, at most: the cost of judging an answer is that
/// of this many, whatever the user has (`crate::rules::totp::matching_steps`).
pub const MAX_DEVICES: usize = 8;

/// The name of the one authenticator of a file with a top-level `secret`.
pub const DEFAULT_DEVICE: &str = "default";

/// The longest name, in bytes.
pub const MAX_NAME_BYTES: usize = 32;

/// A validated authenticator name: 1..=32 bytes of `[A-Za-z0-9._-]`. It is
/// printed in records (`device=`), mail and the CLI's tables, so nothing
/// else gets in: no spaces, quotes, `=`, control characters or non-ASCII.
#[derive(Clone, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
pub struct DeviceName(String);

impl DeviceName {
    /// The name, or one line naming the rule it breaks (for the CLI and the
    /// log; the name itself is shown escaped by the caller).
    pub fn parse(text: &str) -> Result<DeviceName, String> {
        if text.is_empty() {
            return Err("a device name must not be empty".into());
        }
        if text.len() > MAX_NAME_BYTES {
            return Err(format!(
                "a device name is at most {MAX_NAME_BYTES} bytes (this one is {})",
                text.len()
            ));
        }
        if let Some(bad) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            // A control character is named by its code point: quoted, the
            // terminal would act on it or the CLI escape it twice.
            let shown = if bad.is_control() {
                format!("U+{:04X}", u32::from(bad))
            } else {
                format!("{bad:?}")
            };
            return Err(format!(
                "a device name is letters, digits, '.', '_' and '-' only (not {shown})"
            ));
        }
        Ok(DeviceName(text.to_string()))
    }

    pub fn default_name() -> DeviceName {
        DeviceName(DEFAULT_DEVICE.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_default(&self) -> bool {
        self.0 == DEFAULT_DEVICE
    }
}

impl std::fmt::Display for DeviceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One `[[authenticator]]` as stored. `secret` is wiped when dropped.
#[derive(Serialize, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub secret: Zeroizing<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digits: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<Algorithm>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
}

impl Entry {
    /// One `[[authenticator]]` table, refusing unknown keys.
    pub(super) fn read(t: &Table) -> Result<Entry, Bad> {
        const KEYS: &str = "name, secret, digits, period, algorithm, created";
        let (mut name, mut secret, mut created) = (None, None, None);
        let (mut digits, mut period, mut algorithm) = (None, None, None);
        t.each(KEYS, |key, v| {
            match key {
                "name" => name = Some(super::string(v)?),
                "secret" => secret = Some(super::secret_text(v)?),
                "created" => created = Some(super::string(v)?),
                _ => return super::read_param(key, v, &mut digits, &mut period, &mut algorithm),
            }
            Ok(true)
        })?;
        let (Some(name), Some(secret)) = (name, secret) else {
            return Err(t.bad("an authenticator needs a name and a secret"));
        };
        Ok(Entry {
            name,
            secret,
            digits,
            period,
            algorithm,
            created,
        })
    }
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("name", &self.name)
            .field("secret", &"[redacted]")
            .field("digits", &self.digits)
            .field("period", &self.period)
            .field("algorithm", &self.algorithm)
            .field("created", &self.created)
            .finish()
    }
}

/// One authenticator, decoded and validated.
pub struct Device {
    pub name: DeviceName,
    pub key: Zeroizing<Vec<u8>>,
    pub params: TotpParams,
    pub created: Option<String>,
}

/// Decodes one authenticator's secret and parameters, `defaults` being the
/// config's (the same rules as a top-level secret's).
pub(super) fn decode(
    name: DeviceName,
    secret: &str,
    digits: Option<u8>,
    period: Option<u32>,
    algorithm: Option<Algorithm>,
    created: Option<String>,
    defaults: &TotpParams,
) -> Result<Device, SecretError> {
    let named = |why: String| {
        if name.is_default() {
            SecretError::Bad(why)
        } else {
            SecretError::Bad(format!("authenticator {name}: {why}"))
        }
    };
    let key = super::decode_base32(secret).ok_or_else(|| named("secret is not base32".into()))?;
    if key.len() < super::MIN_SECRET_BYTES {
        return Err(named(format!(
            "secret is {} bits; at least 128 are required",
            key.len() * 8
        )));
    }
    if key.len() > super::MAX_SECRET_BYTES {
        return Err(named("secret is longer than 1024 bits".into()));
    }
    let mut params = *defaults;
    if let Some(d) = digits {
        if !(6..=8).contains(&d) {
            return Err(named("digits must be 6, 7 or 8".into()));
        }
        params.digits = d;
    }
    if let Some(p) = period {
        if !(15..=300).contains(&p) {
            return Err(named("period must be 15 to 300".into()));
        }
        params.period = p;
    }
    if let Some(a) = algorithm {
        params.algorithm = a;
    }
    Ok(Device {
        name,
        key,
        params,
        created,
    })
}

/// Every authenticator of a file's `[[authenticator]]` list, checked: at
/// most [`MAX_DEVICES`], valid and distinct names, and none of the
/// top-level settings that a list holds per entry.
pub(super) fn decode_list(
    file: &SecretFile,
    defaults: &TotpParams,
) -> Result<Vec<Device>, SecretError> {
    let list = &file.authenticators;
    if file.secret.is_some() {
        return Err(SecretError::Bad(
            "has both a top-level secret and [[authenticator]] entries".into(),
        ));
    }
    if file.digits.is_some() || file.period.is_some() || file.algorithm.is_some() {
        return Err(SecretError::Bad(
            "digits, period and algorithm go in each [[authenticator]], not at the top".into(),
        ));
    }
    if file.method != super::Method::Totp {
        return Err(SecretError::Bad(format!(
            "[[authenticator]] entries are app codes; method = \"{}\" takes none",
            file.method.as_str()
        )));
    }
    if list.len() > MAX_DEVICES {
        return Err(SecretError::Bad(format!(
            "{} authenticators; at most {MAX_DEVICES} are allowed",
            list.len()
        )));
    }
    let mut devices: Vec<Device> = Vec::with_capacity(list.len());
    for entry in list {
        let name = DeviceName::parse(&entry.name)
            .map_err(|why| SecretError::Bad(format!("authenticator name: {why}")))?;
        if devices.iter().any(|d| d.name == name) {
            return Err(SecretError::Bad(format!(
                "authenticator {name} appears twice"
            )));
        }
        devices.push(decode(
            name,
            &entry.secret,
            entry.digits,
            entry.period,
            entry.algorithm,
            entry.created.clone(),
            defaults,
        )?);
    }
    Ok(devices)
}

/// The authenticators a file holds, by name and creation time, without
/// decoding secrets: for `twostep devices` and `twostep-self devices`.
pub fn list(file: &SecretFile) -> Vec<(String, Option<String>)> {
    if file.authenticators.is_empty() {
        return match file.secret {
            Some(_) => vec![(DEFAULT_DEVICE.to_string(), file.created.clone())],
            None => Vec::new(),
        };
    }
    file.authenticators
        .iter()
        .map(|e| (e.name.clone(), e.created.clone()))
        .collect()
}

/// Why an authenticator cannot be added or removed: one line naming the
/// rule; nothing was changed.
#[derive(Debug, PartialEq, Eq)]
pub enum EditError {
    /// The file already has [`MAX_DEVICES`].
    Full,
    /// The name is taken.
    Taken(DeviceName),
    /// No authenticator of that name.
    NoSuch(DeviceName),
    /// The user's codes come by email or SMS: there is no app to add to.
    NotApp(&'static str),
}

impl std::fmt::Display for EditError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EditError::Full => write!(
                f,
                "already {MAX_DEVICES} authenticators, the most allowed; remove one first"
            ),
            EditError::Taken(name) => write!(f, "an authenticator named {name} exists already"),
            EditError::NoSuch(name) => write!(f, "no authenticator named {name}"),
            EditError::NotApp(method) => write!(
                f,
                "codes reach this user by {method}, not from an app: enroll with --method totp first"
            ),
        }
    }
}

impl std::error::Error for EditError {}

/// `file` with `entry` added. A file of the old form becomes a list whose
/// first entry is its secret, named [`DEFAULT_DEVICE`].
pub fn add(file: &SecretFile, entry: Entry) -> Result<SecretFile, EditError> {
    if file.method != super::Method::Totp {
        return Err(EditError::NotApp(file.method.as_str()));
    }
    let mut next = as_list(file);
    let name = DeviceName(entry.name.clone());
    if next.authenticators.iter().any(|e| e.name == entry.name) {
        return Err(EditError::Taken(name));
    }
    if next.authenticators.len() >= MAX_DEVICES {
        return Err(EditError::Full);
    }
    next.authenticators.push(entry);
    Ok(next)
}

/// Whether [`add`] would take an authenticator named `name` (the name
/// free, fewer than eight, an app user): the commands refuse before they
/// ask for anything.
pub fn can_add(file: &SecretFile, name: &DeviceName) -> Result<(), EditError> {
    let probe = Entry {
        name: name.to_string(),
        secret: Zeroizing::new(String::new()),
        digits: None,
        period: None,
        algorithm: None,
        created: None,
    };
    add(file, probe).map(|_| ())
}

/// `file` without the authenticator `name`; `None` if it was the last (the
/// caller removes the enrollment: a `reset`).
pub fn remove(file: &SecretFile, name: &DeviceName) -> Result<Option<SecretFile>, EditError> {
    let mut next = as_list(file);
    let before = next.authenticators.len();
    next.authenticators.retain(|e| e.name != name.as_str());
    if next.authenticators.len() == before {
        return Err(EditError::NoSuch(name.clone()));
    }
    if next.authenticators.is_empty() {
        return Ok(None);
    }
    Ok(Some(as_old_form_if_default_alone(next)))
}

/// A list whose one entry is `default` written back in the old form (a
/// top-level `secret`), which the versions before lists read: removing the
/// others undoes adding them, and a downgrade is possible again. Its step
/// is `default`'s in either form.
fn as_old_form_if_default_alone(mut file: SecretFile) -> SecretFile {
    if file.authenticators.len() != 1 || file.authenticators[0].name != DEFAULT_DEVICE {
        return file;
    }
    if let Some(e) = file.authenticators.pop() {
        file.secret = Some(e.secret.clone());
        file.digits = e.digits;
        file.period = e.period;
        file.algorithm = e.algorithm;
        file.created = e.created.clone();
    }
    file
}

/// The file in list form: unchanged if it is one already.
fn as_list(file: &SecretFile) -> SecretFile {
    let mut next = file.clone();
    if let Some(secret) = next.secret.take() {
        next.authenticators = vec![Entry {
            name: DEFAULT_DEVICE.to_string(),
            secret,
            digits: next.digits.take(),
            period: next.period.take(),
            algorithm: next.algorithm.take(),
            created: next.created.clone(),
        }];
    }
    next
}

#[cfg(test)]
mod tests {
    use super::super::{SecretError, SecretFile, parse};
    use super::*;

    const K1: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    const K2: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

    fn entry(name: &str, secret: &str) -> String {
        format!("[[authenticator]]\nname = \"{name}\"\nsecret = \"{secret}\"\n")
    }

    #[test]
    fn names() {
        // (name, Ok or words of the rule)
        let long = "a".repeat(33);
        let table: &[(&str, Result<(), &str>)] = &[
            ("phone", Ok(())),
            ("Work-phone_2.old", Ok(())),
            ("-x", Ok(())),
            (&long[..32], Ok(())),
            ("", Err("empty")),
            (&long, Err("at most 32 bytes")),
            ("my phone", Err("' '")),
            ("a/b", Err("'/'")),
            ("a\nb", Err("not U+000A")),
            ("a\u{1b}[1m", Err("not U+001B")),
            ("a\u{7f}", Err("not U+007F")),
            ("ph=one", Err("'='")),
            ("téléphone", Err("'é'")),
        ];
        for (name, want) in table {
            match (DeviceName::parse(name), want) {
                (Ok(n), Ok(())) => assert_eq!(n.as_str(), *name),
                (Err(why), Err(words)) => assert!(why.contains(words), "{name:?}: {why}"),
                (got, want) => panic!("{name:?}: got {got:?}, want {want:?}"),
            }
        }
        let thousand = "x".repeat(1000);
        assert!(DeviceName::parse(&thousand).is_err());
    }

    #[test]
    fn files_with_several_authenticators() {
        let d = TotpParams::default();
        let eight: String = (0..8).map(|i| entry(&format!("d{i}"), K1)).collect();
        let nine: String = (0..9).map(|i| entry(&format!("d{i}"), K1)).collect();
        // (file, Ok(names) or Err(words))
        let table: &[(String, Result<&[&str], &str>)] = &[
            (format!("secret = \"{K1}\"\n"), Ok(&["default"])),
            (
                format!("{}{}", entry("phone", K1), entry("tablet", K2)),
                Ok(&["phone", "tablet"]),
            ),
            (eight, Ok(&["d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7"])),
            (nine, Err("at most 8")),
            (
                format!("{}{}", entry("phone", K1), entry("phone", K2)),
                Err("phone appears twice"),
            ),
            (
                format!("secret = \"{K1}\"\n{}", entry("phone", K2)),
                Err("both a top-level secret"),
            ),
            (
                format!("digits = 8\n{}", entry("phone", K2)),
                Err("in each [[authenticator]]"),
            ),
            (
                format!("method = \"email\"\n{}", entry("phone", K2)),
                Err("takes none"),
            ),
            (entry("my phone", K1), Err("authenticator name")),
            (
                entry("phone", "GEZD"),
                Err("authenticator phone: secret is 16 bits"),
            ),
            (
                entry("phone", "0000"),
                Err("authenticator phone: secret is not base32"),
            ),
            (
                format!("{}digits = 9\n", entry("phone", K1)),
                Err("authenticator phone: digits"),
            ),
            (
                format!("{}extra = 1\n", entry("phone", K1)),
                Err("TOML error"),
            ),
        ];
        for (text, want) in table {
            match (parse(text, &d), want) {
                (Ok(s), Ok(names)) => {
                    let got: Vec<&str> = s.devices.iter().map(|d| d.name.as_str()).collect();
                    assert_eq!(&got, names, "{text}");
                    assert_eq!(s.key.as_slice(), s.devices[0].key.as_slice());
                }
                (Err(SecretError::Bad(why)), Err(words)) => {
                    assert!(why.contains(words), "{text}: {why}");
                    assert!(!why.contains(K1) && !why.contains(K2), "{why}");
                }
                (got, want) => panic!("{text}: got {:?}, want {want:?}", got.err()),
            }
        }
        // Per-authenticator parameters apply to that one only.
        let s = parse(
            &format!(
                "{}digits = 8\nperiod = 60\n{}",
                entry("a", K1),
                entry("b", K2)
            ),
            &d,
        )
        .unwrap();
        assert_eq!(
            (s.devices[0].params.digits, s.devices[0].params.period),
            (8, 60)
        );
        assert_eq!(s.devices[1].params, d);
    }

    fn new_entry(name: &str) -> Entry {
        Entry {
            name: name.into(),
            secret: Zeroizing::new(K2.into()),
            digits: None,
            period: None,
            algorithm: None,
            created: Some("2026-12-02T07:00:00Z".into()),
        }
    }

    #[test]
    fn adding_to_a_file_of_the_old_form_keeps_its_secret_as_default() {
        let d = TotpParams::default();
        let old = SecretFile::from_toml(&format!(
            "secret = \"{K1}\"\ndigits = 8\ncreated = \"2026-01-01T00:00:00Z\"\nrecovery_codes = [\"x\"]\n"
        ))
        .unwrap();
        let next = add(&old, new_entry("tablet")).unwrap();
        let text = next.to_toml();
        // Read back: two authenticators, the old one named default with
        // its own digits; the recovery codes kept.
        let back = parse(&text, &d).unwrap();
        let names: Vec<&str> = back.devices.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["default", "tablet"]);
        assert_eq!(back.devices[0].params.digits, 8);
        assert_eq!(back.devices[1].params.digits, 6);
        assert_eq!(back.file.recovery_codes, ["x"]);
        let top = text.split("[[").next().unwrap_or_default();
        assert!(!top.contains("secret"), "{}", *text);
        assert_eq!(
            list(&back.file),
            [
                ("default".into(), Some("2026-01-01T00:00:00Z".into())),
                ("tablet".into(), Some("2026-12-02T07:00:00Z".into()))
            ]
        );
        // (edit) -> error, nothing changed
        assert_eq!(
            add(&next, new_entry("tablet")).err(),
            Some(EditError::Taken(DeviceName::parse("tablet").unwrap()))
        );
        let mut full = next.clone();
        for i in 2..MAX_DEVICES {
            full = add(&full, new_entry(&format!("d{i}"))).unwrap();
        }
        assert_eq!(add(&full, new_entry("ninth")).err(), Some(EditError::Full));
        let gone = DeviceName::parse("nope").unwrap();
        assert_eq!(remove(&next, &gone).err(), Some(EditError::NoSuch(gone)));
        let email = SecretFile::from_toml("method = \"email\"\n").unwrap();
        assert_eq!(
            add(&email, new_entry("a")).err(),
            Some(EditError::NotApp("email"))
        );
        // Removing one keeps the other; removing the last is None.
        let one = remove(&next, &DeviceName::default_name()).unwrap().unwrap();
        assert_eq!(
            list(&one),
            [("tablet".into(), Some("2026-12-02T07:00:00Z".into()))]
        );
        assert!(
            remove(&one, &DeviceName::parse("tablet").unwrap())
                .unwrap()
                .is_none()
        );
        assert!(remove(&old, &DeviceName::default_name()).unwrap().is_none());
    }
}
