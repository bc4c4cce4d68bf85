//! The admin command's part of codes by email and text message, through the
//! real `twostep` binary: `enroll --method email|sms` confirmed by the code
//! read back from a real mailbox (exim4's sendmail, /var/mail) or from what a
//! recording SMS command was given, typed on a real pty (expect) or a pipe;
//! the addresses and numbers refused; `status` showing the method;
//! `send-test`; the notices an admin's enroll, reset, unlock and
//! recovery-codes mail; and `check` judging the programs that send.
//!
//! Needs root (a mail user with a home, root-owned programs) and the `test`
//! packages of packages.sh (exim4-daemon-light, expect, python3). Each test
//! has an issuer of its own, so that the subjects it waits for are its own
//! in the shared mailbox.

mod common;
use common::mail::{code_in, ensure_mail_user, mailbox, parsed_messages, wait_for_messages};
use common::*;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const USER: &str = "ts-clicodes";
const PHONE: &str = "+4915112345678";

/// A rig whose issuer is unique to this test and run, with `extra` config.
fn rig(name: &str, extra: &str) -> Rig {
    ensure_mail_user(USER);
    let rig = Rig::new(name, "");
    configure(&rig, extra);
    rig
}

/// Rewrites the rig's config: its issuer, then `extra`.
fn configure(rig: &Rig, extra: &str) {
    rig.write_config(&format!("issuer = \"{}\"\n{extra}", issuer(rig)));
}

fn issuer(rig: &Rig) -> String {
    let name = rig.root.file_name().unwrap().to_string_lossy();
    name.trim_start_matches("twostep-test-").to_string()
}

/// The messages to USER whose subject is `what` (after the issuer).
fn mails(rig: &Rig, what: &str, n: usize) -> Vec<serde_json::Value> {
    wait_for_messages(&mailbox(USER), &format!("{}: {what}", issuer(rig)), n)
}

const TEMPLATE: &str = "[email]\naddress = \"{user}@localhost\"\n";

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn secret_toml(rig: &Rig) -> toml::Table {
    std::fs::read_to_string(rig.secret_path(USER))
        .unwrap()
        .parse()
        .unwrap()
}

/// A code of the same length that is not `code`.
fn other_than(code: &str) -> String {
    let first = code.as_bytes()[0] - b'0';
    format!("{}{}", (first + 1) % 10, &code[1..])
}

/// `twostep enroll USER --no-confirm --qr none EXTRA`.
fn enroll(rig: &Rig, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["enroll", USER, "--no-confirm", "--qr", "none"];
    args.extend_from_slice(extra);
    rig.cli(&args)
}

/// Types `lines` into a running command and waits for it.
fn answer(mut child: Child, lines: &[&str]) -> std::process::Output {
    {
        let mut stdin = child.stdin.take().unwrap();
        for l in lines {
            let _ = writeln!(stdin, "{l}");
        }
    }
    child.wait_with_output().unwrap()
}

