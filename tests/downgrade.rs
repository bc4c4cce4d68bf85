//! Going back one release, with the files this one wrote: the previous
//! release's module (built once by tests/old-release.sh, main before issue
//! 24) loaded by the real libpam beside this one, both on the same config,
//! secret files and state_dir. It must deny a user whose secret file holds
//! several authenticators, saying why, rather than read part of it; and it
//! must read the state this version wrote for a user with one authenticator
//! (TWOSTEP5): the failures counted, the replay step held, not locked.

mod common;
use common::mail::write_secret;
use common::redis::{Redis, store_section, unix_url};
use common::*;
use pam_twostep::files::secret::{SecretFile, devices};
use std::path::PathBuf;
use std::sync::OnceLock;

const TIERS: &str = "[lockout]\ntiers = [{failures = 100, lock = \"1m\"}]";
const PHONE: &str = "IFAUCQKBIFAUCQKBIFAUCQKBIFAUCQKB";
const TABLET: &str = "IJBEEQSCIJBEEQSCIJBEEQSCIJBEEQSC";

/// The previous release's pam_twostep.so: tests/old-release.sh builds it
/// into target/old-release/ the first time (about a minute) and finds it
/// there after.
fn old_module() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/old-release.sh");
        let out = std::process::Command::new("bash")
            .arg(script)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
        assert!(path.is_file(), "{}", path.display());
        path
    })
}

/// A rig whose service `old` is the previous release's module on the
/// rig's config (its `twostep` service is this version's).
fn rig(name: &str, user: &str) -> Rig {
    ensure_user(user, None);
    host(name, "")
}

/// [`rig`] with `store` (a `[store]` section, or nothing) in its config.
fn host(name: &str, store: &str) -> Rig {
    let rig = Rig::new(name, &format!("{TIERS}\n{store}"));
    rig.service(
        "old",
        &format!(
            "auth required {} config={}\n",
            old_module().display(),
            rig.config.display()
        ),
    );
    rig
}

/// A login through `service`: `twostep` (this version) or `old`.
fn login(rig: &Rig, service: &str, user: &str, code: &str) -> Login {
    rig.login_with(
        service,
        user,
        &[code],
        &[("rhost", "192.0.2.10"), ("tty", "ssh")],
    )
}

/// A login through `service` that must be denied at its one prompt: its
/// one `auth_fail` record.
fn denied(rig: &mut Rig, service: &str, user: &str, code: &str) -> Event {
    let login = login(rig, service, user, code);
    assert_eq!(login.code, PAM_AUTH_ERR, "{}", login.out);
    assert_eq!(login.prompts(), 1, "{}", login.out);
    let ev = rig.module_events();
    assert_eq!(count(&ev, "auth_ok"), 0, "{ev:#?}");
    let fails: Vec<&Event> = ev.iter().filter(|e| e.event() == "auth_fail").collect();
    assert_eq!(fails.len(), 1, "{ev:#?}");
    fails[0].clone()
}

/// A login through `service` that must be denied, at its prompt or before
/// it: its one `auth_fail` or `lock_denied` record.
fn denied_or_locked(rig: &mut Rig, service: &str, user: &str, code: &str) -> Event {
    let login = login(rig, service, user, code);
    assert_eq!(login.code, PAM_AUTH_ERR, "{}", login.out);
    let ev = rig.module_events();
    let refusals: Vec<&Event> = ev
        .iter()
        .filter(|e| ["auth_fail", "lock_denied"].contains(&e.event()))
        .collect();
    assert_eq!((count(&ev, "auth_ok"), refusals.len()), (0, 1), "{ev:#?}");
    refusals[0].clone()
}

