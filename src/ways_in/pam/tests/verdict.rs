//! The verdicts: every control and action, jumps, done and die in includes
//! and substacks, reset, bad jumps, the canonical stack, Debian's
//! common-auth as pam-auth-update writes it with our three profiles.
//! tests/audit_pam.rs logs into many of the same stacks through libpam.
//! It stays one file: each stack is a table row, and their verdicts are read
//! side by side against what libpam does.
#![forbid(unsafe_code)]

use super::super::{PamAudit, asks_for_the_code_in, audit_source};
use super::tree;
use crate::config::{Config, Unenrolled};
use crate::ways_in::CodeAsked;

/// common-auth as pam-auth-update writes it with Debian's unix and
/// capability profiles and our three (twostep-preauth, twostep-authfail,
/// twostep): the canonical stack.
pub const COMMON_AUTH: &str = "\
# here are the per-package modules (the \"Primary\" block)
auth\trequisite\t\t\tpam_twostep.so preauth
auth\t[success=2 default=ignore]\tpam_unix.so nullok try_first_pass
auth\t[default=die]\t\t\tpam_twostep.so authfail
# here's the fallback if no module succeeds
auth\trequisite\t\t\tpam_deny.so
# prime the stack with a positive return value if there isn't one already;
auth\trequired\t\t\tpam_permit.so
# and here are more per-package modules (the \"Additional\" block)
auth\trequired\t\t\tpam_twostep.so 
auth\toptional\t\t\tpam_cap.so 
# end of pam-auth-update config
";

/// The same with libpam-sss, libpam-krb5 and libpam-ldapd's profiles
/// enabled too (pam-auth-update --root, the packages' own profiles).
pub const COMMON_AUTH_COMPOSED: &str = "\
auth\trequisite\t\t\tpam_twostep.so preauth
auth\t[success=5 default=ignore]\tpam_krb5.so minimum_uid=1000 try_first_pass
auth\t[success=4 default=ignore]\tpam_unix.so nullok try_first_pass
auth\t[success=3 default=ignore]\tpam_sss.so use_first_pass
auth\t[success=2 default=ignore]\tpam_ldap.so minimum_uid=1000 use_first_pass
auth\t[default=die]\t\t\tpam_twostep.so authfail
auth\trequisite\t\t\tpam_deny.so
auth\trequired\t\t\tpam_permit.so
auth\trequired\t\t\tpam_twostep.so 
auth\toptional\t\t\tpam_cap.so 
";

/// Debian's default common-auth (no twostep).
pub const COMMON_AUTH_DEBIAN: &str = "\
auth\t[success=1 default=ignore]\tpam_unix.so nullok
auth\trequisite\t\t\tpam_deny.so
auth\trequired\t\t\tpam_permit.so
auth\toptional\t\t\tpam_cap.so 
";

/// The canonical stack written out in one file, lines 1-7.
const CANONICAL: &str = "\
auth requisite pam_twostep.so preauth
auth [success=2 default=ignore] pam_unix.so
auth [default=die] pam_twostep.so authfail
auth requisite pam_deny.so
auth required pam_permit.so
auth required pam_twostep.so
auth optional pam_cap.so
";

fn run(files: &[(&str, &str)], config: &Config) -> PamAudit {
    audit_source(&tree(files), config, 1_000_000)
}

/// sshd's findings as "USERS@FILE:LINE" ("+" first: accepted; "idle": a
/// twostep line that does nothing).
fn findings(out: &PamAudit, service: &str) -> Vec<String> {
    let mut v: Vec<String> = out
        .findings
        .iter()
        .filter(|f| f.service == service)
        .map(|f| {
            let file = f
                .file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let file = file.trim_start_matches("/etc/pam.d/");
            let idle = ["never runs", "no code step after it"]
                .iter()
                .any(|w| f.why.contains(w));
            let users = if idle {
                "idle".into()
            } else {
                f.users.as_text()
            };
            let mark = if f.accepted { "+" } else { "" };
            format!("{mark}{users}@{file}:{}", f.line.unwrap_or(0))
        })
        .collect();
    v.sort();
    v
}

