//! One answer, password and code together (`preauth single`), through a
//! real IMAP server: a private Dovecot (tests/common/dovecot.rs) whose PAM
//! passdb runs the contract's stack, logged into with Python's imaplib.
//! Dovecot never sets PAM_AUTHTOK and answers every echo-off prompt with the
//! password it was given, so the module's one prompt gets the whole answer.
//!
//! The right password and code log in; a wrong code, a wrong password and
//! a replayed answer are refused alike; a recovery code stands in for the
//! code; an email user's first answer (the password alone) mails a code and
//! the second (password and that code) logs in; and 40 parallel wrong
//! answers for one user get exactly the tier's allowance to pam_unix. Also
//! what Dovecot does with PAM: the two-prompt stack gets the password at
//! both prompts, its auth cache, when given a key, lets a spent answer in,
//! and under its default memory limit the module can mail a code only where
//! root may raise a hard limit.

mod common;
use common::dovecot::{Dovecot, ImapLogin, Settings};
use common::mail::{code_in, email_rig, ensure_mail_user, mailbox, wait_for_messages};
use common::*;
use std::path::Path;
use std::time::Instant;

/// Ends in a letter, so that where the code starts is never in doubt.
const PASSWORD: &str = "dv-Pass_w0rd-x";
/// PAM's message styles, as Dovecot's log names them.
const ECHO_OFF: u32 = 1;
const ECHO_ON: u32 = 2;
const ERROR_MSG: u32 = 3;

fn user(name: &str) -> &str {
    ensure_user(name, Some(PASSWORD));
    name
}

/// The contract's stack for one answer (common::single_stack: pam_unix
/// without its failure delay, for the tests' pace); with `count`, a
/// pam_exec line in front of pam_unix writes a line there for every answer
/// that reaches it.
fn stack(rig: &Rig, count: Option<&Path>) -> String {
    let text = single_stack(&module(), &rig.config);
    let Some(log) = count else {
        return text;
    };
    let counter = format!(
        "auth optional pam_exec.so quiet {}\n",
        rig.password_counter(log).display()
    );
    let at = text
        .find("auth [success=1 default=ignore] pam_unix.so")
        .unwrap();
    format!("{}{counter}{}", &text[..at], &text[at..])
}

/// An enrolled user, a rig and a Dovecot asking through the single stack.
fn enrolled(name: &str) -> (Rig, Dovecot, &str) {
    let u = user(name);
    let mut rig = Rig::new(name, "");
    rig.enroll(u, SECRET);
    let imap = Dovecot::start(name.trim_start_matches("ts-dv-"), &stack(&rig, None));
    rig.events();
    (rig, imap, u)
}

/// A user with a home and a mailbox who gets codes by email, and a rig
/// named after them; the issuer marks this run's messages.
fn email_user(u: &str) -> (Rig, String) {
    ensure_mail_user(u);
    ensure_user(u, Some(PASSWORD));
    email_rig(u, u, "")
}

fn answer(code: &str) -> String {
    format!("{PASSWORD}{code}")
}

fn assert_refused(l: &ImapLogin, imap: &Dovecot) {
    assert!(!l.ok, "logged in: {l:?}\n{}", imap.log());
    assert!(l.reply.contains("AUTHENTICATIONFAILED"), "{l:?}");
}

/// The prompts among the messages Dovecot's conversation was given.
fn prompts(imap: &Dovecot) -> Vec<(u32, String)> {
    imap.pam_messages()
        .into_iter()
        .filter(|(style, _)| *style == ECHO_OFF || *style == ECHO_ON)
        .collect()
}

fn single(ev: &[Event], event: &str) -> Event {
    let found: Vec<_> = ev.iter().filter(|e| e.event() == event).collect();
    assert_eq!(found.len(), 1, "one {event}: {ev:#?}");
    found[0].clone()
}

// ---- what Dovecot does with PAM, and why `single` exists -----------------------

