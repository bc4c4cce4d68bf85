//! `twostep check`: validate the configuration and the directories, and
//! the programs that send codes and notices.
#![forbid(unsafe_code)]

use super::term;
use super::{CliError, CliResult, Ctx};
use crate::config::{Config, LostDeviceMethod};
use crate::delivery::{self, outbox};
use crate::files::fsutil;
use crate::files::secret::{self, Method};
use crate::store::valkey::sentinel::{self, Addr};
use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

#[derive(clap::Args, Debug)]
#[command(
    about = "Validate the configuration, the directories' ownership and modes, secret_dir's marker, \
             and the programs that send codes",
    after_help = "Examples:\n  twostep check && echo ok\n  twostep --config /etc/twostep/new.toml check\n\n\
                  Also checks email.sendmail when anything mails (notify.events, lost_device.method\n\
                  = \"email\", a user whose method is email) and sms.command when it is set: each\n\
                  must be an absolute path to an executable owned by root that no one else can\n\
                  change, through every directory and link. That each email or SMS user's\n\
                  codes can go somewhere: an address (or email.address), and sms.command. And\n\
                  that the accounts email.user and sms.user name, if any, exist.\n\n\
                  With a shared store (store.url): its password file, and that it answers,\n\
                  accepts the credentials and lets this host run every script and command;\n\
                  a warning (exit status unchanged) when any local user can connect to it.\n\
                  With a Sentinel URL: the primary each sentinel names (one down, or sentinels\n\
                  that disagree: a warning; none naming one: a problem). With\n\
                  store.wait_replicas: that enough replicas acknowledge a write in time.\n\n\
                  Exit status: 0 if all is well, 2 if anything is wrong (each problem is printed)."
)]
pub struct Args {}

/// Problems with a directory that holds secrets or state.
pub fn dir_problems(what: &str, dir: &Path) -> Vec<String> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) => return vec![format!("{what} {}: {e}", dir.display())],
    };
    let mut out = Vec::new();
    if !meta.is_dir() {
        out.push(format!("{what} {} is not a directory", dir.display()));
        return out;
    }
    if meta.uid() != 0 {
        out.push(format!(
            "{what} {} is owned by uid {}, not root",
            dir.display(),
            meta.uid()
        ));
    }
    if meta.mode() & 0o077 != 0 {
        out.push(format!(
            "{what} {} has mode {:04o}; it should be 0700",
            dir.display(),
            meta.mode() & 0o7777
        ));
    }
    // Every parent must be root-owned and not writable by others, or someone
    // could swap the directory.
    let mut parent = dir.parent();
    while let Some(p) = parent {
        if let Ok(m) = std::fs::metadata(p)
            && fsutil::others_can_change_dir(&m)
        {
            out.push(format!(
                "{what} {}: parent {} is writable by non-root users",
                dir.display(),
                p.display()
            ));
        }
        parent = p.parent();
    }
    out
}

pub fn run(ctx: &Ctx, _args: Args) -> CliResult {
    let c = &ctx.config;
    let mut problems = Vec::new();
    problems.extend(dir_problems("secret_dir", &c.secret_dir));
    // Without its marker the module treats secret_dir as missing (an
    // unmounted volume) and denies every login. A missing directory has
    // been reported already.
    if c.secret_dir.is_dir()
        && let Err(why) = secret::check_marker(&c.secret_dir)
    {
        problems.push(why);
    }
    problems.extend(dir_problems("state_dir", &c.state_dir));
    for (key, groups) in [
        ("policy.require_groups", &c.policy.require_groups),
        ("policy.exempt_groups", &c.policy.exempt_groups),
        (
            "policy.always_challenge_groups",
            &c.policy.always_challenge_groups,
        ),
    ] {
        for g in groups {
            if !matches!(nix::unistd::Group::from_name(g), Ok(Some(_))) {
                problems.push(format!("{key}: no such group {g:?}"));
            }
        }
    }
    let mut warnings = Vec::new();
    problems.extend(delivery_problems(c, &mut warnings)?);
    let sentinels = sentinel_report(&c.store);
    for line in &sentinels.said {
        println!("{}", term::escape(line));
    }
    problems.extend(sentinels.problems);
    problems.extend(store_problems(c));
    for w in warnings
        .iter()
        .chain(&sentinels.warnings)
        .chain(&store_warnings(c, &sentinels.reached))
    {
        println!("warning: {}", term::escape(w));
    }
    if problems.is_empty() {
        println!("{}: OK", ctx.config_path.display());
        return Ok(());
    }
    for p in &problems {
        println!("{}", term::escape(p));
    }
    Err(CliError::Usage(format!(
        "{} problem(s) found",
        problems.len()
    )))
}