#[test]
fn stacks_and_their_verdicts() {
    // (what, sshd's file, other files, expected findings)
    type Case = (
        &'static str,
        String,
        &'static [(&'static str, &'static str)],
        &'static [&'static str],
    );
    let s = |t: &str| t.to_string();
    let with = |before: &str| format!("{before}\n{CANONICAL}");
    let cases: Vec<Case> = vec![
        ("the canonical stack", s(CANONICAL), &[], &[]),
        (
            "Debian's common-auth with our profiles",
            s("@include common-auth\n"),
            &[("/etc/pam.d/common-auth", COMMON_AUTH)],
            &[],
        ),
        (
            "with sss, krb5 and ldap composed in",
            s("@include common-auth\n"),
            &[("/etc/pam.d/common-auth", COMMON_AUTH_COMPOSED)],
            &[],
        ),
        (
            "Debian's common-auth without us",
            s("@include common-auth\n"),
            &[("/etc/pam.d/common-auth", COMMON_AUTH_DEBIAN)],
            &["all@common-auth:1"],
        ),
        (
            "sufficient pam_permit before us",
            with("auth sufficient pam_permit.so"),
            &[],
            &["all@sshd:1", "idle@sshd:4", "idle@sshd:7"],
        ),
        (
            "sufficient pam_unix before us",
            with("auth sufficient pam_unix.so"),
            &[],
            &["all@sshd:1"],
        ),
        (
            "a jump over the code step",
            s(
                "auth [success=2 default=ignore] pam_unix.so\nauth requisite pam_deny.so\n\
               auth required pam_twostep.so\nauth required pam_permit.so\n",
            ),
            &[],
            &["all@sshd:1", "idle@sshd:3"],
        ),
        (
            "a jump onto the code step",
            s(
                "auth [success=1 default=ignore] pam_unix.so\nauth requisite pam_deny.so\n\
               auth required pam_twostep.so\n",
            ),
            &[],
            &[],
        ),
        (
            "done in an include ends the whole stack",
            s("auth include inc\nauth required pam_twostep.so\n"),
            &[(
                "/etc/pam.d/inc",
                "auth sufficient pam_permit.so\nauth required pam_deny.so\n",
            )],
            &["all@inc:1", "idle@sshd:2"],
        ),
        (
            "done in a substack ends the substack only",
            s("auth substack inc\nauth required pam_twostep.so\n"),
            &[(
                "/etc/pam.d/inc",
                "auth sufficient pam_permit.so\nauth required pam_deny.so\n",
            )],
            &[],
        ),
        (
            "a jump cannot leave a substack: a bad jump",
            s("auth substack inc\nauth required pam_permit.so\n"),
            &[(
                "/etc/pam.d/inc",
                "auth [success=2 default=ignore] pam_permit.so\n",
            )],
            &[],
        ),
        (
            "a substack is one line for a jump",
            s(
                "auth [success=1 default=ignore] pam_unix.so\nauth substack inc\n\
               auth required pam_permit.so\n",
            ),
            &[(
                "/etc/pam.d/inc",
                "auth required pam_twostep.so\nauth required pam_deny.so\n",
            )],
            &["all@sshd:1"],
        ),
        (
            "die in an include ends everything",
            s("auth include inc\nauth [default=reset] pam_deny.so\nauth required pam_permit.so\n"),
            &[("/etc/pam.d/inc", "auth requisite pam_deny.so\n")],
            &[],
        ),
        (
            "die in a substack ends the substack, and a reset forgets it",
            s("auth substack inc\nauth [default=reset] pam_deny.so\nauth required pam_permit.so\n"),
            &[("/etc/pam.d/inc", "auth requisite pam_deny.so\n")],
            &["all@sshd:3"],
        ),
        (
            "reset goes back to the start",
            s(
                "auth required pam_deny.so\nauth [default=reset] pam_deny.so\n\
               auth required pam_permit.so\n",
            ),
            &[],
            &["all@sshd:3"],
        ),
        (
            "without the reset the failure stays",
            s(
                "auth required pam_deny.so\nauth [default=ignore] pam_deny.so\n\
               auth required pam_permit.so\n",
            ),
            &[],
            &[],
        ),
        (
            "a jump past the end is a bad jump",
            s("auth [success=2 default=ignore] pam_permit.so\nauth required pam_permit.so\n"),
            &[],
            &[],
        ),
        (
            "a jump sets nothing: jumping to the end fails",
            s("auth [success=1 default=ignore] pam_permit.so\nauth required pam_deny.so\n"),
            &[],
            &[],
        ),
        (
            "done on a failure ends it failed",
            s("auth [default=done] pam_deny.so\nauth required pam_permit.so\n"),
            &[],
            &[],
        ),
        (
            "ok on a failure sticks: a later success cannot change it",
            s("auth [default=ok] pam_deny.so\nauth required pam_permit.so\n"),
            &[],
            &[],
        ),
        (
            "bad, then sufficient: done needs a positive impression",
            s("auth required pam_deny.so\nauth sufficient pam_permit.so\n"),
            &[],
            &[],
        ),
        (
            "an optional code step",
            s("auth required pam_unix.so\nauth optional pam_twostep.so\n"),
            &[],
            &["all@sshd:2"],
        ),
        (
            "a code step whose failure is ignored",
            s("auth required pam_unix.so\nauth [success=ok default=ignore] pam_twostep.so\n"),
            &[],
            &["all@sshd:2"],
        ),
        (
            "pam_rootok sufficient (su's first line)",
            with("auth sufficient pam_rootok.so"),
            &[],
            &["root@sshd:1"],
        ),
        (
            "pam_succeed_if ingroup sufficient",
            with("auth sufficient pam_succeed_if.so user ingroup ops"),
            &[],
            &["group:ops@sshd:1"],
        ),
        (
            "pam_succeed_if for some accounts",
            with("auth sufficient pam_succeed_if.so quiet user in alice:bob"),
            &[],
            &["alice@sshd:1", "bob@sshd:1"],
        ),
        (
            "pam_succeed_if with two conditions: the narrower",
            with("auth sufficient pam_succeed_if.so uid >= 1000 user = deploy"),
            &[],
            &["deploy@sshd:1"],
        ),
        (
            "a negated condition may hold for anyone",
            with("auth sufficient pam_succeed_if.so user notingroup ops"),
            &[],
            &["all@sshd:1"],
        ),
        (
            "a service condition that does not hold here never succeeds",
            with("auth sufficient pam_succeed_if.so service = login"),
            &[],
            &[],
        ),
        (
            "an incomplete condition never succeeds",
            with("auth sufficient pam_succeed_if.so user ingroup"),
            &[],
            &[],
        ),
        (
            "pam_wheel trust",
            with("auth sufficient pam_wheel.so trust group=adm"),
            &[],
            &["group:adm@sshd:1"],
        ),
        (
            "a missing module with a `-`: it fails, it is not skipped",
            s("-auth required pam_gone.so\nauth required pam_permit.so\n"),
            &[],
            &[],
        ),
        (
            "a missing sufficient module lets no one in",
            with("-auth sufficient pam_gone.so"),
            &[],
            &[],
        ),
        (
            "a missing code step module: nobody gets in, nobody skips it",
            s("auth required pam_unix.so\nauth required /opt/gone/pam_twostep.so\n"),
            &[],
            &[],
        ),
        (
            "preauth without a code step",
            s("auth requisite pam_twostep.so preauth\nauth required pam_unix.so\n"),
            &[],
            &["all@sshd:2", "idle@sshd:1"],
        ),
        (
            "authfail no path reaches",
            s("auth requisite pam_twostep.so preauth\n\
               auth [success=1 default=die] pam_unix.so\n\
               auth [default=die] pam_twostep.so authfail\nauth required pam_twostep.so\n"),
            &[],
            &["idle@sshd:3"],
        ),
        (
            "twostep lines in a stack that lets no one in are moot",
            s("auth required pam_unix.so\nauth requisite pam_deny.so\n\
               auth [default=die] pam_twostep.so authfail\nauth required pam_twostep.so\n"),
            &[],
            &[],
        ),
        (
            "a service with no auth line of its own uses other",
            s("session required pam_unix.so\n"),
            &[("/etc/pam.d/other", "auth required pam_unix.so\n")],
            &["all@other:1"],
        ),
    ];
    for (what, sshd, files, want) in cases {
        let mut all = files.to_vec();
        all.push(("/etc/pam.d/sshd", &sshd));
        let out = run(&all, &Config::default());
        assert_eq!(findings(&out, "sshd"), *want, "{what}: {:#?}", out.findings);
        let asks = asks_for_the_code_in(&tree(&all), &Config::default(), 1_000_000, "sshd");
        let open = want
            .iter()
            .any(|w| !w.starts_with('+') && !w.starts_with("idle"));
        assert_eq!(asks.of_everyone(), !open, "{what}");
    }
}

