//! Several authenticators per user (INTERFACE.md, "Several authenticators")
//! through the real libpam, real users and oathtool's codes, with the
//! secret files written as an administrator's configuration management
//! writes them (TOML, `[[authenticator]]`, root's, 0600): a code from each
//! logs in and the record names it, replay is refused per authenticator,
//! a file of the old form is `default` and keeps its step when it gains a
//! second, a removed one's codes fail, 8 log in and 9 are refused, one
//! answer (`preauth single`), the lost-device path with two devices (the
//! mail delivered by the real exim4), and a fleet on a private
//! redis-server: the replay step of each authenticator fleet-wide, at the
//! same store round trips as one authenticator.

mod common;
use common::mail::{lost_device_rig, replace_lost_device, write_secret};
use common::redis::{Redis, store_section, unix_url};
use common::*;
use pam_twostep::config::TotpParams;
use pam_twostep::files::secret::{self, SecretFile, devices};
use std::io::BufRead;
use std::time::Duration;

/// Enough failures allowed that no test here locks its user.
const TIERS: &str = "[lockout]\ntiers = [{failures = 100, lock = \"1m\"}]";
const PASSWORD: &str = "several devices 7";

/// The `i`-th test authenticator's secret (160 bits, base32), none of them
/// common::SECRET.
fn key(i: u8) -> String {
    secret::encode_base32(&[0x40 + i; 20]).to_string()
}

/// A secret file of named authenticators, as configuration management
/// writes it.
fn list_file(devices: &[(&str, &str)], extra: &str) -> String {
    let mut text = extra.to_string();
    for (name, secret) in devices {
        text.push_str(&format!(
            "\n[[authenticator]]\nname = \"{name}\"\nsecret = \"{secret}\"\ncreated = \"2026-12-01T10:00:00Z\"\n"
        ));
    }
    text
}

/// A file of two authenticators, `phone` and `tablet`, after `extra`.
fn two(phone: &str, tablet: &str, extra: &str) -> String {
    list_file(&[("phone", phone), ("tablet", tablet)], extra)
}

fn rig(name: &str, user: &str) -> Rig {
    ensure_user(user, None);
    Rig::new(name, TIERS)
}

/// A rig whose `user` has two authenticators, `phone` and `tablet`, of
/// these [`key`]s.
fn two_device_rig(name: &str, user: &str, keys: (u8, u8)) -> (Rig, String, String) {
    let rig = rig(name, user);
    let (phone, tablet) = (key(keys.0), key(keys.1));
    write_secret(&rig, user, &two(&phone, &tablet, ""));
    (rig, phone, tablet)
}

/// Every code of `secret`'s window (skew 1) around the step at `t`.
fn window(secret: &str, t: u64) -> Vec<String> {
    [t - 30, t, t + 30]
        .iter()
        .map(|&s| code_at(secret, s))
        .collect()
}

/// Runs `f` with the start of the current step until the step is the same
/// after `f` as before it and `f` says its codes were fit (`Some`): the
/// codes `f` computes for that step are then all of one step, whatever the
/// time the logins took. `f` may run again at a later step, so it writes
/// the files it changes first.
fn within_one_step<T>(mut f: impl FnMut(u64) -> Option<T>) -> T {
    for _ in 0..5 {
        fresh_step(10);
        let step = now() / 30;
        let result = f(step * 30);
        match result {
            Some(r) if now() / 30 == step => return r,
            _ => eprintln!("the step changed or codes collided; again at the next step"),
        }
        std::thread::sleep(Duration::from_secs(30 - now() % 30));
    }
    panic!("five steps in a row did not fit");
}

/// Whether no code of `codes` is another's: a collision (about 1 in 10^5
/// per pair and window) would make the test judge the wrong authenticator.
fn distinct(codes: &[&str]) -> bool {
    let set: std::collections::BTreeSet<&&str> = codes.iter().collect();
    set.len() == codes.len()
}

/// The only record of a login, which must be `auth_ok`: its `device`.
fn accepted(rig: &mut Rig, user: &str, code: &str) -> String {
    let login = rig.login(user, code);
    assert_eq!(login.code, PAM_SUCCESS, "{}", login.out);
    let ev = rig.module_events();
    assert_eq!(ev.len(), 1, "{ev:#?}");
    assert_eq!(ev[0].event(), "auth_ok", "{ev:#?}");
    assert_eq!(
        ev[0].keys(),
        [
            "event", "user", "service", "rhost", "tty", "method", "device"
        ]
    );
    assert_eq!(ev[0].get("method"), Some("totp"));
    assert!(!ev[0].raw.contains(code), "{}", ev[0].raw);
    ev[0].get("device").unwrap().to_string()
}

