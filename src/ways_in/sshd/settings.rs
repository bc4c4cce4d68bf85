//! What `sshd -T` prints, read: its effective settings for one connection
//! (lowercase `keyword value` lines), and, from the debug log of the first
//! run (`-ddd`), the `Match` lines of its configuration as sshd read them,
//! included files and all. Pure: the text in, typed values or a reason out.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt;

/// An sshd authentication method, as `AuthenticationMethods` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    Publickey,
    Hostbased,
    GssapiWithMic,
    Password,
    KeyboardInteractive,
}

impl Method {
    pub const ALL: [Method; 5] = [
        Method::Publickey,
        Method::Hostbased,
        Method::GssapiWithMic,
        Method::Password,
        Method::KeyboardInteractive,
    ];

    /// The name sshd and `audit.accept` use.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Publickey => "publickey",
            Method::Hostbased => "hostbased",
            Method::GssapiWithMic => "gssapi-with-mic",
            Method::Password => "password",
            Method::KeyboardInteractive => "keyboard-interactive",
        }
    }

    /// The setting that turns it on or off.
    pub fn setting(self) -> &'static str {
        match self {
            Method::Publickey => "PubkeyAuthentication",
            Method::Hostbased => "HostbasedAuthentication",
            Method::GssapiWithMic => "GSSAPIAuthentication",
            Method::Password => "PasswordAuthentication",
            Method::KeyboardInteractive => "KbdInteractiveAuthentication",
        }
    }

    /// A method of an `AuthenticationMethods` list; a submethod
    /// (`keyboard-interactive:pam`) is its method's.
    fn parse(word: &str) -> Option<Method> {
        let base = word.split_once(':').map_or(word, |(base, _)| base);
        Method::ALL.into_iter().find(|m| m.as_str() == base)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `AuthenticationMethods`: `any`, or lists of methods that must all
/// succeed, any one list being enough.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Methods {
    Any,
    Lists(Vec<Vec<Method>>),
}

/// `PermitRootLogin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootLogin {
    Yes,
    /// `prohibit-password` (`without-password`): publickey, hostbased and
    /// gssapi-with-mic only.
    ProhibitPassword,
    /// Only a key whose authorized_keys line forces a command.
    ForcedCommandsOnly,
    No,
}

/// The settings that decide which methods let a user in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    /// `None`: this sshd was built without PAM (it does not print UsePAM).
    pub use_pam: Option<bool>,
    pub methods: Methods,
    pub pubkey: bool,
    /// Keys can be found at all: `AuthorizedKeysFile`,
    /// `AuthorizedKeysCommand` or `TrustedUserCAKeys` is not `none`.
    pub key_source: bool,
    pub hostbased: bool,
    pub gssapi: bool,
    pub password: bool,
    pub kbd_interactive: bool,
    /// `KerberosAuthentication`: the password method asks the KDC, not PAM.
    pub kerberos: bool,
    pub root_login: RootLogin,
}

/// `sshd -T`'s output: each keyword with its values, in order (HostKey,
/// Port and a few more repeat).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dump {
    values: BTreeMap<String, Vec<String>>,
}

impl Dump {
    pub fn parse(text: &str) -> Dump {
        let mut values: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (key, value) = line
                .split_once([' ', '\t'])
                .map_or((line, ""), |(k, v)| (k, v.trim()));
            values
                .entry(key.to_ascii_lowercase())
                .or_default()
                .push(value.to_string());
        }
        Dump { values }
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key)?.first().map(String::as_str)
    }

    /// Every value of `key`.
    pub fn all(&self, key: &str) -> &[String] {
        self.values.get(key).map_or(&[], Vec::as_slice)
    }

    /// The settings that matter here, each checked.
    pub fn effective(&self) -> Result<Effective, String> {
        let required = |key: &str| {
            self.get(key)
                .ok_or_else(|| format!("sshd -T printed no \"{key}\""))
        };
        let flag = |key: &str, value: &str| match value {
            "yes" => Ok(true),
            "no" => Ok(false),
            other => Err(format!("sshd -T printed \"{key} {other}\", not yes or no")),
        };
        let required_flag = |key: &str| required(key).and_then(|v| flag(key, v));
        // Absent when this sshd was built without the feature.
        let optional_flag = |key: &str| self.get(key).map_or(Ok(false), |v| flag(key, v));
        let kbd_interactive = match self.get("kbdinteractiveauthentication") {
            Some(v) => flag("kbdinteractiveauthentication", v)?,
            // OpenSSH before 8.7.
            None => required_flag("challengeresponseauthentication")?,
        };
        let use_pam = match self.get("usepam") {
            Some(v) => Some(flag("usepam", v)?),
            None => None,
        };
        let not_none = |key: &str| self.get(key).is_some_and(|v| v != "none");
        Ok(Effective {
            use_pam,
            methods: parse_methods(required("authenticationmethods")?)?,
            pubkey: required_flag("pubkeyauthentication")?,
            key_source: not_none("authorizedkeysfile")
                || not_none("authorizedkeyscommand")
                || not_none("trustedusercakeys"),
            hostbased: required_flag("hostbasedauthentication")?,
            gssapi: optional_flag("gssapiauthentication")?,
            password: required_flag("passwordauthentication")?,
            kbd_interactive,
            kerberos: optional_flag("kerberosauthentication")?,
            root_login: parse_root_login(required("permitrootlogin")?)?,
        })
    }
}

