//! Codes by email and text message through the real module and libpam: the
//! code is read from the message the real MTA delivered (Debian's exim4,
//! into /var/mail/<user>) or from what a recording SMS command received.
//! Success, replay, a wrong code, an expired code, the resend and hourly
//! throttles, a sendmail that fails and one that hangs, the records and
//! their masking, no code in any record, the lost-device path, and the
//! notice of a lock.

mod common;
use common::mail::{
    code_in, email_rig, ensure_mail_user, lost_device_rig, mailbox, replace_lost_device, token,
    wait_for_messages, write_secret,
};
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A login through pamdrive from an ssh-like source, answered as it goes.
fn session(rig: &Rig, service: &str, user: &str) -> LiveLogin {
    rig.live_login(service, user, &[("rhost", "192.0.2.31"), ("tty", "ssh")])
}

/// A login of an email user: the prompt, the code from the n-th message with
/// `token`, the result.
fn email_login(rig: &Rig, user: &str, issuer: &str, nth: usize) -> (Login, String) {
    let mut s = session(rig, "twostep", user);
    let before = s.until_prompt();
    assert!(before.contains("PROMPT_OFF"), "{before}");
    let messages = wait_for_messages(&mailbox(user), issuer, nth);
    let code = code_in(&messages[nth - 1]);
    s.answer(&code);
    (s.finish(), code)
}

#[test]
fn an_email_code_logs_in_once() {
    let u = "tssent-ok";
    let (mut rig, issuer) = email_rig("sent-ok", u, "[codes]\nresend_after = \"0s\"");
    rig.events();
    let (login, code) = email_login(&rig, u, &issuer, 1);
    assert_eq!(login.code, PAM_SUCCESS, "{}", login.out);
    assert!(
        login.out.contains("A code was sent to t***@l***"),
        "told where, masked: {}",
        login.out
    );
    let message = &wait_for_messages(&mailbox(u), &issuer, 1)[0];
    assert_eq!(message["to"], format!("{u}@localhost"));
    assert!(message["subject"].as_str().unwrap().contains(u));
    let ev = rig.module_events();
    let sent: Vec<_> = ev.iter().filter(|e| e.event() == "code_sent").collect();
    assert_eq!(sent.len(), 1, "{ev:#?}");
    assert_eq!(
        sent[0].keys(),
        ["event", "user", "service", "rhost", "method", "to"]
    );
    assert_eq!(sent[0].get("method"), Some("email"));
    assert!(
        !sent[0].get("to").unwrap().contains(u),
        "masked: {:?}",
        sent[0]
    );
    let ok: Vec<_> = ev.iter().filter(|e| e.event() == "auth_ok").collect();
    assert_eq!(ok[0].get("method"), Some("email"));
    // No code in any record.
    assert!(ev.iter().all(|e| !e.raw.contains(&code)), "{ev:#?}");

    // The same code again: a new one is sent, the old one is refused.
    let mut s = session(&rig, "twostep", u);
    s.until_prompt();
    wait_for_messages(&mailbox(u), &issuer, 2);
    s.answer(&code);
    let again = s.finish();
    assert_eq!(again.code, PAM_AUTH_ERR, "{}", again.out);
    // A wrong code.
    let mut s = session(&rig, "twostep", u);
    s.until_prompt();
    let third = code_in(&wait_for_messages(&mailbox(u), &issuer, 3)[2]);
    let wrong = format!("{:06}", (third.parse::<u32>().unwrap() + 1) % 1_000_000);
    s.answer(&wrong);
    assert_eq!(s.finish().code, PAM_AUTH_ERR);
    let ev = rig.module_events();
    let fails: Vec<_> = ev.iter().filter(|e| e.event() == "auth_fail").collect();
    assert_eq!(fails.len(), 2, "{ev:#?}");
    assert!(fails.iter().all(|e| e.get("reason") == Some("bad_code")));
    assert_eq!(rig.status_json(u)["failures"], 2);
}

#[test]
fn an_expired_email_code_is_refused_as_expired() {
    let u = "tssent-exp";
    let (mut rig, issuer) = email_rig(
        "sent-exp",
        u,
        "[codes]\nvalid = \"30s\"\nresend_after = \"10s\"",
    );
    rig.events();
    // The clock moves 40 s on between the prompt and the answer.
    let offset = rig.root.join("offset");
    let mut live = login_with_moving_clock(&rig, u, &offset, &[("rhost", "192.0.2.32")]);
    live.until_prompt();
    let code = code_in(&wait_for_messages(&mailbox(u), &issuer, 1)[0]);
    std::fs::write(&offset, "+40\n").unwrap();
    live.answer(&code);
    let login = live.finish();
    assert_eq!(login.code, PAM_AUTH_ERR, "{}", login.out);
    let ev = rig.module_events();
    let fail = ev.iter().find(|e| e.event() == "auth_fail").unwrap();
    assert_eq!(fail.get("reason"), Some("expired"), "{ev:#?}");
}

