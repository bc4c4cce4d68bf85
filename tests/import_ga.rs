//! `twostep import-google-authenticator` with files written by Debian's real
//! `google-authenticator` command, then logins through the real module with
//! oathtool codes and the file's scratch codes.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const USER: &str = "ts-ga";

fn rig(name: &str) -> Rig {
    ensure_user(USER, None);
    Rig::new(name, "")
}

/// Runs google-authenticator(1) non-interactively, writing `path`.
fn google_authenticator(path: &Path, flags: &[&str]) {
    let out = Command::new("google-authenticator")
        .args(["-f", "-q", "-Q", "NONE", "-C", "-s"])
        .arg(path)
        .args(flags)
        .output()
        .expect("google-authenticator (apt-get install libpam-google-authenticator)");
    assert!(
        out.status.success(),
        "google-authenticator {flags:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct GaFile {
    secret: String,
    scratch: Vec<String>,
}

fn read_ga(path: &Path) -> GaFile {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let secret = lines.next().unwrap().to_string();
    let scratch = lines
        .filter(|l| l.len() == 8 && l.bytes().all(|b| b.is_ascii_digit()))
        .map(String::from)
        .collect();
    GaFile { secret, scratch }
}

fn import(rig: &Rig, args: &[&str]) -> std::process::Output {
    let mut all = vec!["import-google-authenticator"];
    all.extend_from_slice(args);
    rig.cli(&all)
}

#[test]
fn a_real_file_logs_in_with_its_secret_and_a_scratch_code_once() {
    let mut rig = rig("ga-real");
    let path = rig.root.join("ga");
    google_authenticator(
        &path,
        &["-t", "-d", "-r", "3", "-R", "30", "-w", "3", "-e", "5"],
    );
    let ga = read_ga(&path);
    assert_eq!(ga.scratch.len(), 5);
    let before = std::fs::read(&path).unwrap();
    rig.events();
    let out = import(&rig, &[USER, path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("5, now recovery codes"), "{text}");
    assert!(text.contains("RATE_LIMIT 3 per 30s"), "{text}");
    // The file is left as it was; no scratch code or secret is printed.
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert!(!text.contains(&ga.secret) && !text.contains(&ga.scratch[0]));
    let ev: Vec<Event> = rig
        .events()
        .into_iter()
        .filter(|e| e.event() == "enrolled")
        .collect();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].keys(), ["event", "user", "by"]);
    // The same secret, with SHA1/6/30 written out; scratch codes only hashed.
    let stored = std::fs::read_to_string(rig.secret_path(USER)).unwrap();
    assert!(stored.contains(&format!("secret = \"{}\"", ga.secret)));
    assert!(stored.contains("digits = 6") && stored.contains("period = 30"));
    assert!(stored.contains("algorithm = \"SHA1\""));
    assert_eq!(rig.stored_recovery_hashes(USER).len(), 5);
    for code in &ga.scratch {
        assert!(files_containing(&rig.secret_dir, code).is_empty());
        assert!(files_containing(&rig.state_dir, code).is_empty());
    }

    // A code from oathtool for the file's secret.
    fresh_step(3);
    let login = rig.login(USER, &oath_code(&ga.secret, 0));
    assert_eq!(login.code, PAM_SUCCESS, "{}", login.out);
    assert_eq!(rig.events()[0].get("method"), Some("totp"));
    // A scratch code: once.
    let login = rig.login(USER, &ga.scratch[2]);
    assert_eq!(login.code, PAM_SUCCESS, "{}", login.out);
    assert_eq!(rig.events()[0].get("method"), Some("recovery"));
    let again = rig.login(USER, &ga.scratch[2]);
    assert_eq!(again.code, PAM_AUTH_ERR, "{}", again.out);
    assert_eq!(rig.events()[0].get("reason"), Some("bad_code"));
    assert_eq!(rig.stored_recovery_hashes(USER).len(), 4);

    // Importing again needs --force.
    let out = import(&rig, &[USER, path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
}

#[test]
fn step_size_and_window_are_carried_over_or_reported() {
    let mut rig = rig("ga-step");
    let path = rig.root.join("ga");
    // 60-second steps, a window of 5 (2 steps either side), reuse allowed.
    google_authenticator(&path, &["-t", "-D", "-u", "-S", "60", "-w", "5", "-e", "2"]);
    let ga = read_ga(&path);
    let out = import(&rig, &[USER, path.to_str().unwrap()]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("every 60 seconds"), "{text}");
    // The contract has no per-user window: the admin is told.
    assert!(
        text.contains("accepted codes 2 steps away") && text.contains("totp.skew = 1"),
        "{text}"
    );
    assert!(text.contains("now refused"), "{text}");
    let stored = std::fs::read_to_string(rig.secret_path(USER)).unwrap();
    assert!(stored.contains("period = 60"), "{stored}");
    loop {
        if 60 - now() % 60 > 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    rig.events();
    let code = oath_code_at(&ga.secret, now(), "SHA1", 6, 60);
    let login = rig.login(USER, &code);
    assert_eq!(login.code, PAM_SUCCESS, "{}", login.out);
}

#[test]
fn the_users_own_file_is_the_default() {
    let rig = rig("ga-home");
    let home = PathBuf::from(format!("/tmp/twostep-gahome-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(&home).unwrap();
    let st = Command::new("usermod")
        .args(["-d", home.to_str().unwrap(), USER])
        .status()
        .unwrap();
    assert!(st.success());
    let path = home.join(".google_authenticator");
    google_authenticator(&path, &["-t", "-d", "-u", "-w", "3", "-e", "1"]);
    let uid = nix::unistd::User::from_name(USER).unwrap().unwrap().uid;
    std::os::unix::fs::chown(&path, Some(uid.as_raw()), None).unwrap();
    let out = import(&rig, &[USER]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(path.to_str().unwrap()));
    assert!(rig.secret_path(USER).exists());
    let _ = Command::new("usermod")
        .args(["-d", &format!("/home/{USER}"), USER])
        .status();
    let _ = std::fs::remove_dir_all(&home);
}

#[test]
fn files_that_cannot_be_imported_write_nothing() {
    let rig = rig("ga-refused");
    let dir = &rig.root;
    let hotp = dir.join("hotp");
    google_authenticator(&hotp, &["-c", "-u", "-w", "3"]);
    let base = dir.join("base");
    google_authenticator(&base, &["-t", "-d", "-u", "-w", "3"]);
    let text = std::fs::read_to_string(&base).unwrap();
    let write = |name: &str, body: &str, mode: u32| {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    };
    let readable = write("readable", &text, 0o644);
    let short = write(
        "short",
        &text.replacen(text.lines().next().unwrap(), "JBSWY3DPEHPK3PXP", 1),
        0o400,
    );
    let garbage = write("garbage", &format!("{text}not a code\n"), 0o400);
    let link = dir.join("link");
    std::os::unix::fs::symlink(&base, &link).unwrap();
    let other = write("other", &text, 0o400);
    std::os::unix::fs::chown(&other, Some(65534), None).unwrap();
    let cases: [(&Path, &str); 7] = [
        (&hotp, "HOTP"),
        (&readable, "mode 0644"),
        (&short, "80 bits"),
        (&garbage, "neither an option nor"),
        (&link, "symbolic link"),
        (&other, "owned by uid 65534"),
        (Path::new("/nonexistent/ga"), "No such file"),
    ];
    for (path, want) in cases {
        let out = import(&rig, &[USER, path.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {err}", path.display());
        assert!(err.contains(want), "{}: {err}", path.display());
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!rig.secret_path(USER).exists(), "{}", path.display());
    }
    assert!(rig.secret_files().is_empty());
}
