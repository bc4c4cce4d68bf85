//! A private OpenSSH server and the real `ssh` client, for end-to-end tests.
//!
//! sshd names its PAM service after its program name (`__progname`), so a
//! copy of /usr/sbin/sshd under a unique name (`twostep-e2e-<pid>-<test>`)
//! gets its own /etc/pam.d file without touching the system's `sshd` one.
//! That file is the only thing written outside the test's directory, and it
//! is removed when the server is dropped (or, after a crash, by the next run).
//!
//! The client answers keyboard-interactive prompts through SSH_ASKPASS with
//! SSH_ASKPASS_REQUIRE=force: a small script that picks the answer by the
//! prompt's text and notes every prompt it was shown.
#![allow(dead_code)]

pub use crate::common::wait_bounded;
use crate::common::{
    Rig, module, serve_on_free_port, stop_child as stop, sweep_stale_pam_services,
};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const PAM_DIR: &str = "/etc/pam.d";
const SERVICE_PREFIX: &str = "twostep-e2e-";

/// The canonical stack of the contract, then what sshd needs for the other
/// PAM types.
pub fn canonical_stack(config: &Path) -> String {
    stack_of(config, "preauth", "pam_unix.so")
}

/// The contract's stack for one answer (`preauth single`, pam_unix with
/// `use_first_pass`), then what sshd needs for the other PAM types.
pub fn single_stack(config: &Path) -> String {
    stack_of(config, "preauth single", "pam_unix.so use_first_pass")
}

fn stack_of(config: &Path, preauth: &str, unix: &str) -> String {
    let m = module();
    let (m, c) = (m.display(), config.display());
    format!(
        "# twostep end-to-end test; removed when the test ends\n\
         auth     requisite                    {m} config={c} {preauth}\n\
         auth     [success=1 default=ignore]   {unix}\n\
         auth     [default=die]                {m} config={c} authfail\n\
         auth     required                     {m} config={c}\n\
         account  required                     pam_unix.so\n\
         session  required                     pam_permit.so\n\
         password required                     pam_deny.so\n"
    )
}

fn run_ok(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A running private sshd. Stopped, and its PAM file and directory removed,
/// on drop.
pub struct Sshd {
    pub dir: PathBuf,
    /// The PAM service name: the name of the sshd copy.
    pub service: String,
    pub port: u16,
    pam_file: PathBuf,
    child: Child,
    logins: AtomicUsize,
}

/// What one `ssh` run did.
#[derive(Debug)]
pub struct SshLogin {
    /// ssh's exit code; None if it had to be killed.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The prompts the client was shown, in order, as ssh passed them to
    /// the askpass program (`(user@127.0.0.1) Password: `).
    pub prompts: Vec<String>,
}

impl SshLogin {
    /// Whether the remote command ran (it prints `marker`).
    pub fn logged_in(&self, marker: &str) -> bool {
        self.code == Some(0) && self.stdout.contains(marker)
    }

    /// The prompts without ssh's `(user@host) ` prefix.
    pub fn prompt_texts(&self) -> Vec<String> {
        self.prompts
            .iter()
            .map(|p| match p.split_once(") ") {
                Some((_, rest)) if p.starts_with('(') => rest.to_string(),
                _ => p.clone(),
            })
            .collect()
    }
}

/// The answers typed at the prompts; `None` refuses to answer that prompt.
#[derive(Debug, Clone, Default)]
pub struct Answers<'a> {
    pub password: Option<&'a str>,
    pub code: Option<&'a str>,
}

/// As [`Answers::code`]: answer the code prompt with the current code for
/// the secret in the `otpauth://` URI shown with it (enrollment at login).
pub const CODE_FROM_URI: &str = "@code-from-uri";

/// As [`Answers::code`], followed by a mailbox path: answer the code prompt
/// with the code of the first code message that arrives there (the test
/// removes the mailbox first).
pub const CODE_FROM_MAIL: &str = "@code-from-mail:";

/// sshd sends the PAM_TEXT_INFO messages that come before a prompt as part
/// of that prompt's text, so the script sees the URI of an enrollment at
/// login with the code prompt.
const ASKPASS: &str = r#"#!/bin/sh
# Answers ssh's prompts by their text, and notes each one it is shown.
printf '%s\n' "$1" >> "$TWOSTEP_E2E_LOGIN/prompts"
case "$1" in
    *"Verification code:"*) f=code ;;
    *"Password:"*) f=password ;;
    # ssh's own prompt for the password method.
    *"'s password: "*) f=password ;;
    *) exit 1 ;;