/// A root-owned program in a root-owned 0700 directory of the rig, as
/// `program_problem` wants it.
fn program(rig: &Rig, name: &str, body: &str, mode: u32) -> PathBuf {
    let dir = rig.root.join("bin");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

/// An SMS command that keeps each message it is given as a file in
/// `<rig>/sms/`: its argv, one a line, then `--`, then its stdin.
fn recording_sms(rig: &Rig) -> PathBuf {
    let out = rig.root.join("sms");
    std::fs::create_dir_all(&out).unwrap();
    program(
        rig,
        "sms",
        &format!(
            "out={out}\n\
             {{ printf '%s\\n' \"$@\"; echo --; cat; }} > \"$out/.$$\"\n\
             mv \"$out/.$$\" \"$out/$$\"\n",
            out = out.display()
        ),
        0o755,
    )
}

/// A rig whose `sms.command` is [`recording_sms`], after `extra` config.
fn rig_with_sms(name: &str, extra: &str) -> Rig {
    let rig = rig(name, extra);
    let sms = recording_sms(&rig);
    configure(
        &rig,
        &format!("{extra}[sms]\ncommand = \"{}\"\n", sms.display()),
    );
    rig
}

/// The messages the recording SMS command was given, as (argv, text),
/// once there are `n`.
fn texts(rig: &Rig, n: usize) -> Vec<(Vec<String>, String)> {
    let dir = rig.root.join("sms");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found: Vec<(Vec<String>, String)> = files_under(&dir)
            .iter()
            .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .map(|p| {
                let text = std::fs::read_to_string(p).unwrap();
                let (argv, stdin) = text.split_once("--\n").unwrap();
                (argv.lines().map(String::from).collect(), stdin.to_string())
            })
            .collect();
        if found.len() >= n || Instant::now() > deadline {
            assert!(found.len() >= n, "{} text(s), wanted {n}", found.len());
            return found;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The one `event` record in `ev`: the CLI's, with these values.
fn the_one<'a>(ev: &'a [Event], event: &str, values: &[(&str, &str)]) -> &'a Event {
    let found = records_of(ev, event);
    assert_eq!(found.len(), 1, "one {event}: {ev:?}");
    assert_eq!(found[0].tag, "twostep", "{:?}", found[0]);
    for (key, value) in values {
        assert_eq!(found[0].get(key), Some(*value), "{key}: {:?}", found[0]);
    }
    found[0]
}

fn records_of<'a>(events: &'a [Event], event: &str) -> Vec<&'a Event> {
    events.iter().filter(|e| e.event() == event).collect()
}

// ---- enroll --method email ----------------------------------------------------

/// On a real pty: a wrong code, then the code from the mailbox, which
/// expect reads from a file this test writes once the mail has come.
#[test]
fn email_enrollment_is_confirmed_by_the_code_from_the_mailbox() {
    let mut rig = rig("cc-pty", TEMPLATE);
    rig.events();
    let handoff = rig.root.join("codes");
    let script = pty_script(
        &format!(
            "{} --config {} enroll {USER} --method email",
            twostep_bin().display(),
            rig.config.display()
        ),
        &format!(
            r#"
expect {{
    "Code sent to {USER}@localhost (6 digits)" {{}}
    timeout {{ puts "NO PROMPT"; exit 3 }}
}}
for {{set i 0}} {{$i < 300 && ![file exists {f}]}} {{incr i}} {{ after 100 }}
set f [open {f}]
set codes [split [string trim [read $f]] "\n"]
close $f
send "[lindex $codes 0]\r"
expect {{
    "tries left" {{}}
    timeout {{ puts "NO RETRY"; exit 3 }}
}}
expect "Code sent to"
send "[lindex $codes 1]\r"
expect {{
    "Code accepted" {{}}
    timeout {{ puts "NOT ACCEPTED"; exit 3 }}
}}
expect "Recovery codes for"
"#,
            f = handoff.display()
        ),
    );
    let child = Command::new("expect")
        .arg("-c")
        .arg(&script)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let message = mails(&rig, "confirmation code", 1).pop().unwrap();
    assert_eq!(message["to"], format!("{USER}@localhost"));
    let code = code_in(&message);
    let tmp = rig.root.join("codes.tmp");
    std::fs::write(&tmp, format!("{}\n{code}\n", other_than(&code))).unwrap();
    std::fs::rename(&tmp, &handoff).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = stdout(&out);
    assert!(text.contains("EXIT=0 "), "{text}{}", stderr(&out));
    assert!(!text.contains(&code), "the code was echoed:\n{text}");
    assert!(text.contains("sign-in codes go by email to"), "{text}");

    // The file: the method, no address (the template gives it), a 160-bit
    // key for the sent codes' hash, recovery codes.
    let file = secret_toml(&rig);
    assert_eq!(file["method"].as_str(), Some("email"));
    assert!(file.get("email").is_none(), "{file:?}");
    assert_eq!(file["secret"].as_str().unwrap().len(), 32);
    assert!(file.get("digits").is_none(), "{file:?}");
    assert_eq!(rig.stored_recovery_hashes(USER).len(), 10);
    assert_eq!(mode_of(&rig.secret_path(USER)), 0o600);

    let ev = rig.events();
    let sent = [
        ("method", "email"),
        ("to", "t***@l***"),
        ("service", "twostep"),
    ];
    the_one(&ev, "code_sent", &sent);
    the_one(&ev, "enrolled", &[("by", "root")]);
    assert!(ev.iter().all(|e| !e.raw.contains(&code)), "{ev:?}");
}

