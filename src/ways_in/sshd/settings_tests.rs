//! sshd's settings as its -T dump and debug log give them, from Debian 12's
//! sshd 9.2 and older names.
#![forbid(unsafe_code)]
use super::*;

/// What sshd 9.2 prints for Debian 12's configuration, cut to the lines
/// read here and a few around them.
const DEBIAN: &str = "port 22\n\
        addressfamily any\n\
        listenaddress [::]:22\n\
        listenaddress 0.0.0.0:22\n\
        usepam yes\n\
        permitrootlogin without-password\n\
        hostbasedauthentication no\n\
        pubkeyauthentication yes\n\
        kerberosauthentication no\n\
        gssapiauthentication no\n\
        passwordauthentication yes\n\
        kbdinteractiveauthentication no\n\
        authorizedkeysfile .ssh/authorized_keys .ssh/authorized_keys2\n\
        authorizedkeyscommand none\n\
        trustedusercakeys none\n\
        hostkey /etc/ssh/ssh_host_rsa_key\n\
        hostkey /etc/ssh/ssh_host_ed25519_key\n\
        authenticationmethods any\n";

fn debian() -> Effective {
    Dump::parse(DEBIAN).effective().unwrap()
}

#[test]
fn the_dump_reads_keywords_and_repeated_values() {
    let d = Dump::parse(DEBIAN);
    assert_eq!(d.get("port"), Some("22"));
    assert_eq!(
        d.all("hostkey"),
        ["/etc/ssh/ssh_host_rsa_key", "/etc/ssh/ssh_host_ed25519_key"]
    );
    assert_eq!(
        d.get("authorizedkeysfile"),
        Some(".ssh/authorized_keys .ssh/authorized_keys2")
    );
    assert_eq!(d.get("nosuch"), None);
    assert_eq!(d.all("nosuch"), [] as [String; 0]);
    // Blank lines, tabs, CRLF and a keyword alone.
    let d = Dump::parse("\r\n  UsePAM\tyes\r\nbanner\n\n");
    assert_eq!(d.get("usepam"), Some("yes"));
    assert_eq!(d.get("banner"), Some(""));
}

#[test]
fn debian_defaults() {
    assert_eq!(
        debian(),
        Effective {
            use_pam: Some(true),
            methods: Methods::Any,
            pubkey: true,
            key_source: true,
            hostbased: false,
            gssapi: false,
            password: true,
            kbd_interactive: false,
            kerberos: false,
            root_login: RootLogin::ProhibitPassword,
        }
    );
}

/// DEBIAN with `key` given `value` (or removed, for `None`).
fn with(key: &str, value: Option<&str>) -> Result<Effective, String> {
    let mut text: String = DEBIAN
        .lines()
        .filter(|l| l.split(' ').next() != Some(key))
        .map(|l| format!("{l}\n"))
        .collect();
    if let Some(v) = value {
        text.push_str(&format!("{key} {v}\n"));
    }
    Dump::parse(&text).effective()
}

#[test]
fn each_setting_is_read_or_refused_saying_why() {
    use Method::*;
    // (key, value, what it gives, or the error's words)
    type Check = fn(&Effective) -> bool;
    let ok: [(&str, Option<&str>, Check); 26] = [
        ("usepam", Some("no"), |e| e.use_pam == Some(false)),
        ("usepam", None, |e| e.use_pam.is_none()),
        ("pubkeyauthentication", Some("no"), |e| !e.pubkey),
        ("hostbasedauthentication", Some("yes"), |e| e.hostbased),
        ("gssapiauthentication", Some("yes"), |e| e.gssapi),
        ("gssapiauthentication", None, |e| !e.gssapi),
        ("kerberosauthentication", Some("yes"), |e| e.kerberos),
        ("kerberosauthentication", None, |e| !e.kerberos),
        ("passwordauthentication", Some("no"), |e| !e.password),
        ("kbdinteractiveauthentication", Some("yes"), |e| {
            e.kbd_interactive
        }),
        ("permitrootlogin", Some("yes"), |e| {
            e.root_login == RootLogin::Yes
        }),
        ("permitrootlogin", Some("prohibit-password"), |e| {
            e.root_login == RootLogin::ProhibitPassword
        }),
        ("permitrootlogin", Some("forced-commands-only"), |e| {
            e.root_login == RootLogin::ForcedCommandsOnly
        }),
        ("permitrootlogin", Some("no"), |e| {
            e.root_login == RootLogin::No
        }),
        ("authenticationmethods", Some("publickey"), |e| {
            e.methods == Methods::Lists(vec![vec![Publickey]])
        }),
        (
            "authenticationmethods",
            Some("publickey,keyboard-interactive:pam password"),
            |e| {
                e.methods
                    == Methods::Lists(vec![vec![Publickey, KeyboardInteractive], vec![Password]])
            },
        ),
        (
            "authenticationmethods",
            Some("hostbased,gssapi-with-mic   keyboard-interactive"),
            |e| {
                e.methods
                    == Methods::Lists(vec![
                        vec![Hostbased, GssapiWithMic],
                        vec![KeyboardInteractive],
                    ])
            },
        ),
        ("authorizedkeysfile", Some("none"), |e| !e.key_source),
        ("authorizedkeysfile", None, |e| !e.key_source),
        ("authorizedkeyscommand", Some("/usr/bin/keys %u"), |e| {
            e.key_source
        }),
        ("trustedusercakeys", Some("/etc/ssh/ca.pub"), |e| {
            e.key_source
        }),
        ("hostkey", None, |e| e.pubkey),
        ("port", None, |e| e.pubkey),
        ("listenaddress", None, |e| e.pubkey),
        ("addressfamily", None, |e| e.pubkey),
        ("usepam", Some("yes"), |e| e.use_pam == Some(true)),
    ];
    for (key, value, check) in ok {
        let e = with(key, value).unwrap_or_else(|e| panic!("{key} {value:?}: {e}"));
        assert!(check(&e), "{key} {value:?}: {e:?}");
    }
    let bad = [
        ("usepam", Some("maybe"), "not yes or no"),
        (
            "pubkeyauthentication",
            None,
            "printed no \"pubkeyauthentication\"",
        ),
        ("passwordauthentication", None, "printed no"),
        ("hostbasedauthentication", None, "printed no"),
        ("permitrootlogin", None, "printed no"),
        ("authenticationmethods", None, "printed no"),
        ("permitrootlogin", Some("sometimes"), "does not know"),
        (
            "authenticationmethods",
            Some("publickey,fingerprint"),
            "\"fingerprint\"",
        ),
        ("authenticationmethods", Some(""), "empty"),
        ("gssapiauthentication", Some("1"), "not yes or no"),
    ];
    for (key, value, want) in bad {
        let e = with(key, value).unwrap_err();
        assert!(e.contains(want), "{key} {value:?}: {e}");
    }
}