/// A login that must be denied after one prompt: its `auth_fail` record.
fn refused(rig: &mut Rig, user: &str, code: &str) -> Event {
    let login = rig.login(user, code);
    assert_eq!(login.code, PAM_AUTH_ERR, "{}", login.out);
    assert_eq!(login.prompts(), 1, "{}", login.out);
    let ev = rig.module_events();
    assert_eq!(count(&ev, "auth_ok"), 0, "{ev:#?}");
    let fail = ev
        .iter()
        .find(|e| e.event() == "auth_fail")
        .unwrap_or_else(|| panic!("no auth_fail: {ev:#?}"))
        .clone();
    assert!(!fail.raw.contains(code), "{}", fail.raw);
    fail
}

fn reason(ev: &Event) -> &str {
    ev.get("reason").unwrap_or("")
}

#[test]
fn two_authenticators_each_logs_in_and_replay_is_refused_per_authenticator() {
    let u = "ts-dvl-two";
    let (mut rig, phone, tablet) = two_device_rig("dvl-two", u, (1, 2));
    rig.events();
    within_one_step(|t| {
        let (a, b) = (code_at(&phone, t), code_at(&tablet, t));
        if !distinct(&[&a, &b]) {
            return None;
        }
        assert_eq!(accepted(&mut rig, u, &a), "phone");
        assert_eq!(reason(&refused(&mut rig, u, &a)), "replay", "phone again");
        // The tablet's code of the very step the phone used: not a replay.
        assert_eq!(accepted(&mut rig, u, &b), "tablet");
        assert_eq!(reason(&refused(&mut rig, u, &b)), "replay", "tablet again");
        assert_eq!(reason(&refused(&mut rig, u, &a)), "replay", "phone still");
        Some(())
    });
    // A later step of either is good again, once.
    within_one_step(|t| {
        let b = code_at(&tablet, t + 30);
        assert_eq!(accepted(&mut rig, u, &b), "tablet");
        assert_eq!(reason(&refused(&mut rig, u, &b)), "replay");
        Some(())
    });
}

#[test]
fn a_file_of_the_old_form_is_default_and_keeps_its_step_when_it_gains_a_second() {
    let u = "ts-dvl-old";
    let mut rig = rig("dvl-old", u);
    let tablet = key(3);
    let old = format!("secret = \"{SECRET}\"\ncreated = \"2026-01-01T00:00:00Z\"\n");
    rig.events();
    within_one_step(|t| {
        let (first, second) = (code_at(SECRET, t), code_at(&tablet, t));
        if !distinct(&[&first, &second]) {
            return None;
        }
        write_secret(&rig, u, &old);
        let _ = std::fs::remove_file(rig.state_path(u));
        assert_eq!(accepted(&mut rig, u, &first), "default");
        // What an earlier version writes and reads: no slot of the new form.
        let magics = rig.slot_magics(u);
        assert!(magics.iter().any(|m| m == "TWOSTEP5"), "{magics:?}");
        assert!(magics.iter().all(|m| m != "TWOSTEP6"), "{magics:?}");
        // The file gains a tablet, as `twostep enroll --add` makes it
        // (secret::devices::add): the old secret becomes `default`.
        let file = SecretFile::from_toml(&old).unwrap();
        let entry = devices::Entry {
            name: "tablet".into(),
            secret: tablet.clone().into(),
            digits: None,
            period: None,
            algorithm: None,
            created: Some("2026-12-02T07:00:00Z".into()),
        };
        let text = devices::add(&file, entry).unwrap().to_toml();
        assert!(
            text.contains("[[authenticator]]\nname = \"default\"")
                && !text.split("[[").next().unwrap().contains("secret"),
            "{}",
            *text
        );
        write_secret(&rig, u, &text);
        // The step the old form used is default's still: its code is spent.
        assert_eq!(reason(&refused(&mut rig, u, &first)), "replay");
        assert_eq!(accepted(&mut rig, u, &second), "tablet");
        assert_eq!(reason(&refused(&mut rig, u, &first)), "replay");
        assert_eq!(reason(&refused(&mut rig, u, &second)), "replay");
        Some(())
    });
    // The tablet's step needed the new form of slot.
    assert!(rig.slot_magics(u).iter().any(|m| m == "TWOSTEP6"));
}

