//! Who is asked, through the real libpam: real groups (primary and
//! supplementary), PAM_RHOST as IPv4, IPv6, IPv4-mapped and host names,
//! trusted networks, the console, remembered sources with real expiry, and
//! enrollment at login, driven interactively: the test reads the secret
//! from the URI the module shows and answers with oathtool's code.

mod common;
use common::*;
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::{Duration, Instant};

// Group names: Debian's groupadd allows 32 characters.
const G_STAFF: &str = "ts-pol-staff";
const G_SVC: &str = "ts-pol-svc";
const G_SUDO: &str = "ts-pol-sudo";

fn login_from(rig: &Rig, user: &str, answer: &str, rhost: Option<&str>) -> Login {
    let mut items = vec![("tty", "pts/3")];
    if let Some(r) = rhost {
        items.push(("rhost", r));
    }
    rig.login_with("twostep", user, &[answer], &items)
}

/// Asserts a login was let through without a prompt, and logged as
/// `skipped` with exactly the contract's keys and `reason`.
fn assert_skipped(rig: &mut Rig, login: &Login, user: &str, reason: &str, what: &str) {
    assert_eq!(login.code, PAM_SUCCESS, "{what}: {}", login.out);
    assert_eq!(login.prompts(), 0, "{what}: not asked: {}", login.out);
    let events = rig.events();
    assert_eq!(events.len(), 1, "{what}: {events:#?}");
    let ev = &events[0];
    assert_eq!(ev.event(), "skipped", "{what}: {}", ev.raw);
    assert_eq!(ev.keys(), ["event", "user", "service", "rhost", "reason"]);
    assert_eq!(ev.get("user"), Some(user), "{what}");
    assert_eq!(ev.get("reason"), Some(reason), "{what}");
}

/// Asserts the login was asked for a code; returns its records.
fn assert_asked(rig: &mut Rig, login: &Login, what: &str) -> Vec<Event> {
    assert_eq!(login.prompts(), 1, "{what}: asked once: {}", login.out);
    assert!(
        login.out.starts_with("PROMPT_OFF: Verification code: "),
        "{what}: {}",
        login.out
    );
    rig.events()
}

/// Makes `group` the user's primary group.
fn set_primary_group(user: &str, group: &str) {
    let st = Command::new("usermod")
        .args(["-g", group, user])
        .status()
        .unwrap();
    assert!(st.success(), "usermod -g {group} {user}");
}

