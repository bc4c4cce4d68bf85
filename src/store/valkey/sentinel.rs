//! A Sentinel `store.url`: which server is the primary, asked of the
//! sentinels and confirmed by the server itself.
//!
//! Opening a connection (`open`) tries, in order, within one deadline:
//! 1. the primary found last (`known`, a hint: see `store::primary`), given
//!    half of what is left, so that a host that no longer answers leaves
//!    time for the sentinels;
//! 2. the sentinels, in the URL's order, each given an equal share of what
//!    is left (a dead one cannot take the others' time), for
//!    `SENTINEL get-master-addr-by-name SERVICE`; the first that names a
//!    primary is believed;
//! 3. the server named, authenticated and asked `ROLE` in the same round
//!    trip. Only a server that says `master` is used: nothing is written
//!    anywhere else. If it refuses the connection or says it is a replica,
//!    the primary has just moved: the sentinels are asked once more.
//!
//! A primary that answers costs what a plain `redis://` store costs: one
//! round trip to connect and authenticate (ROLE rides along with AUTH).
#![forbid(unsafe_code)]

use super::{Client, CredentialKeys, Reply, StoreError, password};
use crate::config::{Store, StoreUrl};
use std::fmt;
use std::time::Instant;
use zeroize::Zeroizing;

const SENTINEL_KEYS: CredentialKeys = ("store.sentinel_user", "store.sentinel_password_file");

/// A server's address, as a sentinel names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl Addr {
    /// An address from a sentinel's or a file's words: an IP address or a
    /// host name (letters, digits, `.-:`), and a port (1 to 65535).
    pub fn parse(host: &[u8], port: &[u8]) -> Option<Addr> {
        let host = std::str::from_utf8(host).ok()?;
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':');
        if host.is_empty() || host.len() > 253 || !host.chars().all(plain) {
            return None;
        }
        let port = std::str::from_utf8(port).ok()?.parse::<u16>().ok()?;
        (port > 0).then(|| Addr {
            host: host.to_string(),
            port,
        })
    }
}

/// What a server says it is (`ROLE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Primary,
    Replica,
    /// `sentinel`, or a word this version does not know.
    Other(String),
}

/// The role in a `ROLE` reply (`["master", ...]`, `["slave", ...]`,
/// `["sentinel", ...]`).
pub fn role_of(reply: &Reply) -> Result<Role, StoreError> {
    let word = match reply {
        Reply::Array(v) => match v.first() {
            Some(Reply::Bulk(w) | Reply::Simple(w)) => w.as_slice(),
            _ => return Err(StoreError::Protocol("ROLE: no role in the reply".into())),
        },
        Reply::Error(text) => return Err(StoreError::Refused(super::error::server_text(text))),
        _ => return Err(StoreError::Protocol("ROLE: not an array".into())),
    };
    Ok(match word {
        b"master" => Role::Primary,
        b"slave" | b"replica" => Role::Replica,
        other => Role::Other(super::error::server_text(other)),
    })
}

