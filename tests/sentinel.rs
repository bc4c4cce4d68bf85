//! A fleet store with no single point of failure (issue 26): a primary, two
//! replicas and three real sentinels (tests/common/sentinel.rs), and hosts
//! (PAM services, each its own config and state_dir) that reach the
//! primary through the sentinels, through the real libpam. The primary is
//! SIGKILLed and a replica promoted by the sentinels' own vote; nothing of
//! ours is restarted.

mod common;
use common::sentinel::{self, SentinelRig, ask, ask_as, role};
use common::*;
use pam_twostep::store::valkey::resp::Reply;
use std::time::{Duration, Instant};

/// The rig itself: it comes up with one primary and two replicas in sync,
/// every sentinel names the primary, a write reaches the replicas'
/// offsets, and a SIGKILLed primary is replaced by a replica that the
/// sentinels agree on and whose data is whole.
#[test]
fn the_rig_fails_over_to_a_replica_that_has_the_data() {
    let mut rig = SentinelRig::start("snr-rig");
    let primary = rig.primary();
    assert_eq!(role(primary).as_deref(), Some("master"));
    let replicas = rig.replica_ports();
    assert_eq!(replicas.len(), 2, "{replicas:?}");
    for &r in &replicas {
        assert_eq!(role(r).as_deref(), Some("slave"));
    }
    // The sentinels' user may ask where the primary is, and nothing that
    // changes a sentinel.
    let as_host = Some((sentinel::SENTINEL_USER, sentinel::SENTINEL_PASSWORD));
    for &s in &rig.sentinel_ports() {
        let named = ask_as(
            s,
            as_host,
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", &rig.service],
        );
        let Ok(Reply::Array(addr)) = named else {
            panic!("{named:?}")
        };
        assert_eq!(sentinel::text(&addr[1]), primary.to_string());
        let failover = ask_as(s, as_host, &["SENTINEL", "FAILOVER", &rig.service]);
        assert!(
            matches!(&failover, Ok(Reply::Error(e)) if e.starts_with(b"NOPERM")),
            "{failover:?}"
        );
        let wrong = ask_as(s, Some((sentinel::SENTINEL_USER, "wrong")), &["PING"]);
        assert!(
            matches!(&wrong, Ok(Reply::Error(e)) if e.starts_with(b"WRONGPASS")),
            "{wrong:?}"
        );
    }
    let before = rig.offset(primary);
    let set = ask(primary, &["SET", "twostep:snr-rig:k", "v"]);
    assert!(set.is_ok(), "{set:?}");
    let waited = ask(primary, &["WAIT", "2", "2000"]);
    assert_eq!(waited, Ok(Reply::Integer(2)));
    let after = rig.offset(primary);
    assert!(after > before, "{before} -> {after}");
    for &r in &replicas {
        assert!(rig.offset(r) >= after, "replica {r} behind");
    }

    let (old, killed) = rig.kill_primary();
    let bound = Duration::from_secs(30);
    let new = rig.wait_for_new_primary(old, bound);
    let took = killed.elapsed();
    eprintln!("failover: the sentinels named {new} in {took:?}");
    assert!(replicas.contains(&new), "{new} is not one of {replicas:?}");
    let got = ask(new, &["GET", "twostep:snr-rig:k"]);
    assert_eq!(got, Ok(Reply::Bulk(b"v".to_vec())));
    assert_eq!(rig.server_ports().len(), 2);
}

/// The rig's partition: with replication cut, a write on the primary
/// reaches no replica, and the replica promoted after the primary's death
/// does not have it. This is the window the module's `wait_replicas`
/// closes.
#[test]
fn the_rig_loses_a_write_made_while_replication_is_cut() {
    let mut rig = SentinelRig::start("snr-cut");
    let primary = rig.primary();
    rig.cut_replication();
    assert_eq!(
        ask(primary, &["SET", "twostep:snr-cut:k", "v"]),
        Ok(Reply::Simple(b"OK".to_vec()))
    );
    assert_eq!(ask(primary, &["WAIT", "1", "300"]), Ok(Reply::Integer(0)));
    for r in rig.replica_ports() {
        assert!(rig.offset(r) < rig.offset(primary), "replica {r} has it");
    }
    let (old, _) = rig.kill_primary();
    let new = rig.wait_for_new_primary(old, Duration::from_secs(30));
    assert_eq!(ask(new, &["GET", "twostep:snr-cut:k"]), Ok(Reply::Nil));
}

