//! Issue 21, item 2: a local user who starts a setuid PAM host (su, sudo,
//! twostep-self) can stop it, with SIGSTOP or Ctrl-Z, or starve it: the
//! caller's real uid lets them. Stopped while the module holds a user's
//! lock or one of the host's four argon2 slots, it held them for as long
//! as the caller liked: four users' stopped logins made every other
//! user's recovery code wait 10 s and fail.
//!
//! Here the host is pamdrive installed setuid root (as su is) in a
//! directory only the test users' group may enter, run by each of four
//! users for their own account with a recovery-shaped answer, while
//! tests/c/stopper.c, run as that user, stops it and looks in /proc/locks
//! until it holds two locks (its state and an argon2 slot). Another user's
//! right recovery code must then still log in at once.

mod common;
#[path = "common/etc_overlay.rs"]
mod etc_overlay;
#[path = "common/pty.rs"]
mod pty;
use common::*;
use etc_overlay::root_dir;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ATTACKERS: [&str; 4] = ["ts-stop-1", "ts-stop-2", "ts-stop-3", "ts-stop-4"];
const VICTIM: &str = "ts-stop-victim";
const GROUP: &str = "ts-stop";

/// pamdrive, root's, mode 4755, in a root:GROUP 0750 directory on a mount
/// that honours setuid bits: only the test users can run it.
fn setuid_pamdrive(name: &str) -> PathBuf {
    let dir = root_dir(&format!("twostep-test-{name}-bin-{}", std::process::id()));
    let gid = nix::unistd::Group::from_name(GROUP).unwrap().unwrap().gid;
    std::os::unix::fs::chown(&dir, Some(0), Some(gid.as_raw())).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
    let bin = dir.join("pamdrive");
    std::fs::copy(pamdrive(), &bin).unwrap();
    std::os::unix::fs::chown(&bin, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o4755)).unwrap();
    bin
}

/// `setpriv` as `user`, with their groups: the command runs with their
/// real uid, as if they had typed it.
fn as_user(user: &str) -> Command {
    let gid = nix::unistd::User::from_name(user)
        .unwrap()
        .unwrap()
        .gid
        .to_string();
    let mut c = Command::new("setpriv");
    c.args(["--reuid", user, "--regid", &gid, "--init-groups", "--"]);
    c
}

/// One user's own login through the setuid host (after `wrapper`, run as
/// the user too), waiting at the prompt.
fn login_at_prompt(
    rig: &Rig,
    bin: &Path,
    user: &str,
    wrapper: &[&str],
) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = as_user(user)
        .args(wrapper)
        .arg(bin)
        .arg("--confdir")
        .arg(&rig.confdir)
        .args(["--service", "twostep", "--user", user, "--nodelay"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("PROMPT_") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "no prompt");
    }
    (child, out)
}

#[test]
fn a_user_cannot_stop_a_setuid_login_while_it_holds_what_others_wait_for() {
    for u in ATTACKERS.iter().chain([&VICTIM]) {
        ensure_user(u, None);
    }
    ensure_group(GROUP, &ATTACKERS);
    let rig = Rig::new("stop", "");
    for u in ATTACKERS {
        rig.enroll(u, SECRET);
    }
    let victim = rig.enroll_json_secret(VICTIM, SECRET, &["--force"]);
    let code = victim["recovery_codes"][0].as_str().unwrap().to_string();
    let bin = setuid_pamdrive("stop");
    let mut logins = Vec::new();
    let mut caught = Vec::new();
    for u in ATTACKERS {
        let (mut child, out) = login_at_prompt(&rig, &bin, u, &[]);
        let stopper = as_user(u)
            .arg(stopper())
            .args([&child.id().to_string(), "2", "2"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.as_mut().unwrap(), "abcde-fghjk").unwrap();
        let said = stopper.wait_with_output().unwrap();
        caught.push(String::from_utf8_lossy(&said.stdout).into_owned());
        logins.push((child, out));
    }
    // Another user's right recovery code, while the four are as their
    // users left them.
    let start = Instant::now();
    let l = rig.login(VICTIM, &code);
    let took = start.elapsed();
    for (mut child, _) in logins {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = std::fs::remove_dir_all(bin.parent().unwrap());
    let held = caught.iter().filter(|s| s.starts_with("held")).count();
    assert_eq!(
        (l.code, held),
        (PAM_SUCCESS, 0),
        "the victim's login took {took:?} ({}); the users stopped {held} of 4 logins holding locks: {caught:?}",
        l.out.trim()
    );
    assert!(took < Duration::from_secs(3), "took {took:?}");
    // The kernel refused their signals while the module ran.
    assert!(
        caught
            .iter()
            .all(|s| s.contains("never") && !s.contains("refused 0")),
        "{caught:?}"
    );
}

/// The scheduling a caller can set before starting a setuid host (an idle
/// policy, nice 19, the idle I/O class) would starve it beside a busy loop
/// while it holds a lock: inside the module it runs as any process does.
#[test]
fn a_caller_cannot_starve_a_setuid_login_inside_the_module() {
    let u = ATTACKERS[0];
    // Every member of the group, not only this test's: on a fresh machine
    // the other test may not have made them yet.
    for a in ATTACKERS {
        ensure_user(a, None);
    }
    ensure_group(GROUP, &ATTACKERS);
    let rig = Rig::new("starve", "");
    rig.enroll(u, SECRET);
    let bin = setuid_pamdrive("starve");
    let wrapper = [
        "chrt", "--idle", "0", "nice", "-n", "19", "ionice", "-c", "3",
    ];
    let (mut child, _out) = login_at_prompt(&rig, &bin, u, &wrapper);
    // At the prompt, inside the module: /proc/PID/stat's nice (19th field)
    // and policy (41st), and the I/O class.
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap();
    let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // `fields` starts at the 3rd field.
    let (nice, policy) = (fields[19 - 3], fields[41 - 3]);
    let io = Command::new("ionice")
        .args(["-p", &child.id().to_string()])
        .output()
        .unwrap();
    let io = String::from_utf8_lossy(&io.stdout).trim().to_string();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(bin.parent().unwrap());
    assert_eq!(
        (nice, policy, io.as_str()),
        ("0", "0", "none: prio 0"),
        "nice, policy (0 = SCHED_OTHER, 5 = SCHED_IDLE), I/O class"
    );
}