esac
[ -f "$TWOSTEP_E2E_LOGIN/$f" ] || exit 1
if [ "$f" = code ] && [ "$(cat "$TWOSTEP_E2E_LOGIN/code")" = "@code-from-uri" ]; then
    secret=$(printf '%s\n' "$1" | sed -n 's/.*otpauth:[^ ]*[?&]secret=\([A-Z2-7]*\).*/\1/p' | head -n 1)
    [ -n "$secret" ] || exit 1
    exec oathtool --totp -b "$secret"
fi
case "$(cat "$TWOSTEP_E2E_LOGIN/$f")" in
    @code-from-mail:*)
        mbox=$(sed 's/^@code-from-mail://' "$TWOSTEP_E2E_LOGIN/$f")
        i=0
        while [ $i -lt 300 ]; do
            code=$(grep -E '^ +[0-9]{6,10}$' "$mbox" 2>/dev/null | head -n 1 | tr -d ' ')
            [ -n "$code" ] && exec printf '%s\n' "$code"
            sleep 0.1
            i=$((i + 1))
        done
        exit 1 ;;
esac
exec cat "$TWOSTEP_E2E_LOGIN/$f"
"#;

impl Sshd {
    /// Starts sshd on 127.0.0.1 with the canonical stack pointing at the
    /// rig's config. `extra_config` is appended to sshd_config.
    pub fn start(rig: &Rig, name: &str, extra_config: &str) -> Sshd {
        Self::start_with_stack(name, extra_config, &canonical_stack(&rig.config))
    }

    /// Starts sshd with `stack` as its PAM service file.
    pub fn start_with_stack(name: &str, extra_config: &str, stack: &str) -> Sshd {
        Self::start_full(name, "", extra_config, stack)
    }

    /// Starts sshd with `before` ahead of the usual settings (sshd keeps
    /// the first value of a setting, so these win), `after` behind them
    /// (where `Match` blocks go), and `stack` as its PAM service file.
    pub fn start_full(name: &str, before: &str, after: &str, stack: &str) -> Sshd {
        let extra_config = after;
        assert!(
            Path::new("/usr/sbin/sshd").exists(),
            "/usr/sbin/sshd is missing: apt-get install openssh-server"
        );
        sweep_stale_pam_services(SERVICE_PREFIX);
        // The privilege-separation directory sshd chroots its pre-auth child to.
        if !Path::new("/run/sshd").exists() {
            std::fs::create_dir_all("/run/sshd").unwrap();
            std::fs::set_permissions("/run/sshd", std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let pid = std::process::id();
        let service = format!("{SERVICE_PREFIX}{pid}-{name}");
        let dir = PathBuf::from(format!("/tmp/twostep-sshd-{name}-{pid}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711)).unwrap();

        // A hard copy: the PAM service is the program's own name.
        let binary = dir.join(&service);
        std::fs::copy("/usr/sbin/sshd", &binary).unwrap();
        let host_key = dir.join("host_ed25519");
        run_ok(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "twostep-e2e", "-f"])
                .arg(&host_key),
            "ssh-keygen (host key)",
        );
        let keys_dir = dir.join("authorized_keys");
        std::fs::create_dir_all(&keys_dir).unwrap();
        let askpass = dir.join("askpass");
        std::fs::write(&askpass, ASKPASS).unwrap();
        std::fs::set_permissions(&askpass, std::fs::Permissions::from_mode(0o700)).unwrap();

        let pam_file = Path::new(PAM_DIR).join(&service);
        std::fs::write(&pam_file, stack).unwrap();

        let log = dir.join("sshd.log");
        let config = dir.join("sshd_config");
        let spawn = |port: u16| {
            std::fs::write(
                &config,
                format!(
                    "{before}\n\
                     Port {port}\n\
                     ListenAddress 127.0.0.1\n\
                     HostKey {host_key}\n\
                     PidFile {pidfile}\n\
                     UsePAM yes\n\
                     KbdInteractiveAuthentication yes\n\
                     PasswordAuthentication no\n\
                     PermitRootLogin no\n\
                     AuthorizedKeysFile {keys}/%u\n\
                     # The test tree lives under /tmp (mode 1777).\n\
                     StrictModes no\n\
                     UseDNS no\n\
                     PrintMotd no\n\
                     PrintLastLog no\n\
                     LogLevel VERBOSE\n\
                     {extra_config}\n",
                    host_key = host_key.display(),
                    pidfile = dir.join("sshd.pid").display(),
                    keys = keys_dir.display(),
                ),
            )
            .unwrap();
            Command::new(&binary)
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap()
        };
        let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
        let ready = |port: u16| {
            read_log().contains("Server listening on")
                && TcpStream::connect(("127.0.0.1", port)).is_ok()
        };
        match serve_on_free_port(spawn, ready, read_log, stop) {
            Ok((port, child)) => Sshd {
                dir,
                service,
                port,
                pam_file,
                child,
                logins: AtomicUsize::new(0),
            },
            Err(log) => {
                let _ = std::fs::remove_file(&pam_file);
                panic!("sshd did not start:\n{log}");
            }
        }
    }

    /// Authorizes a new client key for `user`; returns the private key path.
    pub fn client_key(&self, user: &str) -> PathBuf {
        let key = self.dir.join(format!("client_{user}"));
        let _ = std::fs::remove_file(&key);
        let _ = std::fs::remove_file(key.with_extension("pub"));
        run_ok(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", user, "-f"])
                .arg(&key),
            "ssh-keygen (client key)",
        );
        let public = std::fs::read_to_string(PathBuf::from(format!("{}.pub", key.display())))
            .expect("client public key");
        std::fs::write(self.dir.join("authorized_keys").join(user), public).unwrap();
        key
    }

    /// The sshd_config it runs with.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("sshd_config")
    }

    /// sshd's own log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("sshd.log")).unwrap_or_default()
    }