/// A host: a rig whose config points at the store.
fn host(name: &str, store: &str, extra: &str) -> Rig {
    Rig::new(name, &format!("{extra}\n{store}"))
}

/// The reasons of the module's `auth_fail` and `store_unavailable` records.
fn reasons(ev: &[Event]) -> Vec<String> {
    ev.iter()
        .filter(|e| matches!(e.event(), "auth_fail" | "store_unavailable"))
        .map(|e| format!("{}:{}", e.event(), e.get("reason").unwrap_or("")))
        .collect()
}

/// When, after the kill, the sentinels named a new primary and logins
/// worked again.
#[derive(Debug, Default)]
struct Failover {
    /// The first sentinel named another primary (seen before a login).
    first_named: Option<Duration>,
    /// Every sentinel named it, and its ROLE said master.
    all_named: Option<Duration>,
    /// The first login that succeeded ended.
    first_login: Duration,
}

/// Logs in with the kill of the primary at `killed`, until a login that
/// started after the sentinels all named the new primary (checked before
/// each login) has ended: it must have succeeded. Returns when the
/// sentinels named it and when the first login succeeded.
fn logins_through_the_failover(
    rig: &SentinelRig,
    host: &mut Rig,
    user: &str,
    old: u16,
    killed: Instant,
) -> Failover {
    let bound = Duration::from_secs(40);
    let mut seen = Failover::default();
    loop {
        assert!(
            killed.elapsed() < bound,
            "no login in {bound:?} after the kill:\n{}",
            rig.logs()
        );
        let named = rig.named_primaries();
        let moved = |n: &Option<u16>| n.is_some_and(|p| p != old);
        if named.iter().any(moved) {
            seen.first_named.get_or_insert(killed.elapsed());
        }
        let promoted = match named.first() {
            Some(Some(p)) if *p != old && named.iter().all(|n| *n == Some(*p)) => {
                (role(*p).as_deref() == Some("master")).then_some(*p)
            }
            _ => None,
        };
        if promoted.is_some() {
            seen.all_named.get_or_insert(killed.elapsed());
        }
        let l = host.login(user, &oath_code(SECRET, 0));
        if l.code == PAM_SUCCESS {
            seen.first_login = killed.elapsed();
            return seen;
        }
        if let Some(p) = promoted {
            let ev = host.module_events();
            panic!(
                "the sentinels named {p}, and the next login was denied: {:?}\n{ev:#?}",
                reasons(&ev)
            );
        }
    }
}

/// Issue 26: logins work through the sentinels; the primary is SIGKILLed;
/// logins work again on the promoted replica as soon as the sentinels name
/// it, with nothing of ours restarted; the lockout count and the used
/// step written before (the step with `wait_replicas = 1`, so
/// acknowledged by a replica; the failures once the replicas' offsets
/// caught up) are there after it.
#[test]
fn logins_follow_a_failover_and_what_was_acknowledged_survives_it() {
    let (u, v) = ("ts-snr-fail", "ts-snr-fail2");
    ensure_user(u, None);
    ensure_user(v, None);
    let mut rig = SentinelRig::start("snr-fail");
    let store = rig.store_section("snr-fail", "wait_replicas = 1");
    let tiers = "[lockout]\ntiers = [{failures = 5, lock = \"1h\"}]";
    let mut a = host("snr-fail", &store, tiers);
    a.enroll(u, SECRET);
    a.enroll(v, SECRET);
    a.events();
    fresh_step(20);
    let code = oath_code(SECRET, 0);
    let l = a.login(u, &code);
    assert_eq!(l.code, PAM_SUCCESS, "{}\n{:?}", l.out, a.module_events());
    for _ in 0..2 {
        assert_eq!(a.login(u, "000000").code, PAM_AUTH_ERR);
    }
    // A failure is not WAITed for (only a success is): the test waits.
    rig.wait_for_replicas();
    assert_eq!(a.status_json(u)["failures"], 2);
    a.events();

    let (old, killed) = rig.kill_primary();
    let seen = logins_through_the_failover(&rig, &mut a, v, old, killed);
    eprintln!("kill -9 of the primary to the first login: {seen:?}");
    rig.wait_for_new_primary(old, Duration::from_secs(30));

    let st = a.status_json(u);
    assert_eq!(st["failures"], 2, "{st}");
    let l = a.login(u, &code);
    assert_eq!(l.code, PAM_AUTH_ERR, "the used code again: {}", l.out);
    let ev = a.module_events();
    assert_eq!(
        reasons(&ev).last().map(String::as_str),
        Some("auth_fail:replay"),
        "{ev:#?}"
    );
}

