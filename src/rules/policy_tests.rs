//! The policy, table by table: the decision table over every combination of
//! keys, each key alone, and remembering and noting sources.
//! It stays one file because the tables are the precedence's specification:
//! read together, they show that nothing skips `always_challenge_groups`.
#![forbid(unsafe_code)]
use super::*;
use crate::config::Cidr;
use std::collections::BTreeSet;
use std::time::Duration;

/// A user's groups as a set of names; `None`: every lookup fails.
struct Fake {
    member_of: Option<BTreeSet<&'static str>>,
    lookups: usize,
}

impl Fake {
    fn of(names: &[&'static str]) -> Fake {
        Fake {
            member_of: Some(names.iter().copied().collect()),
            lookups: 0,
        }
    }
    fn broken() -> Fake {
        Fake {
            member_of: None,
            lookups: 0,
        }
    }
}

impl Groups for Fake {
    fn in_any(&mut self, names: &[String]) -> Result<bool, String> {
        self.lookups += 1;
        match &self.member_of {
            Some(set) => Ok(names.iter().any(|n| set.contains(n.as_str()))),
            None => Err("NSS is down".into()),
        }
    }
}

const NOW: u64 = 1_800_000_000;

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn nets(v: &[&str]) -> Vec<Cidr> {
    v.iter().map(|s| Cidr::parse(s).unwrap()).collect()
}

fn seen(addr: &str, until: u64) -> Remembered {
    Remembered {
        addr: addr.parse().unwrap(),
        until,
        seen: 0,
    }
}

/// A policy that uses every key.
fn full() -> Policy {
    Policy {
        require_groups: strings(&["staff", "ops"]),
        exempt_groups: strings(&["svc"]),
        always_challenge_groups: strings(&["sudo"]),
        trusted_networks: nets(&["10.0.0.0/8", "2001:db8::/32"]),
        remember: Duration::from_secs(3600),
        console: Console::Skip,
        ..Policy::default()
    }
}

const ASK: Decision = Decision::Challenge { always: false };
const ALWAYS: Decision = Decision::Challenge { always: true };
fn skip(r: SkipReason) -> Decision {
    Decision::Skip(r)
}

#[test]
fn defaults_are_inactive_and_ask_everyone_without_group_lookups() {
    let p = Policy::default();
    assert!(!p.is_active());
    let memory = [seen("192.0.2.1", NOW + 100)];
    for rhost in ["", "192.0.2.1", "::1", "host.example"] {
        let mut g = Fake::of(&["staff"]);
        assert_eq!(
            decide(&p, &mut g, rhost, rhost.is_empty(), &memory, NOW),
            ASK,
            "{rhost:?}"
        );
        assert_eq!(g.lookups, 0);
    }
    for active in [
        Policy {
            require_groups: strings(&["a"]),
            ..Policy::default()
        },
        Policy {
            exempt_groups: strings(&["a"]),
            ..Policy::default()
        },
        Policy {
            always_challenge_groups: strings(&["a"]),
            ..Policy::default()
        },
        Policy {
            trusted_networks: nets(&["10.0.0.0/8"]),
            ..Policy::default()
        },
        Policy {
            remember: Duration::from_secs(1),
            ..Policy::default()
        },
        Policy {
            console: Console::Skip,
            ..Policy::default()
        },
    ] {
        assert!(active.is_active(), "{active:?}");
    }
}

#[test]
fn decision_table() {
    use SkipReason::{ExemptGroup, NotRequired, Remembered, TrustedNetwork};
    let memory = [
        seen("192.0.2.50", NOW + 60),
        seen("192.0.2.51", NOW),
        seen("2001:db9::7", NOW + 60),
        seen("198.51.100.9", NOW + 60),
    ];
    // (user's groups, rhost, expected)
    let cases: &[(&[&str], &str, Decision)] = &[
        // always_challenge beats everything.
        (&["sudo"], "10.1.2.3", ALWAYS),
        (&["sudo", "svc"], "10.1.2.3", ALWAYS),
        (&["sudo", "staff"], "", ALWAYS),
        (&["sudo"], "192.0.2.50", ALWAYS),
        (&["sudo"], "203.0.113.1", ALWAYS),
        // exempt beats require, networks and console.
        (&["svc"], "203.0.113.1", skip(ExemptGroup)),
        (&["svc", "staff"], "host.example", skip(ExemptGroup)),
        (&["svc"], "", skip(ExemptGroup)),
        // Not in a required group: not asked, from anywhere.
        (&[], "203.0.113.1", skip(NotRequired)),
        (&["users"], "host.example", skip(NotRequired)),
        (&["users"], "", skip(NotRequired)),
        // Required: networks, console, memory decide.
        (&["staff"], "", skip(SkipReason::Console)),
        (&["ops"], "10.255.0.1", skip(TrustedNetwork)),
        (&["staff"], "::ffff:10.0.0.1", skip(TrustedNetwork)),
        (&["staff"], "2001:db8:1::1", skip(TrustedNetwork)),
        (&["staff"], "11.0.0.1", ASK),
        (&["staff"], "::ffff:11.0.0.1", ASK),
        (&["staff"], "2001:db9::1", ASK),
        (&["staff"], "192.0.2.50", skip(Remembered)),
        (&["staff"], "::ffff:192.0.2.50", skip(Remembered)),
        (&["staff"], "2001:db9::7", skip(Remembered)),
        (&["staff"], "2001:db9:0::7", skip(Remembered)),
        // Expired at exactly `until`.
        (&["staff"], "192.0.2.51", ASK),
        (&["staff"], "192.0.2.52", ASK),
        // Host names are never trusted nor remembered, even when they
        // look like an address or resolve to a trusted one.
        (&["staff"], "localhost", ASK),
        (&["staff"], "10.0.0.1.example.com", ASK),
        (&["staff"], "10.1.2.3 ", ASK),
        (&["staff"], "[10.1.2.3]", ASK),
        (&["staff"], "10.1.2.3:22", ASK),
        (&["staff"], "010.1.2.3", ASK),
        (&["staff"], "fe80::1%eth0", ASK),
    ];
    for (groups, rhost, want) in cases {
        let mut g = Fake::of(groups);
        let got = decide(&full(), &mut g, rhost, rhost.is_empty(), &memory, NOW);
        assert_eq!(got, *want, "groups {groups:?} rhost {rhost:?}");
    }
}

#[test]
fn each_key_alone() {
    use SkipReason::{ExemptGroup, NotRequired, Remembered, TrustedNetwork};
    let base = Policy::default;
    let memory = [seen("192.0.2.1", NOW + 10)];
    // (policy, groups, rhost, expected)
    let cases: Vec<(Policy, &[&str], &str, Decision)> = vec![
        (
            Policy {
                require_groups: strings(&["staff"]),
                ..base()
            },
            &["staff"],
            "203.0.113.1",
            ASK,
        ),
        (
            Policy {
                require_groups: strings(&["staff"]),
                ..base()
            },
            &["wheel"],
            "203.0.113.1",
            skip(NotRequired),
        ),
        (
            Policy {
                exempt_groups: strings(&["svc"]),
                ..base()
            },
            &["svc"],
            "",
            skip(ExemptGroup),
        ),
        (
            Policy {
                exempt_groups: strings(&["svc"]),
                ..base()
            },
            &[],
            "",
            ASK,
        ),
        (
            Policy {
                always_challenge_groups: strings(&["sudo"]),
                ..base()
            },
            &["sudo"],
            "",
            ALWAYS,
        ),
        (
            Policy {
                always_challenge_groups: strings(&["sudo"]),
                ..base()
            },
            &[],
            "",
            ASK,
        ),
        // Console skip applies only without a remote host.
        (
            Policy {
                console: Console::Skip,
                ..base()
            },
            &[],
            "",
            skip(SkipReason::Console),
        ),
        (
            Policy {
                console: Console::Skip,
                ..base()
            },
            &[],
            "192.0.2.9",
            ASK,
        ),
        // Trusted networks and memory need an address: not the console.
        (
            Policy {
                trusted_networks: nets(&["0.0.0.0/0", "::/0"]),
                ..base()
            },
            &[],
            "",
            ASK,
        ),
        (
            Policy {
                trusted_networks: nets(&["0.0.0.0/0"]),
                ..base()
            },
            &[],
            "::ffff:203.0.113.1",
            skip(TrustedNetwork),
        ),
        (
            Policy {
                trusted_networks: nets(&["::/0"]),
                ..base()
            },
            &[],
            "::ffff:203.0.113.1",
            ASK,
        ),
        (
            Policy {
                remember: Duration::from_secs(60),
                ..base()
            },
            &[],
            "192.0.2.1",
            skip(Remembered),
        ),
        // remember = "0s": old entries in the state do nothing.
        (base(), &[], "192.0.2.1", ASK),
    ];
    for (policy, groups, rhost, want) in cases {
        let mut g = Fake::of(groups);
        assert_eq!(
            decide(&policy, &mut g, rhost, rhost.is_empty(), &memory, NOW),
            want,
            "{policy:?} groups {groups:?} rhost {rhost:?}"
        );
    }
}

#[test]
fn console_skip_needs_a_local_terminal() {
    // (rhost, on a local terminal) -> decision, with console = "skip"
    let p = Policy {
        console: Console::Skip,
        ..Policy::default()
    };
    let table = [
        ("", true, skip(SkipReason::Console)),
        ("", false, ASK),
        ("192.0.2.1", false, ASK),
        ("192.0.2.1", true, ASK),
    ];
    for (rhost, tty, want) in table {
        let mut g = Fake::of(&[]);
        assert_eq!(
            decide(&p, &mut g, rhost, tty, &[], NOW),
            want,
            "{rhost:?} {tty}"
        );
    }
}

#[test]
fn failed_group_lookups_ask() {
    let memory = [seen("192.0.2.50", NOW + 60)];
    for rhost in ["", "10.0.0.1", "192.0.2.50", "203.0.113.1"] {
        let mut g = Fake::broken();
        assert_eq!(
            decide(&full(), &mut g, rhost, rhost.is_empty(), &memory, NOW),
            ALWAYS,
            "{rhost}"
        );
        // Without always_challenge_groups: neither exempt nor
        // "not required" on a failed lookup.
        let p = Policy {
            always_challenge_groups: vec![],
            console: Console::Challenge,
            ..full()
        };
        let mut g = Fake::broken();
        let got = decide(&p, &mut g, rhost, rhost.is_empty(), &memory, NOW);
        assert!(
            !matches!(
                got,
                Decision::Skip(SkipReason::ExemptGroup | SkipReason::NotRequired)
            ),
            "{rhost}: {got:?}"
        );
    }
}

#[test]
fn only_the_group_lists_that_are_set_are_looked_up() {
    let p = Policy {
        trusted_networks: nets(&["10.0.0.0/8"]),
        remember: Duration::from_secs(60),
        console: Console::Skip,
        ..Policy::default()
    };
    for rhost in ["", "10.0.0.1", "203.0.113.1", "host"] {
        let mut g = Fake::of(&[]);
        decide(&p, &mut g, rhost, rhost.is_empty(), &[], NOW);
        assert_eq!(g.lookups, 0, "{rhost}");
    }
    let p = Policy {
        exempt_groups: strings(&["svc"]),
        ..Policy::default()
    };
    let mut g = Fake::of(&[]);
    decide(&p, &mut g, "", true, &[], NOW);
    assert_eq!(g.lookups, 1);
}

#[test]
fn source_addresses() {
    let cases = [
        ("192.0.2.1", Some("192.0.2.1")),
        ("::ffff:192.0.2.1", Some("192.0.2.1")),
        ("::FFFF:c000:0201", Some("192.0.2.1")),
        ("2001:db8::1", Some("2001:db8::1")),
        ("::1", Some("::1")),
        // IPv4-compatible (deprecated) is not mapped.
        ("::192.0.2.1", Some("::c000:201")),
        ("", None),
        ("example.com", None),
        ("192.0.2.1.nip.io", None),
        ("192.0.2", None),
        (" 192.0.2.1", None),
    ];
    for (rhost, want) in cases {
        assert_eq!(
            source_address(rhost),
            want.map(|w| w.parse().unwrap()),
            "{rhost:?}"
        );
    }
}

#[test]
fn remembering_adds_refreshes_expires_and_bounds() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    // A new address is added.
    let got = remember(&[], ip("192.0.2.1"), NOW, 60);
    assert_eq!(got, [seen("192.0.2.1", NOW + 60)]);
    // The same address (also as IPv4-mapped) is refreshed, not doubled.
    let got = remember(&got, ip("::ffff:192.0.2.1"), NOW + 30, 60);
    assert_eq!(got, [seen("192.0.2.1", NOW + 90)]);
    // Expired entries go; live ones stay.
    let current = [
        seen("192.0.2.2", NOW - 1),
        seen("192.0.2.3", NOW),
        seen("192.0.2.4", NOW + 1),
    ];
    let got = remember(&current, ip("2001:db8::1"), NOW, 60);
    assert_eq!(
        got,
        [seen("192.0.2.4", NOW + 1), seen("2001:db8::1", NOW + 60)]
    );
    // Full: the entry that expires soonest is evicted, whatever its place.
    let full: Vec<Remembered> = (0..MAX_REMEMBERED as u64)
        .map(|i| seen(&format!("10.0.0.{i}"), NOW + 100 + (i * 7 + 5) % 16))
        .collect();
    let got = remember(&full, ip("203.0.113.1"), NOW, 3600);
    assert_eq!(got.len(), MAX_REMEMBERED);
    assert!(got.contains(&seen("203.0.113.1", NOW + 3600)));
    let soonest = full.iter().min_by_key(|r| r.until).unwrap();
    assert!(!got.contains(soonest), "{soonest:?} evicted");
    for r in &full {
        if r != soonest {
            assert!(got.contains(r), "{r:?} kept");
        }
    }
    // A new login from a remembered address when full evicts nothing.
    let got2 = remember(&got, ip("10.0.0.3"), NOW, 3600);
    assert_eq!(got2.len(), MAX_REMEMBERED);
    assert!(got2.iter().all(|r| got.iter().any(|g| g.addr == r.addr)));
    // remember_secs so large that it overflows saturates.
    assert_eq!(
        remember(&[], ip("192.0.2.1"), u64::MAX - 1, 60)[0].until,
        u64::MAX
    );
}

