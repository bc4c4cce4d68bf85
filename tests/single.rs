//! The password and the code in one answer (`preauth single`) through the
//! real libpam, the real pam_unix (`use_first_pass`) and real users, with
//! oathtool's codes: right, wrong code, wrong password (the same response),
//! replay, a recovery code, a password that ends in digits, the answer set
//! by the application (PAM_AUTHTOK), bad input (counted, nothing else
//! written), policy-skipped users with and without a code, an email user's
//! two answers with the code read from the mail the real exim delivered,
//! and parallel answers checked no more than the tiers allow.

mod common;
use common::mail::{code_in, ensure_mail_user, mailbox, wait_for_messages};
use common::*;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

const PASSWORD: &str = "correct horse 42";
const SOURCE: &str = "198.51.100.23";

fn rig(name: &str, extra: &str) -> Rig {
    let rig = Rig::new(name, extra);
    rig.service("single", &single_stack(&module(), &rig.config));
    rig
}

fn user<'a>(name: &'a str, password: &str) -> &'a str {
    ensure_user(name, Some(password));
    name
}

/// One answer through the single stack.
fn answer(rig: &Rig, user: &str, text: &str) -> Login {
    rig.login_with(
        "single",
        user,
        &[text],
        &[("rhost", SOURCE), ("tty", "ssh")],
    )
}

/// A code of the current step that stays good for the next few seconds.
fn code_now() -> String {
    fresh_step(4);
    oath_code(SECRET, 0)
}

/// A wrong code of the right length.
fn not_the_code() -> String {
    format!(
        "{:06}",
        (oath_code(SECRET, 0).parse::<u32>().unwrap() + 500_000) % 1_000_000
    )
}

fn failures(rig: &Rig, user: &str) -> u64 {
    rig.status_json(user)["failures"].as_u64().unwrap()
}

#[test]
fn right_password_and_code_in_one_answer() {
    let u = user("ts-sg-right", PASSWORD);
    let mut rig = rig("sg-right", "");
    rig.enroll(u, SECRET);
    rig.events();
    let code = code_now();
    let l = answer(&rig, u, &format!("{PASSWORD}{code}"));
    assert_eq!(l.code, PAM_SUCCESS, "{}", l.out);
    assert_eq!(l.prompts(), 1, "one question: {}", l.out);
    assert!(l.out.contains("Password and code: "), "{}", l.out);
    let ev = rig.module_events();
    assert_eq!(count(&ev, "auth_ok"), 1, "{ev:#?}");
    assert_eq!(failures(&rig, u), 0);

    // The same answer again: the code was spent.
    let again = answer(&rig, u, &format!("{PASSWORD}{code}"));
    assert_eq!(again.code, PAM_AUTH_ERR, "replay: {}", again.out);
    assert_eq!(again.prompts(), 1);
    let ev = rig.module_events();
    assert_eq!(count(&ev, "auth_ok"), 0, "{ev:#?}");
    assert_eq!(failures(&rig, u), 1);
    // The administrator sees a replay, as at a code prompt.
    let fails: Vec<_> = ev.iter().filter(|e| e.event() == "auth_fail").collect();
    assert_eq!(fails.len(), 1, "{ev:#?}");
    assert_eq!(fails[0].get("reason"), Some("replay"), "{ev:#?}");
}

