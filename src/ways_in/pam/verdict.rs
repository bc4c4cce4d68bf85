//! From the paths of one service's stack to findings: one per way in
//! (where it is, whom it lets in, why and the fix), and one per
//! pam_twostep line that does nothing where it is.
//!
//! The line a way in is reported at, in this order:
//! 1. the line whose `done` (`sufficient`...) or jump skipped the code step
//!    on that path;
//! 2. else a code step whose failure did not stop the path (`optional`,
//!    `[default=ignore]`): the login goes on with a wrong code;
//! 3. else (no code step on the path) the first module on the path whose
//!    success lets someone in (a password module, pam_permit, pam_rootok,
//!    pam_succeed_if...), else the line whose success made libpam's
//!    verdict positive.
//!
//! Of findings at the same line, one that lets anyone in hides narrower
//! ones. A skip by twostep's own policy is listed as accepted, at the code
//! step, naming the policy key.
#![forbid(unsafe_code)]

use super::modules::{Role, Skip, Step, name};
use super::parse::Action;
use super::resolve::{Handler, Kind, Stack};
use super::walk::{Through, Walked};
use super::{Finding, Users};
use std::path::PathBuf;

/// What the report needs to know of a stack's handlers.
pub struct Lines<'a> {
    pub service: &'a str,
    pub stack: &'a Stack,
    pub roles: &'a [Role],
    /// The policy skips, by the index in `Step::Policy`, with the handler
    /// of the code step that allows each.
    pub skips: &'a [(usize, Skip)],
}

/// A finding, and whether it is a way in (not a line that does nothing).
pub struct Found {
    pub finding: Finding,
    pub way_in: bool,
}

fn who(users: &Users) -> String {
    match users {
        Users::All => "anyone".into(),
        Users::Root => "root (a caller whose real uid is 0)".into(),
        Users::Group(g) => format!("members of group {g}"),
        Users::User(u) => format!("the account {u}"),
    }
}

fn module_of(h: &Handler) -> &str {
    match &h.kind {
        Kind::Module { path, .. } => name(path),
        Kind::MustFail => "a line that fails",
        Kind::Marker => "substack",
    }
}

fn shown(h: &Handler) -> String {
    match &h.kind {
        Kind::Module { path, args } if args.is_empty() => format!("{}.so", name(path)),
        Kind::Module { path, args } => format!("{}.so {}", name(path), args.join(" ")),
        _ => module_of(h).to_string(),
    }
}

fn place(h: &Handler) -> String {
    format!("{}:{}", h.at.file, h.at.line)
}

const ADD_CODE_STEP: &str = "add the code step (pam-auth-update --enable twostep-preauth \
                             twostep-authfail twostep, or `auth required pam_twostep.so` \
                             after the password)";

