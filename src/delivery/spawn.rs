//! Running a program from inside the host process (sshd, login, su) the way
//! Linux-PAM's pam_exec runs its child, plus the deadline pam_exec lacks.
//!
//! The one module of `delivery` that talks to C (its declaration in
//! `delivery/mod.rs` allows unsafe code here alone). It is kept whole, at
//! some 730 lines besides its tests, for that reason: everything that runs
//! between fork and exec, and every guard the host's signals need around
//! it, is reviewed in one file, against the one list below. What it
//! guarantees:
//!
//! - **Identity:** nothing of the caller's. The host may be setuid (`su`,
//!   `chsh`, polkit's helper, `twostep-self`), where only the effective uid
//!   is root's and the real uid, the groups, the limits, the umask, the
//!   working directory and the scheduling are the caller's. Between fork
//!   and exec the child takes, in this order and each call checked (a
//!   failure aborts the exec, and the run is a [`RunError::Spawn`]): a
//!   session of its own (`setsid`: no controlling terminal, so it cannot
//!   open the caller's /dev/tty, and its own process group); nice 0,
//!   SCHED_OTHER and the default I/O priority (a caller's `nice`, `chrt -i`
//!   or `ionice -c3` could starve it past its deadline); every resource
//!   limit from [`LIMITS`], soft and hard, set while it is still root so
//!   that a lowered hard limit can be raised again; the supplementary
//!   groups, then real, effective and saved gid, then uid, of [`Identity`]
//!   (root with no groups, or a named account with its own); umask 022; and
//!   `/` as its working directory. std's `Command::uid` is not used: it
//!   clears the groups only when the *real* uid is 0, which it is not in a
//!   setuid host.
//! - **Environment:** cleared. The program gets `HOME=/` and
//!   `PATH=/usr/sbin:/usr/bin:/sbin:/bin` and nothing else: not the host's
//!   variables, not the user's (`su` keeps much of the caller's; msmtp
//!   would read the caller's `~/.msmtprc`). The PATH is fixed rather than
//!   absent because a program without one falls back to a default of its
//!   own choosing (dash's includes /usr/local); these four directories are
//!   root's alone. No locale variable: without one a program runs in the C
//!   locale already.
//! - **Descriptors:** stdin is a pipe carrying the message, stdout is
//!   /dev/null, stderr is a pipe of which the first [`STDERR_KEPT`] bytes are
//!   kept for the error ([`run_for_output`], for the commands: stdout a pipe
//!   too, and both kept whole up to a bound). Every other descriptor is closed at exec, including
//!   those the host opened without O_CLOEXEC (`close_range(3, ~0,
//!   CLOSE_RANGE_CLOEXEC)` in the child, or one `fcntl` per descriptor on
//!   kernels before 5.11).
//! - **Signals:** the child starts with no blocked and no ignored signals
//!   (but glibc's internal 32 and 33, which its sigaction does not let us set).
//!   While it runs, SIGCHLD is SIG_DFL in this process, so that a host that
//!   ignores it (the kernel would then reap the child itself) or reaps in a
//!   handler cannot take the exit status away; the host's exact disposition is
//!   put back afterwards, as pam_exec does. SIGPIPE is blocked in the calling
//!   thread while the message is written, so a program that exits without
//!   reading cannot kill a host that did not ignore SIGPIPE (login, su); a
//!   SIGPIPE of ours is taken back before the mask is restored (libpq's way).
//! - **Process group:** the program leads a group (and a session) of its
//!   own. Past the deadline the whole group is killed (SIGKILL) and the
//!   program reaped: the writing, the waiting and the killing all fit in the
//!   one `timeout`, with no thread. Descendants that outlive a program
//!   which exited by itself are its own business (exim's background
//!   delivery is one); a descendant that left the group on purpose (setsid)
//!   is beyond reach, as for any supervisor without cgroups.
//! - **Reaping:** the program is waited for on every path, early errors
//!   included, so it never stays a zombie of the host.
//! - **The error** names what happened (exit status and the start of
//!   stderr, signal, timeout, failure to start) without the message: runs of
//!   six or more digits in stderr are hidden, so a program that echoes its
//!   input cannot put a code into syslog.