fn parse_methods(value: &str) -> Result<Methods, String> {
    if value == "any" {
        return Ok(Methods::Any);
    }
    let mut lists = Vec::new();
    for list in value.split_whitespace() {
        let mut methods = Vec::new();
        for word in list.split(',') {
            let method = Method::parse(word).ok_or_else(|| {
                format!(
                    "sshd -T printed the method \"{word}\" in AuthenticationMethods, which \
                     twostep does not know: it cannot tell whether it asks for the code"
                )
            })?;
            methods.push(method);
        }
        lists.push(methods);
    }
    if lists.is_empty() {
        return Err("sshd -T printed an empty AuthenticationMethods".into());
    }
    Ok(Methods::Lists(lists))
}

fn parse_root_login(value: &str) -> Result<RootLogin, String> {
    match value {
        "yes" => Ok(RootLogin::Yes),
        "prohibit-password" | "without-password" => Ok(RootLogin::ProhibitPassword),
        "forced-commands-only" => Ok(RootLogin::ForcedCommandsOnly),
        "no" => Ok(RootLogin::No),
        other => Err(format!(
            "sshd -T printed \"permitrootlogin {other}\", which twostep does not know"
        )),
    }
}

/// One criterion of a `Match` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Criterion {
    All,
    User,
    Group,
    Host,
    Address,
    LocalAddress,
    LocalPort,
    RDomain,
}

impl Criterion {
    fn parse(word: &str) -> Option<Criterion> {
        Some(match word.to_ascii_lowercase().as_str() {
            "all" => Criterion::All,
            "user" => Criterion::User,
            "group" => Criterion::Group,
            "host" => Criterion::Host,
            "address" => Criterion::Address,
            "localaddress" => Criterion::LocalAddress,
            "localport" => Criterion::LocalPort,
            "rdomain" => Criterion::RDomain,
            _ => return None,
        })
    }
}

/// A `Match` line: its criteria and their pattern lists, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchLine {
    pub text: String,
    pub criteria: Vec<(Criterion, String)>,
}

/// What sshd logs as it reads each `Match` line of its configuration
/// (`debug3: checking syntax for 'Match User deploy'`), in every file it
/// included. Each line once, in order.
const SYNTAX_MARK: &str = "checking syntax for 'Match ";

/// The `Match` lines that sshd's debug log shows.
pub fn match_lines(log: &str) -> Vec<MatchLine> {
    let mut out: Vec<MatchLine> = Vec::new();
    for line in log.lines() {
        let Some(at) = line.find(SYNTAX_MARK) else {
            continue;
        };
        let rest = &line[at + SYNTAX_MARK.len()..];
        let text = rest.strip_suffix('\'').unwrap_or(rest).trim();
        if out.iter().any(|m| m.text == text) {
            continue;
        }
        out.push(MatchLine {
            text: text.to_string(),
            criteria: criteria(text),
        });
    }
    out
}

/// `User deploy Address 10.0.0.0/8` → (User, "deploy"), (Address,
/// "10.0.0.0/8"). Words are split as sshd splits them (white space, one
/// `=`, double quotes); a criterion sshd does not know was refused by sshd
/// already and is passed over here.
fn criteria(text: &str) -> Vec<(Criterion, String)> {
    let mut words = words(text).into_iter();
    let mut out = Vec::new();
    while let Some(word) = words.next() {
        match Criterion::parse(&word) {
            Some(Criterion::All) => out.push((Criterion::All, String::new())),
            Some(c) => {
                if let Some(value) = words.next() {
                    out.push((c, value));
                }
            }
            None => {}
        }
    }
    out
}

fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut in_word = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            ' ' | '\t' | '=' if !quoted => {
                if in_word {
                    out.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            _ => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(current);
    }
    out
}

/// The files sshd says it included (`debug2: FILE line N: including PATH`),
/// and the patterns of its `Include` lines (`... new include PATTERN`).
pub fn includes(log: &str) -> (Vec<String>, Vec<String>) {
    let mut files = Vec::new();
    let mut patterns = Vec::new();
    for line in log.lines() {
        if let Some((_, path)) = line.split_once(": including ") {
            files.push(path.trim().to_string());
        } else if let Some((_, pattern)) = line.split_once(": new include ") {
            patterns.push(pattern.trim().to_string());
        }
    }
    (files, patterns)
}

/// Whether a configuration file's text has a `Match` line (the first word,
/// any case): a check that [`match_lines`] saw what it should have.
pub fn mentions_match(text: &str) -> bool {
    text.lines().any(|line| {
        words(line.trim_start())
            .first()
            .is_some_and(|w| w.eq_ignore_ascii_case("match"))
    })
}

#[cfg(test)]
#[path = "settings_tests.rs"]
mod tests;