#[test]
fn groups_decide_who_is_asked() {
    let (staff, svc, prim, admin, plain, lazy) = (
        "ts-pol-staff1",
        "ts-pol-svc1",
        "ts-pol-prim1",
        "ts-pol-admin1",
        "ts-pol-plain1",
        "ts-pol-lazy1",
    );
    for u in [staff, svc, prim, admin, plain, lazy] {
        ensure_user(u, None);
    }
    ensure_group(G_STAFF, &[staff, admin, lazy]);
    // svc and admin are supplementary members of the exempt group; prim's
    // primary group is it, with no membership listed in /etc/group.
    ensure_group(G_SVC, &[svc, admin]);
    ensure_group(G_SUDO, &[admin]);
    set_primary_group(prim, G_SVC);

    let mut rig = Rig::new(
        "pol-groups",
        &format!(
            "[policy]\nrequire_groups = [\"{G_STAFF}\", \"ts-pol-no-such-group\"]\n\
             exempt_groups = [\"{G_SVC}\"]\nalways_challenge_groups = [\"{G_SUDO}\"]"
        ),
    );
    rig.enroll(staff, SECRET);
    rig.enroll(admin, SECRET);
    rig.events();
    let net = Some("203.0.113.5");

    let login = login_from(&rig, svc, "", net);
    assert_skipped(
        &mut rig,
        &login,
        svc,
        "exempt_group",
        "supplementary exempt",
    );
    let login = login_from(&rig, prim, "", net);
    assert_skipped(&mut rig, &login, prim, "exempt_group", "primary exempt");
    let login = login_from(&rig, plain, "", net);
    assert_skipped(&mut rig, &login, plain, "not_required", "not in staff");
    let login = login_from(&rig, plain, "", None);
    assert_skipped(&mut rig, &login, plain, "not_required", "console too");

    // In staff: asked, and a right code logs in.
    fresh_step(3);
    let login = login_from(&rig, staff, &oath_code(SECRET, 0), net);
    assert_eq!(login.code, PAM_SUCCESS, "{}", login.out);
    let ev = assert_asked(&mut rig, &login, "staff");
    assert_eq!(ev[0].event(), "auth_ok");
    // In staff without a secret (unenrolled = "deny"): asked, denied.
    let login = login_from(&rig, lazy, "123456", net);
    assert_eq!(login.code, PAM_AUTH_ERR);
    let ev = assert_asked(&mut rig, &login, "unenrolled staff");
    assert_eq!(ev[0].get("reason"), Some("no_secret"));
    // In sudo and in the exempt group: always_challenge wins.
    let login = login_from(&rig, admin, &wrong_code(), net);
    assert_eq!(login.code, PAM_AUTH_ERR);
    let ev = assert_asked(&mut rig, &login, "admin");
    assert_eq!(ev[0].get("reason"), Some("bad_code"));

    // A user that does not exist is asked, then denied, as the contract says
    // of every such user, even where the policy would skip an account.
    let login = login_from(&rig, "ts-pol-nosuchuser", "", net);
    assert_eq!(login.code, PAM_AUTH_ERR, "{}", login.out);
    assert_eq!(login.prompts(), 1, "{}", login.out);
    let ev = rig.events();
    assert_eq!(ev.len(), 1, "{ev:#?}");
    assert_eq!(
        (ev[0].event(), ev[0].get("reason")),
        ("auth_fail", Some("bad_user"))
    );
    assert!(!rig.files().iter().any(|f| f.contains("nosuch")));
}

#[test]
fn always_challenge_beats_unenrolled_allow() {
    let (admin, other) = ("ts-pol-admin2", "ts-pol-other2");
    ensure_user(admin, None);
    ensure_user(other, None);
    ensure_group(G_SUDO, &[admin]);
    let mut rig = Rig::new(
        "pol-allow",
        &format!("unenrolled = \"allow\"\n[policy]\nalways_challenge_groups = [\"{G_SUDO}\"]"),
    );
    rig.events();
    // Optional for everyone...
    let login = login_from(&rig, other, "", Some("192.0.2.1"));
    assert_skipped(&mut rig, &login, other, "unenrolled", "optional");
    // ...required for admins: asked, and without a secret, denied.
    let login = login_from(&rig, admin, "123456", Some("192.0.2.1"));
    assert_eq!(login.code, PAM_AUTH_ERR, "{}", login.out);
    let ev = assert_asked(&mut rig, &login, "admin without secret");
    assert_eq!(ev[0].get("reason"), Some("no_secret"));
}

