//! Asking sshd: `sshd -T -C user=...,host=...,addr=...,laddr=...,lport=...`
//! prints its effective settings for one connection, `Match` blocks
//! applied by sshd itself.
//!
//! What it takes to run it:
//!
//! - **A host key.** sshd -T refuses to run without one, and an image's
//!   keys are often made at first boot. A throwaway ed25519 key is made
//!   with ssh-keygen in a private directory and given with `-h`; the
//!   configuration's own `HostKey` lines are read as well, harmlessly.
//! - **Under `--root`, a configuration whose Includes stay in the tree.**
//!   sshd is given a copy of the tree's sshd_config in which each `Include`
//!   path is moved into the tree ([`super::includes`]); an `Include` inside
//!   an included file that still points out of the tree (sshd's debug log
//!   names each one) is an error.
//! - **The binary and whom it runs as.** This machine: /usr/sbin/sshd, as
//!   root. As root, sshd -T wants /run/sshd and the `sshd` account
//!   (privilege separation); where they are missing (sshd not running) it
//!   runs as nobody, and a note says so. Under `--root`: the tree's
//!   /usr/sbin/sshd if it runs here, else this machine's (a note says
//!   which), always as nobody (uid 65534): never the image's code as root,
//!   and never the image's configuration read by root, which an `Include`
//!   or a link could point at this machine's /etc/shadow for sshd to quote
//!   in its error. sshd then reads only what everyone may read.
//! - **A deadline.** Each run is killed after [`TIMEOUT`]; it gets no
//!   environment, no inherited descriptor, reset limits
//!   (`delivery::spawn`), and at most [`MAX_OUTPUT`] bytes of output.
#![forbid(unsafe_code)]

use super::connections::Connection;
use super::includes;
use super::settings::{self, Dump, MatchLine};
use crate::delivery::child::Identity;
use crate::delivery::spawn::{self, Output, RunError};
use crate::ways_in::{AuditError, tree};
use std::ffi::OsStr;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// How long one `sshd -T` may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// The most it may print on stdout or stderr (its dump is ~6 KiB, its
/// debug log a few more).
pub const MAX_OUTPUT: usize = 4 * 1024 * 1024;
/// sshd, on this machine and in a tree.
pub const SSHD: &str = "/usr/sbin/sshd";
/// Its configuration, likewise.
const CONFIG: &str = "/etc/ssh/sshd_config";
const SSH_KEYGEN: &str = "/usr/bin/ssh-keygen";
const NOBODY: u32 = 65534;
/// Runs at once, at most.
const MAX_PARALLEL: usize = 8;

/// A private directory under /tmp (sticky: no one else can rename it),
/// removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch, AuditError> {
        let mut last = None;
        for _ in 0..8 {
            let mut bytes = [0u8; 8];
            getrandom::fill(&mut bytes)
                .map_err(|e| AuditError(format!("no random name for a directory: {e}")))?;
            let name: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let path = PathBuf::from(format!("/tmp/twostep-audit-{name}"));
            // 0711: sshd may run as nobody and read what is put here for it;
            // no one may list it or add to it.
            match std::fs::DirBuilder::new().mode(0o711).create(&path) {
                Ok(()) => {
                    // The umask may have taken bits away; set exactly.
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o711))
                        .map_err(|e| AuditError(format!("{}: {e}", path.display())))?;
                    return Ok(Scratch(path));
                }
                Err(e) => last = Some(e),
            }
        }
        Err(AuditError(format!(
            "cannot make a directory under /tmp: {}",
            last.map_or_else(String::new, |e| e.to_string())
        )))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// sshd, ready to be asked.
pub struct Sshd {
    binary: PathBuf,
    config: PathBuf,
    host_key: Option<PathBuf>,
    identity: Identity,
    /// Holds the key and the configuration's copy; None until sshd is found.
    scratch: Option<Scratch>,
}

/// What the first run learned: the settings for the first connection, and
/// the configuration's `Match` lines.
pub struct Discovery {
    pub dump: Dump,
    pub lines: Vec<MatchLine>,
}

/// Where sshd is, or why there is none.
pub enum Found {
    /// sshd is not installed (or has no configuration): no way in.
    Absent(String),
    Ready(Sshd, Discovery, Vec<String>),
}

