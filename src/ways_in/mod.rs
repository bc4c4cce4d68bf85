//! `twostep audit`: every way into this machine, and whether it asks for
//! the code. What only the `twostep` command uses: nothing here is reached
//! from the module's hooks.
//!
//! - [`pam`]: each PAM service's `auth` stack, resolved and followed as
//!   libpam follows it, every path through it with what each module can
//!   return: a path that ends in success without a successful code step of
//!   pam_twostep is a way in without the code;
//! - [`sshd`]: sshd's effective settings for each user, asked of sshd
//!   (`sshd -T -C ...`, so that `Match` blocks apply): the methods that log
//!   a user in without the PAM auth stack;
//! - [`accept`]: `audit.accept`, the ways in a site means to allow.
//!
//! Both report [`Finding`]s; [`Report`] is what the command prints.
#![forbid(unsafe_code)]

pub mod accept;
pub mod pam;
pub mod sshd;
pub mod tree;

use std::fmt;
use std::path::PathBuf;

/// Who a way in lets through without the code.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Users {
    /// Everyone the service lets try.
    All,
    /// Only a caller whose real uid is 0 (`pam_rootok`).
    Root,
    /// Members of this group (`pam_succeed_if user ingroup NAME`).
    Group(String),
    /// This account (`pam_succeed_if user = NAME`, an sshd `Match User`).
    User(String),
}

impl Users {
    /// As the JSON's `users` says it: `all`, `root`, `group:NAME`, `NAME`.
    pub fn as_text(&self) -> String {
        match self {
            Users::All => "all".into(),
            Users::Root => "root".into(),
            Users::Group(g) => format!("group:{g}"),
            Users::User(u) => u.clone(),
        }
    }
}

/// Whether a PAM service's `auth` stack asks for the code, and how: what
/// sshd's keyboard-interactive and password methods go through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CodeAsked {
    /// Not of everyone: some path lets someone in without a successful code
    /// step (and without twostep's own policy or `audit.accept`).
    NotOfEveryone,
    /// Of everyone, at a prompt of its own (the canonical stack): one answer
    /// for every prompt (sshd's password method) cannot get past it.
    AtItsOwnPrompt,
    /// Of everyone, in the password's own answer: a `preauth single` line
    /// comes before every code step, which then judges the code typed after
    /// the password instead of prompting.
    WithThePassword,
}

impl CodeAsked {
    pub fn of_everyone(self) -> bool {
        self != CodeAsked::NotOfEveryone
    }
}

/// One way in that does not pass a successful pam_twostep code step (or a
/// pam_twostep line that does nothing where it is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The PAM service (`sshd`, `su`, `other`), or `sshd` for a setting.
    pub service: String,
    /// The file and line of the module that lets it through; `None` for an
    /// sshd setting.
    pub file: Option<PathBuf>,
    pub line: Option<u32>,
    /// The sshd setting that opens it (`AuthenticationMethods`, `UsePAM`).
    pub setting: Option<String>,
    pub users: Users,
    /// One sentence: what lets them in, and the fix.
    pub why: String,
    /// What `audit.accept` matches it by: `pam:SERVICE:MODULE`
    /// (`pam:su:pam_rootok`) or `sshd:METHOD:USER` (`sshd:publickey:deploy`).
    pub key: String,
    /// Listed in `audit.accept`, or a skip by twostep's own policy
    /// (`exempt_groups`, `trusted_networks`, `unenrolled = "allow"`): shown,
    /// but it does not change the exit status.
    pub accepted: bool,
}

/// Everything `twostep audit` found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
    /// Problems in the configuration (`FILE:LINE: what`): the audit went
    /// on past them, and the command exits 2. Not in the JSON (stderr).
    pub errors: Vec<AuditError>,
    /// What is not a way in but is worth knowing (sshd missing, which sshd
    /// was asked, the password method's one answer): printed with the
    /// text, on stderr with `--json` (not part of the contract's JSON).
    pub notes: Vec<String>,
}

impl Report {
    /// Every way in asks for the code, or is accepted.
    pub fn ok(&self) -> bool {
        self.findings.iter().all(|f| f.accepted)
    }

    /// The contract's JSON: `{"ok": bool, "findings": [{"service", "file",
    /// "line", "setting", "users", "why", "accepted"}]}`.
    pub fn to_json(&self) -> serde_json::Value {
        let findings: Vec<serde_json::Value> = self
            .findings
            .iter()
            .map(|f| {
                serde_json::json!({
                    "service": f.service,
                    "file": f.file.as_ref().map(|p| p.display().to_string()),
                    "line": f.line,
                    "setting": f.setting,
                    "users": f.users.as_text(),
                    "why": f.why,
                    "accepted": f.accepted,
                })
            })
            .collect();
        serde_json::json!({ "ok": self.ok(), "findings": findings })
    }
}

/// Why the audit could not be made: a file that cannot be read or parsed
/// (exit 2), never a crash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditError(pub String);

impl fmt::Display for AuditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AuditError {}