/// One partitioned failover: replication cut, a login with `code` on the
/// old primary, the primary SIGKILLed, the replica promoted. Returns the
/// first login's records and result; then logs in with the same code
/// twice more on the new primary and returns those results too.
fn a_login_during_a_partition_then_a_failover(
    name: &str,
    user: &str,
    extra_store: &str,
    extra_server: &[&str],
) -> (Vec<Event>, [i32; 3]) {
    ensure_user(user, None);
    let mut rig = SentinelRig::start_with(name, sentinel::Timing::FAST, extra_server);
    let store = rig.store_section(name, &format!("timeout = \"500ms\"\n{extra_store}"));
    let mut a = host(name, &store, "");
    a.enroll(user, SECRET);
    a.events();
    fresh_step(20);
    let code = oath_code(SECRET, 0);
    rig.cut_replication();
    let first = a.login(user, &code).code;
    let ev = a.module_events();
    let (old, _) = rig.kill_primary();
    rig.wait_for_new_primary(old, Duration::from_secs(30));
    let second = a.login(user, &code).code;
    let third = a.login(user, &code).code;
    (ev, [first, second, third])
}

/// Issue 26, the replay window, without `wait_replicas`: replication is
/// asynchronous, so a code accepted by a primary whose replicas did not
/// get the write (here: replication cut, as a partition cuts it) is
/// accepted once more by the replica promoted after the primary dies.
/// This is the window `wait_replicas` closes (the next test).
#[test]
fn without_wait_a_code_accepted_during_a_partition_is_accepted_again_after_the_failover() {
    let (ev, results) = a_login_during_a_partition_then_a_failover(
        "snr-win0",
        "ts-snr-win0",
        "wait_replicas = 0",
        &[],
    );
    assert_eq!(count(&ev, "auth_ok"), 1, "{ev:#?}");
    assert_eq!(
        results,
        [PAM_SUCCESS, PAM_SUCCESS, PAM_AUTH_ERR],
        "accepted, accepted again after the failover (the window), then a replay"
    );
}

/// Issue 26, the replay window closed: with `wait_replicas = 1` the same
/// login is denied (no replica acknowledged the write within the budget:
/// `store_unavailable reason=replicas`), so the code is accepted once at
/// most: once on the promoted replica, where it was never written, then
/// never again.
#[test]
fn with_wait_replicas_1_a_code_is_accepted_at_most_once_across_the_failover() {
    let (ev, results) = a_login_during_a_partition_then_a_failover(
        "snr-win1",
        "ts-snr-win1",
        "wait_replicas = 1",
        &[],
    );
    assert_eq!(count(&ev, "auth_ok"), 0, "{ev:#?}");
    assert!(
        reasons(&ev).contains(&"store_unavailable:replicas".to_string()),
        "{ev:#?}"
    );
    assert_eq!(
        results,
        [PAM_AUTH_ERR, PAM_SUCCESS, PAM_AUTH_ERR],
        "denied (unacknowledged), then accepted once on the promoted replica, then a replay"
    );
}

