//! `twostep check`: validate the configuration and the directories, and
//! the programs that send codes and notices.
#![forbid(unsafe_code)]

use super::term;
use super::{CliError, CliResult, Ctx};
use crate::config::{Config, LostDeviceMethod};
use crate::delivery::{self, outbox};
use crate::fsutil;
use crate::secret::{self, Method};
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
                  a warning (exit status unchanged) when any local user can connect to it.\n\n\
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
    problems.extend(delivery_problems(c)?);
    problems.extend(store_problems(c));
    for w in store_warnings(c) {
        println!("warning: {}", term::escape(&w));
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

/// The programs that send, where something uses them, and the users whose
/// method could send nothing.
/// With a shared store: its password file, its TLS settings, and that it
/// answers, accepts the credentials and allows every script and command.
fn store_problems(c: &Config) -> Vec<String> {
    use crate::config::StoreUrl;
    let store = &c.store;
    let mut problems = Vec::new();
    if store.url == StoreUrl::Local {
        return problems;
    }
    let tls = matches!(store.url, StoreUrl::Tcp { tls: true, .. });
    if store.ca_file.is_some() && !tls {
        problems
            .push("store.ca_file is set, but store.url is not rediss://: it is not used".into());
    }
    if !store.user.is_empty() && store.password_file.is_none() {
        problems.push("store.user is set, but store.password_file is not".into());
    }
    problems.extend(crate::store::shared::SharedStore::new(store, None).problems());
    problems
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
fn store_warnings(c: &Config) -> Vec<String> {
    use crate::config::StoreUrl;
    let target = match &c.store.url {
        StoreUrl::Local | StoreUrl::Sentinel { .. } => return Vec::new(),
        StoreUrl::Tcp { host, port, .. } => format!("tcp:{host}:{port}"),
        StoreUrl::Unix(path) => format!("unix:{}", path.display()),
    };
    let probe = std::env::current_exe().and_then(|exe| {
        use std::os::unix::process::CommandExt;
        std::process::Command::new(exe)
            .args(["probe-store-as-nobody", &target])
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
            "store.url: any local user can connect to the store (uid {NOBODY} did), and by \
             holding connections use up its maxclients, which refuses every login on every \
             host; limit it with {fix}"
        )],
        Ok(_) => Vec::new(),
        Err(e) if matches!(c.store.url, StoreUrl::Tcp { .. }) => vec![format!(
            "store.url: could not test whether other local users can connect ({e}); over \
             TCP they can unless a firewall rule says otherwise: {fix}"
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

fn delivery_problems(c: &Config) -> Result<Vec<String>, CliError> {
    let mut users = BTreeSet::new();
    super::status::names_in(&c.secret_dir, &mut users)?;
    let mut out = Vec::new();
    let mut mailing = Vec::new();
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
        if read.method == Method::Email {
            mailing.push(format!("the email user {user}"));
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
    if let Some(first) = mailing.first() {
        let more = match mailing.len() {
            1 => String::new(),
            n => format!(" and {} more", n - 1),
        };
        if let Some(why) = delivery::program_problem(&c.email.sendmail) {
            out.push(format!("email.sendmail (used by {first}{more}): {why}"));
        }
    }
    if let Some(command) = &c.sms.command
        && let Some(why) = delivery::program_problem(command)
    {
        out.push(format!("sms.command: {why}"));
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
