//! Memory checks: the built module, loaded by the real libpam in pamdrive,
//! under valgrind's memcheck, through every path a login can take: a right
//! code, a wrong code, a replay, lockout and a locked user, the canonical
//! stack with pam_unix (preauth, authfail), an unknown and an invalid user
//! name, a recovery code, enrollment at login, a damaged state file and a
//! broken config.
//!
//! Each run must show no invalid read or write, no use of uninitialised
//! memory, and no definite leak. tests/valgrind.supp holds the suppressions
//! (leaks of libpam or libc internals, each explained); nothing of the
//! module's may be suppressed there.
//!
//! Needs valgrind (apt: valgrind); tests/run-all.sh installs it.

mod common;
use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

const PASSWORD: &str = "correct horse 42";
/// valgrind's exit status when it found an error; pamdrive's own statuses
/// are PAM codes (0..=31).
const VALGRIND_ERROR: i32 = 99;

/// pamdrive under memcheck, answering each prompt with the next answer;
/// `live` computes an answer from what was shown so far (enrollment).
fn memcheck(
    rig: &Rig,
    service: &str,
    user: &str,
    answers: &[&str],
    live: Option<&dyn Fn(&str) -> String>,
) -> Login {
    let supp = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/valgrind.supp");
    static RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let log = rig.root.join(format!("valgrind-{run}.log"));
    let mut child = Command::new("valgrind")
        .args([
            "--tool=memcheck",
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
            "--show-leak-kinds=definite",
            "--track-origins=yes",
            "--num-callers=30",
        ])
        .arg(format!("--suppressions={}", supp.display()))
        .arg(format!("--log-file={}", log.display()))
        .arg(pamdrive())
        .arg("--confdir")
        .arg(&rig.confdir)
        .args(["--service", service, "--user", user, "--nodelay"])
        .args(["--rhost", "192.0.2.44", "--tty", "ssh"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("valgrind (apt-get install valgrind)");
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    let mut given = answers.iter();
    loop {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            break;
        }
        seen.push_str(&line);
        if line.starts_with("PROMPT_") {
            let answer = match given.next() {
                Some(a) => a.to_string(),
                None => live.map(|f| f(&seen)).unwrap_or_default(),
            };
            let _ = writeln!(stdin, "{answer}");
        }
    }
    drop(stdin);
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    seen.push_str(&rest);
    let code = child.wait().unwrap().code().unwrap_or(-1);
    let report = std::fs::read_to_string(&log).unwrap_or_default();
    assert_ne!(
        code, VALGRIND_ERROR,
        "memcheck found errors ({service}, {user}):\n{report}"
    );
    assert!(
        report.contains("ERROR SUMMARY: 0 errors"),
        "memcheck ({service}, {user}):\n{report}"
    );
    assert!(
        !report.contains("definitely lost: ") || report.contains("definitely lost: 0 bytes"),
        "{report}"
    );
    Login { code, out: seen }
}

fn have_valgrind() {
    let ok = Command::new("valgrind")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(ok, "valgrind is missing: apt-get install valgrind");
}

#[test]
fn code_step_paths_under_memcheck() {
    have_valgrind();
    let u = "ts-vg-user";
    ensure_user(u, Some(PASSWORD));
    let mut rig = Rig::new(
        "vg-code",
        "[lockout]\ntiers = [{failures = 3, lock = \"1h\"}]",
    );
    let codes: Vec<String> = rig.enroll_json_secret(u, SECRET, &[])["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();

    fresh_step(10);
    let code = oath_code(SECRET, 0);
    let l = memcheck(&rig, "twostep", u, &[&code], None);
    assert_eq!(l.code, PAM_SUCCESS, "right code: {}", l.out);
    let l = memcheck(&rig, "twostep", u, &[&code], None);
    assert_eq!(l.code, PAM_AUTH_ERR, "replay: {}", l.out);
    let l = memcheck(&rig, "twostep", u, &[&codes[0]], None);
    assert_eq!(l.code, PAM_SUCCESS, "recovery code: {}", l.out);
    // The canonical stack: wrong password (preauth, pam_unix, authfail),
    // then a wrong code after the right password: the third failure locks.
    let l = memcheck(&rig, "stack", u, &["wrong password"], None);
    assert_eq!(l.code, PAM_AUTH_ERR, "wrong password: {}", l.out);
    let l = memcheck(&rig, "twostep", u, &["000000"], None);
    assert_eq!(l.code, PAM_AUTH_ERR, "wrong code: {}", l.out);
    let l = memcheck(&rig, "stack", u, &[PASSWORD, "12345"], None);
    assert_eq!(l.code, PAM_AUTH_ERR, "locking failure: {}", l.out);
    assert!(l.out.contains("locked until"), "{}", l.out);
    // Locked: preauth refuses before the password; the code step too.
    let l = memcheck(&rig, "stack", u, &[], None);
    assert_eq!((l.code, l.prompts()), (PAM_AUTH_ERR, 0), "{}", l.out);
    let l = memcheck(&rig, "twostep", u, &[], None);
    assert_eq!((l.code, l.prompts()), (PAM_AUTH_ERR, 0), "{}", l.out);

    // Unknown and invalid names.
    let l = memcheck(&rig, "twostep", "ts-vg-nobody", &["000000"], None);
    assert_eq!(l.code, PAM_AUTH_ERR);
    let l = memcheck(&rig, "twostep", "-rf /", &["000000"], None);
    assert_eq!(l.code, PAM_AUTH_ERR);
    // A damaged state file, then a broken config.
    std::fs::write(rig.state_path(u), b"garbage").unwrap();
    let l = memcheck(&rig, "twostep", u, &[], None);
    assert_eq!(l.code, PAM_AUTH_ERR);
    rig.write_config("[totp]\ndigits = 9");
    let l = memcheck(&rig, "twostep", u, &[], None);
    assert_eq!(l.code, PAM_AUTH_ERR);
    assert!(
        rig.events()
            .iter()
            .any(|e| e.get("reason") == Some("config"))
    );
}

#[test]
fn enrollment_at_login_under_memcheck() {
    have_valgrind();
    let u = "ts-vg-enroll";
    ensure_user(u, None);
    let rig = Rig::new("vg-enroll", "unenrolled = \"enroll\"\nissuer = \"VG\"");
    let from_shown = |seen: &str| {
        let at = seen.find("otpauth://").expect("a URI is shown");
        let uri = seen[at..].split_whitespace().next().unwrap();
        let secret = url::Url::parse(uri)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "secret")
            .map(|(_, v)| v.into_owned())
            .unwrap();
        oath_code(&secret, 0)
    };
    // A wrong code writes nothing; a right one enrolls.
    fresh_step(15);
    let l = memcheck(&rig, "twostep", u, &["000000"], None);
    assert_eq!(l.code, PAM_AUTH_ERR, "{}", l.out);
    assert!(!rig.secret_path(u).exists());
    let l = memcheck(&rig, "twostep", u, &[], Some(&from_shown));
    assert_eq!(l.code, PAM_SUCCESS, "{}", l.out);
    assert!(rig.secret_path(u).exists());
}
