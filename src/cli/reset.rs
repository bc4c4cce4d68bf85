//! `twostep reset USER`: remove a user's enrollment.
#![forbid(unsafe_code)]

use super::proven::{self, Change, Over};
use super::term;
use super::{CliError, CliResult, Ctx};
use crate::base::address::EmailAddress;
use crate::base::user::UserName;
use crate::delivery::Event;
use crate::files::fsutil;
use crate::files::secret;
use crate::rules::lockout::{self, Standing};

#[derive(clap::Args, Debug)]
#[command(
    about = "Remove a user's enrollment (secret and recovery codes)",
    after_help = "\
The secret file is removed durably; the user's authenticator app entry and
recovery codes stop working, and the addresses remembered for it
(policy.remember) are forgotten. Lockout state (failures, lock) is kept:
clear it with `twostep unlock USER`. With unenrolled = \"deny\" the user can no longer
log in until enrolled again.

Examples:
  twostep reset alice
  twostep reset alice && twostep enroll alice     a new phone"
)]
pub struct Args {
    /// The user whose enrollment to remove (need not still have an account)
    user: String,
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    super::require_root("reset")?;
    let user = super::account_or_name(&args.user)?;
    reset(ctx, &user, None)
}

/// Removes the user's enrollment as the administrator, records `reset`,
/// says what was kept and mails the notice. `why`: a line said first
/// (`remove-device`: the app removed was the last).
pub fn reset(ctx: &Ctx, user: &UserName, why: Option<String>) -> CliResult {
    let dir = &ctx.config.secret_dir;
    let path = secret::path_for(dir, user);
    let (removed, email) = remove(ctx, user, Event::Reset, Over::Anything)?;
    if !removed {
        return Err(CliError::Failed(format!(
            "{user} is not enrolled (no {}): nothing to reset",
            path.display()
        )));
    }
    ctx.log_admin("reset", user);
    let mut said: Vec<String> = why.into_iter().collect();
    said.push(format!(
        "Removed the enrollment of {user} ({}).",
        path.display()
    ));
    let now = super::unix_now();
    match ctx.store().read(user) {
        Ok(Some(s)) if s.counters.failures > 0 || s.counters.locked_until > now => {
            let lock = match lockout::standing(&s.counters, now) {
                Standing::Locked { until } => {
                    format!(", locked until {}", crate::base::records::rfc3339(until))
                }
                Standing::Open => String::new(),
            };
            said.push(format!(
                "Kept the lockout state: {} failure(s){lock}. `twostep unlock {user}` clears it.",
                s.counters.failures
            ));
        }
        Ok(_) => {}
        Err(e) => said.push(format!(
            "Kept the state file, which is damaged ({e}): `twostep unlock {user}` replaces it."
        )),
    }
    if ctx.config.unenrolled == crate::config::Unenrolled::Deny {
        said.push(format!(
            "{user} cannot log in where the code is required until enrolled again (unenrolled = \"deny\")."
        ));
    }
    // Done and recorded: the notice goes out even if this cannot be shown.
    let _ = term::to_stdout(|out| said.iter().try_for_each(|line| writeln!(out, "{line}")));
    ctx.notify(Event::Reset, user, email.as_ref());
    Ok(())
}

/// Removes the user's secret file durably, under the user's lock, if `over`
/// allows, and forgets the addresses remembered for it. Returns whether
/// there was one, and its address if `notice` is to be mailed to it.
pub fn remove(
    ctx: &Ctx,
    user: &UserName,
    notice: Event,
    over: Over<'_>,
) -> Result<(bool, Option<EmailAddress>), CliError> {
    let dir = &ctx.config.secret_dir;
    let path = secret::path_for(dir, user);
    // Under the user's lock, so that a login striking off a recovery code
    // cannot write the file back after we removed it. On a proof, this is
    // twostep-self's `disable`.
    let mut locked = proven::lock_for_write(ctx, user, over, Change::Disabled)?;
    // The notice goes to the address in the file being removed.
    let email = ctx
        .wants_notice(notice)
        .then(|| ctx.file_email(user))
        .flatten();
    let removed = fsutil::remove_durably(dir, &path)
        .map_err(|e| CliError::Failed(format!("cannot remove {}: {e}", path.display())))?;
    // Addresses remembered (policy.remember) for a good code of the old
    // secret prove nothing about the next one: a reset after a stolen
    // phone or enrollment must not leave the thief's address trusted, on
    // this host or, with a shared store, on any (where they were kept
    // until now). The named authenticators' steps go with their file.
    if removed {
        super::devices::mark_used_or_fail(
            ctx,
            user,
            locked.as_mut(),
            crate::files::state::StepKey::Default,
            0,
            true,
        )
        .map_err(|e| {
            CliError::Failed(format!(
                "removed the enrollment of {user}, but could not forget its remembered addresses: {e}"
            ))
        })?;
    }
    Ok((removed, email))
}