#[test]
fn twostep_policy_skips_are_listed_as_accepted() {
    let files = [("/etc/pam.d/sshd", CANONICAL)];
    // (config, expected, a word of the why)
    let mut exempt = Config::default();
    exempt.policy.exempt_groups = vec!["ops".into(), "svc".into()];
    let allow = Config {
        unenrolled: Unenrolled::Allow,
        ..Config::default()
    };
    let mut nets = Config::default();
    nets.policy.trusted_networks = vec![crate::config::Cidr::parse("10.0.0.0/8").unwrap()];
    let cases = [
        (
            exempt,
            vec!["+group:ops@sshd:6", "+group:svc@sshd:6"],
            "policy.exempt_groups",
        ),
        (allow, vec!["+all@sshd:6"], "unenrolled"),
        (nets, vec!["+all@sshd:6"], "10.0.0.0/8"),
    ];
    for (config, want, word) in cases {
        let out = run(&files, &config);
        assert_eq!(findings(&out, "sshd"), want, "{:#?}", out.findings);
        assert!(out.findings.iter().all(|f| f.why.contains(word)), "{word}");
        assert!(asks_for_the_code_in(&tree(&files), &config, 1_000_000, "sshd").of_everyone());
    }
}

/// How sshd's stack asks for the code: at a prompt of its own, or in the
/// password's answer when a `preauth single` line comes before every code
/// step; a `single` stack that lets someone past the code is still a way in.
#[test]
fn single_on_the_preauth_line_takes_the_code_with_the_password() {
    use CodeAsked::*;
    let single = "auth requisite pam_twostep.so preauth single\n\
                  auth [success=1 default=ignore] pam_unix.so use_first_pass\n\
                  auth [default=die] pam_twostep.so authfail\n\
                  auth required pam_twostep.so\n";
    // (what, the sshd stack, how it asks, its findings)
    let cases: [(&str, &str, CodeAsked, &[&str]); 6] = [
        ("the canonical stack", CANONICAL, AtItsOwnPrompt, &[]),
        (
            "the contract's one-answer stack",
            single,
            WithThePassword,
            &[],
        ),
        (
            "single with no code step after it",
            "auth requisite pam_twostep.so preauth single\n\
             auth [success=1 default=ignore] pam_unix.so use_first_pass\n\
             auth [default=die] pam_twostep.so authfail\n\
             auth required pam_permit.so\n",
            NotOfEveryone,
            &["all@sshd:2", "idle@sshd:1"],
        ),
        (
            "single after the code step",
            "auth required pam_twostep.so\n\
             auth requisite pam_twostep.so preauth single\n\
             auth required pam_unix.so use_first_pass\n",
            AtItsOwnPrompt,
            &["idle@sshd:2"],
        ),
        (
            "a second code step before single's line",
            "auth required pam_twostep.so\n\
             auth requisite pam_twostep.so preauth single\n\
             auth required pam_unix.so use_first_pass\n\
             auth required pam_twostep.so\n",
            AtItsOwnPrompt,
            &[],
        ),
        (
            "no twostep at all",
            "auth required pam_unix.so\n",
            NotOfEveryone,
            &["all@sshd:1"],
        ),
    ];
    for (what, sshd, want, found) in cases {
        let files = [("/etc/pam.d/sshd", sshd)];
        let out = run(&files, &Config::default());
        assert_eq!(
            findings(&out, "sshd"),
            *found,
            "{what}: {:#?}",
            out.findings
        );
        let got = asks_for_the_code_in(&tree(&files), &Config::default(), 0, "sshd");
        assert_eq!(got, want, "{what}");
        if found.contains(&"idle@sshd:1") {
            let idle = out.findings.iter().find(|f| f.line == Some(1)).unwrap();
            assert!(idle.why.contains("no code step spends it"), "{}", idle.why);
        }
    }
}

