//! The request the module hands its on-demand part, and the reply: plain
//! bytes, because the two are separate Rust builds joined by C.
//!
//! A request is `TSR1` then, each length a little-endian u32 before its
//! bytes: the program's path, the account it runs as (empty: root), the
//! number of arguments and each argument, the message for its stdin, and
//! the deadline in milliseconds as a little-endian u64. Nothing may follow.
//! It holds the message, so both sides keep it in zeroized buffers.
//!
//! A reply is empty for success, else one word (the `delivery_failed`
//! record's `reason`), a newline, and the detail.
//!
//! The other request, `TSQ1` then the text as one field, asks for the QR
//! code of an otpauth:// URI drawn for a terminal (enrollment at login):
//! its reply is the drawing, or the reason it could not be drawn. It holds
//! the secret too.
#![forbid(unsafe_code)]

use super::{RUN_FAILED, RUN_OK, RUN_PANICKED};
use crate::base::user::UserName;
use crate::delivery::{DeliveryError, Job, Program};
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::time::Duration;
use zeroize::Zeroizing;

const MAGIC: &[u8; 4] = b"TSR1";
const QR_MAGIC: &[u8; 4] = b"TSQ1";

/// At most this many arguments: sendmail gets three, the SMS command one.
const MAX_ARGS: u32 = 16;

/// The reasons a part may give; any other word is reported as `part`.
const REASONS: [&str; 9] = [
    "program", "account", "message", "spawn", "exit", "signal", "timeout", "io", "part",
];

/// `job` as bytes.
pub fn encode(job: &Job<'_>) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(64 + job.input.len()));
    out.extend_from_slice(MAGIC);
    put(&mut out, job.program.path.as_os_str().as_bytes());
    put(
        &mut out,
        job.program.user.map_or(&[][..], |u| u.as_str().as_bytes()),
    );
    out.extend_from_slice(&(job.args.len() as u32).to_le_bytes());
    for arg in job.args {
        put(&mut out, arg.as_bytes());
    }
    put(&mut out, job.input);
    let millis = u64::try_from(job.timeout.as_millis()).unwrap_or(u64::MAX);
    out.extend_from_slice(&millis.to_le_bytes());
    out
}

/// A request for the QR code of `text`.
pub fn encode_qr(text: &str) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(8 + text.len()));
    out.extend_from_slice(QR_MAGIC);
    put(&mut out, text.as_bytes());
    out
}

/// The text of a QR request, or None if `bytes` is not exactly one.
pub fn decode_qr(bytes: &[u8]) -> Option<Zeroizing<String>> {
    let mut r = Reader(bytes.strip_prefix(QR_MAGIC)?);
    let text = std::str::from_utf8(r.field()?).ok()?;
    r.0.is_empty().then(|| Zeroizing::new(text.to_string()))
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    // Lengths past u32 cannot occur: a message is a few kilobytes.
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// A request as the part reads it.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub path: PathBuf,
    pub user: Option<UserName>,
    pub args: Vec<OsString>,
    pub input: Zeroizing<Vec<u8>>,
    pub timeout: Duration,
}

