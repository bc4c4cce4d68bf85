//! The store client (src/store/valkey/) against real, private redis-server
//! instances (never the system's) and against fake servers that misbehave
//! on purpose. Needs root (the password file must be root's) and
//! redis-server and openssl(1) (packages.sh test).
//!
//! Each test starts its own server in its own directory: on a unix socket,
//! on a free loopback port with ACL users, or with TLS and a CA made here.

#[path = "common/redis.rs"]
mod test_redis;
use pam_twostep::config::{Store, StoreUrl};
use pam_twostep::store::valkey::{Client, Reply, Script, StoreError};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use test_redis::{Redis, acl_user, free_port};

const PASSWORD: &str = "correct horse battery staple";
const TIMEOUT: Duration = Duration::from_millis(500);
/// How far past its deadline a call may return: scheduling, not waiting.
const MARGIN: Duration = Duration::from_millis(100);

fn deadline() -> Instant {
    Instant::now() + TIMEOUT
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("valkey-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

/// A private redis-server with the ACL users `twostep` (what a host
/// needs) and `noevalsha` (EVAL only); `default` stays open for the tests'
/// own housekeeping.
fn start(name: &str) -> Redis {
    start_with(name, &[])
}

fn start_with(name: &str, extra: &[&str]) -> Redis {
    Redis::start_with_users(
        name,
        &[
            acl_user(
                "twostep",
                PASSWORD,
                &["+eval", "+evalsha", "+ping", "+get", "+set"],
            ),
            acl_user("noevalsha", PASSWORD, &["+eval"]),
        ],
        extra,
    )
}

/// What these tests ask of the shared test server.
trait Endpoints {
    fn unix(&self) -> StoreUrl;
    fn tcp(&self) -> StoreUrl;
    /// The `default` user on the unix socket, for housekeeping.
    fn admin(&self) -> Client;
}

impl Endpoints for Redis {
    fn unix(&self) -> StoreUrl {
        StoreUrl::Unix(self.socket.clone())
    }

    fn tcp(&self) -> StoreUrl {
        StoreUrl::Tcp {
            host: "127.0.0.1".into(),
            port: self.port,
            tls: false,
        }
    }

    fn admin(&self) -> Client {
        Client::connect(&self.unix(), "", None, None, deadline()).unwrap()
    }
}

fn store(url: StoreUrl, user: &str, password_file: Option<PathBuf>) -> Store {
    Store {
        url,
        user: user.into(),
        password_file,
        timeout: TIMEOUT,
        ..Store::default()
    }
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(s.as_bytes().to_vec())
}

/// Takes `f`'s time, asserts it kept to the deadline, returns its error.
fn within_deadline<T: std::fmt::Debug>(
    f: impl FnOnce(Instant) -> Result<T, StoreError>,
) -> (StoreError, Duration) {
    let start = Instant::now();
    let result = f(start + TIMEOUT);
    let took = start.elapsed();
    assert!(
        took < TIMEOUT + MARGIN,
        "took {took:?}, deadline {TIMEOUT:?}"
    );
    (result.expect_err("an error"), took)
}

const ECHO: &str =
    "redis.call('SET', KEYS[1], ARGV[1]); return {redis.call('GET', KEYS[1]), 7, false}";

#[test]
fn round_trips_on_a_unix_socket_and_tcp() {
    let redis = start("round-trip");
    for url in [redis.unix(), redis.tcp()] {
        let mut c = Client::connect(&url, "", None, None, deadline()).unwrap();
        assert_eq!(
            c.call(&[b"PING"], deadline()),
            Ok(Reply::Simple(b"PONG".to_vec()))
        );
        assert_eq!(
            c.call(&[b"SET", b"twostep:k", b"v\r\n\0"], deadline()),
            Ok(Reply::Simple(b"OK".to_vec()))
        );
        assert_eq!(
            c.call(&[b"GET", b"twostep:k"], deadline()),
            Ok(Reply::Bulk(b"v\r\n\0".to_vec()))
        );
        assert_eq!(
            c.call(&[b"GET", b"twostep:none"], deadline()),
            Ok(Reply::Nil)
        );
        assert_eq!(
            c.call(&[b"INCR", b"twostep:n"], deadline())
                .map(|r| matches!(r, Reply::Integer(_))),
            Ok(true)
        );
        let echo = Script::new(ECHO);
        assert_eq!(
            c.eval_script(&echo, &[b"twostep:e"], &[b"hello"], deadline()),
            Ok(Reply::Array(vec![
                bulk("hello"),
                Reply::Integer(7),
                Reply::Nil
            ]))
        );
        // An error reply is `refused`, and the connection stays usable.
        let err = c.call(&[b"NOSUCHCOMMAND"], deadline()).unwrap_err();
        assert_eq!(err.reason(), "refused", "{err}");
        assert_eq!(
            c.call(&[b"PING"], deadline()),
            Ok(Reply::Simple(b"PONG".to_vec()))
        );
    }
}

#[test]
fn acl_user_and_password_file() {
    let redis = start("acl");
    let good = redis.password_file(&format!("{PASSWORD}\n"), 0o600);
    for url in [redis.unix(), redis.tcp()] {
        let mut c = Client::open(
            &store(url.clone(), "twostep", Some(good.clone())),
            deadline(),
        )
        .unwrap();
        let echo = Script::new(ECHO);
        let got = c.eval_script(&echo, &[b"twostep:acl"], &[b"x"], deadline());
        assert_eq!(
            got,
            Ok(Reply::Array(vec![bulk("x"), Reply::Integer(7), Reply::Nil]))
        );
        // Keys outside the user's pattern are refused by the ACL.
        let err = c
            .eval_script(&echo, &[b"other:acl"], &[b"x"], deadline())
            .unwrap_err();
        assert_eq!(err.reason(), "refused", "{err}");
    }
    // A wrong password.
    let wrong = redis.password_file("not the password", 0o400);
    let err = Client::open(&store(redis.tcp(), "twostep", Some(wrong)), deadline()).unwrap_err();
    assert_eq!(err.reason(), "auth", "{err}");
    assert!(err.to_string().contains("WRONGPASS"), "{err}");
    // A password file that others can read is refused before any connection.
    let open = redis.password_file(PASSWORD, 0o644);
    let err = Client::open(&store(redis.tcp(), "twostep", Some(open)), deadline()).unwrap_err();
    assert_eq!(err.reason(), "config", "{err}");
    assert!(err.to_string().contains("group or others"), "{err}");
    // A user without a password file is a configuration error.
    let err = Client::open(&store(redis.tcp(), "twostep", None), deadline()).unwrap_err();
    assert_eq!(err.reason(), "config", "{err}");
}

#[test]
fn an_acl_without_evalsha_is_refused() {
    let redis = start("noevalsha");
    let pw = redis.password_file(PASSWORD, 0o600);
    let mut c = Client::open(&store(redis.unix(), "noevalsha", Some(pw)), deadline()).unwrap();
    let err = c
        .eval_script(&Script::new("return 1"), &[b"twostep:x"], &[], deadline())
        .unwrap_err();
    assert_eq!(err.reason(), "refused", "{err}");
    assert_eq!(err.server_code(), Some("NOPERM"), "{err}");
}

#[test]
fn evalsha_falls_back_to_eval_on_noscript() {
    let redis = start("noscript");
    let mut admin = redis.admin();
    let script = Script::new("return ARGV[1] .. '!'");
    let sha = script.sha1_hex().as_bytes().to_vec();
    let exists = |admin: &mut Client| {
        admin
            .call(&[b"SCRIPT", b"EXISTS", &sha], deadline())
            .unwrap()
    };
    let mut c = Client::connect(&redis.tcp(), "", None, None, deadline()).unwrap();
    for round in 0..3 {
        admin.call(&[b"SCRIPT", b"FLUSH"], deadline()).unwrap();
        assert_eq!(
            exists(&mut admin),
            Reply::Array(vec![Reply::Integer(0)]),
            "round {round}"
        );
        // Not cached: EVALSHA fails with NOSCRIPT, EVAL runs and caches it.
        assert_eq!(
            c.eval_script(&script, &[], &[b"a"], deadline()),
            Ok(bulk("a!"))
        );
        assert_eq!(
            exists(&mut admin),
            Reply::Array(vec![Reply::Integer(1)]),
            "round {round}"
        );
        // Cached: EVALSHA alone.
        assert_eq!(
            c.eval_script(&script, &[], &[b"b"], deadline()),
            Ok(bulk("b!"))
        );
    }
}

/// A CA and a server certificate for localhost and 127.0.0.1, and another
/// CA that signed nothing, made with openssl(1).
#[test]
fn tls_with_the_test_ca() {
    let certs = scratch("certs");
    test_redis::make_certs(&certs);
    let tls_port = free_port();
    let file = |f: &str| certs.join(f).to_str().unwrap().to_string();
    let redis = start_with(
        "tls",
        &[
            "--tls-port",
            &tls_port.to_string(),
            "--bind",
            "127.0.0.1 127.0.0.2",
            "--tls-cert-file",
            &file("server.crt"),
            "--tls-key-file",
            &file("server.key"),
            "--tls-ca-cert-file",
            &file("ca.crt"),
            "--tls-auth-clients",
            "no",
        ],
    );
    let plain_port = redis.port;
    let rediss = |host: &str, port: u16| StoreUrl::Tcp {
        host: host.into(),
        port,
        tls: true,
    };
    let ca = certs.join("ca.crt");
    let pw = redis.password_file(PASSWORD, 0o600);
    // By address and by name (localhost is in /etc/hosts), with AUTH and a script.
    for host in ["127.0.0.1", "localhost"] {
        let start = Instant::now();
        let mut c = Client::connect(
            &rediss(host, tls_port),
            "twostep",
            Some(PASSWORD.as_bytes()),
            Some(&ca),
            deadline(),
        )
        .unwrap_or_else(|e| panic!("{host}: {e}"));
        eprintln!("TLS connect + AUTH to {host}: {:?}", start.elapsed());
        let echo = Script::new(ECHO);
        let got = c.eval_script(&echo, &[b"twostep:tls"], &[b"over tls"], deadline());
        assert_eq!(
            got,
            Ok(Reply::Array(vec![
                bulk("over tls"),
                Reply::Integer(7),
                Reply::Nil
            ]))
        );
    }
    let mut s = store(rediss("localhost", tls_port), "twostep", Some(pw));
    s.ca_file = Some(ca.clone());
    assert!(Client::open(&s, deadline()).is_ok());
    // A CA that did not sign the server's certificate.
    let err = Client::connect(
        &rediss("127.0.0.1", tls_port),
        "",
        None,
        Some(&certs.join("other-ca.crt")),
        deadline(),
    )
    .unwrap_err();
    assert_eq!(err.reason(), "tls", "{err}");
    // The system's CAs did not sign it either.
    let err =
        Client::connect(&rediss("127.0.0.1", tls_port), "", None, None, deadline()).unwrap_err();
    assert_eq!(err.reason(), "tls", "{err}");
    // The right CA, but a certificate for other names than the one dialled.
    let err = Client::connect(
        &rediss("127.0.0.2", tls_port),
        "",
        None,
        Some(&ca),
        deadline(),
    )
    .unwrap_err();
    assert_eq!(err.reason(), "tls", "{err}");
    assert!(err.to_string().contains("mismatch"), "{err}");
    // TLS to a port that speaks plain RESP: the server waits for the end
    // of a line that never comes (or answers an error that is no TLS).
    let (err, _) = within_deadline(|d| {
        Client::connect(&rediss("127.0.0.1", plain_port), "", None, Some(&ca), d)
    });
    assert!(matches!(err.reason(), "timeout" | "tls"), "{err}");
    // A CA file that holds no certificate.
    let err = Client::connect(
        &rediss("127.0.0.1", tls_port),
        "",
        None,
        Some(&certs.join("ext.cnf")),
        deadline(),
    )
    .unwrap_err();
    assert_eq!(err.reason(), "config", "{err}");
    let _ = std::fs::remove_dir_all(&certs);
}

#[test]
fn a_stopped_server_is_a_timeout_at_the_deadline() {
    let redis = start("stopped");
    let pw = redis.password_file(PASSWORD, 0o600);
    let mut before = Client::connect(&redis.tcp(), "", None, None, deadline()).unwrap();
    redis.signal("-STOP");
    for url in [redis.unix(), redis.tcp()] {
        // Connecting works (the kernel queues it); AUTH gets no answer.
        let (err, took) =
            within_deadline(|d| Client::open(&store(url.clone(), "twostep", Some(pw.clone())), d));
        assert_eq!(err.reason(), "timeout", "{err}");
        assert!(took >= TIMEOUT, "{took:?}");
        eprintln!("stopped server, {url:?}: timeout after {took:?} (deadline {TIMEOUT:?})");
    }
    let (err, took) = within_deadline(|d| before.call(&[b"PING"], d));
    assert_eq!(err.reason(), "timeout", "{err}");
    eprintln!("stopped server, open connection: timeout after {took:?}");
    redis.signal("-CONT");
    // The late reply to that PING must never be taken for the next one's.
    let err = before
        .call(&[b"GET", b"twostep:x"], deadline())
        .unwrap_err();
    assert_eq!(err.reason(), "connect", "{err}");
}

#[test]
fn a_killed_server_is_a_connect_error() {
    let mut redis = start("killed");
    let mut open = Client::connect(&redis.unix(), "", None, None, deadline()).unwrap();
    redis.kill();
    for url in [redis.unix(), redis.tcp()] {
        let (err, _) = within_deadline(|d| Client::connect(&url, "", None, None, d));
        assert_eq!(err.reason(), "connect", "{url:?}: {err}");
    }
    let (err, _) = within_deadline(|d| open.call(&[b"PING"], d));
    assert_eq!(err.reason(), "connect", "{err}");
}

#[test]
fn host_names_are_not_looked_up_in_dns() {
    let url = StoreUrl::Tcp {
        host: "valkey.invalid".into(),
        port: 6379,
        tls: false,
    };
    let (err, took) = within_deadline(|d| Client::connect(&url, "", None, None, d));
    assert_eq!(err.reason(), "config", "{err}");
    assert!(took < Duration::from_millis(50), "{took:?}");
}

/// A server that accepts one connection, reads the command, and then does
/// what `behave` says. Its address.
fn fake(behave: impl FnOnce(&mut TcpStream) + Send + 'static) -> StoreUrl {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf);
        behave(&mut s);
        // Holds the connection open a while, as a stuck server would.
        std::thread::sleep(TIMEOUT * 3);
    });
    StoreUrl::Tcp {
        host: "127.0.0.1".into(),
        port,
        tls: false,
    }
}

