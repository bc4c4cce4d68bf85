//! twostep-self and several authenticators (issue 24): `devices`,
//! `enroll --add NAME`, `remove-device NAME`, and the proof that confirms
//! them, as installed: the setuid binary run as real non-root users on a
//! real pty, their passwords checked by pam_unix through the shipped
//! service file, codes from oathtool (tests/common/self_rig.rs).
//!
//! Needs root, util-linux (unshare, setpriv, script), oathtool, and exim4's
//! sendmail for the notices.

mod common;
#[path = "common/etc_overlay.rs"]
mod etc_overlay;
#[path = "common/pty.rs"]
mod pty;
#[path = "common/self_rig.rs"]
mod self_rig;

use common::mail::{ensure_mail_user, mailbox, wait_for_messages};
use common::*;
use self_rig::*;
use std::time::Duration;

/// The caller.
const USER: &str = "ts-dvs-user";
/// A member of GROUP, for `policy.always_challenge_groups`.
const ADMIN: &str = "ts-dvs-adm";
const GROUP: &str = "ts-dvs-admins";
/// The second authenticator's secret in the files written here.
const SECRET2: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

fn devices_rig(name: &str, extra: &str) -> SelfRig {
    SelfRig::new(&format!("dvs-{name}"), extra, &[USER])
}

/// `user`'s secret file with these authenticators (name, secret), written
/// as `twostep` writes one: root's, 0600.
fn write_devices(s: &SelfRig, user: &str, devices: &[(&str, &str)]) {
    write_devices_below(s, user, "", devices);
}

