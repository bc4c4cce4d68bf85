//! `twostep audit`, the sshd side, checked both ways against the real
//! thing: for each row of a table of sshd settings, the audit of that
//! configuration (asked of the real sshd -T, through a system tree given
//! as `--root`), and real logins with the real `ssh` client against a
//! private sshd running that very configuration with the canonical stack.
//! Where the audit says "publickey alone for deploy", `ssh -i KEY` logs
//! deploy in without a prompt; where it says nothing, the key alone is
//! refused. The same for the password method alone.
//!
//! Then the command itself: its JSON and exit status, accepted ways in,
//! bad configurations and users (exit 2), a tree without sshd, Include
//! lines under `--root`, a tree whose sshd does not run here, and this
//! machine without /run/sshd.

mod common;
#[path = "common/sshd.rs"]
mod sshd;

use common::*;
use pam_twostep::ways_in::CodeAsked;
use pam_twostep::ways_in::sshd::{Outcome, audit};
use sshd::{Answers, Sshd, canonical_stack, single_stack};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const PASSWORD: &str = "as pass-W0rd";
const DEPLOY: &str = "ts-as-deploy";
const ALICE: &str = "ts-as-alice";
const KEY_GROUP: &str = "ts-as-keyonly";

/// A system tree for `--root`: this machine's accounts (so that sshd, which
/// looks groups up here, sees the same), a configuration, a copy of
/// /usr/sbin/sshd, and the canonical stack as its sshd PAM service.
struct Tree {
    dir: PathBuf,
}

