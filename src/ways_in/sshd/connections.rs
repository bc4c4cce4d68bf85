//! Whom and from where sshd is asked.
//!
//! - **Connections.** `Match Address`, `Host`, `LocalAddress`, `LocalPort`
//!   and `RDomain` make the settings depend on the connection. sshd is
//!   asked for a connection that no `Match` line names (from 203.0.113.1
//!   to 198.51.100.1, documentation addresses, RFC 5737, on the first
//!   `Port`), and for one in each address, network, host pattern, port and
//!   routing domain that a `Match` line names (a network by an address in
//!   it, a pattern with its wildcards filled in): every combination of
//!   those while there are at most [`MAX_COMBINED`], else each one alone
//!   with the others left as in the first connection. Whether a candidate
//!   matches is sshd's to say, not this module's.
//! - **Classes of accounts.** Accounts that every `Match User` and `Match
//!   Group` pattern list treats alike get the same settings from sshd, so
//!   sshd is asked once per class. The lists are evaluated here only to
//!   sort accounts into classes, with sshd's own matching rules (match.c's
//!   `match_pattern_list`, groupaccess.c's `ga_match_pattern_list`), ported
//!   and table-tested against it.
#![forbid(unsafe_code)]

use super::settings::{Criterion, MatchLine};
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The remote address no `Match` line names (TEST-NET-3).
pub const DEFAULT_ADDR: &str = "203.0.113.1";
/// The local address no `Match` line names (TEST-NET-2).
pub const DEFAULT_LADDR: &str = "198.51.100.1";
/// Past this many combinations, each candidate is asked alone.
pub const MAX_COMBINED: usize = 64;
/// Past this many connections in all, the rest are not asked (a note).
pub const MAX_CONNECTIONS: usize = 128;

/// What `sshd -T -C` is told about one connection.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Connection {
    pub addr: String,
    /// The client's host name as sshd would have it: with `UseDNS no`
    /// (Debian's default) its address.
    pub host: String,
    pub laddr: String,
    pub lport: String,
    /// None: no routing domain (what a Linux connection outside a VRF has).
    pub rdomain: Option<String>,
}

impl Connection {
    pub fn first(port: &str) -> Connection {
        Connection {
            addr: DEFAULT_ADDR.into(),
            host: DEFAULT_ADDR.into(),
            laddr: DEFAULT_LADDR.into(),
            lport: port.into(),
            rdomain: None,
        }
    }

    /// `-C`'s argument for `user`. Every part is a checked name or
    /// candidate: no comma can reach it.
    pub fn spec(&self, user: &str) -> String {
        let mut spec = format!(
            "user={user},host={},addr={},laddr={},lport={}",
            self.host, self.addr, self.laddr, self.lport
        );
        if let Some(r) = &self.rdomain {
            spec.push_str(&format!(",rdomain={r}"));
        }
        spec
    }

    /// How it differs from `first`, for a person: "from 10.0.0.1, to port
    /// 2222"; "" when it does not.
    pub fn describe(&self, first: &Connection) -> String {
        let mut parts = Vec::new();
        if self.addr != first.addr {
            parts.push(format!("from {}", self.addr));
        }
        if self.host != first.host {
            parts.push(format!("from host {}", self.host));
        }
        if self.laddr != first.laddr {
            parts.push(format!("to {}", self.laddr));
        }
        if self.lport != first.lport {
            parts.push(format!("to port {}", self.lport));
        }
        if let Some(r) = &self.rdomain {
            parts.push(format!("in routing domain {r}"));
        }
        parts.join(", ")
    }
}

/// The connections to ask about, the first one first; and what was left
/// out, for a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub connections: Vec<Connection>,
    pub notes: Vec<String>,
}

