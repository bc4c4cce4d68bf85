//! `twostep enroll`, `reset` and batch enrollment through the real binary:
//! URIs checked by an independent parser, QR codes decoded by zbar, the
//! confirmation typed into a real pty by expect(1), logins through libpam.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::Path;

const USER: &str = "ts-enr";
const ISSUER: &str = "Acme Corp & Sons/Ops";

fn rig(name: &str) -> Rig {
    ensure_user(USER, None);
    Rig::new(name, &format!("issuer = \"{ISSUER}\""))
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The `URI` row of the human output.
fn printed_uri(text: &str) -> String {
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix("URI"))
        .map(|u| u.trim().to_string())
        .unwrap_or_else(|| panic!("no URI line in:\n{text}"))
}

/// Checks every part of an otpauth URI with the `url` crate's parser.
fn check_uri(uri: &str, user: &str, secret: &str) {
    let parsed = url::Url::parse(uri).unwrap();
    assert_eq!(parsed.scheme(), "otpauth");
    assert_eq!(parsed.host_str(), Some("totp"));
    let label = percent_decode(parsed.path().strip_prefix('/').unwrap());
    assert_eq!(label, format!("{ISSUER}:{user}"), "label of {uri}");
    let query: BTreeMap<String, String> = parsed.query_pairs().into_owned().collect();
    let want: BTreeMap<String, String> = [
        ("secret", secret),
        ("issuer", ISSUER),
        ("algorithm", "SHA1"),
        ("digits", "6"),
        ("period", "30"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(query, want, "parameters of {uri}");
    // Spaces are %20 (apps differ on '+'), and nothing reserved is left raw.
    assert!(uri.contains("Acme%20Corp%20%26%20Sons%2FOps"), "{uri}");
}

fn percent_decode(s: &str) -> String {
    let mut out = vec![];
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn json_is_one_object_and_the_secret_logs_in() {
    let mut rig = rig("enr-json");
    rig.events();
    let v = rig.enroll_json(USER, &[]);
    let obj = v.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["recovery_codes", "secret", "uri", "user"]);
    assert_eq!(v["user"], USER);
    let secret = v["secret"].as_str().unwrap();
    assert_eq!(secret.len(), 32, "160 bits of base32");
    check_uri(v["uri"].as_str().unwrap(), USER, secret);
    let codes = v["recovery_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 10);
    for c in codes {
        let c = c.as_str().unwrap();
        assert_eq!(c.len(), 11, "{c}");
        assert_eq!(&c[5..6], "-", "{c}");
        assert!(
            c.chars()
                .all(|ch| ch == '-' || "0123456789abcdefghjkmnpqrstvwxyz".contains(ch)),
            "{c}"
        );
    }
    // The secret file: root-owned 0600, parameters spelled out, hashes only.
    let path = rig.secret_path(USER);
    assert_eq!(mode_of(&path), 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(&format!("secret = \"{secret}\"")), "{text}");
    assert!(text.contains("digits = 6") && text.contains("period = 30"));
    assert_eq!(rig.stored_recovery_hashes(USER).len(), 10);
    // Logged as the contract says.
    let ev: Vec<Event> = rig
        .events()
        .into_iter()
        .filter(|e| e.event() == "enrolled")
        .collect();
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].tag, "twostep");
    assert_eq!(ev[0].keys(), ["event", "user", "by"]);
    assert_eq!(ev[0].get("user"), Some(USER));
    assert!(!ev[0].raw.contains(secret));
    // And the new secret is what the module checks.
    fresh_step(3);
    let login = rig.login(USER, &oath_code(secret, 0));
    assert_eq!(login.code, PAM_SUCCESS, "{}", login.out);
}

#[test]
fn png_and_svg_decode_to_the_printed_uri() {
    let rig = rig("enr-png");
    let png = rig.root.join("qr.png");
    let svg = rig.root.join("qr.svg");
    let out = rig.cli(&[
        "enroll",
        USER,
        "--no-confirm",
        "--png",
        png.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let uri = printed_uri(&text);
    let secret = uri
        .split("secret=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    check_uri(&uri, USER, secret);
    assert_eq!(zbar_decode(&png), uri);
    // The image holds the secret: only root may read it.
    assert_eq!(mode_of(&png), 0o600);
    assert_eq!(mode_of(&svg), 0o600);
    let svg_text = std::fs::read_to_string(&svg).unwrap();
    assert!(svg_text.starts_with("<?xml") && svg_text.contains("<path"));
    // The key is shown in groups of four.
    let grouped: Vec<String> = secret
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    assert!(text.contains(&grouped.join(" ")), "{text}");
}

#[test]
fn the_terminal_qr_code_fits_80_columns_and_scans() {
    let rig = rig("enr-term");
    for (style, light_glyph) in [("utf8", true), ("ansi", false)] {
        let out = rig.cli(&["enroll", USER, "--no-confirm", "--force", "--qr", style]);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        let uri = printed_uri(&text);
        let drawing: Vec<String> = text
            .lines()
            .map(|l| l.replace("\x1b[30;107m", "").replace("\x1b[0m", ""))
            .filter(|l| l.contains('\u{2588}') || l.contains('\u{2580}') || l.contains('\u{2584}'))
            .collect();
        assert!(drawing.len() > 10, "{style}: no drawing in:\n{text}");
        for l in &drawing {
            assert!(
                l.chars().count() <= 80,
                "{style}: {} columns",
                l.chars().count()
            );
        }
        // Every printed line fits too.
        for l in text.lines().filter(|l| !l.trim_start().starts_with("URI")) {
            let visible = l.replace("\x1b[30;107m", "").replace("\x1b[0m", "");
            assert!(visible.chars().count() <= 80, "{style}: {l:?}");
        }
        if style == "ansi" {
            assert!(text.contains("\x1b[30;107m"), "ansi draws with colours");
        }
        let png = rig.root.join(format!("term-{style}.png"));
        qr_drawing_to_png(&drawing, light_glyph, &png);
        assert_eq!(zbar_decode(&png), uri, "{style}");
    }
    // --qr none: no drawing at all.
    let out = rig.cli(&["enroll", USER, "--no-confirm", "--force", "--qr", "none"]);
    assert!(!stdout(&out).contains('\u{2588}'));
}

#[test]
fn an_enrollment_is_replaced_only_with_force() {
    let mut rig = rig("enr-force");
    let first = rig.enroll_json(USER, &[]);
    let before = std::fs::read(rig.secret_path(USER)).unwrap();
    rig.events();
    let out = rig.cli(&["enroll", USER, "--no-confirm", "--qr", "none"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("already enrolled"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stderr(&out).lines().count(), 1);
    assert_eq!(std::fs::read(rig.secret_path(USER)).unwrap(), before);
    assert!(rig.events().iter().all(|e| e.event() != "enrolled"));
    let second = rig.enroll_json(USER, &["--force"]);
    assert_ne!(first["secret"], second["secret"]);
    // The old secret no longer logs in.
    fresh_step(3);
    let old = rig.login(USER, &oath_code(first["secret"].as_str().unwrap(), 0));
    assert_eq!(old.code, PAM_AUTH_ERR);
}

#[test]
fn given_secrets_and_bad_usage() {
    let rig = rig("enr-usage");
    let v = rig.enroll_json_secret(USER, "gezd gnbv gy3t qojq gezd gnbv gy3t qojq", &[]);
    assert_eq!(v["secret"], SECRET);
    for bad in ["GEZDGNBVGY3TQOJQ", "not base32!"] {
        let out = rig.cli_stdin(&["enroll", USER, "--secret-file", "-", "--force"], bad);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
    }
    for (args, code) in [
        (vec!["enroll", USER, "--qr", "sixel"], 2),
        (vec!["enroll"], 2),
        (vec!["enroll", "ts-no-such-user", "--no-confirm"], 1),
        (vec!["enroll", "../etc", "--no-confirm"], 2),
        (vec!["enroll", USER, "--batch", "x"], 2),
    ] {
        let out = rig.cli(&args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
    }
    assert!(!rig.secret_dir.join("ts-no-such-user").exists());
}

/// An expect script that enrolls USER against `rig`, reading the secret from
/// the printed URI; `body` runs after the first prompt appeared.
fn enroll_script(rig: &Rig, extra: &str, body: &str) -> String {
    pty_script(
        &format!(
            "{bin} --config {config} enroll {USER} --qr none {extra}",
            bin = twostep_bin().display(),
            config = rig.config.display(),
        ),
        &format!(
            r#"
expect {{
    -re {{secret=([A-Z2-7]+)&}} {{ set secret $expect_out(1,string) }}
    timeout {{ puts "NO URI"; exit 3 }}
}}
expect {{
    "Code from the app" {{}}
    timeout {{ puts "NO PROMPT"; exit 3 }}
}}
{body}"#
        ),
    )
}

#[test]
fn interactive_confirm_wrong_code_then_right_code() {
    let mut rig = rig("enr-pty");
    rig.events();
    fresh_step(5);
    let script = enroll_script(
        &rig,
        "",
        r#"
send "000000\r"
expect {
    "tries left" {}
    timeout { puts "NO RETRY"; exit 3 }
}
expect "Code from the app"
set code [exec oathtool --totp -b $secret]
send "$code\r"
expect {
    "Code accepted" {}
    timeout { puts "NOT ACCEPTED"; exit 3 }
}
expect "Recovery codes for"
puts "\nCODE=$code"
puts "SECRET=$secret"
"#,
    );
    let out = expect_script(&script);
    let text = stdout(&out);
    assert!(text.contains("EXIT=0"), "{text}");
    // Hidden: the typed codes are not echoed.
    assert!(!text.contains("000000"), "the code was echoed:\n{text}");
    let code = text.split("CODE=").nth(1).unwrap().lines().next().unwrap();
    let secret = text
        .split("SECRET=")
        .nth(1)
        .unwrap()
        .lines()
        .next()
        .unwrap();
    assert!(rig.secret_path(USER).exists());
    assert!(
        std::fs::read_to_string(rig.secret_path(USER))
            .unwrap()
            .contains(secret)
    );
    assert_eq!(
        rig.events()
            .iter()
            .filter(|e| e.event() == "enrolled")
            .count(),
        1
    );
    // The confirmation code was used: it does not log in a second time.
    let login = rig.login(USER, code);
    assert_eq!(login.code, PAM_AUTH_ERR, "{}", login.out);
    let ev = rig.events();
    assert!(
        ev.iter().any(|e| e.get("reason") == Some("replay")),
        "{ev:?}"
    );
}

#[test]
fn ctrl_c_at_the_prompt_writes_nothing() {
    let mut rig = rig("enr-ctrlc");
    rig.events();
    let png = rig.root.join("qr.png");
    let script = enroll_script(
        &rig,
        &format!("--png {}", png.display()),
        r#"
send "12"
send "\003"
"#,
    );
    let out = expect_script(&script);
    let text = stdout(&out);
    assert!(text.contains("EXIT=1"), "{text}");
    assert!(text.contains("nothing was written"), "{text}");
    assert!(!rig.secret_path(USER).exists());
    assert!(!png.exists());
    // No temporary file anywhere in the installation.
    let files = files_under(&rig.root);
    assert!(
        files.iter().all(|f| !f.to_string_lossy().contains(".tmp.")),
        "{files:?}"
    );
    assert!(rig.secret_files().is_empty(), "{files:?}");
    assert!(rig.events().iter().all(|e| e.event() != "enrolled"));
    // The terminal was given back with echo on: a following command sees it.
    let script = format!(
        r#"
set timeout 20
spawn sh -c "{bin} --config {config} enroll {USER} --qr none; stty -a"
expect "Code from the app"
send "\003"
expect eof
"#,
        bin = twostep_bin().display(),
        config = rig.config.display()
    );
    let text = stdout(&expect_script(&script));
    let words: Vec<&str> = text.split_whitespace().collect();
    for flag in ["echo", "icanon", "isig"] {
        assert!(words.contains(&flag), "{flag} not restored:\n{text}");
    }
}

#[test]
fn three_wrong_codes_write_nothing() {
    let rig = rig("enr-wrong");
    // Not a terminal: codes are read as plain lines.
    let out = rig.cli_stdin(
        &["enroll", USER, "--qr", "none"],
        "000000\n111111\n222222\n333333\n",
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("3 wrong codes"), "{err}");
    assert_eq!(err.matches("Code from the app").count(), 3, "{err}");
    assert!(!rig.secret_path(USER).exists());
    assert!(rig.secret_files().is_empty());
    // End of input is a cancellation too.
    let out = rig.cli_stdin(&["enroll", USER, "--qr", "none"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(!rig.secret_path(USER).exists());
}

#[test]
fn json_with_confirmation_keeps_stdout_for_the_object() {
    let rig = rig("enr-jsonconfirm");
    // A right code read from stdin: the secret is fixed so the test knows it.
    let secret_file = rig.root.join("secret.txt");
    std::fs::write(&secret_file, SECRET).unwrap();
    fresh_step(3);
    let code = oath_code(SECRET, 0);
    let out = rig.cli_stdin(
        &[
            "enroll",
            USER,
            "--secret-file",
            secret_file.to_str().unwrap(),
            "--json",
        ],
        &format!("{code}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["secret"], SECRET);
    // What the person needed went to stderr.
    assert!(stderr(&out).contains("otpauth://"), "{}", stderr(&out));
}

#[test]
fn write_commands_refuse_non_root_and_write_nothing() {
    let rig = rig("enr-nonroot");
    rig.enroll(USER, SECRET);
    let before = files_under(&rig.root)
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect::<Vec<_>>();
    let ga = rig.root.join("ga");
    for args in [
        vec!["enroll", USER, "--no-confirm", "--force"],
        vec!["enroll", USER],
        vec!["reset", USER],
        vec!["recovery-codes", USER],
        vec!["import-google-authenticator", USER, ga.to_str().unwrap()],
        vec![
            "enroll",
            "--batch",
            "/dev/null",
            "--out-dir",
            "/tmp/twostep-nonroot-out",
        ],
    ] {
        let out = rig.cli_as_nobody(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains("needs root"), "{args:?}: {err}");
    }
    assert!(!Path::new("/tmp/twostep-nonroot-out").exists());
    let after = files_under(&rig.root)
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect::<Vec<_>>();
    assert_eq!(before, after);
}

#[test]
fn reset_removes_the_enrollment_and_says_so() {
    let mut rig = rig("enr-reset");
    rig.enroll(USER, SECRET);
    // A failure first: reset keeps it, and says so.
    assert_eq!(rig.login(USER, "000000").code, PAM_AUTH_ERR);
    rig.events();
    let out = rig.cli(&["reset", USER]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("Removed the enrollment of ts-enr"), "{text}");
    assert!(text.contains("Kept the lockout state: 1 failure"), "{text}");
    assert!(!rig.secret_path(USER).exists());
    assert!(rig.state_path(USER).exists(), "state is not touched");
    let ev: Vec<Event> = rig
        .events()
        .into_iter()
        .filter(|e| e.event() == "reset")
        .collect();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].keys(), ["event", "user", "by"]);
    // Now unenrolled: refused.
    fresh_step(3);
    let login = rig.login(USER, &oath_code(SECRET, 0));
    assert_eq!(login.code, PAM_AUTH_ERR);
    assert!(
        rig.events()
            .iter()
            .any(|e| e.get("reason") == Some("no_secret"))
    );
    // Again: nothing to reset.
    let out = rig.cli(&["reset", USER]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not enrolled"));
}

#[test]
fn batch_enrollment_is_per_user_all_or_nothing_and_rerunnable() {
    let mut rig = rig("enr-batch");
    for u in ["ts-bat1", "ts-bat2", "ts-bat3"] {
        ensure_user(u, None);
    }
    rig.enroll("ts-bat2", SECRET);
    let bat2_before = std::fs::read(rig.secret_path("ts-bat2")).unwrap();
    let list = rig.root.join("team.txt");
    std::fs::write(
        &list,
        "# the ops team\nts-bat1\n\nts-bat2   # enrolled already\nts-no-such-user\nts-bat3\nts-bat1\nbad/name\n",
    )
    .unwrap();
    let out_dir = rig.root.join("out");
    rig.events();
    let run = |rig: &Rig, extra: &[&str]| {
        let mut args = vec!["--json"];
        args.extend_from_slice(extra);
        let out = rig.enroll_batch(&list, &out_dir, &args);
        let v: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&out)));
        (out.status.code(), v)
    };
    let (code, v) = run(&rig, &[]);
    assert_eq!(code, Some(1), "a user failed: {v}");
    assert_eq!(v["enrolled"], serde_json::json!(["ts-bat1", "ts-bat3"]));
    assert_eq!(v["skipped"], serde_json::json!(["ts-bat2"]));
    let failed: Vec<&str> = v["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["user"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["ts-no-such-user", "bad/name"]);
    assert!(
        v["failed"][0]["error"]
            .as_str()
            .unwrap()
            .contains("no such user")
    );
    // Files per enrolled user, 0600; the PNG decodes to the URI file.
    for u in ["ts-bat1", "ts-bat3"] {
        for ext in ["png", "uri", "recovery"] {
            let p = out_dir.join(format!("{u}.{ext}"));
            assert_eq!(mode_of(&p), 0o600, "{}", p.display());
        }
        let uri = std::fs::read_to_string(out_dir.join(format!("{u}.uri"))).unwrap();
        assert_eq!(
            zbar_decode(&out_dir.join(format!("{u}.png"))),
            uri.trim_end()
        );
        let codes = std::fs::read_to_string(out_dir.join(format!("{u}.recovery"))).unwrap();
        assert_eq!(
            codes.lines().filter(|l| !l.starts_with('#')).count(),
            10,
            "{codes}"
        );
        assert!(rig.secret_path(u).exists());
    }
    // Skipped and failed users: nothing written for them.
    assert_eq!(
        std::fs::read(rig.secret_path("ts-bat2")).unwrap(),
        bat2_before
    );
    let names: Vec<String> = files_under(&out_dir)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 6, "{names:?}");
    assert!(!rig.secret_dir.join("ts-no-such-user").exists());
    assert_eq!(
        rig.events()
            .iter()
            .filter(|e| e.event() == "enrolled")
            .count(),
        2
    );
    // A recovery code from the file logs in.
    let codes = std::fs::read_to_string(out_dir.join("ts-bat1.recovery")).unwrap();
    let one = codes.lines().find(|l| !l.starts_with('#')).unwrap();
    assert_eq!(rig.login("ts-bat1", one).code, PAM_SUCCESS);

    // Re-running is safe: nobody is re-keyed.
    let bat1 = std::fs::read(rig.secret_path("ts-bat1")).unwrap();
    let png1 = std::fs::read(out_dir.join("ts-bat1.png")).unwrap();
    let (_, v) = run(&rig, &[]);
    assert_eq!(v["enrolled"], serde_json::json!([]));
    assert_eq!(
        v["skipped"],
        serde_json::json!(["ts-bat1", "ts-bat2", "ts-bat3"])
    );
    assert_eq!(std::fs::read(rig.secret_path("ts-bat1")).unwrap(), bat1);
    assert_eq!(std::fs::read(out_dir.join("ts-bat1.png")).unwrap(), png1);

    // The human summary.
    let out = rig.enroll_batch(&list, &out_dir, &[]);
    let text = stdout(&out);
    assert!(text.contains("Skipped"), "{text}");
    assert!(
        text.contains("ts-no-such-user: line 5: no such user"),
        "{text}"
    );
}

#[test]
fn every_subcommand_has_help_with_examples() {
    for sub in [
        "enroll",
        "reset",
        "recovery-codes",
        "import-google-authenticator",
        "send-test",
        "status",
        "unlock",
        "check",
    ] {
        let out = std::process::Command::new(twostep_bin())
            .args([sub, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{sub}");
        let text = stdout(&out);
        assert!(text.contains("Example"), "{sub}: {text}");
    }
}
