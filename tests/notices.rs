//! The notices of INTERFACE.md's "More notifications": `password_changed`,
//! from a `password` line (`password optional pam_twostep.so notify`), and
//! `new_source`, after a login from an address not seen lately.
//!
//! Password changes go through the real programs: `passwd` run by an
//! ordinary user on a pty, `chpasswd` run by root, each in a private mount
//! namespace whose /etc is an overlay (tests/common/etc_overlay.rs) holding
//! this test's PAM service: Debian's common-password with the twostep line
//! after it, as pam-auth-update composes it. The system's /etc/pam.d and
//! /etc/shadow are never touched (the changed shadow file is the overlay's).
//! The mail goes through the real exim to /var/mail and is read back.
//! Needs root and util-linux (unshare, setpriv, script).

mod common;
#[path = "common/etc_overlay.rs"]
mod etc_overlay;
#[path = "common/pty.rs"]
mod pty;

use common::mail::{ensure_mail_user, mailbox, parsed_messages, wait_for_messages};
use common::*;
use etc_overlay::EtcOverlay;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

const STEP: Duration = Duration::from_secs(30);
const PASSWORD: &str = "nt first-Pa55word";

/// Debian 12's common-password (as pam-auth-update writes it with the unix
/// profile), then the twostep profile's line: what `passwd` and `chpasswd`
/// run.
fn password_stack(rig: &Rig) -> String {
    format!(
        "password [success=1 default=ignore] pam_unix.so obscure yescrypt\n\
         password requisite pam_deny.so\n\
         password required pam_permit.so\n\
         {}",
        twostep_line(rig)
    )
}

fn twostep_line(rig: &Rig) -> String {
    format!(
        "password optional {} config={} notify debug\n",
        module().display(),
        rig.config.display()
    )
}

/// A rig that mails `password_changed` to `{user}@localhost`, with an
/// overlay /etc whose passwd and chpasswd services are [`password_stack`].
fn password_rig(name: &str, issuer: &str) -> (Rig, EtcOverlay) {
    let rig = Rig::new(
        &format!("nt-{name}"),
        &format!(
            "issuer = \"{issuer}\"\n[email]\naddress = \"{{user}}@localhost\"\n\
             from = \"twostep@localhost\"\n[notify]\nevents = [\"password_changed\"]\n"
        ),
    );
    let etc = EtcOverlay::new(&rig.root);
    for service in ["passwd", "chpasswd"] {
        etc.put(&format!("pam.d/{service}"), password_stack(&rig).as_bytes());
    }
    (rig, etc)
}

/// A mail account `user` with [`PASSWORD`], and a [`password_rig`] named
/// after the test, whose records so far are drained.
fn setup(name: &str, user: &str) -> (String, Rig, EtcOverlay) {
    ensure_mail_user(user);
    ensure_user(user, Some(PASSWORD));
    let issuer = format!("nt-{name}-{}", std::process::id());
    let (mut rig, etc) = password_rig(name, &issuer);
    rig.drain();
    (issuer, rig, etc)
}

/// `user` runs `passwd` on a pty and answers each of its prompts (it asks
/// again after some refusals); returns its exit code and what it showed.
fn run_passwd(
    etc: &EtcOverlay,
    user: &str,
    current: &str,
    new: &str,
    again: &str,
) -> (i32, String) {
    let mut pty = etc.spawn(user, &["passwd"]);
    let prompts = [
        "Current password: ",
        "New password: ",
        "Retype new password: ",
    ];
    for _ in 0..10 {
        match pty.expect(&prompts, STEP) {
            Some(0) => pty.send_line(current),
            Some(1) => pty.send_line(new),
            Some(2) => pty.send_line(again),
            _ => break,
        }
    }
    let code = pty.wait(STEP);
    let out = pty.output();
    (
        code.unwrap_or_else(|| panic!("passwd did not end:\n{out}")),
        out,
    )
}

/// Two changes that fail in the second pass (PAM_UPDATE_AUTHTOK), where
/// pam_unix asks for the new password: typed twice differently, and too
/// short.
fn failed_updates(etc: &EtcOverlay, user: &str) {
    let (code, out) = run_passwd(etc, user, PASSWORD, "nt new-Pa55word", "nt other-Pa55word");
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("do not match"), "{out}");
    let (code, out) = run_passwd(etc, user, PASSWORD, "a1", "a1");
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("longer password"), "{out}");
}

/// The times the line ran in a second pass and found the entry unchanged
/// (its `debug` record).
fn unchanged_seen(r: &[Event]) -> usize {
    named(r, "debug")
        .iter()
        .filter(|e| e.get("detail") == Some("password entry unchanged"))
        .count()
}