#[test]
fn a_removed_authenticators_codes_fail_and_the_others_work() {
    let u = "ts-dvl-rm";
    let (mut rig, phone, tablet) = two_device_rig("dvl-rm", u, (4, 5));
    rig.events();
    within_one_step(|t| {
        let phone_codes = window(&phone, t);
        let tablet_codes = window(&tablet, t);
        let all: Vec<&str> = phone_codes
            .iter()
            .chain(&tablet_codes)
            .map(String::as_str)
            .collect();
        if !distinct(&all) {
            return None;
        }
        write_secret(&rig, u, &two(&phone, &tablet, ""));
        assert_eq!(accepted(&mut rig, u, &phone_codes[1]), "phone");
        // Configuration management takes the phone out.
        write_secret(&rig, u, &list_file(&[("tablet", &tablet)], ""));
        // Its codes of the whole window, the one it used among them: no
        // authenticator has them now, so not even a replay.
        for code in &phone_codes {
            let fail = refused(&mut rig, u, code);
            assert_eq!(reason(&fail), "bad_code", "{fail:?}");
        }
        assert_eq!(accepted(&mut rig, u, &tablet_codes[1]), "tablet");
        Some(())
    });
}

#[test]
fn eight_authenticators_log_in_and_a_ninth_is_refused_with_the_reason() {
    let u = "ts-dvl-eight";
    let mut rig = rig("dvl-eight", u);
    let keys: Vec<String> = (10..19).map(key).collect();
    let named: Vec<(String, &str)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (format!("d{i}"), k.as_str()))
        .collect();
    let entries = |n: usize| -> Vec<(&str, &str)> {
        named[..n]
            .iter()
            .map(|(name, k)| (name.as_str(), *k))
            .collect()
    };
    write_secret(&rig, u, &list_file(&entries(8), ""));
    rig.events();
    within_one_step(|t| {
        let windows: Vec<Vec<String>> = keys[..8].iter().map(|k| window(k, t)).collect();
        let all: Vec<&str> = windows.iter().flatten().map(String::as_str).collect();
        if !distinct(&all) {
            return None;
        }
        assert_eq!(accepted(&mut rig, u, &windows[7][1]), "d7");
        assert_eq!(accepted(&mut rig, u, &windows[0][1]), "d0");
        Some(())
    });

    // Nine: the file is refused whole, the login denied, the log says why.
    write_secret(&rig, u, &list_file(&entries(9), ""));
    fresh_step(5);
    for k in [&keys[0], &keys[8]] {
        let fail = refused(&mut rig, u, &oath_code(k, 0));
        assert_eq!(reason(&fail), "bad_secret_file", "{fail:?}");
        let detail = fail.get("detail").unwrap_or("");
        assert!(
            detail.contains("9 authenticators; at most 8 are allowed"),
            "{detail}"
        );
        assert!(keys.iter().all(|k| !fail.raw.contains(k.as_str())));
    }
}

#[test]
fn one_answer_with_the_second_authenticators_code() {
    let u = "ts-dvl-single";
    ensure_user(u, Some(PASSWORD));
    let mut rig = Rig::new("dvl-single", TIERS);
    rig.service("single", &single_stack(&module(), &rig.config));
    let (phone, tablet) = (key(20), key(21));
    write_secret(&rig, u, &two(&phone, &tablet, ""));
    rig.events();
    let answer = |rig: &Rig, text: &str| {
        rig.login_with(
            "single",
            u,
            &[text],
            &[("rhost", "198.51.100.24"), ("tty", "ssh")],
        )
    };
    within_one_step(|t| {
        let code = code_at(&tablet, t);
        if window(&phone, t).contains(&code) {
            return None;
        }
        let l = answer(&rig, &format!("{PASSWORD}{code}"));
        assert_eq!(l.code, PAM_SUCCESS, "{}", l.out);
        assert_eq!(l.prompts(), 1, "one question: {}", l.out);
        let ev = rig.module_events();
        let ok: Vec<&Event> = ev.iter().filter(|e| e.event() == "auth_ok").collect();
        assert_eq!(ok.len(), 1, "{ev:#?}");
        assert_eq!(ok[0].get("device"), Some("tablet"), "{ev:#?}");
        // The same answer again: the tablet's step is spent.
        let again = answer(&rig, &format!("{PASSWORD}{code}"));
        assert_eq!(again.code, PAM_AUTH_ERR, "{}", again.out);
        let ev = rig.module_events();
        let fail = ev.iter().find(|e| e.event() == "auth_fail").unwrap();
        assert_eq!(reason(fail), "replay", "{ev:#?}");
        // The phone's code of that step is its own.
        let l = answer(&rig, &format!("{PASSWORD}{}", code_at(&phone, t)));
        assert_eq!(l.code, PAM_SUCCESS, "{}", l.out);
        let ev = rig.module_events();
        let ok = ev.iter().find(|e| e.event() == "auth_ok").unwrap();
        assert_eq!(ok.get("device"), Some("phone"), "{ev:#?}");
        Some(())
    });
}