#[test]
fn three_wrong_codes_write_nothing() {
    let mut rig = rig("cc-wrong", TEMPLATE);
    rig.events();
    let child = rig.cli_spawn(&["enroll", USER, "--method", "email"]);
    let code = code_in(&mails(&rig, "confirmation code", 1)[0]);
    let wrong = other_than(&code);
    let out = answer(child, &[&wrong, "12345", &wrong]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("3 wrong codes"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert!(rig.secret_files().is_empty());
    let ev = rig.events();
    assert!(records_of(&ev, "enrolled").is_empty(), "{ev:?}");
    // The right code, too late, still enrolls nothing.
    assert!(!rig.secret_path(USER).exists());
}

/// With --no-confirm nothing is sent; the file written is one the module
/// works with: a login mails a sign-in code, and that code logs in.
#[test]
fn no_confirm_writes_at_once_and_the_module_mails_its_codes() {
    let mut rig = rig("cc-noconf", "");
    rig.events();
    let address = format!("{USER}@localhost");
    let out = enroll(&rig, &["--method", "email", "--email", &address, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        ["email", "method", "recovery_codes", "secret", "uri", "user"]
    );
    assert_eq!(v["method"], "email");
    assert_eq!(v["email"], format!("{USER}@localhost"));
    assert!(v["uri"].is_null());
    assert_eq!(v["recovery_codes"].as_array().unwrap().len(), 10);
    let file = secret_toml(&rig);
    assert_eq!(file["email"].as_str(), Some(&*format!("{USER}@localhost")));
    assert_eq!(file["secret"].as_str(), v["secret"].as_str());
    let ev = rig.events();
    assert!(records_of(&ev, "code_sent").is_empty(), "{ev:?}");
    assert_eq!(records_of(&ev, "enrolled").len(), 1, "{ev:?}");

    let mut login = rig.spawn_login("twostep", USER, &[("rhost", "192.0.2.7")]);
    let code = code_in(&mails(&rig, "sign-in code", 1)[0]);
    {
        let mut stdin = login.stdin.take().unwrap();
        writeln!(stdin, "{code}").unwrap();
    }
    let out = login.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(PAM_SUCCESS),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A recovery code from the enrollment works at that prompt too.
    let recovery = v["recovery_codes"][0].as_str().unwrap();
    let mut login = rig.spawn_login("twostep", USER, &[("rhost", "192.0.2.8")]);
    mails(&rig, "sign-in code", 2);
    {
        let mut stdin = login.stdin.take().unwrap();
        writeln!(stdin, "{recovery}").unwrap();
    }
    let out = login.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(PAM_SUCCESS));
}

// ---- enroll --method sms -------------------------------------------------------

#[test]
fn sms_enrollment_is_confirmed_by_the_code_the_command_was_given() {
    let mut rig = rig_with_sms("cc-sms", "");
    rig.events();
    let child = rig.cli_spawn(&["enroll", USER, "--method", "sms", "--phone", PHONE]);
    let (argv, text) = texts(&rig, 1).pop().unwrap();
    assert_eq!(argv, [PHONE]);
    assert!(text.contains("confirmation code"), "{text}");
    let code = text.split_whitespace().next().unwrap().to_string();
    assert_eq!(code.len(), 6, "{text}");
    let out = answer(child, &[&code]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("sign-in codes go by text message to {PHONE}")),
        "{}",
        stdout(&out)
    );
    let file = secret_toml(&rig);
    assert_eq!(file["method"].as_str(), Some("sms"));
    assert_eq!(file["phone"].as_str(), Some(PHONE));
    let ev = rig.events();
    the_one(
        &ev,
        "code_sent",
        &[("method", "sms"), ("to", "+*********5678")],
    );
    assert!(ev.iter().all(|e| !e.raw.contains(&code)), "{ev:?}");
}

#[test]
fn bad_addresses_and_numbers_are_refused_and_write_nothing() {
    let rig = rig_with_sms("cc-bad", TEMPLATE);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--method", "email", "--email", "a@b.com, c@d.com"],
            "--email",
        ),
        (
            vec!["--method", "email", "--email", "a@b.com\nBcc: x@y"],
            "--email",
        ),
        (vec!["--method", "email", "--email", "<a@b.com>"], "--email"),
        (vec!["--method", "email", "--email", "-oQ@x.com"], "--email"),
        (vec!["--method", "email", "--email=-oQ@x.com"], "--email"),
        (vec!["--email", "a@b.com, c@d.com"], "--email"),
        (
            vec!["--method", "sms", "--phone", "015112345678"],
            "--phone",
        ),
        (vec!["--method", "sms", "--phone", "+49 151"], "--phone"),
        (vec!["--method", "sms", "--phone", "-x"], "--phone"),
        (vec!["--method", "sms"], "--phone"),
        (vec!["--method", "email", "--phone", PHONE], "--phone"),
        (vec!["--method", "email", "--png", "/tmp/x.png"], "--png"),
        (vec!["--method", "pigeon"], "--method"),
    ];
    for (extra, names) in cases {
        let out = enroll(&rig, &extra);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(names), "{extra:?} names {names}: {err}");
        assert!(rig.secret_files().is_empty(), "{extra:?}");
    }
    // No address for --method email: neither --email nor a template.
    configure(&rig, "");
    let out = enroll(&rig, &["--method", "email"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("email.address"), "{}", stderr(&out));
    // SMS is off without sms.command.
    let out = enroll(&rig, &["--method", "sms", "--phone", PHONE]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("sms.command"), "{}", stderr(&out));
    assert!(rig.secret_files().is_empty());
    assert!(parsed_messages(&mailbox(USER), &issuer(&rig)).is_empty());
}

