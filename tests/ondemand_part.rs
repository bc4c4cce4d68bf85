//! The module's on-demand part (src/ondemand/) through the real libpam: a
//! login that needs it (a code by email) is denied, with a
//! `delivery_failed reason=part` record naming the part and what is wrong,
//! when the part is missing, not root's, or writable by others; an
//! app-code login beside it is not affected; and once the part is put
//! right, the same email login succeeds again. `twostep check` says the
//! same, naming who needs the part. Enrollment at login, whose QR code the
//! part draws, still enrolls without it: the key is added by hand.
//!
//! The part is the one this build's module loads (its path is a constant
//! of the build: `pam_twostep::ondemand::PART_PATH`, beside the debug
//! module). This test changes it and puts it back (also when it fails), in
//! one test function: cargo runs test binaries one after another, so no
//! other test sees it changed.

mod common;
use common::mail::{code_in, email_rig, mailbox, wait_for_messages};
use common::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The part as the build left it; restored when dropped.
struct PartBackup {
    path: PathBuf,
    aside: PathBuf,
    mode: u32,
    uid: u32,
    gid: u32,
}

impl PartBackup {
    fn new() -> PartBackup {
        let path = PathBuf::from(pam_twostep::ondemand::PART_PATH);
        let meta = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (cargo build builds it)", path.display()));
        PartBackup {
            aside: path.with_extension("so.aside"),
            path,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
        }
    }

    fn restore(&self) {
        if !self.path.exists() && self.aside.exists() {
            std::fs::rename(&self.aside, &self.path).unwrap();
        }
        std::os::unix::fs::chown(&self.path, Some(self.uid), Some(self.gid)).unwrap();
        std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(self.mode)).unwrap();
    }
}

impl Drop for PartBackup {
    fn drop(&mut self) {
        let _ = std::fs::rename(&self.aside, &self.path);
        let _ = std::os::unix::fs::chown(&self.path, Some(self.uid), Some(self.gid));
        let _ = std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(self.mode));
    }
}

/// An email user's login: whether a code was sent, and the result when
/// the code from the `nth` message (or a wrong one, when none came) is
/// typed.
fn email_login(rig: &Rig, user: &str, issuer: &str, nth: usize, expect_mail: bool) -> Login {
    let mut s = rig.live_login("twostep", user, &[("rhost", "192.0.2.44"), ("tty", "ssh")]);
    let shown = s.until_prompt();
    if expect_mail {
        assert!(shown.contains("A code was sent"), "{shown}");
        let messages = wait_for_messages(&mailbox(user), issuer, nth);
        s.answer(&code_in(&messages[nth - 1]));
    } else {
        assert!(shown.contains("No code could be sent"), "{shown}");
        s.answer(&wrong_code());
    }
    s.finish()
}

/// An unenrolled user's first login under `unenrolled = "enroll"`: what
/// was shown before the prompt, and the result of typing the code of the
/// key shown (as someone would who typed the key into an app).
fn enroll_at_login(rig: &Rig, user: &str) -> (String, Login) {
    ensure_user(user, None);
    let _ = std::fs::remove_file(rig.secret_path(user));
    fresh_step(5);
    let mut s = rig.live_login("twostep", user, &[("rhost", "192.0.2.45"), ("tty", "ssh")]);
    let shown = s.until_prompt();
    let key: String = shown
        .lines()
        .map(|l| l.strip_prefix("INFO: ").unwrap_or(l))
        .find_map(|l| l.strip_prefix("Key: "))
        .unwrap_or_else(|| panic!("no key shown:\n{shown}"))
        .replace(' ', "");
    s.answer(&oath_code(&key, 0));
    (shown, s.finish())
}