fn noted(addr: &str, until: u64, seen: u64) -> Remembered {
    Remembered {
        addr: addr.parse().unwrap(),
        until,
        seen,
    }
}

#[test]
fn sources_are_new_known_or_first() {
    const DAY: u64 = 86_400;
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    // (list before, address, what it was)
    let cases: &[(&[Remembered], &str, Source)] = &[
        // Nothing ever noted: the first login teaches, silently; also
        // when the only entries are remembered but never noted (a
        // list from before new_source was on).
        (&[], "192.0.2.1", Source::First),
        (
            &[noted("192.0.2.1", NOW + 60, 0)],
            "192.0.2.1",
            Source::First,
        ),
        (
            &[noted("192.0.2.9", NOW + 60, 0)],
            "192.0.2.1",
            Source::First,
        ),
        // Seen within the window: known, to the second.
        (
            &[noted("192.0.2.1", 0, NOW - 1)],
            "192.0.2.1",
            Source::Known,
        ),
        (
            &[noted("192.0.2.1", 0, NOW - DAY + 1)],
            "192.0.2.1",
            Source::Known,
        ),
        (
            &[noted("192.0.2.1", 0, NOW - DAY)],
            "192.0.2.1",
            Source::New,
        ),
        // The IPv4-mapped form is the same address.
        (
            &[noted("192.0.2.1", 0, NOW - 5)],
            "::ffff:192.0.2.1",
            Source::Known,
        ),
        // Another address seen: this one is new.
        (&[noted("192.0.2.2", 0, NOW - 5)], "192.0.2.1", Source::New),
        (
            &[noted("2001:db8::1", 0, NOW - 5)],
            "2001:db8::2",
            Source::New,
        ),
        // Remembered (no code asked) but not seen within the window:
        // new all the same (remember only sets `until`).
        (
            &[
                noted("192.0.2.2", 0, NOW - 5),
                noted("192.0.2.1", NOW + 60, 0),
            ],
            "192.0.2.1",
            Source::New,
        ),
        // Every entry lapsed long ago: new, not first.
        (
            &[noted("192.0.2.1", 0, NOW - 40 * DAY)],
            "192.0.2.1",
            Source::New,
        ),
        (
            &[noted("192.0.2.9", 0, NOW - 40 * DAY)],
            "192.0.2.1",
            Source::New,
        ),
    ];
    for (before, addr, want) in cases {
        let (after, got) = note_source(before, ip(addr), NOW, DAY);
        assert_eq!(got, *want, "{before:?} {addr}");
        // Seen less than the slack ago: not noted again.
        let Some(after) = after else {
            assert_eq!(got, Source::Known);
            let mine = entry(before, canonical(ip(addr))).unwrap();
            assert!(mine.seen + note_slack(DAY) > NOW, "{before:?}");
            continue;
        };
        // Noted as seen now, its `until` kept, never twice.
        let mine: Vec<_> = after
            .iter()
            .filter(|r| canonical(r.addr) == canonical(ip(addr)))
            .collect();
        assert_eq!(mine.len(), 1, "{after:?}");
        assert_eq!(mine[0].seen, NOW);
        let until = before
            .iter()
            .find(|r| canonical(r.addr) == canonical(ip(addr)))
            .map_or(0, |r| r.until);
        assert_eq!(mine[0].until, until);
        // Lapsed entries are gone.
        assert!(
            after.iter().all(|r| r.until > NOW || r.seen + DAY > NOW),
            "{after:?}"
        );
    }
}