// ---- status --------------------------------------------------------------------

#[test]
fn status_shows_the_method_and_where_codes_go_masked() {
    let rig = rig_with_sms("cc-status", TEMPLATE);
    for (args, method, to, column) in [
        (vec![], "totp", None, "totp"),
        (
            vec!["--method", "email"],
            "email",
            Some("t***@l***"),
            "email t***@l***",
        ),
        (
            vec!["--method", "sms", "--phone", PHONE],
            "sms",
            Some("+*********5678"),
            "sms +*********5678",
        ),
    ] {
        let out = enroll(&rig, &[&args[..], &["--force"]].concat());
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let s = rig.status_json(USER);
        assert_eq!(s["method"], method, "{s}");
        assert_eq!(s["to"].as_str(), to, "{s}");
        for key in ["enrolled", "locked", "locked_until", "failures", "tier"] {
            assert!(s.get(key).is_some(), "{key} kept: {s}");
        }
        let table = stdout(&rig.cli(&["status"]));
        let header = table.lines().next().unwrap();
        assert!(header.contains("METHOD"), "{table}");
        assert!(table.contains(column), "{table}");
    }
    // --json says where the codes go, an address from the template too,
    // which the file does not keep (a new template applies).
    let out = enroll(&rig, &["--method", "email", "--force", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["email"], format!("{USER}@localhost"), "{v}");
    assert!(secret_toml(&rig).get("email").is_none());
    enroll(&rig, &["--method", "sms", "--phone", PHONE, "--force"]);
    // An SMS user once SMS is turned off: status says why no code can go.
    configure(&rig, "");
    let s = rig.status_json(USER);
    assert_eq!(s["method"], "sms");
    assert!(s["to"].is_null());
    assert!(
        s["problem"].as_str().unwrap().contains("sms.command"),
        "{s}"
    );
}

// ---- send-test -----------------------------------------------------------------

#[test]
fn send_test_hands_a_message_to_the_users_method_and_says_what_happened() {
    let rig = rig("cc-test", TEMPLATE);
    let out = enroll(&rig, &["--method", "email"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = rig.cli(&["send-test", USER]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("accepted a test message"),
        "{}",
        stdout(&out)
    );
    let m = mails(&rig, "test message", 1).pop().unwrap();
    assert_eq!(m["to"], format!("{USER}@localhost"));
    // No code in it: no run of six digits.
    let body = m["body"].as_str().unwrap();
    assert!(
        !body
            .as_bytes()
            .windows(6)
            .any(|w| w.iter().all(u8::is_ascii_digit)),
        "{body}"
    );

    // A sendmail that fails: exit 1, the reason on stderr, escaped.
    let fail = program(&rig, "fail", "echo 'no \x1b[31mroute' >&2\nexit 1\n", 0o755);
    configure(
        &rig,
        &format!(
            "[email]\naddress = \"{{user}}@localhost\"\nsendmail = \"{}\"\n",
            fail.display()
        ),
    );
    let out = rig.cli(&["send-test", USER]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("not handed over"), "{err}");
    assert!(err.contains("exited with status 1"), "{err}");
    assert!(err.contains(r"x1b[31mroute"), "{err}");
    assert!(!err.contains('\x1b'), "{err}");

    // An SMS user: the text goes to the command, with the number.
    let sms = recording_sms(&rig);
    configure(&rig, &format!("[sms]\ncommand = \"{}\"\n", sms.display()));
    let out = enroll(&rig, &["--method", "sms", "--phone", PHONE, "--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = rig.cli(&["send-test", USER]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (argv, text) = texts(&rig, 1).pop().unwrap();
    assert_eq!(argv, [PHONE]);
    assert!(text.starts_with("Test from"), "{text}");

    // An app user without an address: nothing to send.
    let out = enroll(&rig, &["--force"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = rig.cli(&["send-test", USER]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("nothing to send"), "{}", stderr(&out));
    // Not enrolled: nothing to test.
    rig.cli(&["reset", USER]);
    let out = rig.cli(&["send-test", USER]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

// ---- notices -------------------------------------------------------------------

/// With `notify.events`, each admin command mails the user; the reset's
/// notice goes to the address in the file it removes (there is no
/// template to fall back on).
#[test]
fn admin_commands_mail_the_user_the_events_notify_names() {
    let mut rig = rig(
        "cc-notify",
        "[notify]\nevents = [\"enrolled\", \"reset\", \"unlocked\", \"recovery_regenerated\"]\n",
    );
    rig.events();
    let address = format!("{USER}@localhost");
    for (args, subject) in [
        (
            vec![
                "enroll",
                USER,
                "--no-confirm",
                "--method",
                "email",
                "--email",
                &address,
            ],
            "two-step sign-in set up",
        ),
        (vec!["recovery-codes", USER], "new recovery codes"),
        (vec!["unlock", USER], "account unlocked"),
        (vec!["reset", USER], "two-step sign-in removed"),
    ] {
        let out = rig.cli(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let m = mails(&rig, subject, 1).pop().unwrap();
        assert_eq!(m["to"], address);
        let body = m["body"].as_str().unwrap();
        assert!(body.contains("By:      the administrator root"), "{body}");
    }
    let ev = rig.events();
    assert!(records_of(&ev, "delivery_failed").is_empty(), "{ev:?}");
}

/// A notice that cannot be handed over changes no exit status: it is a
/// `delivery_failed` record and a note on stderr.
#[test]
fn a_failing_notice_does_not_change_the_outcome() {
    let mut rig = rig("cc-notify-fail", "");
    let fail = program(&rig, "fail", "cat > /dev/null\nexit 1\n", 0o755);
    configure(
        &rig,
        &format!(
            "[email]\nsendmail = \"{}\"\n[notify]\nevents = [\"enrolled\", \"reset\", \"unlocked\", \
             \"recovery_regenerated\"]\n",
            fail.display()
        ),
    );
    rig.events();
    let address = format!("{USER}@localhost");
    for args in [
        vec![
            "enroll",
            USER,
            "--no-confirm",
            "--qr",
            "none",
            "--email",
            &address,
        ],
        vec!["recovery-codes", USER],
        vec!["unlock", USER],
        vec!["reset", USER],
    ] {
        let out = rig.cli(&args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("not mailed"),
            "{args:?}: {}",
            stderr(&out)
        );
        let failed = [("reason", "exit"), ("to", "t***@l***"), ("method", "email")];
        the_one(&rig.events(), "delivery_failed", &failed);
    }
}

/// Output into a pipe nobody reads (`twostep recovery-codes alice | head -0`):
/// new codes that cannot be shown are not made; a reset is made, recorded
/// and mailed all the same. Its own user, beside the others of this file.
#[test]
fn admin_output_into_a_closed_pipe_changes_nothing_half_way() {
    const SV_ADMIN: &str = "ts-sv-admin";
    ensure_mail_user(SV_ADMIN);
    let mut rig = rig(
        "cc-sv-closed",
        &format!(
            "{TEMPLATE}[notify]\nevents = [\"enrolled\", \"reset\", \"unlocked\", \
             \"recovery_regenerated\"]\n"
        ),
    );
    rig.enroll(SV_ADMIN, SECRET);
    let old = rig.stored_recovery_hashes(SV_ADMIN);
    rig.events();
    let closed_pipe = || {
        let (read, write) = nix::unistd::pipe().unwrap();
        drop(read);
        Stdio::from(write)
    };
    let config = rig.config.clone();
    let run = |args: &[&str]| {
        Command::new(twostep_bin())
            .arg("--config")
            .arg(&config)
            .args(args)
            .env_remove("TWOSTEP_CONFIG")
            .stdout(closed_pipe())
            .stderr(Stdio::piped())
            .output()
            .unwrap()
    };
    for args in [
        &["recovery-codes", SV_ADMIN][..],
        &["recovery-codes", SV_ADMIN, "--json"],
    ] {
        let out = run(args);
        assert_eq!(
            rig.stored_recovery_hashes(SV_ADMIN),
            old,
            "{args:?}: the old codes were replaced by codes never shown: {}",
            stderr(&out)
        );
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
        assert!(
            stderr(&out).contains("could not be shown"),
            "{}",
            stderr(&out)
        );
    }
    let ev = rig.events();
    assert!(records_of(&ev, "recovery_regenerated").is_empty(), "{ev:?}");

    // What is done whatever is shown: done, recorded and mailed all the same.
    let ga = rig.root.join("sv-ga");
    std::fs::write(&ga, format!("{SECRET}\n\" TOTP_AUTH\n")).unwrap();
    std::fs::set_permissions(&ga, std::fs::Permissions::from_mode(0o600)).unwrap();
    let ga = ga.display().to_string();
    for (args, event, subject) in [
        (vec!["unlock", SV_ADMIN], "unlocked", "account unlocked"),
        (vec!["reset", SV_ADMIN], "reset", "two-step sign-in removed"),
        (
            vec!["import-google-authenticator", SV_ADMIN, &ga],
            "enrolled",
            "two-step sign-in set up",
        ),
    ] {
        let out = run(&args);
        assert!(
            !stderr(&out).contains("panicked"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        the_one(&rig.events(), event, &[("user", SV_ADMIN)]);
        let m = wait_for_messages(
            &mailbox(SV_ADMIN),
            &format!("{}: {subject}", issuer(&rig)),
            1,
        );
        assert_eq!(m[0]["to"], format!("{SV_ADMIN}@localhost"));
    }
    assert!(rig.secret_path(SV_ADMIN).exists(), "imported");
}

// ---- check ---------------------------------------------------------------------

#[test]
fn check_judges_the_programs_that_send_and_the_users_methods() {
    let rig = rig("cc-check", "");
    let loose = program(&rig, "sendmail", "exit 0\n", 0o775);
    // Nothing mails: a bad sendmail harms no one.
    let base = format!("[email]\nsendmail = \"{}\"\n", loose.display());
    configure(&rig, &base);
    let out = rig.cli(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // Notices are mailed: it is reported.
    configure(&rig, &format!("{base}[notify]\nevents = [\"locked\"]\n"));
    let out = rig.cli(&["check"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("email.sendmail (used by notify.events)")
            && text.contains("writable by group or others"),
        "{text}"
    );

    // An email user makes sendmail used too, and an SMS command is checked
    // whenever it is set.
    let sms = program(&rig, "sms", "exit 0\n", 0o757);
    let email_user = "method = \"email\"\nemail = \"ts-clicodes@localhost\"\n";
    private_file(&rig.secret_path(USER), email_user);
    configure(
        &rig,
        &format!("{base}[sms]\ncommand = \"{}\"\n", sms.display()),
    );
    let text = stdout(&rig.cli(&["check"]));
    assert!(
        text.contains(&format!("email.sendmail (used by the email user {USER})")),
        "{text}"
    );
    assert!(text.contains("sms.command: "), "{text}");

    // Users whose method cannot work: email without an address or template,
    // SMS without sms.command.
    configure(&rig, "");
    private_file(&rig.secret_path(USER), "method = \"email\"\n");
    let out = rig.cli(&["check"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stdout(&out).contains(&format!(
            "{USER} has method = \"email\", but no code can be sent"
        )),
        "{}",
        stdout(&out)
    );
    private_file(
        &rig.secret_path(USER),
        &format!("method = \"sms\"\nphone = \"{PHONE}\"\n"),
    );
    let text = stdout(&rig.cli(&["check"]));
    assert!(text.contains("sms.command is not set"), "{text}");
}

fn private_file(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

// ---- throttles -----------------------------------------------------------------

/// Issue 21, item 3: an enrollment's confirmation code counts toward the
/// user's limits (`codes.max_per_hour`, `codes.resend_after`) as a login's
/// codes do, and toward the destination's, which every account's sends to
/// that number share. Enrolling again and again (an unenrolled user of
/// twostep-self pressing Ctrl-C at the prompt, through the same code) sent
/// a code each time, to any number.
#[test]
fn confirmation_codes_count_toward_the_users_and_the_destinations_limits() {
    let other = "ts-clicodes-thr";
    ensure_user(other, None);
    let mut rig = rig_with_sms(
        "cc-thr",
        "[codes]\nresend_after = \"0s\"\nmax_per_hour = 3\n",
    );
    rig.events();
    let abandon = |user: &str, phone: &str| {
        let child = rig.cli_spawn(&["enroll", user, "--method", "sms", "--phone", phone]);
        answer(child, &[])
    };
    // The user's hourly limit: three codes, then none.
    let mut said = Vec::new();
    for _ in 0..5 {
        let out = abandon(USER, PHONE);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        said.push(stderr(&out));
    }
    assert!(said[4].contains("codes.max_per_hour"), "{}", said[4]);
    // Another account, the same number: the number has had its three.
    let out = abandon(other, PHONE);
    assert!(
        stderr(&out).contains("from any account"),
        "{}",
        stderr(&out)
    );
    // Its own number is fine.
    let own = "+4915112340000";
    let out = abandon(other, own);
    assert!(
        !stderr(&out).contains("no code was sent"),
        "{}",
        stderr(&out)
    );
    // And resend_after keeps its codes apart.
    configure(
        &rig,
        &format!(
            "[codes]\nresend_after = \"60s\"\nmax_per_hour = 3\n[sms]\ncommand = \"{}\"\n",
            rig.root.join("bin/sms").display()
        ),
    );
    let out = abandon(other, own);
    assert!(
        stderr(&out).contains("codes.resend_after"),
        "{}",
        stderr(&out)
    );
    std::thread::sleep(Duration::from_millis(500));
    let sent = texts(&rig, 4);
    assert_eq!(sent.len(), 4, "three to {PHONE}, one to {own}");
    let ev = rig.events();
    let refused: Vec<_> = records_of(&ev, "delivery_failed")
        .into_iter()
        .filter(|e| e.get("reason") == Some("throttled"))
        .collect();
    assert_eq!(refused.len(), 4, "{ev:?}");
}
