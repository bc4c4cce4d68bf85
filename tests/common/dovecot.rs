//! A private Dovecot IMAP server whose PAM passdb is a test's stack, and
//! logins through Python's imaplib (an independent IMAP client).
//!
//! Each server has its own directory under /tmp (config, base_dir,
//! state_dir, log, mail), listens on 127.0.0.1 on a free port, and runs in
//! its own process group. Its PAM service, `ts-dv-<pid>-<name>`, is the one
//! file written outside that directory: /etc/pam.d/ts-dv-<pid>-<name>,
//! removed when the server is dropped (or, after a crash, by the next run).
//!
//! What Dovecot does with PAM (passdb-pam.c, 2.3): it never sets
//! PAM_AUTHTOK. Its conversation answers every echo-off prompt, however
//! many, with the password the client sent, every echo-on prompt with the
//! user name, and drops PAM_TEXT_INFO and PAM_ERROR_MSG: the client sees
//! only `NO [AUTHENTICATIONFAILED]`. It sets PAM_RHOST to the client's
//! address and PAM_TTY to `dovecot`, calls pam_acct_mgmt after a success,
//! and runs PAM in its auth-worker processes (root, up to 30 at once), so
//! parallel logins reach the module in parallel. Two settings matter here:
//! `auth_cache_size = 0` (the default; a cache, with a `cache_key` on the
//! PAM passdb, answers a repeated password without asking PAM: a spent
//! answer logs in again) and `auth_failure_delay = 0` (default 2 s: every
//! refusal is held that long, then answered on a 500 ms tick, refusals in
//! shuffled order; with 0, within about half a second). For the
//! tests' pace the auth penalty is off too (Dovecot delays each login from
//! an address after a refusal, 2 s doubling up to 15 s). And the auth
//! worker's `vsz_limit` is lifted: its default, 256M, is a hard limit that
//! root without CAP_SYS_RESOURCE (in a container) cannot raise, and the
//! module will not start sendmail under lower limits than its own.
#![allow(dead_code)]

use crate::common::{serve_on_free_port, stop_child, sweep_stale_pam_services, wait_bounded};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const PAM_DIR: &str = "/etc/pam.d";
/// The prefix of every PAM service these servers write.
const SERVICE_PREFIX: &str = "ts-dv-";
const DOVECOT: &str = "/usr/sbin/dovecot";

/// One IMAP LOGIN through imaplib: the password on stdin, one JSON line out.
const IMAP_LOGIN: &str = r#"
import imaplib, json, sys
port, user = int(sys.argv[1]), sys.argv[2]
password = sys.stdin.read()
try:
    m = imaplib.IMAP4("127.0.0.1", port, timeout=60)
    try:
        typ, data = m.login(user, password)
        print(json.dumps({"ok": typ == "OK", "reply": b" ".join(data).decode()}))
        m.logout()
    except imaplib.IMAP4.error as e:
        reply = e.args[0] if e.args else ""
        if isinstance(reply, bytes):
            reply = reply.decode()
        print(json.dumps({"ok": False, "reply": str(reply)}))
except Exception as e:
    print(json.dumps({"ok": False, "reply": "client: %r" % (e,)}))
"#;

/// What one IMAP LOGIN got.
#[derive(Debug, Clone)]
pub struct ImapLogin {
    /// The server answered the LOGIN with OK.
    pub ok: bool,
    /// The server's text (or the client's error).
    pub reply: String,
}

/// A running private Dovecot. Stopped (its whole process group), and its
/// PAM file and directory removed, on drop, whatever the test did.
pub struct Dovecot {
    pub dir: PathBuf,
    /// The PAM service name (its /etc/pam.d file), also Dovecot's instance name.
    pub service: String,
    pub port: u16,
    pam_file: PathBuf,
    child: Child,
}

