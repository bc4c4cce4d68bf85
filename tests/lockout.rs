//! Tiered lockout through the real libpam, the real pam_unix and real users:
//! the canonical four-line stack, short tiers in real time, the default tiers
//! under libfaketime, parallel attempts, and kill -9 in the middle of updates.

mod common;
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

const PASSWORD: &str = "correct horse 42";

fn user(name: &str) -> &str {
    ensure_user(name, Some(PASSWORD));
    name
}

/// Password then code, through the canonical stack.
fn stack_login(rig: &Rig, user: &str, password: &str, code: &str) -> Login {
    rig.login_with(
        "stack",
        user,
        &[password, code],
        &[("rhost", "198.51.100.7")],
    )
}

/// The `failures=` values of the `event` records, in order.
fn failure_counts(events: &[Event], event: &str) -> Vec<u32> {
    let mut fails: Vec<u32> = events
        .iter()
        .filter(|e| e.event() == event)
        .map(|e| e.get("failures").unwrap().parse().unwrap())
        .collect();
    fails.sort();
    fails
}

fn status(rig: &Rig, user: &str) -> serde_json::Value {
    rig.status_json(user)
}

#[test]
fn short_tiers_in_real_time() {
    let u = user("ts-lock-tiers");
    let mut rig = Rig::new(
        "tiers",
        "[lockout]\ntiers = [{failures = 3, lock = \"3s\"}, {failures = 2, lock = \"5s\"}]",
    );
    rig.enroll(u, SECRET);
    rig.events();

    // Password and code failures count together: 2 wrong passwords, 1 wrong code.
    for _ in 0..2 {
        let l = stack_login(&rig, u, "wrong", "000000");
        assert_eq!(l.code, PAM_AUTH_ERR, "{}", l.out);
        assert_eq!(
            l.prompts(),
            1,
            "a wrong password is not followed by the code prompt: {}",
            l.out
        );
    }
    fresh_step(3);
    let bad = format!(
        "{:06}",
        (oath_code(SECRET, 0).parse::<u32>().unwrap() + 1) % 1_000_000
    );
    let l = stack_login(&rig, u, PASSWORD, &bad);
    assert_eq!(l.code, PAM_AUTH_ERR);
    assert!(
        l.errors().iter().any(|e| e.contains("locked until")),
        "told at the failure that locks: {}",
        l.out
    );
    let ev = rig.events();
    let fails: Vec<_> = ev.iter().filter_map(|e| e.get("failures")).collect();
    assert_eq!(fails, ["1", "2", "3"], "{ev:#?}");
    assert_eq!(count(&ev, "password_fail"), 2);
    let locked: Vec<_> = ev.iter().filter(|e| e.event() == "locked").collect();
    assert_eq!(locked.len(), 1, "{ev:#?}");
    assert_eq!(locked[0].get("tier"), Some("1"));
    assert_eq!(locked[0].keys(), ["event", "user", "tier", "until"]);
    let until = locked[0].get("until").unwrap().to_string();
    let st = status(&rig, u);
    assert_eq!(st["locked"], true);
    assert_eq!(st["locked_until"], until.as_str());
    assert_eq!(st["failures"], 3);

    // Locked: refused at once, without asking for the password, even a right one.
    let started = Instant::now();
    fresh_step(3);
    let l = stack_login(&rig, u, PASSWORD, &oath_code(SECRET, 0));
    assert_eq!(l.code, PAM_AUTH_ERR);
    assert_eq!(l.prompts(), 0, "{}", l.out);
    assert!(
        l.errors().iter().any(|e| e.contains("locked until")),
        "{}",
        l.out
    );
    let ev = rig.events();
    assert_eq!(ev.len(), 1, "{ev:#?}");
    assert_eq!(ev[0].event(), "lock_denied");
    assert_eq!(ev[0].get("until"), Some(until.as_str()));
    assert_eq!(ev[0].get("rhost"), Some("198.51.100.7"));
    assert_eq!(status(&rig, u)["failures"], 3, "not counted while locked");

    // After the lock, the second tier: 2 failures lock for 5 s.
    std::thread::sleep(Duration::from_secs(4).saturating_sub(started.elapsed()));
    assert_eq!(status(&rig, u)["locked"], false);
    assert_eq!(stack_login(&rig, u, "wrong", "").code, PAM_AUTH_ERR);
    assert_eq!(stack_login(&rig, u, "wrong", "").code, PAM_AUTH_ERR);
    let ev = rig.events();
    let locked: Vec<_> = ev.iter().filter(|e| e.event() == "locked").collect();
    assert_eq!(locked.len(), 1, "{ev:#?}");
    assert_eq!(locked[0].get("tier"), Some("2"));
    assert_eq!(status(&rig, u)["tier"], 2);

    // An administrator unlocks: the right password and code get in, and the
    // count and tier are reset: the next lock is tier 1 again.
    let out = rig.cli(&["unlock", u]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ev = rig.events();
    assert_eq!(ev.len(), 1, "{ev:#?}");
    assert_eq!((ev[0].tag.as_str(), ev[0].event()), ("twostep", "unlocked"));
    assert_eq!(ev[0].get("user"), Some(u));
    assert_eq!(ev[0].get("by"), Some("root"));
    fresh_step(3);
    let l = stack_login(&rig, u, PASSWORD, &oath_code(SECRET, 0));
    assert_eq!(l.code, PAM_SUCCESS, "{}", l.out);
    assert_eq!(l.prompts(), 2);
    let st = status(&rig, u);
    assert_eq!(
        (
            st["failures"].as_u64(),
            st["tier"].as_u64(),
            st["locked"].as_bool()
        ),
        (Some(0), Some(1), Some(false))
    );
    assert!(st["last_success"].is_string());
    rig.events();
    for _ in 0..3 {
        stack_login(&rig, u, "wrong", "");
    }
    let ev = rig.events();
    let locked: Vec<_> = ev.iter().filter(|e| e.event() == "locked").collect();
    assert_eq!(
        locked
            .iter()
            .map(|e| e.get("tier").unwrap())
            .collect::<Vec<_>>(),
        ["1"]
    );
}

#[test]
fn success_resets_the_count_before_the_limit() {
    let u = user("ts-lock-reset");
    let mut rig = Rig::new(
        "reset",
        "[lockout]\ntiers = [{failures = 3, lock = \"1h\"}]",
    );
    rig.enroll(u, SECRET);
    stack_login(&rig, u, "wrong", "");
    stack_login(&rig, u, "wrong", "");
    fresh_step(3);
    assert_eq!(
        stack_login(&rig, u, PASSWORD, &oath_code(SECRET, 0)).code,
        PAM_SUCCESS
    );
    stack_login(&rig, u, "wrong", "");
    stack_login(&rig, u, "wrong", "");
    let st = status(&rig, u);
    assert_eq!(
        (st["failures"].as_u64(), st["locked"].as_bool()),
        (Some(2), Some(false))
    );
    assert_eq!(count(&rig.events(), "locked"), 0);
}

#[test]
fn default_tiers_5m_then_1h_under_faked_time() {
    let u = user("ts-lock-fake");
    // The shipped defaults: no [lockout] in the config.
    let mut rig = Rig::new("faketime", "");
    rig.enroll(u, SECRET);
    let t0: u64 = 1_900_000_020; // a step boundary, in 2030
    let code_at = |t: u64| oath_code_at(SECRET, t, "SHA1", 6, 30);
    let wrong = |t: u64| {
        format!(
            "{:06}",
            (code_at(t).parse::<u32>().unwrap() + 7) % 1_000_000
        )
    };

    // The faked clock is really used: a right code for t0 works at t0.
    let l = login_at(&rig, u, &code_at(t0), t0);
    assert_eq!(l.code, PAM_SUCCESS, "{}", l.out);
    rig.events();

    let mut t = t0 + 30;
    for i in 1..=5 {
        assert_eq!(
            login_at(&rig, u, &wrong(t), t).code,
            PAM_AUTH_ERR,
            "failure {i}"
        );
        t += 1;
    }
    let lock_at = t - 1;
    let ev = rig.events();
    let locked: Vec<_> = ev.iter().filter(|e| e.event() == "locked").collect();
    assert_eq!(locked.len(), 1, "{ev:#?}");
    assert_eq!(
        locked[0].get("until"),
        Some(rfc3339(lock_at + 300).as_str())
    );

    // Still locked one second before the end, even with a right code.
    let l = login_at(&rig, u, &code_at(lock_at + 299), lock_at + 299);
    assert_eq!((l.code, l.prompts()), (PAM_AUTH_ERR, 0), "{}", l.out);
    assert_eq!(rig.events()[0].event(), "lock_denied");

    // At the end of the lock: open; five more failures lock for an hour.
    let mut t = lock_at + 300;
    for _ in 0..5 {
        assert_eq!(login_at(&rig, u, &wrong(t), t).code, PAM_AUTH_ERR);
        t += 1;
    }
    let lock2 = t - 1;
    let ev = rig.events();
    let locked: Vec<_> = ev.iter().filter(|e| e.event() == "locked").collect();
    assert_eq!(
        (locked[0].get("tier"), locked[0].get("until")),
        (Some("2"), Some(rfc3339(lock2 + 3600).as_str()))
    );
    assert_eq!(
        login_at(&rig, u, &wrong(lock2 + 3599), lock2 + 3599).prompts(),
        0,
        "locked for the whole hour"
    );

    // The last tier repeats: after the hour, five more lock for another hour.
    let mut t = lock2 + 3600;
    for _ in 0..5 {
        login_at(&rig, u, &wrong(t), t);
        t += 1;
    }
    let ev = rig.events();
    let locked: Vec<_> = ev.iter().filter(|e| e.event() == "locked").collect();
    assert_eq!(
        (locked[0].get("tier"), locked[0].get("until")),
        (Some("2"), Some(rfc3339(t - 1 + 3600).as_str()))
    );

    // A success after the lock resets to the first tier.
    let t = t - 1 + 3600 + 30;
    assert_eq!(login_at(&rig, u, &code_at(t), t).code, PAM_SUCCESS);
    rig.events();
    for i in 0..5 {
        login_at(&rig, u, &wrong(t + 1 + i), t + 1 + i);
    }
    let ev = rig.events();
    let locked: Vec<_> = ev.iter().filter(|e| e.event() == "locked").collect();
    assert_eq!(
        (locked[0].get("tier"), locked[0].get("until")),
        (Some("1"), Some(rfc3339(t + 5 + 300).as_str()))
    );
}

#[test]
fn parallel_code_attempts_evaluate_at_most_the_allowance() {
    let u = user("ts-lock-par");
    let mut rig = Rig::new("parallel", "");
    rig.enroll(u, SECRET);
    rig.events();
    fresh_step(5);
    let wrong = format!(
        "{:06}",
        (oath_code(SECRET, 0).parse::<u32>().unwrap() + 3) % 1_000_000
    );
    // All 40 are started first and wait at the prompt (none is locked yet),
    // then all answer at once.
    let mut children: Vec<_> = (0..40)
        .map(|_| rig.spawn_login("twostep", u, &[]))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let stdins: Vec<_> = children
        .iter_mut()
        .map(|c| c.stdin.take().unwrap())
        .collect();
    for mut stdin in stdins {
        use std::io::Write;
        writeln!(stdin, "{wrong}").unwrap();
    }
    let codes: Vec<i32> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap().status.code().unwrap())
        .collect();
    assert!(codes.iter().all(|&c| c == PAM_AUTH_ERR), "{codes:?}");
    let ev = rig.events();
    assert_eq!(
        count(&ev, "auth_fail"),
        5,
        "exactly the tier's allowance was evaluated: {ev:#?}"
    );
    assert_eq!(
        count(&ev, "lock_denied"),
        35,
        "the others were refused unevaluated"
    );
    assert_eq!(count(&ev, "locked"), 1);
    let fails = failure_counts(&ev, "auth_fail");
    assert_eq!(fails, [1, 2, 3, 4, 5]);
    assert_eq!(status(&rig, u)["failures"], 5);
}

