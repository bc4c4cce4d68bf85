//! The terminal edges of the CLI: colour (only on a terminal, never with
//! `NO_COLOR`), the hidden code prompt that survives Ctrl-C, and holding off
//! termination signals while an enrollment is written.
#![forbid(unsafe_code)]

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::termios::{self, LocalFlags, SetArg, SpecialCharacterIndices};
use std::io::{IsTerminal, Write};
use std::os::fd::{AsFd, BorrowedFd};
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

/// `label  value` lines with the values aligned.
pub fn aligned(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(l, v)| format!("  {l:<width$}  {v}\n"))
        .collect()
}

/// The person at the terminal gave up (Ctrl-C, Ctrl-D, end of input).
#[derive(Debug)]
pub struct Cancelled;

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

    /// Asks for a code: hidden, character by character, on a terminal; a
    /// plain line from standard input otherwise.
    pub fn read_code(&self, prompt: &str) -> Result<Zeroizing<String>, Cancelled> {
        match self {
            Keyboard::Tty(tty) => read_hidden(tty.as_fd(), prompt, MAX_ANSWER),
            Keyboard::Stdin => read_stdin(prompt),
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
fn read_stdin(prompt: &str) -> Result<Zeroizing<String>, Cancelled> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return read_hidden(stdin.as_fd(), prompt, MAX_ANSWER);
    }
    let mut err = std::io::stderr();
    let _ = write!(err, "{prompt}");
    let _ = err.flush();
    let mut line = Zeroizing::new(String::new());
    match stdin.read_line(&mut line) {
        Ok(0) | Err(_) => {
            let _ = writeln!(err);
            Err(Cancelled)
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
    let mut err = std::io::stderr();
    let saved = termios::tcgetattr(tty).map_err(|_| Cancelled)?;
    let mut raw = saved.clone();
    raw.local_flags
        .remove(LocalFlags::ECHO | LocalFlags::ICANON | LocalFlags::ISIG);
    raw.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
    raw.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
    let restore = RestoreTerminal { fd: tty, saved };
    // Keys typed ahead are kept (TCSANOW). The prompt appears only once
    // Ctrl-C is a key: whoever sees it can interrupt cleanly.
    termios::tcsetattr(tty, SetArg::TCSANOW, &raw).map_err(|_| Cancelled)?;
    let _ = write!(err, "{prompt}");
    let _ = err.flush();
    let mut answer = Zeroizing::new(String::with_capacity(max));
    let outcome = loop {
        let mut byte = [0u8; 1];
        match nix::unistd::read(tty, &mut byte) {
            Ok(1) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            _ => break Err(Cancelled),
        }
        match byte[0] {
            b'\r' | b'\n' => break Ok(()),
            // Ctrl-C, Ctrl-\ ; Ctrl-D on an empty line.
            0x03 | 0x1c => {
                let _ = write!(err, "^C");
                break Err(Cancelled);
            }
            0x04 if answer.is_empty() => break Err(Cancelled),
            0x7f | 0x08 => {
                answer.pop();
            }
            // Ctrl-U: start over.
            0x15 => answer.clear(),
            b if (0x20..0x7f).contains(&b) && answer.len() < max => {
                answer.push(char::from(b));
            }
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
