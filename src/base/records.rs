//! Syslog records: one line of `key=value` pairs per event, facility authpriv.
//!
//! The wire format is the one glibc's syslog(3) writes to /dev/log
//! (`<PRI>Mmm dd hh:mm:ss TAG[PID]: MESSAGE`), sent as glibc sends it: one
//! datagram, or, to a stream socket (syslog-ng's `unix-stream()`), over a
//! connection, ended by a NUL byte. It is written here rather than through a
//! logging crate so that the module links nothing more into sshd than this.
//!
//! Values are never codes, secrets or recovery codes: callers pass only the
//! fields of the contract, and the record type has no way to carry an answer.
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;
use std::time::{Instant, SystemTime};

const LOG_AUTHPRIV: u8 = 10 << 3;
/// How long a record may wait for the syslog socket: for room in its queue,
/// or, on a stream socket, for room in its listen backlog and its buffer.
pub const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Warning = 4,
    Notice = 5,
    Info = 6,
    Debug = 7,
}

/// One event, with its fields in the order they were added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub severity: Severity,
    fields: Vec<(&'static str, String)>,
}

impl Record {
    pub fn new(event: &str, severity: Severity) -> Record {
        Record {
            severity,
            fields: vec![("event", event.to_string())],
        }
    }

    pub fn with(mut self, key: &'static str, value: impl ToString) -> Record {
        self.fields.push((key, value.to_string()));
        self
    }

    pub fn event(&self) -> &str {
        &self.fields[0].1
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// `event=auth_ok user=alice service=sshd rhost=192.0.2.1 ...`
    pub fn line(&self) -> String {
        let mut out = String::new();
        for (i, (key, value)) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(key);
            out.push('=');
            push_value(&mut out, value);
        }
        out
    }
}

/// Values are bare when they are plain; otherwise double-quoted with `"` and
/// `\` escaped. Control characters and non-ASCII bytes are written as `\xNN`
/// so that a hostile user name can neither break the line nor forge a field.
fn push_value(out: &mut String, value: &str) {
    // Bound what an attacker-chosen value can add to a log line.
    const MAX: usize = 256;
    let plain = !value.is_empty()
        && value.len() <= MAX
        && value
            .bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'"' | b'\\' | b'='));
    if plain {
        out.push_str(value);
        return;
    }
    out.push('"');
    for (i, b) in value.bytes().enumerate() {
        if i == MAX {
            out.push_str("...");
            break;
        }
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b' ' => out.push(' '),
            _ if b.is_ascii_graphic() => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out.push('"');
}

/// Where records go. The module uses [`Syslog`]; tests may collect them.
pub trait Sink {
    fn emit(&mut self, record: Record);
}

/// Sends each record to a syslog socket, datagram or stream.
pub struct Syslog<'a> {
    pub socket: &'a Path,
    pub tag: &'static str,
}

impl Sink for Syslog<'_> {
    fn emit(&mut self, record: Record) {
        let message = format_syslog(self.tag, &record, SystemTime::now(), std::process::id());
        // Nothing sensible can be done if syslog is down: the decision has been
        // made either way, and the module must not fail a login over a log line.
        // A stalled syslog daemon must not hang logins either: whatever the
        // socket, the record gets SEND_TIMEOUT, then it is dropped.
        let _ = send(
            self.socket,
            message.as_bytes(),
            Instant::now() + SEND_TIMEOUT,
        );
    }
}

/// Sends one message as glibc's syslog(3) does: as a datagram, and, if the
/// socket is a stream one (the datagram gets EPROTOTYPE), over a stream
/// connection.
fn send(socket: &Path, message: &[u8], deadline: Instant) -> io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    sock.set_write_timeout(Some(SEND_TIMEOUT))?;
    match sock.send_to(message, socket) {
        Err(e) if e.raw_os_error() == Some(libc::EPROTOTYPE) => {
            send_stream(socket, message, deadline)
        }
        other => other.map(drop),
    }
}