fn named<'a>(events: &'a [Event], name: &str) -> Vec<&'a Event> {
    events.iter().filter(|e| e.event() == name).collect()
}

#[test]
fn passwd_by_the_user_mails_the_change_and_only_a_change() {
    let user = "ts-nt-pw";
    let (issuer, mut rig, etc) = setup("passwd", user);
    let subject = format!("{issuer}: password changed for {user}");

    // Failures first. A wrong current password: the first pass
    // (PAM_PRELIM_CHECK) fails, there is no second.
    let (code, out) = run_passwd(&etc, user, "not the password", "", "");
    assert_ne!(code, 0, "{out}");
    failed_updates(&etc, user);

    let r = rig.module_events();
    assert!(named(&r, "password_changed").is_empty(), "{r:#?}");
    // With this stack libpam 1.5 does not even reach the line after a
    // failed update: pam_deny ends the pass (see the next test for a stack
    // that does).
    assert_eq!(unchanged_seen(&r), 0, "{r:#?}");

    // A real change.
    let new = "nt second-Pa55word";
    let (code, out) = run_passwd(&etc, user, PASSWORD, new, new);
    assert_eq!(code, 0, "{out}");
    let r = rig.module_events();
    let changed = named(&r, "password_changed");
    assert_eq!(changed.len(), 1, "{r:#?}");
    assert_eq!(changed[0].get("user"), Some(user));
    assert_eq!(changed[0].get("service"), Some("passwd"));
    assert_eq!(changed[0].keys(), ["event", "user", "service"]);
    assert!(named(&r, "delivery_failed").is_empty(), "{r:#?}");

    let m = wait_for_messages(&mailbox(user), &subject, 1);
    assert_eq!(m.len(), 1, "{m:#?}");
    assert_eq!(m[0]["to"], format!("{user}@localhost"));
    let body = m[0]["body"].as_str().unwrap();
    for want in [
        "The password of your account was changed.",
        &format!("Account: {user} on "),
        "Through: passwd on this machine",
        "tell your administrator",
    ] {
        assert!(body.contains(want), "{want:?} in {body}");
    }
    assert!(!body.contains(new) && !body.contains(PASSWORD), "{body}");
    // The failures mailed nothing (their mails, had there been any, were
    // handed over before this one).
    assert_eq!(parsed_messages(&mailbox(user), &subject).len(), 1);
}

#[test]
fn after_a_failed_update_that_reaches_the_line_nothing_is_mailed() {
    // `required pam_unix.so`: a failure does not end the pass, so the
    // twostep line runs after every update, failed or not. Only the
    // password entry tells them apart.
    let user = "ts-nt-req";
    let (issuer, mut rig, etc) = setup("required", user);
    etc.put(
        "pam.d/passwd",
        format!(
            "password required pam_unix.so obscure yescrypt\n{}",
            twostep_line(&rig)
        )
        .as_bytes(),
    );
    failed_updates(&etc, user);
    let r = rig.module_events();
    assert!(named(&r, "password_changed").is_empty(), "{r:#?}");
    assert_eq!(
        unchanged_seen(&r),
        2,
        "the line ran after each failed update: {r:#?}"
    );
    let new = "nt third-Pa55word";
    let (code, out) = run_passwd(&etc, user, PASSWORD, new, new);
    assert_eq!(code, 0, "{out}");
    let r = rig.module_events();
    assert_eq!(named(&r, "password_changed").len(), 1, "{r:#?}");
    let subject = format!("{issuer}: password changed for {user}");
    wait_for_messages(&mailbox(user), &subject, 1);
    assert_eq!(parsed_messages(&mailbox(user), &subject).len(), 1);
}

#[test]
fn chpasswd_by_root_mails_the_change() {
    let user = "ts-nt-cp";
    let (issuer, mut rig, etc) = setup("chpasswd", user);

    let chpasswd = |line: &str| {
        let argv = etc.argv("root", &["chpasswd"]);
        let mut child = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{line}").unwrap();
        child.wait_with_output().unwrap()
    };
    // An account that does not exist: nothing changes, nothing is mailed.
    let out = chpasswd("ts-nt-nobody:whatever-Pa55");
    assert!(!out.status.success());
    let out = chpasswd(&format!("{user}:nt root-set-Pa55word"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = rig.module_events();
    let changed = named(&r, "password_changed");
    assert_eq!(changed.len(), 1, "{r:#?}");
    assert_eq!(changed[0].get("user"), Some(user));
    assert_eq!(changed[0].get("service"), Some("chpasswd"));
    let m = wait_for_messages(
        &mailbox(user),
        &format!("{issuer}: password changed for {user}"),
        1,
    );
    let body = m[0]["body"].as_str().unwrap();
    assert!(body.contains("Through: chpasswd on this machine"), "{body}");
}
