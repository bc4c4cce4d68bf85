//! The delivery layer against real programs: recording, failing and hanging
//! fakes written by each test, the real exim4 sendmail delivering to a real
//! mailbox, and the example SMS sender against a local HTTP listener.
//!
//! Needs root (a test user, root-owned programs) and the `test` packages of
//! packages.sh (exim4-daemon-light, curl, python3). Every test that runs a
//! program holds SERIAL: signal dispositions are process-wide, and "no child
//! is left" is checked on the whole test process.

mod common;
use common::mail::{ensure_mail_user, parsed_messages};

use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;
use pam_twostep::base::address::{self, EmailAddress, PhoneNumber};
use pam_twostep::delivery::child::Identity;
use pam_twostep::delivery::{
    self, Code, DeliveryError, Login, Program, RunError, Sender, message, spawn,
};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn root() -> Identity {
    Identity::root()
}

/// A fresh root-owned 0755 directory under /tmp (sticky, so acceptable to
/// program_problem as a parent).
fn scratch(name: &str) -> PathBuf {
    let d = PathBuf::from(format!(
        "/tmp/twostep-delivery-{}-{name}",
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir(&d).unwrap();
    fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// A POSIX sh program, root-owned, mode 0755.
fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, format!("#!/bin/sh\n{body}")).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Records what it was given: argv, stdin, its initial environment (the
/// kernel's copy: a shell adds PWD of its own), its descriptors, signal
/// state and process group.
const RECORDER: &str = r#"# First, and by the shell itself: while dash forks it blocks every signal
# in itself until the fork returns, so a child reading /proc/$$/status
# (grep) could see that instead of what we were started with (a flaky
# failure: 235 of 500 such reads did).
signals=
while IFS= read -r line; do
    case $line in SigBlk:* | SigIgn:*) signals="$signals$line
" ;;
    esac
done < /proc/$$/status
out=$(dirname "$0")/record
mkdir -p "$out"
printf '%s' "$signals" > "$out/signals"
# In the background: a child redirects its own output, so the listing is
# of the shell's descriptors as they are (a redirection of a foreground
# command is made in the shell itself).
ls -l /proc/$$/fd > "$out/fds" &
wait
cut -d' ' -f5 /proc/$$/stat > "$out/pgrp"
echo $$ > "$out/pid"
tr '\0' '\n' < /proc/$$/environ > "$out/env"
for a in "$@"; do printf '%s\n' "$a"; done > "$out/argv"
cat > "$out/stdin"
"#;

const SMS_NUMBER: &str = "+4915112345678";
const TIMEOUT: Duration = Duration::from_secs(10);

fn phone() -> PhoneNumber {
    PhoneNumber::parse(SMS_NUMBER).unwrap()
}

/// No child of this process is left, zombie or alive.
fn assert_no_children() {
    match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        Err(nix::errno::Errno::ECHILD) => {}
        other => panic!("a child is left: {other:?}"),
    }
}

/// Processes (not zombies) whose process group is `pgrp`.
fn live_members(pgrp: i32) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...
        let Some((_, rest)) = stat.rsplit_once(") ") else {
            continue;
        };
        let fields: Vec<&str> = rest.split(' ').collect();
        if fields.get(2) == Some(&pgrp.to_string().as_str()) && fields[0] != "Z" {
            out.push((pid, stat.trim().to_string()));
        }
    }
    out
}

/// Opens `path` without O_CLOEXEC, as a careless host might have.
fn leak_open(path: &Path) -> std::os::fd::OwnedFd {
    nix::fcntl::open(
        path,
        nix::fcntl::OFlag::O_RDONLY,
        nix::sys::stat::Mode::empty(),
    )
    .unwrap()
}