/// [`note_source`]'s list, as it is when nothing was written.
fn noting(
    current: &[Remembered],
    addr: IpAddr,
    now: u64,
    window: u64,
) -> (Vec<Remembered>, Source) {
    let (next, source) = note_source(current, addr, now, window);
    (next.unwrap_or_else(|| current.to_vec()), source)
}

#[test]
fn a_source_noted_lately_is_not_written_again() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    const DAY: u64 = 86_400;
    assert_eq!(note_slack(30 * DAY), 3600);
    assert_eq!(note_slack(3600), 56);
    assert_eq!(note_slack(1), 0);
    let list = [
        noted("192.0.2.1", 0, NOW - 3599),
        noted("192.0.2.2", 0, NOW - 3600),
    ];
    // (address, written again)
    for (addr, written) in [
        ("192.0.2.1", false),
        ("192.0.2.2", true),
        ("192.0.2.3", true),
    ] {
        let (next, _) = note_source(&list, ip(addr), NOW, 30 * DAY);
        assert_eq!(next.is_some(), written, "{addr}");
    }
    // Never when new or first, however lately.
    let (next, source) = note_source(&[noted("192.0.2.1", 0, 0)], ip("192.0.2.1"), NOW, DAY);
    assert_eq!((next.is_some(), source), (true, Source::First));
}

