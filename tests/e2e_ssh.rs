//! End to end through OpenSSH: a private sshd (its own PAM service, the
//! canonical stack) and the real `ssh` client over keyboard-interactive,
//! password then code. Success, replay, a wrong code, a wrong password, a
//! locked user, `AuthenticationMethods publickey,keyboard-interactive`, and
//! enrollment at login, with the records as the module sent them (rhost,
//! service, tty).

mod common;
#[path = "common/sshd.rs"]
mod sshd;

use common::*;
use sshd::{Answers, CODE_FROM_MAIL, CODE_FROM_URI, Sshd};

const PASSWORD: &str = "e2e pass-W0rd";

fn setup(test: &str, user: &str, extra_config: &str, sshd_config: &str) -> (Rig, Sshd) {
    ensure_user(user, Some(PASSWORD));
    let mut rig = Rig::new(&format!("ssh-{test}"), extra_config);
    rig.enroll(user, SECRET);
    let sshd = Sshd::start(&rig, test, sshd_config);
    rig.events();
    (rig, sshd)
}

fn assert_remote(ev: &Event, sshd: &Sshd, user: &str) {
    assert_eq!(ev.get("user"), Some(user), "{}", ev.raw);
    assert_eq!(ev.get("service"), Some(sshd.service.as_str()), "{}", ev.raw);
    assert_eq!(ev.get("rhost"), Some("127.0.0.1"), "{}", ev.raw);
}

const PW: &str = "Password: ";
const CODE: &str = "Verification code: ";

#[test]
fn password_then_code_logs_in() {
    let user = "ts-ssh-ok";
    let (mut rig, sshd) = setup("ok", user, "", "");
    fresh_step(8);
    let code = oath_code(SECRET, 0);
    let login = sshd.ssh(
        user,
        &Answers {
            password: Some(PASSWORD),
            code: Some(&code),
        },
        "twostep-e2e-ok",
    );
    assert!(
        login.logged_in("twostep-e2e-ok"),
        "{login:#?}\n{}",
        sshd.log()
    );
    assert_eq!(
        login.prompt_texts(),
        [PW, CODE],
        "password first, then code"
    );
    assert!(sshd.log().contains("Accepted keyboard-interactive/pam"));

    let events = rig.module_events();
    assert_eq!(events.len(), 1, "{events:#?}");
    let ev = &events[0];
    assert_eq!(ev.event(), "auth_ok");
    assert_remote(ev, &sshd, user);
    // sshd sets PAM_TTY to "ssh" while authenticating.
    assert_eq!(ev.get("tty"), Some("ssh"), "{}", ev.raw);
    assert_eq!(ev.get("method"), Some("totp"));
    assert!(!ev.raw.contains(&code) && !ev.raw.contains(PASSWORD));
}

#[test]
fn a_replayed_code_is_refused() {
    let user = "ts-ssh-replay";
    let (mut rig, sshd) = setup("replay", user, "", "");
    fresh_step(12);
    let code = oath_code(SECRET, 0);
    let answers = Answers {
        password: Some(PASSWORD),
        code: Some(&code),
    };
    let first = sshd.ssh(user, &answers, "twostep-e2e-first");
    assert!(first.logged_in("twostep-e2e-first"), "{first:#?}");
    assert_eq!(rig.module_events()[0].event(), "auth_ok");

    // Someone who watched the code being typed tries it within its window.
    let again = sshd.ssh(user, &answers, "twostep-e2e-again");
    assert!(!again.logged_in("twostep-e2e-again"), "{again:#?}");
    assert_ne!(again.code, Some(0));
    assert_eq!(again.prompt_texts(), [PW, CODE]);
    let events = rig.module_events();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].event(), "auth_fail");
    assert_eq!(events[0].get("reason"), Some("replay"));
    assert_remote(&events[0], &sshd, user);
}

