//! `twostep enroll --secret-file FILE|-`: a secret the administrator already
//! has (moved from another system, or kept in a password manager), read from
//! a file or from standard input. Never from the command line: every local
//! user can read a process's arguments in /proc/PID/cmdline, and shells keep
//! them in their history.
//!
//! The input is bounded ([`MAX_INPUT`]) and read straight from the descriptor
//! into one buffer, which is wiped, as is every copy made while parsing it.
//! A regular file that group or others may read is accepted with a warning:
//! refusing it would not make the secret unknown again, and the administrator
//! may be moving a secret that the user's phone already holds.
#![forbid(unsafe_code)]

use super::CliError;
use super::term;
use crate::files::secret;
use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use zeroize::Zeroizing;

/// Far more than any secret needs (1024 bits are 205 base32 characters, 256
/// in groups of four): a larger input is the wrong file.
pub const MAX_INPUT: usize = 4096;

/// A secret given with `--secret-file`.
pub struct GivenSecret {
    pub key: Zeroizing<Vec<u8>>,
    /// Reading it used up standard input (a pipe or a redirected file), so
    /// the app's code cannot be read from there.
    pub took_stdin: bool,
}

/// Reads and checks the secret that `--secret-file` names; `-` is standard
/// input. On a terminal, standard input is asked for like a password: hidden,
/// ended by Enter.
pub fn read(source: &Path) -> Result<GivenSecret, CliError> {
    let what = format!("--secret-file {}", source.display());
    let is_stdin = source == Path::new("-");
    let stdin = io::stdin();
    if is_stdin && stdin.is_terminal() {
        let typed = term::read_hidden(stdin.as_fd(), "Secret key (base32, not shown): ", MAX_INPUT)
            .map_err(|term::Cancelled| CliError::Failed("cancelled: nothing was written".into()))?;
        return Ok(GivenSecret {
            key: parse(typed.as_bytes(), "the secret typed")?,
            took_stdin: false,
        });
    }
    let cannot = |e: io::Error| CliError::Usage(format!("{what}: {e}"));
    let file = if is_stdin {
        // A duplicate of descriptor 0, read directly: the standard library's
        // buffer for stdin would keep a copy of the secret.
        stdin.as_fd().try_clone_to_owned().map(File::from)
    } else {
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOCTTY)
            .open(source)
    }
    .map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    if meta.is_file() && meta.mode() & 0o077 != 0 {
        eprintln!(
            "twostep: warning: {} has mode {:04o}: others may have read this secret \
             (without --secret-file, enroll makes a fresh one)",
            term::escape(&what),
            meta.mode() & 0o7777
        );
    }
    let took_stdin = is_stdin || same_file_as_stdin(&meta);
    let bytes = read_bounded(&file).map_err(cannot)?;
    Ok(GivenSecret {
        key: parse(&bytes, &what)?,
        took_stdin,
    })
}

/// Whether `meta` is the file on descriptor 0 (`--secret-file /dev/stdin`).
fn same_file_as_stdin(meta: &std::fs::Metadata) -> bool {
    io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map(File::from)
        .and_then(|f| f.metadata())
        .is_ok_and(|s| s.dev() == meta.dev() && s.ino() == meta.ino())
}

/// All of `input`, up to [`MAX_INPUT`] bytes, in one buffer sized up front
/// (no reallocation leaves a copy behind).
fn read_bounded(mut input: &File) -> io::Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(vec![0u8; MAX_INPUT + 1]);
    let mut len = 0;
    while len < buf.len() {
        match input.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if len > MAX_INPUT {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("more than {MAX_INPUT} bytes: not a secret"),
        ));
    }
    buf.truncate(len);
    Ok(buf)
}

/// A base32 secret as people write it: surrounding white space and a final
/// newline, groups separated by spaces or dashes, either case. `what` names
/// the input in errors, which never quote it.
pub fn parse(raw: &[u8], what: &str) -> Result<Zeroizing<Vec<u8>>, CliError> {
    let text =
        std::str::from_utf8(raw).map_err(|_| CliError::Usage(format!("{what} is not text")))?;
    let mut compact = Zeroizing::new(String::with_capacity(text.len()));
    compact.extend(text.trim().chars().filter(|c| !matches!(c, ' ' | '-')));
    let key = secret::decode_base32(&compact)
        .ok_or_else(|| CliError::Usage(format!("{what} is not valid base32 (A-Z, 2-7)")))?;
    if key.len() < secret::MIN_SECRET_BYTES {
        return Err(CliError::Usage(format!(
            "{what} is {} bits; at least 128 are required",
            key.len() * 8
        )));
    }
    if key.len() > secret::MAX_SECRET_BYTES {
        return Err(CliError::Usage(format!("{what} is longer than 1024 bits")));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_as_people_write_them() {
        for written in [
            "gezd gnbv gy3t qojq gezd gnbv gy3t qojq",
            "  GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n",
            "GEZD-GNBV-GY3T-QOJQ-GEZD-GNBV-GY3T-QOJQ\r\n",
        ] {
            assert_eq!(
                parse(written.as_bytes(), "s").unwrap().as_slice(),
                b"12345678901234567890",
                "{written:?}"
            );
        }
        assert!(
            matches!(parse(b"GEZDGNBVGY3TQOJQ", "s"), Err(CliError::Usage(m)) if m.contains("80 bits"))
        );
        for bad in [
            &b"not base32!"[..],
            b"GEZDGNBV\nGY3TQOJQGEZDGNBVGY3TQOJQ",
            b"\xff\xfe",
        ] {
            let e = parse(bad, "s").unwrap_err().to_string();
            assert!(matches!(parse(bad, "s"), Err(CliError::Usage(_))), "{e}");
            assert!(
                !e.contains("GEZD") && !e.contains("base32!"),
                "quotes the input: {e}"
            );
        }
    }
}