#[test]
fn dovecot_logs_in_through_pam_unix_alone() {
    let u = user("ts-dv-plain");
    let imap = Dovecot::start("plain", "auth required pam_unix.so nodelay\n");
    let l = imap.login(u, PASSWORD);
    assert!(l.ok, "{l:?}\n{}", imap.log());
    assert_refused(&imap.login(u, "wrong-Pass"), &imap);
}

#[test]
fn the_two_prompt_stack_gets_the_password_at_both_prompts() {
    let u = user("ts-dv-twoprompt");
    let mut rig = Rig::new("ts-dv-twoprompt", "");
    rig.enroll(u, SECRET);
    let stack = std::fs::read_to_string(rig.confdir.join("stack")).unwrap();
    let imap = Dovecot::start("twoprompt", &stack);
    rig.events();
    // The right password passes pam_unix, and the code prompt gets it again.
    assert_refused(&imap.login(u, PASSWORD), &imap);
    let ev = rig.module_events();
    assert_eq!(single(&ev, "auth_fail").get("reason"), Some("bad_code"));
    let prompts = prompts(&imap);
    assert_eq!(prompts.len(), 2, "{prompts:?}");
    assert!(prompts.iter().all(|p| p.0 == ECHO_OFF), "{prompts:?}");
}

/// Why the tests keep Dovecot's auth cache off, and the Dovecot stack's
/// documentation must too: with a cache key on the PAM passdb, Dovecot
/// answers a repeated password from its cache without asking PAM, so an
/// answer whose code was spent logs in again.
#[test]
fn dovecot_s_auth_cache_would_let_a_spent_answer_in_again() {
    let u = user("ts-dv-cache");
    let mut rig = Rig::new("ts-dv-cache", "");
    rig.enroll(u, SECRET);
    let imap = Dovecot::start_with(
        "cache",
        &stack(&rig, None),
        Settings {
            auth_cache: true,
            ..Settings::default()
        },
    );
    rig.events();
    fresh_step(8);
    let a = answer(&oath_code(SECRET, 0));
    let first = imap.login(u, &a);
    assert!(first.ok, "{first:?}\n{}", imap.log());
    let again = imap.login(u, &a);
    assert!(again.ok, "the cache answered: {again:?}\n{}", imap.log());
    let ev = rig.module_events();
    assert_eq!(count(&ev, "auth_ok"), 1, "PAM was asked once: {ev:#?}");
    assert_eq!(count(&ev, "auth_fail"), 0, "{ev:#?}");
}

/// Under Dovecot's own default `vsz_limit` (256M, a hard RLIMIT_AS and
/// RLIMIT_DATA on the auth worker), the module raises the limits for
/// sendmail to its fixed values: root may where it holds CAP_SYS_RESOURCE;
/// a container's root may not, and then no code is mailed (the harness
/// lifts the limit for the other tests).
#[test]
fn under_dovecot_s_default_memory_limit_a_code_is_mailed_only_if_root_may_raise_it() {
    let u = "ts-dv-vsz";
    let (mut rig, issuer) = email_user(u);
    let settings = Settings {
        worker_vsz_limit: "256M",
        ..Settings::default()
    };
    let imap = Dovecot::start_with("vsz", &stack(&rig, None), settings);
    rig.events();
    assert_refused(&imap.login(u, PASSWORD), &imap);
    let ev = rig.module_events();
    if root_may_raise_hard_limits() {
        single(&ev, "code_sent");
        wait_for_messages(&mailbox(u), &issuer, 1);
    } else {
        assert_eq!(count(&ev, "code_sent"), 0, "{ev:#?}");
        let failed = single(&ev, "delivery_failed");
        assert_eq!(failed.get("reason"), Some("spawn"));
        let detail = failed.get("detail").unwrap();
        assert!(
            detail.contains("raise the hard limit AS from 268435456 to unlimited"),
            "{detail}"
        );
    }
}

// ---- one answer ------------------------------------------------------------------