use super::child::{self, Identity, LIMITS};
use super::excerpt::Excerpt;
pub use super::excerpt::STDERR_KEPT;
use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::resource::setrlimit;
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, SigmaskHow, Signal};
use nix::unistd::{Pid, setgroups, setresgid, setresuid};
use std::ffi::OsStr;
use std::fmt;
use std::io::{self, Write};
use std::os::fd::{AsFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The program's whole environment: this PATH and [`HOME`].
pub const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
/// Also its working directory: nothing of a caller's home.
pub const HOME: &str = "/";
/// Its umask: the files it makes (a spool file, a log) are root's to
/// write and everyone's to read, as they would be made from a root shell.
const UMASK: libc::mode_t = 0o022;
/// Without a pidfd (kernels before 5.3), how often the child is looked at.
const TICK: Duration = Duration::from_millis(10);

/// Why a run did not end in exit status 0.
#[derive(Debug)]
pub enum RunError {
    /// The program could not be started (missing, not executable, fork failed).
    Spawn(io::Error),
    /// Talking to the running program failed; it was killed and reaped.
    Io(io::Error),
    /// It exited with this status; the start of its stderr, escaped.
    Exit(i32, String),
    /// It was killed by this signal (not by us).
    Signal(i32),
    /// It had not finished within this time; its process group was killed.
    TimedOut(Duration),
}

impl RunError {
    /// One word for a record's `reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            RunError::Spawn(_) => "spawn",
            RunError::Io(_) => "io",
            RunError::Exit(..) => "exit",
            RunError::Signal(_) => "signal",
            RunError::TimedOut(_) => "timeout",
        }
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Spawn(e) => write!(f, "could not be started: {e}"),
            RunError::Io(e) => write!(f, "failed while running ({e}) and was killed"),
            RunError::Exit(code, stderr) if stderr.is_empty() => {
                write!(f, "exited with status {code}")
            }
            RunError::Exit(code, stderr) => write!(f, "exited with status {code}: {stderr}"),
            RunError::Signal(n) => match Signal::try_from(*n) {
                Ok(s) => write!(f, "was killed by signal {n} ({s})"),
                Err(_) => write!(f, "was killed by signal {n}"),
            },
            RunError::TimedOut(after) => write!(
                f,
                "did not finish within {} and was killed",
                humantime::format_duration(*after)
            ),
        }
    }
}

impl std::error::Error for RunError {}

/// Runs `program` with `args` as `identity`, `input` on its stdin, and
/// waits at most `timeout` for it to exit; `Ok` only for exit status 0.
/// See the module documentation for what the program inherits (nothing)
/// and how it ends.
pub fn run(
    program: &Path,
    args: &[&OsStr],
    input: &[u8],
    timeout: Duration,
    identity: &Identity,
) -> Result<(), RunError> {
    start(program, args, input, timeout, identity, None)
}