impl Lines<'_> {
    fn handler(&self, i: Option<u32>) -> Option<&Handler> {
        self.stack.handlers.get(usize::try_from(i?).ok()?)
    }

    fn finding(&self, h: &Handler, users: Users, why: String, accepted: bool) -> Finding {
        let module = match &h.kind {
            Kind::Module { path, .. } => name(path).to_string(),
            _ => "unknown".into(),
        };
        Finding {
            service: self.service.to_string(),
            file: Some(PathBuf::from(&h.at.file)),
            line: Some(h.at.line),
            setting: None,
            users,
            why,
            key: format!("pam:{}:{module}", self.service),
            accepted,
        }
    }

    /// For root only (who can do anything already): how to accept it.
    fn accept_hint(&self, h: &Handler, users: &Users) -> String {
        if *users != Users::Root {
            return String::new();
        }
        let module = match &h.kind {
            Kind::Module { path, .. } => name(path),
            _ => return String::new(),
        };
        format!(
            "; or, since root can do anything already, accept it: \
             audit.accept = [\"pam:{}:{module}\"]",
            self.service
        )
    }

    /// What `other` and services without auth lines of their own mean.
    fn context(&self) -> &'static str {
        if self.service == "other" {
            "`other` is the stack of every service without a file of its own: "
        } else if self.stack.from_other {
            "this service has no auth line of its own and uses `other`: "
        } else {
            ""
        }
    }

    /// The finding for one way a path succeeds, if it is one.
    fn way_in(&self, t: &Through) -> Option<(Finding, u8)> {
        let whom = who(&t.users);
        if let Step::Policy(i) = t.step {
            let (code, skip) = self.skips.get(usize::from(i))?;
            let h = self.stack.handlers.get(*code)?;
            let users = super::modules::narrower(&t.users, &skip.users);
            let why = format!("twostep's own policy ({}): {}", skip.key, skip.what);
            return Some((self.finding(h, users, why, true), 0));
        }
        if t.step == Step::Code {
            return None;
        }
        let ctx = self.context();
        if let Some((by, code)) = t.skipper
            && let (Some(h), Some(c)) = (self.handler(Some(by)), self.handler(Some(code)))
        {
            let jumps = h.actions.iter().any(|a| matches!(a, Action::Jump(_)));
            let accept = self.accept_hint(h, &t.users);
            let why = if jumps {
                format!(
                    "{ctx}{} ({}) jumps over the code step ({}): {whom} can get in without \
                     the code; make the jump land on the code step or before it",
                    shown(h),
                    h.control,
                    place(c)
                )
            } else {
                format!(
                    "{ctx}{} is {} before the code step ({}): when it succeeds the stack \
                     ends there, and {whom} can get in without the code; remove it or move \
                     it after the code step{accept}",
                    shown(h),
                    h.control,
                    place(c)
                )
            };
            return Some((self.finding(h, t.users.clone(), why, false), 1));
        }
        if let Some(h) = self.handler(t.ignored) {
            let why = format!(
                "{ctx}the code step is {} here: a wrong code (or none) does not stop the \
                 login, so {whom} can get in without the code; make it `required`",
                h.control
            );
            return Some((self.finding(h, t.users.clone(), why, false), 2));
        }
        let h = self.handler(t.pass).or_else(|| self.handler(t.grantor))?;
        let why = format!(
            "{ctx}no pam_twostep code step on this path: {whom} can get in through {} \
             without the code; {ADD_CODE_STEP}{}",
            shown(h),
            self.accept_hint(h, &t.users)
        );
        Some((self.finding(h, t.users.clone(), why, false), 3))
    }

    /// The pam_twostep lines that do nothing where they are, in a stack
    /// that lets someone in (in one that refuses everyone they are moot).
    fn idle(&self, walked: &Walked) -> Vec<Finding> {
        let mut out = Vec::new();
        if walked.successes.is_empty() {
            return out;
        }
        let code_at = |i: usize| self.roles.get(i) == Some(&Role::CodeStep);
        for (i, h) in self.stack.handlers.iter().enumerate() {
            let reached = walked.reached.get(i).copied().unwrap_or(false);
            let why = match self.roles.get(i) {
                Some(Role::CodeStep) if !reached => {
                    "pam_twostep.so never runs here: every path ends or jumps past it first, \
                     so it asks nobody for the code"
                        .to_string()
                }
                Some(Role::Preauth { single }) if !(i..self.stack.handlers.len()).any(code_at) => {
                    let what = if *single {
                        "it takes the code with the password, but no code step spends it (the \
                         same answer logs in again), and an email or SMS user's password alone \
                         gets in"
                    } else {
                        "it counts attempts, but nobody is asked for the code"
                    };
                    format!(
                        "pam_twostep.so preauth has no code step after it in this stack: \
                         {what}; {ADD_CODE_STEP}"
                    )
                }
                Some(Role::Authfail) if !reached => {
                    "pam_twostep.so authfail never runs here: wrong passwords are not counted \
                     toward the lockout; put it where a failed password goes \
                     (`auth [default=die] pam_twostep.so authfail` right after the password \
                     module, which jumps over it on success)"
                        .to_string()
                }
                _ => continue,
            };
            out.push(self.finding(h, Users::All, format!("{}{why}", self.context()), false));
        }
        out
    }
}

/// The findings of one service.
pub fn findings(lines: &Lines<'_>, walked: &Walked) -> Vec<Found> {
    let mut ways: Vec<(Finding, u8)> = walked
        .successes
        .iter()
        .filter_map(|t| lines.way_in(t))
        .collect();
    ways.sort_by(|a, b| {
        (&a.0.file, a.0.line, a.1, &a.0.users, &a.0.why)
            .cmp(&(&b.0.file, b.0.line, b.1, &b.0.users, &b.0.why))
    });
    ways.dedup_by(|a, b| a.0 == b.0);
    // Anyone at a line hides the narrower findings at the same line.
    let everyone: Vec<(Option<PathBuf>, Option<u32>, u8)> = ways
        .iter()
        .filter(|(f, _)| f.users == Users::All)
        .map(|(f, k)| (f.file.clone(), f.line, *k))
        .collect();
    ways.retain(|(f, k)| {
        f.users == Users::All || !everyone.contains(&(f.file.clone(), f.line, *k))
    });
    let mut out: Vec<Found> = ways
        .into_iter()
        .map(|(finding, _)| Found {
            way_in: !finding.accepted,
            finding,
        })
        .collect();
    out.extend(lines.idle(walked).into_iter().map(|finding| Found {
        finding,
        way_in: false,
    }));
    out
}
