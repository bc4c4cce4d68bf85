//! `twostep audit`: does every way into this machine ask for the code?
//! The work is `ways_in`'s; this prints it and sets the exit status.
#![forbid(unsafe_code)]

use super::{CliError, CliResult, Ctx, term};
use crate::config::Config;
use crate::ways_in::sshd::findings::names;
use crate::ways_in::{self, Finding, Report, Users, accept};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
#[command(
    about = "Find every way into this machine that does not ask for the code (PAM stacks, sshd)",
    after_help = "Examples:\n  twostep audit                     this machine: every PAM service, sshd for each account\n  twostep audit --user alice        sshd's settings as they apply to alice\n  twostep audit --root /mnt/image   a system tree (an image, a chroot) before it ships\n  twostep audit --json | jq .ok\n\n\
                  Each PAM service's auth stack is followed as libpam follows it (@include,\n\
                  include, substack, jumps, done, die); sshd is asked for its effective\n\
                  settings for each user (sshd -T -C user=...), so that Match blocks apply.\n\
                  A way in the site means to allow goes in audit.accept (twostep.toml(5)):\n\
                  it is then listed as accepted. So are skips by twostep's own policy.\n\n\
                  Exit status: 0 if every way in asks for the code (or is accepted), 1 if\n\
                  one does not, 2 on bad usage or a configuration that cannot be read."
)]
pub struct Args {
    /// Audit the system tree under DIR instead of this machine
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Ask sshd about this account (repeatable; default: each account that can log in, and root)
    #[arg(long = "user", value_name = "USER")]
    users: Vec<String>,
    /// One JSON object: {"ok": bool, "findings": [...]}
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    let root = args.root.unwrap_or_else(|| PathBuf::from("/"));
    if !root.is_dir() {
        return Err(CliError::Usage(format!(
            "--root {}: not a directory",
            root.display()
        )));
    }
    let config = config_of(ctx, &root)?;
    let report = audit(&root, &config, &args.users).map_err(|e| CliError::Usage(e.to_string()))?;
    let mut out = std::io::stdout().lock();
    let printed = if args.json {
        for note in &report.notes {
            eprintln!("twostep: note: {}", term::escape(note));
        }
        writeln!(out, "{}", report.to_json())
    } else {
        print_text(&mut out, &report)
    };
    // A report that could not be printed is not a report.
    printed
        .and_then(|()| out.flush())
        .map_err(|e| CliError::Usage(format!("cannot print the report: {e}")))?;
    if !report.errors.is_empty() {
        // After the report: what could be followed is still worth reading.
        let mut err = std::io::stderr().lock();
        for e in &report.errors {
            let _ = writeln!(err, "twostep audit: {}", term::escape(&e.to_string()));
        }
        return Err(CliError::Usage(format!(
            "{} problem(s) in the PAM configuration (above)",
            report.errors.len()
        )));
    }
    if report.ok() {
        Ok(())
    } else {
        let open = report.findings.iter().filter(|f| !f.accepted).count();
        Err(CliError::Failed(format!(
            "{open} way(s) in without the code"
        )))
    }
}

/// The audited system's twostep configuration: this machine's (as
/// `--config` says), or under `--root` the tree's own
/// `/etc/twostep/twostep.toml` (all defaults if it has none).
fn config_of(ctx: &Ctx, root: &Path) -> Result<Config, CliError> {
    if root == Path::new("/") {
        return Ok(ctx.config.clone());
    }
    let path = root.join(crate::config::DEFAULT_PATH.trim_start_matches('/'));
    Config::load(&path, false).map_err(|e| CliError::Usage(e.to_string()))
}

/// Both audits, the accepted ways in marked.
pub fn audit(
    root: &Path,
    config: &Config,
    users: &[String],
) -> Result<Report, ways_in::AuditError> {
    let pam = ways_in::pam::audit(root, config)?;
    let mut findings = pam.findings;
    let pam_asks = ways_in::pam::asks_for_the_code(root, config, "sshd")?;
    let sshd = ways_in::sshd::audit(root, users, pam_asks, &config.audit.accept)?;
    findings.extend(sshd.findings);
    accept::apply(&config.audit.accept, &mut findings);
    let mut notes = sshd.notes;
    notes.extend(part_note(root));
    Ok(Report {
        findings,
        errors: pam.errors,
        notes,
    })
}

/// The module's on-demand part in the audited tree, if it would be
/// refused: not a way in (a login that needs it is denied, never let
/// through), but a way the code cannot be sent. On this machine it is
/// loaded as a login loads it; under `--root`, where the package put it
/// (a tree without that directory has no twostep package to check), only
/// its file is checked (owner, mode, the directories above it), as the
/// module would first.
fn part_note(root: &Path) -> Option<String> {
    let why = if root == Path::new("/") {
        crate::ondemand::problem()?
    } else {
        let path = root.join(crate::ondemand::PART_PATH.trim_start_matches('/'));
        if !path.parent().is_some_and(Path::is_dir) {
            return None;
        }
        format!(
            "the on-demand part {}",
            crate::delivery::library_problem(&path)?
        )
    };
    Some(format!(
        "{why}: logins that send a code by email or SMS, and notices, are denied or not sent (twostep check)"
    ))
}

/// One line per way in: where, who, why and the fix; then the verdict.
fn print_text(out: &mut dyn Write, report: &Report) -> std::io::Result<()> {
    for line in text_lines(&report.findings) {
        writeln!(out, "{}", term::escape(&line))?;
    }
    for note in &report.notes {
        writeln!(out, "note: {}", term::escape(note))?;
    }
    let open = report.findings.iter().filter(|f| !f.accepted).count();
    if open == 0 {
        writeln!(out, "Every way in asks for the code.")
    } else {
        writeln!(out, "{open} way(s) in do not ask for the code.")
    }
}

