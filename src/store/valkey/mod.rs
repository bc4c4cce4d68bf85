//! The client of the shared state store: Valkey or Redis over RESP2, on a
//! unix socket, TCP or TLS, with an ACL user and password.
//!
//! Every call takes one deadline, an [`Instant`], that bounds everything
//! it does: connecting, the TLS handshake, `AUTH`, sending, and reading
//! every byte of the reply (see `transport`). Host names are not looked
//! up in DNS (`transport` says why). Replies are bounded (`resp`).
//!
//! Nothing here runs unless `store.url` is set: the module's login path
//! reaches this code only through the store.
//!
//! After any error other than an error reply, the connection's state is
//! unknown (half a reply may be on the way), so the client refuses further
//! calls: connect again.
//!
//! `rediss://` uses the system's libssl, loaded only then (`openssl` says
//! why): that module is the only one here with unsafe code.
#![deny(unsafe_code)]

mod error;
pub mod scripts;
// The calls into libssl, loaded with dlopen for rediss:// only.
#[allow(unsafe_code)]
mod openssl;
pub mod password;
pub mod resp;
pub mod sentinel;
mod transport;

pub use error::StoreError;
pub use resp::Reply;

use crate::config::{Store, StoreUrl};
use sha1::{Digest, Sha1};
use std::path::Path;
use std::time::Instant;
use transport::Socket;
use zeroize::Zeroizing;

/// A connection to the store, authenticated.
#[derive(Debug)]
pub struct Client {
    conn: Conn,
    /// The reply being read; never longer than `resp::MAX_REPLY` plus one read.
    buf: Vec<u8>,
    /// Set by an error that leaves the connection in an unknown state.
    broken: bool,
}

#[derive(Debug)]
enum Conn {
    Plain(Socket),
    Tls(Box<openssl::TlsStream>),
}

impl Conn {
    fn read(
        &mut self,
        buf: &mut [u8],
        deadline: Instant,
        during: &'static str,
    ) -> Result<usize, StoreError> {
        match self {
            Conn::Plain(s) => s.read(buf, deadline, during),
            Conn::Tls(s) => s.read(buf, deadline, during),
        }
    }

    fn write_all(
        &mut self,
        buf: &[u8],
        deadline: Instant,
        during: &'static str,
    ) -> Result<(), StoreError> {
        match self {
            Conn::Plain(s) => s.write_all(buf, deadline, during),
            Conn::Tls(s) => s.write_all(buf, deadline, during),
        }
    }
}

/// A server-side script, with its SHA-1 computed once.
#[derive(Debug, Clone)]
pub struct Script {
    source: &'static str,
    sha1_hex: [u8; 40],
}

impl Script {
    pub fn new(source: &'static str) -> Script {
        let digest = Sha1::digest(source.as_bytes());
        let mut sha1_hex = [0u8; 40];
        for (pair, byte) in sha1_hex.chunks_exact_mut(2).zip(digest.iter()) {
            let hex = b"0123456789abcdef";
            pair[0] = hex[usize::from(byte >> 4)];
            pair[1] = hex[usize::from(byte & 15)];
        }
        Script { source, sha1_hex }
    }

    pub fn source(&self) -> &'static str {
        self.source
    }

    /// What `SCRIPT LOAD` answers and `EVALSHA` takes: 40 lowercase hex digits.
    pub fn sha1_hex(&self) -> &str {
        std::str::from_utf8(&self.sha1_hex).unwrap_or_default()
    }
}

/// The keys that give a user and its password, for messages.
type CredentialKeys = (&'static str, &'static str);
const STORE_KEYS: CredentialKeys = ("store.user", "store.password_file");

/// The largest read: a reply is parsed again after each one.
const READ_CHUNK: usize = 4096;

impl Client {
    /// Connects as `store` says: reads `store.password_file` (which must be
    /// root's and private), connects, authenticates.
    pub fn open(store: &Store, deadline: Instant) -> Result<Client, StoreError> {
        let password = store
            .password_file
            .as_deref()
            .map(password::read)
            .transpose()?;
        Client::connect(
            &store.url,
            &store.user,
            password.as_ref().map(|p| p.as_slice()),
            store.ca_file.as_deref(),
            deadline,
        )
    }

    /// Connects to `url` and, with a password, sends `AUTH user password`
    /// (the user `default` when `user` is empty). `ca_file` is for
    /// `rediss://`: the CA certificates (PEM) that the server's certificate
    /// must chain to, instead of the system's. A Sentinel URL names no
    /// server: `sentinel` finds the primary and connects to it.
    pub fn connect(
        url: &StoreUrl,
        user: &str,
        password: Option<&[u8]>,
        ca_file: Option<&Path>,
        deadline: Instant,
    ) -> Result<Client, StoreError> {
        let mut client = match url {
            StoreUrl::Local => {
                return Err(StoreError::Config(
                    "store.url is empty: no store is configured".into(),
                ));
            }
            StoreUrl::Sentinel { .. } => {
                return Err(StoreError::Config(
                    "a Sentinel store.url names no server: the sentinels are asked for it".into(),
                ));
            }
            StoreUrl::Unix(path) => Client::new(Conn::Plain(Socket::unix(path, deadline)?)),
            StoreUrl::Tcp { host, port, tls } => {
                Client::reach(host, *port, *tls, ca_file, deadline)?
            }
        };
        client.authenticate(STORE_KEYS, user, password, None, deadline)?;
        Ok(client)
    }

    fn new(conn: Conn) -> Client {
        Client {
            conn,
            buf: Vec::new(),
            broken: false,
        }
    }