#[test]
fn parallel_password_failures_are_counted_exactly() {
    let u = user("ts-lock-parpw");
    let mut rig = Rig::new(
        "parallelpw",
        "[lockout]\ntiers = [{failures = 5, lock = \"1h\"}]",
    );
    rig.enroll(u, SECRET);
    rig.events();
    let children: Vec<_> = (0..40)
        .map(|_| {
            let mut c = rig.spawn_login("stack", u, &[]);
            use std::io::Write;
            // Once the user is locked, preauth refuses without asking and the
            // login may be gone before its password is written: a closed pipe.
            let _ = writeln!(c.stdin.take().unwrap(), "wrong");
            c
        })
        .collect();
    for c in children {
        assert_eq!(
            c.wait_with_output().unwrap().status.code(),
            Some(PAM_AUTH_ERR)
        );
    }
    let ev = rig.events();
    let fails = failure_counts(&ev, "password_fail");
    assert_eq!(fails, [1, 2, 3, 4, 5], "{ev:#?}");
    assert_eq!(count(&ev, "locked"), 1);
    assert_eq!(count(&ev, "lock_denied"), 35);
    assert_eq!(status(&rig, u)["failures"], 5);
}

#[test]
fn kill_9_during_updates_never_tears_the_state() {
    let u = user("ts-lock-kill");
    let mut rig = Rig::new(
        "kill9",
        "[lockout]\ntiers = [{failures = 1000, lock = \"1s\"}]",
    );
    rig.enroll(u, SECRET);
    let mut killed = 0;
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..150 {
        // Three attempts in flight at once, one of them killed at a random moment.
        let spawn = || {
            let mut c = rig.spawn_login("twostep", u, &[]);
            use std::io::Write;
            let _ = writeln!(c.stdin.take().unwrap(), "000000");
            c
        };
        let mut victims: Vec<_> = (0..3).map(|_| spawn()).collect();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_micros(seed % 3000));
        if victims[0].kill().is_ok() {
            killed += 1;
        }
        for v in &mut victims {
            v.wait().unwrap();
        }
        let st = status(&rig, u);
        assert!(
            st.get("problem").is_none(),
            "state damaged after a kill: {st}"
        );
    }
    assert!(killed > 100, "{killed}");
    let ev = rig.events();
    let st = status(&rig, u);
    let counted = st["failures"].as_u64().unwrap() as usize;
    // Every attempt whose record was sent was counted; killed ones may or may
    // not have been, but never half.
    assert!(counted >= count(&ev, "auth_fail"), "{counted} < records");
    assert!(counted <= 450);
    // And the state still works: a right code gets in and resets.
    fresh_step(3);
    assert_eq!(rig.login(u, &oath_code(SECRET, 0)).code, PAM_SUCCESS);
    assert_eq!(status(&rig, u)["failures"], 0);
}

