//! The code step through the real libpam: accept, window, replay, bad
//! answers, refused secret files, hostile and unknown names, config errors,
//! and the records as a syslog socket receives them.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;

const ALICE: &str = "ts-alice";
const BOB: &str = "ts-bob";

fn rig(name: &str) -> Rig {
    ensure_user(ALICE, None);
    ensure_user(BOB, None);
    let rig = Rig::new(name, "");
    rig.enroll(ALICE, SECRET);
    rig
}

fn assert_denied(login: &Login, what: &str) {
    assert_eq!(login.code, PAM_AUTH_ERR, "{what}: {}", login.out);
    assert_eq!(login.prompts(), 1, "{what}: asked once: {}", login.out);
}

fn only_event(rig: &mut Rig, what: &str) -> Event {
    let events = rig.events();
    assert_eq!(events.len(), 1, "{what}: one record per event: {events:#?}");
    events.into_iter().next().unwrap()
}

#[test]
fn accepts_the_current_code_and_logs_auth_ok() {
    let mut rig = rig("accept");
    rig.events();
    fresh_step(3);
    let code = oath_code(SECRET, 0);
    let login = rig.login(ALICE, &code);
    assert_eq!(login.code, PAM_SUCCESS, "{}", login.out);
    assert!(
        login.out.starts_with("PROMPT_OFF: Verification code: "),
        "{}",
        login.out
    );
    let ev = only_event(&mut rig, "accept");
    assert_eq!(ev.tag, "pam_twostep");
    assert_eq!(
        ev.keys(),
        [
            "event", "user", "service", "rhost", "tty", "method", "device"
        ]
    );
    assert_eq!(ev.event(), "auth_ok");
    // A file with one top-level secret is one authenticator, "default".
    assert_eq!(ev.get("device"), Some("default"));
    assert_eq!(ev.get("user"), Some(ALICE));
    assert_eq!(ev.get("service"), Some("twostep"));
    assert_eq!(ev.get("rhost"), Some("192.0.2.10"));
    assert_eq!(ev.get("tty"), Some("ssh"));
    assert_eq!(ev.get("method"), Some("totp"));
    // authpriv.info, and never the code or the secret.
    assert!(ev.raw.starts_with("<86>"), "{}", ev.raw);
    assert!(
        !ev.raw.contains(&code) && !ev.raw.contains(SECRET),
        "{}",
        ev.raw
    );
}

#[test]
fn window_previous_step_ok_two_steps_old_refused_then_replay_refused() {
    let mut rig = rig("window");
    rig.events();
    fresh_step(3);
    let old = oath_code(SECRET, -2);
    let login = rig.login(ALICE, &old);
    assert_denied(&login, "two steps old");
    assert_eq!(only_event(&mut rig, "old").get("reason"), Some("bad_code"));

    fresh_step(3);
    let prev = oath_code(SECRET, -1);
    assert_eq!(rig.login(ALICE, &prev).code, PAM_SUCCESS, "previous step");
    assert_eq!(only_event(&mut rig, "prev").event(), "auth_ok");

    // The same code again: refused as a replay.
    let again = rig.login(ALICE, &prev);
    assert_denied(&again, "replay");
    let ev = only_event(&mut rig, "replay");
    assert_eq!(
        (ev.event(), ev.get("reason")),
        ("auth_fail", Some("replay"))
    );
    assert!(!ev.raw.contains(&prev));

    // A code of the current step is later than the one accepted: fine.
    fresh_step(3);
    let cur = oath_code(SECRET, 0);
    if cur != prev {
        assert_eq!(rig.login(ALICE, &cur).code, PAM_SUCCESS);
        rig.events();
        // And it too is good once only.
        assert_denied(&rig.login(ALICE, &cur), "replay of current");
        assert_eq!(
            only_event(&mut rig, "replay2").get("reason"),
            Some("replay")
        );
    }
}

#[test]
fn a_code_behind_an_accepted_one_is_a_replay_too() {
    let mut rig = rig("behind");
    fresh_step(3);
    assert_eq!(
        rig.login(ALICE, &oath_code(SECRET, 1)).code,
        PAM_SUCCESS,
        "next step (skew 1)"
    );
    rig.events();
    let cur = oath_code(SECRET, 0);
    assert_denied(&rig.login(ALICE, &cur), "earlier step after a later one");
    assert_eq!(only_event(&mut rig, "behind").get("reason"), Some("replay"));
}