#[test]
fn the_program_gets_its_argv_and_stdin_and_nothing_else() {
    let _g = serial();
    let dir = scratch("record");
    let prog = script(&dir, "sms", RECORDER);
    let marker = dir.join("leaked-descriptor");
    fs::write(&marker, "host's file").unwrap();
    let leaked = leak_open(&marker);
    // A host that ignores SIGHUP, and blocks SIGUSR1 in this thread.
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: SIG_IGN installs no handler; put back below.
    let old_hup = unsafe { signal::sigaction(Signal::SIGHUP, &ignore) }.unwrap();
    let mut usr1 = SigSet::empty();
    usr1.add(Signal::SIGUSR1);
    usr1.thread_block().unwrap();

    let text = "493817 is your sign-in code\n";
    let result = delivery::send_sms(Program::root(&prog), &phone(), text, TIMEOUT);

    usr1.thread_unblock().unwrap();
    // SAFETY: the host's own previous action.
    unsafe { signal::sigaction(Signal::SIGHUP, &old_hup) }.unwrap();
    drop(leaked);
    result.unwrap();
    assert_no_children();

    let rec = dir.join("record");
    assert_eq!(read(&rec.join("argv")), format!("{SMS_NUMBER}\n"));
    assert_eq!(read(&rec.join("stdin")), text);
    // The whole environment: HOME and PATH, fixed. (This test process has
    // its own HOME, CARGO_*, RUST_* and more.)
    assert_eq!(
        read(&rec.join("env")),
        format!("HOME={}\nPATH={}\n", spawn::HOME, spawn::PATH)
    );
    assert!(std::env::var_os("HOME").is_some() || std::env::vars().count() > 1);

    let fds = read(&rec.join("fds"));
    let script_path = prog.display().to_string();
    let mut seen = Vec::new();
    for line in fds.lines().filter(|l| l.contains(" -> ")) {
        let (left, target) = line.split_once(" -> ").unwrap();
        let n: u32 = left.rsplit(' ').next().unwrap().parse().unwrap();
        seen.push(n);
        match n {
            0 | 2 => assert!(target.starts_with("pipe:"), "{line}"),
            1 => assert_eq!(target, "/dev/null", "{line}"),
            // The shell's own descriptor on its script, opened after exec.
            _ => assert_eq!(
                target, script_path,
                "an inherited descriptor: {line}\n{fds}"
            ),
        }
        assert!(!target.contains("leaked-descriptor"), "{fds}");
    }
    assert!(seen.starts_with(&[0, 1]) && seen.contains(&2), "{fds}");

    // No blocked and no ignored signal, though the caller had both (SIGHUP
    // here, and the harness ignores SIGPIPE). Signals 32 and 33 are glibc's
    // own (thread cancellation, setxid): its sigaction refuses them, and a
    // program's libc installs what it needs there itself.
    let signals = read(&rec.join("signals"));
    let mask = |name: &str| {
        let line = signals.lines().find(|l| l.starts_with(name)).unwrap();
        u64::from_str_radix(line.split('\t').nth(1).unwrap(), 16).unwrap()
    };
    assert_eq!(mask("SigBlk:"), 0, "{signals}");
    let glibc_internal = 0b11 << 31;
    assert_eq!(mask("SigIgn:") & !glibc_internal, 0, "{signals}");
    // Its own process group: it leads it.
    assert_eq!(read(&rec.join("pgrp")), read(&rec.join("pid")));
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sendmail_gets_exactly_i_dashdash_address_and_the_message() {
    let _g = serial();
    let dir = scratch("sendmail-argv");
    let prog = script(&dir, "sendmail", RECORDER);
    let from = EmailAddress::parse("twostep@vm.example.com").unwrap();
    let to = EmailAddress::parse("alice@example.com").unwrap();
    let email = message::code_email(
        &Sender {
            from: &from,
            host: "vm.example.com",
            issuer: "ACME",
        },
        &to,
        &Login {
            user: "alice",
            service: "sshd",
            source: "192.0.2.1",
        },
        &Code {
            code: "493817",
            purpose: delivery::Purpose::SignIn,
            valid: Duration::from_secs(300),
        },
        SystemTime::now(),
    );
    delivery::send_email(Program::root(&prog), &email, TIMEOUT).unwrap();
    let rec = dir.join("record");
    assert_eq!(read(&rec.join("argv")), "-i\n--\nalice@example.com\n");
    assert_eq!(fs::read(rec.join("stdin")).unwrap(), email.as_bytes());
    assert_no_children();
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_failing_program_reports_its_status_and_stderr_without_the_message() {
    let _g = serial();
    let dir = scratch("fail");
    // Echoes its input to stderr, as a careless script might.
    let prog = script(
        &dir,
        "sms",
        "echo 'gateway: no route for number' >&2\necho \"sent: $(cat)\" >&2\nexit 3\n",
    );
    let started = Instant::now();
    let err = delivery::send_sms(
        Program::root(&prog),
        &phone(),
        "493817 is your code\n",
        TIMEOUT,
    )
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(
        exit_stderr(&err, &prog, 3),
        "gateway: no route for number; sent: [number] is your code"
    );
    let line = err.to_string();
    assert!(
        line.starts_with(&format!("{} exited with status 3: ", prog.display())),
        "{line}"
    );
    assert!(!line.contains("493817"), "{line}");
    assert_no_children();

    // A flood on stderr neither blocks the program nor grows the error.
    let prog = script(
        &dir,
        "flood",
        "head -c 1000000 /dev/zero | tr '\\0' x >&2\nexit 1\n",
    );
    let err = delivery::send_sms(Program::root(&prog), &phone(), "x\n", TIMEOUT).unwrap_err();
    assert_eq!(
        exit_stderr(&err, &prog, 1).len(),
        spawn::STDERR_KEPT + " ...".len()
    );
    // Killed by a signal it sent itself.
    let prog = script(&dir, "segv", "kill -SEGV $$\n");
    let err = delivery::send_sms(Program::root(&prog), &phone(), "x\n", TIMEOUT).unwrap_err();
    assert_eq!(err.reason(), "signal");
    assert_eq!(
        err.to_string(),
        format!("{} was killed by signal 11 (SIGSEGV)", prog.display())
    );
    assert_no_children();
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_program_that_cannot_start_is_a_spawn_error_and_leaves_nothing() {
    let _g = serial();
    let err = spawn::run(
        Path::new("/nonexistent/sendmail"),
        &[],
        b"x",
        TIMEOUT,
        &root(),
    )
    .unwrap_err();
    assert_eq!(err.reason(), "spawn");
    assert!(err.to_string().contains("No such file"), "{err}");
    let dir = scratch("noexec");
    // Passes no check here (spawn::run is the bare mechanism): a script
    // whose interpreter is missing fails at exec.
    let p = dir.join("badinterp");
    fs::write(&p, "#!/nonexistent/interpreter\n").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    let err = spawn::run(&p, &[], b"x", TIMEOUT, &root()).unwrap_err();
    assert_eq!(err.reason(), "spawn", "{err}");
    assert_no_children();
    fs::remove_dir_all(&dir).unwrap();
}

/// Runs `body` as the program and expects the deadline to end it.
fn expect_timeout(name: &str, body: &str, input: &[u8]) {
    let dir = scratch(name);
    let prog = script(&dir, "prog", body);
    let timeout = Duration::from_secs(1);
    let started = Instant::now();
    let err = spawn::run(&prog, &[OsStr::new(SMS_NUMBER)], input, timeout, &root()).unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(err, RunError::TimedOut(t) if t == timeout),
        "{err:?}"
    );
    assert_eq!(err.reason(), "timeout");
    assert_eq!(err.to_string(), "did not finish within 1s and was killed");
    assert!(took >= timeout, "{took:?}");
    assert!(took < timeout + Duration::from_millis(500), "{took:?}");
    // The program is reaped...
    assert_no_children();
    // ...and nothing of its process group is left running: neither a
    // member (the group is the program's own) nor its background child.
    let pid: i32 = read(&dir.join("pid")).trim().parse().unwrap();
    let grandchild = fs::read_to_string(dir.join("grandchild"))
        .ok()
        .map(|s| s.trim().parse::<i32>().unwrap());
    let alive = |p: i32| {
        fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| {
            s.rsplit_once(") ")
                .is_some_and(|(_, r)| !r.starts_with('Z'))
        })
    };
    let leftovers = || {
        let mut left = live_members(pid);
        left.extend(
            grandchild
                .filter(|&g| alive(g))
                .map(|g| (g, "the background child".into())),
        );
        left
    };
    let mut left = leftovers();
    for _ in 0..50 {
        if left.is_empty() {
            break;
        }
        // SIGKILLed processes can take a moment to be torn down.
        std::thread::sleep(Duration::from_millis(20));
        left = leftovers();
    }
    assert!(left.is_empty(), "still running: {left:?}");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_hanging_program_and_its_background_child_are_killed_at_the_deadline() {
    let _g = serial();
    expect_timeout(
        "hang",
        "d=$(dirname \"$0\")\necho $$ > \"$d/pid\"\nsleep 300 &\necho $! > \"$d/grandchild\"\nsleep 300\n",
        b"short message\n",
    );
}

#[test]
fn a_program_that_never_reads_cannot_stall_the_writer_past_the_deadline() {
    let _g = serial();
    // Far more than a pipe holds (64 KiB).
    let big = vec![b'm'; 8 << 20];
    expect_timeout(
        "noread",
        "echo $$ > \"$(dirname \"$0\")/pid\"\nexec sleep 300\n",
        &big,
    );
}

#[test]
fn a_program_that_exits_without_reading_does_not_kill_the_host_with_sigpipe() {
    let _g = serial();
    let dir = scratch("sigpipe");
    let prog = script(&dir, "prog", "exit 0\n");
    // login and su do not ignore SIGPIPE as the test harness does.
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    // SAFETY: SIG_DFL installs no handler; put back below.
    let old = unsafe { signal::sigaction(Signal::SIGPIPE, &default) }.unwrap();
    let big = vec![b'm'; 8 << 20];
    let mut results = Vec::new();
    for _ in 0..5 {
        results.push(spawn::run(&prog, &[], &big, TIMEOUT, &root()));
    }
    // Read before the disposition goes back: a SIGPIPE of ours left pending
    // would hit the host later.
    let left_pending = {
        let mut set: libc::sigset_t = *SigSet::empty().as_ref();
        // SAFETY: sigpending writes into our local set; sigismember reads it.
        unsafe { libc::sigpending(&mut set) == 0 && libc::sigismember(&set, libc::SIGPIPE) == 1 }
    };
    // SAFETY: the harness's own previous action.
    unsafe { signal::sigaction(Signal::SIGPIPE, &old) }.unwrap();
    for r in results {
        r.unwrap();
    }
    assert!(!left_pending, "a SIGPIPE was left pending for the host");
    assert_no_children();
    fs::remove_dir_all(&dir).unwrap();
}

static HANDLER_RUNS: AtomicUsize = AtomicUsize::new(0);

/// As sshd's: reap every child that has exited.
extern "C" fn reaping_handler(_: libc::c_int) {
    HANDLER_RUNS.fetch_add(1, Ordering::SeqCst);
    let mut status = 0;
    // SAFETY: waitpid is async-signal-safe; status is a local.
    while unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) } > 0 {}
}