#[test]
fn a_wrong_code_and_a_wrong_password_are_refused_and_counted() {
    let user = "ts-ssh-wrong";
    let (mut rig, sshd) = setup("wrong", user, "", "");
    let wrong = wrong_code();
    let login = sshd.ssh(
        user,
        &Answers {
            password: Some(PASSWORD),
            code: Some(&wrong),
        },
        "twostep-e2e-wrong",
    );
    assert!(!login.logged_in("twostep-e2e-wrong"), "{login:#?}");
    assert_eq!(login.prompt_texts(), [PW, CODE]);
    let events = rig.module_events();
    assert_eq!(events.len(), 1, "{events:#?}");
    let ev = &events[0];
    assert_eq!(
        (ev.event(), ev.get("reason"), ev.get("failures")),
        ("auth_fail", Some("bad_code"), Some("1"))
    );
    assert_remote(ev, &sshd, user);
    assert_eq!(ev.get("tty"), Some("ssh"));
    assert!(!ev.raw.contains(&wrong));

    // A wrong password is counted by `authfail`, and no code is asked.
    let login = sshd.ssh(
        user,
        &Answers {
            password: Some("not the password"),
            code: Some(&oath_code(SECRET, 0)),
        },
        "twostep-e2e-badpw",
    );
    assert!(!login.logged_in("twostep-e2e-badpw"), "{login:#?}");
    assert_eq!(
        login.prompt_texts(),
        [PW],
        "no code prompt after a bad password"
    );
    let events = rig.module_events();
    assert_eq!(events.len(), 1, "{events:#?}");
    let ev = &events[0];
    assert_eq!(
        (ev.event(), ev.get("failures")),
        ("password_fail", Some("2"))
    );
    assert_remote(ev, &sshd, user);
}

#[test]
fn a_locked_user_is_refused_before_the_password() {
    let user = "ts-ssh-locked";
    let (mut rig, sshd) = setup(
        "locked",
        user,
        "[lockout]\ntiers = [{failures = 2, lock = \"10m\"}]",
        "",
    );
    let wrong = wrong_code();
    let bad_password = Answers {
        password: Some("not the password"),
        code: None,
    };
    let bad_code = Answers {
        password: Some(PASSWORD),
        code: Some(&wrong),
    };
    // Password and code failures count together: one of each locks.
    assert!(!sshd.ssh(user, &bad_password, "x").logged_in("x"));
    assert!(!sshd.ssh(user, &bad_code, "x").logged_in("x"));
    let events = rig.module_events();
    let kinds: Vec<&str> = events.iter().map(Event::event).collect();
    assert_eq!(
        kinds,
        ["password_fail", "auth_fail", "locked"],
        "{events:#?}"
    );
    let locked = &events[2];
    assert_eq!(locked.get("user"), Some(user));
    assert!(
        locked.get("tier").is_some_and(|t| t.parse::<u32>().is_ok()),
        "{}",
        locked.raw
    );
    assert!(locked.get("until").is_some_and(|u| u.ends_with('Z')));

    // The right password and code now: refused at once, nothing asked.
    fresh_step(8);
    let code = oath_code(SECRET, 0);
    let right = Answers {
        password: Some(PASSWORD),
        code: Some(&code),
    };
    let login = sshd.ssh(user, &right, "twostep-e2e-locked");
    assert!(!login.logged_in("twostep-e2e-locked"), "{login:#?}");
    assert!(
        login.prompts.is_empty(),
        "a locked user is not asked for anything: {login:#?}"
    );
    let events = rig.module_events();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].event(), "lock_denied");
    assert_remote(&events[0], &sshd, user);
    assert_eq!(events[0].get("until"), locked.get("until"));

    // An administrator unlocks: the same code now works.
    let out = rig.cli(&["unlock", user]);
    assert!(out.status.success(), "{out:?}");
    let login = sshd.ssh(user, &right, "twostep-e2e-unlocked");
    assert!(login.logged_in("twostep-e2e-unlocked"), "{login:#?}");
    let events = rig.module_events();
    assert_eq!(events.last().map(Event::event), Some("auth_ok"));
}

#[test]
fn publickey_then_keyboard_interactive() {
    let user = "ts-ssh-pubkey";
    let (mut rig, sshd) = setup(
        "pubkey",
        user,
        "",
        "PubkeyAuthentication yes\nAuthenticationMethods publickey,keyboard-interactive",
    );
    let key = sshd.client_key(user);
    let key = key.to_str().unwrap();
    let both = [
        "-o",
        "PreferredAuthentications=publickey,keyboard-interactive",
    ];
    fresh_step(8);
    let code = oath_code(SECRET, 0);
    let right = Answers {
        password: Some(PASSWORD),
        code: Some(&code),
    };

    // Without the key, keyboard-interactive is never offered: no PAM at all.
    let login = sshd.ssh_with(user, &right, "twostep-e2e-nokey", &both);
    assert!(!login.logged_in("twostep-e2e-nokey"), "{login:#?}");
    assert!(login.prompts.is_empty(), "{login:#?}");
    assert!(rig.module_events().is_empty());

    // The key, then the password and the code.
    let mut args = both.to_vec();
    args.extend(["-i", key]);
    let login = sshd.ssh_with(user, &right, "twostep-e2e-pubkey", &args);
    assert!(
        login.logged_in("twostep-e2e-pubkey"),
        "{login:#?}\n{}",
        sshd.log()
    );
    assert_eq!(login.prompt_texts(), [PW, CODE]);
    let log = sshd.log();
    let partial = log.find("Partial publickey").expect(&log);
    let full = log.find("Accepted keyboard-interactive/pam").expect(&log);
    assert!(partial < full, "publickey first:\n{log}");
    let events = rig.module_events();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].event(), "auth_ok");
    assert_remote(&events[0], &sshd, user);

    // The key alone is not enough: a wrong code after it is refused.
    let wrong = wrong_code();
    let login = sshd.ssh_with(
        user,
        &Answers {
            password: Some(PASSWORD),
            code: Some(&wrong),
        },
        "twostep-e2e-keyonly",
        &args,
    );
    assert!(!login.logged_in("twostep-e2e-keyonly"), "{login:#?}");
    let events = rig.module_events();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].get("reason"), Some("bad_code"));
}