/// The connections for a configuration with these `Match` lines and these
/// `Port`s (sshd -T's `port` values, the first one first).
pub fn plan(lines: &[MatchLine], ports: &[String]) -> Plan {
    let mut notes = Vec::new();
    let port = ports.first().map_or("22", String::as_str);
    let first = Connection::first(port);
    let mut addrs = vec![first.addr.clone()];
    let mut hosts = vec![first.host.clone()];
    let mut laddrs = vec![first.laddr.clone()];
    let mut lports: Vec<String> = vec![first.lport.clone()];
    let mut rdomains: Vec<Option<String>> = vec![None];
    for p in ports {
        push_new(&mut lports, p.clone());
    }
    let mut refused = BTreeSet::new();
    for line in lines {
        for (criterion, list) in &line.criteria {
            let found = match criterion {
                Criterion::Address => address_candidates(list),
                Criterion::LocalAddress => address_candidates(list),
                Criterion::Host | Criterion::RDomain => name_candidates(list),
                Criterion::LocalPort => list
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .map(|p| vec![p.to_string()])
                    .unwrap_or_default(),
                Criterion::All | Criterion::User | Criterion::Group => continue,
            };
            for value in found {
                if !plain(&value) {
                    refused.insert(value);
                    continue;
                }
                match criterion {
                    Criterion::Address => push_new(&mut addrs, value),
                    Criterion::Host => push_new(&mut hosts, value),
                    Criterion::LocalAddress => push_new(&mut laddrs, value),
                    Criterion::LocalPort => push_new(&mut lports, value),
                    Criterion::RDomain => push_new(&mut rdomains, Some(value)),
                    _ => {}
                }
            }
        }
    }
    if !refused.is_empty() {
        notes.push(format!(
            "sshd was not asked about connections with these values of Match lines, \
             which twostep does not pass to sshd -C: {}",
            refused.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    let combined = [
        addrs.len(),
        hosts.len(),
        laddrs.len(),
        lports.len(),
        rdomains.len(),
    ]
    .iter()
    .try_fold(1usize, |acc, n| acc.checked_mul(*n));
    let mut connections = Vec::new();
    if combined.is_some_and(|n| n <= MAX_COMBINED) {
        for addr in &addrs {
            for host in &hosts {
                for laddr in &laddrs {
                    for lport in &lports {
                        for rdomain in &rdomains {
                            connections.push(Connection {
                                addr: addr.clone(),
                                host: host.clone(),
                                laddr: laddr.clone(),
                                lport: lport.clone(),
                                rdomain: rdomain.clone(),
                            });
                        }
                    }
                }
            }
        }
    } else {
        connections.push(first.clone());
        let one = |f: &dyn Fn(&mut Connection)| {
            let mut c = first.clone();
            f(&mut c);
            c
        };
        for a in addrs.iter().skip(1) {
            connections.push(one(&|c| c.addr = a.clone()));
        }
        for h in hosts.iter().skip(1) {
            connections.push(one(&|c| c.host = h.clone()));
        }
        for l in laddrs.iter().skip(1) {
            connections.push(one(&|c| c.laddr = l.clone()));
        }
        for p in lports.iter().skip(1) {
            connections.push(one(&|c| c.lport = p.clone()));
        }
        for r in rdomains.iter().skip(1) {
            connections.push(one(&|c| c.rdomain = r.clone()));
        }
        notes.push(format!(
            "the Match lines name more than {MAX_COMBINED} combinations of addresses, \
             hosts, ports and routing domains: sshd was asked about each one alone, not \
             about every combination"
        ));
    }
    if connections.len() > MAX_CONNECTIONS {
        notes.push(format!(
            "the Match lines name {} connections: sshd was asked about the first \
             {MAX_CONNECTIONS} only",
            connections.len()
        ));
        connections.truncate(MAX_CONNECTIONS);
    }
    Plan { connections, notes }
}

fn push_new<T: PartialEq>(v: &mut Vec<T>, value: T) {
    if !v.contains(&value) {
        v.push(value);
    }
}

/// What may go into `-C`'s comma-separated `key=value` list.
fn plain(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 253
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'-' | b'_'))
}

/// One address in each entry of an `Address` pattern list: a network's
/// first host (its own address for a /32 or /128), a pattern's wildcards
/// filled with `1` (`192.168.*` → `192.168.1.1`). Negated entries too:
/// they name addresses whose settings differ.
pub fn address_candidates(list: &str) -> Vec<String> {
    let mut out = Vec::new();
    for entry in list.split(',') {
        let entry = entry.trim_start_matches('!');
        if entry.is_empty() {
            continue;
        }
        let found = if let Some((ip, len)) = entry.split_once('/') {
            network_host(ip, len)
        } else {
            Some(fill_address(entry))
        };
        if let Some(found) = found {
            push_new(&mut out, found);
        }
    }
    out
}

fn network_host(ip: &str, len: &str) -> Option<String> {
    let len: u32 = len.parse().ok()?;
    match ip.parse::<IpAddr>().ok()? {
        IpAddr::V4(v4) if len <= 32 => {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            let net = u32::from(v4) & mask;
            let host = if len < 32 { net | 1 } else { net };
            Some(Ipv4Addr::from(host).to_string())
        }
        IpAddr::V6(v6) if len <= 128 => {
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            let net = u128::from(v6) & mask;
            let host = if len < 128 { net | 1 } else { net };
            Some(Ipv6Addr::from(host).to_string())
        }
        _ => None,
    }
}

fn fill_address(pattern: &str) -> String {
    let filled = pattern.replace(['*', '?'], "1");
    if filled.parse::<IpAddr>().is_ok() || !pattern.ends_with('*') {
        return filled;
    }
    // `10.*` or `192.168.*`: the trailing star stands for the rest of a
    // dotted address.
    let mut parts: Vec<&str> = filled.split('.').collect();
    if parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_digit())) {
        while parts.len() < 4 {
            parts.push("1");
        }
        return parts.join(".");
    }
    filled
}

