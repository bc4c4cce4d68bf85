//! sshd's effective settings, asked of sshd: for each audited account and
//! each connection that the configuration's `Match` lines tell apart, which
//! methods log the account in without the code.
//!
//! The steps, each in its own file:
//!
//! - [`accounts`]: whom to ask about (`--user`, or root and every account
//!   of the tree's passwd file that can log in);
//! - [`ask`]: running `sshd -T -C ...` (which binary, as whom, a host key,
//!   a deadline), the first time with its debug log, which lists the
//!   configuration's `Match` lines; [`includes`]: under `--root`, the
//!   tree's sshd_config with its `Include` paths moved into the tree;
//! - [`connections`]: from those lines, the connections to ask about and
//!   the classes of accounts that sshd cannot tell apart (asked once each);
//! - [`settings`]: `sshd -T`'s output read;
//! - [`verdict`]: the settings' ways in for one account;
//! - [`findings`]: the report's findings and notes.
//!
//! sshd's `Match` logic is never evaluated here to decide a verdict: sshd
//! says what applies. twostep only picks whom and which connections to ask
//! about, and sorts accounts into classes to ask fewer times.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod ask;
pub mod connections;
pub mod findings;
pub mod includes;
pub mod settings;
pub mod verdict;

use super::accept::Accept;
use super::{AuditError, CodeAsked, Finding, tree};
use accounts::Account;
use connections::Connection;
use settings::{Criterion, Effective};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What the sshd side found: the ways in, and notes that are not ways in
/// (sshd missing, the password method's one answer, which sshd was asked).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub findings: Vec<Finding>,
    pub notes: Vec<String>,
}

