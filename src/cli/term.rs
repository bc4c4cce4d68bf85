//! The terminal edges of the CLI: colour (only on a terminal, never with
//! `NO_COLOR`), escaping text that comes from outside, the hidden code
//! prompt that survives Ctrl-C, and holding off termination signals while an
//! enrollment is written.
#![forbid(unsafe_code)]

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::termios::{self, LocalFlags, SetArg, SpecialCharacterIndices};
use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// ANSI styling for one output stream: a no-op unless it is a terminal and
/// `NO_COLOR` is unset or empty (https://no-color.org).
#[derive(Debug, Clone, Copy)]
pub struct Paint {
    on: bool,
}

impl Paint {
    pub fn stdout() -> Paint {
        Paint::when(std::io::stdout().is_terminal())
    }

    pub fn stderr() -> Paint {
        Paint::when(std::io::stderr().is_terminal())
    }

    fn when(terminal: bool) -> Paint {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Paint {
            on: terminal && !no_color,
        }
    }

    fn wrap(self, code: &str, text: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn bold(self, text: &str) -> String {
        self.wrap("1", text)
    }
    pub fn green(self, text: &str) -> String {
        self.wrap("1;32", text)
    }
    pub fn yellow(self, text: &str) -> String {
        self.wrap("1;33", text)
    }
    pub fn red(self, text: &str) -> String {
        self.wrap("1;31", text)
    }
}

/// Text from outside twostep (a user's file, a directory listing, a name or
/// path from the command line), made safe to show on a terminal. Control
/// characters (C0, DEL and C1), which could recolour or clear the screen,
/// retitle the window, or overwrite what was printed before them, are
/// written as `\xNN` (`\u{NN}` for C1); so are bidirectional overrides and
/// line separators (`\u{NNNN}`), which reorder or break a line, and bytes
/// that are not UTF-8 (`\xNN`). `\` is written `\\`, so that no text can
/// pass for an escape. Every place the CLI prints such text goes through
/// here: error messages carry the raw text and are escaped as they are
/// printed (`cli::main`).
pub fn escape(text: &str) -> Cow<'_, str> {
    escape_bytes(text.as_bytes())
}

/// [`escape`] for a path, which may be any bytes.
pub fn escape_path(path: &Path) -> Cow<'_, str> {
    escape_bytes(path.as_os_str().as_bytes())
}

/// [`escape`] for bytes that may not be UTF-8.
pub fn escape_bytes(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(text) = std::str::from_utf8(bytes)
        && !text.chars().any(needs_escape)
    {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(bytes.len() + 16);
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                c if needs_escape(c) && u32::from(c) < 0x80 => {
                    let _ = write!(out, "\\x{:02x}", u32::from(c));
                }
                c if needs_escape(c) => {
                    let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || c == '\\'
        || matches!(
            c,
            '\u{061c}'
                | '\u{200e}'
                | '\u{200f}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `label  value` lines with the values aligned.
pub fn aligned(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(l, v)| format!("  {l:<width$}  {v}\n"))
        .collect()
}

/// A table: `header`, then each row, the columns aligned, two spaces
/// apart. Cells are printed as given: escape what came from outside first.
pub fn table<R: AsRef<[String]>>(
    out: &mut dyn Write,
    header: &[&str],
    rows: &[R],
) -> std::io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row.as_ref()) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        cells
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    writeln!(out, "{}", line(&mut header.iter().copied()))?;
    for row in rows {
        writeln!(
            out,
            "{}",
            line(&mut row.as_ref().iter().map(String::as_str))
        )?;
    }
    Ok(())
}

/// The person at the terminal gave up (Ctrl-C, Ctrl-D, end of input).
#[derive(Debug)]
pub struct Cancelled;

/// Why a prompt with a time limit got no answer.
#[derive(Debug, PartialEq, Eq)]
pub enum NoAnswer {
    /// As [`Cancelled`].
    Cancelled,
    /// The time was up first.
    TimedOut,
}

impl From<NoAnswer> for Cancelled {
    fn from(_: NoAnswer) -> Cancelled {
        Cancelled
    }
}

/// Writes what `show` writes to standard output and flushes it: `Ok` only
/// if all of it went out. `println!` panics instead (twostep-self, which
/// blocks SIGPIPE, and `twostep`, whose runtime ignores it, get EPIPE from
/// a pipe whose reader has gone), and a panic would stop a change half
/// made: after its write, before its record and notice.
pub fn to_stdout(show: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    show(&mut out)?;
    out.flush()
}

/// A line on stderr, come what may: `eprintln!` panics when stderr cannot
/// be written, and a note must never stop a change half made.
pub fn note(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Whether standard output is a pipe or socket whose reader has gone
/// (`poll` says POLLERR or POLLHUP): whatever is written there is lost.
/// A file on a full disk is not seen here; [`to_stdout`] sees it.
pub fn stdout_gone() -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let stdout = std::io::stdout();
    let mut fds = [PollFd::new(stdout.as_fd(), PollFlags::POLLOUT)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(_) => fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLERR | PollFlags::POLLHUP)),
        Err(_) => false,
    }
}

