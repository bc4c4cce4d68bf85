//! Sockets to the store, with every step bounded by one deadline.
//!
//! The deadline is an instant, not a timeout per step: per-read timeouts
//! add up (a server that trickles one byte per timeout would hold a login
//! for ever), so every wait is for what is left until the deadline. The
//! sockets are non-blocking and each wait is a `poll(2)` for the remainder.
//!
//! Host names are looked up in `/etc/hosts` only, never in DNS: a resolver
//! call cannot be bounded from here (getaddrinfo takes no timeout, and a
//! thread left waiting on it would outlive the module when libpam unloads
//! it). A name that is not in `/etc/hosts` is a configuration error that
//! says so; IP addresses need no lookup.
#![forbid(unsafe_code)]

use super::error::StoreError;
use crate::base::errno_text;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr};
use std::io::{self, Read};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// Where names are looked up.
pub const HOSTS: &str = "/etc/hosts";
/// Beyond this, /etc/hosts is not read further.
const MAX_HOSTS_FILE: u64 = 1 << 20;

/// A connected socket, non-blocking.
#[derive(Debug)]
pub enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl AsFd for Socket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Socket::Tcp(s) => s.as_fd(),
            Socket::Unix(s) => s.as_fd(),
        }
    }
}

impl Socket {
    /// Connects to `host` (an IP address, or a name in `hosts`) on `port`,
    /// trying each address in turn while the deadline lasts.
    pub fn tcp(
        host: &str,
        port: u16,
        hosts: &Path,
        deadline: Instant,
    ) -> Result<Socket, StoreError> {
        let mut last = None;
        for ip in addresses(host, hosts)? {
            let addr = SocketAddr::new(ip, port);
            let left = remaining(deadline, "connecting")?;
            match TcpStream::connect_timeout(&addr, left) {
                Ok(stream) => {
                    let ready = stream
                        .set_nonblocking(true)
                        .and_then(|()| stream.set_nodelay(true));
                    return match ready {
                        Ok(()) => Ok(Socket::Tcp(stream)),
                        Err(e) => Err(StoreError::Connect(format!("{addr}: {e}"))),
                    };
                }
                Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                    last = Some(StoreError::Timeout {
                        during: "connecting",
                    });
                }
                Err(e) => last = Some(StoreError::Connect(format!("{addr}: {e}"))),
            }
        }
        Err(last.unwrap_or_else(|| StoreError::Config(format!("{host:?} has no address"))))
    }

    /// Connects to the socket at `path`. A listener whose backlog is full
    /// (a stopped server) makes a non-blocking connect fail with EAGAIN
    /// rather than wait, and there is nothing to poll for: it is retried
    /// every millisecond until the deadline.
    pub fn unix(path: &Path, deadline: Instant) -> Result<Socket, StoreError> {
        let failed =
            |e: nix::Error| StoreError::Connect(format!("{}: {}", path.display(), errno_text(e)));
        let addr = UnixAddr::new(path).map_err(failed)?;
        let fd = socket::socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(failed)?;
        loop {
            match socket::connect(fd.as_raw_fd(), &addr) {
                Ok(()) => return Ok(Socket::Unix(UnixStream::from(fd))),
                Err(nix::Error::EINTR) => {}
                Err(nix::Error::EAGAIN) => {
                    let left = remaining(deadline, "connecting")?;
                    std::thread::sleep(left.min(Duration::from_millis(1)));
                }
                Err(e) => return Err(failed(e)),
            }
        }
    }

    /// Reads what has arrived, waiting for something until the deadline.
    /// `Ok(0)`: the server closed the connection.
    pub fn read(
        &mut self,
        buf: &mut [u8],
        deadline: Instant,
        during: &'static str,
    ) -> Result<usize, StoreError> {
        loop {
            let got = match self {
                Socket::Tcp(s) => s.read(buf),
                Socket::Unix(s) => s.read(buf),
            };
            match got {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    wait(self.as_fd(), PollFlags::POLLIN, deadline, during)?
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(StoreError::Connect(e.to_string())),
            }
        }
    }

    /// Sends what of `buf` the socket takes, waiting for room until the
    /// deadline. MSG_NOSIGNAL: a server gone away must be an error here,
    /// not a SIGPIPE that kills sshd.
    pub fn write(
        &mut self,
        buf: &[u8],
        deadline: Instant,
        during: &'static str,
    ) -> Result<usize, StoreError> {
        loop {
            match socket::send(self.as_fd().as_raw_fd(), buf, MsgFlags::MSG_NOSIGNAL) {
                Ok(n) => return Ok(n),
                Err(nix::Error::EAGAIN) => {
                    wait(self.as_fd(), PollFlags::POLLOUT, deadline, during)?
                }
                Err(nix::Error::EINTR) => {}
                Err(e) => return Err(StoreError::Connect(errno_text(e))),
            }
        }
    }

    /// Sends all of `buf` before the deadline.
    pub fn write_all(
        &mut self,
        mut buf: &[u8],
        deadline: Instant,
        during: &'static str,
    ) -> Result<(), StoreError> {
        while !buf.is_empty() {
            let n = self.write(buf, deadline, during)?;
            buf = buf.get(n..).unwrap_or_default();
        }
        Ok(())
    }
}

