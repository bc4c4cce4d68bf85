//! The accounts sshd is asked about: read from the audited tree's own
//! files (`etc/passwd`, `etc/group`, `etc/login.defs`), not through NSS, so
//! that `--root` audits the tree's accounts and not this machine's.
//!
//! By default: root, and every account with a uid of at least `UID_MIN`
//! (login.defs; 1000 without it) whose shell is not nologin or false.
#![forbid(unsafe_code)]

use crate::base::user::UserName;
use std::collections::BTreeSet;

/// One account of the tree's passwd file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: UserName,
    pub uid: u32,
    pub gid: u32,
    pub shell: String,
}

/// passwd's accounts, in file order, the first of a name winning (as
/// NSS's files module does), and the lines passed over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Passwd {
    pub accounts: Vec<Account>,
    /// Names that are not names twostep can ask sshd about (`host$`).
    pub skipped: Vec<String>,
}

/// The colon-separated fields of each entry of a passwd or group file.
/// Comments and NIS compat lines (`+`, `-`) are not entries.
fn entries(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(|line| line.trim_end_matches('\r'))
        .filter(|line| !line.is_empty() && !line.starts_with(['#', '+', '-']))
        .map(|line| line.split(':').collect())
}

pub fn parse_passwd(text: &str) -> Passwd {
    let mut out = Passwd::default();
    let mut seen = BTreeSet::new();
    for fields in entries(text) {
        let [name, _, uid, gid, _, _, shell] = fields.as_slice() else {
            continue;
        };
        let (Ok(uid), Ok(gid)) = (uid.parse::<u32>(), gid.parse::<u32>()) else {
            continue;
        };
        let Ok(name) = UserName::parse(name) else {
            out.skipped.push(name.to_string());
            continue;
        };
        if !seen.insert(name.clone()) {
            continue;
        }
        out.accounts.push(Account {
            name,
            uid,
            gid,
            shell: shell.to_string(),
        });
    }
    out
}

/// login.defs' `UID_MIN`; 1000 when it is not set.
pub fn uid_min(login_defs: &str) -> u32 {
    login_defs
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            match (words.next(), words.next()) {
                (Some("UID_MIN"), Some(v)) => v.parse().ok(),
                _ => None,
            }
        })
        .next_back()
        .unwrap_or(1000)
}

/// A shell that lets no one in (`/usr/sbin/nologin`, `/bin/false`). An
/// empty shell is /bin/sh.
fn refuses(shell: &str) -> bool {
    let name = shell.rsplit('/').next().unwrap_or(shell);
    matches!(name, "nologin" | "false")
}

/// The default accounts: root, then each account with `uid >= uid_min`
/// and a shell that lets it in.
pub fn default_accounts(passwd: &Passwd, uid_min: u32) -> Vec<Account> {
    passwd
        .accounts
        .iter()
        .filter(|a| a.name.as_str() == "root" || (a.uid >= uid_min && !refuses(&a.shell)))
        .cloned()
        .collect()
}

/// The group file: each group's name, gid and listed members.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Groups {
    groups: Vec<(String, u32, Vec<String>)>,
}

pub fn parse_group(text: &str) -> Groups {
    let mut groups = Vec::new();
    for fields in entries(text) {
        let [name, _, gid, members] = fields.as_slice() else {
            continue;
        };
        let Ok(gid) = gid.parse::<u32>() else {
            continue;
        };
        let members = members
            .split(',')
            .filter(|m| !m.is_empty())
            .map(str::to_string)
            .collect();
        groups.push((name.to_string(), gid, members));
    }
    Groups { groups }
}

impl Groups {
    /// The names of the groups of `account`: its primary group and every
    /// group that lists it, sorted.
    pub fn of(&self, account: &Account) -> BTreeSet<String> {
        self.groups
            .iter()
            .filter(|(_, gid, members)| {
                *gid == account.gid || members.iter().any(|m| m == account.name.as_str())
            })
            .map(|(name, _, _)| name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
        daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
        # a comment\n\
        +nisuser::::::\n\
        sshd:x:105:65534::/run/sshd:/usr/sbin/nologin\n\
        alice:x:1000:1000:Alice:/home/alice:/bin/bash\n\
        bob:x:1001:1001::/home/bob:\n\
        nologin:x:1002:1002::/home/n:/usr/sbin/nologin\n\
        falsy:x:1003:1003::/home/f:/bin/false\n\
        git:x:1004:1004::/home/git:/usr/bin/git-shell\n\
        host$:x:1005:1005::/:/bin/sh\n\
        short:x:1006\n\
        baduid:x:abc:1::/:/bin/sh\n\
        alice:x:2000:2000::/:/bin/sh\n\
        toor:x:0:0::/root:/bin/sh\n\
        nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";

    #[test]
    fn passwd_is_read_as_the_files_module_reads_it() {
        let p = parse_passwd(PASSWD);
        let names: Vec<&str> = p.accounts.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "root", "daemon", "sshd", "alice", "bob", "nologin", "falsy", "git", "toor",
                "nobody"
            ]
        );
        // The first alice wins.
        assert_eq!(p.accounts[3].uid, 1000);
        assert_eq!(p.skipped, ["host$"]);
    }

    #[test]
    fn the_default_accounts_are_root_and_those_that_can_log_in() {
        let p = parse_passwd(PASSWD);
        let names = |min| -> Vec<String> {
            default_accounts(&p, min)
                .iter()
                .map(|a| a.name.to_string())
                .collect()
        };
        assert_eq!(names(1000), ["root", "alice", "bob", "git"]);
        assert_eq!(names(1001), ["root", "bob", "git"]);
        // toor is uid 0 but not named root: below UID_MIN.
        assert_eq!(names(0), ["root", "alice", "bob", "git", "toor"]);
    }

    #[test]
    fn uid_min_comes_from_login_defs() {
        let table = [
            ("", 1000),
            ("UID_MIN\t\t\t 500\n", 500),
            ("#UID_MIN 500\nUID_MAX 60000\n", 1000),
            ("UID_MIN 500\nUID_MIN 2000\n", 2000),
            ("UID_MIN abc\n", 1000),
        ];
        for (text, want) in table {
            assert_eq!(uid_min(text), want, "{text:?}");
        }
    }

    #[test]
    fn groups_are_the_primary_one_and_those_that_list_the_account() {
        let g = parse_group(
            "root:x:0:\nadm:x:4:syslog,alice\nalice:x:1000:\nstaff:x:50:bob,alice,\n\
             bad\nusers:x:100:\n",
        );
        let p = parse_passwd(PASSWD);
        let of = |i: usize| -> Vec<String> { g.of(&p.accounts[i]).into_iter().collect() };
        assert_eq!(of(3), ["adm", "alice", "staff"]);
        assert_eq!(of(4), ["staff"]);
        assert_eq!(of(0), ["root"]);
    }
}