/// Waits until `fd` has something to read or the time is up (`false`);
/// without a time, at once.
fn readable_by(fd: BorrowedFd<'_>, until: Option<Instant>) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let Some(until) = until else {
        return true;
    };
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let ms = u32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(u32::MAX);
        let timeout = PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        match poll(&mut fds, timeout) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => {}
            // Readable, or an error that the read will meet and report.
            Ok(_) | Err(_) => return true,
        }
    }
}

/// Where the person enrolling types the app's code.
pub enum Keyboard {
    /// Standard input: a terminal, or lines from a script.
    Stdin,
    /// The controlling terminal, when standard input carried something else
    /// (`enroll --secret-file -`), as ssh and sudo read a password.
    Tty(std::fs::File),
}

impl Keyboard {
    /// `/dev/tty`, opened for the answers; an error when the process has no
    /// controlling terminal (a cron job, `setsid`, a pipeline under ssh -T).
    pub fn controlling_terminal() -> std::io::Result<Keyboard> {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .map(Keyboard::Tty)
    }

    /// A terminal to type on, whatever standard input is: standard input if
    /// it is one, else the controlling terminal.
    pub fn terminal() -> std::io::Result<Keyboard> {
        if std::io::stdin().is_terminal() {
            Ok(Keyboard::Stdin)
        } else {
            Keyboard::controlling_terminal()
        }
    }

    /// Asks for a password, hidden, on a terminal; never from a pipe
    /// (`Cancelled` then).
    pub fn read_password(&self, prompt: &str, max: usize) -> Result<Zeroizing<Vec<u8>>, Cancelled> {
        match self {
            Keyboard::Tty(tty) => read_password(tty.as_fd(), prompt, max),
            Keyboard::Stdin if std::io::stdin().is_terminal() => {
                read_password(std::io::stdin().as_fd(), prompt, max)
            }
            Keyboard::Stdin => Err(Cancelled),
        }
    }

    /// Asks for a code: hidden, character by character, on a terminal; a
    /// plain line from standard input otherwise.
    pub fn read_code(&self, prompt: &str) -> Result<Zeroizing<String>, Cancelled> {
        Ok(self.read_code_within(prompt, None)?)
    }

    /// [`Keyboard::read_code`], giving up after `limit` (none: no limit).
    pub fn read_code_within(
        &self,
        prompt: &str,
        limit: Option<Duration>,
    ) -> Result<Zeroizing<String>, NoAnswer> {
        let until = limit.map(|l| Instant::now() + l);
        match self {
            Keyboard::Tty(tty) => read_hidden_by(tty.as_fd(), prompt, MAX_ANSWER, until),
            Keyboard::Stdin => read_stdin(prompt, until),
        }
    }
}

/// Puts the terminal back as it was, whatever happens after.
struct RestoreTerminal<'fd> {
    fd: BorrowedFd<'fd>,
    saved: termios::Termios,
}

impl Drop for RestoreTerminal<'_> {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.fd, SetArg::TCSAFLUSH, &self.saved);
    }
}

const MAX_ANSWER: usize = 64;

/// Asks for a code on standard input: hidden on a terminal (see
/// [`read_hidden`]), a plain line otherwise.
fn read_stdin(prompt: &str, until: Option<Instant>) -> Result<Zeroizing<String>, NoAnswer> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return read_hidden_by(stdin.as_fd(), prompt, MAX_ANSWER, until);
    }
    let mut err = std::io::stderr();
    let _ = write!(err, "{prompt}");
    let _ = err.flush();
    if !readable_by(stdin.as_fd(), until) {
        let _ = writeln!(err);
        return Err(NoAnswer::TimedOut);
    }
    let mut line = Zeroizing::new(String::new());
    match stdin.read_line(&mut line) {
        Ok(0) | Err(_) => {
            let _ = writeln!(err);
            Err(NoAnswer::Cancelled)
        }
        Ok(_) => Ok(Zeroizing::new(line.trim().to_string())),
    }
}