/// The settings a test may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// A cache (`auth_cache_size = 1M`) and a cache key on the PAM passdb
    /// (without one Dovecot does not cache PAM's answers), as an
    /// administrator may set them up; by default none.
    pub auth_cache: bool,
    /// The auth worker's `vsz_limit`: `"0"` (none) by default, Dovecot's
    /// own default is `"256M"`.
    pub worker_vsz_limit: &'static str,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            auth_cache: false,
            worker_vsz_limit: "0",
        }
    }
}

/// Dovecot's configuration: nothing from /etc/dovecot.
fn config_text(dir: &Path, service: &str, port: u16, settings: Settings) -> String {
    let d = dir.display();
    let (cache_size, cache_key) = if settings.auth_cache {
        ("1M", "cache_key=%u ")
    } else {
        ("0", "")
    };
    let vsz_limit = settings.worker_vsz_limit;
    format!(
        "# twostep test: a private Dovecot, removed when the test ends\n\
         instance_name = {service}\n\
         base_dir = {d}/run\n\
         state_dir = {d}/state\n\
         log_path = {d}/dovecot.log\n\
         protocols = imap\n\
         listen = 127.0.0.1\n\
         ssl = no\n\
         disable_plaintext_auth = no\n\
         auth_mechanisms = plain login\n\
         # A cached success would let a repeated answer in without PAM.\n\
         auth_cache_size = {cache_size}\n\
         # Refusals answered at once (default 2 s), for the tests' pace.\n\
         auth_failure_delay = 0\n\
         auth_verbose = yes\n\
         # Logs each PAM prompt and its style (never the answer).\n\
         auth_debug = yes\n\
         default_internal_user = dovecot\n\
         default_login_user = dovenull\n\
         mail_location = maildir:{d}/mail/%u\n\
         passdb {{\n  driver = pam\n  args = {cache_key}{service}\n}}\n\
         userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home={d}/mail/%u\n}}\n\
         service imap-login {{\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n  \
         inet_listener imaps {{\n    port = 0\n  }}\n}}\n\
         # Dovecot's default vsz_limit (256M) is a hard RLIMIT_AS and RLIMIT_DATA\n\
         # on the process that runs PAM; the module starts sendmail with fixed,\n\
         # higher limits, which root without CAP_SYS_RESOURCE (a container's)\n\
         # cannot raise to: it would refuse to start it, and no code is mailed.\n\
         service auth-worker {{\n  vsz_limit = {vsz_limit}\n}}\n\
         # No auth penalty (up to 15 s per refusal from one address): the\n\
         # tests' pace; twostep's lockout is what they test.\n\
         service anvil {{\n  unix_listener anvil-auth-penalty {{\n    mode = 0\n  }}\n}}\n"
    )
}

impl Dovecot {
    /// Starts Dovecot with `stack` as its PAM service (auth lines; the
    /// account line Dovecot's pam_acct_mgmt needs is added).
    pub fn start(name: &str, stack: &str) -> Dovecot {
        Dovecot::start_with(name, stack, Settings::default())
    }

