//! `twostep status [USER]`: enrollment and lockout, per user.
#![forbid(unsafe_code)]

use super::term;
use super::{CliError, CliResult, Ctx};
use crate::base::user::UserName;
use crate::delivery::outbox;
use crate::files::secret::{self, Method, SecretError};
use crate::rules::lockout::{self, Standing};
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::Path;

#[derive(clap::Args, Debug)]
#[command(
    about = "Show enrollment and lockout status",
    after_help = "Examples:\n  twostep status              every user with a secret or state file\n  twostep status alice\n  twostep status --json | jq '.[] | select(.locked)'\n  twostep status --json | jq -r '.[] | select(.method == \"sms\") | .user'\n\nMETHOD is how the user's codes come: totp (an app), email or sms, with where\nthey go, masked as the records show it (a***@e***.com, +*********5678). APPS is\nhow many authenticator apps log the user in (`twostep devices USER` lists them)."
)]
pub struct Args {
    /// One user (default: every user with a secret or state file)
    user: Option<String>,
    /// Print JSON: an object for USER, a list without
    #[arg(long)]
    json: bool,
}

#[derive(Serialize, Debug)]
pub struct Status {
    pub user: String,
    /// true, false, or null when the secret file is unreadable or refused
    pub enrolled: Option<bool>,
    /// `totp`, `email` or `sms`; null when not enrolled or refused
    pub method: Option<&'static str>,
    /// Where email or SMS codes go, masked; null for an app user, or when
    /// they could go nowhere (then `problem` says why)
    pub to: Option<String>,
    /// How many apps (authenticators) log in: 0 when not enrolled, refused,
    /// or when the codes are sent
    pub devices: usize,
    pub locked: bool,
    pub locked_until: Option<String>,
    pub failures: u32,
    pub tier: u32,
    pub last_success: Option<String>,
    /// Set when a file could not be read or trusted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The unused recovery codes, for twostep-self's status (not in the
    /// admin's JSON, whose keys the contract fixes).
    #[serde(skip)]
    pub recovery_codes_left: Option<usize>,
}

pub fn status_of(ctx: &Ctx, user: &UserName, now: u64) -> Status {
    let mut problems = Vec::new();
    let (mut method, mut to, mut codes_left) = (None, None, None);
    let mut devices = 0;
    let enrolled = match secret::load(&ctx.config.secret_dir, user, &ctx.config.totp) {
        Ok(read) => {
            method = Some(read.method.as_str());
            devices = read.devices.len();
            codes_left = Some(read.file.recovery_codes.len());
            if read.method != Method::Totp {
                match outbox::destination(&ctx.config, user, &read, read.method) {
                    Ok(d) => to = Some(d.masked()),
                    Err(why) => problems.push(format!(
                        "no {} code can be sent: {why}",
                        read.method.as_str()
                    )),
                }
            }
            Some(true)
        }
        Err(SecretError::Missing) => Some(false),
        Err(e) => {
            problems.push(e.to_string());
            None
        }
    };
    let tiers = &ctx.config.lockout.tiers;
    let mut s = Status {
        user: user.to_string(),
        enrolled,
        method,
        to,
        devices,
        locked: false,
        locked_until: None,
        failures: 0,
        tier: 1,
        last_success: None,
        problem: None,
        recovery_codes_left: codes_left,
    };
    match ctx.store().read(user) {
        Ok(None) => {}
        Ok(Some(st)) => {
            if let Standing::Locked { until } = lockout::standing(&st.counters, now) {
                s.locked = true;
                s.locked_until = Some(crate::base::records::rfc3339(until));
            }
            s.failures = st.counters.failures;
            s.tier = lockout::tier_number(&st.counters, tiers);
            s.last_success =
                (st.last_success > 0).then(|| crate::base::records::rfc3339(st.last_success));
        }
        Err(e) => {
            // The module treats such a user as locked; say so.
            s.locked = true;
            problems.push(format!(
                "{e} (the module denies this user; `twostep unlock` resets it)"
            ));
        }
    }
    if !problems.is_empty() {
        s.problem = Some(problems.join("; "));
    }
    s
}

/// Valid user names among a directory's entries (temporary and hidden files,
/// and anything that is not a plausible name, are skipped).
pub fn names_in(dir: &Path, into: &mut BTreeSet<UserName>) -> Result<(), CliError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(CliError::Failed(format!(
                "cannot list {}: {e}",
                dir.display()
            )));
        }
    };
    for entry in entries.flatten() {
        if let Some(name) = entry
            .file_name()
            .to_str()
            .and_then(|n| UserName::parse(n).ok())
        {
            into.insert(name);
        }
    }
    Ok(())
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    let now = super::unix_now();
    if let Some(raw) = &args.user {
        let user = super::account_or_name(raw)?;
        let s = status_of(ctx, &user, now);
        return shown(term::to_stdout(|out| {
            if args.json {
                writeln!(
                    out,
                    "{}",
                    serde_json::to_string_pretty(&s).unwrap_or_default()
                )
            } else {
                print_table(out, &[s])
            }
        }));
    }
    let mut users = BTreeSet::new();
    names_in(&ctx.config.secret_dir, &mut users)?;
    let with_state = ctx
        .store()
        .users()
        .map_err(|e| CliError::Failed(format!("cannot list the users with state: {e}")))?;
    users.extend(with_state.iter().filter_map(|n| UserName::parse(n).ok()));
    let all: Vec<Status> = users.iter().map(|u| status_of(ctx, u, now)).collect();
    shown(term::to_stdout(|out| {
        if args.json {
            writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&all).unwrap_or_default()
            )
        } else if all.is_empty() {
            writeln!(out, "No user is enrolled or has failed a login yet.")
        } else {
            print_table(out, &all)
        }
    }))
}

/// A status that could not be written is a failure: one line says so.
pub fn shown(written: std::io::Result<()>) -> CliResult {
    written.map_err(|e| CliError::Failed(format!("cannot write to standard output: {e}")))
}

fn print_table(out: &mut dyn std::io::Write, rows: &[Status]) -> std::io::Result<()> {
    let header = [
        "USER",
        "ENROLLED",
        "METHOD",
        "APPS",
        "LOCKED UNTIL",
        "FAILURES",
        "TIER",
        "LAST SUCCESS",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|s| {
            [
                term::escape(&s.user).into_owned(),
                match s.enrolled {
                    Some(true) => "yes".into(),
                    Some(false) => "no".into(),
                    None => "REFUSED".into(),
                },
                match (s.method, &s.to) {
                    (Some(m), Some(to)) => format!("{m} {to}"),
                    (Some(m), None) => m.into(),
                    (None, _) => "-".into(),
                },
                match s.devices {
                    0 => "-".into(),
                    n => n.to_string(),
                },
                match (&s.locked_until, s.locked) {
                    (Some(t), _) => t.clone(),
                    (None, true) => "LOCKED (bad state)".into(),
                    (None, false) => "-".into(),
                },
                s.failures.to_string(),
                s.tier.to_string(),
                s.last_success.clone().unwrap_or_else(|| "never".into()),
            ]
        })
        .collect();
    term::table(out, &header, &cells)?;
    for s in rows {
        if let Some(p) = &s.problem {
            writeln!(out, "{}: {}", term::escape(&s.user), term::escape(p))?;
        }
    }
    Ok(())
}