/// Finds sshd for the tree under `root` (`/`: this machine), and asks it
/// once, for `user` over `first`, with its debug log.
pub fn open(root: &Path, user: &str, first: &Connection) -> Result<Found, AuditError> {
    let this_machine = root == Path::new("/");
    let tree_binary = root.join(SSHD.trim_start_matches('/'));
    if std::fs::symlink_metadata(&tree_binary).is_err() {
        return Ok(Found::Absent(format!(
            "sshd: {} is not installed: there is no sshd way in",
            tree_binary.display()
        )));
    }
    let Some(config_text) = tree::read(root, CONFIG)? else {
        return Ok(Found::Absent(format!(
            "sshd: {} is installed but {} is missing: sshd does not start without it, \
             there is no sshd way in",
            tree_binary.display(),
            root.join(CONFIG.trim_start_matches('/')).display()
        )));
    };
    let scratch = Scratch::new()?;
    let host_key = make_host_key(&scratch.0);
    let config = if this_machine {
        PathBuf::from(CONFIG)
    } else {
        let copy = scratch.0.join("sshd_config");
        write_for_nobody(&copy, includes::rewrite(&config_text, root)?.as_bytes())?;
        copy
    };
    // This machine's sshd as root. A tree's as nobody, its own first: the
    // tree's code, or the tree's configuration, never runs as root here.
    let mut failures = Vec::new();
    let mut candidates = Vec::new();
    if this_machine {
        candidates.push(PathBuf::from(SSHD));
    } else {
        if std::fs::symlink_metadata(&tree_binary).is_ok_and(|m| m.is_file()) {
            candidates.push(tree_binary.clone());
        } else {
            // A link would be followed on this machine, out of the tree.
            failures.push(format!("{} is not a regular file", tree_binary.display()));
        }
        if Path::new(SSHD).exists() {
            candidates.push(PathBuf::from(SSHD));
        }
    }
    let mut notes = Vec::new();
    for binary in candidates {
        let mut sshd = Sshd {
            binary: binary.clone(),
            config: config.clone(),
            host_key: host_key.clone(),
            identity: if this_machine {
                Identity::root()
            } else {
                nobody()
            },
            scratch: None,
        };
        sshd.give_key()?;
        let mut out = sshd.run(user, first, true);
        if this_machine
            && let Ok(o) = &out
            && privilege_separation_missing(o)
        {
            notes.push(format!(
                "sshd: {SSHD} -T ran as nobody: as root it wants /run/sshd and the sshd \
                 account (privilege separation), which this machine does not have ({})",
                last_words(o)
            ));
            sshd.identity = nobody();
            sshd.give_key()?;
            out = sshd.run(user, first, true);
        }
        let o = match out {
            Ok(o) => o,
            Err(e) => {
                failures.push(format!("{} does not run here: it {e}", binary.display()));
                continue;
            }
        };
        if o.code == 0 {
            let stdout = String::from_utf8_lossy(&o.stdout);
            let log = String::from_utf8_lossy(&o.stderr);
            let discovery = discovered(&stdout, &log, root, &config_text)?;
            if !this_machine {
                notes.push(if binary == Path::new(SSHD) {
                    format!(
                        "sshd: asked this machine's {SSHD} (as nobody) about {}'s \
                         configuration, since {}",
                        root.display(),
                        failures.join("; ")
                    )
                } else {
                    format!(
                        "sshd: asked {} (as nobody) about the tree's configuration",
                        binary.display()
                    )
                });
            }
            sshd.scratch = Some(scratch);
            return Ok(Found::Ready(sshd, discovery, notes));
        }
        // 126 and 127: the shell's and the dynamic loader's word for a
        // program that cannot be run (not one for this machine, a library
        // missing).
        let why = if o.code == 126 || o.code == 127 {
            "does not run here"
        } else {
            "-T failed"
        };
        let mut failure = format!(
            "{} {why} (exit status {}): {}",
            binary.display(),
            o.code,
            last_words(&o)
        );
        if sshd.identity.uid.as_raw() == NOBODY && failure.contains("Permission denied") {
            failure.push_str(
                " (sshd ran as nobody, and reads only what everyone may read: audit from \
                 inside the tree, chroot DIR twostep audit)",
            );
        }
        failures.push(failure);
    }
    if failures.is_empty() {
        failures.push(format!("{SSHD} is not installed on this machine either"));
    }
    Err(AuditError(format!(
        "cannot read sshd's settings: {}",
        failures.join("; ")
    )))
}

