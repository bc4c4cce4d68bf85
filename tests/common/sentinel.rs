//! A private Sentinel deployment for the failover tests: one primary, two
//! replicas (`replicaof`) and three `redis-sentinel` processes (quorum 2),
//! all on free loopback ports under one private directory in /tmp, with the
//! ACL users a host needs on every server (any of them may become the
//! primary) and a password-protected user on every sentinel. The timings
//! are short, so that a failover takes a few seconds. Everything is killed
//! and reaped on drop; the system's own servers are never used.
#![allow(dead_code)]

use super::redis::{ADMIN_COMMANDS, HOST_COMMANDS, PASSWORD, acl_user, free_port};
use pam_twostep::store::valkey::resp::{self, Reply};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const SENTINEL_PASSWORD: &str = "fleet sentinel pass-W0rd";
/// The user the replicas replicate as (not `default`, so that the tests
/// can cut replication alone: [`SentinelRig::cut_replication`]).
const REPL_USER: &str = "twostep-repl";
const REPL_PASSWORD: &str = "fleet repl pass-W0rd";
pub const SENTINEL_USER: &str = "twostep-sentinel";
/// What a host's store user needs on a server besides the single-server
/// set: ROLE (is this the primary?) and WAIT (`store.wait_replicas`).
pub const FAILOVER_COMMANDS: &[&str] = &["+role", "+wait"];
/// What a host asks of a sentinel: where the primary is.
pub const SENTINEL_COMMANDS: &[&str] = &["+auth", "+sentinel|get-master-addr-by-name"];

/// How quickly the sentinels act.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// `down-after-milliseconds`: a primary silent this long is down to one
    /// sentinel.
    pub down_after: Duration,
    /// `failover-timeout`: also twice the pause before a failed election is
    /// tried again.
    pub failover_timeout: Duration,
}

impl Timing {
    /// A failover in a few seconds. 1 s of silence is long enough not to be
    /// mistaken for a busy primary on a loaded two-core machine: a primary
    /// answers PING between any two commands.
    pub const FAST: Timing = Timing {
        down_after: Duration::from_millis(1000),
        failover_timeout: Duration::from_millis(3000),
    };
}

/// One process of the deployment.
struct Node {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

impl Node {
    /// Runs the command `command(port, log)` makes on a free port until it
    /// answers PING (on another port if that one was taken meanwhile).
    fn spawn(log: PathBuf, mut command: impl FnMut(u16, &Path) -> Command) -> Node {
        let (port, child) = super::serve_on_free_port(
            |port| {
                let mut c = command(port, &log);
                let program = c.get_program().to_string_lossy().into_owned();
                c.stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .unwrap_or_else(|e| panic!("{program} (packages.sh test installs it): {e}"))
            },
            |port| ask(port, &["PING"]).is_ok(),
            || std::fs::read_to_string(&log).unwrap_or_default(),
            super::stop_child,
        )
        .unwrap_or_else(|said| panic!("{} did not start: {said}", log.display()));
        Node {
            child: Some(child),
            port,
            log,
        }
    }

