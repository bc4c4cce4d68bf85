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

/// Writes `user`'s secret file on `host` as an email user of
/// `user@localhost` (with `secret`, if given), root's, mode 0600.
fn email_user(host: &Rig, user: &str, secret: Option<&str>) {
    let path = host.secret_path(user);
    let key = secret
        .map(|s| format!("secret = \"{s}\"\n"))
        .unwrap_or_default();
    std::fs::write(
        &path,
        format!("{key}method = \"email\"\nemail = \"{user}@localhost\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
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
    let mut redis = Redis::start("local", &[]);
    let store = store_section(
        &redis,
        &unix_url(&redis),
        "local",
        "on_unavailable = \"local\"",
    );
    let mut a = host("fleet-local", &store, "");
    a.enroll(u, SECRET);
    a.events();
    // The server gone (its password file stays: a missing one is a
    // configuration fault, which denies rather than falling back).
    redis.kill();
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
    let tls = redis::tls_args(&certs, tls_port);
    let redis = Redis::start("tls", &tls.iter().map(String::as_str).collect::<Vec<_>>());
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
    // Issue 21, item 11: a certificate refused is no outage, and whoever
    // can get between host and store can cause one: even with
    // on_unavailable = "local" it denies rather than counting on this
    // host alone, where each host would allow the whole tier.
    let store = store_section(
        &redis,
        &url,
        "tls",
        &format!(
            "ca_file = \"{}\"\non_unavailable = \"local\"",
            c("other-ca.crt")
        ),
    );
    a.write_config(&store);
    let ev = denied_in_time(&mut a, u, Duration::from_secs(3));
    assert_eq!(store_failure(&ev).0, "tls");
    assert!(ev.iter().all(|e| e.get("fallback").is_none()), "{ev:#?}");
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
        email_user(h, u, Some(SECRET));
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
    // Issue 21, item 11: the socket is root's (unixsocketperm 700), so no
    // other local user can hold its connections; on loopback TCP any can.
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!said.contains("warning"), "{said}");
    a.write_config(&store_section(&redis, &tcp_url(&redis), "check", ""));
    let out = a.cli(&["check"]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("warning: store.url: any local user can connect to the store"),
        "{said}"
    );
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

/// Issue 21, item 5: a reservation that `preauth` made in the local
/// fallback (the store was slow then) must not stand in the shared store on
/// the next line: there the user's fleet-wide lock is checked as usual.
/// Without the store's name on the reservation, the store took a local
/// count of epoch 0 for its own (most accounts are at epoch 0 in both), and
/// a right code logged in during a fleet-wide lock.
#[test]
fn a_local_fallback_reservation_does_not_count_in_the_store() {
    let u = "ts-fleet-resv";
    let password = "resv pass-W0rd";
    ensure_user(u, Some(password));
    let redis = Redis::start("resv", &[]);
    let store = store_section(
        &redis,
        &unix_url(&redis),
        "resv",
        "on_unavailable = \"local\"\ntimeout = \"300ms\"",
    );
    let tiers = "[lockout]\ntiers = [{failures = 3, lock = \"1h\"}]";
    let mut a = host("fleet-resv", &store, tiers);
    a.enroll(u, SECRET);
    // Locked in the store, fleet-wide: three wrong codes.
    for _ in 0..3 {
        assert_eq!(a.login(u, "000000").code, PAM_AUTH_ERR);
    }
    assert_eq!(a.status_json(u)["locked"].as_bool(), Some(true));
    a.events();
    // preauth meets a stopped store and counts locally; the store is back
    // by the time the password has been typed.
    redis.signal("-STOP");
    let mut login = a.live_login("stack", u, &[("rhost", "192.0.2.42"), ("tty", "ssh")]);
    let shown = login.until_prompt();
    redis.signal("-CONT");
    assert!(shown.contains("PROMPT_"), "{shown}");
    login.answer(password);
    fresh_step(5);
    let shown = login.until_prompt();
    if shown.contains("PROMPT_") {
        login.answer(&oath_code(SECRET, 0));
    }
    let l = login.finish();
    assert_eq!(
        l.code, PAM_AUTH_ERR,
        "logged in during a fleet-wide lock: {}",
        l.out
    );
    let ev = a.module_events();
    assert_eq!(count(&ev, "auth_ok"), 0, "{ev:#?}");
    assert!(count(&ev, "lock_denied") >= 1, "{ev:#?}");
}

/// Issue 21, item 6: a sent code's expiry is the store's, kept in the
/// store's time; the store refuses it once past that, whatever the host's
/// clock says. Here the host's clock (libfaketime in the login) falls two
/// minutes behind between the send and the answer, typed after the code
/// expired: the host takes it for good, the store must not.
#[test]
fn a_sent_code_past_its_expiry_on_the_stores_clock_is_refused() {
    let u = "tsfleet-exp";
    common::mail::ensure_mail_user(u);
    let _ = std::fs::remove_file(common::mail::mailbox(u));
    let redis = Redis::start("exp", &[]);
    let store = store_section(&redis, &unix_url(&redis), "exp", "");
    let issuer = format!("fleet-exp-{}", std::process::id());
    let extra = format!(
        "issuer = \"{issuer}\"\n[codes]\nvalid = \"30s\"\nresend_after = \"10s\"\n[email]\nfrom = \"twostep@localhost\""
    );
    let mut a = host("fleet-exp", &store, &extra);
    email_user(&a, u, Some(SECRET));
    a.events();
    let offset = a.root.join("offset");
    let sent = Instant::now();
    let items = [("rhost", "192.0.2.43"), ("tty", "ssh")];
    let mut live = login_with_moving_clock(&a, u, &offset, &items);
    let shown = live.until_prompt();
    assert!(shown.contains("A code was sent"), "{shown}");
    let mbox = common::mail::mailbox(u);
    let code = common::mail::code_in(&common::mail::wait_for_messages(&mbox, &issuer, 1)[0]);
    std::fs::write(&offset, "-120\n").unwrap();
    std::thread::sleep(Duration::from_secs(32).saturating_sub(sent.elapsed()));
    live.answer(&code);
    let l = live.finish();
    assert_eq!(l.code, PAM_AUTH_ERR, "an expired code logged in: {}", l.out);
    let ev = a.module_events();
    let fail = ev.iter().find(|e| e.event() == "auth_fail").unwrap();
    assert_eq!(fail.get("reason"), Some("expired"), "{ev:#?}");
}

/// Issue 21, item 7: whoever reads the store (a dump, a backup, a replica)
/// must not get a sent code back by trying the million codes against its
/// hash. An email user whose secret file has no `secret` (the contract
/// allows it) had the hash unkeyed; now it is keyed with the host's key.
#[test]
fn a_sent_code_hash_in_the_store_does_not_give_the_code_back() {
    use pam_twostep::base::user::UserName;
    use pam_twostep::files::state::Purpose;
    use pam_twostep::rules::codes::keyed_hash;
    let u = "tsfleet-keyed";
    common::mail::ensure_mail_user(u);
    let _ = std::fs::remove_file(common::mail::mailbox(u));
    let redis = Redis::start("keyed", &[]);
    let store = store_section(&redis, &unix_url(&redis), "keyed", "");
    let issuer = format!("fleet-keyed-{}", std::process::id());
    let extra = format!("issuer = \"{issuer}\"\n[email]\nfrom = \"twostep@localhost\"");
    let a = host("fleet-keyed", &store, &extra);
    email_user(&a, u, None);
    let mut live = a.live_login("twostep", u, &[("rhost", "192.0.2.44"), ("tty", "ssh")]);
    assert!(live.until_prompt().contains("A code was sent"));
    let mbox = common::mail::mailbox(u);
    let code = common::mail::code_in(&common::mail::wait_for_messages(&mbox, &issuer, 1)[0]);
    // What a dump of the store holds: the hash, in hex.
    let stored = redis.cli(&["HGET", &format!("twostep:keyed:{{{u}}}"), "sh"]);
    let stored = stored.trim();
    assert_eq!(stored.len(), 64, "{stored:?}");
    let stored: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&stored[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let name = UserName::parse(u).unwrap();
    let found = (0..1_000_000u32).find(|n| {
        let mut digits = [b'0'; 6];
        let mut rest = *n;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        keyed_hash(b"", &name, Purpose::SignIn, &digits)[..] == stored[..]
    });
    assert_eq!(found, None, "the store's hash gave the code back");
    // The code itself still logs in.
    live.answer(&code);
    let l = live.finish();
    assert_eq!(l.code, PAM_SUCCESS, "{}", l.out);
    let key = a.secret_dir.join(".twostep-code-key");
    assert_eq!(std::fs::metadata(&key).unwrap().len(), 32);
    assert_eq!(mode_of(&key) & 0o777, 0o600);
}

/// Issue 21, item 8: with a shared store, a login that strikes off a used
/// recovery code writes the secret file under the same local lock that
/// `twostep recovery-codes` and `enroll` write it under, and reads it
/// again under that lock. Here the login is held at the argon2 gate (the
/// test holds every slot) after it has read the file; the administrator
/// replaces the codes meanwhile. Without the lock the login then wrote its
/// stale copy back: the old codes, but the one used, worked again.
#[test]
fn a_recovery_code_struck_off_in_fleet_mode_never_writes_back_an_old_file() {
    let u = "ts-fleet-strike";
    ensure_user(u, None);
    let redis = Redis::start("strike", &[]);
    let store = store_section(&redis, &unix_url(&redis), "strike", "");
    let a = host("fleet-strike", &store, "");
    let old = a.enroll_json_secret(u, SECRET, &["--force"]);
    let old_codes: Vec<String> = old["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    // Every argon2 slot taken: the login waits there, its copy read.
    let slots: Vec<std::fs::File> = (0..4)
        .map(|k| {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(a.state_dir.join(format!(".argon2-slot-{k}")))
                .unwrap();
            f.try_lock().unwrap();
            f
        })
        .collect();
    let mut login = a.spawn_login("twostep", u, &[("rhost", "192.0.2.45")]);
    writeln!(login.stdin.take().unwrap(), "{}", old_codes[0]).unwrap();
    std::thread::sleep(Duration::from_millis(800));
    // The administrator's new set, under the user's lock.
    let admin = a.cli_spawn(&["recovery-codes", u, "--json"]);
    std::thread::sleep(Duration::from_millis(800));
    drop(slots);
    let login = login.wait_with_output().unwrap();
    let admin = admin.wait_with_output().unwrap();
    assert!(
        admin.status.success(),
        "{}",
        String::from_utf8_lossy(&admin.stderr)
    );
    let new: serde_json::Value = serde_json::from_slice(&admin.stdout).unwrap();
    let new_codes = new["recovery_codes"].as_array().unwrap().len();
    assert_eq!(new_codes, 10);
    // Whichever came first, the file is the administrator's whole new set.
    let login_ok = login.status.code() == Some(PAM_SUCCESS);
    assert_eq!(
        a.stored_recovery_hashes(u).len(),
        10,
        "the old set came back (the login {} with an old code)",
        if login_ok { "succeeded" } else { "failed" }
    );
    // And no old code works any more.
    let l = a.login(u, &old_codes[1]);
    assert_eq!(
        l.code, PAM_AUTH_ERR,
        "an old recovery code still works: {}",
        l.out
    );
}

/// Issue 21, item 3, with a store: an enrollment's confirmation codes count
/// toward the user's hourly limit fleet-wide, and toward the address's.
#[test]
fn confirmation_codes_count_toward_the_fleet_wide_limits() {
    let (u, v) = ("tsfleet-conf", "tsfleet-conf2");
    common::mail::ensure_mail_user(u);
    ensure_user(v, None);
    let _ = std::fs::remove_file(common::mail::mailbox(u));
    let redis = Redis::start("conf", &[]);
    let store = store_section(&redis, &unix_url(&redis), "conf", "");
    let issuer = format!("fleet-conf-{}", std::process::id());
    let extra = format!(
        "issuer = \"{issuer}\"\n[codes]\nresend_after = \"0s\"\nmax_per_hour = 2\n[email]\nfrom = \"twostep@localhost\""
    );
    let a = host("fleet-conf-a", &store, &extra);
    let b = host("fleet-conf-b", &store, &extra);
    let address = format!("{u}@localhost");
    let abandon = |h: &Rig, user: &str| {
        let mut child = h.cli_spawn(&["enroll", user, "--method", "email", "--email", &address]);
        drop(child.stdin.take());
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    abandon(&a, u);
    abandon(&b, u);
    let third = abandon(&a, u);
    assert!(third.contains("codes.max_per_hour"), "{third}");
    // Another account, the same address: the address has had its two.
    let other = abandon(&b, v);
    assert!(other.contains("from any account"), "{other}");
    let mbox = common::mail::mailbox(u);
    common::mail::wait_for_messages(&mbox, &issuer, 2);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(common::mail::parsed_messages(&mbox, &issuer).len(), 2);
}