/// The programs that send, where something uses them, the module's
/// on-demand part that starts them (loaded here as a login loads it), and
/// the users whose method could send nothing. The part is a problem when
/// something sends, a warning otherwise (`warnings`).
/// With a shared store: its password file, its TLS settings, and that it
/// answers, accepts the credentials and allows every script and command.
fn store_problems(c: &Config) -> Vec<String> {
    use crate::config::StoreUrl;
    let store = &c.store;
    let mut problems = Vec::new();
    if store.url == StoreUrl::Local {
        return problems;
    }
    if store.ca_file.is_some() && !store.url.is_tls() {
        problems.push(
            "store.ca_file is set, but store.url is not rediss:// or rediss+sentinel://: \
             it is not used"
                .into(),
        );
    }
    if !store.user.is_empty() && store.password_file.is_none() {
        problems.push("store.user is set, but store.password_file is not".into());
    }
    if store.url.is_sentinel() {
        if !store.sentinel_user.is_empty() && store.sentinel_password_file.is_none() {
            problems
                .push("store.sentinel_user is set, but store.sentinel_password_file is not".into());
        }
        if let Some(path) = &store.sentinel_password_file
            && let Err(e) =
                crate::store::valkey::password::read_for("store.sentinel_password_file", path)
        {
            problems.push(e.to_string());
        }
    } else if !store.sentinel_user.is_empty() || store.sentinel_password_file.is_some() {
        problems.push(
            "store.sentinel_user or store.sentinel_password_file is set, but store.url is \
             not a Sentinel URL (redis+sentinel://): they are not used"
                .into(),
        );
    }
    problems.extend(crate::store::shared::SharedStore::new(store, None).problems());
    problems
}

/// What `twostep check` learned from the sentinels of a Sentinel URL.
#[derive(Debug, Default, PartialEq, Eq)]
struct SentinelReport {
    /// One line for each sentinel that named a primary.
    said: Vec<String>,
    warnings: Vec<String>,
    problems: Vec<String>,
    /// The sentinels that answered, and the primaries they named.
    reached: Vec<Addr>,
}

/// Asks every sentinel (each within store.timeout) which server is the
/// primary.
fn sentinel_report(store: &crate::config::Store) -> SentinelReport {
    let crate::config::StoreUrl::Sentinel {
        sentinels, service, ..
    } = &store.url
    else {
        return SentinelReport::default();
    };
    let answers: Vec<_> = sentinels
        .iter()
        .map(|(host, port)| {
            let at = Addr {
                host: host.clone(),
                port: *port,
            };
            let deadline = std::time::Instant::now() + store.timeout;
            let answer = sentinel::ask_one(store, &at, deadline).map_err(|e| e.to_string());
            (at, answer)
        })
        .collect();
    judge_sentinels(service, &answers)
}

/// A sentinel, and the primary it named (or none), or why it did not answer.
type Answer = (Addr, Result<Option<Addr>, String>);

/// What the sentinels' answers mean: an unreachable sentinel, one that
/// knows no primary, or sentinels that disagree are warnings (logins still
/// find a primary); none naming one is a problem (every login is denied).
fn judge_sentinels(service: &str, answers: &[Answer]) -> SentinelReport {
    let mut r = SentinelReport::default();
    let mut named: Vec<(&Addr, &Addr)> = Vec::new();
    for (at, answer) in answers {
        match answer {
            Ok(Some(primary)) => {
                r.said.push(format!(
                    "store.url: sentinel {at} names {primary} as the primary of {service:?}"
                ));
                r.reached.push(at.clone());
                if !r.reached.contains(primary) {
                    r.reached.push(primary.clone());
                }
                named.push((at, primary));
            }
            Ok(None) => {
                r.reached.push(at.clone());
                r.warnings.push(format!(
                    "store.url: sentinel {at} knows no primary of {service:?}"
                ));
            }
            Err(e) => r.warnings.push(format!("store.url: sentinel {at}: {e}")),
        }
    }
    match named.first() {
        None => r.problems.push(format!(
            "store.url: no sentinel named a primary of {service:?}: every login is denied \
             (store_unavailable reason=sentinel)"
        )),
        Some((_, first)) if named.iter().any(|(_, p)| p != first) => {
            let who: Vec<String> = named
                .iter()
                .map(|(at, p)| format!("{at} names {p}"))
                .collect();
            r.warnings.push(format!(
                "store.url: the sentinels disagree on the primary ({}): a failover under way, \
                 or sentinels that do not watch the same servers; logins believe the first \
                 that answers",
                who.join(", ")
            ));
        }
        Some(_) => {}
    }
    r
}

/// The user the probe runs as: `nobody` on Debian, and a uid that owns
/// nothing whether or not an account has it.
const NOBODY: u32 = 65534;