    fn alive(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL, and reaped: gone when this returns.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub struct SentinelRig {
    pub dir: PathBuf,
    /// The name the sentinels monitor the primary under.
    pub service: String,
    pub timing: Timing,
    /// The data servers; the first started as the primary.
    servers: Vec<Node>,
    sentinels: Vec<Node>,
}

impl SentinelRig {
    /// A primary, two replicas and three sentinels, with [`Timing::FAST`].
    pub fn start(name: &str) -> SentinelRig {
        SentinelRig::start_with(name, Timing::FAST, &[])
    }

    /// Returns once the replicas are in sync and every sentinel knows the
    /// two replicas and the two other sentinels (so that a failover can
    /// start at once). `extra` goes to every data server.
    pub fn start_with(name: &str, timing: Timing, extra: &[&str]) -> SentinelRig {
        let dir = PathBuf::from(format!(
            "/tmp/twostep-sentinel-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let mut rig = SentinelRig {
            dir,
            service: format!("ts-{name}"),
            timing,
            servers: Vec::new(),
            sentinels: Vec::new(),
        };
        let primary = rig.start_server(None, extra);
        rig.servers.push(primary);
        let primary_port = rig.servers[0].port;
        for _ in 0..2 {
            let replica = rig.start_server(Some(primary_port), extra);
            rig.servers.push(replica);
        }
        rig.wait_until("both replicas in sync", Duration::from_secs(20), |r| {
            r.info(primary_port, "connected_slaves").as_deref() == Some("2")
                && r.replica_ports()
                    .iter()
                    .all(|&p| r.info(p, "master_link_status").as_deref() == Some("up"))
        });
        for i in 0..3 {
            let sentinel = rig.start_sentinel(i, primary_port, 2);
            rig.sentinels.push(sentinel);
        }
        rig.wait_until(
            "every sentinel to know the replicas and the other sentinels",
            Duration::from_secs(30),
            |r| {
                r.sentinel_ports().iter().all(|&p| {
                    let m = r.sentinel_master(p);
                    m.get("num-slaves").map(String::as_str) == Some("2")
                        && m.get("num-other-sentinels").map(String::as_str) == Some("2")
                })
            },
        );
        rig
    }

    /// A data server with the host's users, on a free port, replicating
    /// `primary` if given.
    fn start_server(&self, primary: Option<u16>, extra: &[&str]) -> Node {
        let mut host = vec!["resetchannels", "-@all"];
        host.extend(
            HOST_COMMANDS
                .iter()
                .chain(ADMIN_COMMANDS)
                .chain(FAILOVER_COMMANDS),
        );
        let users = [
            acl_user("twostep-host", PASSWORD, &host),
            acl_user(
                REPL_USER,
                REPL_PASSWORD,
                &["+psync", "+sync", "+replconf", "+ping"],
            ),
            // Without WAIT: a host whose user cannot honour wait_replicas.
            acl_user(
                "twostep-nowait",
                PASSWORD,
                &[&host[..], &["-wait"]].concat(),
            ),
        ];
        let index = self.servers.len();
        let log = self.dir.join(format!("server-{index}.log"));
        Node::spawn(log, |port, log| {
            let mut server = Command::new("redis-server");
            server
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args(["--save", "", "--appendonly", "no"])
                // The first sync at once, not after the default 5 s.
                .args(["--repl-diskless-sync-delay", "0"])
                .args(["--masteruser", REPL_USER, "--masterauth", REPL_PASSWORD])
                .arg("--dir")
                .arg(&self.dir)
                .arg("--dbfilename")
                .arg(format!("dump-{index}.rdb"))
                .arg("--logfile")
                .arg(log);
            if let Some(p) = primary {
                server.args(["--replicaof", "127.0.0.1", &p.to_string()]);
            }
            for user in &users {
                server.arg("--user").args(user);
            }
            server.args(extra);
            server
        })
    }

    /// A sentinel watching `primary` with this quorum. Its config file is
    /// its own (a sentinel rewrites it as it learns).
    fn start_sentinel(&self, index: usize, primary: u16, quorum: u32) -> Node {
        let log = self.dir.join(format!("sentinel-{index}.log"));
        let conf = self.dir.join(format!("sentinel-{index}.conf"));
        Node::spawn(log, |port, log| {
            std::fs::write(&conf, self.sentinel_conf(port, log, primary, quorum)).unwrap();
            let mut sentinel = Command::new("redis-sentinel");
            sentinel.arg(&conf);
            sentinel
        })
    }

    fn sentinel_conf(&self, port: u16, log: &Path, primary: u16, quorum: u32) -> String {
        let svc = &self.service;
        let rules = SENTINEL_COMMANDS.join(" ");
        format!(
            "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {dir}\nlogfile {log}\n\
             sentinel monitor {svc} 127.0.0.1 {primary} {quorum}\n\
             sentinel down-after-milliseconds {svc} {down}\n\
             sentinel failover-timeout {svc} {failover}\n\
             sentinel parallel-syncs {svc} 2\n\
             user default on nopass ~* &* +@all\n\
             user {SENTINEL_USER} on \">{SENTINEL_PASSWORD}\" -@all {rules}\n",
            dir = self.dir.display(),
            log = log.display(),
            down = self.timing.down_after.as_millis(),
            failover = self.timing.failover_timeout.as_millis(),
        )
    }

    /// A lone sentinel (quorum 1) told that the server on `port` is the
    /// primary of this rig's service, whatever that server is: pointed at a
    /// replica, it names an address where a replica answers. Its port.
    pub fn add_sentinel_naming(&mut self, port: u16) -> u16 {
        let index = self.sentinels.len();
        let node = self.start_sentinel(index, port, 1);
        let p = node.port;
        self.sentinels.push(node);
        p
    }

    /// `redis+sentinel://` with every live sentinel, to this service.
    pub fn url(&self) -> String {
        self.url_of(&self.sentinel_ports())
    }

    /// `redis+sentinel://` with these sentinel ports, to this service.
    pub fn url_of(&self, sentinels: &[u16]) -> String {
        let hosts: Vec<String> = sentinels.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        format!("redis+sentinel://{}/{}", hosts.join(","), self.service)
    }

    /// A password file of root's, mode 0600, in the rig's directory.
    pub fn password_file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(format!("password-{name}"));
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    /// The `[store]` section for this deployment through `url`: the host's
    /// users and password files for servers and sentinels, a prefix unique
    /// to `name`, then `extra` (`timeout`, `wait_replicas`...).
    pub fn store_section_for(&self, url: &str, name: &str, extra: &str) -> String {
        format!(
            "[store]\nurl = \"{url}\"\nuser = \"twostep-host\"\npassword_file = \"{}\"\n\
             sentinel_user = \"{SENTINEL_USER}\"\nsentinel_password_file = \"{}\"\n\
             prefix = \"twostep:{name}:\"\n{extra}\n",
            self.password_file("host", PASSWORD).display(),
            self.password_file("sentinel", SENTINEL_PASSWORD).display(),
        )
    }

    /// [`Self::store_section_for`] through every sentinel.
    pub fn store_section(&self, name: &str, extra: &str) -> String {
        self.store_section_for(&self.url(), name, extra)
    }

    /// The direct `redis://` URL of the current primary (for comparisons).
    pub fn direct_url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.primary())
    }

    pub fn server_ports(&self) -> Vec<u16> {
        live(&self.servers)
    }

    pub fn sentinel_ports(&self) -> Vec<u16> {
        live(&self.sentinels)
    }

    /// The live servers whose ROLE is not master.
    pub fn replica_ports(&self) -> Vec<u16> {
        self.server_ports()
            .into_iter()
            .filter(|&p| role(p).as_deref() != Some("master"))
            .collect()
    }

    /// What each live sentinel names as the primary (its port), in order.
    pub fn named_primaries(&self) -> Vec<Option<u16>> {
        self.sentinel_ports()
            .iter()
            .map(|&p| named_primary(p, &self.service))
            .collect()
    }

    /// The primary every live sentinel names; panics when they disagree.
    pub fn primary(&self) -> u16 {
        let named = self.named_primaries();
        match named.first() {
            Some(Some(p)) if named.iter().all(|n| *n == Some(*p)) => *p,
            _ => panic!("the sentinels disagree on the primary: {named:?}"),
        }
    }

    /// SIGKILLs the current primary (and reaps it). Returns its port and
    /// the moment it was gone.
    pub fn kill_primary(&mut self) -> (u16, Instant) {
        let port = self.primary();
        let node = self
            .servers
            .iter_mut()
            .find(|n| n.port == port)
            .expect("the named primary is one of ours");
        node.kill();
        (port, Instant::now())
    }

    /// Waits (at most `within`) until every live sentinel names a primary
    /// other than `old` and that server's ROLE says master. Returns its
    /// port; panics with the sentinels' logs when the bound passes.
    pub fn wait_for_new_primary(&self, old: u16, within: Duration) -> u16 {
        let mut found = 0;
        self.wait_until("the sentinels to name a new primary", within, |r| {
            let named = r.named_primaries();
            match named.first() {
                Some(Some(p))
                    if *p != old
                        && named.iter().all(|n| *n == Some(*p))
                        && role(*p).as_deref() == Some("master") =>
                {
                    found = *p;
                    true
                }
                _ => false,
            }
        });
        found
    }

    /// A server's replication offset: `master_repl_offset` of INFO
    /// replication (on a replica, how much of its primary's stream it has
    /// applied).
    pub fn offset(&self, port: u16) -> u64 {
        self.info(port, "master_repl_offset")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no replication offset from {port}"))
    }

    /// Waits (a few seconds at most) until every live replica has applied
    /// all that the primary wrote so far.
    pub fn wait_for_replicas(&self) {
        let primary = self.primary();
        let target = self.offset(primary);
        self.wait_until("the replicas to catch up", Duration::from_secs(5), |r| {
            r.replica_ports().iter().all(|&p| r.offset(p) >= target)
        });
    }

    /// Cuts every replica's link to the primary and keeps it cut (the
    /// primary disables the replicas' user and drops their connections):
    /// what a partition between the primary and its replicas does. What
    /// the primary writes from now on reaches no replica. The sentinels
    /// (the default user) still reach it.
    pub fn cut_replication(&self) {
        let primary = self.primary();
        let off = ask(primary, &["ACL", "SETUSER", REPL_USER, "off"]);
        assert_eq!(off, Ok(Reply::Simple(b"OK".to_vec())));
        // Some versions drop a disabled user's connections themselves.
        let killed = ask(primary, &["CLIENT", "KILL", "USER", REPL_USER]);
        assert!(matches!(killed, Ok(Reply::Integer(_))), "{killed:?}");
        self.wait_until(
            "the replicas to see their link down",
            Duration::from_secs(5),
            |r| {
                r.replica_ports()
                    .iter()
                    .all(|&p| r.info(p, "master_link_status").as_deref() == Some("down"))
            },
        );
    }

    /// SIGKILLs every sentinel.
    pub fn kill_sentinels(&mut self) {
        for node in &mut self.sentinels {
            node.kill();
        }
    }

    /// SIGSTOP or SIGCONT to every sentinel (`-STOP`, `-CONT`).
    pub fn signal_sentinels(&self, sig: &str) {
        for node in &self.sentinels {
            if let Some(child) = &node.child {
                let ok = Command::new("kill")
                    .args([sig, &child.id().to_string()])
                    .status()
                    .unwrap();
                assert!(ok.success(), "kill {sig}");
            }
        }
    }

    /// One field of a server's INFO replication.
    pub fn info(&self, port: u16, field: &str) -> Option<String> {
        let Ok(Reply::Bulk(text)) = ask(port, &["INFO", "replication"]) else {
            return None;
        };
        String::from_utf8_lossy(&text).lines().find_map(|l| {
            l.strip_prefix(field)
                .and_then(|rest| rest.strip_prefix(':'))
                .map(|v| v.trim().to_string())
        })
    }

    /// A sentinel's view of the service (`SENTINEL MASTER`), as pairs.
    pub fn sentinel_master(&self, port: u16) -> std::collections::HashMap<String, String> {
        let Ok(Reply::Array(items)) = ask(port, &["SENTINEL", "MASTER", &self.service]) else {
            return Default::default();
        };
        let text: Vec<String> = items.iter().map(text).collect();
        text.chunks(2)
            .filter(|kv| kv.len() == 2)
            .map(|kv| (kv[0].clone(), kv[1].clone()))
            .collect()
    }

    /// What the processes logged, for a failure's message.
    pub fn logs(&self) -> String {
        self.servers
            .iter()
            .chain(&self.sentinels)
            .map(|n| {
                let text = std::fs::read_to_string(&n.log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!(
                    "== {} (port {})\n{}\n",
                    n.log.display(),
                    n.port,
                    tail.join("\n")
                )
            })
            .collect()
    }

    fn wait_until(&self, what: &str, within: Duration, mut done: impl FnMut(&Self) -> bool) {
        let deadline = Instant::now() + within;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "waited {within:?} for {what}:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The ports of the nodes not killed.
fn live(nodes: &[Node]) -> Vec<u16> {
    nodes.iter().filter(|n| n.alive()).map(|n| n.port).collect()
}

impl Drop for SentinelRig {
    fn drop(&mut self) {
        for node in self.sentinels.iter_mut().chain(self.servers.iter_mut()) {
            node.kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One command to the server or sentinel on `port`, as the default user
/// (housekeeping), within a second.
pub fn ask(port: u16, args: &[&str]) -> Result<Reply, String> {
    ask_as(port, None, args)
}

/// One command on `port` after `AUTH user password` when `auth` is given
/// (the AUTH refused is the reply then), within a second.
pub fn ask_as(port: u16, auth: Option<(&str, &str)>, args: &[&str]) -> Result<Reply, String> {
    let bound = Duration::from_secs(1);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, bound).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(bound)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(bound))
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    if let Some((user, password)) = auth {
        let reply = exchange(&mut s, &["AUTH", user, password], &mut buf)?;
        if reply != Reply::Simple(b"OK".to_vec()) {
            return Ok(reply);
        }
    }
    exchange(&mut s, args, &mut buf)
}

fn exchange(s: &mut TcpStream, args: &[&str], buf: &mut Vec<u8>) -> Result<Reply, String> {
    let argv: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    let mut out = Vec::new();
    resp::encode(&argv, &mut out);
    s.write_all(&out).map_err(|e| e.to_string())?;
    let mut chunk = [0u8; 4096];
    loop {
        if let Some((reply, used)) = resp::parse(buf).map_err(|e| e.to_string())? {
            buf.drain(..used);
            return Ok(reply);
        }
        let n = s.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

pub fn text(r: &Reply) -> String {
    match r {
        Reply::Simple(b) | Reply::Bulk(b) | Reply::Error(b) => String::from_utf8_lossy(b).into(),
        Reply::Integer(n) => n.to_string(),
        Reply::Nil => "(nil)".into(),
        Reply::Array(items) => format!("{:?}", items.iter().map(text).collect::<Vec<_>>()),
    }
}

/// The first element of a server's ROLE: "master", "slave", or None when
/// it does not answer.
pub fn role(port: u16) -> Option<String> {
    match ask(port, &["ROLE"]) {
        Ok(Reply::Array(items)) => items.first().map(text),
        _ => None,
    }
}

/// The port of the primary the sentinel on `port` names for `service`.
pub fn named_primary(port: u16, service: &str) -> Option<u16> {
    match ask(port, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", service]) {
        Ok(Reply::Array(items)) if items.len() == 2 => text(&items[1]).parse().ok(),
        _ => None,
    }
}

/// A free loopback port where nothing listens (for a dead sentinel).
pub fn dead_port() -> u16 {
    free_port()
}