#[test]
fn audit_accept_decides_for_asks_for_the_code() {
    let files = [
        (
            "/etc/pam.d/sshd",
            "auth sufficient pam_rootok.so\n@include common-auth\n",
        ),
        ("/etc/pam.d/common-auth", COMMON_AUTH),
    ];
    let mut config = Config::default();
    assert_eq!(
        asks_for_the_code_in(&tree(&files), &config, 0, "sshd"),
        CodeAsked::NotOfEveryone
    );
    config.audit.accept =
        vec![crate::ways_in::accept::Accept::parse("pam:sshd:pam_rootok").unwrap()];
    assert_eq!(
        asks_for_the_code_in(&tree(&files), &config, 0, "sshd"),
        CodeAsked::AtItsOwnPrompt
    );
}

#[test]
fn why_says_what_happens_and_the_fix() {
    let out = run(
        &[(
            "/etc/pam.d/sshd",
            &format!("auth sufficient pam_permit.so\n{CANONICAL}"),
        )],
        &Config::default(),
    );
    let f = &out.findings[0];
    assert_eq!(f.key, "pam:sshd:pam_permit");
    assert!(
        f.why
            .contains("pam_permit.so is sufficient before the code step (/etc/pam.d/sshd:7)"),
        "{}",
        f.why
    );
    assert!(
        f.why.contains("remove it or move it after the code step"),
        "{}",
        f.why
    );

    let out = run(
        &[("/etc/pam.d/other", COMMON_AUTH_DEBIAN)],
        &Config::default(),
    );
    let f = &out.findings[0];
    assert_eq!(
        (f.service.as_str(), f.key.as_str()),
        ("other", "pam:other:pam_unix")
    );
    assert!(
        f.why
            .starts_with("`other` is the stack of every service without a file"),
        "{}",
        f.why
    );
    assert!(f.why.contains("pam-auth-update --enable"), "{}", f.why);

    let out = run(
        &[(
            "/etc/pam.d/su",
            &format!("auth sufficient pam_rootok.so\n{CANONICAL}"),
        )],
        &Config::default(),
    );
    assert!(
        out.findings[0]
            .why
            .contains("audit.accept = [\"pam:su:pam_rootok\"]")
    );
}