#[test]
fn trusted_networks_match_addresses_never_host_names() {
    let (user, admin) = ("ts-pol-net1", "ts-pol-netadm1");
    ensure_user(user, None);
    ensure_user(admin, None);
    ensure_group(G_SUDO, &[admin]);
    let mut rig = Rig::new(
        "pol-net",
        &format!(
            "[policy]\ntrusted_networks = [\"10.0.0.0/8\", \"2001:db8::/32\", \"192.0.2.7\"]\n\
             always_challenge_groups = [\"{G_SUDO}\"]\n\
             [lockout]\ntiers = [{{failures = 1, lock = \"1h\"}}]"
        ),
    );
    rig.enroll(user, SECRET);
    rig.enroll(admin, SECRET);
    rig.events();
    for rhost in [
        "10.1.2.3",
        "::ffff:10.1.2.3",
        "2001:db8:77::1",
        "192.0.2.7",
        "::ffff:192.0.2.7",
    ] {
        let login = login_from(&rig, user, "", Some(rhost));
        assert_skipped(&mut rig, &login, user, "trusted_network", rhost);
    }
    // Outside, host names (even ones that name a trusted address), the
    // console: asked. Answer nothing: the conversation fails, nothing counts.
    for rhost in [
        Some("11.1.2.3"),
        Some("::ffff:11.1.2.3"),
        Some("2001:db9::1"),
        Some("192.0.2.8"),
        Some("localhost"),
        Some("10.1.2.3.nip.io"),
        Some("trusted.example"),
        None,
    ] {
        let login = rig.login_with(
            "twostep",
            user,
            &[],
            &rhost.map(|r| vec![("rhost", r)]).unwrap_or_default(),
        );
        assert_eq!(login.code, PAM_CONV_ERR, "{rhost:?}: {}", login.out);
        assert_eq!(login.prompts(), 1, "{rhost:?}: asked: {}", login.out);
    }
    // An always_challenge member is asked even from a trusted network.
    fresh_step(3);
    let login = login_from(&rig, admin, &oath_code(SECRET, 0), Some("10.1.2.3"));
    assert_eq!(login.code, PAM_SUCCESS, "{}", login.out);
    assert_eq!(
        assert_asked(&mut rig, &login, "admin")[0].event(),
        "auth_ok"
    );

    // A locked user is refused from a trusted network too.
    let login = login_from(&rig, user, &wrong_code(), Some("198.51.100.1"));
    assert_eq!(login.code, PAM_AUTH_ERR);
    rig.events();
    let login = login_from(&rig, user, "", Some("10.1.2.3"));
    assert_eq!(login.code, PAM_AUTH_ERR, "{}", login.out);
    assert_eq!(login.prompts(), 0);
    assert!(login.errors().iter().any(|e| e.contains("locked until")));
    let ev = rig.events();
    assert_eq!(ev.len(), 1, "{ev:#?}");
    assert_eq!(ev[0].event(), "lock_denied");
}

#[test]
fn console_skip_or_challenge() {
    let user = "ts-pol-con1";
    ensure_user(user, None);
    let mut rig = Rig::new("pol-console", "[policy]\nconsole = \"skip\"");
    rig.enroll(user, SECRET);
    rig.events();
    let login = rig.login_with("twostep", user, &[], &[("tty", "tty1")]);
    assert_skipped(&mut rig, &login, user, "console", "no rhost");
    let ev_login = rig.login_with("twostep", user, &[], &[("rhost", "192.0.2.1")]);
    assert_eq!(ev_login.prompts(), 1, "remote: asked: {}", ev_login.out);
    rig.events();

    rig.write_config("[policy]\nconsole = \"challenge\"");
    let login = rig.login_with("twostep", user, &[], &[("tty", "tty1")]);
    assert_eq!(login.prompts(), 1, "{}", login.out);
}