    /// A connection to `host:port` (with TLS, the handshake done), not
    /// authenticated yet.
    fn reach(
        host: &str,
        port: u16,
        tls: bool,
        ca_file: Option<&Path>,
        deadline: Instant,
    ) -> Result<Client, StoreError> {
        let socket = Socket::tcp(host, port, Path::new(transport::HOSTS), deadline)?;
        Ok(Client::new(if tls {
            let stream = openssl::TlsStream::handshake(socket, host, ca_file, deadline)?;
            Conn::Tls(Box::new(stream))
        } else {
            Conn::Plain(socket)
        }))
    }

    /// With a password, `AUTH user password`; and `then`, if any, sent in
    /// the same round trip (after AUTH), its reply returned as it came (an
    /// error reply included).
    fn authenticate(
        &mut self,
        keys: CredentialKeys,
        user: &str,
        password: Option<&[u8]>,
        then: Option<&[&[u8]]>,
        deadline: Instant,
    ) -> Result<Option<Reply>, StoreError> {
        let auth: Vec<&[u8]> = match (password, user.is_empty()) {
            (Some(password), _) => {
                let user = if user.is_empty() { "default" } else { user };
                vec![b"AUTH", user.as_bytes(), password]
            }
            (None, true) => Vec::new(),
            (None, false) => {
                return Err(StoreError::Config(format!(
                    "{} is set but {} is not",
                    keys.0, keys.1
                )));
            }
        };
        let commands: Vec<&[&[u8]]> = [auth.as_slice()]
            .into_iter()
            .filter(|c| !c.is_empty())
            .chain(then)
            .collect();
        if commands.is_empty() {
            return Ok(None);
        }
        let mut replies = self.exchange_all(&commands, deadline)?.into_iter();
        if !auth.is_empty()
            && let Some(Reply::Error(text)) = replies.next()
        {
            return Err(StoreError::Auth(error::server_text(&text)));
        }
        Ok(replies.next())
    }

    /// Sends one command and reads its reply. An error reply is
    /// [`StoreError::Refused`] (its text escaped and bounded).
    pub fn call(&mut self, args: &[&[u8]], deadline: Instant) -> Result<Reply, StoreError> {
        match self.exchange_all(&[args], deadline)?.pop() {
            None => Err(StoreError::Protocol("no reply".into())),
            Some(Reply::Error(text)) => Err(StoreError::Refused(error::server_text(&text))),
            Some(reply) => Ok(reply),
        }
    }

    /// Sends `commands` at once, and reads their replies, in order.
    fn exchange_all(
        &mut self,
        commands: &[&[&[u8]]],
        deadline: Instant,
    ) -> Result<Vec<Reply>, StoreError> {
        let result = self.exchange(commands, deadline);
        if result.is_err() {
            self.broken = true;
        }
        result
    }

    /// Runs `script` by its SHA-1 (`EVALSHA`); when the server does not have
    /// it (`NOSCRIPT`: restarted, flushed, failed over), sends the source
    /// with `EVAL`, which also caches it for the next call. The ACL needs
    /// `+evalsha +eval`.
    pub fn eval_script(
        &mut self,
        script: &Script,
        keys: &[&[u8]],
        args: &[&[u8]],
        deadline: Instant,
    ) -> Result<Reply, StoreError> {
        let numkeys = keys.len().to_string();
        let mut argv: Vec<&[u8]> = Vec::with_capacity(3 + keys.len() + args.len());
        argv.extend([
            &b"EVALSHA"[..],
            script.sha1_hex().as_bytes(),
            numkeys.as_bytes(),
        ]);
        argv.extend_from_slice(keys);
        argv.extend_from_slice(args);
        match self.call(&argv, deadline) {
            Err(e) if e.server_code() == Some("NOSCRIPT") => {
                argv[0] = b"EVAL";
                argv[1] = script.source.as_bytes();
                self.call(&argv, deadline)
            }
            other => other,
        }
    }

    fn exchange(
        &mut self,
        commands: &[&[&[u8]]],
        deadline: Instant,
    ) -> Result<Vec<Reply>, StoreError> {
        if self.broken {
            return Err(StoreError::Connect(
                "the connection was given up after an earlier error".into(),
            ));
        }
        // The commands may hold the password: wiped once sent.
        let mut out = Zeroizing::new(Vec::new());
        for args in commands {
            resp::encode(args, &mut out);
        }
        self.conn.write_all(&out, deadline, "sending a command")?;
        self.buf.clear();
        let mut replies = Vec::with_capacity(commands.len());
        let mut used = 0;
        let mut chunk = [0u8; READ_CHUNK];
        loop {
            while replies.len() < commands.len() {
                match resp::parse(self.buf.get(used..).unwrap_or_default()) {
                    Ok(Some((reply, n))) => {
                        replies.push(reply);
                        used += n;
                    }
                    Ok(None) => break,
                    Err(e) => return Err(StoreError::Protocol(e.to_string())),
                }
            }
            if replies.len() == commands.len() {
                if used != self.buf.len() {
                    return Err(StoreError::Protocol(
                        "more bytes than the replies asked for".into(),
                    ));
                }
                return Ok(replies);
            }
            let n = self
                .conn
                .read(&mut chunk, deadline, "waiting for a reply")?;
            let Some(got) = chunk.get(..n).filter(|g| !g.is_empty()) else {
                return Err(if self.buf.is_empty() {
                    StoreError::Connect("the server closed the connection".into())
                } else {
                    StoreError::Protocol("the connection closed in the middle of a reply".into())
                });
            };
            self.buf.extend_from_slice(got);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scripts_sha1_is_what_the_server_computes() {
        // redis-cli SCRIPT LOAD "return 1"
        assert_eq!(
            Script::new("return 1").sha1_hex(),
            "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
        );
    }
}