/// The findings of sshd under `root` for each of `users` (empty: root and
/// every account that can log in): the methods that log a user in without
/// the PAM auth stack, or through it when it does not ask for the code
/// (`pam` [`CodeAsked::NotOfEveryone`]). Ways in that `accept` names are marked
/// accepted here, before the accounts that share a way in are told as one.
pub fn audit(
    root: &Path,
    users: &[String],
    pam: CodeAsked,
    accept: &[Accept],
) -> Result<Outcome, AuditError> {
    let root = std::fs::canonicalize(root)
        .map_err(|e| AuditError(format!("--root {}: {e}", root.display())))?;
    let mut notes = Vec::new();
    let passwd = accounts::parse_passwd(&tree::read(&root, "/etc/passwd")?.unwrap_or_default());
    let audited = if users.is_empty() {
        let uid_min = accounts::uid_min(&tree::read(&root, "/etc/login.defs")?.unwrap_or_default());
        if !passwd.skipped.is_empty() {
            notes.push(format!(
                "sshd: not asked about these accounts of {}, whose names twostep does not \
                 take: {}",
                root.join("etc/passwd").display(),
                passwd.skipped.join(", ")
            ));
        }
        accounts::default_accounts(&passwd, uid_min)
    } else {
        named_accounts(&root, &passwd, users)?
    };
    let Some(first_account) = audited.first() else {
        notes.push(format!(
            "sshd: {} lists no account to ask about",
            root.join("etc/passwd").display()
        ));
        return Ok(Outcome {
            findings: Vec::new(),
            notes,
        });
    };
    let discovery_connection = Connection::first("22");
    let (sshd, discovery, found_notes) =
        match ask::open(&root, first_account.name.as_str(), &discovery_connection)? {
            ask::Found::Absent(note) => {
                notes.push(note);
                return Ok(Outcome {
                    findings: Vec::new(),
                    notes,
                });
            }
            ask::Found::Ready(sshd, discovery, found_notes) => (sshd, discovery, found_notes),
        };
    notes.extend(found_notes);
    let plan = connections::plan(&discovery.lines, discovery.dump.all("port"));
    notes.extend(plan.notes.iter().cloned());

    // Accounts that every User and Group list treats alike: one class.
    let groups = if connections::uses(&discovery.lines, Criterion::Group) {
        Some(group_sets(&root, &audited)?)
    } else {
        None
    };
    let mut classes: BTreeMap<Vec<i8>, Vec<usize>> = BTreeMap::new();
    for (i, a) in audited.iter().enumerate() {
        let sig = connections::signature(
            &discovery.lines,
            a.name.as_str(),
            groups.as_ref().and_then(|g| g.get(i)),
        );
        classes.entry(sig).or_default().push(i);
    }
    let classes: Vec<Vec<usize>> = classes.into_values().collect();

    // One question per class and connection; the first run's answer is
    // used again where it is the same question.
    let mut jobs: Vec<(String, Connection)> = Vec::new();
    for class in &classes {
        let rep = class.first().and_then(|i| audited.get(*i));
        for c in &plan.connections {
            if let Some(rep) = rep {
                jobs.push((rep.name.to_string(), c.clone()));
            }
        }
    }
    let first_job = (first_account.name.to_string(), discovery_connection);
    let asked: Vec<(String, Connection)> =
        jobs.iter().filter(|j| **j != first_job).cloned().collect();
    let mut answers = sshd.ask_all(&asked)?.into_iter();
    let mut dumps = Vec::with_capacity(jobs.len());
    for j in &jobs {
        if *j == first_job {
            dumps.push(discovery.dump.clone());
        } else {
            dumps.push(
                answers
                    .next()
                    .ok_or_else(|| AuditError("sshd gave fewer answers than asked".into()))?,
            );
        }
    }
    let mut effective: Vec<Effective> = Vec::with_capacity(dumps.len());
    for (dump, (user, c)) in dumps.iter().zip(&jobs) {
        effective.push(
            dump.effective()
                .map_err(|e| AuditError(format!("sshd -T -C {}: {e}", c.spec(user))))?,
        );
    }

    // Each account's verdicts, from its class's settings: one per
    // connection, or the audit fails (never an account left out).
    let per_class = plan.connections.len();
    if per_class == 0 || effective.len() != classes.len() * per_class {
        return Err(AuditError("sshd's answers do not cover every class".into()));
    }
    let settings_of: Vec<&[Effective]> = effective.chunks(per_class).collect();
    let mut class_of: Vec<Option<usize>> = vec![None; audited.len()];
    for (k, class) in classes.iter().enumerate() {
        for i in class {
            if let Some(slot) = class_of.get_mut(*i) {
                *slot = Some(k);
            }
        }
    }
    let mut verdicts: Vec<findings::Audited<'_>> = Vec::with_capacity(audited.len());
    for (a, k) in audited.iter().zip(&class_of) {
        let settings = k
            .and_then(|k| settings_of.get(k))
            .ok_or_else(|| AuditError(format!("sshd was not asked about {}", a.name)))?;
        verdicts.push(findings::Audited {
            name: a.name.as_str(),
            is_root: a.uid == 0,
            verdicts: settings
                .iter()
                .map(|s| (s, verdict::verdict(s, a.uid == 0, pam)))
                .collect(),
        });
    }
    let (found, more_notes) = findings::build(&verdicts, &plan.connections, accept);
    notes.extend(more_notes);
    Ok(Outcome {
        findings: found,
        notes,
    })
}

/// The accounts `--user` names, each one checked: in the tree's passwd
/// file, or on this machine through NSS (LDAP, sssd).
fn named_accounts(
    root: &Path,
    passwd: &accounts::Passwd,
    users: &[String],
) -> Result<Vec<Account>, AuditError> {
    let mut out: Vec<Account> = Vec::new();
    for raw in users {
        let name = crate::base::user::UserName::parse(raw)
            .map_err(|e| AuditError(format!("--user {raw:?}: {e}")))?;
        if out.iter().any(|a| a.name == name) {
            continue;
        }
        if let Some(a) = passwd.accounts.iter().find(|a| a.name == name) {
            out.push(a.clone());
            continue;
        }
        if root == Path::new("/")
            && let Ok(Some(u)) = nix::unistd::User::from_name(name.as_str())
        {
            out.push(Account {
                name,
                uid: u.uid.as_raw(),
                gid: u.gid.as_raw(),
                shell: u.shell.display().to_string(),
            });
            continue;
        }
        let source: PathBuf = root.join("etc/passwd");
        return Err(AuditError(format!(
            "--user {name}: no such account in {}{}",
            source.display(),
            if root == Path::new("/") {
                " or NSS"
            } else {
                ""
            }
        )));
    }
    Ok(out)
}