#[test]
fn enrollment_at_login_over_ssh() {
    let user = "ts-ssh-enroll";
    ensure_user(user, Some(PASSWORD));
    let mut rig = Rig::new("ssh-enroll", "unenrolled = \"enroll\"");
    let sshd = Sshd::start(&rig, "enroll", "");
    rig.events();
    fresh_step(8);
    let login = sshd.ssh(
        user,
        &Answers {
            password: Some(PASSWORD),
            code: Some(CODE_FROM_URI),
        },
        "twostep-e2e-enroll",
    );
    assert!(
        login.logged_in("twostep-e2e-enroll"),
        "{login:#?}\n{}",
        sshd.log()
    );
    // The QR code, the key and the URI arrive with the code prompt.
    let shown = login.prompts.join("\n");
    assert!(shown.contains("otpauth://totp/"), "{shown}");
    assert!(shown.contains("Key: "), "{shown}");
    assert!(
        shown.contains('\u{2584}') || shown.contains('\u{2580}'),
        "{shown}"
    );
    let events = rig.module_events();
    let kinds: Vec<&str> = events.iter().map(Event::event).collect();
    assert_eq!(kinds, ["enrolled", "auth_ok"], "{events:#?}");
    assert_eq!(events[0].get("by"), Some("login"));
    assert_remote(&events[1], &sshd, user);

    // Enrolled now: the next login asks for a code and nothing else.
    let path = rig.secret_path(user);
    assert_eq!(mode_of(&path), 0o600);
    let doc: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    let secret = doc["secret"].as_str().unwrap().to_string();
    assert!(
        shown.contains(&secret),
        "the secret shown is the one written"
    );
    let code = oath_code(&secret, 1);
    let login = sshd.ssh(
        user,
        &Answers {
            password: Some(PASSWORD),
            code: Some(&code),
        },
        "twostep-e2e-enrolled",
    );
    assert!(login.logged_in("twostep-e2e-enrolled"), "{login:#?}");
    assert_eq!(login.prompt_texts(), [PW, CODE]);
    let events = rig.module_events();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].event(), "auth_ok");
}

#[test]
fn an_email_user_logs_in_with_the_code_from_the_mail() {
    let user = "ts-ssh-email";
    // A home first: exim delivers only to users that have one.
    common::mail::ensure_mail_user(user);
    ensure_user(user, Some(PASSWORD));
    let mbox = common::mail::mailbox(user);
    let _ = std::fs::remove_file(&mbox);
    let mut rig = Rig::new("ssh-email", "[email]\nfrom = \"twostep@localhost\"");
    let path = rig.secret_path(user);
    std::fs::write(
        &path,
        format!("secret = \"{SECRET}\"\nmethod = \"email\"\nemail = \"{user}@localhost\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let sshd = Sshd::start(&rig, "email", "");
    rig.events();
    let from_mail = format!("{CODE_FROM_MAIL}{}", mbox.display());
    let login = sshd.ssh(
        user,
        &Answers {
            password: Some(PASSWORD),
            code: Some(&from_mail),
        },
        "twostep-e2e-email",
    );
    assert!(
        login.logged_in("twostep-e2e-email"),
        "{login:#?}\n{}",
        sshd.log()
    );
    // The code prompt came with where the code went.
    assert!(
        login
            .prompt_texts()
            .iter()
            .any(|p| p.contains("A code was sent to t***@l***")),
        "{login:#?}"
    );
    let events = rig.module_events();
    let sent = events.iter().find(|e| e.event() == "code_sent").unwrap();
    assert_remote(sent, &sshd, user);
    let ok = events.iter().find(|e| e.event() == "auth_ok").unwrap();
    assert_eq!(ok.get("method"), Some("email"));
}
