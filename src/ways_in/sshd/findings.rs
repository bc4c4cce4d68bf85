//! The verdicts of every audited account over every connection, as the
//! report says them: one finding per way in and account, with what lets
//! them in and the fix; notes for what is not a way in but worth knowing.
//!
//! **One finding for all.** A way in that every audited account sshd lets
//! in at all has, over the same connections and accepted or not alike, is
//! one finding with `users: "all"` (and `sshd:METHOD:*` as its key) when
//! more than one account was audited. An account that sshd lets in by no
//! method (root with `PermitRootLogin no`) does not stand in the way;
//! an account that logs in only with the code does.
#![forbid(unsafe_code)]

use super::connections::Connection;
use super::settings::{Effective, Method, RootLogin};
use super::verdict::{Pass, Verdict, WayIn};
use crate::ways_in::accept::Accept;
use crate::ways_in::{Finding, Users};
use std::collections::{BTreeMap, BTreeSet};

/// One audited account's verdicts, one per connection (in the order of
/// the connections).
pub struct Audited<'a> {
    pub name: &'a str,
    pub is_root: bool,
    pub verdicts: Vec<(&'a Effective, Verdict)>,
}

/// A way in, said without the account or the connection.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Draft {
    setting: &'static str,
    method: &'static str,
    /// What lets them in, `{who}` standing for the account(s).
    what: String,
    /// The fix, before "or accept it with ...".
    fix: String,
}