#[test]
fn remembering_keeps_seen_and_noting_keeps_until() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let (list, _) = noting(&[], ip("192.0.2.1"), NOW, 600);
    assert_eq!(list, [noted("192.0.2.1", 0, NOW)]);
    let list = remember(&list, ip("192.0.2.1"), NOW + 10, 600);
    assert_eq!(list, [noted("192.0.2.1", NOW + 610, NOW)]);
    let (list, source) = noting(&list, ip("192.0.2.1"), NOW + 20, 600);
    assert_eq!(source, Source::Known);
    assert_eq!(list, [noted("192.0.2.1", NOW + 610, NOW + 20)]);
    // Seen recently keeps an entry whose remembering expired; neither
    // keeps it past both.
    let list = [noted("192.0.2.1", NOW - 1, NOW - 100)];
    assert_eq!(
        remember(&list, ip("192.0.2.2"), NOW, 600).len(),
        2,
        "seen 100 s ago, within 600"
    );
    assert_eq!(remember(&list, ip("192.0.2.2"), NOW, 60).len(), 2);
    let (list, _) = noting(&list, ip("192.0.2.3"), NOW, 60);
    assert_eq!(list, [noted("192.0.2.3", 0, NOW)], "lapsed: dropped");
    // A code from a new address long after the last login: remembered
    // first, then noted: new, not first (the lapsed entry was left for
    // the noting to judge by).
    let (list, _) = noting(&[], ip("192.0.2.1"), NOW, 3600);
    let later = NOW + 10 * 3600;
    let list = remember(&list, ip("192.0.2.2"), later, 3600);
    let (list, source) = noting(&list, ip("192.0.2.2"), later, 3600);
    assert_eq!(source, Source::New);
    assert_eq!(list, [noted("192.0.2.2", later + 3600, later)]);
}

#[test]
fn the_list_stays_bounded_evicting_what_lapses_soonest() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let mut list = Vec::new();
    let mut sources = Vec::new();
    for i in 0..100u64 {
        let (next, source) = noting(
            &list,
            ip(&format!("10.0.{}.{}", i / 200, i % 200)),
            NOW + i,
            86_400,
        );
        assert!(next.len() <= MAX_REMEMBERED);
        list = next;
        sources.push(source);
    }
    assert_eq!(sources[0], Source::First);
    assert!(sources[1..].iter().all(|s| *s == Source::New));
    // The most recently seen are kept.
    let kept: Vec<u64> = list.iter().map(|r| r.seen - NOW).collect();
    assert_eq!(kept, (100 - MAX_REMEMBERED as u64..100).collect::<Vec<_>>());
    // One evicted long ago is new again.
    let (_, source) = noting(&list, ip("10.0.0.0"), NOW + 101, 86_400);
    assert_eq!(source, Source::New);
}
