//! The manual pages: each is generated from its one source, man/*.scd, by
//! scdoc (as debian/rules does), must render with groff without a warning,
//! and must keep up with the code: every subcommand of the CLI in twostep(1),
//! every key of the sample configuration in twostep.toml(5).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const PAGES: [&str; 4] = [
    "pam_twostep.8",
    "twostep.1",
    "twostep-self.1",
    "twostep.toml.5",
];

fn source(page: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("man/{page}.scd"))
}

fn scdoc(page: &str) -> Vec<u8> {
    let mut child = Command::new("scdoc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("scdoc (apt-get install scdoc)");
    let text = std::fs::read(source(page)).unwrap();
    child.stdin.take().unwrap().write_all(&text).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "scdoc {page}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn pages_render_without_warnings() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("man");
    std::fs::create_dir_all(&dir).unwrap();
    for page in PAGES {
        let roff = dir.join(page);
        std::fs::write(&roff, scdoc(page)).unwrap();
        let out = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(&roff)
            .output()
            .expect("groff (apt-get install groff-base)");
        assert!(out.status.success(), "groff {page}");
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(warnings.trim().is_empty(), "groff {page}:\n{warnings}");

        let out = Command::new("man")
            .arg("-l")
            .arg(&roff)
            .env("MANWIDTH", "80")
            .env_remove("MAN_KEEP_FORMATTING")
            .output()
            .expect("man (apt-get install man-db)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "man -l {page}");
        assert!(text.contains("NAME"), "{page}:\n{text}");
        let name = page.rsplit_once('.').unwrap().0;
        assert!(text.contains(name), "{page}:\n{text}");
    }
}

/// Section names in order of appearance.
fn sections(page: &str) -> Vec<String> {
    std::fs::read_to_string(source(page))
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .map(str::to_string)
        .collect()
}

#[test]
fn examples_come_first() {
    for page in PAGES {
        let s = sections(page);
        assert_eq!(s[0], "NAME", "{page}");
        assert_eq!(s[1], "SYNOPSIS", "{page}");
        assert!(s[2].starts_with("EXAMPLE"), "{page}: {s:?}");
    }
}

#[test]
fn pam_twostep_8_covers_the_stacks_and_sshd_config() {
    let text = std::fs::read_to_string(source("pam_twostep.8")).unwrap();
    for needle in [
        "auth  requisite                    pam_twostep.so preauth",
        "auth  [success=1 default=ignore]   pam_unix.so",
        "auth  [default=die]                pam_twostep.so authfail",
        "auth  required                     pam_twostep.so",
        "/etc/pam.d/sshd",
        "/etc/pam.d/login",
        "/etc/pam.d/sudo",
        "UsePAM yes",
        "KbdInteractiveAuthentication yes",
        "PasswordAuthentication no",
        "AuthenticationMethods publickey,keyboard-interactive",
        "pam-auth-update --enable twostep-preauth twostep-authfail twostep",
    ] {
        assert!(text.contains(needle), "pam_twostep(8) lacks {needle:?}");
    }
    // The profiles it names are the ones the package ships.
    for profile in ["twostep", "twostep-preauth", "twostep-authfail"] {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("debian/pam-configs")
            .join(profile);
        let body = std::fs::read_to_string(&p).unwrap();
        assert!(body.contains("Default: no"), "{profile}");
    }
}

/// The subcommands `--help` of `bin` lists.
fn subcommands(bin: &Path) -> Vec<String> {
    let out = Command::new(bin).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    let commands: Vec<String> = help
        .split("Commands:")
        .nth(1)
        .expect("a Commands: section")
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect();
    assert!(commands.iter().any(|c| c == "enroll"), "{help}");
    commands
}

#[test]
fn twostep_1_documents_every_subcommand() {
    let page = std::fs::read_to_string(source("twostep.1")).unwrap();
    for c in subcommands(&common::twostep_bin()) {
        assert!(
            page.contains(&format!("\n*{c}*")),
            "twostep(1) does not document `{c}`"
        );
    }
}

#[test]
fn twostep_self_1_documents_every_command_and_the_shipped_pam_file() {
    let page = std::fs::read_to_string(source("twostep-self.1")).unwrap();
    // Its setuid start refuses to go further without effective uid 0: as
    // root (as the tests run) --help lists the commands; else the six.
    let commands = if nix::unistd::geteuid().is_root() {
        subcommands(Path::new(env!("CARGO_BIN_EXE_twostep-self")))
    } else {
        [
            "status",
            "enroll",
            "devices",
            "remove-device",
            "recovery-codes",
            "disable",
        ]
        .map(String::from)
        .to_vec()
    };
    assert_eq!(commands.len(), 6, "{commands:?}");
    for c in commands {
        assert!(
            page.contains(&format!("\n*{c}*")),
            "twostep-self(1) does not document `{c}`"
        );
    }
    // The stack it shows is the file the package ships, line for line.
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("debian/twostep-self.pam"),
    )
    .unwrap();
    let stack: Vec<&str> = shipped
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .collect();
    assert!(!stack.is_empty());
    for line in stack {
        assert!(page.contains(line), "twostep-self(1) lacks {line:?}");
    }
    for key in ["self_service.enabled", "self_service.allow_disable"] {
        assert!(page.contains(key), "twostep-self(1) does not name {key}");
    }
}

#[test]
fn twostep_toml_5_documents_every_key_of_the_sample() {
    let sample =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("conf/twostep.toml"))
            .unwrap();
    let page = std::fs::read_to_string(source("twostep.toml.5")).unwrap();
    let mut keys = 0;
    for line in sample.lines() {
        if let Some(table) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            assert!(page.contains(&format!("# [{table}]")), "[{table}]");
            continue;
        }
        let Some(rest) = line.strip_prefix("# ") else {
            continue;
        };
        let Some((key, _)) = rest.split_once(" = ") else {
            continue;
        };
        if key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            keys += 1;
            assert!(
                page.contains(&format!("\n*{key}* = ")),
                "twostep.toml(5) does not document `{key}`"
            );
        }
    }
    assert!(keys >= 15, "parsed only {keys} keys from the sample");
}