#[test]
fn right_password_and_code_log_in_with_one_prompt() {
    let (mut rig, imap, u) = enrolled("ts-dv-ok");
    fresh_step(5);
    let l = imap.login(u, &answer(&oath_code(SECRET, 0)));
    assert!(l.ok, "{l:?}\n{}", imap.log());
    let ev = rig.module_events();
    let ok = single(&ev, "auth_ok");
    assert_eq!(ok.get("user"), Some(u));
    assert_eq!(ok.get("method"), Some("totp"));
    assert_eq!(ok.get("service"), Some(imap.service.as_str()));
    assert_eq!(ok.get("rhost"), Some("127.0.0.1"));
    assert_eq!(ok.get("tty"), Some("dovecot"));
    assert_eq!(count(&ev, "auth_fail") + count(&ev, "password_fail"), 0);
    // Dovecot's conversation was asked once, echo off, and answered it
    // with the whole answer: nothing else prompted.
    let prompts = prompts(&imap);
    assert_eq!(prompts.len(), 1, "{prompts:?}\n{}", imap.log());
    assert_eq!(prompts[0].0, ECHO_OFF, "{prompts:?}");
    assert_eq!(rig.status_json(u)["failures"], 0);
}

#[test]
fn a_wrong_code_or_a_wrong_password_is_refused_alike() {
    let (mut rig, imap, u) = enrolled("ts-dv-wrong");
    fresh_step(8);
    let code = oath_code(SECRET, 0);

    let bad_code = imap.login(u, &answer(&wrong_code()));
    assert_refused(&bad_code, &imap);
    let ev = rig.module_events();
    assert_eq!(single(&ev, "auth_fail").get("reason"), Some("bad_code"));
    assert_eq!(count(&ev, "password_fail"), 0, "{ev:#?}");

    // A wrong password with the right code: refused before the code is
    // judged, so the code is not spent.
    let bad_password = imap.login(u, &format!("wrong-Pass{code}"));
    assert_refused(&bad_password, &imap);
    let ev = rig.module_events();
    single(&ev, "password_fail");
    assert_eq!(
        count(&ev, "auth_fail") + count(&ev, "auth_ok"),
        0,
        "{ev:#?}"
    );
    assert_eq!(
        bad_code.reply, bad_password.reply,
        "the client cannot tell which part was wrong"
    );
    assert_eq!(rig.status_json(u)["failures"], 2);

    let l = imap.login(u, &answer(&code));
    assert!(l.ok, "{l:?}\n{}", imap.log());
    single(&rig.module_events(), "auth_ok");
}

#[test]
fn a_replayed_answer_is_refused() {
    let (mut rig, imap, u) = enrolled("ts-dv-replay");
    fresh_step(8);
    let a = answer(&oath_code(SECRET, 0));
    let first = imap.login(u, &a);
    assert!(first.ok, "{first:?}\n{}", imap.log());
    single(&rig.module_events(), "auth_ok");
    let again = imap.login(u, &a);
    assert_refused(&again, &imap);
    let ev = rig.module_events();
    // Counted as a replayed code (`preauth single` finds no good code in
    // it, so the password is not even checked).
    let fail = single(&ev, "auth_fail");
    assert_eq!(fail.get("reason"), Some("replay"), "{ev:#?}");
    assert_eq!(
        count(&ev, "auth_ok") + count(&ev, "password_fail"),
        0,
        "{ev:#?}"
    );
    assert_eq!(rig.status_json(u)["failures"], 1);
}

#[test]
fn a_recovery_code_stands_in_for_the_code() {
    let u = user("ts-dv-recovery");
    let mut rig = Rig::new("ts-dv-recovery", "");
    let enrolled = rig.enroll_json_secret(u, SECRET, &["--force"]);
    let recovery = enrolled["recovery_codes"][0].as_str().unwrap().to_string();
    let imap = Dovecot::start("recovery", &stack(&rig, None));
    rig.events();
    let l = imap.login(u, &answer(&recovery));
    assert!(l.ok, "{l:?}\n{}", imap.log());
    let ev = rig.module_events();
    assert_eq!(single(&ev, "auth_ok").get("method"), Some("recovery"));
    // Good once.
    assert_refused(&imap.login(u, &answer(&recovery)), &imap);
}