#[test]
fn a_damaged_state_file_counts_as_locked_until_an_admin_unlocks() {
    let u = user("ts-lock-corrupt");
    let mut rig = Rig::new("corrupt", "");
    rig.enroll(u, SECRET);
    stack_login(&rig, u, "wrong", "");
    let path = rig.state_path(u);
    let bytes = std::fs::read(&path).unwrap();
    for (what, damage) in [
        ("truncated", bytes[..700].to_vec()),
        ("empty", vec![]),
        ("flipped", {
            let mut b = bytes.clone();
            for x in b.iter_mut().step_by(97) {
                *x ^= 0x5a;
            }
            b
        }),
    ] {
        std::fs::write(&path, &damage).unwrap();
        rig.events();
        fresh_step(3);
        let l = stack_login(&rig, u, PASSWORD, &oath_code(SECRET, 0));
        assert_eq!(
            (l.code, l.prompts()),
            (PAM_AUTH_ERR, 0),
            "{what}: {}",
            l.out
        );
        let ev = rig.events();
        assert_eq!(ev.len(), 1, "{what}: {ev:#?}");
        assert_eq!(
            (ev[0].event(), ev[0].get("reason")),
            ("lock_denied", Some("bad_state")),
            "{what}"
        );
        let st = status(&rig, u);
        assert_eq!(st["locked"], true, "{what}: {st}");
        assert!(
            st["problem"].as_str().unwrap().contains("integrity"),
            "{what}: {st}"
        );
    }
    let out = rig.cli(&["unlock", u]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fresh_step(3);
    assert_eq!(
        stack_login(&rig, u, PASSWORD, &oath_code(SECRET, 0)).code,
        PAM_SUCCESS
    );
}

#[test]
fn status_lists_every_user_and_unlock_needs_root() {
    let a = user("ts-lock-list-a");
    let b = user("ts-lock-list-b");
    let rig = Rig::new("list", "");
    rig.enroll(a, SECRET);
    stack_login(&rig, b, "wrong", "");
    let out = rig.cli(&["status", "--json"]);
    assert!(out.status.success());
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = all.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{all}");
    for row in rows {
        let keys: Vec<&str> = row
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for k in [
            "user",
            "enrolled",
            "locked",
            "locked_until",
            "failures",
            "tier",
            "last_success",
        ] {
            assert!(keys.contains(&k), "{k} missing in {row}");
        }
    }
    assert_eq!(rows[0]["user"], a);
    assert_eq!(rows[0]["enrolled"], true);
    assert_eq!(rows[1]["user"], b);
    assert_eq!(
        (rows[1]["enrolled"].as_bool(), rows[1]["failures"].as_u64()),
        (Some(false), Some(1))
    );
    let human = rig.cli(&["status"]);
    let text = String::from_utf8(human.stdout).unwrap();
    assert!(text.lines().next().unwrap().starts_with("USER"), "{text}");
    assert_eq!(text.lines().count(), 3, "{text}");

    // Not root: refused with one line, nothing written.
    let before = std::fs::read(rig.state_path(b)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(twostep_bin())
        .arg("--config")
        .arg("/nonexistent-but-explicit.toml")
        .args(["unlock", b])
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let empty = std::env::temp_dir().join(format!("twostep-empty-{}.toml", std::process::id()));
    std::fs::write(&empty, "").unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(twostep_bin())
        .args(["unlock", b])
        .env("TWOSTEP_CONFIG", &empty)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("root"), "{err}");
    assert_eq!(std::fs::read(rig.state_path(b)).unwrap(), before);
    std::fs::remove_file(&empty).unwrap();
}