fn current_sigchld() -> SigAction {
    let probe = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    // SAFETY: read by swapping in SIG_DFL and putting the old one straight back.
    let old = unsafe { signal::sigaction(Signal::SIGCHLD, &probe) }.unwrap();
    // SAFETY: as above.
    unsafe { signal::sigaction(Signal::SIGCHLD, &old) }.unwrap();
    old
}

#[test]
fn sigchld_ignored_or_handled_by_the_host_is_default_during_the_run_and_restored_after() {
    let _g = serial();
    let dir = scratch("sigchld");
    let prog = script(&dir, "prog", "echo failed >&2\nexit 3\n");
    let expect_exit_3 = |r: Result<(), RunError>| match r {
        Err(RunError::Exit(3, e)) => assert_eq!(e, "failed"),
        other => panic!("the exit status was lost: {other:?}"),
    };
    let before = current_sigchld();

    // Ignored: the kernel would reap the child itself and waitpid would fail.
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::SA_RESTART, SigSet::empty());
    // SAFETY: SIG_IGN installs no handler.
    unsafe { signal::sigaction(Signal::SIGCHLD, &ignore) }.unwrap();
    expect_exit_3(spawn::run(&prog, &[], b"x", TIMEOUT, &root()));
    let after = current_sigchld();
    assert!(matches!(after.handler(), SigHandler::SigIgn));
    assert_eq!(after.flags() & SaFlags::SA_RESTART, SaFlags::SA_RESTART);

    // A reaping handler, as sshd's: it would take the status first.
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGUSR2);
    let handled = SigAction::new(
        SigHandler::Handler(reaping_handler),
        SaFlags::SA_NOCLDSTOP,
        mask,
    );
    // SAFETY: the handler only counts and calls waitpid (async-signal-safe).
    unsafe { signal::sigaction(Signal::SIGCHLD, &handled) }.unwrap();
    HANDLER_RUNS.store(0, Ordering::SeqCst);
    expect_exit_3(spawn::run(&prog, &[], b"x", TIMEOUT, &root()));
    let after = current_sigchld();
    assert!(
        matches!(after.handler(), SigHandler::Handler(h) if h as usize == reaping_handler as *const () as usize)
    );
    assert_eq!(after.flags(), handled.flags());
    assert!(after.mask().contains(Signal::SIGUSR2));
    assert_eq!(
        HANDLER_RUNS.load(Ordering::SeqCst),
        0,
        "the handler ran during our run"
    );

    // SAFETY: the harness's own previous action.
    unsafe { signal::sigaction(Signal::SIGCHLD, &before) }.unwrap();
    assert_no_children();
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_quick_program_is_not_waited_on_past_its_exit() {
    let _g = serial();
    let dir = scratch("quick");
    let prog = script(&dir, "prog", "cat > /dev/null\n");
    let started = Instant::now();
    for _ in 0..20 {
        delivery::send_sms(Program::root(&prog), &phone(), "x\n", TIMEOUT).unwrap();
    }
    // 20 runs of sh: a few ms each, nowhere near a timeout or a tick.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn only_root_owned_programs_that_only_root_can_change_are_run() {
    let _g = serial();
    let dir = scratch("problems");
    let ok = script(&dir, "ok", "touch \"$(dirname \"$0\")/ran\"\n");
    assert_eq!(delivery::program_problem(&ok), None);
    for p in ["/bin/sh", "/usr/bin/env"] {
        assert_eq!(delivery::program_problem(Path::new(p)), None, "{p}");
    }
    let mk = |name: &str, mode: u32| {
        let p = script(&dir, name, "touch \"$(dirname \"$0\")/ran\"\n");
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        p
    };
    let group_writable = mk("gw", 0o775);
    let world_writable = mk("ww", 0o757);
    let not_executable = mk("nx", 0o644);
    let nobody = mk("nobody", 0o755);
    nix::unistd::chown(&nobody, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    let open_dir = dir.join("open");
    fs::create_dir(&open_dir).unwrap();
    fs::set_permissions(&open_dir, fs::Permissions::from_mode(0o777)).unwrap();
    let in_open_dir = script(&open_dir, "prog", "true\n");
    let link_ok = dir.join("link-ok");
    std::os::unix::fs::symlink(&ok, &link_ok).unwrap();
    let link_into_open = dir.join("link-open");
    std::os::unix::fs::symlink(&in_open_dir, &link_into_open).unwrap();
    let link_by_nobody = dir.join("link-nobody");
    std::os::unix::fs::symlink("ok", &link_by_nobody).unwrap();
    nix::unistd::fchownat(
        nix::fcntl::AT_FDCWD,
        &link_by_nobody,
        Some(nix::unistd::Uid::from_raw(65534)),
        None,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .unwrap();
    let loop_link = dir.join("loop");
    std::os::unix::fs::symlink("loop", &loop_link).unwrap();
    let dangling = dir.join("dangling");
    std::os::unix::fs::symlink("gone", &dangling).unwrap();
    let gone = format!("{}: No such file or directory", dir.join("gone").display());

    assert_eq!(delivery::program_problem(&link_ok), None);
    let cases: Vec<(PathBuf, &str)> = vec![
        (PathBuf::from("sendmail"), "is not an absolute path"),
        (PathBuf::from("bin/sendmail"), "is not an absolute path"),
        (dir.join("missing"), "No such file or directory"),
        (dir.clone(), "is not a regular file"),
        (
            group_writable.clone(),
            "is writable by group or others (mode 0775)",
        ),
        (
            world_writable.clone(),
            "is writable by group or others (mode 0757)",
        ),
        (not_executable.clone(), "is not executable (mode 0644)"),
        (nobody.clone(), "is owned by uid 65534, not root"),
        (
            in_open_dir.clone(),
            "can be changed by users other than root",
        ),
        (
            link_into_open.clone(),
            "can be changed by users other than root",
        ),
        (link_by_nobody.clone(), "is owned by uid 65534, not root"),
        (loop_link.clone(), "more than 40 symbolic links"),
        // Past a link, where it failed is named too.
        (dangling.clone(), &gone),
    ];
    for (path, want) in &cases {
        let got = delivery::program_problem(path).unwrap_or_else(|| panic!("{path:?} passed"));
        assert!(got.starts_with(&path.display().to_string()), "{got}");
        assert!(got.contains(want), "{path:?}: {got}");
        // The path is named once, at the start.
        assert_eq!(got.matches(&path.display().to_string()).count(), 1, "{got}");
    }
    // send_sms and send_email refuse them without running anything.
    for (path, _) in &cases {
        let err = delivery::send_sms(Program::root(path), &phone(), "x\n", TIMEOUT).unwrap_err();
        assert_eq!(err.reason(), "program", "{err}");
    }
    assert!(!dir.join("ran").exists() && !open_dir.join("ran").exists());
    delivery::send_sms(Program::root(&link_ok), &phone(), "x\n", TIMEOUT).unwrap();
    assert!(dir.join("ran").exists());
    fs::remove_dir_all(&dir).unwrap();
}

/// The mailbox test user.
const MAIL_USER: &str = "tsdeliv";

#[test]
fn a_code_reaches_a_local_mailbox_through_the_real_sendmail() {
    let _g = serial();
    let sendmail = Path::new("/usr/sbin/sendmail");
    assert!(
        sendmail.exists(),
        "no /usr/sbin/sendmail: sudo bash packages.sh test (exim4-daemon-light)"
    );
    assert_eq!(delivery::program_problem(sendmail), None);
    ensure_mail_user(MAIL_USER);
    let mbox = PathBuf::from(format!("/var/mail/{MAIL_USER}"));
    let _ = fs::remove_file(&mbox);

    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    // A container's name may be no domain name; the From address needs one.
    let host = match address::check_domain(&host) {
        Ok(()) => host,
        Err(_) => "localhost".to_string(),
    };
    let from = EmailAddress::parse(&format!("twostep@{host}")).unwrap();
    let to = EmailAddress::parse(&format!("{MAIL_USER}@localhost")).unwrap();
    let now = SystemTime::now();
    let unique = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let token = format!("{}", unique % 1_000_000_000);
    let code = format!("{:06}", unique / 1000 % 1_000_000);
    let issuer = format!("Soci\u{e9}t\u{e9} G\u{e9}n\u{e9}rale {token}");
    let sender = Sender {
        from: &from,
        host: &host,
        issuer: &issuer,
    };
    let login = Login {
        user: MAIL_USER,
        service: "sshd",
        source: "192.0.2.1",
    };
    let email = message::code_email(
        &sender,
        &to,
        &login,
        &Code {
            code: &code,
            purpose: delivery::Purpose::SignIn,
            valid: Duration::from_secs(300),
        },
        now,
    );
    delivery::send_email(Program::root(sendmail), &email, TIMEOUT).unwrap();
    // A notice from a host with a non-ASCII name: a quoted-printable body.
    let notice = message::notice_email(
        &Sender {
            host: "h\u{f6}st",
            ..sender
        },
        &to,
        &delivery::Notice {
            event: delivery::Event::Locked,
            user: MAIL_USER,
            by: None,
            service: Some("sshd"),
            source: Some("192.0.2.1"),
            device: None,
            until: Some(now + Duration::from_secs(300)),
            held_back: 0,
            when: now,
        },
    );
    delivery::send_email(Program::root(sendmail), &notice, TIMEOUT).unwrap();
    assert_no_children();

    // exim's default (Debian, "local" config, no daemon) forks the delivery
    // and returns: wait for it.
    let started = Instant::now();
    let mut got = parsed_messages(&mbox, &token);
    while got.len() < 2 && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
        got = parsed_messages(&mbox, &token);
    }
    assert_eq!(
        got.len(),
        2,
        "not delivered in 30 s; exim's log says:\n{}",
        fs::read_to_string("/var/log/exim4/mainlog").unwrap_or_default()
    );
    let code_mail = got
        .iter()
        .find(|m| m["subject"].as_str().unwrap().contains("sign-in code"))
        .unwrap();
    assert_eq!(code_mail["from"], format!("twostep@{host}"));
    assert_eq!(code_mail["to"], format!("{MAIL_USER}@localhost"));
    assert_eq!(
        code_mail["subject"],
        format!("{issuer}: sign-in code for {MAIL_USER} on {host}")
    );
    let sent_at = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((code_mail["date"].as_f64().unwrap() - sent_at).abs() < 2.0);
    let id = code_mail["message_id"].as_str().unwrap();
    assert!(
        id.starts_with('<') && id.ends_with(&format!("@{host}>")),
        "{id}"
    );
    assert_eq!(code_mail["mime"], "1.0");
    assert_eq!(code_mail["type"], "text/plain");
    assert_eq!(code_mail["charset"], "utf-8");
    assert_eq!(code_mail["cte"], "7bit");
    assert_eq!(code_mail["auto"], "auto-generated");
    assert_eq!(code_mail["defects"], serde_json::json!([]));
    let body = code_mail["body"].as_str().unwrap();
    assert!(body.contains(&format!("\n    {code}\n")), "{body}");
    assert!(body.contains("from 192.0.2.1"), "{body}");

    let notice_mail = got
        .iter()
        .find(|m| m["subject"].as_str().unwrap().contains("account locked"))
        .unwrap();
    assert_eq!(notice_mail["cte"], "quoted-printable");
    assert_eq!(notice_mail["defects"], serde_json::json!([]));
    let body = notice_mail["body"].as_str().unwrap();
    assert!(
        body.contains(&format!("Account: {MAIL_USER} on h\u{f6}st\n")),
        "{body}"
    );
    assert!(!body.contains(&code));
    let _ = fs::remove_file(&mbox);
}

/// A local HTTP gateway: answers POST /<status> with that status and
/// records each request; a second port accepts connections and never
/// answers. Writes "HTTP_PORT SILENT_PORT" to argv[2] when ready.
const GATEWAY: &str = r#"
import http.server, json, os, socket, sys, threading, urllib.parse
record, ports = sys.argv[1], sys.argv[2]
class Gateway(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        with open(record, "a") as f:
            f.write(json.dumps({
                "path": self.path,
                "auth": self.headers.get("Authorization"),
                "type": self.headers.get("Content-Type"),
                "form": urllib.parse.parse_qs(body, keep_blank_values=True),
            }) + "\n")
        self.send_response(int(self.path.strip("/")))
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Gateway)
silent = socket.socket()
silent.bind(("127.0.0.1", 0))
silent.listen(8)
with open(ports + ".tmp", "w") as f:
    f.write(f"{server.server_address[1]} {silent.getsockname()[1]}")
os.rename(ports + ".tmp", ports)
server.serve_forever()
"#;

/// The gateway process; killed and reaped on drop, pass or fail.
struct Gateway(std::process::Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_example_sms_sender_posts_to_a_gateway_and_fails_unless_2xx() {
    let _g = serial();
    let dir = scratch("sms-gateway");
    let record = dir.join("requests.jsonl");
    let ports_file = dir.join("ports");
    let server = dir.join("gateway.py");
    fs::write(&server, GATEWAY).unwrap();
    let gateway = Gateway(
        std::process::Command::new("python3")
            .arg(&server)
            .arg(&record)
            .arg(&ports_file)
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    while !ports_file.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the gateway did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let ports = read(&ports_file);
    let (http, silent) = ports.split_once(' ').unwrap();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };

    let conf = dir.join("sms-gateway.conf");
    let token_file = dir.join("sms-gateway.token");
    fs::write(&token_file, "s3cr3t-Token_value\n").unwrap();
    fs::set_permissions(&token_file, fs::Permissions::from_mode(0o600)).unwrap();
    let configure = |url: &str, mode: u32| {
        fs::write(
            &conf,
            format!(
                "# the gateway\nURL={url}\nTOKEN_FILE={}\nMAX_TIME=1\n",
                token_file.display()
            ),
        )
        .unwrap();
        fs::set_permissions(&conf, fs::Permissions::from_mode(mode)).unwrap();
    };
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sms-gateway-sender");
    // As an admin would wire it, but with the config somewhere else.
    let command = script(
        &dir,
        "sms-command",
        &format!(
            "SMS_GATEWAY_CONF={} exec {} \"$@\"\n",
            conf.display(),
            example.display()
        ),
    );
    let text = "493817 is your ACME sign-in code for alice on vm, good for 5 minutes. \
                Not you? Don't share it; tell your admin.\n";
    let send = || {
        let started = Instant::now();
        let r = delivery::send_sms(Program::root(&command), &phone(), text, TIMEOUT);
        (r, started.elapsed())
    };
    let failure = |r: Result<(), DeliveryError>| match r {
        Err(e) => exit_stderr(&e, &command, 1),
        Ok(()) => panic!("sent"),
    };

    configure(&format!("http://127.0.0.1:{http}/200"), 0o600);
    send().0.unwrap();
    let requests: Vec<serde_json::Value> = read(&record)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r["path"], "/200");
    assert_eq!(r["auth"], "Bearer s3cr3t-Token_value");
    assert_eq!(r["type"], "application/x-www-form-urlencoded");
    assert_eq!(r["form"]["to"], serde_json::json!([SMS_NUMBER]));
    assert_eq!(r["form"]["text"], serde_json::json!([text]));

    configure(&format!("http://127.0.0.1:{http}/204"), 0o400);
    send().0.unwrap();

    for status in ["500", "302", "404"] {
        configure(&format!("http://127.0.0.1:{http}/{status}"), 0o600);
        let stderr = failure(send().0);
        assert!(
            stderr.ends_with(&format!("answered HTTP {status}")),
            "{stderr}"
        );
    }

    // Nothing listening: refused at once.
    configure(&format!("http://127.0.0.1:{closed}/200"), 0o600);
    let (r, took) = send();
    let stderr = failure(r);
    assert!(stderr.contains("(curl exit 7)"), "{stderr}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    // Connected, never answered: its own MAX_TIME, well within twostep's.
    configure(&format!("http://127.0.0.1:{silent}/200"), 0o600);
    let (r, took) = send();
    let stderr = failure(r);
    assert!(stderr.contains("(curl exit 28)"), "{stderr}");
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "{took:?}"
    );

    // Refusals before any request: a config others can read, plain http
    // to another host, a token file others can read.
    configure(&format!("http://127.0.0.1:{http}/200"), 0o644);
    assert!(failure(send().0).contains("no access for group or others"));
    configure("http://sms.example.com/send", 0o600);
    assert!(failure(send().0).contains("URL must be https://"));
    configure(&format!("http://127.0.0.1:{http}/200"), 0o600);
    fs::set_permissions(&token_file, fs::Permissions::from_mode(0o640)).unwrap();
    assert!(failure(send().0).contains("sms-gateway.token must be owned by root"));
    assert_eq!(
        read(&record).lines().count(),
        5,
        "a refused run sent a request"
    );

    drop(gateway);
    assert_no_children();
    fs::remove_dir_all(&dir).unwrap();
}

/// What a program that exited with `code` wrote to stderr (escaped and cut
/// short), read from the error's one line: the same whether it was started
/// in this process or, as here and in the module, by the on-demand part,
/// which hands back only that line and its reason.
fn exit_stderr(err: &DeliveryError, prog: &Path, code: i32) -> String {
    assert_eq!(err.reason(), "exit", "{err}");
    let line = err.to_string();
    let head = format!("{} exited with status {code}", prog.display());
    let rest = line.strip_prefix(&head).unwrap_or_else(|| panic!("{line}"));
    rest.strip_prefix(": ").unwrap_or(rest).to_string()
}