impl Tree {
    fn new(name: &str, sshd_config: &str) -> Tree {
        let dir = PathBuf::from(format!("/tmp/ts-as-tree-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["etc/ssh", "etc/pam.d", "usr/sbin"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        // sshd runs as nobody in a tree: it must get through.
        for d in [&dir, &dir.join("etc"), &dir.join("etc/ssh")] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let tree = Tree { dir };
        tree.write("etc/ssh/sshd_config", sshd_config);
        for f in ["passwd", "group"] {
            std::fs::copy(Path::new("/etc").join(f), tree.dir.join("etc").join(f)).unwrap();
        }
        std::fs::copy("/usr/sbin/sshd", tree.dir.join("usr/sbin/sshd")).unwrap();
        tree.write(
            "etc/pam.d/sshd",
            &canonical_stack(Path::new("/etc/twostep/twostep.toml")),
        );
        tree
    }

    fn write(&self, path: &str, text: &str) {
        let p = self.dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    }

    /// The sshd side of the audit, the sshd PAM stack asking for the code
    /// at its own prompt (the canonical stack).
    fn audit(&self, users: &[&str]) -> Outcome {
        self.audit_asked(users, CodeAsked::AtItsOwnPrompt)
    }

    /// The sshd side of the audit, the PAM side having judged the sshd
    /// stack `asked` (src/ways_in/pam's tests and tests/audit_pam.rs).
    fn audit_asked(&self, users: &[&str], asked: CodeAsked) -> Outcome {
        let users: Vec<String> = users.iter().map(|u| u.to_string()).collect();
        audit(&self.dir, &users, asked, &[]).unwrap_or_else(|e| panic!("audit: {e}"))
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(twostep_bin())
            .arg("audit")
            .arg("--root")
            .arg(&self.dir)
            .args(args)
            .env_remove("TWOSTEP_CONFIG")
            .output()
            .unwrap()
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// stdout then stderr.
fn both_streams(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// What the audit says about one account: its findings' keys (the
/// account's own, or `*`), as `METHOD` strings.
fn methods_for(outcome: &Outcome, user: &str) -> Vec<String> {
    outcome
        .findings
        .iter()
        .filter_map(|f| {
            let rest = f.key.strip_prefix("sshd:")?;
            let (method, whom) = rest.split_once(':')?;
            (whom == user || whom == "*").then(|| method.to_string())
        })
        .collect()
}

/// (users, key) of each finding.
fn shown(outcome: &Outcome) -> Vec<(String, String)> {
    outcome
        .findings
        .iter()
        .map(|f| (f.users.as_text(), f.key.clone()))
        .collect()
}

/// One row of the table: sshd settings, whom the audit asks about, what it
/// must find, and whether to try the password method alone.
struct Row {
    name: &'static str,
    /// Ahead of the test sshd's settings (these win).
    before: &'static str,
    /// After them (Match blocks).
    after: &'static str,
    users: &'static [&'static str],
    /// (users, key) of each finding, in the audit's order.
    want: &'static [(&'static str, &'static str)],
    /// A note the audit must give.
    note: Option<&'static str>,
    password: bool,
}

/// The rig, the private sshd and the tree of one row; the audit checked
/// against `want`, then every user's logins checked against the audit.
fn check_row(row: &Row) -> (Rig, Sshd, Outcome) {
    check_row_stack(row, canonical_stack, CodeAsked::AtItsOwnPrompt)
}

/// [`check_row`] with `stack(config)` as the sshd PAM stack, which the PAM
/// side of the audit judges `asked`.
fn check_row_stack(
    row: &Row,
    stack: fn(&Path) -> String,
    asked: CodeAsked,
) -> (Rig, Sshd, Outcome) {
    ensure_user(DEPLOY, Some(PASSWORD));
    ensure_user(ALICE, Some(PASSWORD));
    ensure_group(KEY_GROUP, &[DEPLOY]);
    let rig = Rig::new(&format!("as-{}", row.name), "");
    rig.enroll(DEPLOY, SECRET);
    rig.enroll(ALICE, SECRET);
    let sshd = Sshd::start_full(
        &format!("as-{}", row.name),
        row.before,
        row.after,
        &stack(&rig.config),
    );
    let tree = Tree::new(
        row.name,
        &std::fs::read_to_string(sshd.config_path()).unwrap(),
    );
    let outcome = tree.audit_asked(row.users, asked);
    let want: Vec<(String, String)> = row
        .want
        .iter()
        .map(|(u, k)| (u.to_string(), k.to_string()))
        .collect();
    assert_eq!(shown(&outcome), want, "{}: {outcome:#?}", row.name);
    if let Some(note) = row.note {
        assert!(
            outcome.notes.iter().any(|n| n.contains(note)),
            "{}: {:#?}",
            row.name,
            outcome.notes
        );
    }
    for user in row.users {
        let methods = methods_for(&outcome, user);
        let nopam = outcome
            .findings
            .iter()
            .find(|f| f.key == format!("sshd:nopam:{user}") || f.key == "sshd:nopam:*");
        let by_key = methods.iter().any(|m| m == "publickey")
            || nopam.is_some_and(|f| f.why.contains("publickey"));
        let key = sshd.client_key(user);
        let marker = format!("ts-as-{}-key", row.name);
        let login = sshd.ssh_with(
            user,
            &Answers::default(),
            &marker,
            &[
                "-o",
                "PreferredAuthentications=publickey",
                "-i",
                key.to_str().unwrap(),
            ],
        );
        assert_eq!(
            login.logged_in(&marker),
            by_key,
            "{}: {user} by key alone: the audit says {by_key}\n{login:#?}\n{}",
            row.name,
            sshd.log()
        );
        if by_key {
            assert!(login.prompts.is_empty(), "{login:#?}");
        }
        if row.password {
            let by_password = methods.iter().any(|m| m == "password")
                || nopam.is_some_and(|f| f.why.contains("password"));
            let marker = format!("ts-as-{}-pw", row.name);
            let login = sshd.ssh_with(
                user,
                &Answers {
                    password: Some(PASSWORD),
                    code: None,
                },
                &marker,
                &["-o", "PreferredAuthentications=password"],
            );
            assert_eq!(
                login.logged_in(&marker),
                by_password,
                "{}: {user} by password alone: the audit says {by_password}\n{login:#?}\n{}",
                row.name,
                sshd.log()
            );
        }
    }
    (rig, sshd, outcome)
}

/// `user` logs in by key, then password and code (keyboard-interactive).
fn key_then_code_logs_in(sshd: &Sshd, user: &str, marker: &str) {
    let key = sshd.client_key(user);
    fresh_step(8);
    let code = oath_code(SECRET, 0);
    let login = sshd.ssh_with(
        user,
        &Answers {
            password: Some(PASSWORD),
            code: Some(&code),
        },
        marker,
        &[
            "-o",
            "PreferredAuthentications=publickey,keyboard-interactive",
            "-i",
            key.to_str().unwrap(),
        ],
    );
    assert!(login.logged_in(marker), "{login:#?}\n{}", sshd.log());
    assert_eq!(
        login.prompt_texts(),
        ["Password: ", "Verification code: "],
        "{login:#?}"
    );
}

#[test]
fn default_settings_let_a_key_in_alone() {
    check_row(&Row {
        name: "default",
        before: "",
        after: "",
        users: &[DEPLOY, ALICE],
        want: &[("all", "sshd:publickey:*")],
        note: None,
        password: false,
    });
}

#[test]
fn publickey_then_keyboard_interactive_is_no_way_in() {
    let (_rig, sshd, outcome) = check_row(&Row {
        name: "both",
        before: "AuthenticationMethods publickey,keyboard-interactive",
        after: "",
        users: &[DEPLOY, ALICE],
        want: &[],
        note: None,
        password: false,
    });
    // Nothing but which sshd was asked.
    assert!(
        outcome.notes.iter().all(|n| n.starts_with("sshd: asked ")),
        "{:#?}",
        outcome.notes
    );
    key_then_code_logs_in(&sshd, DEPLOY, "ts-as-both-code");
}

#[test]
fn match_user_with_publickey_alone_is_a_way_in_for_that_user_only() {
    check_row(&Row {
        name: "matchuser",
        before: "AuthenticationMethods publickey,keyboard-interactive",
        after: "Match User ts-as-de?loy\n  AuthenticationMethods publickey",
        users: &[DEPLOY, ALICE],
        want: &[(DEPLOY, "sshd:publickey:ts-as-deploy")],
        note: None,
        password: false,
    });
}

#[test]
fn a_negated_match_user_list_is_sshd_s_to_judge() {
    // `!` alone matches no one; with `*` it is everyone else.
    check_row(&Row {
        name: "negated",
        before: "AuthenticationMethods publickey,keyboard-interactive",
        after: "Match User !ts-as-alice\n  AuthenticationMethods publickey\n\
                Match User *,!ts-as-deploy\n  AuthenticationMethods publickey",
        users: &[DEPLOY, ALICE],
        want: &[(ALICE, "sshd:publickey:ts-as-alice")],
        note: None,
        password: false,
    });
}

#[test]
fn match_group_is_a_way_in_for_its_members() {
    check_row(&Row {
        name: "matchgroup",
        before: "AuthenticationMethods publickey,keyboard-interactive",
        after: "Match Group ts-as-keyonly\n  AuthenticationMethods publickey",
        users: &[DEPLOY, ALICE],
        want: &[(DEPLOY, "sshd:publickey:ts-as-deploy")],
        note: None,
        password: false,
    });
}

#[test]
fn match_group_in_a_tree_needs_the_same_groups_here() {
    ensure_user(DEPLOY, Some(PASSWORD));
    ensure_group(KEY_GROUP, &[DEPLOY]);
    let tree = Tree::new(
        "groups",
        &format!("{STRICT}Match Group ts-as-keyonly\n  AuthenticationMethods publickey\n"),
    );
    // The tree's group file without deploy in ts-as-keyonly: sshd, which
    // looks groups up on this machine, would say otherwise.
    let group = std::fs::read_to_string(tree.dir.join("etc/group")).unwrap();
    let group: String = group
        .lines()
        .map(|l| {
            if l.starts_with("ts-as-keyonly:") {
                l.replace(DEPLOY, "").replace(",,", ",")
            } else {
                l.to_string()
            }
        })
        .map(|l| format!("{}\n", l.trim_end_matches(',')))
        .collect();
    tree.write("etc/group", &group);
    let out = tree.cli(&["--user", DEPLOY]);
    let all = both_streams(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(all.contains("has Match Group lines"), "{all}");
    assert!(all.contains("chroot"), "{all}");
}

#[test]
fn match_address_is_a_way_in_from_there() {
    let (_, _, outcome) = check_row(&Row {
        name: "matchaddr",
        before: "AuthenticationMethods publickey,keyboard-interactive",
        after: "Match Address 127.0.0.0/8\n  AuthenticationMethods publickey",
        users: &[DEPLOY, ALICE],
        want: &[("all", "sshd:publickey:*")],
        note: None,
        password: false,
    });
    assert!(
        outcome.findings[0]
            .why
            .contains("(connections from 127.0.0.1)"),
        "{}",
        outcome.findings[0].why
    );
}

#[test]
fn usepam_no_lets_every_method_past_the_code() {
    let (_, _, outcome) = check_row(&Row {
        name: "nopam",
        before: "UsePAM no\nPasswordAuthentication yes",
        after: "",
        users: &[DEPLOY, ALICE],
        want: &[("all", "sshd:nopam:*")],
        note: None,
        password: true,
    });
    let f = &outcome.findings[0];
    assert_eq!(f.setting.as_deref(), Some("UsePAM"));
    assert!(f.why.contains("by publickey or password"), "{}", f.why);
}

#[test]
fn the_password_method_is_refused_at_the_code_prompt() {
    let (mut rig, sshd, _) = check_row(&Row {
        name: "password",
        before: "PasswordAuthentication yes\nPubkeyAuthentication no",
        after: "",
        users: &[DEPLOY, ALICE],
        want: &[],
        note: Some("PasswordAuthentication yes (for ts-as-deploy, ts-as-alice) is not a way in"),
        password: true,
    });
    // What the note says: the code prompt got the password, a wrong code.
    let events = rig.module_events();
    let bad: Vec<&Event> = events
        .iter()
        .filter(|e| e.get("user") == Some(DEPLOY))
        .collect();
    assert_eq!(
        bad.last().map(|e| (e.event(), e.get("reason"))),
        Some(("auth_fail", Some("bad_code"))),
        "{events:#?}"
    );
    // keyboard-interactive, password then code, still logs in.
    fresh_step(8);
    let code = oath_code(SECRET, 0);
    let login = sshd.ssh(
        ALICE,
        &Answers {
            password: Some(PASSWORD),
            code: Some(&code),
        },
        "ts-as-password-kbd",
    );
    assert!(login.logged_in("ts-as-password-kbd"), "{login:#?}");
}

#[test]
fn the_password_method_with_single_asks_for_the_code_in_its_answer() {
    let (mut rig, sshd, outcome) = check_row_stack(
        &Row {
            name: "single",
            before: "PasswordAuthentication yes\nPubkeyAuthentication no",
            after: "",
            users: &[DEPLOY, ALICE],
            want: &[],
            note: None,
            // The password alone: refused, as the audit says.
            password: true,
        },
        single_stack,
        CodeAsked::WithThePassword,
    );
    assert!(
        outcome
            .notes
            .iter()
            .all(|n| !n.contains("PasswordAuthentication yes")),
        "no note: the password method asks for the code: {:#?}",
        outcome.notes
    );
    rig.events();
    // The one answer, password then code, through sshd's password method.
    fresh_step(8);
    let with_code = format!("{PASSWORD}{}", oath_code(SECRET, 0));
    let login = sshd.ssh_with(
        ALICE,
        &Answers {
            password: Some(&with_code),
            code: None,
        },
        "ts-as-single-pw",
        &["-o", "PreferredAuthentications=password"],
    );
    assert!(
        login.logged_in("ts-as-single-pw"),
        "{login:#?}\n{}",
        sshd.log()
    );
    let events = rig.module_events();
    assert_eq!(count(&events, "auth_ok"), 1, "{events:#?}");
}

#[test]
fn without_keyboard_interactive_nothing_asks_for_the_code() {
    check_row(&Row {
        name: "nokbd",
        before: "KbdInteractiveAuthentication no",
        after: "",
        users: &[DEPLOY, ALICE],
        want: &[("all", "sshd:publickey:*")],
        note: Some("no method that logs in ts-as-deploy, ts-as-alice asks for the code"),
        password: false,
    });
}

#[test]
fn permit_root_login_decides_for_root() {
    check_row(&Row {
        name: "rootkey",
        before: "PermitRootLogin prohibit-password",
        after: "",
        users: &["root"],
        want: &[("root", "sshd:publickey:root")],
        note: None,
        password: false,
    });
    // The test sshd's own PermitRootLogin no: no way in for root at all.
    check_row(&Row {
        name: "rootno",
        before: "",
        after: "",
        users: &["root"],
        want: &[],
        note: Some("lets in by no method: root"),
        password: false,
    });
}

// The command.

const STRICT: &str = "AuthenticationMethods publickey,keyboard-interactive\nUsePAM yes\n\
                      KbdInteractiveAuthentication yes\n";

#[test]
fn the_command_prints_the_contract_s_json_and_exits_1() {
    ensure_user(DEPLOY, Some(PASSWORD));
    ensure_user(ALICE, Some(PASSWORD));
    let tree = Tree::new(
        "json",
        &format!("{STRICT}Match User ts-as-deploy\n  AuthenticationMethods publickey\n"),
    );
    let out = tree.cli(&["--user", DEPLOY, "--user", ALICE, "--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    let f = &v["findings"][0];
    assert_eq!(v["findings"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(f["service"], "sshd");
    assert_eq!(f["file"], serde_json::Value::Null);
    assert_eq!(f["line"], serde_json::Value::Null);
    assert_eq!(f["setting"], "AuthenticationMethods");
    assert_eq!(f["users"], DEPLOY);
    assert_eq!(f["accepted"], false);
    assert!(
        f["why"]
            .as_str()
            .unwrap()
            .contains("audit.accept = [\"sshd:publickey:ts-as-deploy\"]"),
        "{f}"
    );
    // Notes go to stderr with --json, saying which sshd was asked.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("note: sshd: asked"), "{err}");

    // Accepted in the tree's own twostep.toml: listed, exit 0.
    tree.write(
        "etc/twostep/twostep.toml",
        "[audit]\naccept = [\"sshd:publickey:ts-as-deploy\"]\n",
    );
    let out = tree.cli(&["--user", DEPLOY, "--user", ALICE]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("accepted: sshd (ts-as-deploy): sshd_config AuthenticationMethods: "),
        "{text}"
    );
    assert!(text.contains("Every way in asks for the code."), "{text}");
}

#[test]
fn a_configuration_sshd_refuses_is_exit_2_with_sshd_s_words() {
    ensure_user(DEPLOY, Some(PASSWORD));
    let tree = Tree::new("bad", "UsePAM yes\nNoSuchOption yes\n");
    let out = tree.cli(&["--user", DEPLOY]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("Bad configuration option: NoSuchOption"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    // A Match line sshd refuses.
    let tree = Tree::new("badmatch", "UsePAM yes\nMatch Nonsense x\n  UsePAM no\n");
    let out = tree.cli(&["--user", DEPLOY]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn users_that_do_not_exist_are_exit_2() {
    let tree = Tree::new("nouser", STRICT);
    for (user, words) in [
        ("ts-as-nosuch", "no such account"),
        ("a,b", "may contain only"),
        ("-x", "may not start"),
    ] {
        let out = tree.cli(&[&format!("--user={user}")]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{user}: {err}");
        assert!(err.contains(words), "{user}: {err}");
    }
}

#[test]
fn a_tree_without_sshd_has_no_sshd_way_in() {
    let tree = Tree::new("nosshd", STRICT);
    std::fs::remove_file(tree.dir.join("usr/sbin/sshd")).unwrap();
    let out = tree.cli(&[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("is not installed: there is no sshd way in"),
        "{text}"
    );
    // Installed, but without a configuration: sshd does not start.
    let tree = Tree::new("noconfig", STRICT);
    std::fs::remove_file(tree.dir.join("etc/ssh/sshd_config")).unwrap();
    let out = tree.cli(&[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("sshd does not start without it"), "{text}");
}

#[test]
fn the_default_accounts_are_root_and_those_of_the_tree_that_can_log_in() {
    let tree = Tree::new(
        "accounts",
        "UsePAM yes\nPermitRootLogin no\nAuthenticationMethods publickey\n",
    );
    tree.write(
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/bash\n\
         daemon:x:1:1::/:/usr/sbin/nologin\n\
         ts-as-low:x:600:600::/:/bin/sh\n\
         ts-as-one:x:700:700::/:/bin/sh\n\
         ts-as-two:x:701:701::/:/bin/bash\n\
         ts-as-nolog:x:702:702::/:/usr/sbin/nologin\n",
    );
    tree.write("etc/login.defs", "UID_MIN 700\n");
    let outcome = tree.audit(&[]);
    assert_eq!(
        shown(&outcome),
        [("all".to_string(), "sshd:publickey:*".to_string())]
    );
    assert!(
        outcome.findings[0]
            .why
            .contains("every account sshd lets in (2)"),
        "{:?}",
        outcome.findings
    );
    assert!(
        outcome
            .notes
            .iter()
            .any(|n| n.contains("lets in by no method: root")),
        "{:?}",
        outcome.notes
    );
}

#[test]
fn includes_are_read_from_the_tree() {
    ensure_user(DEPLOY, Some(PASSWORD));
    let tree = Tree::new(
        "include",
        &format!("Include /etc/ssh/sshd_config.d/*.conf\n{STRICT}"),
    );
    // Only in the tree: this machine's sshd_config.d has no such file.
    tree.write(
        "etc/ssh/sshd_config.d/50-keys.conf",
        "AuthenticationMethods publickey\n",
    );
    let outcome = tree.audit(&[DEPLOY]);
    assert_eq!(
        shown(&outcome),
        [(
            DEPLOY.to_string(),
            "sshd:publickey:ts-as-deploy".to_string()
        )]
    );
    // A relative Include is read from the tree's etc/ssh.
    tree.write(
        "etc/ssh/sshd_config",
        &format!("Include extra.conf\n{STRICT}"),
    );
    tree.write(
        "etc/ssh/extra.conf",
        "AuthenticationMethods hostbased\nHostbasedAuthentication yes\n",
    );
    let outcome = tree.audit(&[DEPLOY]);
    assert_eq!(
        shown(&outcome),
        [(
            DEPLOY.to_string(),
            "sshd:hostbased:ts-as-deploy".to_string()
        )]
    );
    // An Include in an included file is not moved: refused, not misread.
    tree.write("etc/ssh/extra.conf", "Include /etc/ssh/other.conf\n");
    let out = tree.cli(&["--user", DEPLOY]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("includes /etc/ssh/other.conf"), "{err}");
}

#[test]
fn a_tree_whose_sshd_does_not_run_here_is_asked_of_this_machine_s() {
    ensure_user(DEPLOY, Some(PASSWORD));
    let tree = Tree::new("norun", "UsePAM yes\nAuthenticationMethods publickey\n");
    // Not a program this machine can run.
    tree.write("usr/sbin/sshd", "\x7fELF not really\n");
    std::fs::set_permissions(
        tree.dir.join("usr/sbin/sshd"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let out = tree.cli(&["--user", DEPLOY]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("asked this machine's /usr/sbin/sshd (as nobody) about"),
        "{text}"
    );
    assert!(text.contains("does not run here"), "{text}");
}

#[test]
fn without_run_sshd_this_machine_s_sshd_is_asked_as_nobody() {
    // A private mount namespace whose /run is empty: sshd -T as root
    // refuses (privilege separation), as nobody it answers.
    let out = Command::new(PRIVATE_MOUNTS[0])
        .args(&PRIVATE_MOUNTS[1..])
        .args([
            "sh",
            "-c",
            "mount -t tmpfs ts-as-run /run && exec \"$0\" audit --user root --json",
        ])
        .arg(twostep_bin())
        .env_remove("TWOSTEP_CONFIG")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{err}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(err.contains("-T ran as nobody"), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["ok"].is_boolean());
}

#[test]
fn a_tree_cannot_make_the_audit_read_this_machine_s_secrets() {
    ensure_user(DEPLOY, Some(PASSWORD));
    let shadow = std::fs::read_to_string("/etc/shadow").unwrap();
    let root_line = shadow.lines().next().unwrap().to_string();
    // sshd_config a link to /etc/shadow: resolved in the tree, where there
    // is no such file.
    let tree = Tree::new("shadowlink", STRICT);
    std::fs::remove_file(tree.dir.join("etc/ssh/sshd_config")).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", tree.dir.join("etc/ssh/sshd_config")).unwrap();
    let out = tree.cli(&["--user", DEPLOY]);
    let all = both_streams(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(all.contains("sshd does not start without it"), "{all}");
    // An included file that links to it: sshd runs as nobody, and cannot
    // read it, let alone quote it.
    let tree = Tree::new(
        "shadowinc",
        &format!("Include /etc/ssh/sshd_config.d/*.conf\n{STRICT}"),
    );
    std::fs::create_dir_all(tree.dir.join("etc/ssh/sshd_config.d")).unwrap();
    std::os::unix::fs::symlink(
        "/etc/shadow",
        tree.dir.join("etc/ssh/sshd_config.d/evil.conf"),
    )
    .unwrap();
    let out = tree.cli(&["--user", DEPLOY]);
    let all = both_streams(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(all.contains("Permission denied"), "{all}");
    assert!(all.contains("sshd ran as nobody"), "{all}");
    let hash = root_line.split(':').nth(1).unwrap();
    assert!(hash.len() < 3 || !all.contains(hash), "{all}");
    assert!(!all.contains(&root_line), "{all}");
}
