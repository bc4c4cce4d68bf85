//! The store side of Sentinel (issue 26), through the real libpam: a
//! `redis+sentinel://` store.url found through real redis-sentinel
//! processes (private, on free loopback ports); the primary found last
//! used without a sentinel round trip; every sentinel down, and a sentinel
//! naming a replica, denied within the budget with their records, nothing
//! written on the replica; `store.wait_replicas` with and without a
//! replica. (The failover itself, with three sentinels and two replicas,
//! and its figures: tests/sentinel*.rs.)

mod common;
use common::redis::{self, ADMIN_COMMANDS, HOST_COMMANDS, Redis, acl_user, free_port};
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SERVICE: &str = "ts-snc";
const SENTINEL_USER: &str = "twostep-sentinel";
const SENTINEL_PASSWORD: &str = "sentinel-pass-W0rd";

/// A server whose host user may also run ROLE and WAIT (what a Sentinel
/// URL and `wait_replicas` need), with `extra` arguments.
fn server(name: &str, extra: &[&str]) -> Redis {
    let mut host = vec!["resetchannels", "-@all", "+role", "+wait"];
    host.extend(HOST_COMMANDS.iter().chain(ADMIN_COMMANDS));
    Redis::start_with_users(
        name,
        &[acl_user("twostep-host", redis::PASSWORD, &host)],
        extra,
    )
}