fn methods_text(list: &[Method]) -> String {
    list.iter()
        .map(|m| m.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn draft(way: &WayIn, s: &Effective, is_root: bool) -> Draft {
    let method = way.key_method();
    let setting = way.setting();
    let (mut what, fix) = match way {
        WayIn::NoPam {
            lists,
            built_without_pam,
        } => {
            let by = lists
                .iter()
                .map(|l| methods_text(l))
                .collect::<Vec<_>>()
                .join(" or ");
            if *built_without_pam {
                (
                    format!(
                        "this sshd has no PAM support: it lets {{who}} in by {by} without \
                         the code"
                    ),
                    "use an sshd built with PAM".to_string(),
                )
            } else {
                (
                    format!(
                        "UsePAM no: sshd lets {{who}} in by {by} without the PAM stack, so \
                         without the code"
                    ),
                    "set UsePAM yes (with KbdInteractiveAuthentication yes and \
                     AuthenticationMethods publickey,keyboard-interactive)"
                        .to_string(),
                )
            }
        }
        WayIn::List { list, passes, any } => {
            let text = methods_text(list);
            if passes.contains(&Pass::Kerberos) {
                (
                    format!(
                        "KerberosAuthentication yes: sshd checks the password of {{who}} \
                         against Kerberos, not the PAM stack, so {text} logs them in without \
                         the code"
                    ),
                    "set KerberosAuthentication no".to_string(),
                )
            } else if passes.contains(&Pass::PamWithoutCode) {
                (
                    format!(
                        "{text} goes through the sshd PAM stack, which does not ask every \
                         user for the code: it lets {{who}} in without it"
                    ),
                    "make the sshd PAM stack ask for the code (see the PAM findings for \
                     sshd)"
                        .to_string(),
                )
            } else if *any {
                let m = list.first().copied().unwrap_or(Method::Publickey);
                (
                    format!(
                        "AuthenticationMethods any with {} yes allows {text} alone for \
                         {{who}}, without the code",
                        m.setting()
                    ),
                    format!(
                        "use AuthenticationMethods \"{text},keyboard-interactive\" (or {} \
                         no)",
                        m.setting()
                    ),
                )
            } else {
                let alone = if list.len() == 1 { " alone" } else { "" };
                (
                    format!(
                        "AuthenticationMethods allows {text}{alone} for {{who}}, without the \
                         code"
                    ),
                    format!("use \"{text},keyboard-interactive\""),
                )
            }
        }
    };
    if is_root && s.root_login == RootLogin::ForcedCommandsOnly {
        what.push_str(
            " (as root only with a key whose authorized_keys line forces a command: \
             PermitRootLogin forced-commands-only)",
        );
    }
    Draft {
        setting,
        method,
        what,
        fix,
    }
}

/// "root, alice, bob", at most 8 names, then how many more.
pub fn names(list: &[&str]) -> String {
    let shown: Vec<&str> = list.iter().take(8).copied().collect();
    let mut text = shown.join(", ");
    if list.len() > shown.len() {
        text.push_str(&format!(" and {} more", list.len() - shown.len()));
    }
    text
}

/// Where a way in is open when not over every connection.
fn over(seen: &BTreeSet<usize>, connections: &[Connection]) -> String {
    if seen.len() == connections.len() {
        return String::new();
    }
    let Some(first) = connections.first() else {
        return String::new();
    };
    let described: Vec<String> = seen
        .iter()
        .filter_map(|i| connections.get(*i))
        .map(|c| match c.describe(first) {
            d if d.is_empty() => "from an address no Match line names".to_string(),
            d => d,
        })
        .collect();
    format!(" (connections {})", described.join("; "))
}

/// The findings and notes for every audited account.
pub fn build(
    audited: &[Audited<'_>],
    connections: &[Connection],
    accept: &[Accept],
) -> (Vec<Finding>, Vec<String>) {
    // For each account: each way in, with the connections where it is open.
    type Ways = BTreeMap<Draft, BTreeSet<usize>>;
    let mut per_account: Vec<(&str, Ways)> = Vec::new();
    let mut logs_in: Vec<&str> = Vec::new();
    let mut nobody_in: Vec<&str> = Vec::new();
    let mut one_answer: Vec<&str> = Vec::new();
    let mut nothing_asks: Vec<&str> = Vec::new();
    for a in audited {
        let mut ways: Ways = BTreeMap::new();
        for (i, (s, v)) in a.verdicts.iter().enumerate() {
            for way in &v.ways {
                ways.entry(draft(way, s, a.is_root)).or_default().insert(i);
            }
        }
        let any = |f: fn(&Verdict) -> bool| a.verdicts.iter().any(|(_, v)| f(v));
        if any(|v| v.logs_in) {
            logs_in.push(a.name);
        } else {
            nobody_in.push(a.name);
        }
        if any(|v| v.one_answer) {
            one_answer.push(a.name);
        }
        if any(|v| v.nothing_asks) {
            nothing_asks.push(a.name);
        }
        per_account.push((a.name, ways));
    }
    let accepted = |method: &str, whom: &str| {
        let key = format!("sshd:{method}:{whom}");
        accept.iter().any(|e| e.matches(&key))
    };
    // Who has each (way, connections, accepted).
    let mut holders: BTreeMap<(Draft, BTreeSet<usize>, bool), Vec<&str>> = BTreeMap::new();
    for (name, ways) in &per_account {
        for (d, seen) in ways {
            let ok = accepted(d.method, name);
            holders
                .entry((d.clone(), seen.clone(), ok))
                .or_default()
                .push(name);
        }
    }
    let mut findings = Vec::new();
    for ((d, seen, ok), who) in holders {
        let everyone = who.len() > 1 && who.len() == logs_in.len();
        let targets: Vec<(Users, String, String)> = if everyone {
            vec![(
                Users::All,
                "*".to_string(),
                format!("every account sshd lets in ({})", who.len()),
            )]
        } else {
            who.iter()
                .map(|n| (Users::User(n.to_string()), n.to_string(), n.to_string()))
                .collect()
        };
        for (users, whom, who_text) in targets {
            let why = format!(
                "{}{}: {}, or accept it with audit.accept = [\"sshd:{}:{whom}\"]",
                d.what.replace("{who}", &who_text),
                over(&seen, connections),
                d.fix,
                d.method
            );
            findings.push(Finding {
                service: "sshd".into(),
                file: None,
                line: None,
                setting: Some(d.setting.to_string()),
                users,
                why,
                key: format!("sshd:{}:{whom}", d.method),
                accepted: ok,
            });
        }
    }
    findings.sort_by(|a, b| (&a.users, &a.key, &a.why).cmp(&(&b.users, &b.key, &b.why)));
    let mut notes = Vec::new();
    if !one_answer.is_empty() {
        notes.push(format!(
            "sshd: PasswordAuthentication yes (for {}) is not a way in without the code: \
             sshd's password method answers every hidden PAM prompt with the one password \
             typed, so the code prompt of a stack that asks for it (twostep's canonical \
             stack) gets the password, and the login is refused as a wrong code (and \
             counted as one): set PasswordAuthentication no, or let the password's answer \
             carry the code (`pam_twostep.so preauth single` and `pam_unix.so \
             use_first_pass`, pam_twostep(8))",
            names(&one_answer)
        ));
    }
    if !nothing_asks.is_empty() {
        notes.push(format!(
            "sshd: no method that logs in {} asks for the code (keyboard-interactive, \
             through the PAM stack, is what asks it: KbdInteractiveAuthentication yes and \
             AuthenticationMethods publickey,keyboard-interactive)",
            names(&nothing_asks)
        ));
    }
    if !nobody_in.is_empty() {
        notes.push(format!("sshd: lets in by no method: {}", names(&nobody_in)));
    }
    (findings, notes)
}

#[cfg(test)]
mod tests {
    use super::super::settings::Methods;
    use super::super::verdict::verdict;
    use super::*;
    use crate::ways_in::CodeAsked;

    fn settings(methods: Methods) -> Effective {
        Effective {
            use_pam: Some(true),
            methods,
            pubkey: true,
            key_source: true,
            hostbased: false,
            gssapi: false,
            password: false,
            kbd_interactive: true,
            kerberos: false,
            root_login: RootLogin::No,
        }
    }

    fn conn(addr: &str) -> Connection {
        Connection {
            addr: addr.into(),
            ..Connection::first("22")
        }
    }

    /// Through a PAM stack that asks for the code at its own prompt.
    fn audited<'a>(name: &'a str, is_root: bool, per_conn: &[&'a Effective]) -> Audited<'a> {
        audited_asked(name, is_root, per_conn, CodeAsked::AtItsOwnPrompt)
    }

    fn audited_asked<'a>(
        name: &'a str,
        is_root: bool,
        per_conn: &[&'a Effective],
        asked: CodeAsked,
    ) -> Audited<'a> {
        Audited {
            name,
            is_root,
            verdicts: per_conn
                .iter()
                .map(|s| (*s, verdict(s, is_root, asked)))
                .collect(),
        }
    }

    fn show(f: &[Finding]) -> Vec<(String, String, bool)> {
        f.iter()
            .map(|f| (f.users.as_text(), f.key.clone(), f.accepted))
            .collect()
    }

    #[test]
    fn a_way_in_of_every_account_that_logs_in_is_one_finding_for_all() {
        let any = settings(Methods::Any);
        let connections = [Connection::first("22")];
        // root logs in by no method (PermitRootLogin no): it does not stand
        // in the way.
        let a = [
            audited("root", true, &[&any]),
            audited("alice", false, &[&any]),
            audited("bob", false, &[&any]),
        ];
        let (f, notes) = build(&a, &connections, &[]);
        assert_eq!(show(&f), [("all".into(), "sshd:publickey:*".into(), false)]);
        assert_eq!(f[0].setting.as_deref(), Some("AuthenticationMethods"));
        assert_eq!(
            f[0].why,
            "AuthenticationMethods any with PubkeyAuthentication yes allows publickey alone \
             for every account sshd lets in (2), without the code: use AuthenticationMethods \
             \"publickey,keyboard-interactive\" (or PubkeyAuthentication no), or accept it \
             with audit.accept = [\"sshd:publickey:*\"]"
        );
        assert_eq!(notes, ["sshd: lets in by no method: root"]);
        // One account alone is named, not "all".
        let (f, _) = build(&a[1..2], &connections, &[]);
        assert_eq!(
            show(&f),
            [("alice".into(), "sshd:publickey:alice".into(), false)]
        );
        assert!(f[0].why.contains("for alice, without"), "{}", f[0].why);
    }

    #[test]
    fn an_account_that_must_give_the_code_keeps_the_others_named() {
        let any = settings(Methods::Any);
        let strict = settings(Methods::Lists(vec![vec![
            Method::Publickey,
            Method::KeyboardInteractive,
        ]]));
        let connections = [Connection::first("22")];
        let a = [
            audited("alice", false, &[&strict]),
            audited("deploy", false, &[&any]),
            audited("ci", false, &[&any]),
        ];
        let (f, _) = build(&a, &connections, &[]);
        assert_eq!(
            show(&f),
            [
                ("ci".into(), "sshd:publickey:ci".into(), false),
                ("deploy".into(), "sshd:publickey:deploy".into(), false),
            ]
        );
    }

    #[test]
    fn accepted_ways_are_marked_and_grouped_apart() {
        let any = settings(Methods::Any);
        let connections = [Connection::first("22")];
        let a = [
            audited("alice", false, &[&any]),
            audited("deploy", false, &[&any]),
        ];
        let deploy = [Accept::parse("sshd:publickey:deploy").unwrap()];
        let (f, _) = build(&a, &connections, &deploy);
        assert_eq!(
            show(&f),
            [
                ("alice".into(), "sshd:publickey:alice".into(), false),
                ("deploy".into(), "sshd:publickey:deploy".into(), true),
            ]
        );
        let everyone = [Accept::parse("sshd:publickey:*").unwrap()];
        let (f, _) = build(&a, &connections, &everyone);
        assert_eq!(show(&f), [("all".into(), "sshd:publickey:*".into(), true)]);
        // Another method's entry accepts nothing here.
        let other = [Accept::parse("sshd:hostbased:*").unwrap()];
        let (f, _) = build(&a, &connections, &other);
        assert!(!f[0].accepted);
    }

    #[test]
    fn a_way_in_over_some_connections_says_which() {
        let strict = settings(Methods::Lists(vec![vec![
            Method::Publickey,
            Method::KeyboardInteractive,
        ]]));
        let key_alone = settings(Methods::Lists(vec![vec![Method::Publickey]]));
        let connections = [Connection::first("22"), conn("10.0.0.1")];
        let a = [audited("deploy", false, &[&strict, &key_alone])];
        let (f, _) = build(&a, &connections, &[]);
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0].why,
            "AuthenticationMethods allows publickey alone for deploy, without the code \
             (connections from 10.0.0.1): use \"publickey,keyboard-interactive\", or accept \
             it with audit.accept = [\"sshd:publickey:deploy\"]"
        );
        // Over every connection: nothing said about them.
        let a = [audited("deploy", false, &[&key_alone, &key_alone])];
        let (f, _) = build(&a, &connections, &[]);
        assert!(!f[0].why.contains("connections"), "{}", f[0].why);
        // Over the first only.
        let a = [audited("deploy", false, &[&key_alone, &strict])];
        let (f, _) = build(&a, &connections, &[]);
        assert!(
            f[0].why
                .contains("(connections from an address no Match line names)"),
            "{}",
            f[0].why
        );
    }

    #[test]
    fn each_kind_of_way_in_says_its_setting_and_fix() {
        let connections = [Connection::first("22")];
        let nopam = Effective {
            use_pam: Some(false),
            ..settings(Methods::Any)
        };
        let kerberos = Effective {
            pubkey: false,
            password: true,
            kerberos: true,
            ..settings(Methods::Any)
        };
        let pair = settings(Methods::Lists(vec![vec![
            Method::Publickey,
            Method::Hostbased,
        ]]));
        let pair = Effective {
            hostbased: true,
            ..pair
        };
        let forced = Effective {
            root_login: RootLogin::ForcedCommandsOnly,
            ..settings(Methods::Any)
        };
        let table: [(&Effective, bool, &str, &str, &str); 4] = [
            (
                &nopam,
                false,
                "UsePAM",
                "sshd:nopam:u",
                "UsePAM no: sshd lets u in by publickey without the PAM stack",
            ),
            (
                &kerberos,
                false,
                "KerberosAuthentication",
                "sshd:password:u",
                "checks the password of u against Kerberos",
            ),
            (
                &pair,
                false,
                "AuthenticationMethods",
                "sshd:publickey:u",
                "allows publickey,hostbased for u, without the code: use \
                 \"publickey,hostbased,keyboard-interactive\"",
            ),
            (
                &forced,
                true,
                "AuthenticationMethods",
                "sshd:publickey:u",
                "PermitRootLogin forced-commands-only",
            ),
        ];
        for (s, is_root, setting, key, words) in table {
            let a = [audited("u", is_root, &[s])];
            let (f, _) = build(&a, &connections, &[]);
            assert_eq!(f.len(), 1, "{s:?}");
            assert_eq!(f[0].setting.as_deref(), Some(setting));
            assert_eq!(f[0].key, key);
            assert!(f[0].why.contains(words), "{}", f[0].why);
            assert_eq!(f[0].file, None);
            assert_eq!(f[0].service, "sshd");
        }
        // Through a PAM stack that does not ask for the code.
        let s = settings(Methods::Any);
        let a = [Audited {
            name: "u",
            is_root: false,
            verdicts: vec![(&s, verdict(&s, false, CodeAsked::NotOfEveryone))],
        }];
        let (f, _) = build(&a, &connections, &[]);
        let got: Vec<(&str, Option<&str>)> = f
            .iter()
            .map(|f| (f.key.as_str(), f.setting.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "sshd:keyboard-interactive:u",
                    Some("KbdInteractiveAuthentication")
                ),
                ("sshd:publickey:u", Some("AuthenticationMethods")),
            ]
        );
        assert!(f[0].why.contains("does not ask every user for the code"));
    }

    #[test]
    fn the_password_method_and_a_code_free_sshd_are_noted() {
        let connections = [Connection::first("22")];
        let password = Effective {
            pubkey: false,
            password: true,
            ..settings(Methods::Any)
        };
        let a = [audited("u", false, &[&password])];
        let (f, notes) = build(&a, &connections, &[]);
        assert!(f.is_empty());
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("PasswordAuthentication yes (for u) is not a way in"));
        // With `preauth single` the one answer carries the code: nothing
        // to note, and no way in.
        let a = [audited_asked(
            "u",
            false,
            &[&password],
            CodeAsked::WithThePassword,
        )];
        assert_eq!(build(&a, &connections, &[]), (vec![], vec![]));
        // A stack that does not ask everyone: a way in, not a note.
        let a = [audited_asked(
            "u",
            false,
            &[&password],
            CodeAsked::NotOfEveryone,
        )];
        let (f, notes) = build(&a, &connections, &[]);
        assert_eq!(
            show(&f),
            [
                ("u".into(), "sshd:keyboard-interactive:u".into(), false),
                ("u".into(), "sshd:password:u".into(), false)
            ]
        );
        assert!(
            notes.iter().all(|n| !n.contains("is not a way in")),
            "{notes:?}"
        );
        let keys_only = Effective {
            kbd_interactive: false,
            ..settings(Methods::Any)
        };
        let a = [audited("u", false, &[&keys_only])];
        let (f, notes) = build(&a, &connections, &[]);
        assert_eq!(f.len(), 1);
        assert!(notes[0].contains("no method that logs in u asks for the code"));
    }

    #[test]
    fn names_are_cut_after_eight() {
        let many: Vec<String> = (0..11).map(|i| format!("u{i}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(names(&refs), "u0, u1, u2, u3, u4, u5, u6, u7 and 3 more");
        assert_eq!(names(&refs[..2]), "u0, u1");
    }
}
