//! twostep-self as it is installed, for the test files that drive it
//! (tests/self_service.rs, tests/self_devices.rs): the built binary copied
//! to a root-owned directory as root, mode 4755, run as real non-root
//! users on a real pty in a private mount namespace whose /etc holds the
//! test's `twostep/twostep.toml` and the shipped `pam.d/twostep-self`
//! (`etc_overlay`); and what its output and records are read with.
//!
//! Included with `#[path = "common/self_rig.rs"] mod self_rig;` by a test
//! crate that also has `mod common;`, `mod etc_overlay;` and `mod pty;`.
#![allow(dead_code)]

use crate::common::*;
use crate::etc_overlay::{EtcOverlay, install_twostep_self};
use crate::pty::Pty;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// The password of every test user of twostep-self.
pub const PASSWORD: &str = "self pass-W0rd";
pub const STEP: Duration = Duration::from_secs(30);
/// Self-service on, nothing else.
pub const ON: &str = "[self_service]\nenabled = true\n";

/// One installation: a rig (config, secret and state directories, syslog
/// socket), the /etc layer above the system's, and the installed binary.
pub struct SelfRig {
    pub rig: Rig,
    pub etc: EtcOverlay,
    pub bin_dir: PathBuf,
}

impl SelfRig {
    /// For `users`, made if missing, with [`PASSWORD`].
    pub fn new(name: &str, extra: &str, users: &[&str]) -> SelfRig {
        for user in users {
            ensure_user(user, Some(PASSWORD));
        }
        let rig = Rig::new(&format!("self-{name}"), extra);
        let etc = EtcOverlay::new(&rig.root);
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("debian/twostep-self.pam");
        etc.put("pam.d/twostep-self", &std::fs::read(shipped).unwrap());
        let s = SelfRig {
            bin_dir: install_twostep_self(name),
            rig,
            etc,
        };
        s.sync_config();
        s
    }

    /// Rewrites the config (the rig's, then the copy in /etc/twostep).
    pub fn configure(&self, extra: &str) {
        self.rig.write_config(extra);
        self.sync_config();
    }

    fn sync_config(&self) {
        self.etc.put(
            "twostep/twostep.toml",
            &std::fs::read(&self.rig.config).unwrap(),
        );
    }

    pub fn bin(&self) -> PathBuf {
        self.bin_dir.join("twostep-self")
    }

    /// `wrapper` + the binary + `args`.
    fn command_line(&self, wrapper: &[&str], args: &[&str]) -> Vec<String> {
        let bin = self.bin().display().to_string();
        let mut v: Vec<String> = wrapper.iter().map(|s| s.to_string()).collect();
        v.push(bin);
        v.extend(args.iter().map(|s| s.to_string()));
        v
    }

    /// On a pty, to be answered.
    pub fn spawn(&self, user: &str, wrapper: &[&str], args: &[&str]) -> Pty {
        let line = self.command_line(wrapper, args);
        let refs: Vec<&str> = line.iter().map(String::as_str).collect();
        self.etc.spawn(user, &refs)
    }

    /// Without a terminal (stdin /dev/null), for what asks nothing.
    pub fn command(&self, user: &str, wrapper: &[&str], args: &[&str]) -> Command {
        let line = self.command_line(wrapper, args);
        let refs: Vec<&str> = line.iter().map(String::as_str).collect();
        self.etc.command(user, &refs)
    }

    pub fn run(&self, user: &str, args: &[&str]) -> Output {
        self.command(user, &[], args).output().unwrap()
    }

    /// The records of twostep-self since the last call.
    pub fn records(&mut self) -> Vec<Event> {
        self.rig
            .events()
            .into_iter()
            .filter(|e| e.tag == "twostep-self")
            .collect()
    }

    pub fn secret_key(&self, user: &str) -> Option<String> {
        let text = std::fs::read_to_string(self.rig.secret_path(user)).ok()?;
        let doc: toml::Table = text.parse().unwrap();
        doc.get("secret")
            .and_then(|v| v.as_str())
            .map(str::to_string)
    }

    /// `twostep status USER --json` (the admin command) of `key`.
    pub fn status(&self, user: &str, key: &str) -> serde_json::Value {
        self.rig.status_json(user)[key].clone()
    }
}

/// The pid of the running installed binary of `s`.
pub fn running_pid(s: &SelfRig) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let exe = std::fs::read_link(e.path().join("exe")).ok()?;
        (exe == s.bin()).then_some(pid)
    })
}

impl Drop for SelfRig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.bin_dir);
    }
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Waits for `what` on the pty, or fails with what was shown.
pub fn expect(pty: &mut Pty, what: &str) {
    pty.expect_or_fail(what, STEP);
}

/// The secret of the otpauth:// URI shown last.
pub fn shown_secret(pty: &Pty) -> String {
    let out = pty.output();
    let at = out.rfind("secret=").expect("an otpauth URI") + "secret=".len();
    out[at..]
        .chars()
        .take_while(|c| c.is_ascii_uppercase() || ('2'..='7').contains(c))
        .collect()
}

/// The recovery codes shown last (`xxxxx-xxxxx`), in order.
pub fn shown_recovery_codes(pty: &Pty) -> Vec<String> {
    let out = pty.output();
    let last = out
        .rfind("Recovery codes for")
        .expect("recovery codes shown");
    let mut numbered: Vec<(u32, String)> = Vec::new();
    let words: Vec<&str> = out[last..].split_whitespace().collect();
    for pair in words.windows(2) {
        let code = pair[1];
        let plain = code.len() == 11
            && code.as_bytes()[5] == b'-'
            && code
                .chars()
                .all(|c| c == '-' || c.is_ascii_lowercase() || c.is_ascii_digit());
        if let (Some(n), true) = (pair[0].strip_suffix('.'), plain) {
            numbered.push((n.parse().unwrap(), code.to_string()));
        }
    }
    numbered.sort();
    numbered.into_iter().map(|(_, c)| c).collect()
}

/// The password prompt, answered.
pub fn password(pty: &mut Pty, password: &str) {
    expect(pty, "Password: ");
    pty.send_line(password);
}

/// Confirms a new app at `prompt`: the code of the secret shown.
pub fn confirm_new_app_at(pty: &mut Pty, prompt: &str) -> String {
    expect(pty, prompt);
    let secret = shown_secret(pty);
    fresh_step(5);
    pty.send_line(&oath_code(&secret, 0));
    secret
}

/// Confirms a new app: the code of the secret shown, at the prompt.
pub fn confirm_new_app(pty: &mut Pty) -> String {
    confirm_new_app_at(pty, "Code from the app (6 digits): ")
}

/// `args` as `user` on a pty, the password given, up to the code prompt.
pub fn up_to_the_code(s: &SelfRig, user: &str, wrapper: &[&str], args: &[&str]) -> Pty {
    let mut pty = s.spawn(user, wrapper, args);
    password(&mut pty, PASSWORD);
    expect(&mut pty, "Verification code: ");
    pty
}

pub fn events_named<'a>(records: &'a [Event], event: &str) -> Vec<&'a Event> {
    records.iter().filter(|e| e.event() == event).collect()
}

/// Records never carry a code, a secret or a recovery code.
pub fn assert_no_secrets(records: &[Event], secrets: &[&str]) {
    for r in records {
        for s in secrets {
            assert!(!r.raw.contains(s), "{s} in {}", r.raw);
        }
    }
}