    /// Runs `ssh user@127.0.0.1 echo <marker>` with keyboard-interactive.
    pub fn ssh(&self, user: &str, answers: &Answers<'_>, marker: &str) -> SshLogin {
        self.ssh_with(user, answers, marker, &[])
    }

    /// Like [`Sshd::ssh`], with more client options (`-o ...`, `-i KEY`).
    /// Unless `extra` names its own, the client offers keyboard-interactive only.
    pub fn ssh_with(
        &self,
        user: &str,
        answers: &Answers<'_>,
        marker: &str,
        extra: &[&str],
    ) -> SshLogin {
        let n = self.logins.fetch_add(1, Ordering::SeqCst);
        let login_dir = self.dir.join(format!("login-{n}"));
        std::fs::create_dir_all(&login_dir).unwrap();
        std::fs::set_permissions(&login_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        if let Some(p) = answers.password {
            std::fs::write(login_dir.join("password"), format!("{p}\n")).unwrap();
        }
        if let Some(c) = answers.code {
            std::fs::write(login_dir.join("code"), format!("{c}\n")).unwrap();
        }
        let stdout = login_dir.join("stdout");
        let stderr = login_dir.join("stderr");
        let mut cmd = Command::new("ssh");
        cmd.args(["-F", "/dev/null", "-p", &self.port.to_string()])
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=no",
                "-o",
                "NumberOfPasswordPrompts=1",
                "-o",
                "ConnectTimeout=10",
                "-o",
                "LogLevel=ERROR",
                "-o",
                "IdentitiesOnly=yes",
            ]);
        if !extra
            .iter()
            .any(|a| a.starts_with("PreferredAuthentications"))
        {
            cmd.args(["-o", "PreferredAuthentications=keyboard-interactive"]);
        }
        let mut child = cmd
            .args(extra)
            .arg(format!("{user}@127.0.0.1"))
            .arg(format!("echo {marker}"))
            .env("SSH_ASKPASS", self.dir.join("askpass"))
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("TWOSTEP_E2E_LOGIN", &login_dir)
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("DISPLAY")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("ssh (apt-get install openssh-client)");
        let code = wait_bounded(&mut child, Duration::from_secs(60));
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        SshLogin {
            code,
            stdout: read(&stdout),
            stderr: read(&stderr),
            prompts: read(&login_dir.join("prompts"))
                .lines()
                .map(str::to_string)
                .collect(),
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        stop(&mut self.child);
        let _ = std::fs::remove_file(&self.pam_file);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