#[test]
fn codes_are_not_resent_too_soon_nor_too_often() {
    let u = "tssent-thr";
    let (mut rig, issuer) = email_rig(
        "sent-thr",
        u,
        "[codes]\nresend_after = \"60s\"\nmax_per_hour = 2",
    );
    rig.events();
    let answer_nothing = |rig: &Rig| {
        let mut s = session(rig, "twostep", u);
        let shown = s.until_prompt();
        s.answer("");
        (shown, s.finish())
    };
    // The first login sends one; the second, at once, is told to use it.
    let (first, _) = answer_nothing(&rig);
    assert!(first.contains("A code was sent to"), "{first}");
    let (second, _) = answer_nothing(&rig);
    assert!(second.contains("use that one"), "{second}");
    // ... and that code still logs in.
    let code = code_in(&wait_for_messages(&mailbox(u), &issuer, 1)[0]);
    let mut s = session(&rig, "twostep", u);
    s.until_prompt();
    s.answer(&code);
    assert_eq!(s.finish().code, PAM_SUCCESS);
    // With resend_after off, the hourly limit: a second send, then none.
    rig.write_config(&format!(
        "issuer = \"{issuer}\"\n[codes]\nresend_after = \"0s\"\nmax_per_hour = 2\n[email]\nfrom = \"twostep@localhost\"\n"
    ));
    let (third, _) = answer_nothing(&rig);
    assert!(third.contains("A code was sent to"), "{third}");
    let (fourth, login) = answer_nothing(&rig);
    assert!(fourth.contains("Too many codes"), "{fourth}");
    assert_eq!(login.code, PAM_AUTH_ERR);
    wait_for_messages(&mailbox(u), &issuer, 2);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        common::mail::parsed_messages(&mailbox(u), &issuer).len(),
        2,
        "exactly two messages in all"
    );
    let ev = rig.module_events();
    assert_eq!(count(&ev, "code_sent"), 2, "{ev:#?}");
    let throttled: Vec<_> = ev
        .iter()
        .filter(|e| e.event() == "delivery_failed")
        .collect();
    assert_eq!(throttled.len(), 1, "{ev:#?}");
    assert_eq!(throttled[0].get("reason"), Some("throttled"));
}

/// A root-owned program in the rig's root-only directory.
fn program(rig: &Rig, name: &str, body: &str) -> PathBuf {
    let path = rig.root.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
    path
}