/// The primary in a `SENTINEL get-master-addr-by-name` reply: `[host,
/// port]`, or nil when the sentinel knows no such service.
pub fn addr_of(reply: &Reply) -> Result<Option<Addr>, StoreError> {
    let bad = || StoreError::Protocol("the sentinel's answer is not [host, port]".into());
    match reply {
        Reply::Nil => Ok(None),
        Reply::Array(v) => match v.as_slice() {
            [Reply::Bulk(h), Reply::Bulk(p)] => Addr::parse(h, p).map(Some).ok_or_else(bad),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

/// After this failure of a server thought to be the primary, are the
/// sentinels worth asking (again)? Yes when it has moved or gone: the
/// connection refused or lost, a replica now, writes refused as a replica
/// refuses them. Not for a wrong password, a certificate, a configuration:
/// another address would not change those.
pub fn moved(e: &StoreError) -> bool {
    match e {
        StoreError::Connect(_) | StoreError::NotPrimary(_) => true,
        StoreError::Refused(_) => e.server_code() == Some("READONLY"),
        _ => false,
    }
}

/// Until when the next of `parts` tries may go: an equal share of what is
/// left before `deadline`.
pub fn share(deadline: Instant, parts: usize) -> Instant {
    share_from(Instant::now(), deadline, parts)
}

fn share_from(now: Instant, deadline: Instant, parts: usize) -> Instant {
    let left = deadline.saturating_duration_since(now);
    let parts = u32::try_from(parts.max(1)).unwrap_or(u32::MAX);
    now + left / parts
}

/// The passwords, read once per opening.
struct Secrets {
    store: Option<Zeroizing<Vec<u8>>>,
    sentinel: Option<Zeroizing<Vec<u8>>>,
}

impl Secrets {
    fn read(store: &Store) -> Result<Secrets, StoreError> {
        let read = |key, path: &Option<std::path::PathBuf>| {
            path.as_deref()
                .map(|p| password::read_for(key, p))
                .transpose()
        };
        Ok(Secrets {
            store: read("store.password_file", &store.password_file)?,
            sentinel: read(SENTINEL_KEYS.1, &store.sentinel_password_file)?,
        })
    }
}

/// A connection to the primary, and where it is.
#[derive(Debug)]
pub struct Opened {
    pub client: Client,
    pub primary: Addr,
}

/// Connects to the primary of a Sentinel `store.url`, trying `known` first
/// (see the module's doc).
pub fn open(store: &Store, known: Option<&Addr>, deadline: Instant) -> Result<Opened, StoreError> {
    let StoreUrl::Sentinel {
        sentinels,
        service,
        tls,
    } = &store.url
    else {
        return Err(StoreError::Config("store.url is not a Sentinel URL".into()));
    };
    let secrets = Secrets::read(store)?;
    let primary = |addr: &Addr, until: Instant| {
        connect_primary(
            store,
            addr,
            *tls,
            secrets.store.as_ref().map(|p| p.as_slice()),
            until,
        )
        .map(|client| Opened {
            client,
            primary: addr.clone(),
        })
    };
    // The latest failure of a server thought to be the primary: what the
    // login is told when the sentinels name only servers already tried.
    let mut failure = None;
    if let Some(addr) = known {
        match primary(addr, share(deadline, 2)) {
            Ok(opened) => return Ok(opened),
            // Gone, or too slow for its half: the sentinels know better.
            Err(e) if moved(&e) || matches!(e, StoreError::Timeout { .. }) => failure = Some(e),
            Err(e) => return Err(e),
        }
    }
    let mut tried: Vec<Addr> = known.into_iter().cloned().collect();
    // Twice at most: a failover may end while the sentinels are asked, and
    // the second time they name the new primary.
    for pass in 0..2 {
        match walk(
            store,
            sentinels,
            *tls,
            service,
            &secrets,
            &mut tried,
            &mut failure,
            &primary,
            deadline,
        ) {
            Ok(opened) => return Ok(opened),
            Err(e) if moved(&e) && pass == 0 && Instant::now() < deadline => failure = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(failure.unwrap_or_else(|| StoreError::Sentinel("no primary".into())))
}

/// Asks the sentinels in order, each within its share of what is left, and
/// tries the primary each names (once each address): the first that
/// answers as a primary is the one. A sentinel that names a dead primary
/// (its own view is stale, or it is cut off) does not stop the next from
/// naming the live one (`failure`: the last such server's failure, before
/// this walk). None: a sentinel's refusal of the credentials,
/// the certificate or the configuration (a fault, not an outage, which
/// `on_unavailable = "local"` must not paper over), else the last named
/// primary's failure (a replica: `NotPrimary`), else `Sentinel` with each
/// one's failure in the detail.
#[allow(clippy::too_many_arguments)]
fn walk(
    store: &Store,
    sentinels: &[(String, u16)],
    tls: bool,
    service: &str,
    secrets: &Secrets,
    tried: &mut Vec<Addr>,
    failure: &mut Option<StoreError>,
    primary: &dyn Fn(&Addr, Instant) -> Result<Opened, StoreError>,
    deadline: Instant,
) -> Result<Opened, StoreError> {
    let mut notes = Vec::new();
    let mut fault = None;
    let mut failed_primary = None;
    let mut named_tried = false;
    for (i, (host, port)) in sentinels.iter().enumerate() {
        let at = Addr {
            host: host.clone(),
            port: *port,
        };
        let left = sentinels.len() - i;
        match ask(
            store,
            &at,
            tls,
            service,
            secrets.sentinel.as_ref().map(|p| p.as_slice()),
            share(deadline, left),
        ) {
            Ok(Some(named)) if tried.contains(&named) => {
                notes.push(format!("{at}: names {named}, tried"));
                named_tried = true;
            }
            Ok(Some(named)) => {
                tried.push(named.clone());
                match primary(&named, share(deadline, left)) {
                    Ok(opened) => return Ok(opened),
                    Err(e) if moved(&e) || matches!(e, StoreError::Timeout { .. }) => {
                        notes.push(format!("{at}: names {named}: {}", e.reason()));
                        failed_primary = Some(e);
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(None) => notes.push(format!("{at}: no primary of {service:?}")),
            Err(e) => {
                // One word each: a record's detail is bounded.
                notes.push(format!("{at}: {}", e.reason()));
                let on = |why: &str| format!("sentinel {at}: {why}");
                fault = fault.or(match &e {
                    StoreError::Auth(why) => Some(StoreError::Auth(on(why))),
                    StoreError::Tls(why) => Some(StoreError::Tls(on(why))),
                    StoreError::Config(why) => Some(StoreError::Config(on(why))),
                    _ => None,
                });
            }
        }
    }
    // A sentinel that named only a server that failed already: that
    // server's failure (a replica is `not_primary`), not "no sentinel".
    let earlier = if named_tried { failure.take() } else { None };
    Err(fault
        .or(failed_primary)
        .or(earlier)
        .unwrap_or_else(|| StoreError::Sentinel(notes.join("; "))))
}

/// Connects to `addr`, authenticates, and (in the same round trip) asks
/// `ROLE`: a client only if it says it is the primary.
fn connect_primary(
    store: &Store,
    addr: &Addr,
    tls: bool,
    password: Option<&[u8]>,
    deadline: Instant,
) -> Result<Client, StoreError> {
    let role = one_command(
        store,
        addr,
        tls,
        (super::STORE_KEYS, &store.user, password),
        &[b"ROLE"],
        deadline,
    );
    let (client, role) = role?;
    let role = role.ok_or_else(|| StoreError::Protocol("no reply to ROLE".into()))?;
    match role_of(&role) {
        Ok(Role::Primary) => Ok(client),
        Ok(Role::Replica) => Err(StoreError::NotPrimary(format!("{addr} is a replica"))),
        Ok(Role::Other(what)) => Err(StoreError::NotPrimary(format!("{addr} is a {what}"))),
        Err(StoreError::Refused(why)) => Err(StoreError::Refused(format!(
            "{why} (ROLE, at {addr}: the store's ACL user needs +role with a Sentinel store.url)"
        ))),
        Err(e) => Err(e),
    }
}

/// One sentinel's answer: the primary of `service`, or none known.
pub fn ask(
    store: &Store,
    sentinel: &Addr,
    tls: bool,
    service: &str,
    password: Option<&[u8]>,
    deadline: Instant,
) -> Result<Option<Addr>, StoreError> {
    let ask: &[&[u8]] = &[b"SENTINEL", b"get-master-addr-by-name", service.as_bytes()];
    let (_, reply) = one_command(
        store,
        sentinel,
        tls,
        (SENTINEL_KEYS, &store.sentinel_user, password),
        ask,
        deadline,
    )?;
    match reply {
        Some(Reply::Error(text)) => Err(StoreError::Refused(super::error::server_text(&text))),
        Some(reply) => addr_of(&reply),
        None => Err(StoreError::Protocol("no reply from the sentinel".into())),
    }
}

/// Connects to `addr`, authenticates as `who` (the keys that name the
/// credentials, the user, the password) and sends `command` in the same
/// round trip: the client and the command's reply.
fn one_command(
    store: &Store,
    addr: &Addr,
    tls: bool,
    who: (CredentialKeys, &str, Option<&[u8]>),
    command: &[&[u8]],
    deadline: Instant,
) -> Result<(Client, Option<Reply>), StoreError> {
    let (keys, user, password) = who;
    let ca_file = store.ca_file.as_deref();
    let mut client = Client::reach(&addr.host, addr.port, tls, ca_file, deadline)?;
    let reply = client.authenticate(keys, user, password, Some(command), deadline)?;
    Ok((client, reply))
}

/// `ask` with the sentinel password read from the configuration: for
/// `twostep check`, which asks every sentinel.
pub fn ask_one(
    store: &Store,
    sentinel: &Addr,
    deadline: Instant,
) -> Result<Option<Addr>, StoreError> {
    let StoreUrl::Sentinel { service, tls, .. } = &store.url else {
        return Err(StoreError::Config("store.url is not a Sentinel URL".into()));
    };
    let secrets = Secrets::read(store)?;
    ask(
        store,
        sentinel,
        *tls,
        service,
        secrets.sentinel.as_ref().map(|p| p.as_slice()),
        deadline,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn bulk(s: &str) -> Reply {
        Reply::Bulk(s.as_bytes().to_vec())
    }

    #[test]
    fn roles() {
        let cases = [
            (
                Reply::Array(vec![
                    bulk("master"),
                    Reply::Integer(3),
                    Reply::Array(vec![]),
                ]),
                Ok(Role::Primary),
            ),
            (
                Reply::Array(vec![bulk("slave"), bulk("10.0.0.1"), Reply::Integer(6379)]),
                Ok(Role::Replica),
            ),
            (
                Reply::Array(vec![bulk("sentinel"), Reply::Array(vec![])]),
                Ok(Role::Other("sentinel".into())),
            ),
            (
                Reply::Array(vec![bulk("mas\nter")]),
                Ok(Role::Other("mas\\x0ater".into())),
            ),
        ];
        for (reply, want) in cases {
            assert_eq!(role_of(&reply), want, "{reply:?}");
        }
        for (reply, reason) in [
            (Reply::Array(vec![]), "protocol"),
            (bulk("master"), "protocol"),
            (Reply::Integer(1), "protocol"),
            (Reply::Error(b"NOPERM no ROLE".to_vec()), "refused"),
        ] {
            assert_eq!(role_of(&reply).unwrap_err().reason(), reason, "{reply:?}");
        }
    }

    #[test]
    fn a_sentinels_answer() {
        let addr = |h: &str, p| {
            Some(Addr {
                host: h.into(),
                port: p,
            })
        };
        let good = [
            (
                Reply::Array(vec![bulk("10.0.0.7"), bulk("6380")]),
                addr("10.0.0.7", 6380),
            ),
            (
                Reply::Array(vec![bulk("::1"), bulk("7000")]),
                addr("::1", 7000),
            ),
            (
                Reply::Array(vec![bulk("valkey-2.example"), bulk("6379")]),
                addr("valkey-2.example", 6379),
            ),
            (Reply::Nil, None),
        ];
        for (reply, want) in good {
            assert_eq!(addr_of(&reply).unwrap(), want, "{reply:?}");
        }
        let bad = [
            Reply::Array(vec![]),
            Reply::Array(vec![bulk("10.0.0.7")]),
            Reply::Array(vec![bulk("10.0.0.7"), bulk("0")]),
            Reply::Array(vec![bulk("10.0.0.7"), bulk("65536")]),
            Reply::Array(vec![bulk("10.0.0.7"), Reply::Integer(6379)]),
            Reply::Array(vec![bulk("a b"), bulk("1")]),
            Reply::Array(vec![bulk("x/y"), bulk("1")]),
            Reply::Array(vec![bulk(""), bulk("1")]),
            Reply::Array(vec![bulk("h"), bulk("1"), bulk("2")]),
            bulk("10.0.0.7:6379"),
            Reply::Integer(1),
        ];
        for reply in bad {
            assert_eq!(
                addr_of(&reply).unwrap_err().reason(),
                "protocol",
                "{reply:?}"
            );
        }
    }

    #[test]
    fn which_failures_send_the_client_back_to_the_sentinels() {
        let cases = [
            (StoreError::Connect("refused".into()), true),
            (StoreError::NotPrimary("x is a replica".into()), true),
            (
                StoreError::Refused("READONLY You can't write against a read only replica.".into()),
                true,
            ),
            (StoreError::Refused("NOPERM no".into()), false),
            (
                StoreError::Refused("NOREPLICAS Not enough good replicas".into()),
                false,
            ),
            (StoreError::Auth("WRONGPASS".into()), false),
            (StoreError::Tls("bad certificate".into()), false),
            (StoreError::Config("x".into()), false),
            (StoreError::Protocol("x".into()), false),
            (
                StoreError::Timeout {
                    during: "connecting",
                },
                false,
            ),
            (StoreError::Sentinel("x".into()), false),
        ];
        for (e, want) in cases {
            assert_eq!(moved(&e), want, "{e:?}");
        }
    }

    #[test]
    fn shares_of_the_budget() {
        let now = Instant::now();
        let deadline = now + Duration::from_millis(900);
        for (parts, ms) in [(0, 900), (1, 900), (2, 450), (3, 300), (9, 100)] {
            let got = share_from(now, deadline, parts);
            assert_eq!(got, now + Duration::from_millis(ms), "{parts}");
        }
        let past = now - Duration::from_millis(5);
        assert_eq!(share_from(now, past, 3), now, "nothing left: nothing given");
    }

    #[test]
    fn addresses_print_as_urls_write_them() {
        let a = |h: &str| {
            Addr {
                host: h.into(),
                port: 1,
            }
            .to_string()
        };
        assert_eq!(a("10.0.0.1"), "10.0.0.1:1");
        assert_eq!(a("2001:db8::1"), "[2001:db8::1]:1");
    }
}