/// Before the user's first code of a named authenticator the state is of
/// the earlier format: the previous release reads it, counts the attempt,
/// and refuses the file (`bad_secret_file`). After it (TWOSTEP6), it cannot
/// read the state either: denied before the prompt as locked
/// (`lock_denied reason=bad_state`), nothing written; `twostep reset` then
/// brings back the first answer.
#[test]
fn the_previous_release_denies_a_file_of_several_authenticators_and_says_why() {
    let u = "ts-dvl-down-list";
    let mut rig = rig("dvl-down-list", u);
    let entry = |name: &str, secret: &str| {
        format!("[[authenticator]]\nname = \"{name}\"\nsecret = \"{secret}\"\n")
    };
    // The old form with a tablet added, as `twostep enroll --add` writes
    // it; two written by hand; one alone in a list.
    let files = [
        (with_a_tablet(), [SECRET, TABLET]),
        (
            format!("{}{}", entry("phone", PHONE), entry("tablet", TABLET)),
            [PHONE, TABLET],
        ),
        (entry("phone", PHONE), [PHONE, PHONE]),
    ];
    let refuses_the_file = |rig: &mut Rig, text: &str, secrets: &[&str]| {
        for secret in secrets {
            let fail = denied(rig, "old", u, &oath_code(secret, 1));
            assert_eq!(
                fail.get("reason"),
                Some("bad_secret_file"),
                "{text}: {fail:?}"
            );
            let detail = fail.get("detail").unwrap_or("");
            assert!(
                detail.contains("not a valid secret file (TOML error at line"),
                "{text}: {detail}"
            );
            assert!(!fail.raw.contains(secret), "{}", fail.raw);
        }
    };
    for (text, secrets) in &files {
        write_secret(&rig, u, text);
        let _ = std::fs::remove_file(rig.state_path(u));
        rig.events();
        fresh_step(5);
        refuses_the_file(&mut rig, text, secrets);
        // This version takes each authenticator's code, over that state.
        for (i, secret) in secrets.iter().enumerate() {
            let l = rig.login(u, &oath_code(secret, i as i64 - 1));
            assert_eq!(l.code, PAM_SUCCESS, "{text}: {}", l.out);
        }
        assert_eq!(rig.slot_magics(u), ["TWOSTEP6", "TWOSTEP6"]);
        rig.events();
        let before = std::fs::read(rig.state_path(u)).unwrap();
        let fail = denied_or_locked(&mut rig, "old", u, &oath_code(secrets[0], 1));
        assert_eq!(
            (fail.event(), fail.get("reason")),
            ("lock_denied", Some("bad_state")),
            "{text}: {fail:?}"
        );
        assert_eq!(std::fs::read(rig.state_path(u)).unwrap(), before);
        // What `twostep reset` does to the state.
        std::fs::remove_file(rig.state_path(u)).unwrap();
        refuses_the_file(&mut rig, text, secrets);
    }
}

#[test]
fn the_previous_release_reads_the_state_written_for_one_authenticator() {
    let u = "ts-dvl-down-one";
    let mut rig = rig("dvl-down-one", u);
    write_secret(&rig, u, &format!("secret = \"{SECRET}\"\n"));
    rig.events();
    fresh_step(12);
    let t = now() / 30 * 30;
    let code = code_at(SECRET, t);
    // This version: the step of `code` used, then two wrong codes counted.
    let l = rig.login(u, &code);
    assert_eq!(l.code, PAM_SUCCESS, "{}", l.out);
    rig.events();
    let wrong = wrong_code();
    for n in 1..=2 {
        let fail = denied(&mut rig, "twostep", u, &wrong);
        assert_eq!(fail.get("failures"), Some(n.to_string().as_str()));
    }
    let magics = rig.slot_magics(u);
    assert!(
        magics.iter().all(|m| m == "TWOSTEP5"),
        "a slot the previous release knows: {magics:?}"
    );
    // The previous release: the same code is a replay, counted after the
    // two failures this version counted.
    let fail = denied(&mut rig, "old", u, &code);
    assert_eq!(
        (fail.get("reason"), fail.get("failures")),
        (Some("replay"), Some("3")),
        "{fail:?}"
    );
    // Not locked: the next step's code logs in.
    let next = code_at(SECRET, t + 30);
    let l = login(&rig, "old", u, &next);
    assert_eq!(l.code, PAM_SUCCESS, "{}", l.out);
    let ev = rig.module_events();
    assert_eq!(count(&ev, "auth_ok"), 1, "{ev:#?}");
    // And back to this version: the step the previous one used holds.
    let fail = denied(&mut rig, "twostep", u, &next);
    assert_eq!(fail.get("reason"), Some("replay"), "{fail:?}");
}

/// The old form with a tablet added, as `twostep enroll --add` writes it
/// (secret::devices::add): SECRET as `default`, then TABLET.
fn with_a_tablet() -> String {
    let old_form = SecretFile::from_toml(&format!("secret = \"{SECRET}\"\n")).unwrap();
    let tablet = devices::Entry {
        name: "tablet".into(),
        secret: TABLET.to_string().into(),
        digits: None,
        period: None,
        algorithm: None,
        created: None,
    };
    devices::add(&old_form, tablet)
        .unwrap()
        .to_toml()
        .to_string()
}