/// A private redis-sentinel watching `primary` as SERVICE (quorum 1, and
/// never a failover of its own: the failover tests are the other file's).
struct Sentinel {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Sentinel {
    fn start(name: &str, primary: &Redis) -> Sentinel {
        let dir = PathBuf::from(format!(
            "/tmp/ts-snc-sentinel-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let port = free_port();
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor {SERVICE} 127.0.0.1 {} 1\n\
                 sentinel down-after-milliseconds {SERVICE} 600000\n\
                 user {SENTINEL_USER} on >{SENTINEL_PASSWORD} -@all +auth \
                 +sentinel|get-master-addr-by-name\n",
                dir.display(),
                primary.port
            ),
        )
        .unwrap();
        let child = Command::new("redis-sentinel")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-sentinel (packages.sh test installs it)");
        let s = Sentinel { child, port, dir };
        let ready = Instant::now() + Duration::from_secs(10);
        while !s.cli(&["PING"]).contains("PONG") {
            assert!(Instant::now() < ready, "redis-sentinel did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    /// redis-cli to the sentinel as its default user (housekeeping).
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .stderr(Stdio::null())
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Connections it has accepted so far (this question's included).
    fn connections(&self) -> u64 {
        let info = self.cli(&["INFO", "stats"]);
        info.lines()
            .find_map(|l| l.strip_prefix("total_connections_received:"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no connection count in {info}"))
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success(), "kill {sig}");
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        // A stopped process takes no SIGTERM: continued first.
        self.signal_quietly("-CONT");
        stop_child(&mut self.child);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Sentinel {
    fn signal_quietly(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status();
    }
}

/// Waits until `replica` has synced with its primary.
fn synced(replica: &Redis) {
    let until = Instant::now() + Duration::from_secs(10);
    while !replica
        .cli(&["INFO", "replication"])
        .contains("master_link_status:up")
    {
        assert!(Instant::now() < until, "the replica did not sync");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A port where nothing listens.
fn dead_port() -> u16 {
    free_port()
}

/// The `[store]` section for a Sentinel URL over `ports`, with both
/// password files, a prefix unique to `name`.
fn sentinel_store(primary: &Redis, ports: &[u16], name: &str, extra: &str) -> String {
    let list: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let password = primary.password_file(redis::PASSWORD, 0o600);
    let sentinel_password = primary.dir.join("sentinel-password");
    std::fs::write(&sentinel_password, SENTINEL_PASSWORD).unwrap();
    std::fs::set_permissions(&sentinel_password, std::fs::Permissions::from_mode(0o600)).unwrap();
    format!(
        "[store]\nurl = \"redis+sentinel://{}/{SERVICE}\"\nuser = \"twostep-host\"\n\
         password_file = \"{}\"\nsentinel_user = \"{SENTINEL_USER}\"\n\
         sentinel_password_file = \"{}\"\nprefix = \"twostep:{name}:\"\n{extra}\n",
        list.join(","),
        password.display(),
        sentinel_password.display()
    )
}

/// The one `store_unavailable` and the `auth_fail reason=store` after it:
/// the former's reason and detail.
fn store_failure(ev: &[Event]) -> (String, String) {
    let unavailable: Vec<_> = ev
        .iter()
        .filter(|e| e.event() == "store_unavailable")
        .collect();
    assert_eq!(unavailable.len(), 1, "{ev:#?}");
    let fail = ev
        .iter()
        .find(|e| e.event() == "auth_fail")
        .unwrap_or_else(|| panic!("no auth_fail in {ev:#?}"));
    assert_eq!(fail.get("reason"), Some("store"), "{ev:#?}");
    (
        unavailable[0].get("reason").unwrap_or_default().to_string(),
        unavailable[0].get("detail").unwrap_or_default().to_string(),
    )
}

/// A right code, denied within `within`: the records.
fn denied_within(rig: &mut Rig, user: &str, within: Duration) -> Vec<Event> {
    denied_with(rig, user, &oath_code(SECRET, 0), within)
}

fn denied_with(rig: &mut Rig, user: &str, code: &str, within: Duration) -> Vec<Event> {
    let start = Instant::now();
    let l = rig.login(user, code);
    let took = start.elapsed();
    assert_eq!(l.code, PAM_AUTH_ERR, "{}", l.out);
    assert!(took < within, "took {took:?}");
    rig.module_events()
}

/// The keys under `prefix` on `server`.
fn keys(server: &Redis, prefix: &str) -> String {
    server
        .cli(&["KEYS", &format!("{prefix}*")])
        .trim()
        .to_string()
}

#[test]
fn a_login_finds_the_primary_through_the_sentinels_then_goes_straight_to_it() {
    let u = "ts-snc-found";
    ensure_user(u, None);
    let primary = server("snc-found", &[]);
    let sentinel = Sentinel::start("found", &primary);
    // The first sentinel listed is down: the next one is asked.
    let store = sentinel_store(
        &primary,
        &[dead_port(), sentinel.port],
        "found",
        "timeout = \"2s\"",
    );
    let mut a = Rig::new("snc-found", &store);
    a.enroll(u, SECRET);
    a.events();
    fresh_step(5);
    let code = oath_code(SECRET, 0);
    let l = a.login(u, &code);
    assert_eq!(l.code, PAM_SUCCESS, "{}", l.out);
    assert_eq!(count(&a.module_events(), "store_unavailable"), 0);
    assert!(!keys(&primary, "twostep:found:").is_empty());
    // Remembered for the next process: root's, private, naming the primary.
    let hint = a.state_dir.join(".store-primary");
    assert_eq!(mode_of(&hint) & 0o777, 0o600);
    let text = std::fs::read_to_string(&hint).unwrap();
    assert!(
        text.ends_with(&format!("\n127.0.0.1 {}\n", primary.port)),
        "{text}"
    );
    // The next login (a new process) goes to the primary without asking a
    // sentinel: its only new connection is the count's own question.
    let before = sentinel.connections();
    let again = a.login(u, &code);
    assert_eq!(again.code, PAM_AUTH_ERR, "a replay: {}", again.out);
    assert_eq!(sentinel.connections(), before + 1);
    let ev = a.module_events();
    let fail = ev.iter().find(|e| e.event() == "auth_fail").unwrap();
    assert_eq!(fail.get("reason"), Some("replay"), "{ev:#?}");
    // `twostep status` (status needs no writes) goes through them too.
    assert_eq!(a.status_json(u)["failures"].as_u64(), Some(1));
}

#[test]
fn every_sentinel_down_is_denied_within_the_budget() {
    let u = "ts-snc-nosent";
    ensure_user(u, None);
    let primary = server("snc-nosent", &[]);
    let stopped = Sentinel::start("nosent", &primary);
    stopped.signal("-STOP");
    // Refused, refused, and one that never answers: 300ms in all.
    let list_ports = [dead_port(), dead_port()];
    let store = sentinel_store(
        &primary,
        &[list_ports[0], list_ports[1], stopped.port],
        "nosent",
        "timeout = \"300ms\"",
    );
    let mut a = Rig::new("snc-nosent", &store);
    a.enroll(u, SECRET);
    a.events();
    let ev = denied_within(&mut a, u, Duration::from_secs(3));
    let (reason, detail) = store_failure(&ev);
    assert_eq!(reason, "sentinel", "{ev:#?}");
    let (p1, p2, p3) = (&list_ports[0], &list_ports[1], stopped.port);
    assert_eq!(
        detail,
        format!(
            "no sentinel named the primary: 127.0.0.1:{p1}: connect; 127.0.0.1:{p2}: connect; 127.0.0.1:{p3}: timeout"
        )
    );
    assert!(!a.state_dir.join(".store-primary").exists());
    assert_eq!(keys(&primary, "twostep:nosent:"), "");
}

#[test]
fn a_sentinel_naming_a_replica_is_denied_and_nothing_is_written_there() {
    let u = "ts-snc-replica";
    ensure_user(u, None);
    // A replica that would take writes (replica-read-only no): only ROLE
    // keeps them away.
    let named = server("snc-named", &["--replica-read-only", "no"]);
    let sentinel = Sentinel::start("replica", &named);
    let other = server("snc-other", &[]);
    let store = sentinel_store(&named, &[sentinel.port], "replica", "timeout = \"500ms\"");
    let mut a = Rig::new("snc-replica", &store);
    a.enroll(u, SECRET);
    a.events();
    named.cli(&["REPLICAOF", "127.0.0.1", &other.port.to_string()]);
    synced(&named);
    assert!(
        sentinel
            .cli(&["SENTINEL", "get-master-addr-by-name", SERVICE])
            .contains(&named.port.to_string())
    );
    let ev = denied_within(&mut a, u, Duration::from_secs(3));
    let (reason, detail) = store_failure(&ev);
    assert_eq!(reason, "not_primary", "{ev:#?}");
    assert!(detail.contains("is a replica"), "{detail}");
    assert_eq!(keys(&named, "twostep:"), "");
    assert_eq!(keys(&other, "twostep:"), "");
}

#[test]
fn wait_replicas_denies_a_success_no_replica_acknowledged() {
    let u = "ts-snc-wait";
    ensure_user(u, None);
    let primary = server("snc-wait", &[]);
    let store = format!(
        "{}wait_replicas = 1\n",
        redis::store_section(
            &primary,
            &redis::tcp_url(&primary),
            "wait",
            "timeout = \"300ms\""
        )
    );
    let mut a = Rig::new("snc-wait", &store);
    a.enroll(u, SECRET);
    a.events();
    fresh_step(5);
    let denied_code = oath_code(SECRET, 0);
    let ev = denied_with(&mut a, u, &denied_code, Duration::from_secs(3));
    let (reason, detail) = store_failure(&ev);
    assert_eq!(reason, "replicas", "{ev:#?}");
    assert!(
        detail.contains("fewer than the 1 replica(s) of store.wait_replicas"),
        "{detail}"
    );
    assert_eq!(count(&ev, "auth_ok"), 0);
    // With a replica attached, the next code is let in; the code that was
    // denied stays used (it was written on the primary): typing it again
    // is a replay, never a second chance for whoever saw it.
    let replica = server(
        "snc-wait-r",
        &["--replicaof", "127.0.0.1", &primary.port.to_string()],
    );
    synced(&replica);
    let l = a.login(u, &denied_code);
    assert_eq!(l.code, PAM_AUTH_ERR, "{}", l.out);
    let ev = a.module_events();
    let fail = ev.iter().find(|e| e.event() == "auth_fail").unwrap();
    assert_eq!(fail.get("reason"), Some("replay"), "{ev:#?}");
    // The next step's code (the window allows one step of drift).
    fresh_step(5);
    let l = a.login(u, &oath_code(SECRET, 1));
    assert_eq!(l.code, PAM_SUCCESS, "{}\n{:#?}", l.out, a.module_events());
    assert_eq!(count(&a.module_events(), "auth_ok"), 1);
}