/// Each account's groups, as sshd will see them: this machine's (NSS,
/// getgrouplist) for this machine. For a tree, the tree's group file; but
/// sshd evaluates `Match Group` with this machine's accounts, so each
/// account must have the same groups here, or the audit would be wrong.
fn group_sets(root: &Path, audited: &[Account]) -> Result<Vec<BTreeSet<String>>, AuditError> {
    let mut names: BTreeMap<u32, Option<String>> = BTreeMap::new();
    let mut here = |a: &Account| -> Option<BTreeSet<String>> {
        let user = nix::unistd::User::from_name(a.name.as_str()).ok()??;
        let c_name = std::ffi::CString::new(a.name.as_str()).ok()?;
        let gids = nix::unistd::getgrouplist(&c_name, user.gid).ok()?;
        let mut set = BTreeSet::new();
        for gid in gids {
            let name = names.entry(gid.as_raw()).or_insert_with(|| {
                nix::unistd::Group::from_gid(gid)
                    .ok()
                    .flatten()
                    .map(|g| g.name)
            });
            if let Some(n) = name {
                set.insert(n.clone());
            }
        }
        Some(set)
    };
    if root == Path::new("/") {
        return Ok(audited
            .iter()
            .map(|a| here(a).unwrap_or_default())
            .collect());
    }
    let tree = accounts::parse_group(&tree::read(root, "/etc/group")?.unwrap_or_default());
    let mut out = Vec::with_capacity(audited.len());
    for a in audited {
        let theirs = tree.of(a);
        let ours = here(a);
        if ours.as_ref() != Some(&theirs) {
            let ours = match ours {
                Some(g) => format!("here in {}", g.into_iter().collect::<Vec<_>>().join(",")),
                None => "not an account here".into(),
            };
            return Err(AuditError(format!(
                "sshd's configuration under {} has Match Group lines, which sshd evaluates \
                 with this machine's accounts: {} is in {} in the tree but {ours}; audit \
                 from inside the tree (chroot {} twostep audit)",
                root.display(),
                a.name,
                theirs.into_iter().collect::<Vec<_>>().join(","),
                root.display()
            )));
        }
        out.push(theirs);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every parser of text that comes from sshd or the tree, fed 20,000
    /// strings of the characters that matter to them (a fixed seed, so a
    /// failure repeats): none panics.
    #[test]
    fn no_input_makes_a_parser_panic() {
        const PIECES: [&str; 24] = [
            " ",
            "\t",
            "\n",
            "\r",
            "=",
            ",",
            "!",
            "*",
            "?",
            "/",
            ":",
            "\"",
            "'",
            "\\",
            "#",
            "Match ",
            "Include ",
            "user ",
            "checking syntax for 'Match ",
            "'",
            "10.0.0.0/",
            "authenticationmethods ",
            "publickey",
            "é",
        ];
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = next() % 24;
            let text: String = (0..len)
                .map(|_| PIECES[(next() % PIECES.len() as u64) as usize])
                .collect();
            let dump = settings::Dump::parse(&text);
            let _ = dump.effective();
            let lines = settings::match_lines(&text);
            let _ = connections::plan(&lines, std::slice::from_ref(&text));
            let _ = connections::signature(&lines, &text, None);
            let _ = connections::address_candidates(&text);
            let _ = connections::match_pattern_list(&text, &text);
            let _ = settings::includes(&text);
            let _ = settings::mentions_match(&text);
            let _ = includes::rewrite(&text, Path::new("/mnt/image"));
            let _ = accounts::parse_passwd(&text);
            let _ = accounts::parse_group(&text);
            let _ = accounts::uid_min(&text);
        }
    }
}
