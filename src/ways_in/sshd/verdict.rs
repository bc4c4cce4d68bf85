//! From one user's effective sshd settings to the ways in: which lists of
//! methods log them in, and whether one of the steps asks for the code.
//! Pure, and tested over every combination of the settings it reads.
//!
//! How each method meets the code, as OpenSSH 9 behaves (auth2-*.c,
//! auth-pam.c, auth-passwd.c):
//!
//! - publickey, hostbased, gssapi-with-mic: sshd decides alone; the PAM
//!   auth stack is not run, so never the code step.
//! - keyboard-interactive: with UsePAM yes, the PAM auth stack, every
//!   prompt passed to the client. With UsePAM no there is no device for
//!   it on Linux: it cannot log anyone in.
//! - password: with KerberosAuthentication yes, the KDC checks it, PAM is
//!   not asked (a principal unknown to the KDC falls back to what follows).
//!   With UsePAM yes, the PAM auth stack, whose every hidden prompt sshd
//!   answers with the one password typed: a stack that asks for the code
//!   at a prompt of its own gets the password as the code and refuses the
//!   login; a stack whose `preauth single` line takes the password and the
//!   code in one answer asks for the code in it. With UsePAM no, the
//!   password is checked against the shadow file.
//! - `AuthenticationMethods any`: each method that is on is a list of its
//!   own. A list logs in only when each of its methods can succeed.
//! - root (uid 0): `PermitRootLogin` refuses the methods it does not allow
//!   at each step: `prohibit-password` leaves publickey, hostbased and
//!   gssapi-with-mic; `forced-commands-only` a key with a forced command;
//!   `no` nothing.
#![forbid(unsafe_code)]

use super::settings::{Effective, Method, Methods, RootLogin};
use crate::ways_in::CodeAsked;

/// How a step of a list gets past the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pass {
    /// It does not go through the PAM auth stack (publickey, hostbased,
    /// gssapi-with-mic; every method when sshd does not use PAM).
    NoPamStack,
    /// The password method with KerberosAuthentication: the KDC checks it.
    Kerberos,
    /// Through the sshd PAM stack, which does not ask every user for the
    /// code.
    PamWithoutCode,
    /// Through the sshd PAM stack, which asks for the code (at its own
    /// prompt, or in the password's answer with `preauth single`).
    PamAsksCode,
    /// The password method through a PAM stack that asks for the code at a
    /// prompt of its own: one answer for every prompt, so the code prompt
    /// gets the password.
    PamOneAnswer,
}

impl Pass {
    pub fn asks_code(self) -> bool {
        matches!(self, Pass::PamAsksCode | Pass::PamOneAnswer)
    }
}

/// One way in without the code.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WayIn {
    /// sshd does not use PAM (`UsePAM no`, or built without it): these
    /// lists log the user in, none through the code.
    NoPam {
        lists: Vec<Vec<Method>>,
        built_without_pam: bool,
    },
    /// With PAM: this list logs the user in, and none of its steps asks
    /// for the code. `any`: the list is one method that
    /// `AuthenticationMethods any` allows alone.
    List {
        list: Vec<Method>,
        passes: Vec<Pass>,
        any: bool,
    },
}

impl WayIn {
    /// `audit.accept`'s METHOD: `nopam`, or the list's first method.
    pub fn key_method(&self) -> &'static str {
        match self {
            WayIn::NoPam { .. } => "nopam",
            WayIn::List { list, .. } => list.first().map_or("none", |m| m.as_str()),
        }
    }

    /// The sshd setting that opens it: where the fix goes.
    pub fn setting(&self) -> &'static str {
        match self {
            WayIn::NoPam { .. } => "UsePAM",
            WayIn::List { list, passes, .. } => {
                if passes.contains(&Pass::Kerberos) {
                    "KerberosAuthentication"
                } else if let Some(i) = passes.iter().position(|p| *p == Pass::PamWithoutCode) {
                    list.get(i).map_or("UsePAM", |m| m.setting())
                } else {
                    "AuthenticationMethods"
                }
            }
        }
    }
}