/// The lost-device path replaces the whole file with one new authenticator:
/// the user cannot vouch for either old one (pam_twostep(8), "Lost
/// device").
#[test]
fn a_lost_device_with_two_authenticators_leaves_one_and_both_old_ones_fail() {
    let u = "ts-dvl-lost";
    let (mut rig, issuer) = lost_device_rig("dvl-lost", u, TIERS);
    let (phone, tablet) = (key(30), key(31));
    write_secret(
        &rig,
        u,
        &two(&phone, &tablet, &format!("email = \"{u}@localhost\"\n")),
    );
    rig.events();
    let (login, new_secret) = replace_lost_device(&rig, u, &issuer);
    assert!(new_secret != phone && new_secret != tablet);
    assert_eq!(login.code, PAM_SUCCESS, "{}", login.out);
    let ev = rig.module_events();
    assert_eq!(count(&ev, "lost_device"), 1, "{ev:#?}");

    // One authenticator left, the new app's; the address kept.
    let text = std::fs::read_to_string(rig.secret_path(u)).unwrap();
    let file = SecretFile::from_toml(&text).unwrap();
    assert_eq!(devices::list(&file).len(), 1, "{file:?}");
    let now_held = secret::parse(&text, &TotpParams::default()).unwrap();
    assert_eq!(now_held.devices.len(), 1);
    assert_eq!(
        now_held.email.map(|e| e.to_string()),
        Some(format!("{u}@localhost"))
    );
    assert!(!text.contains(&phone) && !text.contains(&tablet));

    // Neither old app's codes log in, in the whole window.
    within_one_step(|t| {
        let new = window(&new_secret, t);
        let old: Vec<String> = window(&phone, t)
            .into_iter()
            .chain(window(&tablet, t))
            .collect();
        if old.iter().any(|c| new.contains(c)) {
            return None;
        }
        for code in &old {
            assert_eq!(reason(&refused(&mut rig, u, code)), "bad_code");
        }
        Some(())
    });
    fresh_step(5);
    let next = oath_code(&new_secret, 1);
    assert_eq!(accepted(&mut rig, u, &next), "default");
}

// ---- the fleet ------------------------------------------------------------

#[test]
fn each_authenticators_step_is_fleet_wide() {
    let u = "ts-dvl-fleet";
    ensure_user(u, None);
    let redis = Redis::start("dvl-fleet", &[]);
    let store = store_section(&redis, &unix_url(&redis), "dvl-fleet", "");
    let mut one = Rig::new("dvl-fleet-1", &format!("{TIERS}\n{store}"));
    let mut two = Rig::new("dvl-fleet-2", &format!("{TIERS}\n{store}"));
    let (a, b) = (key(40), key(41));
    let file = list_file(&[("a", &a), ("b", &b)], "");
    for h in [&one, &two] {
        write_secret(h, u, &file);
    }
    one.events();
    two.events();
    within_one_step(|t| {
        let (code_a, code_b) = (code_at(&a, t), code_at(&b, t));
        if !distinct(&[&code_a, &code_b]) {
            return None;
        }
        assert_eq!(accepted(&mut one, u, &code_a), "a");
        assert_eq!(
            reason(&refused(&mut two, u, &code_a)),
            "replay",
            "A's code again, on host 2"
        );
        assert_eq!(accepted(&mut two, u, &code_b), "b");
        assert_eq!(
            reason(&refused(&mut one, u, &code_b)),
            "replay",
            "B's code again, on host 1"
        );
        Some(())
    });
    // Nothing of it went to either host's state_dir: the store holds it.
    for h in [&one, &two] {
        assert!(!h.state_path(u).exists());
    }
    let ds = redis.cli(&["HGET", &format!("twostep:dvl-fleet:{{{u}}}"), "ds"]);
    assert_eq!(ds.trim().matches('=').count(), 2, "{ds:?}");
}

/// What the store's MONITOR showed during `f`: the commands hosts sent
/// (each a round trip), and those the scripts ran inside the server.
struct Seen {
    sent: Vec<String>,
    in_scripts: usize,
}