/// How a program run by [`run_for_output`] exited, and all it wrote.
#[derive(Debug, Default)]
pub struct Output {
    /// Its exit status (-1 if it had none and no signal either).
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// As [`run`], with stdout a pipe instead of /dev/null, and both stdout
/// and stderr kept whole: for a program whose output is parsed (`twostep
/// audit` asks sshd for its settings, and reads its debug log). Whatever
/// its exit status, a program that exited is an `Ok`: its stderr says
/// why, and the caller reads it. A program that writes more than `limit`
/// bytes to either stream is killed (a [`RunError::Io`]): the caller
/// wants all of it or none. For the commands, never from a login.
pub fn run_for_output(
    program: &Path,
    args: &[&OsStr],
    input: &[u8],
    timeout: Duration,
    identity: &Identity,
    limit: usize,
) -> Result<Output, RunError> {
    let mut kept = Captured {
        output: Output::default(),
        limit,
    };
    kept.output.code = match start(program, args, input, timeout, identity, Some(&mut kept)) {
        Ok(()) => 0,
        Err(RunError::Exit(code, _)) => code,
        Err(e) => return Err(e),
    };
    Ok(kept.output)
}

fn start(
    program: &Path,
    args: &[&OsStr],
    input: &[u8],
    timeout: Duration,
    identity: &Identity,
    stdout: Option<&mut Captured>,
) -> Result<(), RunError> {
    let started = Instant::now();
    let deadline = started
        .checked_add(timeout)
        .unwrap_or(started + Duration::from_secs(86_400));
    let fd_limit = descriptor_limit();
    // Before the fork: the child inherits SIG_DFL for its own children too.
    let _sigchld = SigchldDefault::enter().map_err(RunError::Spawn)?;
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .env("HOME", HOME)
        .env("PATH", PATH)
        .stdin(Stdio::piped())
        .stdout(if stdout.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::piped());
    // Owned by the closure: the child reads it and allocates nothing.
    let identity = identity.clone();
    // The closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed.
    // SAFETY: `in_child` makes plain system calls on integers, its own
    // stack and the groups vector allocated before the fork (only read):
    // no allocation, no lock, nothing shared with other threads.
    unsafe { command.pre_exec(move || in_child(fd_limit, &identity)) };
    // Spawn returns once the child has exec'd (or failed to): std waits on
    // its own CLOEXEC pipe, which CLOSE_RANGE_CLOEXEC leaves working.
    let child = command
        .spawn()
        .map_err(|e| RunError::Spawn(child::explain_refusal(e)))?;
    let mut running = Running::new(child);
    running.supervise(input, deadline, timeout, stdout)
    // `running` is dropped here, before `_sigchld`: a program still
    // unreaped is killed and reaped while SIGCHLD is still SIG_DFL.
}

/// What [`run_for_output`] keeps: everything, up to `limit` bytes of each
/// stream.
struct Captured {
    output: Output,
    limit: usize,
}

impl Captured {
    fn keep(&mut self, stdout: bool, bytes: &[u8]) -> io::Result<()> {
        let (kept, name) = if stdout {
            (&mut self.output.stdout, "stdout")
        } else {
            (&mut self.output.stderr, "stderr")
        };
        if kept.len().saturating_add(bytes.len()) > self.limit {
            return Err(io::Error::other(format!(
                "it wrote more than {} bytes to {name}",
                self.limit
            )));
        }
        kept.extend_from_slice(bytes);
        Ok(())
    }
}

/// One read of the program's stdout (`Ok(0)` at its end) into `captured`.
fn read_stdout(mut pipe: impl io::Read, captured: &mut Captured) -> io::Result<usize> {
    let mut buf = [0u8; 8192];
    let n = pipe.read(&mut buf)?;
    captured.keep(true, &buf[..n])?;
    Ok(n)
}

/// One read of the program's stderr into the excerpt, and whole into
/// `captured` when there is one.
fn read_stderr(
    mut pipe: impl io::Read,
    excerpt: &mut Excerpt,
    captured: Option<&mut Captured>,
) -> io::Result<usize> {
    let mut buf = [0u8; 8192];
    let n = pipe.read(&mut buf)?;
    let mut chunk = &buf[..n];
    while !chunk.is_empty() {
        if excerpt.read_from(&mut chunk)? == 0 {
            break;
        }
    }
    if let Some(c) = captured {
        c.keep(false, &buf[..n])?;
    }
    Ok(n)
}

/// What is left in a pipe once the program has exited: read until its
/// end, or until it would block (a descendant still holds it).
fn drain_kept(mut read_once: impl FnMut() -> io::Result<usize>) -> io::Result<()> {
    loop {
        match read_once() {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if retry(&e) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// The highest descriptor number the fallback marks close-on-exec, read
/// before the fork (getrlimit is not on the async-signal-safe list).
fn descriptor_limit() -> libc::c_int {
    use nix::sys::resource::{Resource, getrlimit};
    let soft = getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| soft);
    libc::c_int::try_from(soft.min(1 << 20)).unwrap_or(1024)
}

/// In the child, after std has set up fds 0-2 and an empty signal mask,
/// just before exec. The order matters: the session first (it must not
/// be a group leader yet); priority and limits while it is still root
/// (lowering a nice value and raising a hard limit need the privilege);
/// the groups before the gids before the uid (each needs root, which the
/// last call gives up).
fn in_child(fd_limit: libc::c_int, identity: &Identity) -> io::Result<()> {
    // Ignored signals stay ignored across exec (handlers do not): a host
    // that ignores SIGTERM or SIGHUP must not pass that on.
    for sig in 1..=libc::SIGRTMAX() {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: SIG_DFL installs no code of ours; sigaction is
            // async-signal-safe; a signal number it refuses changes nothing.
            unsafe { libc::signal(sig, libc::SIG_DFL) };
        }
    }
    // The signal mask survives exec too, and std does not clear it: the
    // caller's blocked signals (a host thread's, or the stop signals
    // `caller::Shield` blocks around the module) would otherwise be blocked
    // in sendmail, which could then not be stopped or told to end.
    // SAFETY: sigemptyset and sigprocmask are async-signal-safe; the set is
    // a local value they initialise and read.
    unsafe {
        let mut none = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut none);
        if libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // A session of its own: it leaves the caller's controlling terminal
    // (it cannot open /dev/tty, and a hang-up there does not reach it), and
    // it leads a process group whose id is its pid, for the deadline's
    // killpg.
    nix::unistd::setsid()?;
    default_scheduling()?;
    for limit in &LIMITS {
        setrlimit(limit.resource, limit.soft, limit.hard)?;
    }
    setgroups(&identity.groups)?;
    setresgid(identity.gid, identity.gid, identity.gid)?;
    setresuid(identity.uid, identity.uid, identity.uid)?;
    // SAFETY: umask only sets this process's mask and cannot fail.
    unsafe { libc::umask(UMASK) };
    // SAFETY: a NUL-terminated literal; chdir only reads it.
    if unsafe { libc::chdir(c"/".as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    mark_cloexec_from(3, fd_limit);
    Ok(())
}

/// Nice 0, SCHED_OTHER, and the I/O priority that follows from them: what
/// a caller set on a setuid host before it ran us (`nice -n 19`, `chrt -i
/// 0`, `ionice -c3`) would otherwise slow the program past its deadline.
fn default_scheduling() -> io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is this process; the parameter is a value on our stack
    // that the call only reads.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &param) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: integers only; PRIO_PROCESS with who 0 is this process.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // IOPRIO_CLASS_NONE (0): the I/O priority derives from the nice value
    // again (best effort, level 4 at nice 0), as for a fresh process.
    const IOPRIO_WHO_PROCESS: libc::c_int = 1;
    const IOPRIO_DEFAULT: libc::c_int = 0;
    // SAFETY: ioprio_set takes three integers and changes only this process.
    if unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, IOPRIO_DEFAULT) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Marks every descriptor from `first` up close-on-exec: one system call
/// since Linux 5.11, else one fcntl per descriptor number below `limit`.
/// Marked rather than closed: std's own exec-error pipe must stay open.
fn mark_cloexec_from(first: libc::c_int, limit: libc::c_int) {
    let from = libc::c_uint::try_from(first).unwrap_or(3);
    // SAFETY: close_range takes integers and touches only our descriptor table.
    let marked = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            from,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if marked != 0 {
        mark_cloexec_each(first, limit);
    }
}

fn mark_cloexec_each(first: libc::c_int, limit: libc::c_int) {
    for fd in first..limit {
        // SAFETY: F_SETFD on a number that is not open fails with EBADF and
        // changes nothing; FD_CLOEXEC is the only descriptor flag there is.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
}

/// The spawned program until it is reaped: dropping it unreaped kills its
/// process group and waits for it.
struct Running {
    child: Child,
    reaped: bool,
    /// Readable when the child exits: poll wakes at once, no tick needed.
    exited: Option<OwnedFd>,
}

impl Running {
    fn new(child: Child) -> Running {
        let exited = pidfd_open(child.id());
        Running {
            child,
            reaped: false,
            exited,
        }
    }

    fn supervise(
        &mut self,
        input: &[u8],
        deadline: Instant,
        timeout: Duration,
        mut captured: Option<&mut Captured>,
    ) -> Result<(), RunError> {
        let mut stdin = self.child.stdin.take().filter(|_| !input.is_empty());
        let mut stdout = self.child.stdout.take();
        let mut stderr = self.child.stderr.take();
        if let Some(pipe) = &stdin {
            set_nonblocking(pipe).map_err(RunError::Io)?;
        }
        if let Some(pipe) = &stdout {
            set_nonblocking(pipe).map_err(RunError::Io)?;
        }
        if let Some(pipe) = &stderr {
            set_nonblocking(pipe).map_err(RunError::Io)?;
        }
        let mut sigpipe = SigpipeBlocked::new().map_err(RunError::Io)?;
        let mut written = 0;
        let mut excerpt = Excerpt::default();
        loop {
            if let Some(status) = self.child.try_wait().map_err(RunError::Io)? {
                self.reaped = true;
                if let Some(kept) = captured.as_deref_mut() {
                    if let Some(pipe) = &mut stdout {
                        drain_kept(|| read_stdout(&mut *pipe, kept)).map_err(RunError::Io)?;
                    }
                    if let Some(pipe) = &mut stderr {
                        drain_kept(|| read_stderr(&mut *pipe, &mut excerpt, Some(kept)))
                            .map_err(RunError::Io)?;
                    }
                } else if let Some(pipe) = &mut stderr {
                    excerpt.drain(pipe);
                }
                return verdict(status, excerpt);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(RunError::TimedOut(timeout));
            }
            let mut wait = deadline - now;
            if self.exited.is_none() {
                wait = wait.min(TICK);
            }
            let (can_write, can_read, can_capture) = {
                let mut fds = Vec::with_capacity(4);
                let stdin_at = stdin.as_ref().map(|p| {
                    fds.push(PollFd::new(p.as_fd(), PollFlags::POLLOUT));
                    fds.len() - 1
                });
                let stdout_at = stdout.as_ref().map(|p| {
                    fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
                    fds.len() - 1
                });
                let stderr_at = stderr.as_ref().map(|p| {
                    fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
                    fds.len() - 1
                });
                if let Some(fd) = &self.exited {
                    fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
                }
                match poll(&mut fds, poll_timeout(wait)) {
                    Ok(_) | Err(Errno::EINTR) => {}
                    Err(e) => return Err(RunError::Io(e.into())),
                }
                let ready = |at: Option<usize>| {
                    at.and_then(|i| fds.get(i)?.revents())
                        .is_some_and(|r| !r.is_empty())
                };
                (ready(stdin_at), ready(stderr_at), ready(stdout_at))
            };
            if can_write && let Some(pipe) = &stdin {
                match (&*pipe).write(&input[written..]) {
                    Ok(n) => written += n,
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                        // It closed its input: its exit status tells the rest.
                        sigpipe.raised();
                        written = input.len();
                    }
                    Err(e) if retry(&e) => {}
                    Err(e) => return Err(RunError::Io(e)),
                }
                if written == input.len() {
                    // EOF for the program.
                    stdin = None;
                }
            }
            if can_capture && let (Some(pipe), Some(kept)) = (&mut stdout, captured.as_deref_mut())
            {
                match read_stdout(pipe, kept) {
                    Ok(0) => stdout = None,
                    Ok(_) => {}
                    Err(e) if retry(&e) => {}
                    Err(e) => return Err(RunError::Io(e)),
                }
            }
            if can_read
                && let Some(pipe) = &mut stderr
                && let Some(kept) = captured.as_deref_mut()
            {
                match read_stderr(pipe, &mut excerpt, Some(kept)) {
                    Ok(0) => stderr = None,
                    Ok(_) => {}
                    Err(e) if retry(&e) => {}
                    Err(e) => return Err(RunError::Io(e)),
                }
            } else if can_read && let Some(pipe) = &mut stderr {
                match excerpt.read_from(pipe) {
                    Ok(0) => stderr = None,
                    Ok(_) => {}
                    Err(e) if retry(&e) => {}
                    // A broken stderr pipe is not worth failing the delivery.
                    Err(_) => stderr = None,
                }
            }
        }
    }

    /// Kills the process group, then the child itself (in case it left the
    /// group). The child is not reaped yet, so its pid, and with it the
    /// group's id, cannot have been reused.
    fn kill(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = signal::killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = self.child.kill();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill();
            // SIGKILL cannot be caught: this returns as soon as the kernel
            // has torn the process down.
            let _ = self.child.wait();
        }
    }
}

fn retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

fn verdict(status: ExitStatus, excerpt: Excerpt) -> Result<(), RunError> {
    match (status.code(), status.signal()) {
        (Some(0), _) => Ok(()),
        (Some(code), _) => Err(RunError::Exit(code, excerpt.text())),
        (None, Some(sig)) => Err(RunError::Signal(sig)),
        (None, None) => Err(RunError::Exit(-1, excerpt.text())),
    }
}

fn poll_timeout(wait: Duration) -> PollTimeout {
    // Rounded up: a wait of 0.3 ms must not become a busy loop of 0 ms polls.
    let ms = wait.as_nanos().div_ceil(1_000_000).min(3_600_000);
    PollTimeout::try_from(u32::try_from(ms).unwrap_or(3_600_000)).unwrap_or(PollTimeout::MAX)
}

fn set_nonblocking(fd: impl AsFd) -> io::Result<()> {
    let flags = OFlag::from_bits_retain(fcntl(&fd, FcntlArg::F_GETFL)?);
    fcntl(&fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

/// A descriptor that becomes readable when `pid` exits (Linux 5.3+); None
/// where the kernel has no pidfd_open, and the caller polls on a tick.
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    let pid = libc::pid_t::try_from(pid).ok()?;
    // SAFETY: pidfd_open takes two integers and returns a new descriptor
    // (always close-on-exec) or -1; it borrows nothing of ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = RawFd::try_from(fd).ok().filter(|&fd| fd >= 0)?;
    // SAFETY: the kernel just handed us this descriptor; nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// SIGCHLD is SIG_DFL while at least one run is under way in this process;
/// the host's disposition is put back when the last one ends. Counted, so
/// that two threads running programs at once (a threaded PAM host) neither
/// restore too early nor save our SIG_DFL as "the host's".
struct SigchldDefault;

static SIGCHLD_HOLDERS: Mutex<(usize, Option<SigAction>)> = Mutex::new((0, None));

impl SigchldDefault {
    fn enter() -> io::Result<SigchldDefault> {
        let mut held = SIGCHLD_HOLDERS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if held.0 == 0 {
            let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
            // SAFETY: SIG_DFL runs no code of ours in signal context; the
            // previous action is kept untouched to be put back.
            let previous = unsafe { signal::sigaction(Signal::SIGCHLD, &default) }?;
            held.1 = Some(previous);
        }
        held.0 += 1;
        Ok(SigchldDefault)
    }
}

impl Drop for SigchldDefault {
    fn drop(&mut self) {
        let mut held = SIGCHLD_HOLDERS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        held.0 = held.0.saturating_sub(1);
        if held.0 == 0
            && let Some(previous) = held.1.take()
        {
            // SAFETY: this is the very action (handler, flags, mask) the
            // host had installed before us; putting it back is the host's
            // own choice, valid as it was.
            let _ = unsafe { signal::sigaction(Signal::SIGCHLD, &previous) };
        }
    }
}

/// SIGPIPE blocked in this thread while the message is written. A write to
/// a pipe whose reader is gone then fails with EPIPE instead of killing the
/// host, and the SIGPIPE it raised is taken back before the mask is
/// restored, unless one was already pending (then ours cannot be told apart
/// and the host gets the one it had).
struct SigpipeBlocked {
    previous_mask: SigSet,
    was_pending: bool,
    raised: bool,
}

impl SigpipeBlocked {
    fn new() -> io::Result<SigpipeBlocked> {
        let mut block = SigSet::empty();
        block.add(Signal::SIGPIPE);
        let mut previous_mask = SigSet::empty();
        signal::pthread_sigmask(
            SigmaskHow::SIG_BLOCK,
            Some(&block),
            Some(&mut previous_mask),
        )?;
        Ok(SigpipeBlocked {
            previous_mask,
            was_pending: sigpipe_pending(),
            raised: false,
        })
    }

    fn raised(&mut self) {
        self.raised = true;
    }
}

impl Drop for SigpipeBlocked {
    fn drop(&mut self) {
        if self.raised && !self.was_pending {
            take_pending_sigpipe();
        }
        let _ = signal::pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&self.previous_mask), None);
    }
}

fn sigpipe_set() -> libc::sigset_t {
    let mut set = SigSet::empty();
    set.add(Signal::SIGPIPE);
    *set.as_ref()
}

fn sigpipe_pending() -> bool {
    let mut pending = sigpipe_set();
    // SAFETY: sigpending writes a sigset_t into memory we own; sigismember
    // only reads it.
    unsafe {
        libc::sigpending(&mut pending) == 0 && libc::sigismember(&pending, libc::SIGPIPE) == 1
    }
}

/// Accepts a pending SIGPIPE of this thread without waiting.
fn take_pending_sigpipe() {
    let set = sigpipe_set();
    let now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: both pointers are to values on our stack that live across the
    // call; a null siginfo pointer is allowed. With a zero timeout it does
    // not block: it returns SIGPIPE or fails with EAGAIN.
    unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &now) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fallback_marks_inherited_descriptors_close_on_exec() {
        // An fd opened without O_CLOEXEC, as a host might have.
        let fd =
            nix::fcntl::open("/dev/null", OFlag::O_RDONLY, nix::sys::stat::Mode::empty()).unwrap();
        let flags = || fcntl(&fd, FcntlArg::F_GETFD).unwrap();
        assert_eq!(flags() & libc::FD_CLOEXEC, 0);
        // The per-descriptor loop alone, as on a kernel without close_range:
        // only this fd, so that the test harness's own are untouched.
        use std::os::fd::AsRawFd;
        mark_cloexec_each(fd.as_raw_fd(), fd.as_raw_fd() + 1);
        assert_eq!(flags() & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
    }

    fn sh(script: &str, timeout: Duration, limit: usize) -> Result<Output, RunError> {
        let args: [&OsStr; 2] = ["-c".as_ref(), script.as_ref()];
        run_for_output(
            Path::new("/bin/sh"),
            &args,
            &[],
            timeout,
            &Identity::root(),
            limit,
        )
    }

    #[test]
    fn run_for_output_keeps_both_streams_whole_and_any_exit_status() {
        let o = sh(
            "printf 'one\ntwo'; printf 'debug 1234567\n' >&2; exit 3",
            Duration::from_secs(10),
            1024,
        )
        .unwrap();
        assert_eq!(o.code, 3);
        assert_eq!(o.stdout, b"one\ntwo");
        // Whole: digits are not hidden here (they are in an excerpt).
        assert_eq!(o.stderr, b"debug 1234567\n");
        // More than a pipe holds, on both streams at once.
        let o = sh(
            "head -c 300000 /dev/zero; head -c 200000 /dev/zero >&2",
            Duration::from_secs(10),
            1 << 20,
        )
        .unwrap();
        assert_eq!(
            (o.code, o.stdout.len(), o.stderr.len()),
            (0, 300_000, 200_000)
        );
        // Nothing of ours in its environment.
        let o = sh("env", Duration::from_secs(10), 4096).unwrap();
        let env = String::from_utf8_lossy(&o.stdout);
        let mut names: Vec<&str> = env.lines().filter_map(|l| l.split('=').next()).collect();
        names.sort_unstable();
        assert_eq!(names, ["HOME", "PATH", "PWD"], "{env}");
    }

    #[test]
    fn run_for_output_kills_a_program_past_its_bound_or_its_deadline() {
        for (script, stream) in [
            ("head -c 100000 /dev/zero", "stdout"),
            ("head -c 100000 /dev/zero >&2", "stderr"),
        ] {
            match sh(script, Duration::from_secs(10), 1000) {
                Err(RunError::Io(e)) => assert!(
                    e.to_string()
                        .contains(&format!("more than 1000 bytes to {stream}")),
                    "{e}"
                ),
                other => panic!("{script}: {other:?}"),
            }
        }
        let started = Instant::now();
        match sh("sleep 30", Duration::from_millis(300), 1000) {
            Err(RunError::TimedOut(_)) => {}
            other => panic!("{other:?}"),
        }
        assert!(started.elapsed() < Duration::from_secs(10));
        match sh("kill -9 $$", Duration::from_secs(10), 1000) {
            Err(RunError::Signal(9)) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_read_as_a_log_detail() {
        let cases = [
            (
                RunError::Exit(3, "no such user".into()),
                "exit",
                "exited with status 3: no such user",
            ),
            (
                RunError::Exit(1, String::new()),
                "exit",
                "exited with status 1",
            ),
            (
                RunError::Signal(9),
                "signal",
                "was killed by signal 9 (SIGKILL)",
            ),
            (
                RunError::TimedOut(Duration::from_secs(10)),
                "timeout",
                "did not finish within 10s and was killed",
            ),
            (
                RunError::Spawn(io::Error::from_raw_os_error(libc::ENOENT)),
                "spawn",
                "could not be started: No such file or directory (os error 2)",
            ),
        ];
        for (e, reason, text) in cases {
            assert_eq!(e.reason(), reason);
            assert_eq!(e.to_string(), text);
        }
    }
}
