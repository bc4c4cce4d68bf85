//! twostep-self, the setuid self-service command, as it is installed: the
//! built binary copied to a root-owned directory (on a mount that honours
//! setuid) as root, mode 4755, and run as real non-root users (`setpriv
//! --reuid --regid --init-groups`) on a real pty (`script`), their
//! passwords checked by the real pam_unix through the shipped service file
//! `debian/twostep-self.pam`, codes from oathtool.
//!
//! The binary reads /etc/twostep/twostep.toml and /etc/pam.d/twostep-self
//! and nothing else: it has no switch, variable or build flag that points it
//! elsewhere, in tests or not. So each run happens in a private mount
//! namespace whose /etc is an overlay holding this test's
//! `twostep/twostep.toml` and `pam.d/twostep-self` (tests/common/etc_overlay.rs).
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
use pty::Pty;
use self_rig::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// The caller in most tests, and another account.
const USER: &str = "ts-self";
const OTHER: &str = "ts-self-other";
/// A member of GROUP, the always_challenge_groups of the disable tests.
const ADMIN: &str = "ts-self-adm";
const GROUP: &str = "ts-self-admins";

/// An installation for USER and OTHER.
fn self_rig(name: &str, extra: &str) -> SelfRig {
    SelfRig::new(name, extra, &[USER, OTHER])
}

/// A rig where USER is enrolled with SECRET (by the admin command), with
/// the records so far drained.
fn enrolled_rig(name: &str, extra: &str) -> SelfRig {
    let mut s = self_rig(name, extra);
    s.rig.enroll(USER, SECRET);
    s.records();
    s
}

// ---- policy -----------------------------------------------------------------

#[test]
fn self_service_is_off_by_default_and_says_so_in_one_line() {
    let mut s = self_rig("off", "");
    s.records();
    for args in [
        &["status"][..],
        &["enroll"],
        &["recovery-codes"],
        &["disable"],
    ] {
        let out = s.run(USER, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("self-service is turned off"), "{err}");
        assert!(err.contains("self_service.enabled"), "{err}");
    }
    assert!(!s.rig.state_path(USER).exists(), "nothing counted");
    assert!(s.rig.secret_files().is_empty());
    assert!(s.records().is_empty());
}

#[test]
fn another_users_name_is_bad_usage_and_nothing_is_written() {
    let mut s = self_rig("other-name", ON);
    s.records();
    for args in [
        &["status", OTHER][..],
        &["enroll", OTHER],
        &["recovery-codes", OTHER],
        &["disable", OTHER],
        &[OTHER],
        &["enroll", "--user", OTHER],
    ] {
        let out = s.run(USER, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));
    }
    assert_eq!(s.rig.files(), [".twostep-secret-dir"], "nothing written");
    assert!(s.records().is_empty());
}