/// Back and forth between the releases must never open a spent code
/// again. The previous release cannot read a slot with named
/// authenticators' steps (TWOSTEP6); it used to fall back to the other
/// slot, the state before the first such step (TWOSTEP5), and to write its
/// count over the newer one: the tablet's step was lost, and back on this
/// version the tablet's spent code logged in again.
#[test]
fn back_and_forth_between_releases_never_reopens_a_spent_code() {
    let u = "ts-dvl-down-back";
    let mut rig = rig("dvl-down-back", u);
    write_secret(&rig, u, &with_a_tablet());
    fresh_step(12);
    let t = now() / 30 * 30;
    let tablet = code_at(TABLET, t);
    assert_eq!(rig.login(u, &code_at(SECRET, t)).code, PAM_SUCCESS);
    // The tablet's first step.
    assert_eq!(rig.login(u, &tablet).code, PAM_SUCCESS);
    rig.events();
    let before = std::fs::read(rig.state_path(u)).unwrap();
    // The previous release: denied, and the state left as it was.
    let old = denied_or_locked(&mut rig, "old", u, &tablet);
    let unchanged = std::fs::read(rig.state_path(u)).unwrap() == before;
    let slots = rig.slot_magics(u);
    // Back on this version the tablet's code is still spent.
    let l = rig.login(u, &tablet);
    assert_eq!(
        l.code, PAM_AUTH_ERR,
        "a spent code logged in again (the previous release: {}; slots then {slots:?})",
        old.raw
    );
    let ev = rig.module_events();
    let fail = ev.iter().find(|e| e.event() == "auth_fail").unwrap();
    assert_eq!(fail.get("reason"), Some("replay"), "{ev:#?}");
    assert!(
        unchanged,
        "the previous release wrote the state: {}",
        old.raw
    );
}

/// A fleet in the middle of an upgrade: a host of each release on one
/// store. A one-authenticator user's step is shared both ways; for a user
/// with several, the previous release's refusal leaves the named steps in
/// the store (`ds`) alone, so a spent code stays spent on the new host.
#[test]
fn a_fleet_of_both_releases_shares_the_step_and_keeps_the_named_ones() {
    let (one, two) = ("ts-dvl-down-f1", "ts-dvl-down-f2");
    ensure_user(one, None);
    ensure_user(two, None);
    let redis = Redis::start("dvl-down", &[]);
    let store = store_section(&redis, &unix_url(&redis), "dvl-down", "");
    let mut new = host("dvl-down-new", &store);
    let mut old = host("dvl-down-old", &store);
    for h in [&new, &old] {
        write_secret(h, one, &format!("secret = \"{SECRET}\"\n"));
        write_secret(h, two, &with_a_tablet());
    }
    new.events();
    old.events();
    fresh_step(12);
    let t = now() / 30 * 30;
    // One authenticator: a code spent on either host is spent on the other.
    let (code, next) = (code_at(SECRET, t), code_at(SECRET, t + 30));
    assert_eq!(login(&new, "twostep", one, &code).code, PAM_SUCCESS);
    new.events();
    let fail = denied(&mut old, "old", one, &code);
    assert_eq!(fail.get("reason"), Some("replay"), "{fail:?}");
    assert_eq!(login(&old, "old", one, &next).code, PAM_SUCCESS);
    old.events();
    let fail = denied(&mut new, "twostep", one, &next);
    assert_eq!(fail.get("reason"), Some("replay"), "{fail:?}");
    // Two: the new host takes the tablet's code, the old host refuses the
    // file and counts, the tablet's step stays in the store.
    let tablet = code_at(TABLET, t);
    assert_eq!(login(&new, "twostep", two, &tablet).code, PAM_SUCCESS);
    new.events();
    let key = format!("twostep:dvl-down:{{{two}}}");
    let steps = redis.cli(&["HGET", &key, "ds"]);
    assert_eq!(steps.trim().matches('=').count(), 1, "{steps:?}");
    let fail = denied(&mut old, "old", two, &tablet);
    assert_eq!(fail.get("reason"), Some("bad_secret_file"), "{fail:?}");
    assert_eq!(redis.cli(&["HGET", &key, "ds"]), steps);
    let fail = denied(&mut new, "twostep", two, &tablet);
    assert_eq!(fail.get("reason"), Some("replay"), "{fail:?}");
}