#[test]
fn remembered_sources_skip_until_they_expire() {
    let user = "ts-pol-rem1";
    ensure_user(user, None);
    let mut rig = Rig::new("pol-remember", "[policy]\nremember = \"3s\"");
    // Recovery codes are code logins too, and need no new time step.
    let codes: Vec<String> = rig.enroll_json_secret(user, SECRET, &[])["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    rig.events();
    let (a, b) = ("192.0.2.70", "2001:db8::70");

    fresh_step(5);
    let login = login_from(&rig, user, &oath_code(SECRET, 0), Some(a));
    assert_eq!(login.code, PAM_SUCCESS, "{}", login.out);
    let remembered_at = Instant::now();
    rig.events();
    // The same address, also as IPv4-mapped IPv6: not asked.
    let login = login_from(&rig, user, "", Some(a));
    assert_skipped(&mut rig, &login, user, "remembered", "same address");
    let login = login_from(&rig, user, "", Some("::ffff:192.0.2.70"));
    assert_skipped(&mut rig, &login, user, "remembered", "mapped");
    // Another address: asked. A recovery code remembers it in turn.
    let login = login_from(&rig, user, &codes[0], Some(b));
    assert_eq!(login.code, PAM_SUCCESS, "{}", login.out);
    assert_eq!(
        assert_asked(&mut rig, &login, "b")[0].get("method"),
        Some("recovery")
    );
    let login = login_from(&rig, user, "", Some(b));
    assert_skipped(&mut rig, &login, user, "remembered", "b after recovery");
    // A host name and the console are never remembered.
    for rhost in [Some("client.example"), None] {
        let login = login_from(&rig, user, &codes[1 + rhost.is_none() as usize], rhost);
        assert_eq!(login.code, PAM_SUCCESS, "{rhost:?}: {}", login.out);
        rig.events();
        let login = rig.login_with(
            "twostep",
            user,
            &[],
            &rhost.map(|r| vec![("rhost", r)]).unwrap_or_default(),
        );
        assert_eq!(login.prompts(), 1, "{rhost:?} again: {}", login.out);
    }
    rig.events();
    // The skips above did not extend the memory: 3 s after the code, asked.
    let left = Duration::from_millis(3200).saturating_sub(remembered_at.elapsed());
    std::thread::sleep(left);
    let login = rig.login_with("twostep", user, &[], &[("rhost", a)]);
    assert_eq!(login.prompts(), 1, "expired: asked: {}", login.out);
}

#[test]
fn a_remembered_source_never_lets_a_locked_user_or_an_admin_through() {
    let (user, admin) = ("ts-pol-rem2", "ts-pol-remadm2");
    ensure_user(user, None);
    ensure_user(admin, None);
    ensure_group(G_SUDO, &[admin]);
    let mut rig = Rig::new(
        "pol-remember-lock",
        &format!(
            "[policy]\nremember = \"1h\"\nalways_challenge_groups = [\"{G_SUDO}\"]\n\
             trusted_networks = [\"10.0.0.0/8\"]\n\
             [lockout]\ntiers = [{{failures = 1, lock = \"1h\"}}]"
        ),
    );
    rig.enroll(user, SECRET);
    rig.enroll(admin, SECRET);
    rig.events();
    let home = Some("192.0.2.80");
    fresh_step(5);
    let code = oath_code(SECRET, 0);
    assert_eq!(login_from(&rig, user, &code, home).code, PAM_SUCCESS);
    assert_eq!(login_from(&rig, admin, &code, home).code, PAM_SUCCESS);
    rig.events();
    let login = login_from(&rig, user, "", home);
    assert_skipped(&mut rig, &login, user, "remembered", "remembered");
    // The admin is asked again from the same address.
    let login = rig.login_with("twostep", admin, &[], &[("rhost", "192.0.2.80")]);
    assert_eq!(login.prompts(), 1, "admin: {}", login.out);
    rig.events();

    // A skip adds nothing: a trusted-network login is not remembered.
    let login = login_from(&rig, user, "", Some("10.9.9.9"));
    assert_skipped(&mut rig, &login, user, "trusted_network", "trusted");
    rig.write_config(&format!(
        "[policy]\nremember = \"1h\"\nalways_challenge_groups = [\"{G_SUDO}\"]\n\
         [lockout]\ntiers = [{{failures = 1, lock = \"1h\"}}]"
    ));
    let login = rig.login_with("twostep", user, &[], &[("rhost", "10.9.9.9")]);
    assert_eq!(login.prompts(), 1, "not remembered: {}", login.out);
    rig.events();

    // A wrong code from elsewhere locks the user: the remembered address no
    // longer lets them in.
    let login = login_from(&rig, user, &wrong_code(), Some("198.51.100.80"));
    assert_eq!(login.code, PAM_AUTH_ERR);
    rig.events();
    let login = login_from(&rig, user, "", home);
    assert_eq!(login.code, PAM_AUTH_ERR, "{}", login.out);
    assert_eq!(login.prompts(), 0);
    let ev = rig.events();
    assert_eq!(ev.len(), 1, "{ev:#?}");
    assert_eq!(ev[0].event(), "lock_denied");

    // remember = "0s" turns it off, even for addresses already remembered.
    let out = rig.cli(&["unlock", user]);
    assert!(out.status.success());
    rig.write_config("");
    let login = rig.login_with("twostep", user, &[], &[("rhost", "192.0.2.80")]);
    assert_eq!(login.prompts(), 1, "remember off: {}", login.out);
}

// ---- enrollment at login ------------------------------------------------------

/// The otpauth URI in what the module showed.
fn shown_uri(text: &str) -> String {
    let at = text
        .find("otpauth://")
        .unwrap_or_else(|| panic!("no URI shown:\n{text}"));
    text[at..].split_whitespace().next().unwrap().to_string()
}

fn uri_secret(uri: &str) -> String {
    url::Url::parse(uri)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "secret")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no secret in {uri}"))
}