/// [`write_devices`] below the top-level lines `top`.
fn write_devices_below(s: &SelfRig, user: &str, top: &str, devices: &[(&str, &str)]) {
    use std::os::unix::fs::PermissionsExt;
    let mut text = top.to_string();
    for (name, secret) in devices {
        text.push_str(&format!(
            "[[authenticator]]\nname = \"{name}\"\nsecret = \"{secret}\"\n\
             created = \"2026-12-01T10:00:00Z\"\n\n"
        ));
    }
    let path = s.rig.secret_path(user);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// The (name, secret) of each authenticator in `user`'s file, in order; a
/// file of the old form is one named `default`.
fn stored_devices(s: &SelfRig, user: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(s.rig.secret_path(user)).unwrap();
    let doc: toml::Table = text.parse().unwrap();
    if let Some(secret) = doc.get("secret").and_then(|v| v.as_str()) {
        return vec![("default".into(), secret.into())];
    }
    doc["authenticator"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_string(),
                a["secret"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// USER with phone (SECRET) and tablet (SECRET2) and the recovery codes
/// `twostep enroll` made (returned as shown), records drained.
fn two_devices_and_recovery_codes(s: &mut SelfRig) -> Vec<String> {
    let codes = s.rig.enroll_with_recovery_codes(USER, SECRET);
    let text = std::fs::read_to_string(s.rig.secret_path(USER)).unwrap();
    let doc: toml::Table = text.parse().unwrap();
    let top = format!("recovery_codes = {}\n\n", doc["recovery_codes"]);
    write_devices_below(s, USER, &top, &[("phone", SECRET), ("tablet", SECRET2)]);
    s.records();
    codes
}

/// USER with phone (SECRET) and tablet (SECRET2), records drained.
fn two_devices_rig(name: &str, extra: &str) -> SelfRig {
    let mut s = devices_rig(name, extra);
    write_devices(&s, USER, &[("phone", SECRET), ("tablet", SECRET2)]);
    s.records();
    s
}

/// The one record named `event`.
fn only<'a>(records: &'a [Event], event: &str) -> &'a Event {
    let found = events_named(records, event);
    assert_eq!(found.len(), 1, "{event}: {records:#?}");
    found[0]
}

// ---- add, list, remove ---------------------------------------------------------

#[test]
fn add_list_and_remove_with_a_code_from_the_other() {
    ensure_mail_user(USER);
    let issuer = format!("dvs-notify-{}", std::process::id());
    let mut s = devices_rig(
        "add-remove",
        &format!(
            "issuer = \"{issuer}\"\n{ON}[email]\naddress = \"{{user}}@localhost\"\n\
             [notify]\nevents = [\"device_added\", \"device_removed\"]\n"
        ),
    );
    s.rig.enroll(USER, SECRET);
    s.records();

    // Added: confirmed by the current code, then a code from the new one.
    let mut pty = up_to_the_code(&s, USER, &[], &["enroll", "--add", "tablet"]);
    fresh_step(10);
    let current = oath_code(SECRET, 0);
    pty.send_line(&current);
    let tablet = confirm_new_app_at(&mut pty, "Code from tablet (6 digits): ");
    expect(&mut pty, "Added the authenticator tablet");
    assert_eq!(pty.wait(STEP), Some(0), "{}", pty.output());
    assert_ne!(tablet, SECRET);
    assert_eq!(
        stored_devices(&s, USER),
        [
            ("default".to_string(), SECRET.to_string()),
            ("tablet".to_string(), tablet.clone())
        ]
    );
    let r = s.records();
    let names: Vec<&str> = r.iter().map(Event::event).collect();
    assert_eq!(names, ["auth_ok", "device_added"], "{r:#?}");
    assert_eq!(r[0].get("device"), Some("default"));
    assert_eq!(
        (r[1].get("user"), r[1].get("device"), r[1].get("by")),
        (Some(USER), Some("tablet"), Some("self"))
    );
    assert_no_secrets(&r, &[SECRET, &tablet, &current]);

    // Listed, without a password: the new one's confirmation is its last use.
    let out = s.run(USER, &["devices"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let listing = stdout(&out);
    assert!(listing.contains("(2 of at most 8)"), "{listing}");
    let rows: Vec<Vec<&str>> = listing
        .lines()
        .skip(2)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{listing}");
    assert_eq!(rows[0][0], "default");
    assert_eq!(rows[1][0], "tablet");
    for row in &rows {
        assert_eq!(row.len(), 3, "{listing}");
        assert!(row[1].ends_with('Z'), "created: {listing}");
        assert!(row[2].ends_with('Z'), "both used: {listing}");
    }
    let out = s.run(USER, &["status"]);
    assert!(stdout(&out).contains("Authenticators"), "{}", stdout(&out));
    assert!(stdout(&out).contains(" 2 ("), "{}", stdout(&out));

    // Removed with a code from the other one (its next step: this one's
    // code was the confirmation).
    let mut pty = up_to_the_code(&s, USER, &[], &["remove-device", "default"]);
    assert!(pty.output().contains("not default"), "{}", pty.output());
    fresh_step(10);
    let from_tablet = oath_code(&tablet, 1);
    pty.send_line(&from_tablet);
    expect(&mut pty, "Removed the authenticator default");
    assert_eq!(pty.wait(STEP), Some(0), "{}", pty.output());
    assert_eq!(
        stored_devices(&s, USER),
        [("tablet".to_string(), tablet.clone())]
    );
    let r = s.records();
    let names: Vec<&str> = r.iter().map(Event::event).collect();
    assert_eq!(names, ["auth_ok", "device_removed"], "{r:#?}");
    assert_eq!(r[0].get("device"), Some("tablet"));
    assert_eq!(
        (r[1].get("user"), r[1].get("device"), r[1].get("by")),
        (Some(USER), Some("default"), Some("self"))
    );

    // At a login, the removed one's code is no code at all (not a replay).
    fresh_step(5);
    let login = s.rig.login(USER, &oath_code(SECRET, 0));
    assert_eq!(login.code, PAM_AUTH_ERR, "{}", login.out);
    let r = s.rig.events();
    assert_eq!(only(&r, "auth_fail").get("reason"), Some("bad_code"));

    for (subject, device) in [
        ("authenticator added", "tablet"),
        ("authenticator removed", "default"),
    ] {
        let m = wait_for_messages(&mailbox(USER), &format!("{issuer}: {subject}"), 1)
            .pop()
            .unwrap();
        let body = m["body"].as_str().unwrap();
        assert!(
            body.lines()
                .any(|l| l.split_whitespace().eq(["Device:", device])),
            "{body}"
        );
        assert!(body.contains("you (twostep-self)"), "{body}");
    }
}

#[test]
fn the_proof_takes_a_code_from_any_authenticator_with_replay_per_authenticator() {
    let mut s = two_devices_rig("any", ON);
    let prove = |s: &SelfRig, code: &str| {
        let mut pty = up_to_the_code(s, USER, &[], &["recovery-codes"]);
        pty.send_line(code);
        pty.wait(STEP)
    };
    fresh_step(15);
    let from_tablet = oath_code(SECRET2, 0);
    assert_eq!(prove(&s, &from_tablet), Some(0));
    let r = s.records();
    assert_eq!(only(&r, "auth_ok").get("device"), Some("tablet"));
    // Its code again: a replay.
    assert_eq!(prove(&s, &from_tablet), Some(1));
    let r = s.records();
    assert_eq!(only(&r, "auth_fail").get("reason"), Some("replay"));
    // The other's at the same step is good.
    assert_eq!(prove(&s, &oath_code(SECRET, 0)), Some(0));
    let r = s.records();
    assert_eq!(only(&r, "auth_ok").get("device"), Some("phone"));
}

#[test]
fn a_code_from_the_device_being_removed_does_not_confirm_its_removal() {
    let mut s = devices_rig("own-code", ON);
    let codes = two_devices_and_recovery_codes(&mut s);
    let mut pty = up_to_the_code(&s, USER, &[], &["remove-device", "phone"]);
    fresh_step(5);
    pty.send_line(&oath_code(SECRET, 0));
    expect(
        &mut pty,
        "That code is from phone, the authenticator you are removing",
    );
    expect(&mut pty, "not confirmed: nothing was changed");
    assert_eq!(pty.wait(STEP), Some(1), "{}", pty.output());
    assert_eq!(stored_devices(&s, USER).len(), 2, "nothing removed");
    assert_eq!(s.status(USER, "failures"), 1, "counted");
    let r = s.records();
    let fail = only(&r, "auth_fail");
    assert_eq!(fail.get("reason"), Some("bad_code"));
    assert_eq!(fail.get("failures"), Some("1"));
    assert!(events_named(&r, "device_removed").is_empty(), "{r:#?}");

    // Its code was not spent: a login takes it.
    let login = s.rig.login(USER, &oath_code(SECRET, 0));
    assert_eq!(login.code, PAM_SUCCESS, "{}", login.out);
    s.rig.events();

    // A recovery code confirms it.
    let mut pty = up_to_the_code(&s, USER, &[], &["remove-device", "phone"]);
    pty.send_line(&codes[0]);
    expect(&mut pty, "Removed the authenticator phone");
    assert_eq!(pty.wait(STEP), Some(0), "{}", pty.output());
    assert_eq!(
        stored_devices(&s, USER),
        [("tablet".to_string(), SECRET2.to_string())]
    );
    assert_eq!(s.rig.stored_recovery_hashes(USER).len(), 9, "one used up");
    let r = s.records();
    assert_eq!(only(&r, "auth_ok").get("method"), Some("recovery"));
    assert_eq!(only(&r, "device_removed").get("device"), Some("phone"));
    assert_no_secrets(&r, &[&codes[0], SECRET, SECRET2]);
}

#[test]
fn removing_the_last_is_turning_off_and_only_where_disable_is_allowed() {
    ensure_user(ADMIN, Some(PASSWORD));
    ensure_group(GROUP, &[ADMIN]);
    let mut s = devices_rig("last", ON);
    s.rig.enroll(USER, SECRET);
    s.rig.enroll(ADMIN, SECRET);
    s.records();

    // Refused before the password: nothing counted, nothing removed.
    let out = s.run(USER, &["remove-device", "default"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("default is your last authenticator"), "{err}");
    assert!(err.contains("self_service.allow_disable"), "{err}");
    s.configure(&format!(
        "{ON}allow_disable = true\n[policy]\nalways_challenge_groups = [\"{GROUP}\"]\n"
    ));
    let out = s.run(ADMIN, &["remove-device", "default"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("policy.always_challenge_groups"),
        "{}",
        stderr(&out)
    );
    for user in [USER, ADMIN] {
        assert_eq!(s.secret_key(user).as_deref(), Some(SECRET), "{user}");
        assert_eq!(s.status(user, "failures"), 0, "{user}");
    }
    assert!(s.records().is_empty());

    // Allowed: `disable`, confirmed as it is (by the last one's own code).
    let mut pty = up_to_the_code(&s, USER, &[], &["remove-device", "default"]);
    assert!(
        pty.output()
            .contains("removing it turns two-step sign-in off"),
        "{}",
        pty.output()
    );
    fresh_step(5);
    pty.send_line(&oath_code(SECRET, 0));
    expect(&mut pty, "Turned off two-step sign-in for ts-dvs-user");
    assert_eq!(pty.wait(STEP), Some(0), "{}", pty.output());
    assert!(!s.rig.secret_path(USER).exists());
    let r = s.records();
    assert_eq!(only(&r, "disabled").get("by"), Some("self"));
}

#[test]
fn a_wrong_code_counts_toward_the_lockout() {
    let tiers = "[lockout]\ntiers = [{failures = 2, lock = \"5m\"}]\n";
    let mut s = two_devices_rig("lockout", &format!("{ON}{tiers}"));
    for (n, args) in [
        (1, &["enroll", "--add", "watch"][..]),
        (2, &["remove-device", "tablet"]),
    ] {
        let mut pty = up_to_the_code(&s, USER, &[], args);
        fresh_step(5);
        pty.send_line(&wrong_code());
        expect(&mut pty, "not confirmed: nothing was changed");
        assert_eq!(pty.wait(STEP), Some(1), "{}", pty.output());
        assert!(!pty.output().contains("otpauth://"), "no key shown");
        assert_eq!(s.status(USER, "failures"), n, "{args:?}");
    }
    let r = s.records();
    let fails = events_named(&r, "auth_fail");
    assert_eq!(fails.len(), 2, "{r:#?}");
    assert!(fails.iter().all(|f| f.get("reason") == Some("bad_code")));
    only(&r, "locked");
    assert_eq!(stored_devices(&s, USER).len(), 2, "nothing written");

    // Locked: asked nothing; the listing needs no password and still works.
    let mut pty = s.spawn(USER, &[], &["remove-device", "tablet"]);
    expect(&mut pty, "this account is locked until");
    assert_eq!(pty.wait(STEP), Some(1), "{}", pty.output());
    assert!(!pty.output().contains("Password:"), "{}", pty.output());
    let out = s.run(USER, &["devices"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let listing = stdout(&out);
    for name in ["phone", "tablet"] {
        let row = listing.lines().find(|l| l.starts_with(name));
        assert!(row.is_some_and(|r| r.ends_with("never")), "{listing}");
    }
}

#[test]
fn names_and_limits_are_refused_before_the_password_naming_the_rule() {
    let mut s = two_devices_rig("names", ON);
    let long = "a".repeat(33);
    // (args, exit code, words of the one-line error)
    let cases: &[(&[&str], i32, &str)] = &[
        (&["enroll", "--add", "my phone"], 2, "letters, digits"),
        (&["enroll", "--add", "../x"], 2, "letters, digits"),
        (&["enroll", "--add", "a\u{7}b"], 2, "letters, digits"),
        (&["enroll", "--add", &long], 2, "at most 32 bytes"),
        (&["enroll", "--add", ""], 2, "must not be empty"),
        (
            &["enroll", "--add", "x", "--method", "email"],
            2,
            "--method",
        ),
        (&["enroll", "--add", "tablet"], 1, "named tablet already"),
        (
            &["remove-device", "watch"],
            1,
            "no authenticator named watch",
        ),
        (&["remove-device", "a/b"], 2, "letters, digits"),
    ];
    for (args, code, words) in cases {
        let out = s.run(USER, args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {err}");
        assert!(err.contains(words), "{args:?}: {err}");
        if *code == 1 {
            assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        }
        assert!(!err.contains('\u{7}'), "{args:?}: {err:?}");
    }
    // A ninth.
    let eight: Vec<(String, &str)> = (1..=8).map(|i| (format!("d{i}"), SECRET)).collect();
    let eight: Vec<(&str, &str)> = eight.iter().map(|(n, k)| (n.as_str(), *k)).collect();
    write_devices(&s, USER, &eight);
    let before = std::fs::read(s.rig.secret_path(USER)).unwrap();
    let out = s.run(USER, &["enroll", "--add", "d9"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("8 authenticators already"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(s.rig.secret_path(USER)).unwrap(), before);
    assert_eq!(s.status(USER, "failures"), 0, "nothing counted");
    assert!(s.records().is_empty());
}

#[test]
fn without_an_app_there_is_nothing_to_list_add_or_remove() {
    let mut s = devices_rig("none", ON);
    s.records();
    let out = s.run(USER, &["devices"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("no authenticators"),
        "{}",
        stdout(&out)
    );
    for args in [
        &["enroll", "--add", "tablet"][..],
        &["remove-device", "phone"],
    ] {
        let out = s.run(USER, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("`twostep-self enroll` sets up a first"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert!(s.rig.secret_files().is_empty());
    assert!(s.records().is_empty());
}

#[test]
fn a_kill_9_storm_during_remove_device_leaves_the_file_old_or_new() {
    let mut s = devices_rig("storm", ON);
    let secrets: Vec<String> = (b'A'..=b'H')
        .map(|c| format!("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJ{}", c as char))
        .collect();
    let names: Vec<String> = (1..=8).map(|i| format!("d{i}")).collect();
    let all: Vec<(&str, &str)> = names
        .iter()
        .zip(&secrets)
        .map(|(n, k)| (n.as_str(), k.as_str()))
        .collect();
    write_devices(&s, USER, &all);
    s.records();
    let (mut killed, mut kept, mut removed) = (0, 0, 0);
    for round in 0..30u64 {
        if stored_devices(&s, USER).len() < 2 {
            write_devices(&s, USER, &all);
        }
        let before = stored_devices(&s, USER);
        // A fresh state each round: every authenticator's code is good
        // again, and no failure is left counted.
        let _ = std::fs::remove_file(s.rig.state_path(USER));
        let target = before[0].0.clone();
        let confirmer = &before[before.len() - 1].1;
        let mut pty = up_to_the_code(&s, USER, &[], &["remove-device", &target]);
        let pid = running_pid(&s).expect("twostep-self running");
        fresh_step(3);
        pty.send_line(&oath_code(confirmer, 0));
        // From at once to after it is done: the kill lands at every stage.
        std::thread::sleep(Duration::from_micros(round * 800));
        let pid = nix::unistd::Pid::from_raw(pid as i32);
        if nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).is_ok() {
            killed += 1;
        }
        let _ = pty.wait(STEP);
        // Never torn: it parses, and is the old list or the old list
        // without the target, nothing between.
        let after = stored_devices(&s, USER);
        let without: Vec<(String, String)> = before[1..].to_vec();
        if after == before {
            kept += 1;
        } else {
            assert_eq!(after, without, "round {round}");
            removed += 1;
        }
    }
    let strays = files_under(&s.rig.secret_dir)
        .iter()
        .filter(|f| f.to_string_lossy().contains(".tmp."))
        .count();
    eprintln!(
        "storm: {killed} kills sent, {kept} files kept, {removed} removals, \
         {strays} temporary files left"
    );
    assert!(kept + removed > 0);
}