/// What `twostep check` says about the store without counting it a
/// problem: whether any local user can connect to it. Each connection
/// holds one of the server's `maxclients`; a local user who holds them all
/// refuses every login on every host (with `on_unavailable = "deny"`).
/// Learned by connecting as uid 65534: a unix socket's permissions and an
/// owner-match firewall rule are what it meets.
/// With a Sentinel URL, `reached` are the sentinels that answered and the
/// primaries they named: each is probed, since a local user who holds a
/// sentinel's connections keeps logins from finding the primary.
fn store_warnings(c: &Config, reached: &[Addr]) -> Vec<String> {
    use crate::config::StoreUrl;
    match &c.store.url {
        StoreUrl::Local => Vec::new(),
        StoreUrl::Tcp { host, port, .. } => probe_as_nobody(c, "the store", &tcp(host, *port)),
        StoreUrl::Unix(path) => {
            probe_as_nobody(c, "the store", &format!("unix:{}", path.display()))
        }
        StoreUrl::Sentinel { .. } => reached
            .iter()
            .flat_map(|a| probe_as_nobody(c, &a.to_string(), &tcp(&a.host, a.port)))
            .collect(),
    }
}

fn tcp(host: &str, port: u16) -> String {
    format!("tcp:{host}:{port}")
}

/// Whether uid 65534 can connect to `target` (`what`, for the message).
fn probe_as_nobody(c: &Config, what: &str, target: &str) -> Vec<String> {
    use crate::config::StoreUrl;
    let probe = std::env::current_exe().and_then(|exe| {
        use std::os::unix::process::CommandExt;
        std::process::Command::new(exe)
            .args(["probe-store-as-nobody", target])
            .uid(NOBODY)
            .gid(NOBODY)
            .env_clear()
            .current_dir("/")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
    });
    let fix = "a unix socket that only root can use (unixsocketperm 700), or a firewall \
               rule by owner for TCP (iptables -A OUTPUT -p tcp -d HOST --dport PORT -m owner \
               ! --uid-owner 0 -j REJECT); see pam_twostep(8), FLEET";
    match probe {
        Ok(status) if status.success() => vec![format!(
            "store.url: any local user can connect to {what} (uid {NOBODY} did), and by \
             holding connections use up its maxclients, which refuses every login on every \
             host; limit it with {fix}"
        )],
        Ok(_) => Vec::new(),
        Err(e) if !matches!(c.store.url, StoreUrl::Unix(_)) => vec![format!(
            "store.url: could not test whether other local users can connect to {what} ({e}); \
             over TCP they can unless a firewall rule says otherwise: {fix}"
        )],
        Err(_) => Vec::new(),
    }
}

/// `twostep probe-store-as-nobody TARGET` (internal).
#[derive(clap::Args, Debug)]
pub struct ProbeArgs {
    /// `tcp:HOST:PORT` or `unix:PATH`
    target: String,
}

/// Exit 0 if a connection to the target opens within a second, 1 if not.
pub fn probe(args: &ProbeArgs) -> CliResult {
    use std::net::ToSocketAddrs;
    let timeout = std::time::Duration::from_secs(1);
    let reached = if let Some(path) = args.target.strip_prefix("unix:") {
        std::os::unix::net::UnixStream::connect(path).is_ok()
    } else if let Some(rest) = args.target.strip_prefix("tcp:") {
        let (host, port) = rest.rsplit_once(':').unwrap_or((rest, ""));
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port: u16 = port.parse().unwrap_or(0);
        (host, port).to_socket_addrs().is_ok_and(|mut addrs| {
            addrs.any(|a| std::net::TcpStream::connect_timeout(&a, timeout).is_ok())
        })
    } else {
        false
    };
    if reached {
        Ok(())
    } else {
        Err(CliError::Failed("not reached".into()))
    }
}