#[test]
fn keys_come_from_somewhere_unless_every_source_is_none() {
    let text = DEBIAN.replace(
        "authorizedkeysfile .ssh/authorized_keys .ssh/authorized_keys2",
        "authorizedkeysfile none",
    );
    assert!(!Dump::parse(&text).effective().unwrap().key_source);
}

#[test]
fn older_sshd_names_keyboard_interactive_challengeresponse() {
    let text = DEBIAN.replace(
        "kbdinteractiveauthentication no",
        "challengeresponseauthentication yes",
    );
    assert!(Dump::parse(&text).effective().unwrap().kbd_interactive);
    let text = DEBIAN.replace("kbdinteractiveauthentication no\n", "");
    let e = Dump::parse(&text).effective().unwrap_err();
    assert!(e.contains("challengeresponseauthentication"), "{e}");
}

/// What sshd 9.2 logged at -ddd for a configuration with an Include.
const LOG: &str = "debug2: load_server_config: filename /tmp/c1\n\
        debug3: /tmp/c1:2 setting UsePAM yes\n\
        debug2: /tmp/c1 line 3: new include /etc/ssh/sshd_config.d/*.conf\n\
        debug2: /tmp/c1 line 3: including /etc/ssh/sshd_config.d/a.conf\n\
        debug3: checking syntax for 'Match User x*'\n\
        debug3: checking syntax for 'Match User deploy,!root Address 10.0.0.0/8'\n\
        debug3: checking syntax for 'Match Group=adm LocalAddress \"192.0.2.5\" LocalPort 2222'\n\
        debug3: checking syntax for 'Match all'\n\
        debug3: checking syntax for 'Match Host *.example.com RDomain vrf1'\n\
        debug3: checking syntax for 'Match User x*'\n\
        debug1: sshd version OpenSSH_9.2, OpenSSL 3.0.19 27 Jan 2026\n\
        debug3: checking match for 'User x*' user xy host unknown addr 10.1.1.1 laddr 198.51.100.1 lport 22\n";

#[test]
fn match_lines_come_from_the_debug_log_once_each() {
    use Criterion::*;
    let lines = match_lines(LOG);
    let got: Vec<(&str, Vec<(Criterion, &str)>)> = lines
        .iter()
        .map(|m| {
            (
                m.text.as_str(),
                m.criteria.iter().map(|(c, v)| (*c, v.as_str())).collect(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("User x*", vec![(User, "x*")]),
            (
                "User deploy,!root Address 10.0.0.0/8",
                vec![(User, "deploy,!root"), (Address, "10.0.0.0/8")]
            ),
            (
                "Group=adm LocalAddress \"192.0.2.5\" LocalPort 2222",
                vec![
                    (Group, "adm"),
                    (LocalAddress, "192.0.2.5"),
                    (LocalPort, "2222")
                ]
            ),
            ("all", vec![(All, "")]),
            (
                "Host *.example.com RDomain vrf1",
                vec![(Host, "*.example.com"), (RDomain, "vrf1")]
            ),
        ]
    );
    assert!(match_lines("").is_empty());
    assert!(match_lines("checking syntax for 'Match ").len() <= 1);
}

#[test]
fn includes_are_read_from_the_debug_log() {
    assert_eq!(
        includes(LOG),
        (
            vec!["/etc/ssh/sshd_config.d/a.conf".to_string()],
            vec!["/etc/ssh/sshd_config.d/*.conf".to_string()]
        )
    );
}

#[test]
fn a_match_line_is_seen_in_a_file() {
    let table = [
        ("Match User x", true),
        ("  match all", true),
        ("\tMATCH=Group adm", true),
        ("# Match User x", false),
        ("UsePAM yes", false),
        ("ForceCommand match", false),
        ("", false),
    ];
    for (text, want) in table {
        assert_eq!(mentions_match(text), want, "{text:?}");
    }
}
