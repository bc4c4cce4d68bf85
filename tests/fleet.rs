//! The fleet: two or more "hosts" (PAM services, each with its own config,
//! its own copy of the secret files and its own state_dir) sharing one
//! private redis-server, through the real libpam. A code accepted on one
//! host is refused on another; failures on several hosts add up to one
//! lock; an unlock anywhere frees the user everywhere; 40 parallel wrong
//! attempts spread over the hosts are judged exactly the allowance; a
//! stopped, killed, wrongly authenticated or under-privileged store denies
//! in bounded time, with the records; `on_unavailable = "local"` falls back;
//! TLS with a test CA; the email-code throttle holds across hosts; kill -9
//! in the middle of logins leaves the store whole.

mod common;
use common::redis::{self, Redis, store_section, tcp_url, unix_url};
use common::*;
use std::io::Write;
use std::time::{Duration, Instant};

/// A host: a rig whose config points at the store.
fn host(name: &str, store: &str, extra: &str) -> Rig {
    Rig::new(name, &format!("{extra}\n{store}"))
}

fn count_all(hosts: &mut [&mut Rig], event: &str) -> usize {
    hosts
        .iter_mut()
        .map(|h| count(&h.module_events(), event))
        .sum()
}

#[test]
fn a_code_accepted_on_one_host_is_refused_on_another() {
    let u = "ts-fleet-replay";
    ensure_user(u, None);
    let redis = Redis::start("replay", &[]);
    let store = store_section(&redis, &unix_url(&redis), "replay", "");
    let mut a = host("fleet-replay-a", &store, "");
    let mut b = host("fleet-replay-b", &store, "");
    a.enroll(u, SECRET);
    b.enroll(u, SECRET);
    a.events();
    b.events();
    fresh_step(5);
    let code = oath_code(SECRET, 0);
    assert_eq!(a.login(u, &code).code, PAM_SUCCESS);
    let on_b = b.login(u, &code);
    assert_eq!(on_b.code, PAM_AUTH_ERR, "{}", on_b.out);
    let ev = b.module_events();
    let fail = ev.iter().find(|e| e.event() == "auth_fail").unwrap();
    assert_eq!(fail.get("reason"), Some("replay"), "{ev:#?}");
}

#[test]
fn failures_on_several_hosts_add_up_and_an_unlock_anywhere_frees_everywhere() {
    let u = "ts-fleet-lock";
    ensure_user(u, None);
    let redis = Redis::start("lock", &[]);
    let store = store_section(&redis, &tcp_url(&redis), "lock", "");
    let tiers = "[lockout]\ntiers = [{failures = 3, lock = \"1h\"}]";
    let mut a = host("fleet-lock-a", &store, tiers);
    let mut b = host("fleet-lock-b", &store, tiers);
    a.enroll(u, SECRET);
    b.enroll(u, SECRET);
    a.events();
    b.events();
    for h in [&a, &b, &a] {
        assert_eq!(h.login(u, "000000").code, PAM_AUTH_ERR);
    }
    // Locked everywhere, as `twostep status` on either host says.
    for h in [&a, &b] {
        let st = h.status_json(u);
        assert_eq!(
            (st["locked"].as_bool(), st["failures"].as_u64()),
            (Some(true), Some(3)),
            "{st}"
        );
    }
    fresh_step(5);
    let l = b.login(u, &oath_code(SECRET, 0));
    assert_eq!(l.code, PAM_AUTH_ERR);
    assert!(
        l.errors().iter().any(|e| e.contains("locked until")),
        "{}",
        l.out
    );
    assert_eq!(count_all(&mut [&mut a, &mut b], "locked"), 1);
    // Unlocked through host A, the user logs in on host B.
    assert!(a.cli(&["unlock", u]).status.success());
    fresh_step(5);
    assert_eq!(b.login(u, &oath_code(SECRET, 0)).code, PAM_SUCCESS);
}

