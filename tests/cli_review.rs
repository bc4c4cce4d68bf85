//! The defects a security review found in the CLI and the syslog records,
//! each reproduced through the real binary, the real module and libpam:
//! a secret on the command line, raw control characters from users' files on
//! root's terminal, a replay block after the clock was set forward that
//! `unlock` did not clear, records lost on a stream syslog socket, and a
//! `check` that passed a secret_dir without its marker.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};

const USER: &str = "ts-review";

fn rig(name: &str) -> Rig {
    ensure_user(USER, None);
    Rig::new(name, "")
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The forms a person might write the secret in: none may show.
fn secret_forms() -> [String; 3] {
    [
        SECRET.to_string(),
        SECRET.to_lowercase(),
        SECRET[..8].to_string(),
    ]
}

// ---- enroll --secret-file: the secret never on the command line ----------------

#[test]
fn a_secret_on_stdin_enrolls_and_the_module_accepts_its_codes() {
    let mut rig = rig("rev-stdin");
    let out = rig.cli_stdin(
        &[
            "enroll",
            USER,
            "--secret-file",
            "-",
            "--no-confirm",
            "--qr",
            "none",
            "--json",
        ],
        "  gezd gnbv gy3t qojq gezd gnbv gy3t qojq \n\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["secret"], SECRET);
    fresh_step(3);
    let login = rig.login(USER, &oath_code(SECRET, 0));
    assert_eq!(login.code, PAM_SUCCESS, "{}", login.out);
    assert!(rig.module_events().iter().any(|e| e.event() == "auth_ok"));
}

#[test]
fn a_secret_file_enrolls_and_a_loose_mode_is_warned_about() {
    let rig = rig("rev-file");
    let file = rig.root.join("alice.b32");
    std::fs::write(&file, format!("{SECRET}\n")).unwrap();
    let enroll = |path: &std::path::Path| {
        rig.cli(&[
            "enroll",
            USER,
            "--secret-file",
            path.to_str().unwrap(),
            "--no-confirm",
            "--qr",
            "none",
            "--force",
            "--json",
        ])
    };
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = enroll(&file);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["secret"], SECRET);
    // Readable by others: used, with a warning that names the mode.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = enroll(&file);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("warning") && stderr(&out).contains("0644"),
        "{}",
        stderr(&out)
    );
    // Not a secret: too large, not base32, missing. Exit 2, input not quoted.
    let big = rig.root.join("big");
    std::fs::write(&big, "A".repeat(5000)).unwrap();
    let bad = rig.root.join("bad");
    std::fs::write(&bad, "not base32 GEZDGNBV!\n").unwrap();
    for path in [big, bad, rig.root.join("missing")] {
        let out = enroll(&path);
        assert_eq!(out.status.code(), Some(2), "{path:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("GEZDGNBV"), "{}", stderr(&out));
        assert!(!stderr(&out).contains("AAAAAAAA"), "{}", stderr(&out));
    }
}

#[test]
fn the_secret_option_is_gone() {
    let rig = rig("rev-nosecret");
    for args in [
        vec!["enroll", USER, "--secret", SECRET, "--no-confirm"],
        vec![
            "enroll",
            USER,
            &format!("--secret={SECRET}"),
            "--no-confirm",
        ],
    ] {
        let out = rig.cli(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
    assert!(!rig.secret_path(USER).exists());
    let help = stdout(&rig.cli(&["enroll", "--help"]));
    assert!(help.contains("--secret-file"), "{help}");
    assert!(!help.contains("--secret "), "{help}");
}

/// Without a controlling terminal (setsid), standard input that held the
/// secret cannot also give the app's code: a clear usage error.
#[test]
fn a_secret_on_stdin_needs_a_terminal_for_the_code_or_no_confirm() {
    let rig = rig("rev-notty");
    let mut child = Command::new("setsid")
        .arg("--wait")
        .arg(twostep_bin())
        .arg("--config")
        .arg(&rig.config)
        .args(["enroll", USER, "--secret-file", "-", "--qr", "none"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let _ = child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{SECRET}\n").as_bytes());
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("--no-confirm") && err.contains("terminal"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        secret_forms()
            .iter()
            .all(|f| !stdout(&out).contains(f.as_str())),
        "nothing is shown before the error"
    );
    assert!(!rig.secret_path(USER).exists());
}

/// Runs `spawn` on a real pty with the dialogue `body`; checks that it
/// succeeded and returns what expect printed.
fn on_a_pty(spawn: &str, body: &str) -> String {
    let out = expect_script(&pty_script(spawn, body));
    let text = stdout(&out);
    assert!(text.contains("EXIT=0 "), "{text}{}", stderr(&out));
    text
}

/// The rest of the line after `KEY=` in what an expect script printed.
fn printed<'a>(text: &'a str, key: &str) -> &'a str {
    let after = text.split(&format!("{key}=")).nth(1);
    after.and_then(|a| a.lines().next()).unwrap_or("")
}

/// The secret comes from a redirected stdin; the code is typed on the
/// terminal (/dev/tty) while the test reads the waiting process's argv.
#[test]
fn the_secret_is_not_in_argv_while_enroll_waits_for_the_code() {
    let mut rig = rig("rev-argv");
    let file = rig.root.join("s");
    std::fs::write(&file, SECRET).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    fresh_step(5);
    let text = on_a_pty(
        &format!(
            r#"sh -c "exec {bin} --config {config} enroll {USER} --qr none --secret-file - < {file}""#,
            bin = twostep_bin().display(),
            config = rig.config.display(),
            file = file.display(),
        ),
        &format!(
            r#"
set pid [exp_pid]
expect {{
    "Code from the app" {{}}
    timeout {{ puts "NO PROMPT"; exit 3 }}
}}
set f [open /proc/$pid/cmdline]
fconfigure $f -translation binary
set argv [string map {{"\0" " "}} [read $f]]
close $f
puts "\nARGV=$argv"
send "[exec oathtool --totp -b {SECRET}]\r"
expect {{
    "Code accepted" {{}}
    timeout {{ puts "NOT ACCEPTED"; exit 3 }}
}}"#
        ),
    );
    let argv = printed(&text, "ARGV");
    assert!(argv.contains("--secret-file -"), "{argv}");
    for form in secret_forms() {
        assert!(
            !argv.contains(form.as_str()),
            "the secret is in argv: {argv}"
        );
    }
    assert!(rig.events().iter().any(|e| e.event() == "enrolled"));
    let stored = std::fs::read_to_string(rig.secret_path(USER)).unwrap();
    assert!(stored.contains(SECRET));
}

/// `--secret-file -` on a terminal: asked like a password, not echoed.
#[test]
fn a_secret_typed_on_the_terminal_is_not_echoed() {
    let rig = rig("rev-typed");
    fresh_step(5);
    let text = on_a_pty(
        &format!(
            "{bin} --config {config} enroll {USER} --qr none --secret-file -",
            bin = twostep_bin().display(),
            config = rig.config.display(),
        ),
        &format!(
            r#"
expect {{
    "Secret key" {{}}
    timeout {{ puts "NO PROMPT"; exit 3 }}
}}
send "{typed}\r"
expect "Enrolling"
puts "\nECHOED=<[string map {{"\n" " " "\r" " "}} $expect_out(buffer)]>"
expect "Code from the app"
send "[exec oathtool --totp -b {SECRET}]\r"
expect "Recovery codes for""#,
            typed = SECRET.to_lowercase(),
        ),
    );
    let echoed = printed(&text, "ECHOED");
    assert!(echoed.ends_with("Enrolling>"), "{echoed}");
    for form in secret_forms() {
        assert!(!echoed.contains(form.as_str()), "echoed: {echoed}");
    }
    assert!(rig.secret_path(USER).exists());
}

// ---- text from users' files and directory listings is escaped ------------------

/// The control bytes (C0 but newline, DEL, C1 as UTF-8 or raw) in `text`.
fn raw_controls(text: &[u8]) -> Vec<u8> {
    let c1_in_utf8 = text
        .windows(2)
        .filter(|w| w[0] == 0xc2 && (0x80..=0x9f).contains(&w[1]))
        .map(|w| w[1]);
    text.iter()
        .copied()
        .filter(|&b| (b < 0x20 && b != b'\n') || b == 0x7f)
        .chain(c1_in_utf8)
        .collect()
}

/// clap quotes a bad argument raw when stderr is a terminal.
#[test]
fn usage_errors_on_a_terminal_do_not_replay_an_arguments_control_characters() {
    let rig = rig("rev-clap-esc");
    let out = expect_script(&pty_script(
        &format!(
            r#"{bin} --config {config} enroll {USER} --qr "x\x1b\[2J\x07\x1b\]0;pwned\x07""#,
            bin = twostep_bin().display(),
            config = rig.config.display(),
        ),
        "",
    ));
    let text = stdout(&out);
    assert!(text.contains("EXIT=2 "), "{text}");
    // What the command wrote: after expect's own echo of the spawn line.
    let written = text.split_once('\n').unwrap().1.replace("\r\n", "\n");
    let found = raw_controls(written.as_bytes());
    assert!(found.is_empty(), "raw {found:02x?} in {written:?}");
    assert!(written.contains("invalid value"), "{written}");
}

fn assert_no_raw_controls(out: &std::process::Output) {
    for (name, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let found = raw_controls(text);
        assert!(
            found.is_empty(),
            "raw control bytes {found:02x?} in {name}: {:?}",
            String::from_utf8_lossy(text)
        );
    }
}

/// A directory whose name holds an escape sequence, a bell and a carriage
/// return, as a user's home might.
fn hostile_dir(rig: &Rig) -> std::path::PathBuf {
    let dir = rig.root.join("home\x1b[31m\x07\r");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn private_file(path: &std::path::Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn import_ga_escapes_what_the_users_file_holds() {
    let rig = rig("rev-ga-esc");
    let file = hostile_dir(&rig).join(".google_authenticator");
    // An unknown option whose name is an escape sequence (colour, window
    // title), a bell, DEL and a C1 CSI; and a carriage return mid-line.
    private_file(
        &file,
        format!(
            "{SECRET}\n\" TOTP_AUTH\n\" \x1b[31mEVIL\x07\x1b]0;pwned\x07\x7f\u{9b}2J 1\r2\n\
             \" WINDOW_SIZE 3\n"
        )
        .as_bytes(),
    );
    let out = rig.cli(&["import-google-authenticator", USER, file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_no_raw_controls(&out);
    let text = stdout(&out);
    assert!(
        text.contains(r"\x1b[31mEVIL\x07\x1b]0;pwned\x07\x7f\u{9b}2J"),
        "{text}"
    );
    assert!(text.contains(r"home\x1b[31m\x07\x0d"), "the path: {text}");

    // A line that is no option and no scratch code: refused, and the error
    // names the path escaped (and never quotes the file).
    private_file(
        &file,
        format!("{SECRET}\n\" TOTP_AUTH\n\x1b[2J\x07\rwhoops\x1b[0m\n").as_bytes(),
    );
    let out = rig.cli(&[
        "import-google-authenticator",
        USER,
        file.to_str().unwrap(),
        "--force",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_no_raw_controls(&out);
    let err = stderr(&out);
    assert!(err.contains(r"home\x1b[31m\x07\x0d"), "{err}");
    assert!(!err.contains("whoops"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn status_and_errors_escape_names_from_directories_and_arguments() {
    use std::os::unix::ffi::OsStrExt;
    let rig = rig("rev-status-esc");
    rig.enroll(USER, SECRET);
    for dir in [&rig.state_dir, &rig.secret_dir] {
        for name in [&b"evil\x1b[2J\x07\r"[..], b"bad\x9b\xff\x1b]0;x\x07"] {
            let path = dir.join(std::ffi::OsStr::from_bytes(name));
            private_file(&path, b"\x1b[31m");
        }
    }
    for args in [vec!["status"], vec!["status", "--json"]] {
        let out = rig.cli(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert_no_raw_controls(&out);
        assert!(stdout(&out).contains(USER), "{}", stdout(&out));
    }
    // A name given on the command line: quoted escaped.
    for args in [
        vec!["status", "\x1b]0;pwned\x07"],
        vec!["unlock", "a\x1b[2Jb"],
    ] {
        let out = rig.cli(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert_no_raw_controls(&out);
        assert!(stderr(&out).contains(r"\x1b"), "{}", stderr(&out));
    }
}

#[test]
fn batch_enrollment_escapes_the_names_it_could_not_enroll() {
    let rig = rig("rev-batch-esc");
    let list = rig.root.join("team.txt");
    private_file(&list, format!("{USER}\nmallory\x1b[2J\x07\n").as_bytes());
    let out = rig.enroll_batch(&list, &rig.root.join("out"), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_no_raw_controls(&out);
    assert!(
        stdout(&out).contains(r"mallory\x1b[2J\x07"),
        "{}",
        stdout(&out)
    );
}

// ---- unlock clears a last step left in the future by a clock set forward ----

#[test]
fn unlock_clears_a_last_step_left_in_the_future_by_a_clock_set_forward() {
    let mut rig = rig("rev-future");
    rig.enroll(USER, SECRET);
    // The clock a year ahead: a right code for then logs in, and its step
    // becomes the last one used.
    fresh_step(6);
    let ahead = now() + 365 * 86_400;
    let l = login_at(
        &rig,
        USER,
        &oath_code_at(SECRET, ahead, "SHA1", 6, 30),
        ahead,
    );
    assert_eq!(l.code, PAM_SUCCESS, "{}", l.out);
    // The clock set right again: every right code is refused as a replay.
    let l = rig.login(USER, &oath_code(SECRET, 0));
    assert_eq!(l.code, PAM_AUTH_ERR, "{}", l.out);
    let ev = rig.module_events();
    assert!(
        ev.iter().any(|e| e.get("reason") == Some("replay")),
        "{ev:?}"
    );

    let out = rig.cli(&["unlock", USER]);
    assert!(out.status.success(), "{}", stderr(&out));
    let cleared = rfc3339(ahead - ahead % 30);
    assert!(stdout(&out).contains(&cleared), "{}", stdout(&out));
    let ev: Vec<Event> = rig
        .events()
        .into_iter()
        .filter(|e| e.event() == "unlocked")
        .collect();
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].keys(), ["event", "user", "by", "future_step_cleared"]);
    assert_eq!(ev[0].get("future_step_cleared"), Some(cleared.as_str()));

    fresh_step(3);
    let code = oath_code(SECRET, 0);
    let l = rig.login(USER, &code);
    assert_eq!(l.code, PAM_SUCCESS, "{}", l.out);
    // A last step that is not in the future stays: the code just used is
    // still refused, and the record and output say nothing of it.
    let out = rig.cli(&["unlock", USER]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 1, "{}", stdout(&out));
    let ev = rig.events();
    let unlocked = ev.iter().find(|e| e.event() == "unlocked").unwrap();
    assert_eq!(unlocked.keys(), ["event", "user", "by"]);
    assert_eq!(rig.login(USER, &code).code, PAM_AUTH_ERR);
}

// ---- records reach a stream syslog socket ----------------------------------------

#[test]
fn records_reach_a_stream_syslog_socket_nul_terminated() {
    ensure_user(USER, None);
    let mut rig = Rig::with_log("rev-stream", "", LogSocket::Stream);
    rig.enroll(USER, SECRET);
    fresh_step(3);
    let code = oath_code(SECRET, 0);
    assert_eq!(rig.login(USER, &code).code, PAM_SUCCESS);
    assert_eq!(rig.login(USER, &code).code, PAM_AUTH_ERR);
    let raw = rig.drain();
    // Each record whole, ended by its NUL, in glibc's format.
    for r in &raw {
        assert!(
            r.starts_with("<8") && !r.starts_with("UNTERMINATED"),
            "{r:?}"
        );
    }
    let events: Vec<(String, String)> = raw
        .iter()
        .map(|r| Event::parse(r))
        .map(|e| (e.tag.clone(), e.event().to_string()))
        .collect();
    let want = [
        ("twostep", "enrolled"),
        ("pam_twostep", "auth_ok"),
        ("pam_twostep", "auth_fail"),
    ]
    .map(|(t, e)| (t.to_string(), e.to_string()));
    assert_eq!(events, want);
}

// ---- check reports a secret_dir without its marker -------------------------------

#[test]
fn check_reports_a_secret_dir_without_its_marker() {
    let rig = rig("rev-marker");
    let marker = rig.secret_dir.join(".twostep-secret-dir");
    // A secret_dir as an empty volume mounted over it would leave it (the
    // rig makes the marker, as the package does).
    std::fs::remove_file(&marker).unwrap();
    let out = rig.cli(&["check"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let problems: Vec<String> = stdout(&out).lines().map(String::from).collect();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains(".twostep-secret-dir")
            && problems[0].contains(rig.secret_dir.to_str().unwrap()),
        "{problems:?}"
    );
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));

    // Something else in its place is no marker either.
    std::fs::create_dir(&marker).unwrap();
    let out = rig.cli(&["check"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("not a regular file"),
        "{}",
        stdout(&out)
    );
    std::fs::remove_dir(&marker).unwrap();

    // Every enrollment makes it: then all is well.
    rig.enroll(USER, SECRET);
    assert!(marker.is_file());
    let out = rig.cli(&["check"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}
