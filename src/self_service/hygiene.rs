//! The setuid start of twostep-self: what runs before anything else, so
//! that what the caller chose (environment, descriptors, limits, signals,
//! umask) reaches none of the code that runs as root. The models each step
//! follows are named in `self_service`'s documentation.
//!
//! Unsafe code here: clearing the environment (`clearenv`, `setenv`), which
//! Rust 2024 marks unsafe because another thread could be reading it; this
//! runs first thing in `main`, before any thread exists. And one `fcntl`
//! probe of a descriptor number.

use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit, setrlimit};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use std::ffi::OsString;
use std::io::Write;
use std::os::fd::IntoRawFd;

/// All a panic prints: one fixed line, whatever `RUST_BACKTRACE` says
/// (the hook is set before anything can panic, and the environment is
/// cleared anyway). Nothing in it comes from the panic.
pub const PANIC_LINE: &str =
    "twostep-self: internal error; it stopped here. Ask your administrator.\n";

/// The only `PATH` a child of this process sees (sendmail and the SMS
/// command get their own, fixed one from `delivery::spawn` too).
const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// Locale variables kept when their value is a plain locale name. Nothing
/// in twostep-self calls `setlocale`, so today they change nothing; a
/// library that did would get the caller's language, never a path.
const LOCALE_VARS: [&str; 5] = ["LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES"];

/// Replaces the panic hook: one fixed line on stderr, no message, no
/// location, no backtrace. The first thing `main` does.
pub fn quiet_panics() {
    std::panic::set_hook(Box::new(|_| {
        let _ = std::io::stderr().write_all(PANIC_LINE.as_bytes());
    }));
}

/// Everything else, in order. `Err`: a line saying why twostep-self cannot
/// run (exit 1).
pub fn start() -> Result<(), String> {
    hold_signals();
    clear_environment();
    standard_descriptors()?;
    check_privileges()?;
    // The files it makes are root's, group too: the effective gid is the
    // caller's until now.
    nix::unistd::setegid(nix::unistd::Gid::from_raw(0))
        .map_err(|e| format!("cannot take the root group: {e}"))?;
    // The files it writes get their modes from the code, never from the
    // caller's umask (0777 would leave 0000 files, 0 could not widen them
    // but a directory made with it would be open to all).
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    no_core_dumps();
    lift_file_size_limit()
}

/// Blocks, for the whole run, every signal the caller could send to stop
/// the program between two writes (the caller's real uid lets them signal
/// it: SIGTERM, SIGHUP, SIGINT, SIGQUIT, SIGTSTP, the real-time signals, and
/// any other whose default ends the process). The synchronous ones (a fault
/// in this program) and SIGCHLD stay open; SIGKILL and SIGSTOP cannot be
/// blocked, and the writes are atomic for them (`fsutil`). Children get an
/// empty mask from std's spawn. At the prompts Ctrl-C is read as a key
/// (`cli::term`), so the person at the terminal can still give up.
fn hold_signals() {
    let mut set = SigSet::all();
    for open in [
        Signal::SIGSEGV,
        Signal::SIGBUS,
        Signal::SIGFPE,
        Signal::SIGILL,
        Signal::SIGTRAP,
        Signal::SIGSYS,
        Signal::SIGABRT,
        Signal::SIGCHLD,
    ] {
        set.remove(open);
    }
    let _ = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None);
}

/// Whether a locale variable's value is a plain locale name (`de_DE.UTF-8`,
/// `en_GB:en`): no `/` (no path to a catalogue of the caller's), no `%`,
/// no `..`, at most 64 bytes.
fn plain_locale(value: &[u8]) -> bool {
    !value.is_empty()
        && value.len() <= 64
        && !value.windows(2).any(|w| w == b"..")
        && value
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'@' | b'-' | b':'))
}

/// What is kept of the caller's environment: plain locale names and
/// whether `NO_COLOR` is set, no more.
fn kept_environment(vars: impl Iterator<Item = (OsString, OsString)>) -> Vec<(String, OsString)> {
    use std::os::unix::ffi::OsStrExt;
    let mut kept = Vec::new();
    for (key, value) in vars {
        let Some(key) = key.to_str() else { continue };
        if LOCALE_VARS.contains(&key) && plain_locale(value.as_bytes()) {
            kept.push((key.to_string(), value));
        } else if key == "NO_COLOR" && !value.is_empty() {
            kept.push((key.to_string(), OsString::from("1")));
        }
    }
    kept
}

/// Clears the environment (std, clap, libc and PAM modules read `TZ`,
/// `LANG`, `COLUMNS`, `RUST_BACKTRACE`, `RUST_MIN_STACK`, `TMPDIR`...), then
/// sets a fixed `PATH` and puts back what [`kept_environment`] keeps.
/// `clearenv` rather than removing names one by one: a caller can hand
/// execve entries that std would take for names it cannot remove.
fn clear_environment() {
    let kept = kept_environment(std::env::vars_os());
    // SAFETY: clearenv only resets libc's `environ`; this is the first
    // thing main does after setting the panic hook and the signal mask, so
    // no other thread exists to read the environment meanwhile.
    unsafe { libc::clearenv() };
    // SAFETY: as above, single-threaded. The names are fixed ASCII without
    // `=` or NUL, and the values came from the environment, so they hold
    // no NUL either: set_var cannot panic.
    unsafe {
        std::env::set_var("PATH", PATH);
        for (key, value) in kept {
            std::env::set_var(key, value);
        }
    }
}