fn monitor(redis: &Redis, f: impl FnOnce()) -> Seen {
    let mut mon = std::process::Command::new("redis-cli")
        .arg("-s")
        .arg(&redis.socket)
        .arg("monitor")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("redis-cli");
    let mut out = std::io::BufReader::new(mon.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert_eq!(first.trim(), "OK", "MONITOR did not start");
    // MONITOR shows every command in the order the server ran it: once a
    // marker sent after `f` shows, everything `f` caused has.
    const MARKER: &str = "twostep-test-end-of-monitor";
    let f_and_marker = std::thread::scope(|s| {
        let reader = s.spawn(move || {
            let mut lines = Vec::new();
            for line in out.lines().map_while(Result::ok) {
                if line.contains(MARKER) {
                    return Some(lines);
                }
                lines.push(line);
            }
            None
        });
        f();
        redis.cli(&["ECHO", MARKER]);
        reader.join().unwrap()
    });
    stop_child(&mut mon);
    let lines = f_and_marker.expect("redis-cli monitor ended before the marker");
    let mut seen = Seen {
        sent: Vec::new(),
        in_scripts: 0,
    };
    for line in &lines {
        let Some((client, command)) = line
            .split_once(" [")
            .and_then(|(_, rest)| rest.split_once("] \""))
        else {
            continue;
        };
        let name = command.split('"').next().unwrap().to_ascii_lowercase();
        if client.ends_with(" lua") {
            seen.in_scripts += 1;
        } else if name != "echo" {
            seen.sent.push(name);
        }
    }
    seen
}

#[test]
fn a_login_costs_the_same_store_round_trips_with_one_two_or_eight_authenticators() {
    let users = ["ts-dvl-rt1", "ts-dvl-rt2", "ts-dvl-rt8"];
    for u in users {
        ensure_user(u, None);
    }
    let redis = Redis::start("dvl-rt", &[]);
    let store = store_section(&redis, &unix_url(&redis), "dvl-rt", "");
    let mut h = Rig::new("dvl-rt", &format!("{TIERS}\n{store}"));
    let keys: Vec<String> = (50..58).map(key).collect();
    let names: Vec<String> = (0..8).map(|i| format!("d{i}")).collect();
    let list = |n: usize| -> String {
        let entries: Vec<(&str, &str)> = names[..n]
            .iter()
            .zip(&keys)
            .map(|(n, k)| (n.as_str(), k.as_str()))
            .collect();
        list_file(&entries, "")
    };
    write_secret(&h, users[0], &format!("secret = \"{}\"\n", keys[0]));
    write_secret(&h, users[1], &list(2));
    write_secret(&h, users[2], &list(8));
    // Every script loaded into the server once (a host sends EVAL for one
    // the server lacks), by another user's success and failure.
    let warm = "ts-dvl-rtw";
    ensure_user(warm, None);
    write_secret(&h, warm, &format!("secret = \"{SECRET}\"\n"));
    fresh_step(5);
    assert_eq!(h.login(warm, &oath_code(SECRET, 0)).code, PAM_SUCCESS);
    assert_eq!(h.login(warm, &oath_code(SECRET, 0)).code, PAM_AUTH_ERR);
    h.events();
    // Each user's last authenticator, the one judged last: a success, then
    // the same code again (a replay).
    let mut cost = Vec::new();
    within_one_step(|t| {
        cost.clear();
        h.events();
        for (u, n) in users.iter().zip([1usize, 2, 8]) {
            let code = code_at(&keys[n - 1], t);
            let others: Vec<String> = keys[..n - 1].iter().flat_map(|k| window(k, t)).collect();
            if others.contains(&code) {
                return None;
            }
            let ok = monitor(&redis, || {
                let l = h.login(u, &code);
                assert_eq!(l.code, PAM_SUCCESS, "{u}: {}", l.out);
            });
            let replay = monitor(&redis, || {
                let l = h.login(u, &code);
                assert_eq!(l.code, PAM_AUTH_ERR, "{u}: {}", l.out);
            });
            cost.push((n, ok, replay));
        }
        Some(())
    });
    let ev = h.module_events();
    assert_eq!(count(&ev, "auth_ok"), 3, "{ev:#?}");
    for (n, ok, replay) in &cost {
        eprintln!(
            "{n} authenticator(s): success {} round trips {:?} ({} commands in scripts); \
             replay {} {:?} ({} in scripts)",
            ok.sent.len(),
            ok.sent,
            ok.in_scripts,
            replay.sent.len(),
            replay.sent,
            replay.in_scripts
        );
    }
    let (_, one_ok, one_replay) = &cost[0];
    assert!(!one_ok.sent.is_empty() && !one_replay.sent.is_empty());
    for (n, ok, replay) in &cost[1..] {
        assert_eq!(ok.sent, one_ok.sent, "a success with {n} authenticators");
        assert_eq!(
            replay.sent, one_replay.sent,
            "a replay with {n} authenticators"
        );
    }
}