/// What sshd's settings give one user for one connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The ways in without the code.
    pub ways: Vec<WayIn>,
    /// Some list logs the user in at all (with the code or without).
    pub logs_in: bool,
    /// The password method reaches a PAM stack that asks for the code at a
    /// prompt of its own, with one answer: the login is refused (a note,
    /// not a way in).
    pub one_answer: bool,
    /// The user can log in, and no method that could log them in asks for
    /// the code at all.
    pub nothing_asks: bool,
}

/// Whether `method` can succeed for this user, and how it meets the code.
pub fn pass(s: &Effective, method: Method, is_root: bool, pam: CodeAsked) -> Option<Pass> {
    let on = match method {
        Method::Publickey => s.pubkey && s.key_source,
        Method::Hostbased => s.hostbased,
        Method::GssapiWithMic => s.gssapi,
        Method::Password => s.password,
        Method::KeyboardInteractive => s.kbd_interactive && s.use_pam == Some(true),
    };
    if !on || (is_root && !root_may(s.root_login, method)) {
        return None;
    }
    let through_pam = |asks| {
        if s.use_pam != Some(true) {
            Pass::NoPamStack
        } else if !pam.of_everyone() {
            Pass::PamWithoutCode
        } else {
            asks
        }
    };
    Some(match method {
        Method::Publickey | Method::Hostbased | Method::GssapiWithMic => Pass::NoPamStack,
        Method::KeyboardInteractive => through_pam(Pass::PamAsksCode),
        Method::Password if s.kerberos => Pass::Kerberos,
        Method::Password => through_pam(match pam {
            CodeAsked::WithThePassword => Pass::PamAsksCode,
            CodeAsked::AtItsOwnPrompt | CodeAsked::NotOfEveryone => Pass::PamOneAnswer,
        }),
    })
}

/// `auth_root_allowed()`: what `PermitRootLogin` leaves to uid 0.
fn root_may(root_login: RootLogin, method: Method) -> bool {
    match root_login {
        RootLogin::Yes => true,
        RootLogin::ProhibitPassword => matches!(
            method,
            Method::Publickey | Method::Hostbased | Method::GssapiWithMic
        ),
        // sshd's own test: a forced command from the key's options.
        RootLogin::ForcedCommandsOnly => method == Method::Publickey,
        RootLogin::No => false,
    }
}