#[test]
fn parallel_attempts_over_the_hosts_are_judged_exactly_the_allowance() {
    let u = "ts-fleet-par";
    ensure_user(u, None);
    let redis = Redis::start("par", &[]);
    let store = store_section(&redis, &unix_url(&redis), "par", "");
    let mut a = host("fleet-par-a", &store, "");
    let mut b = host("fleet-par-b", &store, "");
    a.enroll(u, SECRET);
    b.enroll(u, SECRET);
    a.events();
    b.events();
    fresh_step(8);
    let wrong = format!(
        "{:06}",
        (oath_code(SECRET, 0).parse::<u32>().unwrap() + 3) % 1_000_000
    );
    // All 40 wait at the prompt first, then answer at once.
    let mut children: Vec<_> = (0..40)
        .map(|i| {
            let h = if i % 2 == 0 { &a } else { &b };
            h.spawn_login("twostep", u, &[("rhost", "192.0.2.40")])
        })
        .collect();
    std::thread::sleep(Duration::from_millis(700));
    let stdins: Vec<_> = children
        .iter_mut()
        .map(|c| c.stdin.take().unwrap())
        .collect();
    for mut s in stdins {
        let _ = writeln!(s, "{wrong}");
    }
    for c in children {
        assert_eq!(
            c.wait_with_output().unwrap().status.code(),
            Some(PAM_AUTH_ERR)
        );
    }
    let mut hosts = [&mut a, &mut b];
    let ev: Vec<Event> = hosts.iter_mut().flat_map(|h| h.module_events()).collect();
    let (fails, denied) = (count(&ev, "auth_fail"), count(&ev, "lock_denied"));
    assert!(
        ev.iter()
            .filter(|e| e.event() == "auth_fail")
            .all(|e| e.get("reason") == Some("bad_code")),
        "{ev:#?}"
    );
    assert_eq!(
        (fails, denied),
        (5, 35),
        "judged exactly the first tier's allowance"
    );
    assert_eq!(a.status_json(u)["failures"], 5);
}

/// A login on `rig` that must be denied within `within`, and its records.
fn denied_in_time(rig: &mut Rig, user: &str, within: Duration) -> Vec<Event> {
    let start = Instant::now();
    let l = rig.login(user, &oath_code(SECRET, 0));
    let took = start.elapsed();
    assert_eq!(l.code, PAM_AUTH_ERR, "{}", l.out);
    assert!(took < within, "took {took:?}");
    rig.module_events()
}

fn store_failure(ev: &[Event]) -> (String, String) {
    let unavailable = ev
        .iter()
        .find(|e| e.event() == "store_unavailable")
        .unwrap_or_else(|| panic!("no store_unavailable in {ev:#?}"));
    let fail = ev
        .iter()
        .find(|e| e.event() == "auth_fail")
        .unwrap_or_else(|| panic!("no auth_fail in {ev:#?}"));
    assert_eq!(fail.get("reason"), Some("store"), "{ev:#?}");
    (
        unavailable.get("reason").unwrap().to_string(),
        unavailable.get("user").unwrap().to_string(),
    )
}

#[test]
fn an_unavailable_store_denies_in_bounded_time_with_the_records() {
    let u = "ts-fleet-down";
    ensure_user(u, None);
    let redis = Redis::start("down", &[]);
    // The timeout covers everything: connect, AUTH, the script.
    let store = store_section(&redis, &unix_url(&redis), "down", "timeout = \"300ms\"");
    let mut a = host("fleet-down", &store, "");
    a.enroll(u, SECRET);
    a.events();
    // Nothing shown at the prompt tells a store failure from a wrong code
    // until the answer: the read before the prompt fails first.
    let bound = Duration::from_secs(3);
    redis.signal("-STOP");
    let ev = denied_in_time(&mut a, u, bound);
    assert_eq!(store_failure(&ev), ("timeout".to_string(), u.to_string()));
    redis.signal("-CONT");

    // A wrong password, an ACL without the scripts.
    for (user, password, reason) in [
        ("twostep-host", "not the password", "auth"),
        ("twostep-noeval", redis::PASSWORD, "refused"),
    ] {
        let path = redis.dir.join(format!("pw-{user}"));
        std::fs::write(&path, password).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        a.write_config(&format!(
            "[store]\nurl = \"{}\"\nuser = \"{user}\"\npassword_file = \"{}\"\nprefix = \"twostep:down:\"\n",
            unix_url(&redis),
            path.display()
        ));
        let ev = denied_in_time(&mut a, u, bound);
        assert_eq!(store_failure(&ev).0, reason, "{ev:#?}");
    }

    // Killed: nothing answers on the socket.
    a.write_config(&store);
    redis.signal("-KILL");
    std::thread::sleep(Duration::from_millis(200));
    let ev = denied_in_time(&mut a, u, bound);
    assert_eq!(store_failure(&ev).0, "connect");
}

