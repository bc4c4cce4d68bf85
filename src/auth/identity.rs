//! Which account an attempt is about. One account, one identity: the secret
//! and state files are named by the account's own name (`pw_name`), never by
//! the spelling typed at login. Where NSS resolves other spellings to an
//! account (SSSD and winbind ignore case by default, nslcd with
//! `ignorecase`), `ALICE` is alice: her secret, her state, her lockout.
//!
//! The account database is read only when needed. A secret file exists only
//! under an account's own name (every enrollment resolves the name first),
//! so a name that has one is an account's own name, and an enrolled user's
//! login does not walk the account database (linear in its size with NSS
//! files).
#![forbid(unsafe_code)]

use super::{Accounts, Env, Request};
use crate::base::user::UserName;
use crate::files::secret;
use crate::rules::policy;

/// Who the attempt is about, once the name is checked.
pub(super) enum Who {
    /// Not a plausible login name: nothing may touch the disk for it.
    Invalid,
    /// A plausible name that is not an account here (or whose lookup failed).
    Unknown,
    /// The account, by its own name.
    Account(UserName),
}

/// The account `typed` resolves to, through the account database.
pub(super) fn lookup(env: &Env<'_>, typed: &UserName) -> Who {
    match env.accounts.canonical(typed) {
        Ok(Some(account)) => Who::Account(account),
        // A failed lookup is treated as "no such user": deny.
        Ok(None) | Err(_) => Who::Unknown,
    }
}

/// Resolves PAM_USER: a name with a secret file is an account's own name;
/// any other is looked up.
pub(super) fn resolve(env: &Env<'_>, req: &Request) -> Who {
    let Ok(typed) = UserName::parse_bytes(&req.user) else {
        return Who::Invalid;
    };
    if secret::path_for(&env.config.secret_dir, &typed)
        .symlink_metadata()
        .is_ok()
    {
        return Who::Account(typed);
    }
    lookup(env, &typed)
}

/// The policy's view of a user's groups: the user's group IDs are looked up
/// once, on the first question, and each configured group name is resolved
/// to its ID, so that no group of the user needs a lookup by name.
pub(super) struct UserGroups<'a> {
    accounts: &'a dyn Accounts,
    user: &'a UserName,
    gids: Option<Result<Option<Vec<u32>>, String>>,
}

impl<'a> UserGroups<'a> {
    pub(super) fn new(accounts: &'a dyn Accounts, user: &'a UserName) -> Self {
        UserGroups {
            accounts,
            user,
            gids: None,
        }
    }
}

impl policy::Groups for UserGroups<'_> {
    fn in_any(&mut self, names: &[String]) -> Result<bool, String> {
        let (accounts, user) = (self.accounts, self.user);
        let gids = match self.gids.get_or_insert_with(|| accounts.group_ids(user)) {
            Ok(Some(gids)) => gids,
            // A user that does not exist is in no group.
            Ok(None) => return Ok(false),
            Err(e) => return Err(e.clone()),
        };
        let mut failed = None;
        for name in names {
            match accounts.group_id(name) {
                Ok(Some(gid)) if gids.contains(&gid) => return Ok(true),
                Ok(_) => {}
                Err(e) => failed = Some(format!("group {name}: {e}")),
            }
        }
        failed.map_or(Ok(false), Err)
    }
}

/// Whether PAM_TTY names a terminal of this machine: a character device
/// under /dev (`tty1`, `/dev/tty1`, `/dev/pts/3`). `policy.console = "skip"`
/// applies only then: a service without a remote host and without a
/// terminal (cron, a daemon that checks passwords through PAM) is not a
/// console, and is asked.
pub(super) fn on_local_terminal(tty: &str) -> bool {
    use std::os::unix::fs::FileTypeExt;
    let path = match tty.strip_prefix("/dev/") {
        Some(rest) => rest,
        None => tty,
    };
    if path.is_empty() || path.split('/').any(|part| part.is_empty() || part == "..") {
        return false;
    }
    std::fs::metadata(format!("/dev/{path}")).is_ok_and(|m| m.file_type().is_char_device())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_terminals_are_character_devices_under_dev() {
        // (PAM_TTY, a terminal?) on any Linux machine: /dev/null and
        // /dev/tty are character devices; the rest are not terminals.
        let table = [
            ("", false),
            ("ssh", false),
            (":0", false),
            ("null", true),
            ("/dev/null", true),
            ("tty", true),
            ("/dev/../dev/null", false),
            ("/dev//null", false),
            ("/etc/passwd", false),
            ("../etc/passwd", false),
            ("/dev/shm", false),
            ("no-such-tty-here", false),
        ];
        for (tty, want) in table {
            assert_eq!(on_local_terminal(tty), want, "{tty:?}");
        }
    }
}