/// Makes sure descriptors 0, 1 and 2 are open, on /dev/null if the caller
/// closed them: otherwise the first file this program opens (a secret
/// file's temporary copy) would get the number, and whatever is printed
/// next would go into it. std does the same before main (its runtime's
/// `sanitize_standard_fds`); this does not rely on it.
fn standard_descriptors() -> Result<(), String> {
    for fd in 0..=2 {
        // SAFETY: F_GETFD on a descriptor number only reads its flags; no
        // memory is passed or touched.
        let open = unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1;
        if open {
            continue;
        }
        let null = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")
            .map_err(|e| {
                format!("descriptor {fd} is closed and /dev/null cannot be opened: {e}")
            })?;
        // The lowest free number: `fd`, as the lower ones are open. Kept
        // open for the life of the process.
        let got = null.into_raw_fd();
        if got != fd {
            return Err(format!(
                "descriptor {fd} is closed and could not be reopened"
            ));
        }
    }
    Ok(())
}

/// Refuses to run without the rights the setuid bit gives, with a message
/// that says why. Under no_new_privs the kernel ignores the setuid bit, so
/// the program runs with the caller's own rights and could only fail later,
/// less clearly.
fn check_privileges() -> Result<(), String> {
    if nix::sys::prctl::get_no_new_privs().unwrap_or(false) {
        return Err(
            "this process runs under no_new_privs (a sandbox, a container, \
             systemd's NoNewPrivileges= or setpriv --no-new-privs), so the kernel \
             ignored the setuid bit that twostep-self needs: run it from an ordinary shell"
                .into(),
        );
    }
    let euid = nix::unistd::geteuid();
    if !euid.is_root() {
        return Err(format!(
            "twostep-self is not installed setuid root (it runs as uid {euid}, not 0): \
             the package installs /usr/bin/twostep-self as root, mode 4755; \
             ask your administrator"
        ));
    }
    Ok(())
}

/// No core file and no ptrace-style access to this process's memory, which
/// holds the password, codes and secrets: not dumpable, and a core size
/// limit of 0 whatever `fs.suid_dumpable` says.
fn no_core_dumps() {
    let _ = nix::sys::prctl::set_dumpable(false);
    let _ = setrlimit(Resource::RLIMIT_CORE, 0, 0);
}

/// The least file-size limit twostep-self works under: its files are a
/// few KB (a state file, a secret file, their temporary copies; sendmail's
/// spool file, as its child).
const LEAST_FILE_SIZE_LIMIT: u64 = 1 << 20;

/// A caller's `ulimit -f` must not cut a write short. As root the limit is
/// lifted altogether; where even root may not raise a hard limit (no
/// CAP_SYS_RESOURCE in the bounding set, as in some containers), the soft
/// limit is raised to the hard one, and if that is still small, nothing is
/// attempted: better refused whole than written in part (the writes are
/// atomic anyway, and a count that cannot be written refuses the attempt).
fn lift_file_size_limit() -> Result<(), String> {
    if setrlimit(Resource::RLIMIT_FSIZE, RLIM_INFINITY, RLIM_INFINITY).is_ok() {
        return Ok(());
    }
    let (_, hard) = getrlimit(Resource::RLIMIT_FSIZE)
        .map_err(|e| format!("cannot read the file-size limit: {e}"))?;
    let _ = setrlimit(Resource::RLIMIT_FSIZE, hard, hard);
    match getrlimit(Resource::RLIMIT_FSIZE) {
        Ok((soft, _)) if soft >= LEAST_FILE_SIZE_LIMIT => Ok(()),
        Ok((soft, _)) => Err(format!(
            "a file-size limit of {soft} bytes is in force (ulimit -f) and cannot be \
             lifted here, so files could not be written whole: run it without one"
        )),
        Err(e) => Err(format!("cannot read the file-size limit: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_locale_names_are_kept() {
        let env = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (OsString::from(k), OsString::from(v)))
                .collect::<Vec<_>>()
        };
        let kept = kept_environment(
            env(&[
                ("LANG", "de_DE.UTF-8"),
                ("LANGUAGE", "en_GB:en"),
                ("LC_ALL", "../../../tmp/evil"),
                ("LC_MESSAGES", "/tmp/catalogue"),
                ("LC_CTYPE", "C.UTF-8%n%n"),
                ("TZ", "UTC"),
                ("RUST_BACKTRACE", "full"),
                ("COLUMNS", "1"),
                ("LD_PRELOAD", "/tmp/x.so"),
                ("TWOSTEP_CONFIG", "/tmp/x.toml"),
                ("NO_COLOR", "anything"),
                ("PATH", "/tmp/bin"),
            ])
            .into_iter(),
        );
        let names: Vec<_> = kept.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["LANG", "LANGUAGE", "NO_COLOR"]);
        assert_eq!(kept[2].1, "1");
        for bad in ["", "..", "a..b", "a/b", "x%s", &"a".repeat(65), "é"] {
            assert!(!plain_locale(bad.as_bytes()), "{bad:?}");
        }
        for good in ["C", "C.UTF-8", "sr_RS@latin", "en_GB:en"] {
            assert!(plain_locale(good.as_bytes()), "{good:?}");
        }
    }
}
