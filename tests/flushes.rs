//! What a login costs the disk, counted through the real libpam, the real
//! pam_unix and a real user: the flushes (fdatasync, fsync, syncfs) the
//! process asks for, seen by an LD_PRELOAD interposer (tests/c/synccount.c).
//!
//! The canonical stack (preauth, pam_unix, authfail, the code step) flushes
//! once per login, whatever its end: `preauth`'s reservation is written
//! before the password is checked and flushed with the outcome. A name that
//! is not an account costs the same flush as an account's wrong password,
//! so that the time taken does not tell them apart.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const PASSWORD: &str = "flush horse 42";

fn interposer() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/synccount.c");
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("synccount.so");
        let status = Command::new("cc")
            .args([
                "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-o",
            ])
            .arg(&out)
            .arg(&src)
            .arg("-ldl")
            .status()
            .expect("cc");
        assert!(status.success(), "compiling synccount.c failed");
        out
    })
}

/// The flushes of one login through `service` as `user`, typing `answers`.
fn flushes(rig: &Rig, service: &str, user: &str, answers: &[&str]) -> (Login, Vec<String>) {
    let log = rig
        .root
        .join(format!("syncs-{service}-{user}-{}", answers.len()));
    let _ = std::fs::remove_file(&log);
    let mut cmd = rig.login_command(&[], service, user, &[("rhost", "192.0.2.77")]);
    cmd.env("LD_PRELOAD", interposer())
        .env("SYNCCOUNT_LOG", &log);
    let login = run_login(cmd, answers);
    let calls = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    (login, calls)
}

#[test]
fn a_login_through_the_canonical_stack_flushes_once_whatever_its_end() {
    let u = "ts-flush-one";
    ensure_user(u, Some(PASSWORD));
    let rig = Rig::new("flushes", "");
    rig.enroll(u, SECRET);
    // The decoy's state file is made at the first unknown name (with the
    // flushes of a new file), as an account's is at enrollment.
    let (warm, _) = flushes(&rig, "stack", "ts-flush-nobody", &["wrong"]);
    assert_eq!(warm.code, PAM_AUTH_ERR, "{}", warm.out);

    // (what, user, answers, the result)
    let cases: [(&str, &str, Vec<String>, i32); 4] = [
        (
            "password and code right",
            u,
            vec![PASSWORD.into(), oath_code(SECRET, 0)],
            PAM_SUCCESS,
        ),
        (
            "password right, code wrong",
            u,
            vec![PASSWORD.into(), wrong_code()],
            PAM_AUTH_ERR,
        ),
        ("password wrong", u, vec!["wrong".into()], PAM_AUTH_ERR),
        (
            "no such account",
            "ts-flush-nobody",
            vec!["wrong".into()],
            PAM_AUTH_ERR,
        ),
    ];
    for (what, user, answers, want) in &cases {
        if *want == PAM_SUCCESS {
            fresh_step(5);
        }
        let answers: Vec<&str> = answers.iter().map(String::as_str).collect();
        let (login, calls) = flushes(&rig, "stack", user, &answers);
        assert_eq!(login.code, *want, "{what}: {}", login.out);
        assert_eq!(calls, ["fdatasync"], "{what}: the flushes asked for");
    }
    // The count was written, and kept on disk by that one flush: the two
    // failures of the account stand (the unknown name's left nothing).
    let status = rig.status_json(u);
    assert_eq!(status["failures"], 2, "{status}");
}