fn ping_fake(behave: impl FnOnce(&mut TcpStream) + Send + 'static) -> (StoreError, Duration) {
    let url = fake(behave);
    within_deadline(|d| Client::connect(&url, "", None, None, d)?.call(&[b"PING"], d))
}

type Behaviour = Box<dyn FnOnce(&mut TcpStream) + Send>;

#[test]
fn misbehaving_servers_are_bounded_errors() {
    let send = |bytes: &'static [u8]| move |s: &mut TcpStream| drop(s.write_all(bytes));
    let cases: Vec<(&str, &str, Behaviour)> = vec![
        (
            "garbage",
            "protocol",
            Box::new(send(b"HTTP/1.1 400 Bad Request\r\n\r\n")),
        ),
        (
            "a bulk string past the bound",
            "protocol",
            Box::new(send(b"$1000000000\r\n")),
        ),
        (
            "a huge array header",
            "protocol",
            Box::new(send(b"*2147483647\r\n")),
        ),
        (
            "arrays nested too deep",
            "protocol",
            Box::new(send(b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n")),
        ),
        (
            "two replies to one command",
            "protocol",
            Box::new(send(b"+PONG\r\n+PONG\r\n")),
        ),
        ("a bad length", "protocol", Box::new(send(b"$-5\r\n"))),
        (
            "closed mid-reply",
            "protocol",
            Box::new(|s: &mut TcpStream| {
                let _ = s.write_all(b"$10\r\n01234");
                let _ = s.shutdown(std::net::Shutdown::Both);
            }),
        ),
        (
            "closed before a reply",
            "connect",
            Box::new(|s: &mut TcpStream| {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }),
        ),
        (
            "stops mid-reply",
            "timeout",
            Box::new(send(b"$10\r\n01234")),
        ),
        ("never answers", "timeout", Box::new(|_: &mut TcpStream| {})),
        // A simple string that never ends, as fast as the socket takes it:
        // refused at the bound, not read for ever.
        (
            "an endless line",
            "protocol",
            Box::new(|s: &mut TcpStream| {
                let chunk = [b'+'; 1]
                    .iter()
                    .chain([b'a'; 8191].iter())
                    .copied()
                    .collect::<Vec<_>>();
                let _ = s.write_all(&chunk);
                while s.write_all(&[b'a'; 8192]).is_ok() {}
            }),
        ),
        // A valid reply, one byte at a time, each well within the timeout:
        // the deadline is for the whole reply, not for each read.
        (
            "a trickle",
            "timeout",
            Box::new(|s: &mut TcpStream| {
                for b in b"$20\r\n01234567890123456789\r\n" {
                    if s.write_all(&[*b]).is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(60));
                }
            }),
        ),
    ];
    for (what, reason, behave) in cases {
        let (err, took) = ping_fake(behave);
        assert_eq!(err.reason(), reason, "{what}: {err}");
        eprintln!("{what}: {reason} after {took:?}: {err}");
    }
}

#[test]
fn a_server_that_never_accepts_on_a_unix_socket() {
    // A listener that never accepts and has a backlog of one: connects
    // beyond it would block in connect(2) on a blocking socket.
    let dir = scratch("backlog");
    let path = dir.join("stuck.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let url = StoreUrl::Unix(path.clone());
    let mut held = Vec::new();
    let mut last = None;
    for _ in 0..8 {
        match Client::connect(
            &url,
            "",
            None,
            None,
            Instant::now() + Duration::from_millis(100),
        ) {
            Ok(c) => held.push(c),
            Err(e) => {
                last = Some(e);
                break;
            }
        }
    }
    let (err, took) =
        within_deadline(|d| Client::connect(&url, "", None, None, d)?.call(&[b"PING"], d));
    assert_eq!(err.reason(), "timeout", "{err} (earlier: {last:?})");
    assert!(took >= TIMEOUT, "{took:?}");
    drop(listener);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tls_to_misbehaving_servers_is_bounded() {
    let tls = |url: StoreUrl| match url {
        StoreUrl::Tcp { host, port, .. } => StoreUrl::Tcp {
            host,
            port,
            tls: true,
        },
        other => other,
    };
    let cases: Vec<(&str, &str, Behaviour)> = vec![
        (
            "closed during the handshake",
            "connect",
            Box::new(|s: &mut TcpStream| drop(s.shutdown(std::net::Shutdown::Both))),
        ),
        (
            "garbage for a server hello",
            "tls",
            Box::new(|s: &mut TcpStream| drop(s.write_all(b"-ERR unknown command\r\n"))),
        ),
        (
            "no server hello",
            "timeout",
            Box::new(|_: &mut TcpStream| {}),
        ),
    ];
    for (what, reason, behave) in cases {
        let url = tls(fake(behave));
        let (err, took) = within_deadline(|d| Client::connect(&url, "", None, None, d));
        assert_eq!(err.reason(), reason, "{what}: {err}");
        eprintln!("TLS, {what}: {reason} after {took:?}: {err}");
    }
}