impl Request {
    /// Runs `f` with this request as a [`Job`].
    pub fn with_job<T>(&self, f: impl FnOnce(&Job<'_>) -> T) -> T {
        let args: Vec<&OsStr> = self.args.iter().map(OsString::as_os_str).collect();
        f(&Job {
            program: Program {
                path: &self.path,
                user: self.user.as_ref(),
            },
            args: &args,
            input: &self.input,
            timeout: self.timeout,
        })
    }
}

/// The request in `bytes`, or None if it is not exactly one well-formed
/// request (a bad account name included).
pub fn decode(bytes: &[u8]) -> Option<Request> {
    let mut r = Reader(bytes.strip_prefix(MAGIC)?);
    let path = PathBuf::from(OsString::from_vec(r.field()?.to_vec()));
    let user = match r.field()? {
        [] => None,
        name => Some(UserName::parse_bytes(name).ok()?),
    };
    let count = r.u32()?;
    if count > MAX_ARGS {
        return None;
    }
    let args = (0..count)
        .map(|_| r.field().map(|a| OsString::from_vec(a.to_vec())))
        .collect::<Option<Vec<_>>>()?;
    let input = Zeroizing::new(r.field()?.to_vec());
    let millis = u64::from_le_bytes(r.take(8)?.try_into().ok()?);
    if !r.0.is_empty() {
        return None;
    }
    Some(Request {
        path,
        user,
        args,
        input,
        timeout: Duration::from_millis(millis),
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.0.len() {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn field(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.u32()?).ok()?;
        self.take(n)
    }
}

/// The reply line for `error`.
pub fn failure(error: &DeliveryError) -> String {
    format!("{}\n{error}", error.reason())
}

/// What the module makes of the part's `status` and `reply`.
pub fn outcome(status: i32, reply: &[u8]) -> Result<(), DeliveryError> {
    let text = String::from_utf8_lossy(reply);
    let (word, detail) = text.split_once('\n').unwrap_or(("part", &text));
    match status {
        RUN_OK => Ok(()),
        RUN_FAILED => Err(DeliveryError::Part {
            reason: REASONS
                .iter()
                .find(|r| **r == word)
                .copied()
                .unwrap_or("part"),
            detail: detail.to_string(),
        }),
        RUN_PANICKED => Err(DeliveryError::part(format!(
            "the on-demand part {} failed inside (a panic): {detail}",
            super::PART_PATH
        ))),
        other => Err(DeliveryError::part(format!(
            "the on-demand part {} refused the request ({other}): {detail}",
            super::PART_PATH
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(user: Option<&str>, args: &[&str], input: &[u8], millis: u64) {
        let user = user.map(|u| UserName::parse(u).unwrap());
        let path = PathBuf::from("/usr/sbin/sendmail");
        let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        let job = Job {
            program: Program {
                path: &path,
                user: user.as_ref(),
            },
            args: &args,
            input,
            timeout: Duration::from_millis(millis),
        };
        let got = decode(&encode(&job)).expect("decodes");
        assert_eq!(got.path, path);
        assert_eq!(got.user, user);
        assert_eq!(
            got.args,
            args.iter().map(|a| a.to_os_string()).collect::<Vec<_>>()
        );
        assert_eq!(&got.input[..], input);
        assert_eq!(got.timeout, Duration::from_millis(millis));
    }

    #[test]
    fn requests_come_back_whole() {
        round_trip(
            None,
            &["-i", "--", "a@example.com"],
            b"Subject: x\r\n\r\n123456\r\n",
            10_000,
        );
        round_trip(Some("mailer"), &["+15551234567"], b"", 1);
        round_trip(None, &[], &[0, 255, 10, 0], 0);
        round_trip(None, &[""; 16], b"x", u64::MAX);
    }

    #[test]
    fn anything_else_is_refused() {
        let path = PathBuf::from("/bin/true");
        let args: [&OsStr; 1] = ["x".as_ref()];
        let job = Job {
            program: Program::root(&path),
            args: &args,
            input: b"in",
            timeout: Duration::from_secs(1),
        };
        let good = encode(&job).to_vec();
        assert!(decode(&good).is_some());
        // Every truncation, and one byte more.
        for n in 0..good.len() {
            assert_eq!(decode(&good[..n]), None, "cut at {n}");
        }
        let mut long = good.clone();
        long.push(0);
        assert_eq!(decode(&long), None);
        // Another magic.
        let mut other = good.clone();
        other[3] = b'2';
        assert_eq!(decode(&other), None);
        // A length past the end.
        let mut huge = good.clone();
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&huge), None);
        // Too many arguments.
        let mut many = MAGIC.to_vec();
        put(&mut many, b"/bin/true");
        put(&mut many, b"");
        many.extend_from_slice(&(MAX_ARGS + 1).to_le_bytes());
        for _ in 0..=MAX_ARGS {
            put(&mut many, b"a");
        }
        put(&mut many, b"");
        many.extend_from_slice(&0u64.to_le_bytes());
        assert_eq!(decode(&many), None);
        // An account name that is no user name.
        let mut bad_user = MAGIC.to_vec();
        put(&mut bad_user, b"/bin/true");
        put(&mut bad_user, b"../root");
        bad_user.extend_from_slice(&0u32.to_le_bytes());
        put(&mut bad_user, b"");
        bad_user.extend_from_slice(&0u64.to_le_bytes());
        assert_eq!(decode(&bad_user), None);
    }

    #[test]
    fn qr_requests_come_back_whole_and_nothing_else_does() {
        for text in ["otpauth://totp/Acme:alice?secret=JBSWY3DP", "", "\u{e9}\n"] {
            let bytes = encode_qr(text);
            assert_eq!(decode_qr(&bytes).as_deref().map(String::as_str), Some(text));
            // Not a program to run, nor the reverse.
            assert_eq!(decode(&bytes), None);
            for n in 0..bytes.len() {
                assert_eq!(decode_qr(&bytes[..n]), None, "{text:?} cut at {n}");
            }
            let mut long = bytes.to_vec();
            long.push(0);
            assert_eq!(decode_qr(&long), None, "{text:?} and a byte more");
        }
        let path = PathBuf::from("/bin/true");
        let job = Job {
            program: Program::root(&path),
            args: &[],
            input: b"",
            timeout: Duration::from_secs(1),
        };
        assert_eq!(decode_qr(&encode(&job)), None);
        let mut not_utf8 = QR_MAGIC.to_vec();
        put(&mut not_utf8, b"\xff");
        assert_eq!(decode_qr(&not_utf8), None);
    }

    #[test]
    fn replies_keep_the_reason_when_it_is_known() {
        // (status, reply, the reason and detail the module reads, or Ok)
        type Case<'a> = (i32, &'a [u8], Option<(&'a str, &'a str)>);
        let cases: &[Case] = &[
            (RUN_OK, b"", None),
            (
                RUN_FAILED,
                b"exit\n/usr/sbin/sendmail exited with status 75",
                Some(("exit", "/usr/sbin/sendmail exited with status 75")),
            ),
            (
                RUN_FAILED,
                b"timeout\nno answer in 10s",
                Some(("timeout", "no answer in 10s")),
            ),
            (
                RUN_FAILED,
                b"program\n/x is not executable",
                Some(("program", "/x is not executable")),
            ),
            (
                RUN_FAILED,
                b"shutdown\nwho knows",
                Some(("part", "who knows")),
            ),
            (RUN_FAILED, b"no newline", Some(("part", "no newline"))),
            (
                RUN_FAILED,
                b"io\n\xff bytes",
                Some(("io", "\u{fffd} bytes")),
            ),
        ];
        for (status, reply, want) in cases {
            match (outcome(*status, reply), want) {
                (Ok(()), None) => {}
                (Err(e), Some((reason, detail))) => {
                    assert_eq!(e.reason(), *reason, "{reply:?}");
                    assert_eq!(e.to_string(), *detail, "{reply:?}");
                }
                (got, want) => panic!("{reply:?}: got {got:?}, want {want:?}"),
            }
        }
        for status in [RUN_PANICKED, super::super::RUN_BAD_REQUEST, 42] {
            let e = outcome(status, b"part\nwhatever").unwrap_err();
            assert_eq!(e.reason(), "part");
            assert!(e.to_string().contains(super::super::PART_PATH), "{e}");
        }
    }

    #[test]
    fn failures_become_replies_the_module_reads_back() {
        let errors = [
            DeliveryError::UnsafeProgram("/x is owned by uid 5, not root".into()),
            DeliveryError::Account("no such account".into()),
            DeliveryError::Message("sms.command is not set".into()),
        ];
        for e in errors {
            let back = outcome(RUN_FAILED, failure(&e).as_bytes()).unwrap_err();
            assert_eq!(back.reason(), e.reason());
            assert_eq!(back.to_string(), e.to_string());
        }
    }
}