#[test]
fn a_login_that_needs_a_missing_or_unsafe_part_is_denied_and_app_logins_are_not() {
    let mailer = "tsod-mail";
    let (mut rig, issuer) = email_rig(
        "ondemand",
        mailer,
        "unenrolled = \"enroll\"\n[codes]\nresend_after = \"0s\"\nmax_per_hour = 30\n\
         [policy]\nenroll_until = \"2999-01-01T00:00:00Z\"",
    );
    let apps: Vec<String> = (0..4).map(|i| format!("tsod-app{i}")).collect();
    for app in &apps {
        ensure_user(app, None);
        rig.enroll(app, SECRET);
    }
    let part = PartBackup::new();
    let other = nix::unistd::User::from_name("nobody").unwrap().unwrap();

    // The part as built: `twostep check` finds nothing, the code is
    // mailed and accepted.
    let check = rig.cli(&["check"]);
    let said = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(0), "{said}");
    assert!(!said.contains("on-demand"), "{said}");
    rig.events();
    let login = email_login(&rig, mailer, &issuer, 1, true);
    assert_eq!(login.code, PAM_SUCCESS, "{}", login.out);
    let mut sent = 1;

    type Fault = (&'static str, &'static str, fn(&PartBackup, u32));
    let faults: [Fault; 3] = [
        ("missing", "No such file", |p, _| {
            std::fs::rename(&p.path, &p.aside).unwrap()
        }),
        ("not root's", "not root", |p, uid| {
            std::os::unix::fs::chown(&p.path, Some(uid), None).unwrap()
        }),
        (
            "writable by others",
            "writable by group or others",
            |p, _| {
                std::fs::set_permissions(&p.path, std::fs::Permissions::from_mode(0o666)).unwrap()
            },
        ),
    ];
    for (i, (what, why, break_it)) in faults.iter().enumerate() {
        break_it(&part, other.uid.as_raw());
        rig.events();
        let login = email_login(&rig, mailer, &issuer, 0, false);
        assert_eq!(login.code, PAM_AUTH_ERR, "{what}: {}", login.out);
        let ev = rig.module_events();
        let failed: Vec<_> = ev
            .iter()
            .filter(|e| e.event() == "delivery_failed")
            .collect();
        assert_eq!(failed.len(), 1, "{what}: {ev:#?}");
        assert_eq!(failed[0].get("reason"), Some("part"), "{what}");
        assert_eq!(failed[0].get("method"), Some("email"), "{what}");
        let detail = failed[0].get("detail").unwrap_or_default();
        assert!(
            detail.contains(pam_twostep::ondemand::PART_PATH) && detail.contains(why),
            "{what}: the record names the part and why: {detail}"
        );
        assert_eq!(count(&ev, "code_sent"), 0, "{what}: {ev:#?}");
        // `twostep check` loads the part as a login would, and says so.
        let check = rig.cli(&["check"]);
        let said = String::from_utf8_lossy(&check.stdout);
        assert_eq!(check.status.code(), Some(2), "{what}: {said}");
        assert!(
            said.contains(pam_twostep::ondemand::PART_PATH)
                && said.contains(why)
                && said.contains(&format!("the email user {mailer}")),
            "{what}: {said}"
        );
        assert!(
            said.contains("users enrolling at login must add the key by hand"),
            "{what}: {said}"
        );
        // One problem, one finding: what it breaks, said once.
        assert_eq!(
            said.matches(pam_twostep::ondemand::PART_PATH).count(),
            1,
            "{what}: {said}"
        );
        // An app-code login beside it is untouched.
        let app = &apps[i];
        let login = rig.login(app, &oath_code(SECRET, 0));
        assert_eq!(login.code, PAM_SUCCESS, "{what}: app login: {}", login.out);
        // Enrollment at login: no QR code, the key by hand, enrolled.
        let (shown, login) = enroll_at_login(&rig, &format!("tsod-new{i}"));
        assert!(shown.contains("(No QR code here"), "{what}: {shown}");
        assert!(!shown.contains('\u{2588}'), "{what}: a drawing: {shown}");
        assert_eq!(login.code, PAM_SUCCESS, "{what}: enrollment: {}", login.out);
        part.restore();
    }
    // With the part, enrollment at login shows the QR code.
    let (shown, login) = enroll_at_login(&rig, "tsod-new3");
    assert!(
        shown.contains('\u{2588}') && !shown.contains("No QR code"),
        "{shown}"
    );
    assert_eq!(login.code, PAM_SUCCESS, "{}", login.out);

    // Put right, the part sends again.
    sent += 1;
    let login = email_login(&rig, mailer, &issuer, sent, true);
    assert_eq!(login.code, PAM_SUCCESS, "{}", login.out);
    let login = rig.login(&apps[3], &oath_code(SECRET, 0));
    assert_eq!(login.code, PAM_SUCCESS, "{}", login.out);
    drop(part);
    assert!(Path::new(pam_twostep::ondemand::PART_PATH).exists());
}