#[test]
fn an_email_user_answers_twice_with_the_mailed_code() {
    let u = "ts-dv-mail";
    let (mut rig, issuer) = email_user(u);
    let imap = Dovecot::start("mail", &stack(&rig, None));
    rig.events();

    // A wrong password alone sends nothing.
    assert_refused(&imap.login(u, "wrong-Pass"), &imap);
    let ev = rig.module_events();
    single(&ev, "password_fail");
    assert_eq!(count(&ev, "code_sent"), 0, "{ev:#?}");

    // The password alone: refused, and a code is mailed. The module says
    // to answer again with the code; Dovecot does not pass that on.
    let alone = imap.login(u, PASSWORD);
    assert_refused(&alone, &imap);
    let told = "password followed by the code";
    assert!(
        imap.pam_messages()
            .iter()
            .any(|(style, text)| *style == ERROR_MSG && text.contains(told)),
        "{}",
        imap.log()
    );
    assert!(!alone.reply.contains(told), "{alone:?}");
    let ev = rig.module_events();
    assert_eq!(single(&ev, "code_sent").get("method"), Some("email"));
    assert_eq!(count(&ev, "auth_ok"), 0, "{ev:#?}");
    let code = code_in(&wait_for_messages(&mailbox(u), &issuer, 1)[0]);

    // The password followed by that code.
    let l = imap.login(u, &answer(&code));
    assert!(l.ok, "{l:?}\n{}", imap.log());
    let ev = rig.module_events();
    assert_eq!(single(&ev, "auth_ok").get("method"), Some("email"));
    assert_eq!(count(&ev, "code_sent"), 0, "no second code: {ev:#?}");
    assert!(ev.iter().all(|e| !e.raw.contains(&code)), "{ev:#?}");
}

#[test]
fn forty_parallel_wrong_answers_get_only_the_allowance_checked() {
    let u = user("ts-dv-parallel");
    let mut rig = Rig::new(
        "ts-dv-parallel",
        "[lockout]\ntiers = [{failures = 5, lock = \"1h\"}]",
    );
    rig.enroll(u, SECRET);
    let checked = rig.root.join("checked");
    let imap = Dovecot::start("parallel", &stack(&rig, Some(&checked)));
    rig.events();
    // Half a wrong password with the right code, half the right password
    // with a wrong code: every answer wrong, the parts wrong by turns.
    fresh_step(15);
    let wrong_password = format!("wrong-Pass{}", oath_code(SECRET, 0));
    let wrong_code = answer(&wrong_code());
    let started = Instant::now();
    let running: Vec<_> = (0..40)
        .map(|i| {
            let a = if i % 2 == 0 {
                &wrong_password
            } else {
                &wrong_code
            };
            imap.spawn_login(u, a)
        })
        .collect();
    let results: Vec<ImapLogin> = running.into_iter().map(|l| l.finish()).collect();
    let took = started.elapsed();
    for l in &results {
        assert_refused(l, &imap);
    }
    let ev = rig.module_events();
    let checked = lines_in(&checked);
    eprintln!(
        "40 parallel wrong answers through Dovecot in {took:?}: {checked} reached pam_unix, \
         password_fail {}, auth_fail {}, lock_denied {}, locked {}",
        count(&ev, "password_fail"),
        count(&ev, "auth_fail"),
        count(&ev, "lock_denied"),
        count(&ev, "locked")
    );
    assert_eq!(
        checked, 5,
        "answers that reached pam_unix: exactly the tier's allowance"
    );
    // Each refused answer that was judged is one failure, recorded once.
    assert_eq!(
        count(&ev, "password_fail") + count(&ev, "auth_fail"),
        5,
        "{ev:#?}"
    );
    assert_eq!(count(&ev, "lock_denied"), 35, "{ev:#?}");
    assert_eq!(count(&ev, "locked"), 1, "{ev:#?}");
    assert_eq!(count(&ev, "auth_ok"), 0, "{ev:#?}");
    assert_eq!(rig.status_json(u)["failures"], 5);
}
