//! The start of what sendmail or the SMS command wrote to stderr, as a
//! log record may show it: at most [`STDERR_KEPT`] bytes, on one line of
//! printable ASCII, with no run of six or more digits (a code, a phone
//! number that the program echoed). `spawn` reads the program's stderr
//! into an [`Excerpt`] while it runs.
#![forbid(unsafe_code)]

use std::io::{self, Read};

/// How much of the program's stderr is kept for the error.
pub const STDERR_KEPT: usize = 4096;
/// After the program exits, how much more of its stderr is read: what it
/// left in the pipe, not what a descendant keeps writing.
const DRAIN_AFTER_EXIT: usize = 64 * 1024;

/// The start of the program's stderr.
#[derive(Default)]
pub(super) struct Excerpt {
    kept: Vec<u8>,
    cut: bool,
}

impl Excerpt {
    /// One read; the bytes past [`STDERR_KEPT`] are read and dropped, so the
    /// program never blocks on a full stderr pipe.
    pub(super) fn read_from(&mut self, mut pipe: impl Read) -> io::Result<usize> {
        let mut buf = [0u8; 4096];
        let n = pipe.read(&mut buf)?;
        let room = STDERR_KEPT.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&buf[..n.min(room)]);
        self.cut |= n > room;
        Ok(n)
    }

    /// What is left in the pipe once the program has exited.
    pub(super) fn drain(&mut self, mut pipe: impl Read) {
        let mut total = 0;
        while total < DRAIN_AFTER_EXIT {
            match self.read_from(&mut pipe) {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    }

    pub(super) fn text(mut self) -> String {
        if self.cut {
            // A number cut in two would show its first digits.
            while self.kept.last().is_some_and(u8::is_ascii_digit) {
                self.kept.pop();
            }
        }
        let mut text = escape_stderr(&self.kept);
        if self.cut {
            text.push_str(" ...");
        }
        text
    }
}

/// One line of printable ASCII: line breaks become `; `, other control and
/// non-ASCII bytes `\xNN`, and every run of six or more digits `[number]`
/// (a code, a phone number) so that the program cannot echo one into a log.
pub fn escape_stderr(raw: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(raw.len());
    let mut line_break = false;
    let mut i = 0;
    while i < raw.len() {
        let digits = raw[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        let len = digits.max(1);
        let b = raw[i];
        if matches!(b, b'\n' | b'\r') {
            line_break = true;
        } else if !(line_break && matches!(b, b' ' | b'\t')) {
            if line_break {
                out.truncate(out.trim_end().len());
                if !out.is_empty() {
                    out.push_str("; ");
                }
                line_break = false;
            }
            match b {
                _ if digits >= 6 => out.push_str("[number]"),
                _ if digits > 0 => out.extend(raw[i..i + digits].iter().map(|&d| char::from(d))),
                b'\t' => out.push(' '),
                b' '..=b'~' => out.push(char::from(b)),
                _ => {
                    let _ = write!(out, "\\x{b:02x}");
                }
            }
        }
        i += len;
    }
    out.truncate(out.trim_end().len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stderr_is_one_line_without_codes() {
        let cases: &[(&[u8], &str)] = &[
            (b"", ""),
            (
                b"sendmail: fatal: no such user\n",
                "sendmail: fatal: no such user",
            ),
            (b"line one\nline two\n\n", "line one; line two"),
            (b"crlf\r\nnext\r\n", "crlf; next"),
            (b"tab\there", "tab here"),
            (b"bell\x07 esc\x1b[31m", "bell\\x07 esc\\x1b[31m"),
            (b"caf\xc3\xa9", "caf\\xc3\\xa9"),
            (b"your code is 123456", "your code is [number]"),
            (b"code 1234567890!", "code [number]!"),
            (b"to +4915112345678 failed", "to +[number] failed"),
            (
                b"HTTP 500 at 12:30 on 2026-11-26",
                "HTTP 500 at 12:30 on 2026-11-26",
            ),
            (b"12345 ok", "12345 ok"),
            (b"a123456b", "a[number]b"),
        ];
        for (raw, want) in cases {
            assert_eq!(escape_stderr(raw), *want, "{raw:?}");
        }
    }

    #[test]
    fn a_cut_excerpt_shows_no_part_of_a_number() {
        let mut e = Excerpt::default();
        let mut raw = vec![b'x'; STDERR_KEPT - 3];
        raw.extend_from_slice(b"123456 more");
        let mut rest = &raw[..];
        while e.read_from(&mut rest).unwrap() > 0 {}
        let text = e.text();
        assert!(text.ends_with("x ..."), "{}", &text[text.len() - 20..]);
        assert!(!text.contains('1'));
    }
}