#[test]
fn local_fallback_uses_state_dir_and_says_so() {
    let u = "ts-fleet-local";
    ensure_user(u, None);
    let redis = Redis::start("local", &[]);
    let store = store_section(
        &redis,
        &unix_url(&redis),
        "local",
        "on_unavailable = \"local\"",
    );
    let mut a = host("fleet-local", &store, "");
    a.enroll(u, SECRET);
    a.events();
    drop(redis);
    fresh_step(5);
    let l = a.login(u, &oath_code(SECRET, 0));
    assert_eq!(l.code, PAM_SUCCESS, "{}", l.out);
    let ev = a.module_events();
    let fell: Vec<_> = ev
        .iter()
        .filter(|e| e.event() == "store_unavailable")
        .collect();
    assert!(!fell.is_empty(), "{ev:#?}");
    assert!(
        fell.iter().all(|e| e.get("fallback") == Some("local")),
        "{ev:#?}"
    );
    assert!(
        redis::exists(&a.state_path(u)),
        "the state went to state_dir"
    );
}

#[test]
fn tls_with_a_test_ca() {
    let u = "ts-fleet-tls";
    ensure_user(u, None);
    let certs =
        std::path::PathBuf::from(format!("/tmp/twostep-fleet-certs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&certs);
    std::fs::create_dir_all(&certs).unwrap();
    redis::make_certs(&certs);
    let tls_port = redis::free_port();
    let c = |f: &str| certs.join(f).display().to_string();
    let redis = Redis::start(
        "tls",
        &[
            "--tls-port",
            &tls_port.to_string(),
            "--tls-cert-file",
            &c("server.crt"),
            "--tls-key-file",
            &c("server.key"),
            "--tls-ca-cert-file",
            &c("ca.crt"),
            "--tls-auth-clients",
            "no",
        ],
    );
    let url = format!("rediss://127.0.0.1:{tls_port}");
    let store = store_section(
        &redis,
        &url,
        "tls",
        &format!("ca_file = \"{}\"", c("ca.crt")),
    );
    let mut a = host("fleet-tls", &store, "");
    a.enroll(u, SECRET);
    a.events();
    fresh_step(5);
    let code = oath_code(SECRET, 0);
    assert_eq!(a.login(u, &code).code, PAM_SUCCESS);
    // The step is on the server: the same code is a replay.
    assert_eq!(a.login(u, &code).code, PAM_AUTH_ERR);
    let ev = a.module_events();
    assert_eq!(
        ev.iter()
            .find(|e| e.event() == "auth_fail")
            .unwrap()
            .get("reason"),
        Some("replay"),
        "{ev:#?}"
    );
    // Another CA: the server's certificate is refused.
    let store = store_section(
        &redis,
        &url,
        "tls",
        &format!("ca_file = \"{}\"", c("other-ca.crt")),
    );
    a.write_config(&store);
    let ev = denied_in_time(&mut a, u, Duration::from_secs(3));
    assert_eq!(store_failure(&ev).0, "tls");
    let _ = std::fs::remove_dir_all(&certs);
}

#[test]
fn the_email_throttle_holds_across_hosts() {
    let u = "tsfleet-mail";
    common::mail::ensure_mail_user(u);
    let _ = std::fs::remove_file(common::mail::mailbox(u));
    let redis = Redis::start("mail", &[]);
    let store = store_section(&redis, &unix_url(&redis), "mail", "");
    let extra =
        "[codes]\nresend_after = \"0s\"\nmax_per_hour = 2\n[email]\nfrom = \"twostep@localhost\"";
    let mut a = host("fleet-mail-a", &store, extra);
    let mut b = host("fleet-mail-b", &store, extra);
    for h in [&a, &b] {
        let path = h.secret_path(u);
        std::fs::write(
            &path,
            format!("secret = \"{SECRET}\"\nmethod = \"email\"\nemail = \"{u}@localhost\"\n"),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
    }
    a.events();
    b.events();
    for h in [&a, &b, &a] {
        assert_eq!(h.login(u, "").code, PAM_AUTH_ERR);
    }
    let sent = count_all(&mut [&mut a, &mut b], "code_sent");
    assert_eq!(sent, 2, "two sends in the hour, over both hosts");
    let ev = a.module_events();
    assert_eq!(count(&ev, "delivery_failed"), 0);
}

#[test]
fn kill_9_in_the_middle_of_logins_leaves_the_store_whole() {
    let u = "ts-fleet-kill";
    ensure_user(u, None);
    let redis = Redis::start("kill", &[]);
    let store = store_section(&redis, &unix_url(&redis), "kill", "");
    let tiers = "[lockout]\ntiers = [{failures = 1000, lock = \"1s\"}]";
    let mut a = host("fleet-kill", &store, tiers);
    a.enroll(u, SECRET);
    a.events();
    // Logins answering a wrong code, each killed after a different delay:
    // before, during and after its calls to the store.
    for i in 0..60u64 {
        let mut c = a.spawn_login("twostep", u, &[("rhost", "192.0.2.41")]);
        let _ = writeln!(c.stdin.take().unwrap(), "000000");
        std::thread::sleep(Duration::from_micros(200 * (i % 20)));
        let _ = c.kill();
        let _ = c.wait();
    }
    // Every count is whole: the state reads, its failures are those counted,
    // and a right code still logs in.
    let st = a.status_json(u);
    let failures = st["failures"].as_u64().unwrap();
    assert!(failures <= 60, "{st}");
    let counted = redis.cli(&["HGET", "twostep:kill:{ts-fleet-kill}", "f"]);
    assert_eq!(counted.trim().parse::<u64>().unwrap_or(0), failures);
    fresh_step(5);
    assert_eq!(a.login(u, &oath_code(SECRET, 0)).code, PAM_SUCCESS);
}

#[test]
fn check_reports_what_the_store_lacks() {
    let redis = Redis::start("check", &[]);
    let store = store_section(&redis, &unix_url(&redis), "check", "");
    let a = host("fleet-check", &store, "");
    let out = a.cli(&["check"]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The check key is gone again.
    assert_eq!(redis.cli(&["KEYS", "*check*"]).trim(), "");
    // A user whose ACL has no scripts, and a stopped server.
    let pw = redis.dir.join("pw-noeval");
    std::fs::write(&pw, redis::PASSWORD).unwrap();
    std::fs::set_permissions(&pw, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    a.write_config(&format!(
        "[store]\nurl = \"{}\"\nuser = \"twostep-noeval\"\npassword_file = \"{}\"\nprefix = \"twostep:check:\"\n",
        unix_url(&redis),
        pw.display()
    ));
    let out = a.cli(&["check"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(
        said.contains("store: counting an attempt") && said.contains("NOPERM"),
        "{said}"
    );
    a.write_config(&store);
    redis.signal("-STOP");
    let start = Instant::now();
    let out = a.cli(&["check"]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("did not answer in time"), "{said}");
    assert!(start.elapsed() < Duration::from_secs(3));
    redis.signal("-CONT");
}