/// The ways in for one user (`is_root`: uid 0) under settings `s`.
pub fn verdict(s: &Effective, is_root: bool, pam: CodeAsked) -> Verdict {
    let (lists, any): (Vec<Vec<Method>>, bool) = match &s.methods {
        Methods::Any => (Method::ALL.into_iter().map(|m| vec![m]).collect(), true),
        Methods::Lists(lists) => (lists.clone(), false),
    };
    let mut out = Verdict::default();
    let mut usable: Vec<(Vec<Method>, Vec<Pass>)> = Vec::new();
    for list in lists {
        let passes: Option<Vec<Pass>> = list.iter().map(|m| pass(s, *m, is_root, pam)).collect();
        if let Some(passes) = passes {
            usable.push((list, passes));
        }
    }
    out.logs_in = !usable.is_empty();
    out.one_answer = usable
        .iter()
        .any(|(_, passes)| passes.contains(&Pass::PamOneAnswer));
    out.nothing_asks = out.logs_in
        && usable
            .iter()
            .all(|(_, passes)| !passes.iter().any(|p| p.asks_code()));
    let free: Vec<(Vec<Method>, Vec<Pass>)> = usable
        .into_iter()
        .filter(|(_, passes)| !passes.iter().any(|p| p.asks_code()))
        .collect();
    if s.use_pam != Some(true) {
        if !free.is_empty() {
            out.ways.push(WayIn::NoPam {
                lists: free.into_iter().map(|(list, _)| list).collect(),
                built_without_pam: s.use_pam.is_none(),
            });
        }
        return out;
    }
    out.ways = free
        .into_iter()
        .map(|(list, passes)| WayIn::List { list, passes, any })
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use CodeAsked::*;
    use Method::*;

    const ALL_ASKED: [CodeAsked; 3] = [NotOfEveryone, AtItsOwnPrompt, WithThePassword];

    fn base() -> Effective {
        Effective {
            use_pam: Some(true),
            methods: Methods::Any,
            pubkey: false,
            key_source: true,
            hostbased: false,
            gssapi: false,
            password: false,
            kbd_interactive: false,
            kerberos: false,
            root_login: RootLogin::No,
        }
    }

    /// The methods that log a user in without the code, as one string per
    /// list ("publickey", "publickey,hostbased"), or "nopam:LISTS".
    fn free(v: &Verdict) -> Vec<String> {
        v.ways
            .iter()
            .map(|w| match w {
                WayIn::NoPam { lists, .. } => format!(
                    "nopam:{}",
                    lists.iter().map(|l| join(l)).collect::<Vec<_>>().join(" ")
                ),
                WayIn::List { list, .. } => join(list),
            })
            .collect()
    }

    fn join(list: &[Method]) -> String {
        list.iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Every method on or off, every PAM and Kerberos setting, every
    /// answer of the PAM analysis, `any`: the ways in are exactly the
    /// methods on that reach no code step, one list each.
    #[test]
    fn with_any_each_method_that_is_on_and_skips_the_code_is_a_way_in() {
        for (bits, asked) in (0u32..(1 << 8)).flat_map(|b| ALL_ASKED.map(|a| (b, a))) {
            let bit = |i: u32| bits & (1 << i) != 0;
            let s = Effective {
                use_pam: if bit(0) { Some(true) } else { Some(false) },
                methods: Methods::Any,
                pubkey: bit(1),
                key_source: bit(2),
                hostbased: bit(3),
                gssapi: bit(4),
                password: bit(5),
                kbd_interactive: bit(6),
                kerberos: bit(7),
                root_login: RootLogin::Yes,
            };
            let v = verdict(&s, false, asked);
            let pam = s.use_pam == Some(true);
            let code = asked.of_everyone();
            let mut want: Vec<String> = Vec::new();
            if s.pubkey && s.key_source {
                want.push("publickey".into());
            }
            if s.hostbased {
                want.push("hostbased".into());
            }
            if s.gssapi {
                want.push("gssapi-with-mic".into());
            }
            if s.password && (s.kerberos || !pam || !code) {
                want.push("password".into());
            }
            if s.kbd_interactive && pam && !code {
                want.push("keyboard-interactive".into());
            }
            if !pam && !want.is_empty() {
                want = vec![format!("nopam:{}", want.join(" "))];
            }
            assert_eq!(free(&v), want, "{s:?} {asked:?}");
            let logs_in = (s.pubkey && s.key_source)
                || s.hostbased
                || s.gssapi
                || s.password
                || (s.kbd_interactive && pam);
            assert_eq!(v.logs_in, logs_in, "{s:?}");
            // Refused at a code prompt of its own; with `single` the one
            // answer carries the code.
            assert_eq!(
                v.one_answer,
                s.password && pam && asked == AtItsOwnPrompt && !s.kerberos,
                "{s:?} {asked:?}"
            );
            let asks = pam && code && ((s.password && !s.kerberos) || s.kbd_interactive);
            assert_eq!(v.nothing_asks, logs_in && !asks, "{s:?} {asked:?}");
        }
    }

    /// sshd's password method alone (PasswordAuthentication yes, nothing
    /// else), for each way the PAM stack asks for the code.
    #[test]
    fn the_password_method_with_the_code_in_its_answer_is_neither_a_way_in_nor_refused() {
        // (how the stack asks, Kerberos, the ways in, refused at the code prompt)
        let table: [(CodeAsked, bool, &[&str], bool); 6] = [
            (NotOfEveryone, false, &["password"], false),
            (AtItsOwnPrompt, false, &[], true),
            (WithThePassword, false, &[], false),
            // The KDC checks the password: PAM's stack is not asked.
            (NotOfEveryone, true, &["password"], false),
            (AtItsOwnPrompt, true, &["password"], false),
            (WithThePassword, true, &["password"], false),
        ];
        for (asked, kerberos, ways, refused) in table {
            let s = Effective {
                password: true,
                kerberos,
                root_login: RootLogin::Yes,
                ..base()
            };
            for is_root in [false, true] {
                let v = verdict(&s, is_root, asked);
                assert_eq!(free(&v), ways, "{asked:?} kerberos={kerberos}");
                assert_eq!(v.one_answer, refused, "{asked:?} kerberos={kerberos}");
                assert!(v.logs_in);
                assert_eq!(v.nothing_asks, !ways.is_empty(), "{asked:?}");
            }
            // UsePAM no: the shadow file, whatever the stack says.
            let no_pam = Effective {
                use_pam: Some(false),
                ..s
            };
            let v = verdict(&no_pam, false, asked);
            assert_eq!(free(&v), ["nopam:password"], "{asked:?}");
            assert!(!v.one_answer);
        }
    }

    /// Every list of one or two methods, with every method on or off, PAM
    /// asking for the code: a list is a way in when each of its methods is
    /// on and none is keyboard-interactive or password through PAM.
    #[test]
    fn a_list_is_a_way_in_when_every_step_is_on_and_none_asks_the_code() {
        let mut lists: Vec<Vec<Method>> = Method::ALL.iter().map(|m| vec![*m]).collect();
        for a in Method::ALL {
            for b in Method::ALL {
                if a != b {
                    lists.push(vec![a, b]);
                }
            }
        }
        for list in &lists {
            for on in 0u32..(1 << 5) {
                let is_on = |m: Method| on & (1 << (m as u32)) != 0;
                let s = Effective {
                    methods: Methods::Lists(vec![list.clone()]),
                    pubkey: is_on(Publickey),
                    hostbased: is_on(Hostbased),
                    gssapi: is_on(GssapiWithMic),
                    password: is_on(Password),
                    kbd_interactive: is_on(KeyboardInteractive),
                    root_login: RootLogin::Yes,
                    ..base()
                };
                let v = verdict(&s, false, AtItsOwnPrompt);
                let all_on = list.iter().all(|m| is_on(*m));
                let asks = list.contains(&Password) || list.contains(&KeyboardInteractive);
                let want: Vec<String> = if all_on && !asks {
                    vec![join(list)]
                } else {
                    vec![]
                };
                assert_eq!(free(&v), want, "{list:?} on={on:05b}");
                assert_eq!(v.logs_in, all_on, "{list:?} on={on:05b}");
                if let [WayIn::List { any, passes, .. }] = v.ways.as_slice() {
                    assert!(!any);
                    assert!(passes.iter().all(|p| *p == Pass::NoPamStack));
                }
                // Without the code in the PAM stack, every list that logs
                // in is a way in.
                let v = verdict(&s, false, NotOfEveryone);
                assert_eq!(v.ways.len(), usize::from(all_on), "{list:?} {on:05b}");
            }
        }
    }

    #[test]
    fn several_lists_each_judged() {
        let s = Effective {
            methods: Methods::Lists(vec![
                vec![Publickey, KeyboardInteractive],
                vec![Hostbased],
                vec![Password],
                vec![GssapiWithMic, Publickey],
            ]),
            pubkey: true,
            hostbased: true,
            gssapi: true,
            password: true,
            kbd_interactive: true,
            root_login: RootLogin::Yes,
            ..base()
        };
        let v = verdict(&s, false, AtItsOwnPrompt);
        assert_eq!(free(&v), ["hostbased", "gssapi-with-mic,publickey"]);
        assert!(v.one_answer);
        assert!(!v.nothing_asks);
        assert_eq!(v.ways[1].key_method(), "gssapi-with-mic");
    }

    #[test]
    fn permit_root_login_limits_root_only() {
        // (PermitRootLogin, methods that are on, the ways in for root)
        let all_on = Effective {
            pubkey: true,
            hostbased: true,
            gssapi: true,
            password: true,
            kbd_interactive: true,
            ..base()
        };
        let table: [(RootLogin, &[&str], bool); 4] = [
            (
                RootLogin::Yes,
                &["publickey", "hostbased", "gssapi-with-mic"],
                true,
            ),
            (
                RootLogin::ProhibitPassword,
                &["publickey", "hostbased", "gssapi-with-mic"],
                true,
            ),
            (RootLogin::ForcedCommandsOnly, &["publickey"], true),
            (RootLogin::No, &[], false),
        ];
        for (root_login, want, logs_in) in table {
            let s = Effective {
                root_login,
                ..all_on.clone()
            };
            let v = verdict(&s, true, AtItsOwnPrompt);
            assert_eq!(free(&v), want, "{root_login:?}");
            assert_eq!(v.logs_in, logs_in, "{root_login:?}");
            // Root never gets a password or keyboard-interactive step
            // unless PermitRootLogin yes.
            assert_eq!(v.one_answer, root_login == RootLogin::Yes);
            // Others are not limited.
            let v = verdict(&s, false, AtItsOwnPrompt);
            assert_eq!(
                free(&v),
                ["publickey", "hostbased", "gssapi-with-mic"],
                "{root_login:?}"
            );
        }
        // publickey then keyboard-interactive: prohibit-password refuses
        // root's second step, so root has no way in at all.
        let s = Effective {
            methods: Methods::Lists(vec![vec![Publickey, KeyboardInteractive]]),
            root_login: RootLogin::ProhibitPassword,
            ..all_on
        };
        let v = verdict(&s, true, AtItsOwnPrompt);
        assert!(!v.logs_in);
        assert!(v.ways.is_empty());
    }

    #[test]
    fn without_pam_every_list_that_logs_in_is_one_way_in() {
        let s = Effective {
            use_pam: Some(false),
            methods: Methods::Lists(vec![
                vec![Publickey, KeyboardInteractive],
                vec![Publickey, Password],
            ]),
            pubkey: true,
            password: true,
            kbd_interactive: true,
            root_login: RootLogin::Yes,
            ..base()
        };
        let v = verdict(&s, false, AtItsOwnPrompt);
        // keyboard-interactive has no device without PAM: that list is out.
        assert_eq!(free(&v), ["nopam:publickey,password"]);
        assert_eq!(v.ways[0].key_method(), "nopam");
        assert_eq!(v.ways[0].setting(), "UsePAM");
        assert!(v.nothing_asks);
        let built_without = Effective {
            use_pam: None,
            ..s.clone()
        };
        assert!(matches!(
            verdict(&built_without, false, AtItsOwnPrompt)
                .ways
                .as_slice(),
            [WayIn::NoPam {
                built_without_pam: true,
                ..
            }]
        ));
        // Nothing logs in: no way in, even without PAM.
        let nothing = Effective {
            methods: Methods::Lists(vec![vec![Publickey, KeyboardInteractive]]),
            ..s
        };
        let v = verdict(&nothing, false, AtItsOwnPrompt);
        assert!(v.ways.is_empty());
        assert!(!v.logs_in);
    }

    #[test]
    fn the_setting_named_is_where_the_fix_goes() {
        // (settings, how the stack asks, (method, setting) of each way in)
        type Row = (
            Effective,
            CodeAsked,
            &'static [(&'static str, &'static str)],
        );
        let table: [Row; 4] = [
            (
                Effective {
                    pubkey: true,
                    ..base()
                },
                AtItsOwnPrompt,
                &[("publickey", "AuthenticationMethods")],
            ),
            (
                Effective {
                    password: true,
                    kerberos: true,
                    ..base()
                },
                AtItsOwnPrompt,
                &[("password", "KerberosAuthentication")],
            ),
            (
                Effective {
                    password: true,
                    kbd_interactive: true,
                    ..base()
                },
                NotOfEveryone,
                &[
                    ("password", "PasswordAuthentication"),
                    ("keyboard-interactive", "KbdInteractiveAuthentication"),
                ],
            ),
            (
                Effective {
                    methods: Methods::Lists(vec![vec![Publickey, KeyboardInteractive]]),
                    pubkey: true,
                    kbd_interactive: true,
                    ..base()
                },
                NotOfEveryone,
                &[("publickey", "KbdInteractiveAuthentication")],
            ),
        ];
        for (s, asked, want) in table {
            let got: Vec<(&str, &str)> = verdict(&s, false, asked)
                .ways
                .iter()
                .map(|w| (w.key_method(), w.setting()))
                .collect();
            assert_eq!(got, want, "{s:?}");
        }
    }

    #[test]
    fn keys_without_a_place_to_find_them_log_no_one_in() {
        let s = Effective {
            pubkey: true,
            key_source: false,
            ..base()
        };
        let v = verdict(&s, false, AtItsOwnPrompt);
        assert!(v.ways.is_empty());
        assert!(!v.logs_in);
    }
}