/// Reads one line of at most `max` printable characters from the terminal
/// `tty`, without echo. Ctrl-C is read as a key rather than sent as SIGINT,
/// so the terminal's echo is always restored and the caller decides what an
/// interruption means (for enrollment: nothing is written). The bytes are
/// read straight from the descriptor, so no copy is left in a library
/// buffer, and the answer is wiped when dropped.
pub fn read_hidden(
    tty: BorrowedFd<'_>,
    prompt: &str,
    max: usize,
) -> Result<Zeroizing<String>, Cancelled> {
    Ok(read_hidden_by(tty, prompt, max, None)?)
}

/// [`read_hidden`], giving up at `until` (none: never).
fn read_hidden_by(
    tty: BorrowedFd<'_>,
    prompt: &str,
    max: usize,
    until: Option<Instant>,
) -> Result<Zeroizing<String>, NoAnswer> {
    let mut bytes = read_hidden_bytes(tty, prompt, max, Accept::Printable, until)?;
    // Printable ASCII only, so always UTF-8: the buffer is moved, not copied.
    String::from_utf8(std::mem::take(&mut *bytes))
        .map(Zeroizing::new)
        .map_err(|e| {
            zeroize::Zeroize::zeroize(&mut e.into_bytes());
            NoAnswer::Cancelled
        })
}

/// Reads a password from the terminal `tty` as [`read_hidden`] reads a
/// code, but keeps any byte that is not a control character (a password
/// may be UTF-8), up to `max` bytes; Backspace removes a whole character.
pub fn read_password(
    tty: BorrowedFd<'_>,
    prompt: &str,
    max: usize,
) -> Result<Zeroizing<Vec<u8>>, Cancelled> {
    Ok(read_hidden_bytes(tty, prompt, max, Accept::AnyText, None)?)
}

/// Which bytes a hidden answer keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accept {
    /// Printable ASCII: codes and recovery codes.
    Printable,
    /// Anything but control characters: passwords.
    AnyText,
}

/// The hidden read itself; with `until`, the answer must be complete by
/// then (the keys typed are read as they come, the time is for them all).
fn read_hidden_bytes(
    tty: BorrowedFd<'_>,
    prompt: &str,
    max: usize,
    accept: Accept,
    until: Option<Instant>,
) -> Result<Zeroizing<Vec<u8>>, NoAnswer> {
    let mut err = std::io::stderr();
    let saved = termios::tcgetattr(tty).map_err(|_| NoAnswer::Cancelled)?;
    let mut raw = saved.clone();
    raw.local_flags
        .remove(LocalFlags::ECHO | LocalFlags::ICANON | LocalFlags::ISIG);
    raw.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
    raw.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
    let restore = RestoreTerminal { fd: tty, saved };
    // Keys typed ahead are kept (TCSANOW). The prompt appears only once
    // Ctrl-C is a key: whoever sees it can interrupt cleanly.
    termios::tcsetattr(tty, SetArg::TCSANOW, &raw).map_err(|_| NoAnswer::Cancelled)?;
    let _ = write!(err, "{prompt}");
    let _ = err.flush();
    let mut answer = Zeroizing::new(Vec::with_capacity(max));
    let outcome = loop {
        if !readable_by(tty, until) {
            break Err(NoAnswer::TimedOut);
        }
        let mut byte = [0u8; 1];
        match nix::unistd::read(tty, &mut byte) {
            Ok(1) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            _ => break Err(NoAnswer::Cancelled),
        }
        match byte[0] {
            b'\r' | b'\n' => break Ok(()),
            // Ctrl-C, Ctrl-\ ; Ctrl-D on an empty line.
            0x03 | 0x1c => {
                let _ = write!(err, "^C");
                break Err(NoAnswer::Cancelled);
            }
            0x04 if answer.is_empty() => break Err(NoAnswer::Cancelled),
            // Backspace: the last character, with its UTF-8 continuation bytes.
            0x7f | 0x08 => {
                while let Some(b) = answer.pop() {
                    if b & 0xc0 != 0x80 {
                        break;
                    }
                }
            }
            // Ctrl-U: start over.
            0x15 => answer.clear(),
            b if (0x20..0x7f).contains(&b) && answer.len() < max => answer.push(b),
            b if b >= 0x80 && accept == Accept::AnyText && answer.len() < max => answer.push(b),
            _ => {}
        }
    };
    drop(restore);
    let _ = writeln!(err);
    outcome.map(|()| answer)
}

