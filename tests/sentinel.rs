//! A fleet store with no single point of failure (issue 26): a primary, two
//! replicas and three real sentinels (tests/common/sentinel.rs), and hosts
//! (PAM services, each its own config and state_dir) that reach the
//! primary through the sentinels, through the real libpam. The primary is
//! SIGKILLed and a replica promoted by the sentinels' own vote; nothing of
//! ours is restarted.

mod common;
use common::sentinel::{self, SentinelRig, ask, ask_as, role};
use pam_twostep::store::valkey::resp::Reply;
use std::time::Duration;

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