/// pam_twostep(8)'s advice for the servers, `min-replicas-to-write 1`,
/// closes the same window from the server's side, without `wait_replicas`:
/// a primary with no replica connected refuses the login's write, so the
/// code is accepted once at most.
#[test]
fn min_replicas_to_write_refuses_a_login_during_a_partition() {
    let (ev, results) = a_login_during_a_partition_then_a_failover(
        "snr-minrep",
        "ts-snr-minrep",
        "wait_replicas = 0",
        &[
            "--min-replicas-to-write",
            "1",
            "--min-replicas-max-lag",
            "10",
        ],
    );
    assert_eq!(count(&ev, "auth_ok"), 0, "{ev:#?}");
    assert!(
        reasons(&ev).contains(&"auth_fail:store".to_string()),
        "{:?}\n{ev:#?}",
        reasons(&ev)
    );
    assert_eq!(
        results,
        [PAM_AUTH_ERR, PAM_SUCCESS, PAM_AUTH_ERR],
        "refused (NOREPLICAS), then accepted once on the promoted replica, then a replay"
    );
}

fn median_and_max(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[v.len() - 1])
}

/// The figures of issue 26 (docs/fleet.md), not a check: N unprovoked
/// failovers (TWOSTEP_SENTINEL_RUNS, default 5) for each of
/// `wait_replicas` 0 and 1. Each: a login with a code, the primary
/// SIGKILLed as soon as the login has returned, then the time from the kill
/// to the first successful login (another user), and whether the code
/// accepted just before the kill is accepted again on the promoted
/// replica (the replay window, with replication intact).
///
///   cargo test --test sentinel -- --ignored --nocapture measure
#[test]
#[ignore]
fn measure_the_failover_and_the_replay_window() {
    let runs: usize = std::env::var("TWOSTEP_SENTINEL_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let (u, v) = ("ts-snr-measure", "ts-snr-measure2");
    ensure_user(u, None);
    ensure_user(v, None);
    let mut report = Vec::new();
    for wait in [0, 1] {
        let mut times = Vec::new();
        let mut replays = 0;
        let mut accepted = 0;
        for i in 0..runs {
            let name = format!("snr-m{wait}-{i}");
            let mut rig = SentinelRig::start(&name);
            let store = rig.store_section(&name, &format!("wait_replicas = {wait}"));
            let mut a = host(&name, &store, "");
            a.enroll(u, SECRET);
            a.enroll(v, SECRET);
            fresh_step(20);
            let code = oath_code(SECRET, 0);
            let ok = a.login(u, &code).code == PAM_SUCCESS;
            let (old, killed) = rig.kill_primary();
            let seen = logins_through_the_failover(&rig, &mut a, v, old, killed);
            let took = seen.first_login;
            let replayed = a.login(u, &code).code == PAM_SUCCESS;
            eprintln!(
                "wait_replicas={wait} run {i}: accepted before the kill {ok}, {seen:?}, replayed {replayed}, sentinels now {:?}",
                rig.named_primaries()
            );
            accepted += usize::from(ok);
            replays += usize::from(ok && replayed);
            times.push(took);
        }
        let (median, max) = median_and_max(times);
        report.push(format!(
            "wait_replicas={wait}: {runs} failovers; kill -9 to the first login: median {median:.2?}, max {max:.2?}; codes accepted just before the kill {accepted}/{runs}, accepted again after it {replays}/{accepted}"
        ));
    }
    eprintln!("\n{}", report.join("\n"));
}

/// One sentinel whose view is stale (it still names a primary that is gone:
/// cut off from the others during a failover, or restarted from an old
/// config) must not stop logins while the other sentinels name the live
/// primary: Sentinel runs three so that one may be wrong. Here the stale
/// one is first in store.url, so it is asked first.
#[test]
fn a_sentinel_naming_a_dead_primary_does_not_stop_logins() {
    let u = "ts-snr-stale";
    ensure_user(u, None);
    let mut rig = SentinelRig::start("snr-stale");
    let good = rig.sentinel_ports();
    let stale = rig.add_sentinel_naming(sentinel::dead_port());
    let url = rig.url_of(&[&[stale][..], &good].concat());
    let store = rig.store_section_for(&url, "snr-stale", "timeout = \"500ms\"");
    let mut a = host("snr-stale", &store, "");
    a.enroll(u, SECRET);
    a.events();
    fresh_step(5);
    let l = a.login(u, &oath_code(SECRET, 0));
    let ev = a.module_events();
    assert_eq!(
        l.code,
        PAM_SUCCESS,
        "denied while the other sentinels name the live primary: {:?}\n{ev:#?}",
        reasons(&ev)
    );
}