    /// [`Dovecot::start`] with other [`Settings`].
    pub fn start_with(name: &str, stack: &str, settings: Settings) -> Dovecot {
        assert!(
            Path::new(DOVECOT).exists(),
            "{DOVECOT} is missing: apt-get install dovecot-imapd"
        );
        sweep_stale_pam_services(SERVICE_PREFIX);
        let pid = std::process::id();
        let service = format!("{SERVICE_PREFIX}{pid}-{name}");
        let dir = PathBuf::from(format!("/tmp/twostep-dovecot-{name}-{pid}"));
        let _ = std::fs::remove_dir_all(&dir);
        // Dovecot's unprivileged login processes look into base_dir.
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mail = dir.join("mail");
        std::fs::create_dir_all(&mail).unwrap();
        // The mail processes run as nobody (the static userdb).
        std::fs::set_permissions(&mail, std::fs::Permissions::from_mode(0o1777)).unwrap();

        let pam_file = Path::new(PAM_DIR).join(&service);
        std::fs::write(
            &pam_file,
            format!(
                "# twostep Dovecot test; removed when the test ends\n{stack}\
                 account required pam_unix.so\n"
            ),
        )
        .unwrap();

        let log = dir.join("dovecot.log");
        let stderr = dir.join("stderr");
        let config = dir.join("dovecot.conf");
        let spawn = |port: u16| {
            std::fs::write(&config, config_text(&dir, &service, port, settings)).unwrap();
            let _ = std::fs::remove_file(&log);
            Command::new(DOVECOT)
                .arg("-F")
                .arg("-c")
                .arg(&config)
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&stderr).unwrap())
                // Its own group: the drop stops every process it started.
                .process_group(0)
                .spawn()
                .unwrap()
        };
        let read_log = || {
            std::fs::read_to_string(&log).unwrap_or_default()
                + &std::fs::read_to_string(&stderr).unwrap_or_default()
        };
        match serve_on_free_port(spawn, greets, read_log, stop_group) {
            Ok((port, child)) => Dovecot {
                dir,
                service,
                port,
                pam_file,
                child,
            },
            Err(log) => {
                let _ = std::fs::remove_file(&pam_file);
                let _ = std::fs::remove_dir_all(&dir);
                panic!("dovecot did not start:\n{log}");
            }
        }
    }

    /// Dovecot's own log so far (auth_debug: the PAM prompts it answered).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dovecot.log")).unwrap_or_default()
    }

    /// The messages Dovecot's PAM conversation was given (prompts, errors
    /// and information), in order, as its auth_debug log names them:
    /// `(style, text)`.
    pub fn pam_messages(&self) -> Vec<(u32, String)> {
        self.log()
            .lines()
            .filter_map(|l| {
                let (_, rest) = l.split_once(" style=")?;
                let (style, msg) = rest.split_once(" msg=")?;
                Some((style.parse().ok()?, msg.to_string()))
            })
            .collect()
    }

    /// One `LOGIN user password` through imaplib, on its own connection.
    pub fn login(&self, user: &str, password: &str) -> ImapLogin {
        self.spawn_login(user, password).finish()
    }

    /// A login left running, for parallel ones.
    pub fn spawn_login(&self, user: &str, password: &str) -> RunningLogin {
        let mut child = Command::new("python3")
            .args(["-c", IMAP_LOGIN])
            .arg(self.port.to_string())
            .arg(user)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(password.as_bytes())
            .unwrap();
        RunningLogin { child }
    }
}

/// An imaplib login under way.
pub struct RunningLogin {
    child: Child,
}

impl RunningLogin {
    /// Waits (at most 90 s) for its answer.
    pub fn finish(mut self) -> ImapLogin {
        let mut stdout = self.child.stdout.take().unwrap();
        let mut stderr = self.child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut out = String::new();
            let _ = stdout.read_to_string(&mut out);
            let _ = stderr.read_to_string(&mut out);
            out
        });
        let code = wait_bounded(&mut self.child, Duration::from_secs(90));
        let out = reader.join().unwrap();
        let parsed = out
            .lines()
            .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok());
        match (code, parsed) {
            (Some(0), Some(v)) => ImapLogin {
                ok: v["ok"].as_bool().unwrap(),
                reply: v["reply"].as_str().unwrap().to_string(),
            },
            _ => panic!("imaplib login did not finish ({code:?}): {out}"),
        }
    }
}

/// Whether an IMAP greeting comes from `port`.
fn greets(port: u16) -> bool {
    let Ok(conn) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let mut line = String::new();
    BufReader::new(conn).read_line(&mut line).is_ok() && line.starts_with("* OK")
}

/// Stops the master, then whatever of its group is left; reaps the master.
fn stop_group(child: &mut Child) {
    let group = nix::unistd::Pid::from_raw(child.id() as i32);
    stop_child(child);
    // The master stops its children on SIGTERM; a master that had to be
    // killed leaves them, and they are in its group.
    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        stop_group(&mut self.child);
        let _ = std::fs::remove_file(&self.pam_file);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