#[test]
fn a_failing_or_hanging_sendmail_denies_in_bounded_time_and_leaves_nothing() {
    let u = "tssent-fail";
    ensure_mail_user(u);
    let mut rig = Rig::new("sent-fail", "");
    let codes: Vec<String> = rig.enroll_json(u, &[])["recovery_codes"]
        .as_array()
        .map(|a| a.iter().map(|c| c.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    let failing = program(
        &rig,
        "sendmail-fails",
        "cat >/dev/null; echo 'no route' >&2; exit 75",
    );
    let hanging = program(&rig, "sendmail-hangs", "sleep 300 & sleep 300");
    for (sendmail, reason, what) in [(&failing, "exit", "fails"), (&hanging, "timeout", "hangs")] {
        rig.write_config(&format!(
            "[email]\nsendmail = \"{}\"\n[codes]\ntimeout = \"1s\"\nresend_after = \"0s\"",
            sendmail.display()
        ));
        let file = std::fs::read_to_string(rig.secret_path(u)).unwrap();
        let file: String = file
            .lines()
            .filter(|l| !l.starts_with("method") && !l.starts_with("email"))
            .map(|l| format!("{l}\n"))
            .collect();
        write_secret(
            &rig,
            u,
            &format!("method = \"email\"\nemail = \"{u}@localhost\"\n{file}"),
        );
        rig.events();
        let start = Instant::now();
        let mut s = session(&rig, "twostep", u);
        let shown = s.until_prompt();
        let took = start.elapsed();
        assert!(took < Duration::from_secs(4), "{what}: {took:?}");
        assert!(shown.contains("No code could be sent"), "{what}: {shown}");
        s.answer("123456");
        assert_eq!(s.finish().code, PAM_AUTH_ERR, "{what}");
        let ev = rig.module_events();
        let failed: Vec<_> = ev
            .iter()
            .filter(|e| e.event() == "delivery_failed")
            .collect();
        assert_eq!(failed.len(), 1, "{what}: {ev:#?}");
        assert_eq!(
            (failed[0].get("method"), failed[0].get("reason")),
            (Some("email"), Some(reason)),
            "{what}"
        );
        // Nothing of the program is left running.
        let left = std::process::Command::new("pgrep")
            .arg("-f")
            .arg(sendmail)
            .output()
            .unwrap();
        assert!(left.stdout.is_empty(), "{what}: left running: {:?}", left);
    }
    // Only a recovery code can succeed then.
    let mut s = session(&rig, "twostep", u);
    s.until_prompt();
    s.answer(&codes[0]);
    assert_eq!(s.finish().code, PAM_SUCCESS);
}

#[test]
fn an_sms_code_goes_to_the_command_with_nothing_else() {
    let u = "tssent-sms";
    ensure_user(u, None);
    let mut rig = Rig::new("sent-sms", "");
    let record = rig.root.join("sms-record");
    let sender = program(
        &rig,
        "send-sms",
        &format!(
            "{{ printf 'argv:%s\\n' \"$*\"; env | sort | sed 's/^/env:/'; sed 's/^/stdin:/'; }} >> {}",
            record.display()
        ),
    );
    rig.write_config(&format!("[sms]\ncommand = \"{}\"", sender.display()));
    write_secret(
        &rig,
        u,
        &format!("secret = \"{SECRET}\"\nmethod = \"sms\"\nphone = \"+4915112345678\"\n"),
    );
    rig.events();
    let mut s = session(&rig, "twostep", u);
    let shown = s.until_prompt();
    assert!(shown.contains("+*********5678"), "{shown}");
    let text = std::fs::read_to_string(&record).unwrap();
    assert!(text.contains("argv:+4915112345678\n"), "{text}");
    let env: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("env:"))
        .collect();
    // Cleared to PATH and HOME=/ (the shell adds PWD, SHLVL and _).
    assert!(
        env.iter().all(|v| v.starts_with("PATH=")
            || *v == "HOME=/"
            || v.starts_with("PWD=")
            || v.starts_with("SHLVL=")
            || v.starts_with("_=")),
        "a cleared environment: {env:?}"
    );
    assert!(env.contains(&"HOME=/"), "{env:?}");
    let body: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("stdin:"))
        .collect();
    let code: String = body.chars().take_while(char::is_ascii_digit).collect();
    assert_eq!(code.len(), 6, "{body}");
    s.answer(&code);
    assert_eq!(s.finish().code, PAM_SUCCESS);
    let ev = rig.module_events();
    let sent = ev.iter().find(|e| e.event() == "code_sent").unwrap();
    assert_eq!(
        (sent.get("method"), sent.get("to")),
        (Some("sms"), Some("+*********5678"))
    );
    assert_eq!(
        ev.iter()
            .find(|e| e.event() == "auth_ok")
            .unwrap()
            .get("method"),
        Some("sms")
    );
    assert!(ev.iter().all(|e| !e.raw.contains(&code)));
}

#[test]
fn a_lost_device_is_replaced_with_the_code_from_the_mail() {
    let u = "tssent-lost";
    let (mut rig, issuer) = lost_device_rig(
        "sent-lost",
        u,
        "[notify]\nevents = [\"lost_device\", \"enrolled\"]",
    );
    write_secret(
        &rig,
        u,
        &format!("secret = \"{SECRET}\"\nemail = \"{u}@localhost\"\n"),
    );
    rig.events();
    let (login, new_secret) = replace_lost_device(&rig, u, &issuer);
    assert_ne!(new_secret, SECRET);
    assert_eq!(login.code, PAM_SUCCESS, "{}", login.out);
    let ev = rig.module_events();
    assert_eq!(count(&ev, "lost_device"), 1, "{ev:#?}");
    let enrolled = ev.iter().find(|e| e.event() == "enrolled").unwrap();
    assert_eq!(enrolled.get("by"), Some("lost_device"));
    // The old app's codes are refused now; the new app's work.
    let file = std::fs::read_to_string(rig.secret_path(u)).unwrap();
    assert!(
        file.contains(&format!("email = \"{u}@localhost\"")),
        "{file}"
    );
    std::thread::sleep(Duration::from_secs(31));
    assert_eq!(rig.login(u, &oath_code(SECRET, 0)).code, PAM_AUTH_ERR);
    fresh_step(5);
    assert_eq!(rig.login(u, &oath_code(&new_secret, 0)).code, PAM_SUCCESS);
    // The notices: the lost-device sign-in and the new enrollment.
    let notices = wait_for_messages(&mailbox(u), &issuer, 3);
    assert!(notices.iter().any(|m| {
        m["subject"]
            .as_str()
            .unwrap()
            .contains("lost-device sign-in")
    }));
    assert!(
        notices
            .iter()
            .any(|m| m["subject"].as_str().unwrap().contains("set up"))
    );
}