/// The findings as lines for people. The same way in for several named
/// accounts (sshd's password method on a machine with a hundred of them)
/// is one line naming them, not a hundred: it is one thing to fix. The
/// JSON keeps one finding per account, as the contract says.
fn text_lines(findings: &[Finding]) -> Vec<String> {
    struct Line<'a> {
        mark: &'static str,
        service: &'a str,
        place: String,
        /// `users` as the JSON says it, or None for a named account
        users: Option<String>,
        /// For a named account: its name in the sentence is NAME.
        why: String,
        names: Vec<&'a str>,
        /// The sentence of the first, as it is.
        first: &'a str,
    }
    let mut lines: Vec<Line> = Vec::new();
    for f in findings {
        let mark = if f.accepted { "accepted" } else { "WAY IN" };
        let place = match (&f.file, f.line, &f.setting) {
            (Some(file), Some(line), _) => format!("{}:{line}", file.display()),
            (Some(file), None, _) => file.display().to_string(),
            (None, _, Some(setting)) => format!("sshd_config {setting}"),
            (None, _, None) => String::new(),
        };
        let line = match &f.users {
            Users::User(name) if !name.is_empty() => Line {
                mark,
                service: &f.service,
                place,
                users: None,
                why: f.why.replace(name.as_str(), "NAME"),
                names: vec![name.as_str()],
                first: &f.why,
            },
            users => Line {
                mark,
                service: &f.service,
                place,
                users: Some(users.as_text()),
                why: f.why.clone(),
                names: Vec::new(),
                first: &f.why,
            },
        };
        let same = |l: &&mut Line| {
            l.users.is_none()
                && line.users.is_none()
                && (l.mark, l.service, &l.place, &l.why)
                    == (mark, line.service, &line.place, &line.why)
        };
        match lines.iter_mut().find(|l| same(l)) {
            Some(l) => l.names.extend(line.names),
            None => lines.push(line),
        }
    }
    lines
        .into_iter()
        .map(|l| {
            let (who, why) = match (&l.users, l.names.as_slice()) {
                (Some(users), _) => (users.clone(), l.why),
                (None, [one]) => (one.to_string(), l.first.to_string()),
                (None, many) => (format!("NAME = {}", names(many)), l.why),
            };
            format!("{}: {} ({who}): {}: {why}", l.mark, l.service, l.place)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(users: Users, setting: Option<&str>, why: &str, accepted: bool) -> Finding {
        Finding {
            service: "sshd".into(),
            file: setting.is_none().then(|| PathBuf::from("/etc/pam.d/sshd")),
            line: setting.is_none().then_some(3),
            setting: setting.map(str::to_string),
            users,
            why: why.into(),
            key: String::new(),
            accepted,
        }
    }

    fn password(name: &str, accepted: bool) -> Finding {
        let why = format!("it lets {name} in: fix, or accept \"sshd:password:{name}\"");
        finding(
            Users::User(name.into()),
            Some("PasswordAuthentication"),
            &why,
            accepted,
        )
    }

    #[test]
    fn the_same_way_in_for_several_accounts_is_one_line() {
        let cases: Vec<(Vec<Finding>, Vec<&str>)> = vec![
            (
                vec![
                    password("alice", false),
                    password("bob", false),
                    password("carol", false),
                ],
                vec![
                    "WAY IN: sshd (NAME = alice, bob, carol): sshd_config PasswordAuthentication: it lets NAME in: fix, or accept \"sshd:password:NAME\"",
                ],
            ),
            // One account: its own sentence.
            (
                vec![password("alice", false)],
                vec![
                    "WAY IN: sshd (alice): sshd_config PasswordAuthentication: it lets alice in: fix, or accept \"sshd:password:alice\"",
                ],
            ),
            // Accepted for one, not for the other: two lines.
            (
                vec![password("alice", true), password("bob", false)],
                vec![
                    "accepted: sshd (alice): sshd_config PasswordAuthentication: it lets alice in: fix, or accept \"sshd:password:alice\"",
                    "WAY IN: sshd (bob): sshd_config PasswordAuthentication: it lets bob in: fix, or accept \"sshd:password:bob\"",
                ],
            ),
            // A name that is also a word of the sentence does not join the others.
            (
                vec![
                    password("alice", false),
                    password("in", false),
                    password("bob", false),
                ],
                vec![
                    "WAY IN: sshd (NAME = alice, bob): sshd_config PasswordAuthentication: it lets NAME in: fix, or accept \"sshd:password:NAME\"",
                    "WAY IN: sshd (in): sshd_config PasswordAuthentication: it lets in in: fix, or accept \"sshd:password:in\"",
                ],
            ),
            // Not named accounts: one line each, as they are.
            (
                vec![
                    finding(Users::All, None, "anyone", false),
                    finding(Users::Root, None, "anyone", false),
                    finding(Users::Group("wheel".into()), None, "anyone", false),
                ],
                vec![
                    "WAY IN: sshd (all): /etc/pam.d/sshd:3: anyone",
                    "WAY IN: sshd (root): /etc/pam.d/sshd:3: anyone",
                    "WAY IN: sshd (group:wheel): /etc/pam.d/sshd:3: anyone",
                ],
            ),
        ];
        for (findings, want) in cases {
            assert_eq!(text_lines(&findings), want, "{findings:?}");
        }
    }
}
