//! `twostep audit`, PAM side, against the real libpam: each stack of the
//! table is written into a scratch system tree, audited
//! (`ways_in::pam::audit` with that tree as its root), and then logged into
//! through the real libpam (pamdrive) in a private mount namespace where
//! the tree's /etc/pam.d, /usr/lib/pam.d and module directory are the
//! system's, answering the password and a wrong code (or nothing):
//! - "way in for all": a login with a wrong code succeeds;
//! - "root": it succeeds for a root caller, and fails for another caller;
//! - "group:G": it succeeds for a member of G, fails for someone else;
//! - no way in: logins with a wrong code, or no answer, all fail (and,
//!   where the stack is meant to work, the right code succeeds);
//! - "all" where `preauth single` judges the code but no code step spends
//!   it: the same right answer logs in twice.
//!
//! The modules are the system's (pam_permit, pam_deny, pam_rootok,
//! pam_succeed_if, pam_unix with real passwords, pam_cap) and the module
//! under test, copied into the tree so that audit and login see the same.
//!
//! Needs root, `cargo build` first. Users ts-ap-a (in group ts-ap-g) and
//! ts-ap-b.
mod common;

use common::*;
use pam_twostep::config::Config;
use pam_twostep::ways_in::pam::{PamAudit, audit};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const IN_GROUP: &str = "ts-ap-a";
const OUTSIDER: &str = "ts-ap-b";
const GROUP: &str = "ts-ap-g";

fn password(user: &str) -> String {
    format!("{user}-Pw-7!")
}

fn users() {
    ensure_user(IN_GROUP, Some(&password(IN_GROUP)));
    ensure_user(OUTSIDER, Some(&password(OUTSIDER)));
    ensure_group(GROUP, &[IN_GROUP]);
}

/// The system modules the stacks use.
const SYSTEM_MODULES: [&str; 7] = [
    "pam_permit.so",
    "pam_deny.so",
    "pam_rootok.so",
    "pam_succeed_if.so",
    "pam_unix.so",
    "pam_cap.so",
    "pam_wheel.so",
];
const MODULE_DIR: &str = "lib/x86_64-linux-gnu/security";
const SYSTEM_MODULE_DIR: &str = "/usr/lib/x86_64-linux-gnu/security";

/// A scratch system tree.
struct Tree {
    dir: PathBuf,
}