#[test]
fn a_wrong_new_app_code_after_a_lost_device_writes_nothing() {
    let u = "tssent-lost2";
    let (mut rig, issuer) = lost_device_rig("sent-lost2", u, "");
    write_secret(
        &rig,
        u,
        &format!("secret = \"{SECRET}\"\nemail = \"{u}@localhost\"\n"),
    );
    let before = std::fs::read(rig.secret_path(u)).unwrap();
    rig.events();
    let mut s = session(&rig, "twostep", u);
    s.until_prompt();
    s.answer("lost");
    s.until_prompt();
    let lost_code = code_in(&wait_for_messages(&mailbox(u), &issuer, 1)[0]);
    s.answer(&lost_code);
    s.until_prompt();
    s.answer("000000");
    assert_eq!(s.finish().code, PAM_AUTH_ERR);
    assert_eq!(
        std::fs::read(rig.secret_path(u)).unwrap(),
        before,
        "nothing written"
    );
    // The mailed code is spent.
    let mut s = session(&rig, "twostep", u);
    s.until_prompt();
    s.answer("lost");
    s.until_prompt();
    wait_for_messages(&mailbox(u), &issuer, 2);
    s.answer(&lost_code);
    assert_eq!(s.finish().code, PAM_AUTH_ERR);
    let ev = rig.module_events();
    assert_eq!(count(&ev, "enrolled"), 0, "{ev:#?}");
}

#[test]
fn a_lock_mails_the_user() {
    let u = "tssent-lock";
    ensure_mail_user(u);
    let _ = std::fs::remove_file(mailbox(u));
    let issuer = token("lock");
    let mut rig = Rig::new(
        "sent-lock",
        &format!(
            "issuer = \"{issuer}\"\n[lockout]\ntiers = [{{failures = 2, lock = \"1h\"}}]\n\
             [email]\nfrom = \"twostep@localhost\"\naddress = \"{{user}}@localhost\"\n\
             [notify]\nevents = [\"locked\"]"
        ),
    );
    rig.enroll(u, SECRET);
    rig.events();
    for _ in 0..2 {
        assert_eq!(rig.login(u, "000000").code, PAM_AUTH_ERR);
    }
    let notice = &wait_for_messages(&mailbox(u), &issuer, 1)[0];
    assert!(
        notice["subject"]
            .as_str()
            .unwrap()
            .contains("account locked"),
        "{notice}"
    );
    assert!(
        notice["body"].as_str().unwrap().contains("Until:"),
        "{notice}"
    );
    assert!(!notice["body"].as_str().unwrap().contains("000000"));
}

/// Issue 21, item 11: anyone who can reach a login prompt can lock an
/// account, and every lock mailed the user (and notify.copy_to) without
/// limit. Lock notices are held to one per notify.min_interval (10m by
/// default), and the next one says how many were held back. The module's
/// clock is set with libfaketime: locks of 1 s at T, T+2 and T+4, then one
/// at T+700.
#[test]
fn lock_notices_are_held_to_one_per_min_interval() {
    let u = "tssent-lockmany";
    ensure_mail_user(u);
    let _ = std::fs::remove_file(mailbox(u));
    let issuer = token("lockmany");
    let mut rig = Rig::new(
        "sent-lockmany",
        &format!(
            "issuer = \"{issuer}\"\n[lockout]\ntiers = [{{failures = 1, lock = \"1s\"}}]\n\
             [email]\nfrom = \"twostep@localhost\"\naddress = \"{{user}}@localhost\"\n\
             [notify]\nevents = [\"locked\"]"
        ),
    );
    rig.enroll(u, SECRET);
    rig.events();
    let start = now() + 3600;
    for at in [0, 2, 4, 700] {
        assert_eq!(login_at(&rig, u, "000000", start + at).code, PAM_AUTH_ERR);
    }
    let ev = rig.module_events();
    assert_eq!(count(&ev, "locked"), 4, "{ev:#?}");
    let held: Vec<_> = ev
        .iter()
        .filter(|e| e.event() == "delivery_failed" && e.get("reason") == Some("throttled"))
        .collect();
    assert_eq!(held.len(), 2, "{ev:#?}");
    wait_for_messages(&mailbox(u), &issuer, 2);
    std::thread::sleep(Duration::from_millis(500));
    let notices = common::mail::parsed_messages(&mailbox(u), &issuer);
    assert_eq!(notices.len(), 2, "{notices:#?}");
    let last = notices[1]["body"].as_str().unwrap();
    assert!(last.contains("2 earlier locks"), "{last}");
}
