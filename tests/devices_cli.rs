//! The admin commands for several authenticators (issue 24), run for real:
//! `twostep enroll USER --add NAME`, `twostep devices`, `twostep
//! remove-device`, with codes made by oathtool and pyotp from the URIs the
//! CLI printed and logins through the real libpam (pamdrive), real users.
//!
//! Needs root, oathtool and python3-pyotp (`bash packages.sh test`).

mod common;

use common::*;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ISSUER: &str = "Acme Corp";

fn rig(name: &str) -> Rig {
    Rig::new(name, &format!("issuer = \"{ISSUER}\""))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// What pyotp, an independent implementation, reads from a URI: (account
/// name, issuer, secret, code at `unix`).
fn pyotp(uri: &str, unix: u64) -> (String, String, String, String) {
    let script = "import json, sys, pyotp\n\
                  t = pyotp.parse_uri(sys.argv[1])\n\
                  print(json.dumps([t.name, t.issuer, t.secret, t.at(int(sys.argv[2]))]))";
    // Debian's python, where python3-pyotp is: a python3 earlier in PATH
    // (pyenv, a venv) would not have it.
    let out = Command::new("/usr/bin/python3")
        .args(["-c", script, uri, &unix.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pyotp could not read {uri} (is python3-pyotp installed? bash packages.sh test): {}",
        text(&out.stderr)
    );
    let v: Vec<String> = serde_json::from_slice(&out.stdout).unwrap();
    (v[0].clone(), v[1].clone(), v[2].clone(), v[3].clone())
}

/// An otpauth URI read by the `url` crate's parser: its label as written
/// (still percent-encoded) and its query.
fn uri_parts(uri: &str) -> (String, std::collections::BTreeMap<String, String>) {
    let parsed = url::Url::parse(uri).unwrap();
    assert_eq!(
        (parsed.scheme(), parsed.host_str()),
        ("otpauth", Some("totp"))
    );
    let label = parsed.path().trim_start_matches('/').to_string();
    (label, parsed.query_pairs().into_owned().collect())
}

/// `enroll USER --add NAME --no-confirm --qr none`
fn add_args<'a>(user: &'a str, name: &'a str) -> [&'a str; 7] {
    [
        "enroll",
        user,
        "--add",
        name,
        "--no-confirm",
        "--qr",
        "none",
    ]
}

/// [`add_args`] and `more` options, run.
fn add(rig: &Rig, user: &str, name: &str, more: &[&str]) -> std::process::Output {
    let mut args = add_args(user, name).to_vec();
    args.extend_from_slice(more);
    rig.cli(&args)
}

/// [`add`] with `--json`: the object.
fn add_json(rig: &Rig, user: &str, name: &str) -> serde_json::Value {
    let out = add(rig, user, name, &["--json"]);
    assert!(
        out.status.success(),
        "enroll --add {name}: {}",
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("--add --json printed more than one object ({e})"))
}

/// `enroll USER --add NAME`, confirmed as a person would: the URI read off
/// the screen, the code its app (pyotp) shows typed in. Returns the URI,
/// the confirming code, the start of its step and the command's stdout.
fn add_confirmed(rig: &Rig, user: &str, name: &str) -> (String, String, u64, String) {
    confirmed(rig, &["enroll", user, "--add", name, "--qr", "none"])
}

/// An `enroll` command (`args`) confirmed as [`add_confirmed`] says.
fn confirmed(rig: &Rig, args: &[&str]) -> (String, String, u64, String) {
    let what = args.join(" ");
    let mut child = rig.cli_spawn(args);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut shown = String::new();
    let uri = loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "no URI shown:\n{shown}"
        );
        shown.push_str(&line);
        if let Some(u) = line.trim_start().strip_prefix("URI") {
            break u.trim().to_string();
        }
    };
    fresh_step(5);
    let now = now();
    let (_, _, _, code) = pyotp(&uri, now);
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{code}").unwrap();
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what} with a right code: {}",
        text(&out.stderr)
    );
    (uri, code, now - now % 30, shown + &rest)
}