/// One name in each entry of a `Host` or `RDomain` pattern list, its
/// wildcards filled with `x`.
pub fn name_candidates(list: &str) -> Vec<String> {
    let mut out = Vec::new();
    for entry in list.split(',') {
        let entry = entry.trim_start_matches('!');
        if !entry.is_empty() {
            push_new(&mut out, entry.replace(['*', '?'], "x"));
        }
    }
    out
}

/// match.c's `match_pattern`: `*` any run of characters, `?` one.
pub fn match_pattern(s: &[u8], pattern: &[u8]) -> bool {
    let (mut si, mut pi) = (0, 0);
    // Where to resume after the last `*`: its position, and the subject's.
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        match pattern.get(pi) {
            Some(b'*') => {
                star = Some((pi, si));
                pi += 1;
            }
            Some(&c) if c == b'?' || c == s[si] => {
                si += 1;
                pi += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    pi = sp + 1;
                    si = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    pattern[pi.min(pattern.len())..].iter().all(|&c| c == b'*')
}

/// match.c's `match_pattern_list`: 1 if some entry matches and no negated
/// one does, -1 if a negated entry matches, 0 otherwise. Case-sensitive,
/// as sshd calls it for users and groups.
pub fn match_pattern_list(s: &str, list: &str) -> i8 {
    let mut positive = false;
    for entry in list.split(',') {
        let (negated, pattern) = match entry.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, entry),
        };
        // sshd's buffer for one entry: a longer one fails the whole list.
        if pattern.len() >= 1023 {
            return 0;
        }
        if match_pattern(s.as_bytes(), pattern.as_bytes()) {
            if negated {
                return -1;
            }
            positive = true;
        }
    }
    i8::from(positive)
}

/// groupaccess.c's `ga_match_pattern_list`: some group matches and none is
/// refused by a negated entry.
pub fn groups_match(groups: &BTreeSet<String>, list: &str) -> bool {
    let mut found = false;
    for g in groups {
        match match_pattern_list(g, list) {
            -1 => return false,
            1 => found = true,
            _ => {}
        }
    }
    found
}

/// How an account fares on each `User` and `Group` criterion of `lines`:
/// accounts with the same signature get the same settings from sshd.
/// `groups`: the account's groups, or `None` when no line has a `Group`
/// criterion (they are not needed then).
pub fn signature(lines: &[MatchLine], name: &str, groups: Option<&BTreeSet<String>>) -> Vec<i8> {
    let mut out = Vec::new();
    for line in lines {
        for (criterion, list) in &line.criteria {
            match criterion {
                Criterion::User => out.push(match_pattern_list(name, list)),
                Criterion::Group => {
                    out.push(groups.is_some_and(|g| groups_match(g, list)).into());
                }
                _ => {}
            }
        }
    }
    out
}