#[test]
fn a_wrong_code_and_a_wrong_password_look_the_same() {
    let u = user("ts-sg-wrong", PASSWORD);
    let mut rig = rig(
        "sg-wrong",
        "[lockout]\ntiers = [{failures = 50, lock = \"1m\"}]",
    );
    rig.enroll(u, SECRET);
    rig.events();
    let code = code_now();
    let wrong_code = answer(&rig, u, &format!("{PASSWORD}{}", not_the_code()));
    let wrong_password = answer(&rig, u, &format!("not the password{code}"));
    let both_wrong = answer(&rig, u, &format!("not the password{}", not_the_code()));
    for l in [&wrong_code, &wrong_password, &both_wrong] {
        assert_eq!(l.code, PAM_AUTH_ERR, "{}", l.out);
    }
    // Word for word what the client sees.
    assert_eq!(wrong_code.out, wrong_password.out);
    assert_eq!(wrong_code.out, both_wrong.out);
    assert_eq!(failures(&rig, u), 3, "each answer counted once");
    // The records tell the administrator which it was.
    let ev = rig.module_events();
    let fails: Vec<_> = ev
        .iter()
        .filter(|e| e.event() == "auth_fail" || e.event() == "password_fail")
        .map(|e| {
            (
                e.event().to_string(),
                e.get("failures").unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        fails,
        [
            ("auth_fail".to_string(), "1".to_string()),
            ("password_fail".to_string(), "2".to_string()),
            ("auth_fail".to_string(), "3".to_string()),
        ],
        "{ev:#?}"
    );
    // A code that was good but came with a wrong password was not spent.
    let l = answer(&rig, u, &format!("{PASSWORD}{code}"));
    assert_eq!(l.code, PAM_SUCCESS, "{}", l.out);
    // Nor can the password alone be tried: an app user's answer without a
    // code never reaches pam_unix with the password in it.
    let alone = answer(&rig, u, PASSWORD);
    assert_eq!(alone.code, PAM_AUTH_ERR);
    assert_eq!(alone.out, wrong_code.out);
}

#[test]
fn a_password_that_ends_in_digits_and_one_set_before() {
    let pw = "summer2024";
    let u = user("ts-sg-digits", pw);
    let mut rig = rig("sg-digits", "");
    rig.enroll(u, SECRET);
    rig.events();
    let l = answer(&rig, u, &format!("{pw}{}", code_now()));
    assert_eq!(
        l.code, PAM_SUCCESS,
        "the code is the last 6 digits: {}",
        l.out
    );

    // A module before it asked and set PAM_AUTHTOK (libpam lets only
    // modules set it: an application's pam_set_item gets PAM_BAD_ITEM):
    // that is the answer, and nothing more is asked.
    rig.service(
        "authtok-set",
        &format!(
            "auth optional pam_exec.so quiet expose_authtok /bin/true\n\
             auth requisite {m} config={c} preauth single\n\
             auth [success=1 default=ignore] pam_unix.so nodelay use_first_pass\n\
             auth [default=die] {m} config={c} authfail\n\
             auth required {m} config={c}\n",
            m = module().display(),
            c = rig.config.display()
        ),
    );
    let l = rig.login_with(
        "authtok-set",
        u,
        &[&format!("{pw}{}", oath_code(SECRET, 1))],
        &[("rhost", SOURCE)],
    );
    assert_eq!(l.code, PAM_SUCCESS, "{}", l.out);
    assert_eq!(l.prompts(), 1, "{}", l.out);
    assert!(!l.out.contains("Password and code"), "{}", l.out);
}

#[test]
fn a_recovery_code_in_place_of_the_code() {
    let u = user("ts-sg-recovery", PASSWORD);
    let mut rig = rig("sg-recovery", "");
    let codes = rig.enroll_with_recovery_codes(u, SECRET);
    assert_eq!(codes[0].len(), 11, "shown as xxxxx-xxxxx: {}", codes[0]);
    rig.events();
    let l = answer(&rig, u, &format!("{PASSWORD}{}", codes[0]));
    assert_eq!(l.code, PAM_SUCCESS, "{}", l.out);
    assert!(l.out.contains("9 recovery codes are left"), "{}", l.out);
    let ev = rig.module_events();
    let ok: Vec<_> = ev.iter().filter(|e| e.event() == "auth_ok").collect();
    assert_eq!(ok.len(), 1, "{ev:#?}");
    assert_eq!(ok[0].get("method"), Some("recovery"));
    // Once only.
    let l = answer(&rig, u, &format!("{PASSWORD}{}", codes[0]));
    assert_eq!(l.code, PAM_AUTH_ERR, "{}", l.out);
    // Typed in capitals, as it also works at the prompt.
    let l = answer(&rig, u, &format!("{PASSWORD}{}", codes[1].to_uppercase()));
    assert_eq!(l.code, PAM_SUCCESS, "{}", l.out);
}

/// Every file under the rig's directories with its contents, but the
/// user's state file (the count) and the log socket.
fn everything_but_the_count(rig: &Rig, user: &str) -> Vec<(String, Vec<u8>)> {
    let state = rig.state_path(user);
    let mut out: Vec<_> = [&rig.secret_dir, &rig.state_dir, &rig.confdir]
        .iter()
        .flat_map(|d| files_under(d))
        .filter(|p| *p != state && !p.to_string_lossy().contains(".argon2-slot"))
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read(&p).unwrap_or_default(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn bad_answers_are_denied_and_counted_and_nothing_else_is_written() {
    let u = user("ts-sg-bad", PASSWORD);
    let mut rig = rig(
        "sg-bad",
        "[lockout]\ntiers = [{failures = 50, lock = \"1m\"}]",
    );
    rig.enroll(u, SECRET);
    let code = code_now();
    let huge = "7".repeat(64 * 1024);
    let cases: Vec<(&str, String)> = vec![
        ("no digits", PASSWORD.to_string()),
        ("shorter than a code", "12345".to_string()),
        ("64 KiB", huge),
        ("a NUL byte before the code", format!("{PASSWORD}\0{code}")),
        (
            "a NUL byte in the code",
            format!("{PASSWORD}{}\0{}", &code[..3], &code[3..]),
        ),
        ("5 digits", format!("{PASSWORD}{}", &code[..5])),
        ("7 digits", format!("{PASSWORD}{code}1")),
        ("nothing", String::new()),
    ];
    rig.events();
    let before = everything_but_the_count(&rig, u);
    for (i, (what, text)) in cases.iter().enumerate() {
        let l = answer(&rig, u, text);
        assert_eq!(l.code, PAM_AUTH_ERR, "{what}: {}", l.out);
        assert_eq!(failures(&rig, u), i as u64 + 1, "{what}: counted once");
    }
    assert_eq!(
        everything_but_the_count(&rig, u),
        before,
        "nothing written but the count"
    );
    let ev = rig.module_events();
    assert_eq!(count(&ev, "auth_ok"), 0, "{ev:#?}");
    // The 64 KiB answer is refused before anything is judged, and says why.
    let l = answer(&rig, u, &"7".repeat(64 * 1024));
    assert!(
        l.errors()
            .iter()
            .any(|e| e.contains("cannot be a password followed by a code")),
        "{}",
        l.out
    );
    // The code itself was never spent by any of them.
    let l = answer(&rig, u, &format!("{PASSWORD}{code}"));
    assert_eq!(l.code, PAM_SUCCESS, "{}", l.out);
}

#[test]
fn a_policy_skipped_user_answers_with_or_without_a_code() {
    // A password that ends in 6 digits: without a code it must still be
    // the whole password.
    let pw = "tulip123456";
    let u = user("ts-sg-skip", pw);
    let mut rig = rig(
        "sg-skip",
        &format!(
            "[lockout]\ntiers = [{{failures = 50, lock = \"1m\"}}]\n\
             [policy]\ntrusted_networks = [\"{SOURCE}/32\"]"
        ),
    );
    rig.enroll(u, SECRET);
    rig.events();
    let alone = answer(&rig, u, pw);
    assert_eq!(alone.code, PAM_SUCCESS, "the password alone: {}", alone.out);
    let with = answer(&rig, u, &format!("{pw}{}", code_now()));
    assert_eq!(
        with.code, PAM_SUCCESS,
        "the password and a code: {}",
        with.out
    );
    let ev = rig.module_events();
    assert_eq!(count(&ev, "skipped"), 2, "{ev:#?}");
    // Neither right: denied.
    let l = answer(&rig, u, &format!("{pw}{}", not_the_code()));
    assert_eq!(l.code, PAM_AUTH_ERR, "{}", l.out);
    let l = answer(&rig, u, "tulip");
    assert_eq!(l.code, PAM_AUTH_ERR, "{}", l.out);
    assert_eq!(failures(&rig, u), 2);
    // From elsewhere the same user must give a code.
    let l = rig.login_with("single", u, &[pw], &[("rhost", "203.0.113.9")]);
    assert_eq!(l.code, PAM_AUTH_ERR, "{}", l.out);
}

fn write_secret(rig: &Rig, user: &str, text: &str) {
    let path = rig.secret_path(user);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn an_email_user_answers_twice() {
    let u = "ts-sg-mail";
    ensure_mail_user(u);
    ensure_user(u, Some(PASSWORD));
    let _ = std::fs::remove_file(mailbox(u));
    let issuer = format!("sg-mail-{}", now());
    let mut rig = rig(
        "sg-mail",
        &format!("issuer = \"{issuer}\"\n[email]\nfrom = \"twostep@localhost\"\n"),
    );
    write_secret(
        &rig,
        u,
        &format!("secret = \"{SECRET}\"\nmethod = \"email\"\nemail = \"{u}@localhost\"\n"),
    );
    rig.events();

    // A wrong password sends nothing.
    let l = answer(&rig, u, "not the password");
    assert_eq!(l.code, PAM_AUTH_ERR, "{}", l.out);
    let ev = rig.module_events();
    assert_eq!(count(&ev, "code_sent"), 0, "{ev:#?}");

    // The password alone: a code is sent, and the answer refused with what
    // to do.
    let first = answer(&rig, u, PASSWORD);
    assert_eq!(first.code, PAM_AUTH_ERR, "{}", first.out);
    assert!(first.out.contains("A code was sent to"), "{}", first.out);
    assert!(
        first
            .errors()
            .iter()
            .any(|e| e.contains("password followed by the code")),
        "{}",
        first.out
    );
    let ev = rig.module_events();
    assert_eq!(count(&ev, "code_sent"), 1, "{ev:#?}");
    let messages = wait_for_messages(&mailbox(u), &issuer, 1);
    let code = code_in(&messages[0]);

    // Again at once: the code already sent is to be used (the throttle).
    let again = answer(&rig, u, PASSWORD);
    assert_eq!(again.code, PAM_AUTH_ERR);
    assert!(again.out.contains("use that one"), "{}", again.out);
    assert_eq!(count(&rig.module_events(), "code_sent"), 0);

    // A wrong code after the password: denied, as a wrong password is.
    let wrong = answer(&rig, u, &format!("{PASSWORD}{}", not_the_code()));
    assert_eq!(wrong.code, PAM_AUTH_ERR, "{}", wrong.out);

    // The second answer: the password followed by the code.
    let l = answer(&rig, u, &format!("{PASSWORD}{code}"));
    assert_eq!(l.code, PAM_SUCCESS, "{}", l.out);
    let ev = rig.module_events();
    let ok: Vec<_> = ev.iter().filter(|e| e.event() == "auth_ok").collect();
    assert_eq!(ok.len(), 1, "{ev:#?}");
    assert_eq!(ok[0].get("method"), Some("email"));
    assert_eq!(failures(&rig, u), 0);
    // Spent.
    let l = answer(&rig, u, &format!("{PASSWORD}{code}"));
    assert_eq!(l.code, PAM_AUTH_ERR, "{}", l.out);
}

/// The single stack with a pam_exec line in front of pam_unix that appends
/// a line to `log` for every password pam_unix checks.
fn counting_single_stack(rig: &Rig, log: &Path) {
    let script = rig.password_counter(log);
    rig.service(
        "counted",
        &format!(
            "auth requisite {m} config={c} preauth single\n\
             auth optional pam_exec.so quiet {script}\n\
             auth [success=1 default=ignore] pam_unix.so nodelay use_first_pass\n\
             auth [default=die] {m} config={c} authfail\n\
             auth required {m} config={c}\n",
            m = module().display(),
            c = rig.config.display(),
            script = script.display()
        ),
    );
}

#[test]
fn parallel_answers_get_only_the_allowance_checked() {
    let u = user("ts-sg-parallel", PASSWORD);
    let mut rig = rig(
        "sg-parallel",
        "[lockout]\ntiers = [{failures = 5, lock = \"1h\"}]",
    );
    rig.enroll(u, SECRET);
    let checked = rig.root.join("checked");
    counting_single_stack(&rig, &checked);
    rig.events();
    let code = code_now();
    // Wrong passwords with the right code, and the right password with
    // wrong codes, all at once.
    let children: Vec<_> = (0..20)
        .map(|i| {
            let text = if i % 2 == 0 {
                format!("wrong password{code}")
            } else {
                format!("{PASSWORD}{}", not_the_code())
            };
            let mut c = rig.spawn_login("counted", u, &[("rhost", SOURCE)]);
            let _ = writeln!(c.stdin.take().unwrap(), "{text}");
            c
        })
        .collect();
    for c in children {
        assert_eq!(
            c.wait_with_output().unwrap().status.code(),
            Some(PAM_AUTH_ERR)
        );
    }
    let lines = std::fs::read_to_string(&checked).map_or(0, |t| t.lines().count());
    assert_eq!(
        lines, 5,
        "answers that reached pam_unix: the tier's allowance"
    );
    let ev = rig.module_events();
    assert_eq!(
        count(&ev, "password_fail") + count(&ev, "auth_fail"),
        5,
        "{ev:#?}"
    );
    assert_eq!(count(&ev, "lock_denied"), 15, "{ev:#?}");
    assert_eq!(failures(&rig, u), 5);
    // Locked: even the right answer is refused unjudged.
    let l = answer(&rig, u, &format!("{PASSWORD}{}", oath_code(SECRET, 1)));
    assert_eq!(l.code, PAM_AUTH_ERR);
    assert!(
        l.errors().iter().any(|e| e.contains("locked until")),
        "{}",
        l.out
    );
}