#[test]
fn no_config_but_the_systems_is_ever_read() {
    // The system's config (the overlay's /etc/twostep/twostep.toml) has
    // self-service off; the user's own turns it on, over directories the
    // user owns.
    let s = self_rig("user-config", "");
    let uid = nix::unistd::User::from_name(USER).unwrap().unwrap().uid;
    let own = PathBuf::from(format!(
        "/tmp/twostep-self-user-config-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&own);
    std::fs::create_dir_all(own.join("secrets")).unwrap();
    std::fs::write(own.join("secrets/.twostep-secret-dir"), "").unwrap();
    let config = own.join("twostep.toml");
    std::fs::write(
        &config,
        format!(
            "secret_dir = \"{0}/secrets\"\nstate_dir = \"{0}/state\"\n{ON}",
            own.display()
        ),
    )
    .unwrap();
    for p in [&own, &own.join("secrets"), &config] {
        std::os::unix::fs::chown(p, Some(uid.as_raw()), None).unwrap();
    }
    let path = config.display().to_string();

    for args in [
        &["--config", &path, "status"][..],
        &["status", "--config", &path],
        &["enroll", "--config", &path],
    ] {
        let out = s.run(USER, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
    let env = format!("TWOSTEP_CONFIG={path}");
    for args in [&["status"][..], &["enroll"]] {
        let out = s.command(USER, &["env", &env], args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("self-service is turned off"),
            "TWOSTEP_CONFIG was honoured: {}",
            stderr(&out)
        );
    }
    assert!(!own.join("state").exists(), "the user's state_dir was used");
    let _ = std::fs::remove_dir_all(&own);
}

#[test]
fn disable_is_refused_by_default_and_for_always_challenge_groups_members() {
    ensure_user(ADMIN, Some(PASSWORD));
    ensure_group(GROUP, &[ADMIN]);
    let mut s = self_rig("disable-refused", ON);
    s.rig.enroll(USER, SECRET);
    s.rig.enroll(ADMIN, SECRET);
    s.records();

    let out = s.run(USER, &["disable"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("self_service.allow_disable"),
        "{}",
        stderr(&out)
    );

    s.configure(&format!(
        "{ON}allow_disable = true\n[policy]\nalways_challenge_groups = [\"{GROUP}\"]\n"
    ));
    let out = s.run(ADMIN, &["disable"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("policy.always_challenge_groups"),
        "{}",
        stderr(&out)
    );
    // Refused before the password: nothing counted, nothing removed.
    for user in [USER, ADMIN] {
        assert_eq!(s.secret_key(user).as_deref(), Some(SECRET), "{user}");
        assert_eq!(s.status(user, "failures"), 0, "{user}");
    }
    assert!(s.records().is_empty());
}

#[test]
fn disable_when_allowed_takes_the_password_and_a_code() {
    ensure_user(ADMIN, Some(PASSWORD));
    ensure_group(GROUP, &[ADMIN]);
    let mut s = enrolled_rig(
        "disable",
        &format!("{ON}allow_disable = true\n[policy]\nalways_challenge_groups = [\"{GROUP}\"]\n"),
    );
    let mut pty = up_to_the_code(&s, USER, &[], &["disable"]);
    fresh_step(5);
    let code = oath_code(SECRET, 0);
    pty.send_line(&code);
    expect(&mut pty, "Turned off two-step sign-in for ts-self");
    assert_eq!(pty.wait(STEP), Some(0), "{}", pty.output());
    assert!(!s.rig.secret_path(USER).exists());
    let r = s.records();
    let ok = events_named(&r, "auth_ok");
    assert_eq!(ok.len(), 1, "{r:#?}");
    assert_eq!(ok[0].get("service"), Some("twostep-self"));
    assert_eq!(ok[0].get("method"), Some("totp"));
    let disabled = events_named(&r, "disabled");
    assert_eq!(disabled.len(), 1, "{r:#?}");
    assert_eq!(
        (disabled[0].get("user"), disabled[0].get("by")),
        (Some(USER), Some("self"))
    );
    assert_no_secrets(&r, &[SECRET, &code]);
}

// ---- enrollment ---------------------------------------------------------------

#[test]
fn first_set_up_asks_the_password_only_and_writes_a_root_0600_file() {
    let mut s = self_rig("first", ON);
    s.records();
    let mut pty = s.spawn(USER, &[], &["enroll"]);
    password(&mut pty, PASSWORD);
    // No code to ask for yet: straight to the new app. A wrong code from
    // it first (3 tries), then the right one.
    expect(&mut pty, "Code from the app (6 digits): ");
    let secret = shown_secret(&pty);
    pty.send_line("000000");
    let secret_again = confirm_new_app(&mut pty);
    assert_eq!(secret, secret_again);
    expect(&mut pty, "Enrolled ts-self.");
    assert_eq!(pty.wait(STEP), Some(0), "{}", pty.output());
    assert!(!pty.output().contains("Verification code"));
    assert_eq!(shown_recovery_codes(&pty).len(), 10, "{}", pty.output());

    let path = s.rig.secret_path(USER);
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (0, 0), "root's");
    assert_eq!(meta.mode() & 0o7777, 0o600);
    assert_eq!(s.secret_key(USER).as_deref(), Some(secret.as_str()));
    assert_eq!(s.rig.stored_recovery_hashes(USER).len(), 10);
    // The attempt counted before the password was given back.
    assert_eq!(s.status(USER, "failures"), 0);
    let r = s.records();
    let enrolled = events_named(&r, "enrolled");
    assert_eq!(enrolled.len(), 1, "{r:#?}");
    assert_eq!(enrolled[0].get("by"), Some("self"));
    assert!(events_named(&r, "password_fail").is_empty(), "{r:#?}");
    assert_no_secrets(&r, &[&secret]);
}

#[test]
fn a_secret_dir_without_its_marker_is_no_first_set_up() {
    // An unmounted volume looks like "nobody is enrolled": that must not
    // let the password alone set up (or replace) a second factor.
    let mut s = self_rig("no-marker", ON);
    std::fs::remove_file(s.rig.secret_dir.join(".twostep-secret-dir")).unwrap();
    s.records();
    let mut pty = s.spawn(USER, &[], &["enroll"]);
    password(&mut pty, PASSWORD);
    expect(&mut pty, "cannot be checked right now");
    assert_eq!(pty.wait(STEP), Some(1), "{}", pty.output());
    assert!(!pty.output().contains("otpauth://"));
    assert!(s.rig.secret_files().is_empty());
    let r = s.records();
    let fail = events_named(&r, "auth_fail");
    assert_eq!(fail.len(), 1, "{r:#?}");
    assert_eq!(fail[0].get("reason"), Some("bad_secret_file"));
}

#[test]
fn a_replacement_needs_a_right_current_code() {
    let mut s = enrolled_rig("replace", ON);

    // A wrong current code: refused, counted, nothing written.
    let mut pty = up_to_the_code(&s, USER, &[], &["enroll"]);
    fresh_step(5);
    let wrong = wrong_code();
    pty.send_line(&wrong);
    expect(&mut pty, "not confirmed: nothing was changed");
    assert_eq!(pty.wait(STEP), Some(1), "{}", pty.output());
    assert!(!pty.output().contains("otpauth://"), "no new secret shown");
    assert_eq!(s.secret_key(USER).as_deref(), Some(SECRET));
    assert_eq!(s.status(USER, "failures"), 1);
    let r = s.records();
    let fail = events_named(&r, "auth_fail");
    assert_eq!(fail.len(), 1, "{r:#?}");
    assert_eq!(fail[0].get("reason"), Some("bad_code"));
    assert_eq!(fail[0].get("failures"), Some("1"));
    assert_eq!(fail[0].get("service"), Some("twostep-self"));
    assert!(events_named(&r, "enrolled").is_empty());

    // The right one: the new app is set up, the old secret is gone.
    let mut pty = up_to_the_code(&s, USER, &[], &["enroll"]);
    fresh_step(8);
    let current = oath_code(SECRET, 0);
    pty.send_line(&current);
    let new = confirm_new_app(&mut pty);
    expect(
        &mut pty,
        "The previous secret and recovery codes of ts-self no longer work.",
    );
    assert_eq!(pty.wait(STEP), Some(0), "{}", pty.output());
    assert_ne!(new, SECRET);
    assert_eq!(s.secret_key(USER).as_deref(), Some(new.as_str()));
    assert_eq!(s.status(USER, "failures"), 0, "a success resets the count");
    let r = s.records();
    let names: Vec<&str> = r.iter().map(Event::event).collect();
    assert_eq!(names, ["auth_ok", "enrolled"], "{r:#?}");
    assert_eq!(r[0].get("method"), Some("totp"));
    assert_eq!(
        (r[1].get("user"), r[1].get("by")),
        (Some(USER), Some("self"))
    );
    assert_no_secrets(&r, &[SECRET, &new, &current, &wrong]);
}

#[test]
fn a_wrong_password_counts_and_a_locked_user_is_refused_unasked() {
    let tiers = "[lockout]\ntiers = [{failures = 2, lock = \"5m\"}]\n";
    let mut s = enrolled_rig("lockout", &format!("{ON}{tiers}"));
    for n in 1..=2 {
        let mut pty = s.spawn(USER, &[], &["recovery-codes"]);
        password(&mut pty, "not the password");
        expect(&mut pty, "the password was not accepted");
        assert_eq!(pty.wait(STEP), Some(1), "{}", pty.output());
        assert!(!pty.output().contains("Verification code"));
        assert_eq!(s.status(USER, "failures"), n);
    }
    let r = s.records();
    let fails = events_named(&r, "password_fail");
    assert_eq!(fails.len(), 2, "{r:#?}");
    assert_eq!(fails[1].get("failures"), Some("2"));
    assert_eq!(fails[1].get("service"), Some("twostep-self"));
    let locked = events_named(&r, "locked");
    assert_eq!(locked.len(), 1, "{r:#?}");
    let until = locked[0].get("until").unwrap().to_string();

    // Locked: told until when, asked nothing, nothing counted.
    let mut pty = s.spawn(USER, &[], &["enroll"]);
    expect(&mut pty, "this account is locked until");
    assert_eq!(pty.wait(STEP), Some(1), "{}", pty.output());
    assert!(!pty.output().contains("Password:"), "{}", pty.output());
    assert_eq!(s.status(USER, "failures"), 2);
    let r = s.records();
    let denied = events_named(&r, "lock_denied");
    assert_eq!(denied.len(), 1, "{r:#?}");
    assert_eq!(denied[0].get("until"), Some(until.as_str()));

    // status needs no password, and says so too.
    let out = s.run(USER, &["status"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("locked until {until}")),
        "{}",
        stdout(&out)
    );
}

#[test]
fn recovery_codes_confirmed_by_a_recovery_code() {
    let mut s = self_rig("recovery", ON);
    let enrolled = s.rig.enroll_json_secret(USER, SECRET, &["--force"]);
    let old: Vec<String> = enrolled["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    let old_hashes = s.rig.stored_recovery_hashes(USER);
    s.records();
    let mut pty = s.spawn(USER, &[], &["recovery-codes"]);
    password(&mut pty, PASSWORD);
    expect(&mut pty, "Verification code: ");
    pty.send_line(&old[3]);
    expect(&mut pty, "Replaced the recovery codes of ts-self");
    assert_eq!(pty.wait(STEP), Some(0), "{}", pty.output());
    let new = shown_recovery_codes(&pty);
    assert_eq!(new.len(), 10, "{}", pty.output());
    assert!(new.iter().all(|c| !old.contains(c)));
    let hashes = s.rig.stored_recovery_hashes(USER);
    assert_eq!(hashes.len(), 10);
    assert!(hashes.iter().all(|h| !old_hashes.contains(h)));
    assert_eq!(
        s.secret_key(USER).as_deref(),
        Some(SECRET),
        "the secret stays"
    );
    let r = s.records();
    let names: Vec<&str> = r.iter().map(Event::event).collect();
    assert_eq!(names, ["auth_ok", "recovery_regenerated"], "{r:#?}");
    assert_eq!(r[0].get("method"), Some("recovery"));
    assert_eq!(r[1].get("by"), Some("self"));
    let mut secrets: Vec<&str> = old.iter().chain(&new).map(String::as_str).collect();
    secrets.push(SECRET);
    assert_no_secrets(&r, &secrets);
}

#[test]
fn the_notify_events_are_mailed_by_self() {
    let user = "ts-self-mail";
    ensure_mail_user(user);
    ensure_user(user, Some(PASSWORD));
    let issuer = format!("self-notify-{}", std::process::id());
    let mut s = self_rig(
        "notify",
        &format!(
            "issuer = \"{issuer}\"\n{ON}allow_disable = true\n[email]\naddress = \"{{user}}@localhost\"\n\
             [notify]\nevents = [\"enrolled\", \"recovery_regenerated\", \"disabled\"]\n"
        ),
    );
    s.records();
    // Set up; then new recovery codes and turning off, each confirmed by a
    // recovery code (the app's code of this step is used up).
    let mut pty = s.spawn(user, &[], &["enroll"]);
    password(&mut pty, PASSWORD);
    confirm_new_app(&mut pty);
    assert_eq!(pty.wait(STEP), Some(0), "{}", pty.output());
    let codes = shown_recovery_codes(&pty);
    let mut pty = s.spawn(user, &[], &["recovery-codes"]);
    password(&mut pty, PASSWORD);
    expect(&mut pty, "Verification code: ");
    pty.send_line(&codes[0]);
    assert_eq!(pty.wait(STEP), Some(0), "{}", pty.output());
    let codes = shown_recovery_codes(&pty);
    let mut pty = s.spawn(user, &[], &["disable"]);
    password(&mut pty, PASSWORD);
    expect(&mut pty, "Verification code: ");
    pty.send_line(&codes[0]);
    assert_eq!(pty.wait(STEP), Some(0), "{}", pty.output());

    for subject in [
        "two-step sign-in set up",
        "new recovery codes",
        "two-step sign-in turned off",
    ] {
        let m = wait_for_messages(&mailbox(user), &format!("{issuer}: {subject}"), 1)
            .pop()
            .unwrap();
        assert_eq!(m["to"], format!("{user}@localhost"));
        let body = m["body"].as_str().unwrap();
        assert!(body.contains("you (twostep-self)"), "{body}");
    }
    let r = s.records();
    assert!(events_named(&r, "delivery_failed").is_empty(), "{r:#?}");
    for event in ["enrolled", "recovery_regenerated", "disabled"] {
        let e = events_named(&r, event);
        assert_eq!(e.len(), 1, "{event}: {r:#?}");
        assert_eq!(e[0].get("by"), Some("self"));
    }
}

// ---- setuid hygiene ---------------------------------------------------------------

#[test]
fn without_the_setuid_rights_it_says_why() {
    let s = self_rig("rights", ON);
    // Under no_new_privs the kernel ignores the setuid bit.
    let out = s
        .command(USER, &["setpriv", "--no-new-privs", "--"], &["status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("no_new_privs"), "{}", stderr(&out));
    // Not installed setuid.
    std::fs::set_permissions(s.bin(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = s.run(USER, &["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not installed setuid root"),
        "{}",
        stderr(&out)
    );
    std::fs::set_permissions(s.bin(), std::fs::Permissions::from_mode(0o4755)).unwrap();
    // Root has twostep(1).
    let out = s.run("root", &["status"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("twostep enroll root"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn status_into_a_closed_pipe_is_one_line_not_a_panic() {
    // `status` printing to a pipe nobody reads used to panic in println!
    // (the panic hook's one line is now a unit test: src/self_service).
    let s = self_rig("panic", ON);
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read);
    let out = s
        .command(
            USER,
            &["env", "RUST_BACKTRACE=full", "RUST_LIB_BACKTRACE=1"],
            &["status"],
        )
        .stdout(Stdio::from(write))
        .output()
        .unwrap();
    assert_eq!(
        stderr(&out),
        "twostep-self: cannot write to standard output: Broken pipe (os error 32)\n"
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_hostile_environment_changes_nothing() {
    let tiers = "[lockout]\ntiers = [{failures = 1, lock = \"1h\"}]\n";
    let mut s = enrolled_rig("environment", &format!("{ON}{tiers}"));
    // One wrong password locks: status then shows a time.
    let hostile = [
        "env",
        "TZ=XYZ-7:30",
        "LANG=../../../../tmp/evil",
        "LC_ALL=/tmp/evil",
        "LANGUAGE=../../tmp/evil",
        "LC_MESSAGES=%n%n%n",
        "COLUMNS=3",
        "RUST_BACKTRACE=full",
        "RUST_MIN_STACK=1",
        "TMPDIR=/nonexistent",
        "TWOSTEP_CONFIG=/nonexistent",
        "PATH=/nonexistent",
    ];
    let mut pty = s.spawn(USER, &hostile, &["recovery-codes"]);
    password(&mut pty, "not the password");
    assert_eq!(pty.wait(STEP), Some(1), "{}", pty.output());
    let until = events_named(&s.records(), "locked")[0]
        .get("until")
        .unwrap()
        .to_string();
    let plain = s.run(USER, &["status"]);
    let odd = s.command(USER, &hostile, &["status"]).output().unwrap();
    assert_eq!(plain.status.code(), Some(0), "{}", stderr(&plain));
    assert_eq!(odd.status.code(), Some(0), "{}", stderr(&odd));
    assert_eq!(stdout(&plain), stdout(&odd));
    assert_eq!(stderr(&odd), "");
    assert!(
        stdout(&odd).contains(&format!("locked until {until}")),
        "the time in UTC, as records have it: {}",
        stdout(&odd)
    );
}

#[test]
fn a_closed_stdout_goes_nowhere_else() {
    // Descriptor 1 closed: the files opened as root must not take its
    // number, or the codes printed next would be written into them.
    let mut s = enrolled_rig("closed-stdout", ON);
    let mut pty = up_to_the_code(
        &s,
        USER,
        &["sh", "-c", r#"exec "$0" "$@" >&-"#],
        &["recovery-codes"],
    );
    fresh_step(5);
    pty.send_line(&oath_code(SECRET, 0));
    assert_eq!(pty.wait(STEP), Some(0), "{}", pty.output());
    assert!(
        !pty.output().contains("Recovery codes for"),
        "stdout was closed"
    );
    assert_eq!(s.rig.stored_recovery_hashes(USER).len(), 10);
    assert!(files_containing(&s.rig.secret_dir, "Recovery codes").is_empty());
    assert!(files_containing(&s.rig.state_dir, "Recovery codes").is_empty());
    let r = s.records();
    assert_eq!(events_named(&r, "recovery_regenerated").len(), 1, "{r:#?}");
}

#[test]
fn a_file_size_limit_cannot_cut_a_write_short() {
    // The state file is 2,048 bytes, the secret file about 1,100; dash's
    // `ulimit -f 1` is 512 bytes. A soft limit is lifted: the enrollment
    // is written whole.
    let mut s = self_rig("ulimit", ON);
    s.records();
    let mut pty = s.spawn(
        USER,
        &["sh", "-c", r#"ulimit -S -f 1 && exec "$0" "$@""#],
        &["enroll"],
    );
    password(&mut pty, PASSWORD);
    let secret = confirm_new_app(&mut pty);
    expect(&mut pty, "Enrolled ts-self.");
    assert_eq!(pty.wait(STEP), Some(0), "{}", pty.output());
    assert_eq!(s.secret_key(USER).as_deref(), Some(secret.as_str()));
    assert_eq!(s.rig.stored_recovery_hashes(USER).len(), 10);
    assert_eq!(s.status(USER, "failures"), 0);
    assert_eq!(events_named(&s.records(), "enrolled").len(), 1);

    // `ulimit -f 1` sets the hard limit too. Root lifts that where it has
    // CAP_SYS_RESOURCE; where it has not, nothing is attempted, and the
    // enrollment stays as it was, whole.
    let before = std::fs::read(s.rig.secret_path(USER)).unwrap();
    let mut pty = s.spawn(
        USER,
        &["sh", "-c", r#"ulimit -f 1 && exec "$0" "$@""#],
        &["enroll"],
    );
    if root_may_raise_hard_limits() {
        password(&mut pty, PASSWORD);
        expect(&mut pty, "Verification code: ");
        fresh_step(8);
        pty.send_line(&oath_code(&secret, 0));
        let newer = confirm_new_app(&mut pty);
        assert_eq!(pty.wait(STEP), Some(0), "{}", pty.output());
        assert_eq!(s.secret_key(USER).as_deref(), Some(newer.as_str()));
        assert_eq!(s.rig.stored_recovery_hashes(USER).len(), 10);
    } else {
        expect(&mut pty, "cannot be lifted here");
        assert_eq!(pty.wait(STEP), Some(1), "{}", pty.output());
        assert!(!pty.output().contains("Password:"));
        assert_eq!(std::fs::read(s.rig.secret_path(USER)).unwrap(), before);
        assert!(s.records().is_empty());
    }
    assert_eq!(s.rig.secret_files().len(), 1, "no temporary file left");
}

#[test]
fn sigterm_from_the_caller_cannot_stop_it_between_writes() {
    let mut s = enrolled_rig("sigterm", ON);
    let mut pty = up_to_the_code(&s, USER, &[], &["enroll"]);
    fresh_step(10);
    pty.send_line(&oath_code(SECRET, 0));
    expect(&mut pty, "Code from the app (6 digits): ");
    let new = shown_secret(&pty);
    let pid = running_pid(&s).expect("twostep-self running");
    // Meanwhile: no core file, and no file-size limit (the test's own).
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let limit = |name: &str| {
        let line = limits.lines().find(|l| l.starts_with(name)).unwrap();
        line[name.len()..]
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
    };
    assert_eq!(limit("Max core file size"), ["0", "0"], "{limits}");
    assert_eq!(
        limit("Max file size"),
        ["unlimited", "unlimited"],
        "{limits}"
    );

    // From before the code is typed until it has ended: SIGTERM, as the
    // user, every 2 ms, through the recovery codes' hashing, the writes and
    // the records. From the password on its real uid is root's
    // (src/caller.rs): the kernel refuses them all, SIGSTOP and SIGKILL
    // would be refused too; the signals it blocks are the second guard.
    let stop = Arc::new(AtomicBool::new(false));
    let tried = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicUsize::new(0));
    let (stop2, tried2, sent2) = (stop.clone(), tried.clone(), sent.clone());
    let uid = nix::unistd::User::from_name(USER).unwrap().unwrap().uid;
    let killer = std::thread::spawn(move || {
        // setuid(2) in this thread alone would change the whole process:
        // a child does it.
        while !stop2.load(Ordering::Relaxed) {
            let ok = Command::new("setpriv")
                .args([&format!("--reuid={uid}"), "--regid=65534", "--clear-groups"])
                .args(["kill", "-TERM", &pid.to_string()])
                .stderr(Stdio::null())
                .status()
                .map(|st| st.success())
                .unwrap_or(false);
            tried2.fetch_add(1, Ordering::Relaxed);
            if ok {
                sent2.fetch_add(1, Ordering::Relaxed);
            } else if !Path::new(&format!("/proc/{pid}")).exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    while tried.load(Ordering::Relaxed) == 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    fresh_step(3);
    pty.send_line(&oath_code(&new, 0));
    let exit = pty.wait(STEP);
    stop.store(true, Ordering::Relaxed);
    killer.join().unwrap();
    assert!(tried.load(Ordering::Relaxed) > 1);
    assert_eq!(
        sent.load(Ordering::Relaxed),
        0,
        "the caller could signal it after the password"
    );
    assert_eq!(exit, Some(0), "{}", pty.output());
    // Whole: the new secret with its codes, shown, recorded.
    assert_eq!(s.secret_key(USER).as_deref(), Some(new.as_str()));
    assert_eq!(s.rig.stored_recovery_hashes(USER).len(), 10);
    assert_eq!(shown_recovery_codes(&pty).len(), 10, "{}", pty.output());
    assert_eq!(s.rig.secret_files().len(), 1, "no temporary file left");
    let r = s.records();
    assert_eq!(events_named(&r, "enrolled").len(), 1, "{r:#?}");
}

// ---- a proof allows one write, over the file it was judged against ----------

/// The caller of the tests below, and one with a mailbox (a prefix of their
/// own, so that they never meet the users of the tests above).
const SV: &str = "ts-sv";
const SV_MAIL: &str = "ts-sv-mail";
/// What an administrator enrolls meanwhile.
const SECRET2: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

/// A rig where SV is enrolled with SECRET by the administrator: the
/// recovery codes shown to them, the records so far drained.
fn sv_rig(name: &str, extra: &str) -> (SelfRig, Vec<String>) {
    ensure_user(SV, Some(PASSWORD));
    let mut s = self_rig(name, extra);
    let codes = s.rig.enroll_json_secret(SV, SECRET, &["--force"])["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    s.records();
    (s, codes)
}

/// A FIFO the caller can open, in a directory of its own, removed after.
struct Fifo {
    dir: PathBuf,
    path: PathBuf,
}

impl Fifo {
    fn new(name: &str) -> Fifo {
        let dir = PathBuf::from(format!(
            "/tmp/twostep-test-sv-fifo-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.join("fifo");
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o666)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        Fifo { dir, path }
    }

    fn quoted(&self) -> String {
        format!("'{}'", self.path.display())
    }

    /// The read end, not blocking.
    fn reader(&self) -> std::fs::File {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&self.path)
            .unwrap()
    }
}

impl Drop for Fifo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A wrapper whose standard output is a pipe that nobody will ever read:
/// the shell opens the FIFO for reading and writing, then for writing as
/// standard output, then closes the first (dash has no `>(...)`).
fn closed_pipe_stdout(fifo: &Fifo) -> Vec<String> {
    let f = fifo.quoted();
    vec![
        "sh".into(),
        "-c".into(),
        format!(r#"exec 4<>{f} >{f} 4<&-; exec "$0" "$@""#),
    ]
}

/// Reads what is there from a non-blocking `reader` into `got` until `what`
/// is in it (then `true`), the writers are all gone, or `limit` passes.
fn read_until(reader: &mut std::fs::File, got: &mut String, what: &str, limit: Duration) -> bool {
    use std::io::Read;
    let deadline = std::time::Instant::now() + limit;
    let mut buf = [0u8; 4096];
    loop {
        if got.contains(what) {
            return true;
        }
        match reader.read(&mut buf) {
            Ok(0) => return got.contains(what),
            Ok(n) => got.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if std::time::Instant::now() > deadline {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("reading the FIFO: {e}"),
        }
    }
}

/// `args` run as SV, confirmed by the password and the recovery code
/// `recovery`, and held right after that proof, before it writes: its
/// standard error is a FIFO of one page, which this fills but for one byte
/// before the code is typed, so that the newline after the hidden answer
/// fits and the next thing written, the "Recovery code accepted" line (the
/// proof is judged and committed by then), waits until the FIFO is read.
/// Returns once the code is struck off the secret file.
struct HeldAfterTheProof {
    pty: Pty,
    stderr: std::fs::File,
    said: String,
    filling: String,
    _fifo: Fifo,
}

impl HeldAfterTheProof {
    fn start(s: &SelfRig, name: &str, args: &[&str], recovery: &str) -> HeldAfterTheProof {
        use std::io::Write;
        let fifo = Fifo::new(name);
        let mut stderr = fifo.reader();
        // One page: the least a pipe holds (the call says how much that is).
        let page = nix::fcntl::fcntl(&stderr, nix::fcntl::FcntlArg::F_SETPIPE_SZ(1)).unwrap();
        let filling = ".".repeat(usize::try_from(page).unwrap() - 1);
        // A writer of ours until the FIFO is filled: no end of file before.
        let mut filler = std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo.path)
            .unwrap();
        let wrapper = format!(r#"exec "$0" "$@" 2>{}"#, fifo.quoted());
        let mut pty = s.spawn(SV, &["sh", "-c", &wrapper], args);
        let mut said = String::new();
        assert!(
            read_until(&mut stderr, &mut said, "Password: ", STEP),
            "{said}\n{}",
            pty.output()
        );
        pty.send_line(PASSWORD);
        assert!(
            read_until(&mut stderr, &mut said, "Verification code: ", STEP),
            "{said}"
        );
        filler.write_all(filling.as_bytes()).unwrap();
        drop(filler);
        let left = s.rig.stored_recovery_hashes(SV).len();
        pty.send_line(recovery);
        let deadline = std::time::Instant::now() + STEP;
        while s.rig.stored_recovery_hashes(SV).len() == left {
            assert!(
                std::time::Instant::now() < deadline,
                "the code was not used"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        HeldAfterTheProof {
            pty,
            stderr,
            said,
            filling,
            _fifo: fifo,
        }
    }

    /// Lets it go on: its exit status, and what it said on stderr.
    fn finish(mut self) -> (Option<i32>, String) {
        // Reads until every writer is gone (it has ended).
        read_until(&mut self.stderr, &mut self.said, "\u{0}never", STEP);
        let exit = self.pty.wait(STEP);
        (exit, self.said.replacen(&self.filling, "", 1))
    }
}

#[test]
fn a_proof_made_unenrolled_does_not_replace_an_enrollment_made_meanwhile() {
    ensure_user(SV, Some(PASSWORD));
    let mut s = self_rig("sv-stale-enroll", ON);
    s.records();
    let mut pty = s.spawn(SV, &[], &["enroll"]);
    password(&mut pty, PASSWORD);
    expect(&mut pty, "Code from the app (6 digits): ");
    let new = shown_secret(&pty);
    // While the user scans the QR code, the administrator enrolls them.
    s.rig.enroll(SV, SECRET2);
    let admins = s.rig.stored_recovery_hashes(SV);
    fresh_step(5);
    pty.send_line(&oath_code(&new, 0));
    let exit = pty.wait(STEP);
    assert_eq!(
        s.secret_key(SV).as_deref(),
        Some(SECRET2),
        "the administrator's enrollment was replaced:\n{}",
        pty.output()
    );
    assert_eq!(s.rig.stored_recovery_hashes(SV), admins);
    assert_eq!(exit, Some(1), "{}", pty.output());
    assert!(
        pty.output().contains("changed after you confirmed"),
        "{}",
        pty.output()
    );
    let r = s.records();
    assert!(events_named(&r, "enrolled").is_empty(), "{r:#?}");
    let refused = events_named(&r, "change_refused");
    assert_eq!(refused.len(), 1, "{r:#?}");
    assert_eq!(
        (
            refused[0].get("user"),
            refused[0].get("by"),
            refused[0].get("change"),
            refused[0].get("reason")
        ),
        (
            Some(SV),
            Some("self"),
            Some("enrolled"),
            Some("changed_meanwhile")
        )
    );
}

#[test]
fn disable_after_a_proof_does_not_remove_an_enrollment_made_meanwhile() {
    let (mut s, codes) = sv_rig("sv-stale-disable", &format!("{ON}allow_disable = true\n"));
    let held = HeldAfterTheProof::start(&s, "disable", &["disable"], &codes[0]);
    // Proved and held: the administrator enrolls the user anew.
    s.rig.enroll(SV, SECRET2);
    let admins = s.rig.stored_recovery_hashes(SV);
    let (exit, said) = held.finish();
    assert_eq!(
        s.secret_key(SV).as_deref(),
        Some(SECRET2),
        "the administrator's enrollment was removed: {said}"
    );
    assert_eq!(s.rig.stored_recovery_hashes(SV), admins);
    assert_eq!(exit, Some(1), "{said}");
    assert!(said.contains("changed after you confirmed"), "{said}");
    let r = s.records();
    assert!(events_named(&r, "disabled").is_empty(), "{r:#?}");
    let refused = events_named(&r, "change_refused");
    assert_eq!(refused.len(), 1, "{r:#?}");
    assert_eq!(refused[0].get("change"), Some("disabled"));
    assert_eq!(refused[0].get("reason"), Some("changed_meanwhile"));
}

#[test]
fn new_recovery_codes_after_a_proof_do_not_go_into_an_enrollment_made_meanwhile() {
    let (mut s, codes) = sv_rig("sv-stale-codes", ON);
    let held = HeldAfterTheProof::start(&s, "codes", &["recovery-codes"], &codes[0]);
    s.rig.enroll(SV, SECRET2);
    let admins = s.rig.stored_recovery_hashes(SV);
    let (exit, said) = held.finish();
    assert_eq!(
        s.rig.stored_recovery_hashes(SV),
        admins,
        "the codes of the administrator's enrollment were replaced: {said}"
    );
    assert_eq!(s.secret_key(SV).as_deref(), Some(SECRET2));
    assert_eq!(exit, Some(1), "{said}");
    assert!(said.contains("changed after you confirmed"), "{said}");
    let r = s.records();
    assert!(
        events_named(&r, "recovery_regenerated").is_empty(),
        "{r:#?}"
    );
    assert_eq!(events_named(&r, "change_refused").len(), 1, "{r:#?}");
}

#[test]
fn a_change_of_ones_own_with_nothing_changed_meanwhile_is_made() {
    // The guard lets through what it should: the proof's own strike-off of
    // the recovery code it used is no change "meanwhile".
    let (mut s, codes) = sv_rig("sv-same", ON);
    let held = HeldAfterTheProof::start(&s, "same", &["recovery-codes"], &codes[1]);
    let (exit, said) = held.finish();
    assert_eq!(exit, Some(0), "{said}");
    assert_eq!(s.rig.stored_recovery_hashes(SV).len(), 10);
    assert_eq!(events_named(&s.records(), "recovery_regenerated").len(), 1);
}

// ---- standard output that cannot be written -------------------------------------

#[test]
fn disable_with_stdout_a_closed_pipe_still_records_and_mails_it() {
    ensure_mail_user(SV_MAIL);
    ensure_user(SV_MAIL, Some(PASSWORD));
    let issuer = format!("sv-closed-disable-{}", std::process::id());
    let mut s = self_rig(
        "sv-closed-disable",
        &format!(
            "issuer = \"{issuer}\"\n{ON}allow_disable = true\n[email]\naddress = \"{{user}}@localhost\"\n\
             [notify]\nevents = [\"disabled\"]\n"
        ),
    );
    s.rig.enroll(SV_MAIL, SECRET);
    s.records();
    let fifo = Fifo::new("disable-out");
    let wrapper = closed_pipe_stdout(&fifo);
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let mut pty = s.spawn(SV_MAIL, &wrapper, &["disable"]);
    password(&mut pty, PASSWORD);
    expect(&mut pty, "Verification code: ");
    fresh_step(5);
    pty.send_line(&oath_code(SECRET, 0));
    let exit = pty.wait(STEP);
    assert!(!pty.output().contains("internal error"), "{}", pty.output());
    assert_eq!(exit, Some(0), "{}", pty.output());
    assert!(!s.rig.secret_path(SV_MAIL).exists());
    let r = s.records();
    let disabled = events_named(&r, "disabled");
    assert_eq!(disabled.len(), 1, "{r:#?}");
    assert_eq!(disabled[0].get("by"), Some("self"));
    assert!(events_named(&r, "delivery_failed").is_empty(), "{r:#?}");
    let m = wait_for_messages(
        &mailbox(SV_MAIL),
        &format!("{issuer}: two-step sign-in turned off"),
        1,
    );
    assert_eq!(m[0]["to"], format!("{SV_MAIL}@localhost"));
}

#[test]
fn recovery_codes_that_cannot_be_shown_are_not_made() {
    let (mut s, codes) = sv_rig("sv-closed-codes", ON);
    let old = s.rig.stored_recovery_hashes(SV);

    // Standard output a pipe nobody reads, from the start: refused before
    // the password is asked.
    let fifo = Fifo::new("codes-out");
    let wrapper = closed_pipe_stdout(&fifo);
    let wrapper: Vec<&str> = wrapper.iter().map(String::as_str).collect();
    let mut pty = s.spawn(SV, &wrapper, &["recovery-codes"]);
    if pty.expect(&["Password: ", "standard output"], STEP) == Some(0) {
        pty.send_line(PASSWORD);
        expect(&mut pty, "Verification code: ");
        pty.send_line(&codes[0]);
    }
    let exit = pty.wait(STEP);
    assert_eq!(
        s.rig.stored_recovery_hashes(SV),
        old,
        "the old recovery codes were replaced, and the new ones never shown:\n{}",
        pty.output()
    );
    assert_eq!(exit, Some(1), "{}", pty.output());
    assert!(!pty.output().contains("Password: "), "{}", pty.output());
    assert!(!pty.output().contains("internal error"), "{}", pty.output());
    assert_eq!(s.status(SV, "failures"), 0, "nothing counted");

    // Closed after that check, while the code is asked: the codes cannot
    // be shown, so they are not made, and the user is told.
    let fifo = Fifo::new("codes-out-late");
    let reader = fifo.reader();
    let wrapper = format!(r#"exec "$0" "$@" >{}"#, fifo.quoted());
    let mut pty = s.spawn(SV, &["sh", "-c", &wrapper], &["recovery-codes"]);
    password(&mut pty, PASSWORD);
    expect(&mut pty, "Verification code: ");
    drop(reader);
    fresh_step(5);
    pty.send_line(&oath_code(SECRET, 0));
    let exit = pty.wait(STEP);
    assert_eq!(s.rig.stored_recovery_hashes(SV), old, "{}", pty.output());
    assert_eq!(exit, Some(1), "{}", pty.output());
    assert!(
        pty.output().contains("could not be shown"),
        "{}",
        pty.output()
    );
    assert!(
        pty.output().contains("are as they were"),
        "{}",
        pty.output()
    );
    assert!(!pty.output().contains("internal error"), "{}", pty.output());
    let r = s.records();
    assert!(
        events_named(&r, "recovery_regenerated").is_empty(),
        "{r:#?}"
    );
}
