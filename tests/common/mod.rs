//! The integration-test rig: the built `pam_twostep.so` loaded by the real
//! libpam (through `pamdrive`, a small C client using pam_start_confdir),
//! real users and groups, codes from oathtool, and records read from a real
//! syslog socket (datagram, or stream as syslog-ng's unix-stream()).
//!
//! Needs root (users, root-owned secret files) and the packages that
//! `.ci/run` installs: pamtester's libpam headers, oathtool, a C compiler.
#![allow(dead_code)]

pub mod dovecot;
pub mod mail;
pub mod redis;
pub mod sentinel;

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub const SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
/// The start of a command line run in a private mount namespace, whose
/// mounts go with the process and never reach the system's.
pub const PRIVATE_MOUNTS: [&str; 5] = ["unshare", "--mount", "--propagation", "private", "--"];
pub const PAM_SUCCESS: i32 = 0;
pub const PAM_AUTH_ERR: i32 = 7;
pub const PAM_CONV_ERR: i32 = 19;
fn target_dir() -> PathBuf {
    // tests run from target/<profile>/deps/<test>-<hash>
    let exe = std::env::current_exe().unwrap();
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// The module under test, as `cargo build` left it.
pub fn module() -> PathBuf {
    let p = target_dir().join("libpam_twostep.so");
    assert!(
        p.exists(),
        "{} is missing: run cargo build first",
        p.display()
    );
    p
}

/// The one-answer stack of the contract (`preauth single`, then pam_unix
/// with `use_first_pass`, without its failure delay) for `module`.
pub fn single_stack(module: &Path, config: &Path) -> String {
    format!(
        "auth requisite {m} config={c} preauth single\n\
         auth [success=1 default=ignore] pam_unix.so nodelay use_first_pass\n\
         auth [default=die] {m} config={c} authfail\n\
         auth required {m} config={c}\n",
        m = module.display(),
        c = config.display()
    )
}

pub fn twostep_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_twostep"))
}

pub fn compile_c(name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/c/{name}.c"));
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let tmp = out.with_extension(format!("tmp{}", std::process::id()));
    let status = Command::new("cc")
        .args(["-O2", "-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&tmp)
        .arg(&src)
        .arg("-lpam")
        .status()
        .expect("cc");
    assert!(status.success(), "compiling {name}.c failed");
    std::fs::rename(&tmp, &out).unwrap();
    out
}

pub fn pamdrive() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| compile_c("pamdrive"))
}