fn enroll_rig(name: &str, extra: &str) -> Rig {
    Rig::new(
        name,
        &format!("unenrolled = \"enroll\"\nissuer = \"Acme Ops\"\n{extra}"),
    )
}

#[test]
fn enrollment_at_login_shows_the_secret_and_activates_it_with_a_right_code() {
    let user = "ts-pol-enr1";
    ensure_user(user, None);
    let mut rig = enroll_rig(
        "pol-enroll",
        "[policy]\nenroll_until = \"2999-01-01T00:00:00Z\"",
    );
    rig.events();

    fresh_step(5);
    let mut live = rig.live_login("twostep", user, &[("rhost", "192.0.2.90"), ("tty", "ssh")]);
    let shown = live.until_prompt();
    assert!(
        shown.trim_end().ends_with("PROMPT_OFF: Verification code:"),
        "{shown}"
    );
    assert!(shown.starts_with("INFO: "), "{shown}");
    let uri = shown_uri(&shown);
    let secret = uri_secret(&uri);
    assert!(
        uri.starts_with(&format!("otpauth://totp/Acme%20Ops:{user}?")),
        "{uri}"
    );
    // The key in groups of four, the same as the URI's.
    let key_line = shown
        .lines()
        .map(|l| l.strip_prefix("INFO: ").unwrap_or(l))
        .find_map(|l| l.strip_prefix("Key: "))
        .unwrap_or_else(|| panic!("no key shown:\n{shown}"));
    assert_eq!(key_line.replace(' ', ""), secret);
    assert!(key_line.split(' ').all(|g| g.len() <= 4), "{key_line}");
    // The QR code, in half blocks, scans to the URI.
    let drawing: Vec<&str> = shown
        .lines()
        .map(|l| l.strip_prefix("INFO: ").unwrap_or(l))
        .filter(|l| !l.is_empty() && l.chars().all(|c| "\u{2588}\u{2580}\u{2584} ".contains(c)))
        .collect();
    assert!(drawing.len() > 10, "{shown}");
    let png = rig.root.join("login-qr.png");
    qr_drawing_to_png(&drawing, true, &png);
    assert_eq!(zbar_decode(&png), uri);
    // No recovery codes at login; nothing written yet.
    assert!(!shown.to_lowercase().contains("recovery"), "{shown}");
    assert!(!rig.secret_path(user).exists());

    let code = oath_code(&secret, 0);
    live.answer(&code);
    let login = live.finish();
    assert_eq!(login.code, PAM_SUCCESS, "{}", login.out);
    let ev = rig.events();
    let kinds: Vec<&str> = ev.iter().map(Event::event).collect();
    assert_eq!(kinds, ["enrolled", "auth_ok"], "{ev:#?}");
    assert_eq!(ev[0].keys(), ["event", "user", "by"]);
    assert_eq!(
        (ev[0].get("user"), ev[0].get("by")),
        (Some(user), Some("login"))
    );
    assert_eq!(ev[1].get("rhost"), Some("192.0.2.90"));
    for e in &ev {
        assert!(
            !e.raw.contains(&secret) && !e.raw.contains(&code),
            "{}",
            e.raw
        );
    }

    // The secret file, as the CLI writes it.
    let path = rig.secret_path(user);
    let meta = std::fs::symlink_metadata(&path).unwrap();
    assert!(meta.is_file());
    assert_eq!((meta.uid(), mode_of(&path)), (0, 0o600));
    let doc: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    assert_eq!(doc["secret"].as_str(), Some(secret.as_str()));
    assert_eq!(doc["digits"].as_integer(), Some(6));
    assert!(doc.get("recovery_codes").is_none(), "{doc:?}");
    assert!(doc["created"].as_str().unwrap().ends_with('Z'));
    let status: serde_json::Value =
        serde_json::from_slice(&rig.cli(&["status", user, "--json"]).stdout).unwrap();
    assert_eq!(status["enrolled"], true, "{status}");

    // The next login asks for a code like any other: no QR code, and the
    // enrollment's code is used up.
    let again = login_from(&rig, user, &code, Some("192.0.2.90"));
    assert_eq!(again.code, PAM_AUTH_ERR, "{}", again.out);
    assert!(!again.out.contains("INFO"), "{}", again.out);
    assert_eq!(
        assert_asked(&mut rig, &again, "next")[0].get("reason"),
        Some("replay")
    );
    let next = login_from(&rig, user, &oath_code(&secret, 1), Some("192.0.2.90"));
    assert_eq!(next.code, PAM_SUCCESS, "{}", next.out);
    // And recovery codes can be added by the administrator afterwards.
    let out = rig.cli(&["recovery-codes", user, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(rig.stored_recovery_hashes(user).len(), 10);
}

#[test]
fn a_wrong_code_at_enrollment_writes_nothing_and_counts() {
    let user = "ts-pol-enr2";
    ensure_user(user, None);
    let mut rig = enroll_rig("pol-enroll-wrong", "");
    rig.events();
    fresh_step(5);
    let mut live = rig.live_login("twostep", user, &[("rhost", "192.0.2.91"), ("tty", "ssh")]);
    let secret = uri_secret(&shown_uri(&live.until_prompt()));
    let right = oath_code(&secret, 0);
    let wrong = format!(
        "{:06}",
        (right.parse::<u32>().unwrap() + 500_000) % 1_000_000
    );
    live.answer(&wrong);
    let login = live.finish();
    assert_eq!(login.code, PAM_AUTH_ERR, "{}", login.out);
    let ev = rig.events();
    assert_eq!(ev.len(), 1, "{ev:#?}");
    assert_eq!(
        (ev[0].event(), ev[0].get("reason"), ev[0].get("failures")),
        ("auth_fail", Some("bad_code"), Some("1"))
    );
    assert!(!rig.secret_path(user).exists());
    assert!(files_containing(&rig.root, &secret).is_empty());
    // A new attempt shows a new secret.
    let mut live = rig.live_login("twostep", user, &[("rhost", "192.0.2.91"), ("tty", "ssh")]);
    let second = uri_secret(&shown_uri(&live.until_prompt()));
    assert_ne!(second, secret);
    live.answer("");
    assert_eq!(live.finish().code, PAM_AUTH_ERR);
}

#[test]
fn after_enroll_until_unenrolled_users_are_denied() {
    let user = "ts-pol-enr3";
    ensure_user(user, None);
    let mut rig = enroll_rig(
        "pol-enroll-late",
        "[policy]\nenroll_until = \"2020-01-01T00:00:00Z\"",
    );
    rig.events();
    let login = login_from(&rig, user, "123456", Some("192.0.2.92"));
    assert_eq!(login.code, PAM_AUTH_ERR, "{}", login.out);
    assert!(!login.out.contains("otpauth"), "{}", login.out);
    assert_eq!(
        assert_asked(&mut rig, &login, "late")[0].get("reason"),
        Some("no_secret")
    );
    assert!(!rig.secret_path(user).exists());
}

#[test]
fn policy_skips_apply_before_enrollment() {
    let user = "ts-pol-enr4";
    ensure_user(user, None);
    ensure_group(G_SVC, &[user]);
    let mut rig = enroll_rig(
        "pol-enroll-exempt",
        &format!("[policy]\nexempt_groups = [\"{G_SVC}\"]"),
    );
    rig.events();
    let login = login_from(&rig, user, "", Some("192.0.2.93"));
    assert_skipped(&mut rig, &login, user, "exempt_group", "exempt, unenrolled");
    assert!(!rig.secret_path(user).exists());
}

#[test]
fn two_first_logins_at_once_enroll_one_secret() {
    let user = "ts-pol-enr5";
    ensure_user(user, None);
    let mut rig = enroll_rig("pol-enroll-race", "");
    rig.events();
    fresh_step(8);
    let mut first = rig.live_login("twostep", user, &[("rhost", "192.0.2.94"), ("tty", "ssh")]);
    let mut second = rig.live_login("twostep", user, &[("rhost", "192.0.2.95"), ("tty", "ssh")]);
    let s1 = uri_secret(&shown_uri(&first.until_prompt()));
    let s2 = uri_secret(&shown_uri(&second.until_prompt()));
    assert_ne!(s1, s2);
    // Both right, as close together as the test can make them.
    first.answer(&oath_code(&s1, 0));
    second.answer(&oath_code(&s2, 0));
    let (l1, l2) = (first.finish(), second.finish());
    let won: Vec<&str> = [(&l1, &s1), (&l2, &s2)]
        .iter()
        .filter(|(l, _)| l.code == PAM_SUCCESS)
        .map(|(_, s)| s.as_str())
        .collect();
    assert_eq!(won.len(), 1, "exactly one wins:\n{}\n{}", l1.out, l2.out);
    let doc: toml::Table = std::fs::read_to_string(rig.secret_path(user))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        doc["secret"].as_str(),
        Some(won[0]),
        "the winner's secret is the one kept"
    );
    let ev = rig.events();
    assert_eq!(
        ev.iter().filter(|e| e.event() == "enrolled").count(),
        1,
        "{ev:#?}"
    );
    let lost = ev.iter().find(|e| e.event() == "auth_fail").unwrap();
    assert!(
        lost.get("detail").unwrap_or("").contains("meanwhile"),
        "{}",
        lost.raw
    );
}

#[test]
fn a_reset_or_a_new_enrollment_forgets_remembered_addresses() {
    forgets_remembered_addresses("pol-remember-reset", "");
}

/// The same with a shared store, where the remembered addresses are kept:
/// a reset and an enrollment by the CLI forget them there (they forgot
/// only this host's state file's, and every host still skipped the code).
#[test]
fn on_a_fleet_a_reset_or_a_new_enrollment_forgets_remembered_addresses() {
    use common::redis::{Redis, store_section, unix_url};
    let redis = Redis::start("pol-remember-reset", &[]);
    let section = store_section(&redis, &unix_url(&redis), "pol-rem", "");
    forgets_remembered_addresses("pol-remember-reset-fleet", &section);
}

fn forgets_remembered_addresses(name: &str, store: &str) {
    let user = "ts-pol-rem3";
    ensure_user(user, None);
    let config = |first: &str| format!("{first}[policy]\nremember = \"1h\"\n{store}");
    let mut rig = Rig::new(name, &config(""));
    rig.enroll(user, SECRET);
    let home = "192.0.2.100";
    fresh_step(5);
    assert_eq!(
        login_from(&rig, user, &oath_code(SECRET, -1), Some(home)).code,
        PAM_SUCCESS
    );
    rig.events();
    let login = login_from(&rig, user, "", Some(home));
    assert_skipped(&mut rig, &login, user, "remembered", "before");

    // A new enrollment (--force) forgets.
    rig.enroll(user, SECRET);
    let login = rig.login_with("twostep", user, &[], &[("rhost", home)]);
    assert_eq!(login.prompts(), 1, "after enroll --force: {}", login.out);
    assert_eq!(
        login_from(&rig, user, &oath_code(SECRET, 0), Some(home)).code,
        PAM_SUCCESS
    );
    rig.events();
    let login = login_from(&rig, user, "", Some(home));
    assert_skipped(&mut rig, &login, user, "remembered", "again");

    // So does a reset (seen here with unenrolled = "allow": a remembered
    // address would be skipped as such, before the missing secret counts).
    let out = rig.cli(&["reset", user]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    rig.events();
    rig.write_config(&config("unenrolled = \"allow\"\n"));
    let login = login_from(&rig, user, "", Some(home));
    assert_skipped(&mut rig, &login, user, "unenrolled", "after reset");
}