/// What is left until `deadline`; none left is a timeout.
pub fn remaining(deadline: Instant, during: &'static str) -> Result<Duration, StoreError> {
    match deadline.checked_duration_since(Instant::now()) {
        Some(left) if !left.is_zero() => Ok(left),
        _ => Err(StoreError::Timeout { during }),
    }
}

/// Waits until `fd` is ready for `events` or the deadline passes.
pub fn wait(
    fd: BorrowedFd<'_>,
    events: PollFlags,
    deadline: Instant,
    during: &'static str,
) -> Result<(), StoreError> {
    loop {
        let left = remaining(deadline, during)?;
        // Rounded up: 0.3 ms left must not become a busy loop of 0 ms polls.
        let ms = left.as_micros().div_ceil(1000);
        let timeout = PollTimeout::try_from(u32::try_from(ms).unwrap_or(u32::MAX))
            .unwrap_or(PollTimeout::MAX);
        match poll(&mut [PollFd::new(fd, events)], timeout) {
            Ok(0) => {} // the loop's next `remaining` says it is over
            Ok(_) => return Ok(()),
            Err(nix::Error::EINTR) => {}
            Err(e) => return Err(StoreError::Connect(errno_text(e))),
        }
    }
}

/// `host` as an address, or the addresses `hosts` (an /etc/hosts file) gives
/// it, in the file's order.
pub fn addresses(host: &str, hosts: &Path) -> Result<Vec<IpAddr>, StoreError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let no_dns = || {
        StoreError::Config(format!(
            "{host:?} is not an IP address and not in {}: the store's name is not looked up in DNS, \
             which store.timeout could not bound; give an address or add the name to {}",
            hosts.display(),
            hosts.display()
        ))
    };
    let mut text = String::new();
    std::fs::File::open(hosts)
        .and_then(|f| f.take(MAX_HOSTS_FILE).read_to_string(&mut text))
        .map_err(|_| no_dns())?;
    let found: Vec<IpAddr> = text
        .lines()
        .filter_map(|line| {
            let mut words = line.split('#').next()?.split_ascii_whitespace();
            let ip = words.next()?.parse::<IpAddr>().ok()?;
            words
                .any(|name| name.eq_ignore_ascii_case(host))
                .then_some(ip)
        })
        .collect();
    if found.is_empty() {
        return Err(no_dns());
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn names_come_from_the_hosts_file_only() {
        let dir = std::env::temp_dir().join(format!("twostep-hosts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let hosts = dir.join("hosts");
        let mut f = std::fs::File::create(&hosts).unwrap();
        writeln!(
            f,
            "127.0.0.1 localhost\n# 10.9.9.9 valkey\n10.0.0.5\tValkey.example.com valkey # the store\n\
             2001:db8::5 valkey\nnot-an-ip valkey\n"
        )
        .unwrap();
        let v4: IpAddr = "10.0.0.5".parse().unwrap();
        let v6: IpAddr = "2001:db8::5".parse().unwrap();
        assert_eq!(addresses("valkey", &hosts).unwrap(), [v4, v6]);
        assert_eq!(addresses("VALKEY.example.com", &hosts).unwrap(), [v4]);
        assert_eq!(
            addresses("192.0.2.1", &hosts).unwrap(),
            ["192.0.2.1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            addresses("::1", &hosts).unwrap(),
            ["::1".parse::<IpAddr>().unwrap()]
        );
        let err = addresses("valkey.example.org", &hosts).unwrap_err();
        assert_eq!(err.reason(), "config");
        assert!(err.to_string().contains("not looked up in DNS"), "{err}");
        assert_eq!(
            addresses("x", &dir.join("missing")).unwrap_err().reason(),
            "config"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_passed_deadline_is_a_timeout() {
        let past = Instant::now();
        assert_eq!(
            remaining(past, "connecting"),
            Err(StoreError::Timeout {
                during: "connecting"
            })
        );
    }
}
