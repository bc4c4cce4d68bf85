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
use std::path::{Path, PathBuf};
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
    /// With TLS: the test CA's certificate (`redis::make_certs`).
    ca: Option<PathBuf>,
}

impl Sentinel {
    fn start(name: &str, primary: &Redis) -> Sentinel {
        Sentinel::start_on(name, primary.port, None)
    }

    /// Watching the primary on `port`; with `certs` (a directory
    /// `redis::make_certs` filled), over TLS only, to clients and servers.
    fn start_on(name: &str, primary_port: u16, certs: Option<&Path>) -> Sentinel {
        let dir = PathBuf::from(format!(
            "/tmp/ts-snc-sentinel-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let port = free_port();
        let listen = match certs {
            None => format!("port {port}\n"),
            Some(c) => format!(
                "port 0\ntls-port {port}\ntls-cert-file {}\ntls-key-file {}\n\
                 tls-ca-cert-file {}\ntls-auth-clients no\ntls-replication yes\n",
                c.join("server.crt").display(),
                c.join("server.key").display(),
                c.join("ca.crt").display()
            ),
        };
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "{listen}bind 127.0.0.1\ndir {}\n\
                 sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 1\n\
                 sentinel down-after-milliseconds {SERVICE} 600000\n\
                 user {SENTINEL_USER} on >{SENTINEL_PASSWORD} -@all +auth \
                 +sentinel|get-master-addr-by-name\n",
                dir.display(),
            ),
        )
        .unwrap();
        let child = Command::new("redis-sentinel")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-sentinel (packages.sh test installs it)");
        let ca = certs.map(|c| c.join("ca.crt"));
        let s = Sentinel {
            child,
            port,
            dir,
            ca,
        };
        let ready = Instant::now() + Duration::from_secs(10);
        while !s.cli(&["PING"]).contains("PONG") {
            assert!(Instant::now() < ready, "redis-sentinel did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }

    /// redis-cli to the sentinel as its default user (housekeeping).
    fn cli(&self, args: &[&str]) -> String {
        let mut cli = Command::new("redis-cli");
        cli.args(["-h", "127.0.0.1", "-p", &self.port.to_string()]);
        if let Some(ca) = &self.ca {
            cli.arg("--tls").arg("--cacert").arg(ca);
        }
        let out = cli
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
    sentinel_store_as("redis", primary, ports, name, extra)
}

fn sentinel_store_as(
    scheme: &str,
    primary: &Redis,
    ports: &[u16],
    name: &str,
    extra: &str,
) -> String {
    let list: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let password = primary.password_file(redis::PASSWORD, 0o600);
    let sentinel_password = primary.dir.join("sentinel-password");
    std::fs::write(&sentinel_password, SENTINEL_PASSWORD).unwrap();
    std::fs::set_permissions(&sentinel_password, std::fs::Permissions::from_mode(0o600)).unwrap();
    format!(
        "[store]\nurl = \"{scheme}+sentinel://{}/{SERVICE}\"\nuser = \"twostep-host\"\n\
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
    // An outage: with on_unavailable = "local" the host counts on its own.
    a.write_config(&sentinel_store(
        &primary,
        &[list_ports[0], list_ports[1], stopped.port],
        "nosent",
        "timeout = \"300ms\"\non_unavailable = \"local\"",
    ));
    fresh_step(5);
    let l = a.login(u, &oath_code(SECRET, 0));
    assert_eq!(l.code, PAM_SUCCESS, "{}", l.out);
    let ev = a.module_events();
    let fell = ev
        .iter()
        .find(|e| e.event() == "store_unavailable")
        .unwrap();
    assert_eq!(
        (fell.get("reason"), fell.get("fallback")),
        (Some("sentinel"), Some("local")),
        "{ev:#?}"
    );
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

#[test]
fn check_reports_each_sentinel_the_primary_it_names_and_whether_they_agree() {
    let primary = server("snc-check", &[]);
    let elsewhere = server("snc-check-x", &[]);
    let one = Sentinel::start("check-1", &primary);
    let two = Sentinel::start("check-2", &primary);
    let odd = Sentinel::start("check-3", &elsewhere);
    let dead = dead_port();
    let said = |rig: &Rig| {
        let out = rig.cli(&["check"]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let names = |s: &Sentinel, p: &Redis| {
        format!(
            "store.url: sentinel 127.0.0.1:{} names 127.0.0.1:{} as the primary of \"{SERVICE}\"",
            s.port, p.port
        )
    };
    // Two that agree and one down: a warning, not a problem.
    let a = Rig::new(
        "snc-check",
        &sentinel_store(&primary, &[one.port, dead, two.port], "check", ""),
    );
    let (status, text) = said(&a);
    assert_eq!(status, Some(0), "{text}");
    assert!(text.contains(&names(&one, &primary)), "{text}");
    assert!(text.contains(&names(&two, &primary)), "{text}");
    assert!(
        text.contains(&format!(
            "warning: store.url: sentinel 127.0.0.1:{dead}: cannot reach"
        )),
        "{text}"
    );
    assert!(!text.contains("disagree"), "{text}");
    // One that names another server: a warning.
    a.write_config(&sentinel_store(
        &primary,
        &[one.port, odd.port],
        "check",
        "",
    ));
    let (status, text) = said(&a);
    assert_eq!(status, Some(0), "{text}");
    assert!(text.contains(&names(&odd, &elsewhere)), "{text}");
    assert!(
        text.contains(&format!(
            "warning: store.url: the sentinels disagree on the primary (127.0.0.1:{} names \
             127.0.0.1:{}, 127.0.0.1:{} names 127.0.0.1:{})",
            one.port, primary.port, odd.port, elsewhere.port
        )),
        "{text}"
    );
    // None that answers: a problem.
    a.write_config(&sentinel_store(
        &primary,
        &[dead],
        "check",
        "timeout = \"300ms\"",
    ));
    let (status, text) = said(&a);
    assert_eq!(status, Some(2), "{text}");
    assert!(
        text.contains(&format!(
            "store.url: no sentinel named a primary of \"{SERVICE}\": every login is denied"
        )),
        "{text}"
    );
    // wait_replicas = 1 with no replica: every success would be denied.
    a.write_config(&sentinel_store(
        &primary,
        &[one.port],
        "check",
        "wait_replicas = 1",
    ));
    let (status, text) = said(&a);
    assert_eq!(status, Some(2), "{text}");
    assert!(
        text.contains("every successful login would be denied"),
        "{text}"
    );
}

/// Makes `to` the primary the sentinel names for SERVICE and `from` its
/// replica, as a failover leaves them (without waiting for one).
fn move_primary(sentinel: &Sentinel, from: &Redis, to: &Redis) {
    assert!(
        sentinel
            .cli(&["SENTINEL", "REMOVE", SERVICE])
            .contains("OK")
    );
    let port = to.port.to_string();
    assert!(
        sentinel
            .cli(&["SENTINEL", "MONITOR", SERVICE, "127.0.0.1", &port, "1"])
            .contains("OK")
    );
    from.cli(&["REPLICAOF", "127.0.0.1", &port]);
    synced(from);
}

/// Two servers, a sentinel naming the first, and a host enrolling `user`.
fn two_primaries(name: &str, user: &str) -> (Redis, Redis, Sentinel, Rig) {
    ensure_user(user, None);
    let first = server(&format!("snc-{name}-1"), &[]);
    let second = server(&format!("snc-{name}-2"), &[]);
    let sentinel = Sentinel::start(name, &first);
    let store = sentinel_store(&first, &[sentinel.port], name, "timeout = \"2s\"");
    let mut rig = Rig::new(&format!("snc-{name}"), &store);
    rig.enroll(user, SECRET);
    rig.events();
    (first, second, sentinel, rig)
}

#[test]
fn a_primary_found_last_that_is_a_replica_now_is_replaced_by_the_one_the_sentinels_name() {
    let u = "ts-snc-moved";
    let (first, second, sentinel, mut a) = two_primaries("moved", u);
    fresh_step(5);
    assert_eq!(a.login(u, &oath_code(SECRET, 0)).code, PAM_SUCCESS);
    let hint = a.state_dir.join(".store-primary");
    let names = |p: &Redis| format!("\n127.0.0.1 {}\n", p.port);
    assert!(
        std::fs::read_to_string(&hint)
            .unwrap()
            .ends_with(&names(&first))
    );
    move_primary(&sentinel, &first, &second);
    // The hint leads to a replica: ROLE says so, the sentinel is asked, the
    // login goes through on the new primary, and the hint follows.
    let l = a.login(u, &oath_code(SECRET, 1));
    assert_eq!(l.code, PAM_SUCCESS, "{}", l.out);
    assert_eq!(count(&a.module_events(), "store_unavailable"), 0);
    assert!(
        std::fs::read_to_string(&hint)
            .unwrap()
            .ends_with(&names(&second))
    );
    assert!(!keys(&second, "twostep:moved:").is_empty());
}

#[test]
fn a_primary_demoted_during_a_login_refuses_the_write_and_the_new_one_takes_it() {
    let u = "ts-snc-demoted";
    let (first, second, sentinel, mut a) = two_primaries("demoted", u);
    fresh_step(10);
    // At the prompt the module holds its connection to the first primary
    // (it read the state from it); it is demoted before the answer.
    let mut live = a.live_login("twostep", u, &[]);
    assert!(live.until_prompt().starts_with("PROMPT_OFF"));
    move_primary(&sentinel, &first, &second);
    live.answer(&oath_code(SECRET, 0));
    let l = live.finish();
    assert_eq!(l.code, PAM_SUCCESS, "{}\n{:#?}", l.out, a.module_events());
    let step = second.cli(&["HGET", &format!("twostep:demoted:{{{u}}}"), "ls"]);
    assert!(!step.trim().is_empty(), "written on the new primary");
}

#[test]
fn a_primary_found_last_that_hangs_leaves_the_sentinels_half_the_budget() {
    let u = "ts-snc-hangs";
    let (first, second, sentinel, mut a) = two_primaries("hangs", u);
    fresh_step(5);
    assert_eq!(a.login(u, &oath_code(SECRET, 0)).code, PAM_SUCCESS);
    // The sentinel names the second now; the first, still remembered,
    // takes connections and never answers.
    assert!(
        sentinel
            .cli(&["SENTINEL", "REMOVE", SERVICE])
            .contains("OK")
    );
    let port = second.port.to_string();
    let monitor = ["SENTINEL", "MONITOR", SERVICE, "127.0.0.1", &port, "1"];
    assert!(sentinel.cli(&monitor).contains("OK"));
    first.signal("-STOP");
    a.write_config(&sentinel_store(
        &first,
        &[sentinel.port],
        "hangs",
        "timeout = \"1s\"",
    ));
    let l = a.login(u, &oath_code(SECRET, 1));
    assert_eq!(l.code, PAM_SUCCESS, "{}\n{:#?}", l.out, a.module_events());
    let hint = std::fs::read_to_string(a.state_dir.join(".store-primary")).unwrap();
    assert!(
        hint.ends_with(&format!("\n127.0.0.1 {}\n", second.port)),
        "{hint}"
    );
    first.signal("-CONT");
}

#[test]
fn a_sentinel_that_never_answers_leaves_the_next_its_share() {
    let u = "ts-snc-share";
    ensure_user(u, None);
    let primary = server("snc-share", &[]);
    let stopped = Sentinel::start("share-1", &primary);
    let live = Sentinel::start("share-2", &primary);
    stopped.signal("-STOP");
    let store = sentinel_store(
        &primary,
        &[stopped.port, live.port],
        "share",
        "timeout = \"1s\"",
    );
    let mut a = Rig::new("snc-share", &store);
    a.enroll(u, SECRET);
    a.events();
    fresh_step(5);
    let l = a.login(u, &oath_code(SECRET, 0));
    assert_eq!(l.code, PAM_SUCCESS, "{}\n{:#?}", l.out, a.module_events());
}

#[test]
fn rediss_sentinel_is_tls_to_the_sentinels_and_the_servers() {
    let u = "ts-snc-tls";
    ensure_user(u, None);
    let certs = PathBuf::from(format!("/tmp/ts-snc-certs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&certs);
    std::fs::create_dir_all(&certs).unwrap();
    redis::make_certs(&certs);
    let c = |f: &str| certs.join(f).display().to_string();
    let tls_port = free_port();
    let tls = redis::tls_args(&certs, tls_port);
    let primary = server(
        "snc-tls",
        &tls.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let sentinel = Sentinel::start_on("tls", tls_port, Some(&certs));
    let store = |ca: &str| {
        sentinel_store_as(
            "rediss",
            &primary,
            &[sentinel.port],
            "tls",
            &format!("ca_file = \"{}\"\ntimeout = \"2s\"", c(ca)),
        )
    };
    let mut a = Rig::new("snc-tls", &store("ca.crt"));
    a.enroll(u, SECRET);
    a.events();
    fresh_step(5);
    let l = a.login(u, &oath_code(SECRET, 0));
    assert_eq!(l.code, PAM_SUCCESS, "{}\n{:#?}", l.out, a.module_events());
    // Another CA: the sentinel's certificate is refused, a fault (never a
    // fallback), named so.
    a.write_config(&store("other-ca.crt"));
    let _ = std::fs::remove_file(a.state_dir.join(".store-primary"));
    let ev = denied_within(&mut a, u, Duration::from_secs(5));
    let (reason, detail) = store_failure(&ev);
    assert_eq!(reason, "tls", "{ev:#?}");
    assert!(
        detail.contains(&format!("sentinel 127.0.0.1:{}", sentinel.port)),
        "{detail}"
    );
    let _ = std::fs::remove_dir_all(&certs);
}