fn nobody() -> Identity {
    Identity {
        uid: nix::unistd::Uid::from_raw(NOBODY),
        gid: nix::unistd::Gid::from_raw(NOBODY),
        groups: Vec::new(),
    }
}

/// sshd's complaint when, as root, it finds no privilege separation.
fn privilege_separation_missing(o: &Output) -> bool {
    o.code != 0 && {
        let err = String::from_utf8_lossy(&o.stderr);
        err.contains("Missing privilege separation directory")
            || err.contains("Privilege separation user")
    }
}

/// What sshd said last, without its debug lines: why it failed.
fn last_words(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr);
    let said: Vec<&str> = err
        .lines()
        .filter(|l| !l.starts_with("debug") && !l.trim().is_empty())
        .collect();
    let start = said.len().saturating_sub(4);
    let text = said[start..].join("; ");
    let mut text: String = text.chars().take(1000).collect();
    if text.is_empty() {
        text = "it said nothing".into();
    }
    text
}

/// The first run's output read: its settings, and its `Match` lines (with
/// the checks that they were all seen and that no `Include` left the tree).
fn discovered(
    stdout: &str,
    log: &str,
    root: &Path,
    config_text: &str,
) -> Result<Discovery, AuditError> {
    let dump = Dump::parse(stdout);
    let lines = settings::match_lines(log);
    let (files, patterns) = settings::includes(log);
    if root != Path::new("/") {
        let inside = format!("{}/", root.display());
        if let Some(p) = patterns.iter().find(|p| !p.starts_with(&inside)) {
            return Err(AuditError(format!(
                "sshd's configuration under {} includes {p}, outside the tree: twostep \
                 moves sshd_config's own Include lines into the tree, not those of the \
                 files they include; audit from inside the tree (chroot {} twostep audit)",
                root.display(),
                root.display()
            )));
        }
    }
    if lines.is_empty() {
        let mut texts = vec![config_text.to_string()];
        for f in &files {
            let in_tree = Path::new(f).strip_prefix(root).unwrap_or(Path::new(f));
            if let Ok(Some(t)) = tree::read(root, &format!("/{}", in_tree.display())) {
                texts.push(t);
            }
        }
        if texts.iter().any(|t| settings::mentions_match(t)) {
            return Err(AuditError(
                "sshd's configuration has Match lines, but sshd's debug log did not show \
                 them (another sshd version?): twostep cannot tell whom and from where to \
                 ask about"
                    .into(),
            ));
        }
    }
    Ok(Discovery { dump, lines })
}

/// A throwaway ed25519 host key for sshd -T, or None when ssh-keygen is
/// missing or fails (the configuration's own keys may do).
fn make_host_key(dir: &Path) -> Option<PathBuf> {
    let key = dir.join("host_key");
    let args: [&OsStr; 9] = [
        "-q".as_ref(),
        "-t".as_ref(),
        "ed25519".as_ref(),
        "-N".as_ref(),
        "".as_ref(),
        "-C".as_ref(),
        "twostep-audit".as_ref(),
        "-f".as_ref(),
        key.as_os_str(),
    ];
    spawn::run(
        Path::new(SSH_KEYGEN),
        &args,
        &[],
        TIMEOUT,
        &Identity::root(),
    )
    .ok()?;
    let _ = std::fs::remove_file(dir.join("host_key.pub"));
    Some(key)
}

/// A file of the scratch directory that sshd, run as nobody, reads:
/// root's, readable by nobody's group only.
fn write_for_nobody(path: &Path, bytes: &[u8]) -> Result<(), AuditError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |e: std::io::Error| AuditError(format!("{}: {e}", path.display()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    std::os::unix::fs::fchown(&f, Some(0), Some(NOBODY)).map_err(err)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o640))
        .map_err(err)
}