/// tests/c/stopper.c: what a local user does to stop a setuid program at
/// the moment it holds locks (tests/stopped_caller.rs).
pub fn stopper() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| compile_c("stopper"))
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Sleeps until at least `margin` seconds remain in the current 30 s step, so
/// that a code computed now is still in the same step when the module checks it.
pub fn fresh_step(margin: u64) {
    loop {
        let into = now() % 30;
        if 30 - into > margin {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A code from oathtool, the independent implementation, for `step_offset`
/// steps from now.
pub fn oath_code(secret: &str, step_offset: i64) -> String {
    oath_code_at(
        secret,
        (now() as i64 + step_offset * 30) as u64,
        "SHA1",
        6,
        30,
    )
}

pub fn oath_code_at(secret: &str, unix: u64, alg: &str, digits: u8, period: u32) -> String {
    let out = Command::new("oathtool")
        .arg(format!("--totp={alg}"))
        .args([
            "-b",
            secret,
            "-d",
            &digits.to_string(),
            "-s",
            &format!("{period}s"),
        ])
        .arg("-N")
        .arg(format!("@{unix}"))
        .output()
        .expect("oathtool (apt-get install oathtool)");
    assert!(
        out.status.success(),
        "oathtool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// oathtool's 6-digit SHA1 code of `secret` for the 30 s step starting at `t`.
pub fn code_at(secret: &str, t: u64) -> String {
    oath_code_at(secret, t, "SHA1", 6, 30)
}

/// A code for SECRET that the window (skew 1) does not accept now.
pub fn wrong_code() -> String {
    let window: Vec<String> = (-1..=1).map(|s| oath_code(SECRET, s)).collect();
    (0..)
        .map(|i| format!("{:06}", (424_242 + i * 7_919) % 1_000_000))
        .find(|c| !window.contains(c))
        .unwrap()
}

/// Serializes changes to /etc/passwd across test processes.
pub fn with_account_lock<T>(f: impl FnOnce() -> T) -> T {
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/twostep-tests-accounts.lock")
        .unwrap();
    lock.lock().unwrap();
    let r = f();
    lock.unlock().unwrap();
    r
}

/// A real account (created once, kept), with `password` if given.
pub fn ensure_user(name: &str, password: Option<&str>) {
    with_account_lock(|| {
        let exists = Command::new("id")
            .arg("-u")
            .arg(name)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success();
        if !exists {
            let st = Command::new("useradd")
                .args(["-M", "-N", "-s", "/bin/sh", name])
                .status()
                .unwrap();
            assert!(st.success(), "useradd {name}");
        }
        if let Some(pw) = password {
            let mut child = Command::new("chpasswd")
                .stdin(Stdio::piped())
                .spawn()
                .unwrap();
            writeln!(child.stdin.take().unwrap(), "{name}:{pw}").unwrap();
            assert!(child.wait().unwrap().success(), "chpasswd {name}");
        }
    });
}

pub fn ensure_group(name: &str, members: &[&str]) {
    with_account_lock(|| {
        let exists = Command::new("getent")
            .args(["group", name])
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success();
        if !exists {
            assert!(
                Command::new("groupadd")
                    .arg(name)
                    .status()
                    .unwrap()
                    .success()
            );
        }
        for m in members {
            assert!(
                Command::new("gpasswd")
                    .args(["-a", m, name])
                    .stdout(Stdio::null())
                    .status()
                    .unwrap()
                    .success()
            );
        }
    });
}

/// One isolated installation: its own PAM config dir, config file, secret and
/// state directories, and syslog socket.
pub struct Rig {
    pub root: PathBuf,
    pub confdir: PathBuf,
    pub config: PathBuf,
    pub secret_dir: PathBuf,
    pub state_dir: PathBuf,
    pub log_path: PathBuf,
    records: Records,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

type Records = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// The type of a rig's syslog socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogSocket {
    /// SOCK_DGRAM, as journald's and rsyslog's /dev/log.
    Datagram,
    /// SOCK_STREAM, as syslog-ng's unix-stream(): each NUL-terminated frame
    /// is a record; a frame without its NUL is kept as `UNTERMINATED <text>`.
    Stream,
}

impl LogSocket {
    /// Binds `path` and starts a thread that collects its records until `stop`.
    fn listen(
        self,
        path: &Path,
        records: Records,
        stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) {
        let running = move || !stop.load(std::sync::atomic::Ordering::Relaxed);
        match self {
            LogSocket::Datagram => {
                let sock = UnixDatagram::bind(path).unwrap();
                sock.set_read_timeout(Some(Duration::from_millis(50)))
                    .unwrap();
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 65536];
                    while running() {
                        if let Ok(n) = sock.recv(&mut buf) {
                            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                            records.lock().unwrap().push(text);
                        }
                    }
                });
            }
            LogSocket::Stream => {
                let listener = UnixListener::bind(path).unwrap();
                listener.set_nonblocking(true).unwrap();
                std::thread::spawn(move || {
                    while running() {
                        let Ok((mut conn, _)) = listener.accept() else {
                            std::thread::sleep(Duration::from_millis(20));
                            continue;
                        };
                        conn.set_nonblocking(false).unwrap();
                        conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                        let mut bytes = Vec::new();
                        let _ = std::io::Read::read_to_end(&mut conn, &mut bytes);
                        let mut records = records.lock().unwrap();
                        for frame in bytes.split_inclusive(|&b| b == 0) {
                            records.push(match frame.strip_suffix(b"\0") {
                                Some(text) => String::from_utf8_lossy(text).into_owned(),
                                None => format!("UNTERMINATED {}", String::from_utf8_lossy(frame)),
                            });
                        }
                    }
                });
            }
        }
    }
}

pub struct Login {
    pub code: i32,
    pub out: String,
}

impl Login {
    pub fn prompts(&self) -> usize {
        self.out
            .lines()
            .filter(|l| l.starts_with("PROMPT_"))
            .count()
    }
    pub fn errors(&self) -> Vec<&str> {
        self.out
            .lines()
            .filter_map(|l| l.strip_prefix("ERROR: "))
            .collect()
    }
}

impl Rig {
    /// `extra_config` is appended to the generated config (TOML).
    pub fn new(name: &str, extra_config: &str) -> Rig {
        Rig::with_log(name, extra_config, LogSocket::Datagram)
    }

    /// [`Rig::new`] with a syslog socket of the given type.
    pub fn with_log(name: &str, extra_config: &str, log_socket: LogSocket) -> Rig {
        let root = PathBuf::from(format!("/tmp/twostep-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).unwrap();
        let confdir = root.join("pam.d");
        let secret_dir = root.join("secrets");
        let state_dir = root.join("state");
        for d in [&confdir, &secret_dir, &state_dir] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        // As the package makes it: the secret directory is the real one.
        std::fs::write(secret_dir.join(".twostep-secret-dir"), b"").unwrap();
        let log_path = root.join("log.sock");
        let records = Records::default();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        log_socket.listen(&log_path, records.clone(), stop.clone());
        let config = root.join("twostep.toml");
        let rig = Rig {
            root,
            confdir,
            config,
            secret_dir,
            state_dir,
            log_path,
            records,
            stop,
        };
        rig.write_config(extra_config);
        let m = module();
        let c = rig.config.display().to_string();
        rig.service(
            "twostep",
            &format!("auth required {} config={c}\n", m.display()),
        );
        rig.service(
            "stack",
            &format!(
                "auth requisite {m} config={c} preauth\n\
                 auth [success=1 default=ignore] pam_unix.so nodelay\n\
                 auth [default=die] {m} config={c} authfail\n\
                 auth required {m} config={c}\n",
                m = m.display()
            ),
        );
        rig.service("other", "auth required pam_deny.so\n");
        rig
    }

    pub fn write_config(&self, extra: &str) {
        let text = format!(
            "secret_dir = \"{}\"\nstate_dir = \"{}\"\n{extra}\n[log]\nsocket = \"{}\"\n",
            self.secret_dir.display(),
            self.state_dir.display(),
            self.log_path.display()
        );
        std::fs::write(&self.config, text).unwrap();
    }

    pub fn service(&self, name: &str, text: &str) {
        std::fs::write(self.confdir.join(name), text).unwrap();
    }

    /// Runs the real CLI against this rig's config.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(twostep_bin())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("TWOSTEP_CONFIG")
            .output()
            .unwrap()
    }

    /// Enrolls `user` with `secret` (given on stdin), replacing any enrollment.
    pub fn enroll(&self, user: &str, secret: &str) {
        self.enroll_json_secret(user, secret, &["--force"]);
    }

    /// The files in secret_dir but its marker, recursively.
    pub fn secret_files(&self) -> Vec<PathBuf> {
        let marker = self.secret_dir.join(".twostep-secret-dir");
        files_under(&self.secret_dir)
            .into_iter()
            .filter(|f| *f != marker)
            .collect()
    }

    pub fn secret_path(&self, user: &str) -> PathBuf {
        self.secret_dir.join(user)
    }

    pub fn state_path(&self, user: &str) -> PathBuf {
        self.state_dir.join(user)
    }

    /// The magic of each slot of `user`'s state file (`TWOSTEP5`...).
    pub fn slot_magics(&self, user: &str) -> Vec<String> {
        let bytes = std::fs::read(self.state_path(user)).unwrap();
        bytes
            .chunks(1024)
            .map(|slot| String::from_utf8_lossy(&slot[..8]).into_owned())
            .collect()
    }

    /// A login through pamdrive, left running with stdin and stdout piped
    /// (stderr discarded): for tests that answer later, in parallel, or kill it.
    pub fn spawn_login(
        &self,
        service: &str,
        user: &str,
        items: &[(&str, &str)],
    ) -> std::process::Child {
        self.login_command(&[], service, user, items)
            .spawn()
            .unwrap()
    }

    /// A login through pamdrive, answered one prompt at a time.
    pub fn live_login(&self, service: &str, user: &str, items: &[(&str, &str)]) -> LiveLogin {
        LiveLogin::spawn(self.login_command(&[], service, user, items))
    }

    /// The pamdrive command of a login, run through `wrapper` (a command
    /// that ends by exec'ing its arguments, such as `sh -c '...; exec "$@"'
    /// sh`), with stdin and stdout piped and stderr discarded.
    pub fn login_command(
        &self,
        wrapper: &[&std::ffi::OsStr],
        service: &str,
        user: &str,
        items: &[(&str, &str)],
    ) -> Command {
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(pamdrive());
                c
            }
            None => Command::new(pamdrive()),
        };
        cmd.arg("--confdir").arg(&self.confdir).args([
            "--service",
            service,
            "--user",
            user,
            "--nodelay",
        ]);
        for (k, v) in items {
            cmd.arg(format!("--{k}")).arg(v);
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        cmd
    }

    /// A script for a `pam_exec.so quiet` line placed just before the
    /// password module: it appends a line to `log` for every password
    /// checked, even where the login runs under a file size limit.
    pub fn password_counter(&self, log: &Path) -> PathBuf {
        let script = self.root.join("count.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nulimit -f unlimited\necho x >> {}\n",
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    /// `twostep status USER --json`, which must succeed.
    pub fn status_json(&self, user: &str) -> serde_json::Value {
        let out = self.cli(&["status", user, "--json"]);
        assert!(
            out.status.success(),
            "status {user}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The module's records since the last call, without the admin CLI's.
    pub fn module_events(&mut self) -> Vec<Event> {
        self.events()
            .into_iter()
            .filter(|e| e.tag == "pam_twostep")
            .collect()
    }

    pub fn login_with(
        &self,
        service: &str,
        user: &str,
        answers: &[&str],
        items: &[(&str, &str)],
    ) -> Login {
        run_login(self.login_command(&[], service, user, items), answers)
    }

    pub fn login(&self, user: &str, answer: &str) -> Login {
        self.login_with(
            "twostep",
            user,
            &[answer],
            &[("rhost", "192.0.2.10"), ("tty", "ssh")],
        )
    }

    /// All records received since the last call. A reader thread takes
    /// them off the socket as they come (a datagram socket's queue holds only
    /// a few), and this waits until none has arrived for a moment.
    pub fn drain(&mut self) -> Vec<String> {
        let quiet = Duration::from_millis(150);
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut seen = usize::MAX;
        loop {
            let n = self.records.lock().unwrap().len();
            if n == seen || Instant::now() > deadline {
                break;
            }
            seen = n;
            std::thread::sleep(quiet);
        }
        std::mem::take(&mut *self.records.lock().unwrap())
    }

    /// The `key=value` part of the records received since the last call.
    pub fn events(&mut self) -> Vec<Event> {
        self.drain().iter().map(|raw| Event::parse(raw)).collect()
    }

    /// Every file in the secret and state directories (names only).
    pub fn files(&self) -> Vec<String> {
        let mut v = vec![];
        for d in [&self.secret_dir, &self.state_dir] {
            for e in std::fs::read_dir(d).unwrap() {
                v.push(e.unwrap().file_name().to_string_lossy().into_owned());
            }
        }
        v.sort();
        v
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// One pamdrive run answered as it goes, as a person at a terminal would:
/// what the module shows is read line by line up to each prompt.
pub struct LiveLogin {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    out: std::io::BufReader<std::process::ChildStdout>,
    seen: String,
}

impl LiveLogin {
    /// Starts `cmd`, a login command (see [`Rig::login_command`]).
    pub fn spawn(mut cmd: Command) -> LiveLogin {
        let mut child = cmd.spawn().unwrap();
        let stdin = child.stdin.take();
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        LiveLogin {
            child,
            stdin,
            out,
            seen: String::new(),
        }
    }

    /// Reads up to the next prompt (or the end); returns what was read.
    pub fn until_prompt(&mut self) -> String {
        use std::io::BufRead;
        let mut chunk = String::new();
        loop {
            let mut line = String::new();
            if self.out.read_line(&mut line).unwrap() == 0 {
                break;
            }
            chunk.push_str(&line);
            if line.starts_with("PROMPT_") || line.starts_with("RESULT:") {
                break;
            }
        }
        self.seen.push_str(&chunk);
        chunk
    }

    pub fn answer(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(format!("{text}\n").as_bytes()).unwrap();
        stdin.flush().unwrap();
    }

    /// Closes stdin, reads the rest and waits for the result.
    pub fn finish(mut self) -> Login {
        drop(self.stdin.take());
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.out, &mut rest).unwrap();
        self.seen.push_str(&rest);
        let code = self.child.wait().unwrap().code().unwrap_or(-1);
        Login {
            code,
            out: self.seen,
        }
    }
}

/// Runs a login command (see [`Rig::login_command`]): `answers` are typed
/// at the prompts in order.
pub fn run_login(mut cmd: Command, answers: &[&str]) -> Login {
    let mut child = cmd.spawn().unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        for a in answers {
            // The module may stop asking early; a closed pipe is fine.
            let _ = stdin.write_all(a.as_bytes());
            let _ = stdin.write_all(b"\n");
        }
    }
    let out = child.wait_with_output().unwrap();
    Login {
        code: out.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

/// Removes the /etc/pam.d files named `<prefix><pid>-...` whose test
/// process is gone (a crash skips the server's drop, which removes them).
pub fn sweep_stale_pam_services(prefix: &str) {
    let Ok(entries) = std::fs::read_dir("/etc/pam.d") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Starts a server on a free port of 127.0.0.1: `spawn(port)` starts it,
/// `ready(port)` says whether it answers yet, `log()` is what it said.
/// A port found free may be taken before the server binds it, so a start
/// that failed with "Address already in use" is tried again on another.
/// Returns the port and the running server, or the log of a failed start
/// (that server stopped and reaped by `stop`).
pub fn serve_on_free_port(
    mut spawn: impl FnMut(u16) -> std::process::Child,
    ready: impl Fn(u16) -> bool,
    log: impl Fn() -> String,
    stop: impl Fn(&mut std::process::Child),
) -> Result<(u16, std::process::Child), String> {
    let mut last_log = String::new();
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = spawn(port);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if ready(port) {
                return Ok((port, child));
            }
            last_log = log();
            if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                stop(&mut child);
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !last_log.contains("Address already in use") {
            break;
        }
    }
    Err(last_log)
}

/// Whether root here may raise a hard resource limit: CAP_SYS_RESOURCE
/// in the bounding set (some containers and VMs drop it).
pub fn root_may_raise_hard_limits() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let bounding = status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
        .unwrap();
    bounding & (1 << 24) != 0
}

/// Waits for a child with a deadline; kills it when the deadline passes.
/// Returns the exit code, or None if it had to be killed.
pub fn wait_bounded(child: &mut std::process::Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st.code().unwrap_or(-1));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends a server SIGTERM, waits a little, then SIGKILL; always reaps it.
pub fn stop_child(child: &mut std::process::Child) {
    if child.try_wait().ok().flatten().is_some() {
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    if wait_bounded(child, Duration::from_secs(5)).is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The number of lines in a file (0 when it does not exist).
pub fn lines_in(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

/// How many records of `event` there are.
pub fn count(events: &[Event], event: &str) -> usize {
    events.iter().filter(|e| e.event() == event).count()
}

/// A parsed record.
#[derive(Debug, Clone)]
pub struct Event {
    pub raw: String,
    pub tag: String,
    pub fields: Vec<(String, String)>,
}

impl Event {
    pub fn parse(raw: &str) -> Event {
        let (head, body) = raw.split_once("]: ").unwrap_or(("", raw));
        let tag = head
            .rsplit(' ')
            .next()
            .unwrap_or("")
            .split('[')
            .next()
            .unwrap_or("")
            .to_string();
        let mut fields = vec![];
        let mut rest = body;
        while !rest.is_empty() {
            let (k, after) = rest.split_once('=').unwrap();
            let (v, next) = if let Some(q) = after.strip_prefix('"') {
                let mut out = String::new();
                let mut chars = q.char_indices();
                let mut end = q.len();
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, n)) = chars.next() {
                                out.push(n);
                            }
                        }
                        '"' => {
                            end = i + 1;
                            break;
                        }
                        c => out.push(c),
                    }
                }
                (out, q[end..].trim_start())
            } else {
                let (v, n) = after.split_once(' ').unwrap_or((after, ""));
                (v.to_string(), n)
            };
            fields.push((k.to_string(), v));
            rest = next;
        }
        Event {
            raw: raw.to_string(),
            tag,
            fields,
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn event(&self) -> &str {
        self.get("event").unwrap_or("")
    }

    pub fn keys(&self) -> Vec<&str> {
        self.fields.iter().map(|(k, _)| k.as_str()).collect()
    }
}

pub fn mode_of(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().mode() & 0o7777
}

// ---- enrollment helpers (tests/enroll.rs, recovery.rs, import_ga.rs) ----------

impl Rig {
    /// Runs the real CLI with `stdin` as its (non-terminal) standard input.
    pub fn cli_stdin(&self, args: &[&str], stdin: &str) -> std::process::Output {
        let mut child = self.cli_spawn(args);
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        child.wait_with_output().unwrap()
    }

    /// Starts the real CLI with its standard streams piped, for a test that
    /// answers later (a code that has yet to arrive).
    pub fn cli_spawn(&self, args: &[&str]) -> std::process::Child {
        Command::new(twostep_bin())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("TWOSTEP_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// `twostep enroll --batch LIST --out-dir OUT_DIR [extra]`.
    pub fn enroll_batch(
        &self,
        list: &Path,
        out_dir: &Path,
        extra: &[&str],
    ) -> std::process::Output {
        let mut args = vec![
            "enroll",
            "--batch",
            list.to_str().unwrap(),
            "--out-dir",
            out_dir.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        self.cli(&args)
    }

    /// Runs the real CLI as `nobody` (uid and gid 65534, no groups), with a
    /// world-readable copy of this rig's config.
    pub fn cli_as_nobody(&self, args: &[&str]) -> std::process::Output {
        let copy = PathBuf::from(format!(
            "/tmp/twostep-test-nobody-{}.toml",
            std::process::id()
        ));
        std::fs::copy(&self.config, &copy).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(twostep_bin())
            .arg("--config")
            .arg(&copy)
            .args(args)
            .env_remove("TWOSTEP_CONFIG")
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&copy);
        out
    }

    /// `twostep enroll USER --no-confirm --qr none --json [extra]`: the object.
    pub fn enroll_json(&self, user: &str, extra: &[&str]) -> serde_json::Value {
        self.enroll_json_stdin(user, extra, "")
    }

    /// [`Rig::enroll_json`] with `--secret-file -` and `secret` on stdin.
    pub fn enroll_json_secret(
        &self,
        user: &str,
        secret: &str,
        extra: &[&str],
    ) -> serde_json::Value {
        let mut args = vec!["--secret-file", "-"];
        args.extend_from_slice(extra);
        self.enroll_json_stdin(user, &args, &format!("{secret}\n"))
    }

    fn enroll_json_stdin(&self, user: &str, extra: &[&str], stdin: &str) -> serde_json::Value {
        let mut args = vec!["enroll", user, "--no-confirm", "--qr", "none", "--json"];
        args.extend_from_slice(extra);
        let out = self.cli_stdin(&args, stdin);
        assert!(
            out.status.success(),
            "enroll {user}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "enroll --json printed more than one JSON object ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// `twostep enroll USER --secret-file -` with `secret`: the recovery
    /// codes it printed, as shown (`xxxxx-xxxxx`).
    pub fn enroll_with_recovery_codes(&self, user: &str, secret: &str) -> Vec<String> {
        self.enroll_json_secret(user, secret, &[])["recovery_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect()
    }

    /// The `recovery_codes` hashes in a user's secret file.
    pub fn stored_recovery_hashes(&self, user: &str) -> Vec<String> {
        let text = std::fs::read_to_string(self.secret_path(user)).unwrap();
        let doc: toml::Table = text.parse().unwrap();
        doc.get("recovery_codes")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    }
}

/// Every regular file under `dir`, recursively (hidden ones included).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.is_dir() {
            out.extend(files_under(&p));
        } else if meta.is_file() {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The files under `dir` whose bytes contain `needle` (case-insensitive).
pub fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let needle = needle.to_ascii_lowercase();
    files_under(dir)
        .into_iter()
        .filter(|p| {
            let bytes = std::fs::read(p).unwrap_or_default().to_ascii_lowercase();
            bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
        })
        .collect()
}

/// The text of a QR code image, decoded by zbar (apt: zbar-tools), an
/// implementation independent of ours.
pub fn zbar_decode(image: &Path) -> String {
    // QR codes only: the other symbologies' decoders now and then read a
    // few modules of a QR drawing as a short bar code of their own (a run
    // printed the URI and then "C37C").
    let out = Command::new("zbarimg")
        .args(["--raw", "-q", "-Sdisable", "-Sqrcode.enable"])
        .arg(image)
        .output()
        .expect("zbarimg (apt-get install zbar-tools)");
    assert!(
        out.status.success(),
        "zbarimg found no QR code in {}",
        image.display()
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .trim_end()
        .to_string()
}

/// An expect(1) script that runs `spawn` on a real pty, then `body` (the
/// dialogue), waits for the end and prints `EXIT=<status> SIGNALLED=<...>`.
pub fn pty_script(spawn: &str, body: &str) -> String {
    format!(
        r#"
set timeout 30
spawn {spawn}
{body}
expect eof
catch wait result
puts "EXIT=[lindex $result 3] SIGNALLED=[lindex $result 2]"
"#
    )
}

/// Runs an expect(1) script (apt: expect): the real pty a person types into.
pub fn expect_script(script: &str) -> std::process::Output {
    Command::new("expect")
        .arg("-c")
        .arg(script)
        .output()
        .expect("expect (apt-get install expect)")
}

/// Rebuilds the modules of a terminal QR drawing as a PNG, for zbarimg: each
/// character is two module rows (half blocks). `light_glyph`: whether a
/// glyph's ink is a light module (the utf8 style) or a dark one (ansi).
pub fn qr_drawing_to_png(lines: &[impl AsRef<str>], light_glyph: bool, path: &Path) {
    let cols = lines[0].as_ref().chars().count();
    let scale = 8;
    let (w, h) = (cols * scale, lines.len() * 2 * scale);
    let mut pixels = vec![255u8; w * h];
    for (ly, line) in lines.iter().enumerate() {
        for (x, ch) in line.as_ref().chars().enumerate() {
            let (top, bottom) = match ch {
                '\u{2588}' => (true, true),
                '\u{2580}' => (true, false),
                '\u{2584}' => (false, true),
                ' ' => (false, false),
                other => panic!("unexpected {other:?} in the drawing"),
            };
            for (dy, ink) in [(0, top), (1, bottom)] {
                if ink != light_glyph {
                    for py in 0..scale {
                        let row = ((ly * 2 + dy) * scale + py) * w + x * scale;
                        pixels[row..row + scale].fill(0);
                    }
                }
            }
        }
    }
    let mut enc = png::Encoder::new(std::fs::File::create(path).unwrap(), w as u32, h as u32);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()
        .unwrap()
        .write_image_data(&pixels)
        .unwrap();
}

// ---- faked time (tests/lockout.rs, cli_review.rs; apt: libfaketime) ------------

pub const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// A code-step login whose clock libfaketime reads from `offset_file` at
/// every call: the file is made with `+0`, and the test moves the clock
/// while the login runs by writing `+40`, `-120`...
pub fn login_with_moving_clock(
    rig: &Rig,
    user: &str,
    offset_file: &Path,
    items: &[(&str, &str)],
) -> LiveLogin {
    std::fs::write(offset_file, "+0\n").unwrap();
    let mut cmd = rig.login_command(&[], "twostep", user, items);
    cmd.env("LD_PRELOAD", FAKETIME_LIB)
        .env("FAKETIME_TIMESTAMP_FILE", offset_file)
        .env("FAKETIME_NO_CACHE", "1")
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    LiveLogin::spawn(cmd)
}

/// One login through the code step with the module's clock starting at
/// `unix` (libfaketime), whatever the real time.
pub fn login_at(rig: &Rig, user: &str, answer: &str, unix: u64) -> Login {
    assert!(
        Path::new(FAKETIME_LIB).exists(),
        "apt-get install libfaketime"
    );
    let mut child = Command::new(pamdrive())
        .arg("--confdir")
        .arg(&rig.confdir)
        .args(["--service", "twostep", "--user", user, "--nodelay"])
        .env("LD_PRELOAD", FAKETIME_LIB)
        .env("FAKETIME", format!("@{}", fmt_time(unix)))
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
        .env("FAKETIME_NO_CACHE", "1")
        .env("TZ", "UTC")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        let _ = writeln!(stdin, "{answer}");
    }
    let out = child.wait_with_output().unwrap();
    Login {
        code: out.status.code().unwrap_or(-1),
        out: String::from_utf8_lossy(&out.stdout).into_owned(),
    }
}

/// "YYYY-MM-DD hh:mm:ss" in UTC, libfaketime's absolute format.
fn fmt_time(unix: u64) -> String {
    date_utc(unix, "+%Y-%m-%d %H:%M:%S")
}

/// RFC 3339 in UTC, as records write `until` (by date(1), not our code).
pub fn rfc3339(unix: u64) -> String {
    date_utc(unix, "+%Y-%m-%dT%H:%M:%SZ")
}

pub fn date_utc(unix: u64, format: &str) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{unix}"), format])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