#[test]
fn which_services_are_audited() {
    let files = [
        ("/etc/pam.d/common-auth", COMMON_AUTH_DEBIAN),
        ("/etc/pam.d/sshd", "@include common-auth\n"),
        ("/etc/pam.d/chfn", "@include common-auth\n"),
        ("/etc/pam.d/cron", "auth required pam_permit.so\n"),
        ("/etc/pam.d/dovecot", "@include common-auth\n"),
        (
            "/etc/pam.d/myapp",
            "auth required pam_unix.so\nauth optional pam_twostep.so\n",
        ),
        ("/etc/pam.d/unrelated", "auth required pam_permit.so\n"),
        ("/etc/pam.d/twostep-self", "auth required pam_permit.so\n"),
        ("/etc/pam.d/sshd.dpkg-old", "auth required pam_permit.so\n"),
        ("/usr/lib/pam.d/polkit-1", "auth required pam_permit.so\n"),
        ("/etc/pam.d/other", "auth required pam_deny.so\n"),
    ];
    let out = run(&files, &Config::default());
    let mut services: Vec<&str> = out.findings.iter().map(|f| f.service.as_str()).collect();
    services.dedup();
    assert_eq!(services, ["dovecot", "myapp", "polkit-1", "sshd"]);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
}

#[test]
fn problems_are_reported_with_file_and_line_and_the_rest_followed() {
    let files = [
        (
            "/etc/pam.d/sshd",
            "auth include missing\nauth sufficient pam_permit.so\n",
        ),
        ("/etc/pam.d/login", "auth include loop\n"),
        (
            "/etc/pam.d/loop",
            "auth sufficient pam_permit.so\nauth include loop\n",
        ),
        (
            "/etc/pam.d/su",
            "auth requird pam_permit.so\nauth required pam_twostep.so bogus\n",
        ),
    ];
    let out = run(&files, &Config::default());
    let errors: Vec<String> = out.errors.iter().map(|e| e.to_string()).collect();
    let expect = [
        "/etc/pam.d/sshd:1: /etc/pam.d/missing does not exist: libpam makes this line fail",
        "/etc/pam.d/loop:2: an include loop",
        "/etc/pam.d/su:1: the control requird cannot be parsed",
        "/etc/pam.d/su:2: pam_twostep.so refuses its arguments",
    ];
    for e in expect {
        assert!(errors.iter().any(|x| x.starts_with(e)), "{e}: {errors:#?}");
    }
    // The missing include fails (bad), so the sufficient line cannot end
    // it: no way in. The loop's first line still lets anyone in.
    assert_eq!(findings(&out, "sshd"), Vec::<String>::new());
    assert_eq!(findings(&out, "login"), ["all@loop:1"]);
    assert_eq!(findings(&out, "su"), Vec::<String>::new());
}

#[test]
fn the_walk_is_polynomial() {
    // 60 optional unknown modules, each of which may succeed, fail or be
    // ignored: 3^60 paths, a few hundred states.
    let mut text = String::new();
    for _ in 0..60 {
        text.push_str("auth optional pam_x.so\n");
    }
    text.push_str(CANONICAL);
    let start = std::time::Instant::now();
    let out = run(&[("/etc/pam.d/sshd", &text)], &Config::default());
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(findings(&out, "sshd"), Vec::<String>::new());
    assert!(start.elapsed().as_secs() < 5);
}
