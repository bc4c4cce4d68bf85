//! End to end at the console: login(1) and su(1) on a pseudo-terminal,
//! through the canonical stack.
//!
//! Their PAM services are the fixed names `login` and `su`. Rather than edit
//! the system's files, each run happens in a private mount namespace
//! (`unshare -m`) where a copy of /etc/pam.d, holding the test stack under
//! those names, is bind-mounted over /etc/pam.d. The system's own files are
//! never touched, and the mount disappears with the process.

mod common;
#[path = "common/pty.rs"]
mod pty;
#[path = "common/sshd.rs"]
mod sshd;

use common::*;
use pty::Pty;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const PASSWORD: &str = "console pass-W0rd";
const STEP: Duration = Duration::from_secs(20);

/// A copy of /etc/pam.d with the test stack as `login`, `su` and `su-l`.
fn private_pam_dir(rig: &Rig) -> PathBuf {
    let dir = rig.root.join("etc-pam.d");
    let st = Command::new("cp")
        .arg("-a")
        .arg("/etc/pam.d")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(st.success(), "cp -a /etc/pam.d");
    let stack = sshd::canonical_stack(&rig.config);
    for service in ["login", "su", "su-l"] {
        std::fs::write(dir.join(service), &stack).unwrap();
    }
    dir
}

/// `argv` in a private mount namespace that sees `pam_dir` as /etc/pam.d.
fn in_private_pam(pam_dir: &std::path::Path, argv: &[&str]) -> Pty {
    let mut full = PRIVATE_MOUNTS.to_vec();
    full.extend([
        "sh",
        "-c",
        r#"mount --bind "$0" /etc/pam.d && exec "$@""#,
        pam_dir.to_str().unwrap(),
    ]);
    full.extend_from_slice(argv);
    Pty::spawn(&full)
}

fn setup(test: &str, user: &str) -> (Rig, PathBuf) {
    ensure_user(user, Some(PASSWORD));
    let mut rig = Rig::new(&format!("console-{test}"), "");
    rig.enroll(user, SECRET);
    let pam_dir = private_pam_dir(&rig);
    rig.events();
    (rig, pam_dir)
}

/// A console record: a terminal, and no remote host.
fn assert_console(ev: &Event, service: &str, user: &str) {
    assert_eq!(ev.get("user"), Some(user), "{}", ev.raw);
    assert_eq!(ev.get("service"), Some(service), "{}", ev.raw);
    assert_eq!(ev.get("rhost"), Some(""), "{}", ev.raw);
    let tty = ev.get("tty").unwrap_or("");
    assert!(tty.contains("pts/"), "tty is the pty: {}", ev.raw);
}

/// Answers the password and the code; returns the session so far.
fn answer(pty: &mut Pty, code: &str) {
    assert_eq!(
        pty.expect(&["Password: "], STEP),
        Some(0),
        "password prompt: {}",
        pty.output()
    );
    pty.send_line(PASSWORD);
    assert_eq!(
        pty.expect(&["Verification code: "], STEP),
        Some(0),
        "code prompt: {}",
        pty.output()
    );
    pty.send_line(code);
}

#[test]
fn login_on_a_console_asks_password_then_code() {
    let user = "ts-con-login";
    let (mut rig, pam_dir) = setup("login", user);

    // A right code: a shell starts.
    fresh_step(8);
    let code = oath_code(SECRET, 0);
    let mut pty = in_private_pam(&pam_dir, &["login", user]);
    answer(&mut pty, &code);
    let shell = pty.expect(&["$ ", "Login incorrect"], STEP);
    assert_eq!(shell, Some(0), "a shell: {}", pty.output());
    pty.send_line("echo console-$((6*7)); exit");
    assert_eq!(
        pty.expect(&["console-42"], STEP),
        Some(0),
        "{}",
        pty.output()
    );
    pty.wait(STEP);
    let events = rig.module_events();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].event(), "auth_ok");
    assert_console(&events[0], "login", user);

    // A wrong code: "Login incorrect", no shell.
    let wrong = wrong_code();
    let mut pty = in_private_pam(&pam_dir, &["login", user]);
    answer(&mut pty, &wrong);
    assert_eq!(
        pty.expect(&["Login incorrect", "$ "], STEP),
        Some(0),
        "{}",
        pty.output()
    );
    drop(pty);
    let events = rig.module_events();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(
        (events[0].event(), events[0].get("reason")),
        ("auth_fail", Some("bad_code"))
    );
    assert_console(&events[0], "login", user);
}

#[test]
fn su_asks_password_then_code() {
    let user = "ts-con-su";
    let (mut rig, pam_dir) = setup("su", user);

    // The test stack has no pam_rootok: root is asked like anyone else.
    fresh_step(8);
    let code = oath_code(SECRET, 0);
    let mut pty = in_private_pam(&pam_dir, &["su", "-c", "echo su-$((6*7))", user]);
    answer(&mut pty, &code);
    assert_eq!(
        pty.expect(&["su-42", "Authentication failure"], STEP),
        Some(0),
        "{}",
        pty.output()
    );
    assert_eq!(pty.wait(STEP), Some(0), "{}", pty.output());
    let events = rig.module_events();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].event(), "auth_ok");
    assert_console(&events[0], "su", user);

    let wrong = wrong_code();
    let mut pty = in_private_pam(&pam_dir, &["su", "-c", "echo su-$((6*7))", user]);
    answer(&mut pty, &wrong);
    assert_eq!(
        pty.expect(&["Authentication failure", "su-42"], STEP),
        Some(0),
        "{}",
        pty.output()
    );
    assert_ne!(pty.wait(STEP), Some(0));
    let events = rig.module_events();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].get("reason"), Some("bad_code"));
    assert_console(&events[0], "su", user);
}

#[test]
fn the_system_pam_dir_is_left_alone() {
    // The namespace's bind mount must not leak out to the host.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts
            .lines()
            .any(|l| l.split(' ').nth(4) == Some("/etc/pam.d")),
        "/etc/pam.d is a mount point on the host:\n{mounts}"
    );
}