/// One connection per message, which glibc ends with a NUL byte (its
/// string's terminator), the delimiter syslog daemons split a stream on.
/// SO_SNDTIMEO, set before `connect`, bounds the wait for room in a full
/// listen backlog as well as each send (Linux, AF_UNIX); std's connect
/// takes no timeout. MSG_NOSIGNAL: a daemon that closed the connection
/// must not raise SIGPIPE in sshd.
fn send_stream(socket: &Path, message: &[u8], deadline: Instant) -> io::Result<()> {
    use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr};
    let addr = UnixAddr::new(socket)?;
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let stream = UnixStream::from(fd);
    let time_left = || {
        let left = deadline.saturating_duration_since(Instant::now());
        // Zero would mean no timeout at all.
        (!left.is_zero())
            .then_some(left)
            .ok_or_else(|| io::Error::from(io::ErrorKind::TimedOut))
    };
    stream.set_write_timeout(Some(time_left()?))?;
    socket::connect(stream.as_raw_fd(), &addr)?;
    let mut framed = Vec::with_capacity(message.len() + 1);
    framed.extend_from_slice(message);
    framed.push(0);
    let mut sent = 0;
    while sent < framed.len() {
        stream.set_write_timeout(Some(time_left()?))?;
        match socket::send(stream.as_raw_fd(), &framed[sent..], MsgFlags::MSG_NOSIGNAL) {
            Ok(n) => sent += n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Collects records in memory.
#[derive(Default, Debug)]
pub struct Collect(pub Vec<Record>);

impl Sink for Collect {
    fn emit(&mut self, record: Record) {
        self.0.push(record);
    }
}

/// The datagram: `<PRI>Mmm dd hh:mm:ss TAG[PID]: LINE` (the timestamp in UTC;
/// syslog daemons stamp local messages with their own clock anyway).
pub fn format_syslog(tag: &str, record: &Record, now: SystemTime, pid: u32) -> String {
    let pri = LOG_AUTHPRIV | record.severity as u8;
    let stamp = humantime::format_rfc3339_seconds(now).to_string(); // 2026-11-23T06:31:00Z
    let month = stamp
        .get(5..7)
        .and_then(|m| m.parse::<usize>().ok())
        .and_then(month_name)
        .unwrap_or("Jan");
    let day = stamp.get(8..10).unwrap_or("01").trim_start_matches('0');
    let time = stamp.get(11..19).unwrap_or("00:00:00");
    format!(
        "<{pri}>{month} {day:>2} {time} {tag}[{pid}]: {}",
        record.line()
    )
}

/// `Jan` for 1 ... `Dec` for 12. Cut from one string: an array of `&str`
/// is a table of pointers that ld.so relocates at every load of the module.
pub(crate) fn month_name(month: usize) -> Option<&'static str> {
    const MONTHS: &str = "JanFebMarAprMayJunJulAugSepOctNovDec";
    let end = month.checked_mul(3)?;
    MONTHS.get(end.checked_sub(3)?..end)
}

/// RFC 3339 in UTC, the contract's format for `until`.
pub fn rfc3339(unix_secs: u64) -> String {
    humantime::format_rfc3339_seconds(
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(unix_secs),
    )
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_names_from_1_to_12_and_nothing_else() {
        let want = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        for (i, name) in want.iter().enumerate() {
            assert_eq!(month_name(i + 1), Some(*name));
        }
        for bad in [0, 13, 14, usize::MAX / 3, usize::MAX] {
            assert_eq!(month_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn line_quotes_only_what_needs_it() {
        let cases: &[(&str, &str)] = &[
            ("alice", "v=alice"),
            ("192.0.2.1", "v=192.0.2.1"),
            ("", "v=\"\""),
            ("two words", "v=\"two words\""),
            ("a\"b", "v=\"a\\\"b\""),
            ("a\\b", "v=\"a\\\\b\""),
            ("x event=auth_ok", "v=\"x event=auth_ok\""),
            ("a=b", "v=\"a=b\""),
            ("evil\nevent=auth_ok", "v=\"evil\\x0aevent=auth_ok\""),
            ("nul\0", "v=\"nul\\x00\""),
            ("tab\t", "v=\"tab\\x09\""),
            ("jos\u{e9}", "v=\"jos\\xc3\\xa9\""),
        ];
        for (value, want) in cases {
            let line = Record::new("e", Severity::Info).with("v", value).line();
            assert_eq!(line, format!("event=e {want}"), "{value:?}");
        }
    }

    #[test]
    fn long_values_are_cut() {
        let line = Record::new("e", Severity::Info)
            .with("v", "a".repeat(5000))
            .line();
        assert!(line.len() < 300, "{}", line.len());
        assert!(line.ends_with("...\""));
    }

    #[test]
    fn syslog_datagram_format() {
        let rec = Record::new("auth_ok", Severity::Info)
            .with("user", "alice")
            .with("method", "totp");
        let t = humantime::parse_rfc3339("2026-03-05T07:08:09Z").unwrap();
        assert_eq!(
            format_syslog("pam_twostep", &rec, t, 42),
            "<86>Mar  5 07:08:09 pam_twostep[42]: event=auth_ok user=alice method=totp"
        );
        let t = humantime::parse_rfc3339("2026-12-25T23:59:59Z").unwrap();
        let warn = Record::new("locked", Severity::Warning);
        assert_eq!(
            format_syslog("twostep", &warn, t, 1),
            "<84>Dec 25 23:59:59 twostep[1]: event=locked"
        );
    }

    #[test]
    fn a_stalled_syslog_does_not_hang_the_caller() {
        let dir = std::env::temp_dir().join(format!("twostep-audit-stall-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log.sock");
        let _ = std::fs::remove_file(&path);
        // Bound but never read: its queue fills after a few datagrams.
        let _server = UnixDatagram::bind(&path).unwrap();
        let started = std::time::Instant::now();
        for _ in 0..40 {
            Syslog {
                socket: &path,
                tag: "pam_twostep",
            }
            .emit(Record::new("skipped", Severity::Info));
            if started.elapsed() > SEND_TIMEOUT * 3 {
                break;
            }
        }
        assert!(
            started.elapsed() < SEND_TIMEOUT * 4,
            "{:?}",
            started.elapsed()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A fresh directory for a test's socket.
    fn socket_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("twostep-audit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn sends_to_a_stream_socket_nul_terminated_as_glibc_does() {
        use std::io::Read;
        let dir = socket_dir("stream");
        let path = dir.join("log.sock");
        let server = std::os::unix::net::UnixListener::bind(&path).unwrap();
        for user in ["bob", "carol"] {
            Syslog {
                socket: &path,
                tag: "pam_twostep",
            }
            .emit(Record::new("skipped", Severity::Info).with("user", user));
        }
        server.set_nonblocking(true).unwrap();
        let mut got = Vec::new();
        // One connection a record, closed once sent.
        while let Ok((mut conn, _)) = server.accept() {
            conn.set_nonblocking(false).unwrap();
            conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .unwrap();
            let mut bytes = Vec::new();
            conn.read_to_end(&mut bytes).unwrap();
            got.push(String::from_utf8(bytes).unwrap());
        }
        assert_eq!(got.len(), 2, "{got:?}");
        for (text, user) in got.iter().zip(["bob", "carol"]) {
            assert!(text.starts_with("<86>"), "{text:?}");
            let end = format!(
                "pam_twostep[{}]: event=skipped user={user}\0",
                std::process::id()
            );
            assert!(text.ends_with(&end), "{text:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A listener whose backlog is full (a daemon that stopped accepting):
    /// the connect waits at most SEND_TIMEOUT, then the record is dropped.
    #[test]
    fn a_stream_listener_that_never_accepts_does_not_hang_the_caller() {
        use nix::sys::socket::{self, AddressFamily, Backlog, SockFlag, SockType, UnixAddr};
        use std::os::fd::AsRawFd;
        let dir = socket_dir("stream-stall");
        let path = dir.join("log.sock");
        let server = socket::socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .unwrap();
        let addr = UnixAddr::new(&path).unwrap();
        socket::bind(server.as_raw_fd(), &addr).unwrap();
        socket::listen(&server, Backlog::new(0).unwrap()).unwrap();
        // Fill the backlog with connections nobody accepts.
        let mut pending = Vec::new();
        loop {
            let client = socket::socket(
                AddressFamily::Unix,
                SockType::Stream,
                SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
                None,
            )
            .unwrap();
            match socket::connect(client.as_raw_fd(), &addr) {
                Ok(()) => pending.push(client),
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(e) => panic!("{e}"),
            }
            assert!(pending.len() < 1000, "the backlog never filled");
        }
        let started = std::time::Instant::now();
        Syslog {
            socket: &path,
            tag: "pam_twostep",
        }
        .emit(Record::new("skipped", Severity::Info));
        let took = started.elapsed();
        assert!(took < SEND_TIMEOUT * 2, "{took:?}");
        // And a listener with room that never accepts takes the record at once.
        drop(pending);
        let dir2 = socket_dir("stream-idle");
        let idle_path = dir2.join("log.sock");
        let _idle = std::os::unix::net::UnixListener::bind(&idle_path).unwrap();
        let started = std::time::Instant::now();
        Syslog {
            socket: &idle_path,
            tag: "pam_twostep",
        }
        .emit(Record::new("skipped", Severity::Info));
        assert!(
            started.elapsed() < SEND_TIMEOUT / 2,
            "{:?}",
            started.elapsed()
        );
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&dir2).unwrap();
    }

    #[test]
    fn sends_to_a_socket() {
        let dir = std::env::temp_dir().join(format!("twostep-audit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log.sock");
        let _ = std::fs::remove_file(&path);
        let server = UnixDatagram::bind(&path).unwrap();
        Syslog {
            socket: &path,
            tag: "pam_twostep",
        }
        .emit(Record::new("skipped", Severity::Info).with("user", "bob"));
        let mut buf = [0u8; 512];
        let n = server.recv(&mut buf).unwrap();
        let got = std::str::from_utf8(&buf[..n]).unwrap();
        assert!(got.starts_with("<86>"), "{got}");
        assert!(
            got.ends_with(&format!(
                "pam_twostep[{}]: event=skipped user=bob",
                std::process::id()
            )),
            "{got}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