impl Sshd {
    /// The key as sshd accepts it: as root, root's alone (it refuses a key
    /// of its own user that others may read); as nobody, root's and
    /// readable by nobody's group, so that nobody may read but not change
    /// it.
    fn give_key(&self) -> Result<(), AuditError> {
        let Some(key) = &self.host_key else {
            return Ok(());
        };
        let (gid, mode) = if self.identity.uid.is_root() {
            (0, 0o600)
        } else {
            (NOBODY, 0o640)
        };
        std::os::unix::fs::chown(key, Some(0), Some(gid))
            .and_then(|()| std::fs::set_permissions(key, std::fs::Permissions::from_mode(mode)))
            .map_err(|e| AuditError(format!("{}: {e}", key.display())))
    }

    fn args(&self, user: &str, connection: &Connection, debug: bool) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = vec!["-T".into()];
        if debug {
            args.push("-ddd".into());
        }
        args.push("-f".into());
        args.push(self.config.clone().into());
        if let Some(key) = &self.host_key {
            args.push("-h".into());
            args.push(key.clone().into());
        }
        args.push("-C".into());
        args.push(connection.spec(user).into());
        args
    }

    fn run(&self, user: &str, connection: &Connection, debug: bool) -> Result<Output, RunError> {
        let args = self.args(user, connection, debug);
        let args: Vec<&OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        spawn::run_for_output(
            &self.binary,
            &args,
            &[],
            TIMEOUT,
            &self.identity,
            MAX_OUTPUT,
        )
    }

    /// sshd's settings for `user` over `connection`.
    pub fn ask(&self, user: &str, connection: &Connection) -> Result<Dump, AuditError> {
        let what = || format!("{} -T -C {}", self.binary.display(), connection.spec(user));
        match self.run(user, connection, false) {
            Ok(o) if o.code == 0 => Ok(Dump::parse(&String::from_utf8_lossy(&o.stdout))),
            Ok(o) => Err(AuditError(format!(
                "{} failed (exit status {}): {}",
                what(),
                o.code,
                last_words(&o)
            ))),
            Err(e) => Err(AuditError(format!("{}: it {e}", what()))),
        }
    }

    /// [`Sshd::ask`] for each (user, connection), several at once; the
    /// answers in the same order, or the first error.
    pub fn ask_all(&self, jobs: &[(String, Connection)]) -> Result<Vec<Dump>, AuditError> {
        let workers = std::thread::available_parallelism()
            .map_or(2, |n| n.get() * 2)
            .clamp(1, MAX_PARALLEL)
            .min(jobs.len().max(1));
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let answers: Mutex<Vec<Option<Result<Dump, AuditError>>>> =
            Mutex::new((0..jobs.len()).map(|_| None).collect());
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    loop {
                        if failed.load(Ordering::Relaxed) {
                            return;
                        }
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((user, connection)) = jobs.get(i) else {
                            return;
                        };
                        let answer = self.ask(user, connection);
                        if answer.is_err() {
                            failed.store(true, Ordering::Relaxed);
                        }
                        let mut all = answers.lock().unwrap_or_else(|p| p.into_inner());
                        if let Some(slot) = all.get_mut(i) {
                            *slot = Some(answer);
                        }
                    }
                });
            }
        });
        let answers = answers.into_inner().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::with_capacity(jobs.len());
        for (i, answer) in answers.into_iter().enumerate() {
            match answer {
                Some(Ok(dump)) => out.push(dump),
                Some(Err(e)) => return Err(e),
                None if failed.load(Ordering::Relaxed) => continue,
                None => {
                    return Err(AuditError(format!(
                        "sshd was not asked about {} (internal error)",
                        jobs.get(i).map_or("?", |j| j.0.as_str())
                    )));
                }
            }
        }
        if out.len() != jobs.len() {
            return Err(AuditError("sshd was not asked about every account".into()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sshd_s_last_words_skip_its_debug_lines() {
        let o = Output {
            code: 255,
            stdout: Vec::new(),
            stderr: b"debug1: a\ndebug3: b\n/tmp/c line 3: Bad configuration option: Foo\n\
                      /tmp/c: terminating, 1 bad configuration options\n"
                .to_vec(),
        };
        assert_eq!(
            last_words(&o),
            "/tmp/c line 3: Bad configuration option: Foo; /tmp/c: terminating, 1 bad \
             configuration options"
        );
        let o = Output {
            code: 1,
            ..Output::default()
        };
        assert_eq!(last_words(&o), "it said nothing");
    }
}