/// Whether any line has a criterion of this kind.
pub fn uses(lines: &[MatchLine], kind: Criterion) -> bool {
    lines
        .iter()
        .any(|l| l.criteria.iter().any(|(c, _)| *c == kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_sshd_matches_them() {
        // (subject, pattern, sshd's answer)
        let table = [
            ("deploy", "deploy", true),
            ("deploy", "deplo", false),
            ("deploy", "deployx", false),
            ("deploy", "d*", true),
            ("deploy", "*y", true),
            ("deploy", "*", true),
            ("", "*", true),
            ("", "", true),
            ("", "?", false),
            ("deploy", "d?ploy", true),
            ("deploy", "d??loy", true),
            ("deploy", "d*l*y", true),
            ("deploy", "d*l*x", false),
            ("aaa", "a*a*a*a", false),
            ("aaaa", "a*a*a*a", true),
            ("Deploy", "deploy", false),
            ("x.example.com", "*.example.com", true),
            ("example.com", "*.example.com", false),
            ("10.1.2.3", "10.*", true),
            ("deploy", "**", true),
            ("abcabd", "*abd", true),
            ("abcab", "*ab?", false),
        ];
        for (s, p, want) in table {
            assert_eq!(match_pattern(s.as_bytes(), p.as_bytes()), want, "{s} {p}");
        }
    }

    #[test]
    fn pattern_lists_match_as_sshd_matches_them() {
        let table = [
            ("deploy", "deploy", 1),
            ("deploy", "alice,deploy", 1),
            ("deploy", "alice,bob", 0),
            // A negation alone matches no one.
            ("deploy", "!root", 0),
            ("deploy", "*,!root", 1),
            ("root", "*,!root", -1),
            // A negated match wins, wherever it is.
            ("root", "!root,*", -1),
            ("deploy", "", 0),
            ("deploy", "d*,!de*", -1),
            ("deploy", ",deploy,", 1),
        ];
        for (s, list, want) in table {
            assert_eq!(match_pattern_list(s, list), want, "{s} {list}");
        }
        let long = format!("{},deploy", "x".repeat(1100));
        assert_eq!(match_pattern_list("deploy", &long), 0);
    }

    #[test]
    fn group_lists_need_one_group_and_no_refused_one() {
        let groups = |g: &[&str]| -> BTreeSet<String> { g.iter().map(|s| s.to_string()).collect() };
        let table: [(&[&str], &str, bool); 6] = [
            (&["adm", "alice"], "adm", true),
            (&["adm", "alice"], "staff", false),
            (&["adm", "alice"], "*,!alice", false),
            (&["adm", "wheel"], "*,!alice", true),
            (&[], "*", false),
            (&["deploy-team"], "deploy*", true),
        ];
        for (g, list, want) in table {
            assert_eq!(groups_match(&groups(g), list), want, "{g:?} {list}");
        }
    }

    fn line(criteria: &[(Criterion, &str)]) -> MatchLine {
        MatchLine {
            text: String::new(),
            criteria: criteria.iter().map(|(c, v)| (*c, v.to_string())).collect(),
        }
    }

    #[test]
    fn signatures_tell_apart_only_what_the_lines_tell_apart() {
        let lines = [
            line(&[(Criterion::User, "deploy,ci-*")]),
            line(&[
                (Criterion::Group, "sftponly"),
                (Criterion::Address, "10.0.0.0/8"),
            ]),
            line(&[(Criterion::Host, "*.example.com")]),
        ];
        let g =
            |names: &[&str]| -> BTreeSet<String> { names.iter().map(|s| s.to_string()).collect() };
        let alice = signature(&lines, "alice", Some(&g(&["alice"])));
        let bob = signature(&lines, "bob", Some(&g(&["bob", "users"])));
        let deploy = signature(&lines, "deploy", Some(&g(&["deploy"])));
        let ci = signature(&lines, "ci-runner", Some(&g(&["ci"])));
        let sftp = signature(&lines, "carol", Some(&g(&["carol", "sftponly"])));
        assert_eq!(alice, bob);
        assert_eq!(deploy, ci);
        assert_ne!(alice, deploy);
        assert_ne!(alice, sftp);
        assert_eq!(alice, [0, 0]);
        assert_eq!(sftp, [0, 1]);
        // No Group criterion: groups are not needed.
        let lines = [line(&[(Criterion::User, "deploy")])];
        assert_eq!(signature(&lines, "alice", None), [0]);
        assert!(uses(&lines, Criterion::User));
        assert!(!uses(&lines, Criterion::Group));
    }

    #[test]
    fn addresses_are_picked_inside_each_network_and_pattern() {
        let table: [(&str, &[&str]); 9] = [
            ("10.0.0.0/8", &["10.0.0.1"]),
            ("10.1.2.3/8", &["10.0.0.1"]),
            ("192.0.2.7/32", &["192.0.2.7"]),
            ("0.0.0.0/0", &["0.0.0.1"]),
            (
                "2001:db8::/32,!2001:db8:1::/48",
                &["2001:db8::1", "2001:db8:1::1"],
            ),
            ("192.168.*", &["192.168.1.1"]),
            ("10.0.0.?", &["10.0.0.1"]),
            ("10.0.0.0/33,bad/x", &[]),
            ("!192.0.2.1,192.0.2.1", &["192.0.2.1"]),
        ];
        for (list, want) in table {
            assert_eq!(address_candidates(list), want, "{list}");
        }
        assert_eq!(
            name_candidates("*.example.com,!bad?.example.com"),
            ["x.example.com", "badx.example.com"]
        );
    }

    #[test]
    fn the_first_connection_names_nothing_and_each_match_value_is_asked() {
        let p = plan(&[], &["22".into()]);
        assert_eq!(p.connections, [Connection::first("22")]);
        assert!(p.notes.is_empty());
        assert_eq!(
            p.connections[0].spec("alice"),
            "user=alice,host=203.0.113.1,addr=203.0.113.1,laddr=198.51.100.1,lport=22"
        );
        let lines = [
            line(&[(Criterion::Address, "10.0.0.0/8")]),
            line(&[(Criterion::LocalPort, "2222"), (Criterion::RDomain, "vrf*")]),
            line(&[(Criterion::User, "deploy")]),
        ];
        let p = plan(&lines, &["22".into(), "2200".into()]);
        // 2 addresses x 3 ports x 2 routing domains.
        assert_eq!(p.connections.len(), 12);
        assert_eq!(p.connections[0], Connection::first("22"));
        let described: BTreeSet<String> = p
            .connections
            .iter()
            .map(|c| c.describe(&p.connections[0]))
            .collect();
        assert!(described.contains("from 10.0.0.1, to port 2222, in routing domain vrfx"));
        assert!(described.contains(""));
        assert!(
            p.connections
                .iter()
                .any(|c| c.spec("u").ends_with(",lport=2200,rdomain=vrfx"))
        );
    }

    #[test]
    fn many_values_are_asked_one_at_a_time_then_cut_with_a_note() {
        let nets: Vec<String> = (0..70).map(|i| format!("10.{i}.0.0/16")).collect();
        let lines = [
            line(&[(Criterion::Address, &nets.join(","))]),
            line(&[(Criterion::LocalPort, "2222")]),
        ];
        let p = plan(&lines, &["22".into()]);
        assert_eq!(p.connections.len(), 1 + 70 + 1);
        assert!(p.notes[0].contains("each one alone"), "{:?}", p.notes);
        let nets: Vec<String> = (0..200).map(|i| format!("10.{i}.0.0/16")).collect();
        let p = plan(
            &[line(&[(Criterion::Address, &nets.join(","))])],
            &["22".into()],
        );
        assert_eq!(p.connections.len(), MAX_CONNECTIONS);
        assert!(p.notes.iter().any(|n| n.contains("the first 128 only")));
    }

    #[test]
    fn values_that_cannot_go_into_the_spec_are_noted() {
        let lines = [line(&[(Criterion::Host, "a=b,ok.example")])];
        let p = plan(&lines, &["22".into()]);
        assert_eq!(p.connections.len(), 2);
        assert!(p.notes[0].contains("a=b"), "{:?}", p.notes);
    }
}
