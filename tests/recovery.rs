//! Recovery codes through the real module: accepted once with
//! `method=recovery`, struck off durably, safe under parallel use, replaced by
//! `twostep recovery-codes`, and never on disk or in a log in clear.

mod common;
use common::*;

const USER: &str = "ts-rec";

fn rig(name: &str) -> (Rig, Vec<String>) {
    ensure_user(USER, None);
    let rig = Rig::new(name, "[lockout]\ntiers = [{failures = 50, lock = \"1m\"}]");
    let codes = rig.enroll_with_recovery_codes(USER, SECRET);
    (rig, codes)
}

#[test]
fn a_recovery_code_logs_in_once_with_method_recovery() {
    let (mut rig, codes) = rig("rec-once");
    rig.events();
    let login = rig.login(USER, &codes[3]);
    assert_eq!(login.code, PAM_SUCCESS, "{}", login.out);
    assert!(
        login.out.contains("9 recovery codes are left"),
        "{}",
        login.out
    );
    let ev = rig.events();
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].event(), "auth_ok");
    assert_eq!(
        ev[0].keys(),
        ["event", "user", "service", "rhost", "tty", "method"]
    );
    assert_eq!(ev[0].get("method"), Some("recovery"));
    assert_eq!(rig.stored_recovery_hashes(USER).len(), 9);

    // The same code again: refused, and counted as a failure.
    let again = rig.login(USER, &codes[3]);
    assert_eq!(again.code, PAM_AUTH_ERR, "{}", again.out);
    let ev = rig.events();
    assert_eq!(
        (ev[0].event(), ev[0].get("reason"), ev[0].get("failures")),
        ("auth_fail", Some("bad_code"), Some("1"))
    );
    // Typed loosely: upper case, no dash, spaces.
    let loose = codes[7].to_uppercase().replace('-', " ");
    assert_eq!(rig.login(USER, &loose).code, PAM_SUCCESS);
    assert_eq!(rig.stored_recovery_hashes(USER).len(), 8);
    // A success resets the failures.
    let status = rig.cli(&["status", USER, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(v["failures"], 0);
    // The rewritten secret file keeps its owner, mode and secret; TOTP still works.
    assert_eq!(mode_of(&rig.secret_path(USER)), 0o600);
    fresh_step(3);
    assert_eq!(rig.login(USER, &oath_code(SECRET, 0)).code, PAM_SUCCESS);
    // No temporary file is left by the rewrites.
    assert_eq!(rig.secret_files().len(), 1);
}

#[test]
fn the_last_code_says_so() {
    let (mut rig, codes) = rig("rec-last");
    for (i, c) in codes.iter().enumerate() {
        // The records must be read: a full log socket blocks the sender.
        rig.events();
        let login = rig.login(USER, c);
        assert_eq!(login.code, PAM_SUCCESS, "{i}: {}", login.out);
        if i == 9 {
            assert!(
                login.out.contains("That was your last one"),
                "{}",
                login.out
            );
        }
    }
    assert!(rig.stored_recovery_hashes(USER).is_empty());
    for c in &codes {
        rig.events();
        assert_eq!(rig.login(USER, c).code, PAM_AUTH_ERR);
    }
}

#[test]
fn parallel_uses_of_one_code_succeed_once() {
    let (mut rig, codes) = rig("rec-parallel");
    rig.events();
    let code = &codes[0];
    let results: Vec<i32> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| rig.login(USER, code).code))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        results.iter().filter(|&&c| c == PAM_SUCCESS).count(),
        1,
        "{results:?}"
    );
    assert_eq!(rig.stored_recovery_hashes(USER).len(), 9);
}

#[test]
fn recovery_codes_command_replaces_the_set() {
    let (mut rig, old) = rig("rec-regen");
    rig.events();
    let out = rig.cli(&["recovery-codes", USER, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let new: Vec<String> = v["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(new.len(), 10);
    assert!(new.iter().all(|c| !old.contains(c)));
    let ev: Vec<Event> = rig
        .events()
        .into_iter()
        .filter(|e| e.event() == "recovery_regenerated")
        .collect();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].tag, "twostep");
    assert_eq!(ev[0].keys(), ["event", "user", "by"]);
    // The old set is gone, the new works, the secret is unchanged.
    assert_eq!(rig.login(USER, &old[0]).code, PAM_AUTH_ERR);
    assert_eq!(rig.login(USER, &new[0]).code, PAM_SUCCESS);
    fresh_step(3);
    assert_eq!(rig.login(USER, &oath_code(SECRET, 0)).code, PAM_SUCCESS);
    // Human output: numbered, shown once.
    let out = rig.cli(&["recovery-codes", USER]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(" 1. ") && text.contains("10. "), "{text}");
    // Not enrolled: refused.
    ensure_user("ts-rec-none", None);
    let out = rig.cli(&["recovery-codes", "ts-rec-none"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not enrolled"));
}

#[test]
fn codes_are_never_on_disk_or_in_a_log_in_clear() {
    let (mut rig, mut codes) = rig("rec-clear");
    let mut records: Vec<String> = rig.drain();
    // Use one, fail one, regenerate: every path that writes the file.
    assert_eq!(rig.login(USER, &codes[0]).code, PAM_SUCCESS);
    assert_eq!(rig.login(USER, &codes[0]).code, PAM_AUTH_ERR);
    records.extend(rig.drain());
    let out = rig.cli(&["recovery-codes", USER, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    codes.extend(
        v["recovery_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string()),
    );
    assert_eq!(rig.login(USER, &codes[15]).code, PAM_SUCCESS);
    records.extend(rig.drain());
    assert!(records.len() >= 5, "{records:?}");
    let files = files_under(&rig.root);
    assert!(files.len() >= 3, "{files:?}");
    for code in &codes {
        for form in [code.clone(), code.replace('-', "")] {
            let found = files_containing(&rig.root, &form);
            assert!(found.is_empty(), "{form} in clear in {found:?}");
            assert!(
                records.iter().all(|r| !r.to_lowercase().contains(&form)),
                "{form} logged"
            );
        }
    }
    // What is stored: argon2id PHC strings, one salt for the set.
    let hashes = rig.stored_recovery_hashes(USER);
    assert_eq!(hashes.len(), 9);
    let salts: std::collections::BTreeSet<&str> = hashes
        .iter()
        .map(|h| h.split('$').nth(4).unwrap())
        .collect();
    assert_eq!(salts.len(), 1, "{hashes:?}");
    assert!(hashes.iter().all(|h| h.starts_with("$argon2id$v=19$")));
}

#[test]
fn a_recovery_code_of_another_user_does_not_work() {
    let (rig, codes) = rig("rec-other");
    ensure_user("ts-rec2", None);
    rig.enroll_json("ts-rec2", &[]);
    assert_eq!(rig.login("ts-rec2", &codes[0]).code, PAM_AUTH_ERR);
    assert_eq!(rig.login(USER, &codes[0]).code, PAM_SUCCESS);
}