/// While alive, SIGINT, SIGTERM, SIGHUP and SIGQUIT wait: an enrollment is
/// written, logged and shown whole, and a signal that came meanwhile takes
/// effect when this is dropped.
pub struct HoldSignals {
    old: Option<SigSet>,
}

impl HoldSignals {
    pub fn new() -> HoldSignals {
        let mut set = SigSet::empty();
        for s in [
            Signal::SIGINT,
            Signal::SIGTERM,
            Signal::SIGHUP,
            Signal::SIGQUIT,
        ] {
            set.add(s);
        }
        let mut old = SigSet::empty();
        let held = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), Some(&mut old));
        HoldSignals {
            old: held.ok().map(|()| old),
        }
    }
}

impl Drop for HoldSignals {
    fn drop(&mut self) {
        if let Some(old) = &self.old {
            let _ = std::io::stdout().flush();
            let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(old), None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prompt_with_a_time_limit_gives_up_then() {
        let pty = nix::pty::openpty(None, None).unwrap();
        let tty = pty.slave.as_fd();
        let within = |ms| Some(Instant::now() + Duration::from_millis(ms));
        // Nothing typed: no answer, once the time is up and not before.
        let start = Instant::now();
        assert_eq!(
            read_hidden_by(tty, "", 8, within(300)).err(),
            Some(NoAnswer::TimedOut)
        );
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(300) && waited < Duration::from_secs(10),
            "{waited:?}"
        );
        // Typed in time: read.
        nix::unistd::write(&pty.master, b"123456\r").unwrap();
        assert_eq!(
            read_hidden_by(tty, "", 8, within(10_000)).unwrap().as_str(),
            "123456"
        );
        // Begun but not ended in time: no answer; the time is for it all.
        nix::unistd::write(&pty.master, b"123").unwrap();
        assert_eq!(
            read_hidden_by(tty, "", 8, within(300)).err(),
            Some(NoAnswer::TimedOut)
        );
        // Without a time: waits for the answer, however long.
        nix::unistd::write(&pty.master, b"\x15654321\r").unwrap();
        assert_eq!(read_hidden_by(tty, "", 8, None).unwrap().as_str(), "654321");
        // The time already up: asked, not waited for.
        let start = Instant::now();
        assert_eq!(
            read_hidden_by(tty, "", 8, within(0)).err(),
            Some(NoAnswer::TimedOut)
        );
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn outside_text_is_escaped() {
        let cases: &[(&[u8], &str)] = &[
            (b"alice", "alice"),
            ("jos\u{e9} \u{4e2d}".as_bytes(), "jos\u{e9} \u{4e2d}"),
            (b"\x1b[31mred\x1b[0m", r"\x1b[31mred\x1b[0m"),
            (
                b"bell\x07 cr\r lf\n tab\t nul\0",
                r"bell\x07 cr\x0d lf\x0a tab\x09 nul\x00",
            ),
            (b"del\x7f", r"del\x7f"),
            ("c1 \u{9b}2J \u{85}".as_bytes(), r"c1 \u{9b}2J \u{85}"),
            (b"raw \x9b\xff", r"raw \x9b\xff"),
            (
                "bidi \u{202e}txt.exe\u{2069}".as_bytes(),
                r"bidi \u{202e}txt.exe\u{2069}",
            ),
            (b"back\\slash", r"back\\slash"),
            (br"\x1b is text", r"\\x1b is text"),
        ];
        for (raw, want) in cases {
            assert_eq!(escape_bytes(raw), *want, "{raw:?}");
            if let Ok(text) = std::str::from_utf8(raw) {
                assert_eq!(escape(text), *want, "{text:?}");
            }
        }
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
        assert_eq!(
            escape_path(Path::new(std::ffi::OsStr::from_bytes(b"/home/x\x1b\xfe"))),
            r"/home/x\x1b\xfe"
        );
    }
}