impl Tree {
    fn new(name: &str) -> Tree {
        let dir = PathBuf::from(format!("/tmp/ts-ap-root-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for d in ["etc/pam.d", "usr/lib/pam.d", MODULE_DIR] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let modules = dir.join(MODULE_DIR);
        for m in SYSTEM_MODULES {
            std::fs::copy(Path::new(SYSTEM_MODULE_DIR).join(m), modules.join(m)).unwrap();
        }
        // The module under test: a hard link (42 MB unstripped), a copy if
        // the file systems differ.
        let ours = modules.join("pam_twostep.so");
        if std::fs::hard_link(module(), &ours).is_err() {
            std::fs::copy(module(), &ours).unwrap();
        }
        Tree { dir }
    }

    /// Writes `text` at `path` (as the tree names it).
    fn write(&self, path: &str, text: &str) {
        let host = self.dir.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(host.parent().unwrap()).unwrap();
        std::fs::write(host, text).unwrap();
    }

    /// Copies a host file into the tree at the same path (a rig's config,
    /// which the module reads by its host path and the audit in the tree).
    fn mirror(&self, host: &Path) {
        self.write(
            host.to_str().unwrap(),
            &std::fs::read_to_string(host).unwrap(),
        );
    }

    fn audit(&self, config: &Config) -> PamAudit {
        audit(&self.dir, config).unwrap()
    }

    /// A pamdrive login in a mount namespace that sees this tree's PAM
    /// directories and modules as the system's; as `caller` if given.
    fn login_command(&self, service: &str, user: &str, caller: Option<&str>) -> Command {
        let pamdrive = self.dir.join("pamdrive");
        if !pamdrive.exists() {
            std::fs::copy(common::pamdrive(), &pamdrive).unwrap();
        }
        let mut cmd = Command::new(PRIVATE_MOUNTS[0]);
        cmd.args(&PRIVATE_MOUNTS[1..]).args([
            "sh",
            "-c",
            // Few descriptors: an include loop then fails as it does with
            // sshd's limits, instead of exhausting the stack.
            r#"root=$1; shift
               mount --bind "$root/etc/pam.d" /etc/pam.d &&
               mount --bind "$root/usr/lib/pam.d" /usr/lib/pam.d &&
               mount --bind "$root/lib/x86_64-linux-gnu/security" /usr/lib/x86_64-linux-gnu/security &&
               ulimit -n 256 && exec "$@""#,
            "sh",
        ]);
        cmd.arg(&self.dir);
        if let Some(c) = caller {
            cmd.args(["setpriv", &format!("--reuid={c}"), "--regid=65534"])
                .args(["--clear-groups", "--"]);
        }
        cmd.arg(&pamdrive)
            .args([
                "--confdir",
                "/etc/pam.d",
                "--service",
                service,
                "--user",
                user,
            ])
            .args(["--nodelay", "--rhost", "192.0.2.77"]);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        cmd
    }

    /// The PAM result of a login answering the password, then `code` at
    /// any other prompt (`None`: no answer, the end of input).
    fn login(&self, service: &str, user: &str, code: Option<&str>, caller: Option<&str>) -> Login {
        let mut live = LiveLogin::spawn(self.login_command(service, user, caller));
        for _ in 0..8 {
            let chunk = live.until_prompt();
            let Some(last) = chunk.lines().last() else {
                break;
            };
            if !last.starts_with("PROMPT_") {
                break;
            }
            if last.contains("assword and code") {
                // One answer (`preauth single`): the password, then the code.
                live.answer(&format!("{}{}", password(user), code.unwrap_or("")));
            } else if last.contains("assword") {
                live.answer(&password(user));
            } else if let Some(c) = code {
                live.answer(c);
            } else {
                break;
            }
        }
        live.finish()
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What the audit must say of the service, which the logins then check.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// No way in (nor problem).
    Closed,
    /// These ways in, as "USERS" or "+USERS" (accepted: twostep's policy).
    Open(&'static [&'static str]),
    /// A way in for all where a wrong code is still refused, but the code
    /// is never spent (no code step): the right answer logs in twice.
    Replayable,
}

struct Case {
    name: &'static str,
    /// (path in the tree, text): `TWOSTEP` stands for the module with the
    /// rig's config.
    files: Vec<(&'static str, String)>,
    service: &'static str,
    /// Appended to the rig's config.
    config: &'static str,
    verdict: Verdict,
    /// A problem the audit must report (`FILE:LINE: what`, a part of it).
    problem: Option<&'static str>,
    /// Closed, and meant to work: the right code logs in.
    right_code_works: bool,
    /// common-auth composed with sss, krb5 and ldap's profiles too.
    composed: bool,
}

/// The canonical stack, in one file (lines 1-7 after what comes first).
const CANONICAL: &str = "\
auth requisite TWOSTEP preauth
auth [success=2 default=ignore] pam_unix.so nodelay
auth [default=die] TWOSTEP authfail
auth requisite pam_deny.so
auth required pam_permit.so
auth required TWOSTEP
auth optional pam_cap.so
";

/// The contract's stack for one answer: the password and the code together.
const SINGLE: &str = "\
auth requisite TWOSTEP preauth single
auth [success=1 default=ignore] pam_unix.so use_first_pass nodelay
auth [default=die] TWOSTEP authfail
auth required TWOSTEP
";

/// The auth part of the profiles of libpam-sss, libpam-krb5 and
/// libpam-ldapd (bookworm), as the packages ship them.
const OTHER_PROFILES: [(&str, &str); 3] = [
    (
        "sss",
        "Name: SSS authentication\nDefault: yes\nPriority: 128\nAuth-Type: Primary\nAuth:\n\
         \t[success=end default=ignore]\tpam_sss.so use_first_pass\nAuth-Initial:\n\
         \t[success=end default=ignore]\tpam_sss.so forward_pass\n",
    ),
    (
        "krb5",
        "Name: Kerberos authentication\nDefault: yes\nPriority: 704\nAuth-Type: Primary\n\
         Auth:\n\t[success=end default=ignore]\tpam_krb5.so minimum_uid=1000 try_first_pass\n\
         Auth-Initial:\n\t[success=end default=ignore]\tpam_krb5.so minimum_uid=1000\n",
    ),
    (
        "ldap",
        "Name: LDAP Authentication\nDefault: yes\nPriority: 128\nAuth-Type: Primary\n\
         Auth-Initial:\n\t[success=end default=ignore]\tpam_ldap.so minimum_uid=1000\nAuth:\n\
         \t[success=end default=ignore]\tpam_ldap.so minimum_uid=1000 use_first_pass\n",
    ),
];

/// common-auth as pam-auth-update writes it from Debian's unix, capability
/// and systemd profiles and our three (and, if `others`, those of sss, krb5
/// and ldap), in a scratch tree; `config=` added to our lines (the module
/// reads the rig's config).
fn common_auth(config: &Path, others: bool) -> String {
    let work = PathBuf::from(format!("/tmp/ts-ap-pau-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let profiles = work.join("usr/share/pam-configs");
    std::fs::create_dir_all(&profiles).unwrap();
    std::fs::create_dir_all(work.join("etc/pam.d")).unwrap();
    std::fs::create_dir_all(work.join("var/lib/pam")).unwrap();
    for p in ["unix", "capability", "systemd"] {
        std::fs::copy(
            Path::new("/usr/share/pam-configs").join(p),
            profiles.join(p),
        )
        .unwrap();
    }
    let mut enable = vec!["twostep", "twostep-preauth", "twostep-authfail"];
    if others {
        for (name, text) in OTHER_PROFILES {
            std::fs::write(profiles.join(name), text).unwrap();
            enable.push(name);
        }
    }
    let ours = Path::new(env!("CARGO_MANIFEST_DIR")).join("debian/pam-configs");
    for p in ["twostep", "twostep-preauth", "twostep-authfail"] {
        std::fs::copy(ours.join(p), profiles.join(p)).unwrap();
    }
    let out = Command::new("pam-auth-update")
        .arg("--root")
        .arg(&work)
        .args(["--force", "--enable"])
        .args(&enable)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .unwrap();
    assert!(out.status.success(), "pam-auth-update: {out:?}");
    let text = std::fs::read_to_string(work.join("etc/pam.d/common-auth")).unwrap();
    let _ = std::fs::remove_dir_all(&work);
    assert!(text.contains("pam_twostep.so preauth"), "{text}");
    assert_eq!(text.contains("pam_sss.so"), others, "{text}");
    text.replace(
        "pam_twostep.so",
        &format!("pam_twostep.so config={}", config.display()),
    )
}

fn cases() -> Vec<Case> {
    let s = |t: &str| t.to_string();
    let canonical_after = |first: &str| format!("{first}\n{CANONICAL}");
    let case = |name, files: Vec<(&'static str, String)>, service, verdict| Case {
        name,
        files,
        service,
        config: "",
        verdict,
        problem: None,
        right_code_works: false,
        composed: false,
    };
    let sub = "auth sufficient pam_unix.so nodelay\nauth requisite pam_deny.so\n";
    let long_comment = format!(
        "#{}auth sufficient pam_permit.so\n{CANONICAL}",
        "x".repeat(1022)
    );
    vec![
        Case {
            right_code_works: true,
            ..case(
                "Debian's defaults with our three profiles",
                vec![("/etc/pam.d/sshd", s("@include common-auth\n"))],
                "sshd",
                Verdict::Closed,
            )
        },
        Case {
            right_code_works: true,
            composed: true,
            ..case(
                "Debian's defaults with sss, krb5, ldap and our profiles",
                vec![("/etc/pam.d/sshd", s("@include common-auth\n"))],
                "sshd",
                Verdict::Closed,
            )
        },
        Case {
            right_code_works: true,
            ..case(
                "the canonical stack in one file",
                vec![("/etc/pam.d/login", s(CANONICAL))],
                "login",
                Verdict::Closed,
            )
        },
        case(
            "sufficient pam_permit before us",
            vec![(
                "/etc/pam.d/sshd",
                canonical_after("auth sufficient pam_permit.so"),
            )],
            "sshd",
            Verdict::Open(&["all"]),
        ),
        case(
            "a jump over the code step",
            vec![(
                "/etc/pam.d/sshd",
                s("auth [success=2 default=ignore] pam_unix.so nodelay\n\
                   auth requisite pam_deny.so\nauth required TWOSTEP\nauth required pam_permit.so\n"),
            )],
            "sshd",
            Verdict::Open(&["all"]),
        ),
        Case {
            right_code_works: true,
            ..case(
                "substack with done: it ends the substack only",
                vec![
                    (
                        "/etc/pam.d/sshd",
                        s("auth substack ts-ap-sub\nauth required TWOSTEP\n"),
                    ),
                    ("/etc/pam.d/ts-ap-sub", s(sub)),
                ],
                "sshd",
                Verdict::Closed,
            )
        },
        case(
            "include with done: it ends everything",
            vec![
                (
                    "/etc/pam.d/sshd",
                    s("auth include ts-ap-sub\nauth required TWOSTEP\n"),
                ),
                ("/etc/pam.d/ts-ap-sub", s(sub)),
            ],
            "sshd",
            Verdict::Open(&["all"]),
        ),
        case(
            "die in a substack, then a reset",
            vec![
                (
                    "/etc/pam.d/sshd",
                    s(
                        "auth substack ts-ap-sub\nauth [default=reset] pam_deny.so\n\
                       auth required pam_unix.so nodelay\n",
                    ),
                ),
                ("/etc/pam.d/ts-ap-sub", s("auth requisite pam_deny.so\n")),
            ],
            "sshd",
            Verdict::Open(&["all"]),
        ),
        case(
            "die in an include ends everything, reset or not",
            vec![
                (
                    "/etc/pam.d/sshd",
                    s("auth include ts-ap-sub\nauth [default=reset] pam_deny.so\n\
                       auth required pam_unix.so nodelay\n"),
                ),
                ("/etc/pam.d/ts-ap-sub", s("auth requisite pam_deny.so\n")),
            ],
            "sshd",
            Verdict::Closed,
        ),
        case(
            "other without us",
            vec![("/etc/pam.d/other", s("auth required pam_unix.so nodelay\n"))],
            "other",
            Verdict::Open(&["all"]),
        ),
        case(
            "an optional code step",
            vec![(
                "/etc/pam.d/sshd",
                s("auth required pam_unix.so nodelay\nauth optional TWOSTEP\n"),
            )],
            "sshd",
            Verdict::Open(&["all"]),
        ),
        case(
            "pam_rootok sufficient (su's first line)",
            vec![(
                "/etc/pam.d/su",
                s("auth sufficient pam_rootok.so\n@include common-auth\n"),
            )],
            "su",
            Verdict::Open(&["root"]),
        ),
        Case {
            right_code_works: true,
            ..case(
                "pam_succeed_if ingroup sufficient",
                vec![(
                    "/etc/pam.d/sshd",
                    s(
                        "auth sufficient pam_succeed_if.so quiet user ingroup ts-ap-g\n\
                       @include common-auth\n",
                    ),
                )],
                "sshd",
                Verdict::Open(&["group:ts-ap-g"]),
            )
        },
        Case {
            config: "[policy]\nexempt_groups = [\"ts-ap-g\"]\n",
            right_code_works: true,
            ..case(
                "exempt_groups: a skip by twostep's own policy",
                vec![("/etc/pam.d/sshd", s("@include common-auth\n"))],
                "sshd",
                Verdict::Open(&["+group:ts-ap-g"]),
            )
        },
        Case {
            problem: Some("/etc/pam.d/sshd:1: /etc/pam.d/ts-ap-missing does not exist"),
            ..case(
                "a missing include",
                vec![(
                    "/etc/pam.d/sshd",
                    s("auth include ts-ap-missing\nauth sufficient pam_permit.so\n"),
                )],
                "sshd",
                Verdict::Closed,
            )
        },
        Case {
            problem: Some("/etc/pam.d/ts-ap-loop:2: an include loop"),
            ..case(
                "an include loop",
                vec![
                    ("/etc/pam.d/sshd", s("auth include ts-ap-loop\n")),
                    (
                        "/etc/pam.d/ts-ap-loop",
                        s("auth required pam_permit.so\nauth include ts-ap-loop\n"),
                    ),
                ],
                "sshd",
                Verdict::Closed,
            )
        },
        Case {
            problem: Some("/etc/pam.d/sshd:1: the control requird cannot be parsed"),
            ..case(
                "a control word libpam cannot parse",
                vec![(
                    "/etc/pam.d/sshd",
                    canonical_after("auth requird pam_permit.so"),
                )],
                "sshd",
                Verdict::Closed,
            )
        },
        case(
            "a `-` before a missing module: it fails, it is not skipped",
            vec![(
                "/etc/pam.d/sshd",
                canonical_after("-auth required pam_ts_ap_gone.so\nauth sufficient pam_permit.so"),
            )],
            "sshd",
            Verdict::Closed,
        ),
        Case {
            problem: Some("/etc/pam.d/sshd:1: longer than 1023 bytes"),
            ..case(
                "the end of a long comment is a line to libpam 1.5",
                vec![("/etc/pam.d/sshd", long_comment)],
                "sshd",
                Verdict::Open(&["all"]),
            )
        },
        Case {
            right_code_works: true,
            ..case(
                "one answer: preauth single, then the code step",
                vec![("/etc/pam.d/sshd", s(SINGLE))],
                "sshd",
                Verdict::Closed,
            )
        },
        case(
            "one answer with no code step: the code is never spent",
            vec![(
                "/etc/pam.d/sshd",
                SINGLE.replace("auth required TWOSTEP\n", "auth required pam_permit.so\n"),
            )],
            "sshd",
            Verdict::Replayable,
        ),
    ]
}

/// The service's findings as "USERS" ("+USERS": accepted).
fn verdict_of(out: &PamAudit, service: &str) -> Vec<String> {
    let mut v: Vec<String> = out
        .findings
        .iter()
        .filter(|f| f.service == service)
        .filter(|f| !f.why.contains("never runs") && !f.why.contains("no code step after it"))
        .map(|f| format!("{}{}", if f.accepted { "+" } else { "" }, f.users.as_text()))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The audit's verdict, then the logins that show it is libpam's.
fn check(case: &Case) {
    users();
    let tag: String = case
        .name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(24)
        .collect();
    let rig = Rig::new(&format!("ts-ap-{tag}"), "");
    rig.write_config(&format!(
        "[lockout]\ntiers = [{{failures = 1000, lock = \"1m\"}}]\n{}",
        case.config
    ));
    rig.enroll(IN_GROUP, SECRET);
    rig.enroll(OUTSIDER, SECRET);
    let tree = Tree::new(&tag);
    tree.mirror(&rig.config);
    let module = format!("pam_twostep.so config={}", rig.config.display());
    tree.write(
        "/etc/pam.d/common-auth",
        &common_auth(&rig.config, case.composed),
    );
    for (path, text) in &case.files {
        tree.write(path, &text.replace("TWOSTEP", &module));
    }
    let config = Config::load(&rig.config, true).unwrap();
    let out = tree.audit(&config);
    let errors: Vec<String> = out.errors.iter().map(|e| e.to_string()).collect();
    match case.problem {
        Some(p) => assert!(
            errors.iter().any(|e| e.starts_with(p)),
            "{}: no problem {p:?} in {errors:#?}",
            case.name
        ),
        None => assert!(errors.is_empty(), "{}: {errors:#?}", case.name),
    }
    let got = verdict_of(&out, case.service);
    let want: Vec<String> = match &case.verdict {
        Verdict::Closed => Vec::new(),
        Verdict::Open(w) => w.iter().map(|s| s.to_string()).collect(),
        Verdict::Replayable => vec!["all".to_string()],
    };
    assert_eq!(got, want, "{}: {:#?}", case.name, out.findings);

    // The service as libpam runs it: `other` through a name without a file.
    let service = if case.service == "other" {
        "ts-ap-nofile"
    } else {
        case.service
    };
    let wrong = wrong_code();
    let login = |user: &str, code: Option<&str>, caller: Option<&str>| {
        let l = tree.login(service, user, code, caller);
        (l.code, l.out)
    };
    let fails = |user: &str, code: Option<&str>, caller: Option<&str>, why: &str| {
        let (code, out) = login(user, code, caller);
        assert_ne!(code, PAM_SUCCESS, "{}: {why}: {out}", case.name);
    };
    let succeeds = |user: &str, code: Option<&str>, caller: Option<&str>, why: &str| {
        let (code, out) = login(user, code, caller);
        assert_eq!(code, PAM_SUCCESS, "{}: {why}: {out}", case.name);
    };
    match &case.verdict {
        Verdict::Closed => {
            for user in [IN_GROUP, OUTSIDER] {
                fails(user, Some(&wrong), None, "closed, yet a wrong code got in");
                fails(user, None, None, "closed, yet no answer got in");
            }
        }
        Verdict::Open(ways) => {
            for way in ways.iter().map(|w| w.trim_start_matches('+')) {
                match way {
                    "all" => succeeds(OUTSIDER, Some(&wrong), None, "open to all"),
                    "root" => {
                        succeeds(OUTSIDER, Some(&wrong), None, "open to a root caller");
                        fails(OUTSIDER, Some(&wrong), Some(OUTSIDER), "root only");
                    }
                    "group:ts-ap-g" => {
                        succeeds(IN_GROUP, Some(&wrong), None, "open to the group");
                        fails(OUTSIDER, Some(&wrong), None, "the group only");
                    }
                    other => panic!("no login check for {other}"),
                }
            }
        }
        Verdict::Replayable => {
            fresh_step(5);
            let code = oath_code(SECRET, 0);
            succeeds(OUTSIDER, Some(&code), None, "the right code");
            succeeds(OUTSIDER, Some(&code), None, "the same code again");
        }
    }
    if case.right_code_works {
        fresh_step(5);
        let code = oath_code(SECRET, 0);
        succeeds(OUTSIDER, Some(&code), None, "the right code");
    }
}

#[test]
fn each_stack_is_judged_as_libpam_judges_it() {
    let all = cases();
    let only = std::env::var("TS_AP_CASE").ok();
    let mut ran = 0;
    for case in all
        .iter()
        .filter(|c| only.as_deref().is_none_or(|o| c.name.contains(o)))
    {
        check(case);
        ran += 1;
    }
    assert!(ran > 0);
}

#[test]
fn the_command_prints_the_report_then_the_problems_and_exits_2() {
    users();
    let rig = Rig::new("ts-ap-cli", "");
    let tree = Tree::new("cli");
    tree.mirror(&rig.config);
    tree.write(
        "/etc/pam.d/sshd",
        "auth include ts-ap-missing\nauth required pam_unix.so\n",
    );
    tree.write("/etc/pam.d/other", "auth required pam_unix.so\n");
    let out = rig.cli(&["audit", "--root", tree.dir.to_str().unwrap(), "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("/etc/pam.d/sshd:1: /etc/pam.d/ts-ap-missing does not exist"),
        "{stderr}"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let other = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["service"] == "other")
        .unwrap_or_else(|| panic!("{json}"));
    assert_eq!(other["users"], "all");
    assert_eq!(other["file"], "/etc/pam.d/other");
    assert_eq!(other["line"], 1);
    assert_eq!(json["ok"], false);
}

#[test]
fn audit_accept_lists_a_way_in_as_accepted() {
    users();
    let rig = Rig::new("ts-ap-accept", "");
    rig.write_config("[audit]\naccept = [\"pam:su:pam_rootok\"]\n");
    let tree = Tree::new("accept");
    tree.mirror(&rig.config);
    // Under --root, the tree's own config is the one audited.
    tree.write(
        "/etc/twostep/twostep.toml",
        &std::fs::read_to_string(&rig.config).unwrap(),
    );
    tree.write("/etc/pam.d/common-auth", &common_auth(&rig.config, false));
    tree.write(
        "/etc/pam.d/su",
        "auth sufficient pam_rootok.so\n@include common-auth\n",
    );
    let out = rig.cli(&["audit", "--root", tree.dir.to_str().unwrap(), "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let su: Vec<&serde_json::Value> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["service"] == "su")
        .collect();
    assert_eq!(su.len(), 1, "{json}");
    assert_eq!(su[0]["users"], "root");
    assert_eq!(su[0]["accepted"], true);
}
