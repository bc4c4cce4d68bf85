//! What sendmail and the SMS command inherit from whoever made twostep
//! send: nothing. They are started from inside setuid programs (the real
//! `su`, the installed `twostep-self`), where only the effective uid is
//! root's and everything else is the caller's to choose. Here an ordinary
//! user (CALLER, with groups of their own) chooses the worst: umask 000,
//! /tmp as the working directory, HOME at a directory of theirs, low soft
//! limits on file size and open files, nice 19, SCHED_BATCH and the idle
//! I/O class, all on a pty that is their controlling terminal.
//!
//! The program is `tests/c/recorder.c`, a C program (a `#!/bin/sh` one
//! would run under dash, which drops to the real uid and hides the fault),
//! installed root-owned 0755 in a root-owned directory as twostep requires.
//! It writes what it was started with next to itself, and the tests compare
//! that with the contract (INTERFACE.md, "What twostep runs, and from
//! where"): real, effective and saved uid and gid 0 and no supplementary
//! groups, or exactly a named account's; `HOME=/` and PATH only; `/`;
//! umask 022; the fixed limits; no controlling terminal; no descriptor
//! beyond 0-2; a session of its own; default scheduling.
//!
//! A control run of the recorder through the same hostile wrapper, as the
//! caller, shows that the wrapper really sets what the tests then expect
//! to be gone. Needs root, util-linux (unshare, setpriv, script, chrt,
//! ionice) and a C compiler.

mod common;
#[path = "common/etc_overlay.rs"]
mod etc_overlay;
#[path = "common/pty.rs"]
mod pty;
#[path = "common/sshd.rs"]
mod sshd;

use common::*;
use etc_overlay::{EtcOverlay, install_twostep_self, root_dir};
use pty::Pty;
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The ordinary user who starts it all, a member of GROUPS.
const CALLER: &str = "ts-kid-a";
const GROUPS: [&str; 2] = ["ts-kid-g", "ts-kid-h"];
/// The account CALLER tries to `su` to.
const TARGET: &str = "ts-kid-b";
/// The account `email.user` / `sms.user` name, a member of GATEWAY_GROUPS.
const GATEWAY: &str = "ts-kid-m";
const GATEWAY_GROUPS: [&str; 2] = ["ts-kid-gw1", "ts-kid-gw2"];
const PASSWORD: &str = "kid pass-W0rd";
const STEP: Duration = Duration::from_secs(30);
const PHONE: &str = "+4915112345678";

/// The limits every program gets (src/delivery/child.rs's table, written
/// out again here as the contract): name, soft, hard.
const LIMITS: [(&str, &str, &str); 16] = [
    ("CPU", "unlimited", "unlimited"),
    ("FSIZE", "unlimited", "unlimited"),
    ("DATA", "unlimited", "unlimited"),
    ("STACK", "8388608", "unlimited"),
    ("CORE", "0", "0"),
    ("RSS", "unlimited", "unlimited"),
    ("NPROC", "4096", "4096"),
    ("NOFILE", "1024", "4096"),
    ("MEMLOCK", "8388608", "8388608"),
    ("AS", "unlimited", "unlimited"),
    ("LOCKS", "unlimited", "unlimited"),
    ("SIGPENDING", "4096", "4096"),
    ("MSGQUEUE", "819200", "819200"),
    ("NICE", "0", "0"),
    ("RTPRIO", "0", "0"),
    ("RTTIME", "unlimited", "unlimited"),
];

/// The caller's settings, then `exec "$@"`: as `sh -c SCRIPT` + the command.
const HOSTILE: &str = r#"cd /tmp && umask 000 && ulimit -S -f 1 && ulimit -S -n 16 &&
HOME=$HOSTILE_HOME && unset HOSTILE_HOME && export HOME &&
exec ionice -c 3 chrt -b 0 nice -n 19 "$0" "$@""#;

fn ensure_accounts() {
    for user in [CALLER, TARGET] {
        ensure_user(user, Some(PASSWORD));
    }
    ensure_user(GATEWAY, None);
    for g in GROUPS {
        ensure_group(g, &[CALLER]);
    }
    for g in GATEWAY_GROUPS {
        ensure_group(g, &[GATEWAY]);
    }
}

fn uid_of(user: &str) -> u32 {
    nix::unistd::User::from_name(user)
        .unwrap()
        .unwrap()
        .uid
        .as_raw()
}