fn delivery_problems(c: &Config, warnings: &mut Vec<String>) -> Result<Vec<String>, CliError> {
    let mut users = BTreeSet::new();
    super::status::names_in(&c.secret_dir, &mut users)?;
    let mut out = Vec::new();
    let mut mailing = Vec::new();
    let mut texting = Vec::new();
    if !c.notify.events.is_empty() {
        mailing.push("notify.events".to_string());
    }
    if c.lost_device.method == LostDeviceMethod::Email {
        mailing.push("lost_device.method".into());
    }
    for user in &users {
        // A file that cannot be read is the module's to refuse (and
        // `twostep status` shows why); here only the methods count.
        let Ok(read) = secret::load(&c.secret_dir, user, &c.totp) else {
            continue;
        };
        match read.method {
            Method::Email => mailing.push(format!("the email user {user}")),
            Method::Sms => texting.push(format!("the SMS user {user}")),
            _ => {}
        }
        if read.method != Method::Totp
            && let Err(why) = outbox::destination(c, user, &read, read.method)
        {
            out.push(format!(
                "{user} has method = \"{}\", but no code can be sent: {why}",
                read.method.as_str()
            ));
        }
    }
    if let Some(users) = used_by(&mailing)
        && let Some(why) = delivery::program_problem(&c.email.sendmail)
    {
        out.push(format!("email.sendmail (used by {users}): {why}"));
    }
    if let Some(command) = &c.sms.command
        && let Some(why) = delivery::program_problem(command)
    {
        out.push(format!("sms.command: {why}"));
    }
    if let Some(why) = crate::ondemand::problem() {
        // One finding for the one problem, naming all it breaks: an
        // error if a login here would be denied, else a warning.
        let mut senders = mailing;
        senders.extend(texting);
        let users = used_by(&senders);
        let mut breaks = vec![match &users {
            Some(users) => format!(
                "it starts sendmail and the SMS command for the module \
                 (used by {users}): those logins are denied"
            ),
            None => "nothing here sends a code or a notice now, but a login \
                     that did would be denied"
                .into(),
        }];
        if c.unenrolled == crate::config::Unenrolled::Enroll {
            breaks.push(
                "it draws the QR code of enrollment at login (unenrolled = \"enroll\"): \
                 users enrolling at login must add the key by hand"
                    .into(),
            );
        }
        let finding = format!("{why}; {}", breaks.join("; "));
        match users {
            Some(_) => out.push(finding),
            None => warnings.push(finding),
        }
    }
    for (key, user) in [("email.user", &c.email.user), ("sms.user", &c.sms.user)] {
        if let Some(name) = user
            && let Err(why) = delivery::child::Identity::account(name)
        {
            out.push(format!(
                "{key}: {why}; the program would not run at all (\"\" runs it as root)"
            ));
        }
    }
    Ok(out)
}

/// "the first" or "the first and N more", for what `names` use; None for
/// nothing.
fn used_by(names: &[String]) -> Option<String> {
    let first = names.first()?;
    Some(match names.len() {
        1 => first.clone(),
        n => format!("{first} and {} more", n - 1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_sentinels_answers_mean() {
        let a = |port| Addr {
            host: "10.0.0.1".into(),
            port,
        };
        let refused = || Err("cannot reach the store: refused".to_string());
        // (answers, the words of each warning, of each problem)
        type Case = (Vec<Answer>, Vec<&'static str>, Vec<&'static str>);
        let cases: Vec<Case> = vec![
            (
                vec![(a(1), Ok(Some(a(9)))), (a(2), Ok(Some(a(9))))],
                vec![],
                vec![],
            ),
            (
                vec![(a(1), refused()), (a(2), Ok(Some(a(9))))],
                vec!["sentinel 10.0.0.1:1: cannot reach"],
                vec![],
            ),
            (
                vec![(a(1), Ok(Some(a(9)))), (a(2), Ok(Some(a(8))))],
                vec![
                    "disagree on the primary (10.0.0.1:1 names 10.0.0.1:9, 10.0.0.1:2 names 10.0.0.1:8)",
                ],
                vec![],
            ),
            (
                vec![(a(1), Ok(None)), (a(2), Ok(Some(a(9))))],
                vec!["10.0.0.1:1 knows no primary of \"svc\""],
                vec![],
            ),
            (
                vec![(a(1), refused()), (a(2), Ok(None))],
                vec!["cannot reach", "knows no primary"],
                vec!["no sentinel named a primary of \"svc\""],
            ),
            (
                vec![(a(1), refused()), (a(2), refused())],
                vec!["10.0.0.1:1", "10.0.0.1:2"],
                vec!["reason=sentinel"],
            ),
        ];
        for (answers, warnings, problems) in cases {
            let r = judge_sentinels("svc", &answers);
            let fits = |got: &[String], want: &[&str]| {
                got.len() == want.len() && got.iter().zip(want).all(|(g, w)| g.contains(w))
            };
            assert!(
                fits(&r.warnings, &warnings),
                "{answers:?}: {:?}",
                r.warnings
            );
            assert!(
                fits(&r.problems, &problems),
                "{answers:?}: {:?}",
                r.problems
            );
        }
        let r = judge_sentinels("svc", &[(a(1), Ok(Some(a(9)))), (a(2), refused())]);
        assert_eq!(
            r.reached,
            [a(1), a(9)],
            "the answering sentinel and its primary"
        );
        assert_eq!(
            r.said,
            ["store.url: sentinel 10.0.0.1:1 names 10.0.0.1:9 as the primary of \"svc\""]
        );
    }
}
