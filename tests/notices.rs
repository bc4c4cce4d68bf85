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
//!
//! Logins from new sources go through the real libpam (pamdrive) with
//! PAM_RHOST set, against this host's state_dir and, for a fleet, a real
//! redis-server on a private socket shared by two "hosts".
//! Needs root and util-linux (unshare, setpriv, script).

mod common;
use common::redis::{Redis, store_section, unix_url};
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

    // A panic in the module, even on a `required` line, fails nothing:
    // it is caught and answered PAM_IGNORE.
    etc.put(
        "pam.d/chpasswd",
        format!(
            "password required pam_unix.so yescrypt\n\
             password required {} config={} notify panic-probe\n",
            module().display(),
            rig.config.display()
        )
        .as_bytes(),
    );
    let out = chpasswd(&format!("{user}:nt after-panic-Pa55word"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("panic-probe"),
        "the probe did panic: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---- new_source -----------------------------------------------------------------

const A: &str = "192.0.2.80";
const B: &str = "198.51.100.80";
const C: &str = "2001:db8::80";

/// The config of a host that mails `new_source` to `{user}@localhost`.
fn new_source_config(issuer: &str, extra: &str) -> String {
    format!(
        "issuer = \"{issuer}\"\n{extra}\n[email]\naddress = \"{{user}}@localhost\"\n\
         from = \"twostep@localhost\"\n[notify]\nevents = [\"new_source\"]\n"
    )
}

/// A host named `name` with `config`, whose `sshd` service is the code
/// step alone.
fn source_rig(name: &str, config: &str) -> Rig {
    let rig = Rig::new(name, config);
    rig.service(
        "sshd",
        &format!(
            "auth required {} config={}\n",
            module().display(),
            rig.config.display()
        ),
    );
    rig
}

/// `user` enrolled on `rig` with [`SECRET`]; the recovery codes.
fn enroll_with_codes(rig: &Rig, user: &str) -> Vec<String> {
    rig.enroll_json_secret(user, SECRET, &[])["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

/// A login of `user` from `rhost` answering `answers` (none: not asked).
fn login_from(rig: &Rig, user: &str, answers: &[&str], rhost: &str) -> Login {
    let login = rig.login_with("sshd", user, answers, &[("rhost", rhost), ("tty", "ssh")]);
    assert_eq!(login.code, PAM_SUCCESS, "{rhost}: {}", login.out);
    login
}

/// The `new_source` records since the last call, as (user, rhost).
fn new_sources(rig: &mut Rig) -> Vec<(String, String)> {
    let r = rig.module_events();
    assert!(named(&r, "delivery_failed").is_empty(), "{r:#?}");
    named(&r, "new_source")
        .iter()
        .map(|e| {
            assert_eq!(e.keys(), ["event", "user", "service", "rhost"], "{e:?}");
            assert_eq!(e.get("service"), Some("sshd"));
            (
                e.get("user").unwrap().to_string(),
                e.get("rhost").unwrap().to_string(),
            )
        })
        .collect()
}

fn one(user: &str, rhost: &str) -> Vec<(String, String)> {
    vec![(user.to_string(), rhost.to_string())]
}

#[test]
fn a_login_from_an_address_not_seen_for_30_days_is_mailed() {
    let user = "ts-nt-src";
    ensure_mail_user(user);
    let issuer = format!("nt-source-{}", std::process::id());
    let mut rig = source_rig("nt-source", &new_source_config(&issuer, ""));
    let codes = enroll_with_codes(&rig, user);
    rig.drain();

    // The first source ever noted is learned without a notice.
    fresh_step(5);
    login_from(&rig, user, &[&oath_code(SECRET, 0)], A);
    assert_eq!(new_sources(&mut rig), []);
    login_from(&rig, user, &[&codes[0]], A);
    assert_eq!(new_sources(&mut rig), [], "known");
    // Another address: new, once.
    login_from(&rig, user, &[&codes[1]], B);
    assert_eq!(new_sources(&mut rig), one(user, B));
    login_from(&rig, user, &[&codes[2]], B);
    login_from(&rig, user, &[&codes[3]], &format!("::ffff:{B}"));
    assert_eq!(new_sources(&mut rig), [], "B known, in either form");
    // A failed login teaches nothing; a host name is never judged.
    let failed = rig.login_with("sshd", user, &[&wrong_code()], &[("rhost", C)]);
    assert_eq!(failed.code, PAM_AUTH_ERR);
    login_from(&rig, user, &[&codes[4]], "client.example");
    assert_eq!(new_sources(&mut rig), []);
    login_from(&rig, user, &[&codes[5]], C);
    assert_eq!(new_sources(&mut rig), one(user, C));

    let subject = format!("{issuer}: sign-in from a new address for {user}");
    let m = wait_for_messages(&mailbox(user), &subject, 2);
    assert_eq!(m.len(), 2, "{m:#?}");
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    for (message, addr) in m.iter().zip([B, C]) {
        assert_eq!(message["to"], format!("{user}@localhost"));
        let body = message["body"].as_str().unwrap();
        for want in [
            "signed in to from an address it has not",
            &format!("Account: {user} on {host}\n"),
            "When:    ",
            &format!("From:    {addr} (sshd)\n"),
            "change your password at once and tell your administrator",
        ] {
            assert!(body.contains(want), "{want:?} in {body}");
        }
    }
}

#[test]
fn with_remember_the_skipped_logins_count_and_a_new_address_is_mailed() {
    let user = "ts-nt-rem";
    ensure_mail_user(user);
    let issuer = format!("nt-remember-{}", std::process::id());
    let mut rig = source_rig(
        "nt-remember",
        &new_source_config(&issuer, "[policy]\nremember = \"1h\""),
    );
    let codes = enroll_with_codes(&rig, user);
    rig.drain();
    fresh_step(5);
    login_from(&rig, user, &[&oath_code(SECRET, 0)], A);
    assert_eq!(new_sources(&mut rig), []);
    // Remembered: not asked, and not new.
    let skipped = login_from(&rig, user, &[], A);
    assert_eq!(skipped.prompts(), 0, "{}", skipped.out);
    assert_eq!(new_sources(&mut rig), []);
    // A code from elsewhere: new, and remembered in turn.
    login_from(&rig, user, &[&codes[0]], B);
    assert_eq!(new_sources(&mut rig), one(user, B));
    let skipped = login_from(&rig, user, &[], B);
    assert_eq!(skipped.prompts(), 0, "{}", skipped.out);
    assert_eq!(new_sources(&mut rig), []);
    let m = wait_for_messages(
        &mailbox(user),
        &format!("{issuer}: sign-in from a new address for {user}"),
        1,
    );
    assert_eq!(m.len(), 1, "{m:#?}");
}

#[test]
fn a_user_let_through_without_a_code_is_noted_too() {
    // unenrolled = "allow": a policy skip is a successful login as well.
    let user = "ts-nt-skip";
    ensure_mail_user(user);
    let issuer = format!("nt-skip-{}", std::process::id());
    let mut rig = source_rig(
        "nt-skip",
        &new_source_config(&issuer, "unenrolled = \"allow\""),
    );
    rig.drain();
    login_from(&rig, user, &[], A);
    login_from(&rig, user, &[], A);
    assert_eq!(new_sources(&mut rig), []);
    login_from(&rig, user, &[], B);
    assert_eq!(new_sources(&mut rig), one(user, B));
    wait_for_messages(
        &mailbox(user),
        &format!("{issuer}: sign-in from a new address for {user}"),
        1,
    );
}

#[test]
fn with_a_fleet_store_the_known_sources_are_fleet_wide() {
    fleet_sources("", "ts-nt-fleet");
}

#[test]
fn with_a_fleet_store_and_remember_the_known_sources_are_fleet_wide() {
    fleet_sources("[policy]\nremember = \"1h\"", "ts-nt-fleetr");
}

/// Two hosts sharing a real redis-server, with `policy` (remember on or
/// off): a source learned on one is known on the other.
fn fleet_sources(policy: &str, user: &str) {
    ensure_mail_user(user);
    let issuer = format!("{user}-{}", std::process::id());
    let redis = Redis::start(user, &[]);
    let store = store_section(&redis, &unix_url(&redis), user, "");
    let config = format!("{}\n{store}", new_source_config(&issuer, policy));
    let mut a = source_rig(&format!("{user}-a"), &config);
    let mut b = source_rig(&format!("{user}-b"), &config);
    let codes = enroll_with_codes(&a, user);
    // The same secret file on both hosts, as configuration management
    // would place it.
    std::fs::copy(a.secret_path(user), b.secret_path(user)).unwrap();
    a.drain();
    b.drain();
    let remember = !policy.is_empty();

    let rm = || redis.cli(&["HGET", &format!("twostep:{user}:{{{user}}}"), "rm"]);
    login_from(&a, user, &[&codes[0]], A);
    assert_eq!(new_sources(&mut a), [], "first");
    let first = rm();
    // Known on the other host too (remembered there: not even asked), and
    // noted too lately to be written again (policy::note_slack).
    let answer: &[&str] = if remember { &[] } else { &[&codes[1]] };
    login_from(&b, user, answer, A);
    assert_eq!(new_sources(&mut b), []);
    assert_eq!(rm(), first);
    login_from(&b, user, &[&codes[2]], B);
    assert_eq!(new_sources(&mut b), one(user, B));
    let answer: &[&str] = if remember { &[] } else { &[&codes[3]] };
    login_from(&a, user, answer, B);
    assert_eq!(new_sources(&mut a), []);
    // The store keeps them: `addr=until=seen`, remembered or not.
    let rm = rm();
    let mut entries: Vec<Vec<&str>> = rm
        .trim()
        .split(';')
        .map(|e| e.split('=').collect())
        .collect();
    entries.sort();
    assert_eq!(entries.len(), 2, "{rm}");
    assert_eq!((entries[0][0], entries[1][0]), (A, B), "{rm}");
    for e in &entries {
        assert_eq!(e.len(), 3, "{rm}");
        assert_eq!(e[1] != "0", remember, "{rm}");
        assert!(e[2].parse::<u64>().unwrap() > 0, "{rm}");
    }
    let m = wait_for_messages(
        &mailbox(user),
        &format!("{issuer}: sign-in from a new address for {user}"),
        1,
    );
    assert_eq!(m.len(), 1, "{m:#?}");
}

/// [`login_from`] with the module's clock at `unix` (libfaketime).
fn login_from_at(rig: &Rig, user: &str, answers: &[&str], rhost: &str, unix: u64) -> Login {
    let mut cmd = rig.login_command(&[], "sshd", user, &[("rhost", rhost), ("tty", "ssh")]);
    cmd.env("LD_PRELOAD", FAKETIME_LIB)
        .env(
            "FAKETIME",
            format!("@{}", date_utc(unix, "+%Y-%m-%d %H:%M:%S")),
        )
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .env("FAKETIME_NO_CACHE", "1")
        .env("TZ", "UTC");
    let login = run_login(cmd, answers);
    assert_eq!(login.code, PAM_SUCCESS, "{rhost}: {}", login.out);
    login
}

#[test]
fn an_address_is_known_for_30_days_after_its_last_login() {
    const DAY: u64 = 86_400;
    let user = "ts-nt-days";
    ensure_mail_user(user);
    let issuer = format!("nt-days-{}", std::process::id());
    let mut rig = source_rig(
        "nt-days",
        &new_source_config(&issuer, "unenrolled = \"allow\""),
    );
    rig.drain();
    let t0 = now();
    login_from_at(&rig, user, &[], B, t0);
    login_from_at(&rig, user, &[], A, t0);
    assert_eq!(new_sources(&mut rig), one(user, A));
    // Each login from A keeps it known for 30 days from then.
    login_from_at(&rig, user, &[], A, t0 + 30 * DAY - 60);
    login_from_at(&rig, user, &[], A, t0 + 60 * DAY - 120);
    assert_eq!(new_sources(&mut rig), [], "known, to the minute");
    login_from_at(&rig, user, &[], A, t0 + 90 * DAY);
    assert_eq!(new_sources(&mut rig), one(user, A), "30 days and 2 minutes");
}

#[test]
fn with_remember_a_login_skipped_within_it_keeps_the_address_known() {
    // Remembered for 1 h after a code. Logins in that hour are not asked;
    // the one after it is, and is no new source: the user logged in from
    // there within the hour. (Were the memory of codes the only clock, it
    // would mail the user every hour they work from the same place.)
    let user = "ts-nt-keep";
    ensure_mail_user(user);
    let issuer = format!("nt-keep-{}", std::process::id());
    let mut rig = source_rig(
        "nt-keep",
        &new_source_config(&issuer, "[policy]\nremember = \"1h\""),
    );
    let codes = enroll_with_codes(&rig, user);
    rig.drain();
    let t0 = now();
    login_from_at(&rig, user, &[&codes[0]], B, t0);
    login_from_at(&rig, user, &[&codes[1]], A, t0);
    assert_eq!(new_sources(&mut rig), one(user, A));
    let skipped = login_from_at(&rig, user, &[], A, t0 + 50 * 60);
    assert_eq!(skipped.prompts(), 0, "{}", skipped.out);
    let asked = login_from_at(&rig, user, &[&codes[2]], A, t0 + 70 * 60);
    assert_eq!(asked.prompts(), 1, "remembered no more: {}", asked.out);
    assert_eq!(new_sources(&mut rig), [], "seen 20 minutes before");
    // Two hours on: new again, by the hour remember says.
    login_from_at(&rig, user, &[&codes[3]], A, t0 + 190 * 60);
    assert_eq!(new_sources(&mut rig), one(user, A));
}