/// `devices USER --json`, which must succeed: (name, created, last_used).
fn devices(rig: &Rig, user: &str) -> Vec<(String, Option<String>, Option<String>)> {
    let out = rig.cli(&["devices", user, "--json"]);
    assert!(out.status.success(), "devices: {}", text(&out.stderr));
    let list: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_slice(&out.stdout).unwrap();
    list.into_iter()
        .map(|o| {
            let keys: Vec<&str> = o.keys().map(String::as_str).collect();
            assert_eq!(keys, ["created", "last_used", "name"], "{o:?}");
            let s = |k: &str| o[k].as_str().map(str::to_string);
            (s("name").unwrap(), s("created"), s("last_used"))
        })
        .collect()
}

fn names(rig: &Rig, user: &str) -> Vec<String> {
    devices(rig, user).into_iter().map(|d| d.0).collect()
}

fn rfc3339(unix: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(unix)).to_string()
}

#[test]
fn two_apps_each_log_in_and_removing_one_leaves_the_other() {
    let user = "ts-dvc-two";
    ensure_user(user, None);
    let mut rig = rig("dvc-two");
    rig.enroll(user, SECRET);
    assert_eq!(names(&rig, user), ["default"]);

    // A second app, confirmed by a code from it; a third, not confirmed.
    let (phone_uri, confirming, confirmed_at, shown) = add_confirmed(&rig, user, "phone");
    assert!(shown.contains("Added the app phone"), "{shown}");
    assert_eq!(
        rig.login(user, &confirming).code,
        PAM_AUTH_ERR,
        "the code that confirmed the phone logs in"
    );
    assert!(
        !shown.to_lowercase().contains("recovery codes for"),
        "{shown}"
    );
    let tablet = add_json(&rig, user, "tablet");
    let keys: Vec<&str> = tablet
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(keys, ["device", "secret", "uri", "user"], "{tablet}");
    assert_eq!(
        (tablet["user"].as_str(), tablet["device"].as_str()),
        (Some(user), Some("tablet"))
    );
    let tablet_uri = tablet["uri"].as_str().unwrap().to_string();
    let tablet_secret = tablet["secret"].as_str().unwrap().to_string();

    // Each URI names its app, percent-encoded, and pyotp reads it so.
    let mut secrets = Vec::new();
    for (uri, name) in [(&phone_uri, "phone"), (&tablet_uri, "tablet")] {
        let (label, query) = uri_parts(uri);
        assert_eq!(label, format!("Acme%20Corp:{user}%20%28{name}%29"));
        assert_eq!(query["issuer"], ISSUER);
        let (account, issuer, secret, _) = pyotp(uri, now());
        assert_eq!(
            (account.as_str(), issuer.as_str()),
            (format!("{user} ({name})").as_str(), ISSUER)
        );
        assert_eq!(secret, query["secret"]);
        secrets.push(secret);
    }
    let phone_secret = secrets[0].clone();
    assert_eq!(secrets[1], tablet_secret);
    assert_ne!(phone_secret, tablet_secret);
    assert_eq!(rig.status_json(user)["devices"], 3);

    let listed = devices(&rig, user);
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[0].2, None, "default was never used: {listed:?}");
    assert_eq!(
        listed[1].2,
        Some(rfc3339(confirmed_at)),
        "phone's confirmation: {listed:?}"
    );
    assert_eq!(listed[2].2, None, "tablet was never used: {listed:?}");
    assert!(
        listed
            .iter()
            .all(|d| d.1.as_deref().is_some_and(|c| c.ends_with('Z')))
    );
    let records = rig.events();
    let added: Vec<_> = records
        .iter()
        .filter(|e| e.event() == "device_added")
        .collect();
    assert_eq!(added.len(), 2, "{records:#?}");
    assert_eq!(added[1].get("device"), Some("tablet"));
    assert_eq!(added[1].get("user"), Some(user));
    assert!(added[1].get("by").is_some());
    assert_eq!(added[1].keys(), ["event", "user", "by", "device"]);

    // A code from the tablet (oathtool, from the printed secret) logs in,
    // and is named; one from the phone (pyotp, from its URI) at the same
    // step too, once that is a step after the phone's confirmation.
    while now() - now() % 30 <= confirmed_at {
        std::thread::sleep(Duration::from_millis(200));
    }
    fresh_step(8);
    let t = now();
    let step_start = t - t % 30;
    let tablet_code = oath_code(&tablet_secret, 0);
    assert_eq!(rig.login(user, &tablet_code).code, PAM_SUCCESS);
    let ok = rig.module_events();
    let auth_ok: Vec<_> = ok.iter().filter(|e| e.event() == "auth_ok").collect();
    assert_eq!(auth_ok.len(), 1, "{ok:#?}");
    assert_eq!(auth_ok[0].get("device"), Some("tablet"));
    assert_eq!(rig.login(user, &tablet_code).code, PAM_AUTH_ERR, "a replay");
    let (_, _, _, phone_code) = pyotp(&phone_uri, t);
    assert_eq!(rig.login(user, &phone_code).code, PAM_SUCCESS);
    let ok = rig.module_events();
    assert!(
        ok.iter()
            .any(|e| e.event() == "auth_ok" && e.get("device") == Some("phone")),
        "{ok:#?}"
    );
    let listed = devices(&rig, user);
    assert_eq!(
        listed[2].2,
        Some(rfc3339(step_start)),
        "tablet used: {listed:?}"
    );
    assert_eq!(
        listed[1].2,
        Some(rfc3339(step_start)),
        "phone used: {listed:?}"
    );
    assert_eq!(listed[0].2, None, "default still unused: {listed:?}");
    let table = text(&rig.cli(&["devices", user]).stdout);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("default") && l.ends_with("never")),
        "{table}"
    );

    // The tablet goes: its next code fails, the phone's works.
    let out = rig.cli(&["remove-device", user, "tablet"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("2 apps left"),
        "{}",
        text(&out.stdout)
    );
    let removed: Vec<_> = rig
        .events()
        .into_iter()
        .filter(|e| e.event() == "device_removed")
        .collect();
    assert_eq!(removed.len(), 1);
    assert_eq!(
        (removed[0].get("device"), removed[0].get("user")),
        (Some("tablet"), Some(user))
    );
    assert_eq!(removed[0].keys(), ["event", "user", "by", "device"]);
    assert_eq!(names(&rig, user), ["default", "phone"]);
    let next = step_start + 30;
    let tablet_next = oath_code_at(&tablet_secret, next, "SHA1", 6, 30);
    let phone_next = oath_code_at(&phone_secret, next, "SHA1", 6, 30);
    assert_eq!(
        pyotp(&phone_uri, next).3,
        phone_next,
        "pyotp and oathtool agree"
    );
    if tablet_next != phone_next {
        assert_eq!(
            rig.login(user, &tablet_next).code,
            PAM_AUTH_ERR,
            "the removed tablet"
        );
    }
    assert_eq!(rig.login(user, &phone_next).code, PAM_SUCCESS, "the phone");
    assert_eq!(rig.status_json(user)["devices"], 2);

    // Down to one; removing the last is a reset.
    assert!(rig.cli(&["remove-device", user, "phone"]).status.success());
    let out = rig.cli(&["remove-device", user, "default"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(
        said.contains("default was the last app of ts-dvc-two: removing it is a reset."),
        "{said}"
    );
    assert!(
        said.contains("Removed the enrollment of ts-dvc-two"),
        "{said}"
    );
    assert!(!rig.secret_path(user).exists());
    assert_eq!(rig.status_json(user)["enrolled"], false);
    assert_eq!(rig.status_json(user)["devices"], 0);
    assert!(
        rig.events()
            .iter()
            .any(|e| e.event() == "reset" && e.get("user") == Some(user))
    );
    let out = rig.cli(&["devices", user]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is not enrolled"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn added_and_removed_apps_are_mailed_naming_them() {
    let user = "ts-dvc-mail";
    mail::ensure_mail_user(user);
    let mbox = mail::mailbox(user);
    let _ = std::fs::remove_file(&mbox);
    let issuer = mail::token("dvc-mail");
    let rig = Rig::new(
        "dvc-mail",
        &format!(
            "issuer = \"{issuer}\"\n[email]\nfrom = \"twostep@localhost\"\n\
             [notify]\nevents = [\"device_added\", \"device_removed\", \"reset\"]\n"
        ),
    );
    // An app user with an address for notices (the file's `email`).
    let address = format!("{user}@localhost");
    rig.enroll_json_secret(user, SECRET, &["--email", &address]);
    add_json(&rig, user, "tablet");
    let added = mail::wait_for_messages(&mbox, &issuer, 1);
    assert!(
        added[0]["subject"]
            .as_str()
            .unwrap()
            .contains("authenticator added"),
        "{added:?}"
    );
    assert!(
        added[0]["body"]
            .as_str()
            .unwrap()
            .contains("Device:  tablet"),
        "{added:?}"
    );
    assert!(rig.cli(&["remove-device", user, "tablet"]).status.success());
    let removed = mail::wait_for_messages(&mbox, &issuer, 2);
    assert!(
        removed[1]["subject"]
            .as_str()
            .unwrap()
            .contains("authenticator removed"),
        "{removed:?}"
    );
    assert!(
        removed[1]["body"]
            .as_str()
            .unwrap()
            .contains("Device:  tablet"),
        "{removed:?}"
    );
    // The last one's removal is a reset, mailed as one (to the address of
    // the file removed), not as a removed app.
    assert!(
        rig.cli(&["remove-device", user, "default"])
            .status
            .success()
    );
    let all = mail::wait_for_messages(&mbox, &issuer, 3);
    assert!(
        all[2]["subject"]
            .as_str()
            .unwrap()
            .contains("two-step sign-in removed"),
        "{all:?}"
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(mail::parsed_messages(&mbox, &issuer).len(), 3);
}

/// The command failed with `code` and one line on stderr: `twostep: `
/// and a message holding `words`, with no control character in it.
fn assert_refused(out: &std::process::Output, code: i32, words: &str, what: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{what}: {err}");
    assert_eq!(err.lines().count(), 1, "{what}: {err:?}");
    assert!(err.starts_with("twostep: "), "{what}: {err:?}");
    assert!(
        !err.trim_end().chars().any(char::is_control),
        "{what}: {err:?}"
    );
    assert!(err.contains(words), "{what}: {err}");
}

#[test]
fn hostile_names_and_options_are_refused_and_nothing_is_written() {
    let user = "ts-dvc-hostile";
    let other = "ts-dvc-unenrolled";
    ensure_user(user, None);
    ensure_user(other, None);
    let mut rig = rig("dvc-hostile");
    rig.enroll(user, SECRET);
    let path = rig.secret_path(user);

    // On a file of the old form: "default" is taken.
    let before = std::fs::read(&path).unwrap();
    let out = add(&rig, user, "default", &[]);
    assert_refused(
        &out,
        1,
        "an authenticator named default exists already",
        "default",
    );
    assert_eq!(std::fs::read(&path).unwrap(), before);

    // Three wrong codes from the new app, or none at all: nothing is
    // added. (A 5-digit answer is never a 6-digit app's code.)
    let confirm = ["enroll", user, "--add", "tablet", "--qr", "none"];
    for (answers, words) in [
        ("12345\n12345\n12345\n", "3 wrong codes"),
        ("", "cancelled"),
    ] {
        let out = rig.cli_stdin(&confirm, answers);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        let last = err.lines().last().unwrap_or_default();
        assert!(last.contains(words), "{err}");
        assert!(
            last.ends_with("tablet was not added to ts-dvc-hostile; nothing was written"),
            "{err}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    for i in 1..8 {
        add_json(&rig, user, &format!("d{i}"));
    }
    assert_eq!(names(&rig, user).len(), 8);
    rig.events();

    let thousand = "x".repeat(1000);
    // (name, exit code, words of the rule)
    let table: &[(&str, i32, &str)] = &[
        (
            "my phone",
            2,
            "letters, digits, '.', '_' and '-' only (not ' ')",
        ),
        ("a/b", 2, "(not '/')"),
        ("../../etc/passwd", 2, "(not '/')"),
        ("a\u{1b}[31mred", 2, "(not U+001B)"),
        ("a\nb", 2, "(not U+000A)"),
        ("tab\there", 2, "(not U+0009)"),
        ("nul\u{7f}", 2, "(not U+007F)"),
        (&thousand, 2, "at most 32 bytes (this one is 1000)"),
        ("", 2, "must not be empty"),
        ("téléphone", 2, "(not 'é')"),
        ("d3", 1, "an authenticator named d3 exists already"),
        ("ninth", 1, "already 8 authenticators, the most allowed"),
    ];
    let before = std::fs::read(&path).unwrap();
    let files_before = rig.files();
    for (name, code, words) in table {
        let out = add(&rig, user, name, &[]);
        let what = format!("--add {name:?}");
        assert_refused(&out, *code, words, &what);
        assert!(
            out.stdout.is_empty(),
            "{what} showed: {}",
            text(&out.stdout)
        );
        assert_eq!(std::fs::read(&path).unwrap(), before, "{what} wrote");
    }
    // Options that do not go with --add, a user who is not enrolled, and
    // removals that cannot be made.
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["enroll", user, "--add", "x", "--force"],
            2,
            "--force replaces it",
        ),
        (
            &["enroll", user, "--add", "x", "--method", "email"],
            2,
            "--add is for apps",
        ),
        (
            &[
                "enroll",
                user,
                "--add",
                "x",
                "--method",
                "sms",
                "--phone",
                "+4915112345678",
            ],
            2,
            "--add is for apps",
        ),
        (
            &["enroll", user, "--add", "x", "--email", "a@example.org"],
            2,
            "--email and --phone",
        ),
        (
            &["enroll", other, "--add", "x", "--no-confirm"],
            1,
            "ts-dvc-unenrolled is not enrolled",
        ),
        (&["remove-device", user, "a/b"], 2, "(not '/')"),
        (&["remove-device", user, &thousand], 2, "at most 32 bytes"),
        (
            &["remove-device", user, "nope"],
            1,
            "no authenticator named nope",
        ),
        (
            &["remove-device", other, "default"],
            1,
            "ts-dvc-unenrolled is not enrolled",
        ),
        (&["devices", other], 1, "ts-dvc-unenrolled is not enrolled"),
    ];
    for (args, code, words) in cases {
        assert_refused(&rig.cli(args), *code, words, &format!("{args:?}"));
        assert_eq!(std::fs::read(&path).unwrap(), before, "{args:?} wrote");
    }
    assert_eq!(rig.files(), files_before, "a file appeared or went");
    let records = rig.events();
    assert!(
        !records
            .iter()
            .any(|e| e.event().starts_with("device_") || e.event() == "reset"),
        "{records:#?}"
    );
}

/// A small PRNG (xorshift64*), seeded and printed, so that a failing run
/// can be repeated.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

#[test]
fn a_kill_storm_leaves_the_file_old_or_new() {
    let user = "ts-dvc-storm";
    ensure_user(user, None);
    let rig = rig("dvc-storm");
    rig.enroll(user, SECRET);
    let secret_file = rig.root.join("new-app.secret");
    std::fs::write(&secret_file, "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n").unwrap();
    std::fs::set_permissions(
        &secret_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let secret_arg = secret_file.to_str().unwrap().to_string();
    let path = rig.secret_path(user);
    let seed = std::env::var("TWOSTEP_STORM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| now() ^ u64::from(std::process::id()) << 20 | 1);
    eprintln!("storm seed: {seed} (TWOSTEP_STORM_SEED repeats it)");
    let mut rng = Rng(seed);

    let command = |add: bool, name: &str| -> Vec<String> {
        let mut args = vec!["--config".to_string(), rig.config.display().to_string()];
        if add {
            args.extend(add_args(user, name).map(String::from));
            args.extend(["--secret-file".to_string(), secret_arg.clone()]);
        } else {
            args.extend(["remove-device", user, name].map(String::from));
        }
        args
    };
    // How long one takes, uninterrupted: the kills land anywhere in it.
    let started = Instant::now();
    for _ in 0..3 {
        assert!(
            Command::new(twostep_bin())
                .args(command(true, "probe"))
                .output()
                .unwrap()
                .status
                .success()
        );
        assert!(
            Command::new(twostep_bin())
                .args(command(false, "probe"))
                .output()
                .unwrap()
                .status
                .success()
        );
    }
    let took_us = (started.elapsed().as_micros() / 6).max(1000) as u64;
    eprintln!("one command takes about {took_us} us");
    // Kills land at random in [0, span): the span follows the machine's
    // load, longer after a kill that left the old file, shorter after one
    // that left the new, so that both keep happening.
    let mut span_us = took_us * 5 / 4;

    let mut current: BTreeSet<String> = ["default".to_string()].into();
    let (mut old_seen, mut new_seen, mut done) = (0, 0, 0);
    let rounds = 120;
    for round in 0..rounds {
        // Add while there is room, else remove; never the last one (that
        // is a reset, which removes the file).
        let extras: Vec<String> = current
            .iter()
            .filter(|n| *n != "default")
            .cloned()
            .collect();
        let add = extras.is_empty() || (current.len() < 8 && rng.below(2) == 0);
        let name = if add {
            format!("s{round}")
        } else {
            extras[rng.below(extras.len() as u64) as usize].clone()
        };
        let mut next = current.clone();
        if add {
            next.insert(name.clone());
        } else {
            next.remove(&name);
        }
        let mut child = Command::new(twostep_bin())
            .args(command(add, &name))
            .env_remove("TWOSTEP_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(rng.below(span_us)));
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        if status.success() {
            done += 1;
        }

        let meta = std::fs::symlink_metadata(&path)
            .unwrap_or_else(|e| panic!("round {round}: the secret file is gone: {e}"));
        assert!(meta.is_file(), "round {round}");
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o7777),
            (0, 0, 0o600),
            "round {round}"
        );
        let got: BTreeSet<String> = names(&rig, user).into_iter().collect();
        if got == current {
            old_seen += 1;
            span_us += span_us / 20;
        } else if got == next {
            new_seen += 1;
            span_us = (span_us - span_us / 20).max(1000);
        } else {
            panic!(
                "round {round} (seed {seed}): {got:?} is neither the old {current:?} nor the new {next:?}"
            );
        }
        current = got;
    }
    eprintln!(
        "{rounds} kills: {old_seen} left the old file, {new_seen} the new one ({done} finished first)"
    );
    // The kills landed on both sides of the write, or the storm proved nothing.
    assert!(
        old_seen > 0 && new_seen > 0,
        "old {old_seen}, new {new_seen}"
    );
    let left: Vec<String> = std::fs::read_dir(&rig.secret_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != user && n != ".twostep-secret-dir")
        .collect();
    eprintln!("temporary files left by kills: {}", left.len());
    assert!(left.iter().all(|n| n.starts_with('.')), "{left:?}");
}

/// With a shared store every host's logins look there: the code that
/// confirmed a new app must be marked used there, not only in this host's
/// state file (where it was, and the code logged in once more).
#[test]
fn on_a_fleet_the_code_that_confirmed_an_app_does_not_log_in() {
    use common::redis::{Redis, store_section, unix_url};
    let user = "ts-dvc-fleet";
    ensure_user(user, None);
    let redis = Redis::start("dvc-fleet", &[]);
    let section = store_section(&redis, &unix_url(&redis), "dvc-fleet", "");
    let mut rig = Rig::new("dvc-fleet", &format!("issuer = \"{ISSUER}\"\n{section}"));
    rig.enroll(user, SECRET);
    let (_, confirming, _, _) = add_confirmed(&rig, user, "phone");
    rig.events();
    assert_eq!(
        rig.login(user, &confirming).code,
        PAM_AUTH_ERR,
        "the code that confirmed the phone logs in through the store"
    );
    let ev = rig.events();
    let fail = ev.iter().find(|e| e.event() == "auth_fail").unwrap();
    assert_eq!(fail.get("reason"), Some("replay"), "{ev:#?}");
    // The same for the code that confirms a whole new enrollment.
    let (_, confirming, _, _) = confirmed(&rig, &["enroll", user, "--force", "--qr", "none"]);
    assert_eq!(
        rig.login(user, &confirming).code,
        PAM_AUTH_ERR,
        "the code that confirmed the new enrollment logs in through the store"
    );
}