#[test]
fn bad_answers_are_refused_and_counted() {
    let mut rig = rig("badanswers");
    rig.write_config("[lockout]\ntiers = [{failures = 100, lock = \"1m\"}]");
    rig.events();
    fresh_step(3);
    let good = oath_code(SECRET, 0);
    let wrong = format!("{:06}", (good.parse::<u32>().unwrap() + 1) % 1_000_000);
    let long = "1".repeat(100_000);
    let cases = [
        ("wrong code", wrong.as_str()),
        ("empty answer", ""),
        ("very long answer", long.as_str()),
        ("non-digits", "12ab56"),
        ("too short", &good[..5]),
        ("too long", &format!("{good}0")),
    ];
    for (i, (what, answer)) in cases.iter().enumerate() {
        let login = rig.login(ALICE, answer);
        assert_denied(&login, what);
        let ev = only_event(&mut rig, what);
        assert_eq!(ev.event(), "auth_fail", "{what}");
        assert_eq!(ev.get("reason"), Some("bad_code"), "{what}");
        assert_eq!(
            ev.get("failures"),
            Some((i + 1).to_string().as_str()),
            "{what}: counted"
        );
        if !answer.is_empty() {
            assert!(
                !ev.raw.contains(&answer[..answer.len().min(20)]),
                "{what}: answer logged: {}",
                ev.raw
            );
        }
    }
}

#[test]
fn secret_files_that_must_not_be_trusted_are_refused() {
    let mut rig = rig("badfiles");
    let path = rig.secret_path(ALICE);
    let good = std::fs::read(&path).unwrap();
    let reset = |rig: &Rig| {
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, &good).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::chown(&path, Some(0), Some(0)).unwrap();
        let _ = std::fs::remove_file(rig.state_path(ALICE));
    };
    type Spoil = Box<dyn Fn(&std::path::Path)>;
    let cases: Vec<(&str, Spoil, &str)> = vec![
        (
            "group-readable",
            Box::new(|p| {
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o640)).unwrap()
            }),
            "mode 0640",
        ),
        (
            "world-readable",
            Box::new(|p| {
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o604)).unwrap()
            }),
            "mode 0604",
        ),
        (
            "owned by a user",
            Box::new(|p| std::os::unix::fs::chown(p, Some(65534), None).unwrap()),
            "owned by uid 65534",
        ),
        (
            "symlink",
            Box::new(|p| {
                let target = p.with_file_name("real");
                std::fs::rename(p, &target).unwrap();
                std::os::unix::fs::symlink(&target, p).unwrap();
            }),
            "symbolic link",
        ),
        (
            "directory",
            Box::new(|p| {
                std::fs::remove_file(p).unwrap();
                std::fs::create_dir(p).unwrap();
            }),
            "not a regular file",
        ),
        (
            "short secret",
            Box::new(|p| std::fs::write(p, "secret = \"GEZDGNBVGY3TQOJQGEZDGNBV\"\n").unwrap()),
            "at least 128",
        ),
        (
            "not toml",
            Box::new(|p| {
                std::fs::write(p, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n\" RATE_LIMIT 3 30\n").unwrap()
            }),
            "TOML",
        ),
        (
            "huge",
            Box::new(|p| std::fs::write(p, vec![b'#'; 70_000]).unwrap()),
            "too large",
        ),
    ];
    for (what, spoil, detail) in cases {
        reset(&rig);
        spoil(&path);
        rig.events();
        fresh_step(3);
        let login = rig.login(ALICE, &oath_code(SECRET, 0));
        assert_denied(&login, what);
        let ev = only_event(&mut rig, what);
        assert_eq!(
            (ev.event(), ev.get("reason")),
            ("auth_fail", Some("bad_secret_file")),
            "{what}"
        );
        assert!(
            ev.get("detail").unwrap_or("").contains(detail),
            "{what}: {:?}",
            ev.get("detail")
        );
        assert!(!ev.raw.contains(SECRET), "{what}: secret logged");
        if path.is_dir() {
            std::fs::remove_dir(&path).unwrap();
        }
        let _ = std::fs::remove_file(path.with_file_name("real"));
    }
}

#[test]
fn hostile_names_are_denied_without_touching_the_disk() {
    let mut rig = rig("hostile");
    let before = rig.files();
    let long = "a".repeat(257);
    let names = [
        "../x",
        "/",
        "-x",
        ".x",
        "..",
        "a/b",
        "a\nb",
        "a b",
        long.as_str(),
        "",
        "../../../../etc/passwd",
    ];
    for name in names {
        rig.events();
        let login = rig.login(name, "123456");
        assert_denied(&login, name);
        let ev = only_event(&mut rig, name);
        assert_eq!(
            (ev.event(), ev.get("reason")),
            ("auth_fail", Some("bad_user")),
            "{name:?}"
        );
        // The record stays one line whatever the name.
        assert!(!ev.raw.contains('\n'), "{:?}", ev.raw);
    }
    assert_eq!(rig.files(), before, "no file was created or removed");
    assert!(!rig.root.join("x").exists() && !rig.secret_dir.join("a").exists());
}