/// The groups of `user` as `id -G` (coreutils, not our lookup) lists them.
fn groups_of(user: &str) -> BTreeSet<String> {
    let out = Command::new("id").args(["-G", user]).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// The recorder, installed root-owned in a root-owned directory of its own.
struct Recorder {
    dir: PathBuf,
}

impl Recorder {
    /// `writer`: the account that will run it, if not root (its record
    /// file is made theirs beforehand: it may not create one there).
    fn install(name: &str, writer: Option<&str>) -> Recorder {
        static BUILT: OnceLock<PathBuf> = OnceLock::new();
        let built = BUILT.get_or_init(|| compile_c("recorder"));
        // One directory per recorder, also when two tests of this process
        // install one of the same name at once (each has its own runs).
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = root_dir(&format!("twostep-kid-{name}-{}-{n}", std::process::id()));
        let r = Recorder { dir };
        std::fs::copy(built, r.path()).unwrap();
        std::os::unix::fs::chown(r.path(), Some(0), Some(0)).unwrap();
        std::fs::set_permissions(r.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        if let Some(user) = writer {
            // The account may not exist yet on a fresh machine: this runs
            // before the test's Setting, which makes them.
            ensure_accounts();
            std::fs::write(r.out(), b"").unwrap();
            std::os::unix::fs::chown(r.out(), Some(uid_of(user)), None).unwrap();
        }
        r
    }

    fn path(&self) -> PathBuf {
        self.dir.join("recorder")
    }

    fn out(&self) -> PathBuf {
        self.dir.join("recorder.out")
    }

    /// What each run saw, in order.
    fn runs(&self) -> Vec<Seen> {
        let text = std::fs::read_to_string(self.out()).unwrap_or_default();
        text.split_inclusive("end\n")
            .filter(|r| r.ends_with("end\n"))
            .map(Seen::parse)
            .collect()
    }

    /// Waits (the program may still be writing) for `n` runs.
    fn wait_for(&self, n: usize) -> Vec<Seen> {
        let deadline = Instant::now() + STEP;
        loop {
            let runs = self.runs();
            if runs.len() >= n || Instant::now() > deadline {
                return runs;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One run's record: `key rest-of-line` lines.
struct Seen {
    lines: Vec<(String, String)>,
}

impl Seen {
    fn parse(text: &str) -> Seen {
        let lines = text
            .lines()
            .map(|l| {
                let (k, v) = l.split_once(' ').unwrap_or((l, ""));
                (k.to_string(), v.to_string())
            })
            .collect();
        Seen { lines }
    }

    fn all(&self, key: &str) -> Vec<&str> {
        self.lines
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn one(&self, key: &str) -> &str {
        let all = self.all(key);
        assert_eq!(all.len(), 1, "{key}: {all:?}");
        all[0]
    }

    fn raw(&self) -> String {
        self.lines
            .iter()
            .map(|(k, v)| format!("{k} {v}\n"))
            .collect()
    }
}

/// Who the program should be: uid, gid, supplementary groups.
struct Expected {
    uid: u32,
    gid: u32,
    groups: BTreeSet<String>,
}

impl Expected {
    fn root() -> Expected {
        Expected {
            uid: 0,
            gid: 0,
            groups: BTreeSet::new(),
        }
    }

    fn account(user: &str) -> Expected {
        let u = nix::unistd::User::from_name(user).unwrap().unwrap();
        Expected {
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
            groups: groups_of(user),
        }
    }
}

/// Everything the run saw that the contract does not allow, one line each.
fn departures(seen: &Seen, want: &Expected) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |what: &str, got: String, wanted: String| {
        if got != wanted {
            out.push(format!("{what}: got {got:?}, want {wanted:?}"));
        }
    };
    check(
        "uid (real effective saved)",
        seen.one("uid").into(),
        format!("{0} {0} {0}", want.uid),
    );
    check(
        "gid (real effective saved)",
        seen.one("gid").into(),
        format!("{0} {0} {0}", want.gid),
    );
    let groups: BTreeSet<String> = seen
        .one("groups")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    check(
        "supplementary groups",
        format!("{groups:?}"),
        format!("{:?}", want.groups),
    );
    check("umask", seen.one("umask").into(), "0022".into());
    check("cwd", seen.one("cwd").into(), "/".into());
    let mut env = seen.all("env");
    env.sort();
    check(
        "environment",
        format!("{env:?}"),
        format!("{:?}", ["HOME=/", "PATH=/usr/sbin:/usr/bin:/sbin:/bin"]),
    );
    let limits = seen.all("rlimit");
    for (name, soft, hard) in LIMITS {
        let got = limits
            .iter()
            .find(|l| l.split(' ').next() == Some(name))
            .map_or("missing".to_string(), |l| l.to_string());
        check(
            &format!("limit {name} (soft hard)"),
            got,
            format!("{name} {soft} {hard}"),
        );
    }
    check("controlling tty", seen.one("tty").into(), "no".into());
    check("descriptors beyond 0-2", seen.one("fds").into(), "".into());
    let pid = seen.one("pid");
    check("session id", seen.one("sid").into(), pid.into());
    check("process group", seen.one("pgid").into(), pid.into());
    check("nice", seen.one("nice").into(), "0".into());
    check("scheduling policy", seen.one("sched").into(), "0".into());
    // None blocked: the stop signals caller::Shield blocks around the
    // module are not the program's.
    check("blocked signals", seen.one("sigblk").into(), "".into());
    // IOPRIO_CLASS_NONE, or best effort level 4, which the kernel reports
    // for it: the default of a process started afresh.
    let ioprio = seen.one("ioprio");
    if ioprio != "0" && ioprio != "16388" {
        out.push(format!("I/O priority: got {ioprio}, want 0 (none)"));
    }
    out
}

fn assert_nothing_of_the_caller(seen: &Seen, want: &Expected) {
    let wrong = departures(seen, want);
    assert!(
        wrong.is_empty(),
        "the program was started with what the contract forbids:\n  {}\n\nits record:\n{}",
        wrong.join("\n  "),
        seen.raw()
    );
}

/// A directory of CALLER's, as HOME.
fn callers_home() -> PathBuf {
    let home = PathBuf::from(format!("/tmp/twostep-kid-home-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(uid_of(CALLER)), None).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    home
}

/// `sh -c HOSTILE` + `command`, with CALLER's home for HOME.
fn hostile<'a>(home: &'a str, command: &[&'a str]) -> Vec<String> {
    let mut v = vec![
        "env".to_string(),
        format!("HOSTILE_HOME={home}"),
        "sh".into(),
        "-c".into(),
        HOSTILE.into(),
    ];
    v.extend(command.iter().map(|s| s.to_string()));
    v
}

/// The setting: a rig whose config is also /etc/twostep/twostep.toml,
/// with twostep-self's and su's PAM services in the overlay /etc.
struct Setting {
    rig: Rig,
    etc: EtcOverlay,
    bin_dir: PathBuf,
    home: PathBuf,
}

impl Setting {
    fn new(name: &str, config: &str) -> Setting {
        ensure_accounts();
        let rig = Rig::new(&format!("kid-{name}"), config);
        let etc = EtcOverlay::new(&rig.root);
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("debian/twostep-self.pam");
        etc.put("pam.d/twostep-self", &std::fs::read(shipped).unwrap());
        etc.put("pam.d/su", sshd::canonical_stack(&rig.config).as_bytes());
        etc.put("twostep/twostep.toml", &std::fs::read(&rig.config).unwrap());
        Setting {
            rig,
            etc,
            bin_dir: install_twostep_self(&format!("kid-{name}")),
            home: callers_home(),
        }
    }

    /// `command` run by CALLER through the hostile settings, on a pty.
    fn as_caller(&self, command: &[&str]) -> Pty {
        let home = self.home.display().to_string();
        let line = hostile(&home, command);
        let refs: Vec<&str> = line.iter().map(String::as_str).collect();
        self.etc.spawn(CALLER, &refs)
    }

    /// `twostep-self enroll ARGS` by CALLER, through `wrapper` (a command
    /// that execs its arguments, or nothing), the password given.
    fn enroll(&self, wrapper: &[&str], args: &[&str]) -> Pty {
        let bin = self.bin_dir.join("twostep-self").display().to_string();
        let mut command: Vec<&str> = wrapper.to_vec();
        command.extend([bin.as_str(), "enroll"]);
        command.extend(args);
        let mut pty = self.as_caller(&command);
        pty.expect_or_fail("Password: ", STEP);
        pty.send_line(PASSWORD);
        pty
    }

    /// CALLER runs `su TARGET` and types a wrong password, which locks
    /// TARGET (the config's one-failure tier); the module, inside su,
    /// mails the notice.
    fn lock_target_through_su(&self) {
        let mut pty = self.as_caller(&["su", TARGET, "-c", "true"]);
        pty.expect_or_fail("Password: ", STEP);
        pty.send_line("not the password");
        pty.expect_or_fail("this account is locked", STEP);
        pty.wait(STEP);
    }

    /// The recorder itself, run by CALLER as the others are: what the
    /// hostile wrapper gives a program that nothing cleans up after.
    fn control(&self) -> Seen {
        let control = Recorder::install("control", Some(CALLER));
        let path = control.path().display().to_string();
        // Its stdin from /dev/null: it reads to the end.
        let no_input = r#"exec "$0" "$@" </dev/null"#;
        let mut pty = self.as_caller(&["sh", "-c", no_input, &path, "control"]);
        assert_eq!(pty.wait(STEP), Some(0), "{}", pty.output());
        let mut runs = control.runs();
        assert_eq!(runs.len(), 1);
        runs.remove(0)
    }
}

impl Drop for Setting {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.bin_dir);
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// The control: each setting the tests expect to be undone is in force
/// for a program the caller starts, so a test that passes has seen it go.
fn assert_hostile(control: &Seen) {
    let caller_groups = groups_of(CALLER);
    let uid = uid_of(CALLER);
    assert_eq!(control.one("uid"), format!("{uid} {uid} {uid}"));
    let groups: BTreeSet<String> = control
        .one("groups")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(groups, caller_groups);
    assert!(groups.len() >= 3, "{groups:?}: the caller has extra groups");
    assert_eq!(control.one("umask"), "0000");
    assert_eq!(control.one("cwd"), "/tmp");
    assert!(
        control
            .all("env")
            .iter()
            .any(|e| e.starts_with("HOME=/tmp/twostep-kid-home-")),
        "{}",
        control.raw()
    );
    let limits = control.all("rlimit");
    assert!(
        limits.iter().any(|l| l.starts_with("FSIZE 512 ")),
        "{limits:?}"
    );
    assert!(
        limits.iter().any(|l| l.starts_with("NOFILE 16 ")),
        "{limits:?}"
    );
    assert_eq!(control.one("tty"), "yes");
    assert_eq!(control.one("nice"), "19");
    assert_eq!(control.one("sched"), "3", "SCHED_BATCH");
    let ioprio: u32 = control.one("ioprio").parse().unwrap();
    assert_eq!(ioprio >> 13, 3, "the idle I/O class");
}

/// `delivery_failed` records.
fn delivery_failures(rig: &mut Rig) -> Vec<Event> {
    rig.events()
        .into_iter()
        .filter(|e| e.event() == "delivery_failed")
        .collect()
}

#[test]
fn twostep_self_runs_sendmail_as_root_with_nothing_of_the_caller() {
    let recorder = Recorder::install("self-mail", None);
    let s = Setting::new(
        "self-mail",
        &format!(
            "[self_service]\nenabled = true\n[email]\nsendmail = \"{}\"\n",
            recorder.path().display()
        ),
    );
    assert_hostile(&s.control());

    let address = format!("{CALLER}@localhost");
    let mut pty = s.enroll(&[], &["--method", "email", "--email", &address]);
    pty.expect_or_fail("A confirmation code was sent", STEP);
    let runs = recorder.wait_for(1);
    assert_eq!(runs.len(), 1, "{}", pty.output());
    assert_eq!(runs[0].one("argv"), format!("-i -- {address}"));
    assert_nothing_of_the_caller(&runs[0], &Expected::root());
}

#[test]
fn su_runs_the_lock_notice_as_root_with_nothing_of_the_caller() {
    let recorder = Recorder::install("su-notice", None);
    let mut s = Setting::new(
        "su-notice",
        &format!(
            "[lockout]\ntiers = [{{failures = 1, lock = \"5m\"}}]\n\
             [email]\nsendmail = \"{}\"\naddress = \"{{user}}@localhost\"\n\
             [notify]\nevents = [\"locked\"]\n",
            recorder.path().display()
        ),
    );
    s.rig.enroll(TARGET, SECRET);
    s.rig.events();
    assert_hostile(&s.control());

    // No password needed: one wrong one locks TARGET.
    s.lock_target_through_su();
    let runs = recorder.wait_for(1);
    let records = s.rig.events();
    assert_eq!(runs.len(), 1, "{records:#?}");
    assert!(
        records.iter().any(|e| e.event() == "locked"),
        "{records:#?}"
    );
    assert_eq!(runs[0].one("argv"), format!("-i -- {TARGET}@localhost"));
    assert_nothing_of_the_caller(&runs[0], &Expected::root());
}

#[test]
fn a_named_account_runs_the_sms_command_with_its_own_ids_and_groups() {
    let recorder = Recorder::install("self-sms", Some(GATEWAY));
    let s = Setting::new(
        "self-sms",
        &format!(
            "[self_service]\nenabled = true\n[sms]\ncommand = \"{}\"\nuser = \"{GATEWAY}\"\n",
            recorder.path().display()
        ),
    );
    let mut pty = s.enroll(&[], &["--method", "sms", "--phone", PHONE]);
    pty.expect_or_fail("A confirmation code was sent", STEP);
    let runs = recorder.wait_for(1);
    assert_eq!(runs.len(), 1, "{}", pty.output());
    assert_eq!(runs[0].one("argv"), PHONE);
    let want = Expected::account(GATEWAY);
    assert_eq!(want.groups.len(), 3, "{:?}", want.groups);
    assert_nothing_of_the_caller(&runs[0], &want);
}

#[test]
fn an_account_that_does_not_exist_is_a_delivery_failure_never_root() {
    // Through su's lock notice (email.user) and twostep-self's code
    // (sms.user): neither program runs at all.
    let mail = Recorder::install("gone-mail", None);
    let sms = Recorder::install("gone-sms", None);
    let gone = "ts-kid-no-such-account";
    let mut s = Setting::new(
        "gone",
        &format!(
            "[self_service]\nenabled = true\n[lockout]\ntiers = [{{failures = 1, lock = \"5m\"}}]\n\
             [email]\nsendmail = \"{}\"\naddress = \"{{user}}@localhost\"\nuser = \"{gone}\"\n\
             [sms]\ncommand = \"{}\"\nuser = \"{gone}\"\n\
             [notify]\nevents = [\"locked\"]\n",
            mail.path().display(),
            sms.path().display()
        ),
    );
    s.rig.enroll(TARGET, SECRET);
    s.rig.events();

    s.lock_target_through_su();
    let mut pty = s.enroll(&[], &["--method", "sms", "--phone", PHONE]);
    pty.expect_or_fail("no code could be sent", STEP);
    assert_eq!(pty.wait(STEP), Some(1), "{}", pty.output());
    assert!(pty.output().contains(gone), "{}", pty.output());

    let failed = delivery_failures(&mut s.rig);
    let reasons: Vec<(Option<&str>, Option<&str>)> = failed
        .iter()
        .map(|e| (e.get("method"), e.get("reason")))
        .collect();
    assert_eq!(
        reasons,
        [
            (Some("email"), Some("account")),
            (Some("sms"), Some("account"))
        ],
        "{failed:#?}"
    );
    assert!(
        failed[0].get("detail").unwrap().contains(gone),
        "{failed:#?}"
    );
    assert!(mail.runs().is_empty() && sms.runs().is_empty(), "it ran");

    // twostep check says so too.
    let out = s.rig.cli(&["check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    for key in ["email.user", "sms.user"] {
        assert!(
            text.lines().any(|l| l.starts_with(key) && l.contains(gone)),
            "{key}: {text}"
        );
    }
}

#[test]
fn a_lowered_hard_limit_is_raised_or_nothing_runs() {
    // A hard limit only root with CAP_SYS_RESOURCE may raise: where it
    // can, the program gets the table's; where it cannot (a container
    // without it), nothing runs, and the failure says why.
    let recorder = Recorder::install("hard", None);
    let mut s = Setting::new(
        "hard",
        &format!(
            "[self_service]\nenabled = true\n[email]\nsendmail = \"{}\"\n",
            recorder.path().display()
        ),
    );
    s.rig.events();
    let address = format!("{CALLER}@localhost");
    let lowered = ["sh", "-c", r#"ulimit -H -n 256 && exec "$0" "$@""#];
    let mut pty = s.enroll(&lowered, &["--method", "email", "--email", &address]);
    if root_may_raise_hard_limits() {
        pty.expect_or_fail("A confirmation code was sent", STEP);
        let runs = recorder.wait_for(1);
        assert_eq!(runs.len(), 1, "{}", pty.output());
        assert_nothing_of_the_caller(&runs[0], &Expected::root());
    } else {
        pty.expect_or_fail("no code could be sent", STEP);
        assert_eq!(pty.wait(STEP), Some(1), "{}", pty.output());
        assert!(recorder.runs().is_empty(), "it ran");
        let failed = delivery_failures(&mut s.rig);
        assert_eq!(failed.len(), 1, "{failed:#?}");
        assert_eq!(failed[0].get("reason"), Some("spawn"));
        let detail = failed[0].get("detail").unwrap();
        assert!(
            detail.contains("raise the hard limit NOFILE from 256 to 4096"),
            "{detail}"
        );
    }
}