#[test]
fn no_user_name_at_all_is_a_bad_user_not_a_config_error() {
    // login(1) when the person closes the terminal at "login: ": the
    // application set no user, and pam_get_user's own prompt gets no answer.
    let mut rig = rig("nameless");
    rig.events();
    let out = std::process::Command::new(pamdrive())
        .arg("--confdir")
        .arg(&rig.confdir)
        .args(["--service", "twostep", "--nodelay"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(PAM_AUTH_ERR), "{text}");
    assert!(
        text.contains("PROMPT_ON: "),
        "libpam asked for a name: {text}"
    );
    let ev = only_event(&mut rig, "nameless");
    assert_eq!(
        (ev.event(), ev.get("reason"), ev.get("user")),
        ("auth_fail", Some("bad_user"), Some("")),
        "{}",
        ev.raw
    );
    assert_eq!(ev.get("detail"), Some("PAM could not tell the user name"));
}

#[test]
fn unknown_and_unenrolled_users_are_asked_then_denied() {
    let mut rig = rig("unknown");
    rig.events();
    let code = oath_code(SECRET, 0);
    let unknown = rig.login("ts-nosuchuser", &code);
    assert_denied(&unknown, "unknown user");
    let ev = only_event(&mut rig, "unknown");
    assert_eq!(
        (ev.event(), ev.get("reason")),
        ("auth_fail", Some("bad_user"))
    );

    let unenrolled = rig.login(BOB, &code);
    assert_denied(&unenrolled, "unenrolled");
    let ev = only_event(&mut rig, "unenrolled");
    assert_eq!(
        (ev.event(), ev.get("reason")),
        ("auth_fail", Some("no_secret"))
    );
    // Same prompt text, same result code as an enrolled user's wrong code.
    assert_eq!(unknown.out.lines().next(), unenrolled.out.lines().next());
    assert!(
        !rig.files().contains(&"ts-nosuchuser".to_string()),
        "no state for made-up names"
    );
}

#[test]
fn unenrolled_allow_skips_without_asking() {
    let mut rig = rig("allow");
    rig.write_config("unenrolled = \"allow\"");
    rig.events();
    let login = rig.login(BOB, "");
    assert_eq!(login.code, PAM_SUCCESS, "{}", login.out);
    assert_eq!(login.prompts(), 0, "{}", login.out);
    let ev = only_event(&mut rig, "allow");
    assert_eq!(ev.event(), "skipped");
    assert_eq!(ev.keys(), ["event", "user", "service", "rhost", "reason"]);
    // A user that does not exist is still asked, then denied (the contract
    // says so of every such user, whatever `unenrolled` is).
    let unknown = rig.login("ts-nosuchuser", "");
    assert_eq!(unknown.code, PAM_AUTH_ERR, "{}", unknown.out);
    assert_eq!(unknown.prompts(), 1, "{}", unknown.out);
    let ev = only_event(&mut rig, "allow, unknown");
    assert_eq!(
        (ev.event(), ev.get("reason")),
        ("auth_fail", Some("bad_user"))
    );
    // Enrolled users are still asked.
    fresh_step(3);
    assert_eq!(rig.login(ALICE, "000000").prompts(), 1);
}

#[test]
fn a_bad_config_fails_closed_and_says_why() {
    let mut rig = rig("badconfig");
    let cases = [
        ("[totp]\ndigits = 9", "totp.digits"),
        ("frobnicate = true", "frobnicate"),
        ("[lockout]\ntiers = []", "lockout.tiers"),
    ];
    for (extra, key) in cases {
        rig.write_config(extra);
        rig.events();
        fresh_step(3);
        let login = rig.login(ALICE, &oath_code(SECRET, 0));
        assert_eq!(login.code, PAM_AUTH_ERR, "{extra}: {}", login.out);
        let ev = only_event(&mut rig, extra);
        assert_eq!(
            (ev.event(), ev.get("reason")),
            ("auth_fail", Some("config")),
            "{extra}"
        );
        assert!(
            ev.get("detail").unwrap_or("").contains(key),
            "{extra}: {:?}",
            ev.get("detail")
        );
    }
    // Not even TOML: denied all the same (the record goes to /dev/log, as
    // the file cannot say where else).
    rig.write_config("unenrolled = \"allow\"\nunenrolled = \"allow\"");
    assert_eq!(rig.login(BOB, "").code, PAM_AUTH_ERR);
    // A config path that does not exist, and an unknown module argument.
    let m = module();
    rig.write_config("");
    rig.service(
        "missing",
        &format!(
            "auth required {} config=/nonexistent/twostep.toml\n",
            m.display()
        ),
    );
    assert_eq!(
        rig.login_with("missing", ALICE, &["123456"], &[]).code,
        PAM_AUTH_ERR
    );
    rig.service(
        "typo",
        &format!(
            "auth required {} config={} nulok\n",
            m.display(),
            rig.config.display()
        ),
    );
    assert_eq!(
        rig.login_with("typo", ALICE, &["123456"], &[]).code,
        PAM_AUTH_ERR
    );
    let ev = only_event(&mut rig, "typo");
    assert!(ev.get("detail").unwrap_or("").contains("nulok"), "{ev:?}");
}

#[test]
fn per_user_parameters_from_the_secret_file() {
    let mut rig = rig("params");
    // An 8-digit SHA256 60-second user, written as an admin would.
    let secret64 = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    std::fs::write(
        rig.secret_path(ALICE),
        format!("secret = \"{secret64}\"\ndigits = 8\nperiod = 60\nalgorithm = \"SHA256\"\n"),
    )
    .unwrap();
    rig.events();
    loop {
        if 60 - now() % 60 > 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let code = oath_code_at(secret64, now(), "SHA256", 8, 60);
    assert_eq!(code.len(), 8);
    let login = rig.login(ALICE, &code);
    assert_eq!(login.code, PAM_SUCCESS, "{}", login.out);
    assert_eq!(only_event(&mut rig, "params").event(), "auth_ok");
}

#[test]
fn client_that_hangs_up_is_denied_without_counting() {
    let mut rig = rig("hangup");
    rig.events();
    // No answer at all: the conversation fails.
    let login = rig.login_with("twostep", ALICE, &[], &[]);
    assert_eq!(login.code, PAM_CONV_ERR, "{}", login.out);
    assert!(rig.events().iter().all(|e| e.event() != "auth_ok"));
    assert!(
        !rig.state_path(ALICE).exists() || rig.cli(&["status", ALICE, "--json"]).status.success()
    );
}

#[test]
fn debug_says_how_the_decision_was_reached_without_the_answer() {
    let mut rig = rig("debug");
    let m = module();
    rig.service(
        "dbg",
        &format!(
            "auth required {} config={} debug\n",
            m.display(),
            rig.config.display()
        ),
    );
    rig.events();
    fresh_step(3);
    let code = oath_code(SECRET, 0);
    let login = rig.login_with("dbg", ALICE, &[&code], &[]);
    assert_eq!(login.code, PAM_SUCCESS, "{}", login.out);
    let events = rig.events();
    let debug: Vec<&Event> = events.iter().filter(|e| e.event() == "debug").collect();
    assert!(
        debug.iter().any(|e| e
            .get("detail")
            .unwrap()
            .starts_with("secret file read: 6 digits")),
        "{events:#?}"
    );
    assert!(
        debug
            .iter()
            .any(|e| e.get("detail").unwrap().contains("step offset 0")),
        "{events:#?}"
    );
    assert!(
        debug.iter().all(|e| e.raw.starts_with("<87>")),
        "authpriv.debug: {events:#?}"
    );
    assert_eq!(events.iter().filter(|e| e.event() == "auth_ok").count(), 1);
    // A replay, then a wrong answer: each says why, and never what was typed.
    let again = rig.login_with("dbg", ALICE, &[&code], &[]);
    assert_eq!(again.code, PAM_AUTH_ERR);
    let wrong = wrong_code();
    rig.login_with("dbg", ALICE, &[&wrong], &[]);
    rig.login_with("dbg", ALICE, &["12ab"], &[]);
    let events = rig.events();
    let details: Vec<&str> = events
        .iter()
        .filter(|e| e.event() == "debug")
        .map(|e| e.get("detail").unwrap())
        .collect();
    assert!(
        details
            .iter()
            .any(|d| d.contains("not later than the last accepted")),
        "{details:#?}"
    );
    assert!(
        details.iter().any(|d| d.contains("no step of the window")),
        "{details:#?}"
    );
    assert!(
        details.iter().any(|d| d.contains("not 6 digits")),
        "{details:#?}"
    );
    for e in &events {
        for secret in [code.as_str(), wrong.as_str(), "12ab", SECRET] {
            assert!(!e.raw.contains(secret), "{secret} logged: {}", e.raw);
        }
    }
}
