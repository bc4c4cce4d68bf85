//! What each command does once the caller is known and self-service is on.
//! The work itself is the admin command's (`cli::enroll`,
//! `cli::recovery_codes`, `cli::reset`, `cli::status`), run with a context
//! whose records and notices say `by=self` under the tag `twostep-self`.
//! What can be refused without a password is refused first, so that no one
//! types a password for a change that cannot be made.
#![forbid(unsafe_code)]

use super::proof;
use crate::base::user::UserName;
use crate::cli::enroll::{self, HowCodesCome};
use crate::cli::proven::Over;
use crate::cli::term::{self, Paint};
use crate::cli::{CliError, Ctx, recovery_codes, reset};
use crate::config::Unenrolled;
use crate::delivery::Event;

/// `status`: read-only, about the caller's own account, so no password.
pub fn status(ctx: &Ctx, user: &UserName) -> Result<(), CliError> {
    let s = crate::cli::status::status_of(ctx, user, crate::cli::unix_now());
    let method = match (s.enrolled, s.method, &s.to) {
        (Some(false), _, _) => "none: not set up (`twostep-self enroll` sets it up)".to_string(),
        (None, _, _) | (Some(true), None, _) => {
            "unknown: your enrollment cannot be read; ask your administrator".to_string()
        }
        (Some(true), Some("totp"), _) => "an authenticator app".to_string(),
        (Some(true), Some("email"), Some(to)) => format!("codes by email to {to}"),
        (Some(true), Some("sms"), Some(to)) => format!("codes by text message to {to}"),
        (Some(true), Some(m), _) => {
            format!("{m} codes, which can be sent nowhere now; ask your administrator")
        }
    };
    let codes = match s.recovery_codes_left {
        Some(n) => format!("{n} left"),
        None => "none".to_string(),
    };
    let lock = match (s.locked, &s.locked_until) {
        (true, Some(until)) => format!("locked until {until}"),
        (true, None) => "locked; ask your administrator".to_string(),
        (false, _) if s.failures > 0 => format!(
            "not locked; {} failed attempt(s) since the last success",
            s.failures
        ),
        (false, _) => "not locked".to_string(),
    };
    let paint = Paint::stdout();
    let mut rows = vec![("Method", method)];
    if let Some(n) = super::devices::count(ctx, user) {
        rows.push((
            "Authenticators",
            format!("{n} (`twostep-self devices` lists them)"),
        ));
    }
    rows.extend([("Recovery codes", codes), ("Lock", lock)]);
    if let Some(problem) = &s.problem {
        rows.push(("Problem", term::escape(problem).into_owned()));
    }
    crate::cli::status::shown(term::to_stdout(|out| {
        writeln!(
            out,
            "{}",
            paint.bold(&format!("Two-step sign-in of {user} on this machine:"))
        )?;
        write!(out, "{}", term::aligned(&rows))
    }))
}

/// Refuses, before the password is asked, a change whose new secret or
/// codes would go to a standard output whose reader has gone (`| head -0`):
/// they could not be shown, so the change would not be made anyway.
pub(super) fn refuse_if_unseen(what: &str) -> Result<(), CliError> {
    if term::stdout_gone() {
        return Err(CliError::Failed(format!(
            "standard output is a pipe that nobody reads, so {what} could not be shown: \
             nothing was asked or changed"
        )));
    }
    Ok(())
}

/// `enroll`: set up, or replace, as the admin's `enroll` does, after the
/// proof (for a replacement, the current factor too).
pub fn enroll(ctx: &Ctx, user: &UserName, how: HowCodesCome) -> Result<(), CliError> {
    let args = enroll::Args::for_self(how);
    enroll::check(ctx, &args, user)?;
    refuse_if_unseen("your new key and recovery codes")?;
    let keyboard = proof::keyboard()?;
    let proven = proof::prove(ctx, user, &keyboard, None)?;
    enroll::one(ctx, &args, user, &keyboard, Over::Proven(&proven))
}

/// `recovery-codes`: a new set, shown once.
pub fn recovery_codes(ctx: &Ctx, user: &UserName) -> Result<(), CliError> {
    if !enroll::is_enrolled(ctx, user) {
        return Err(CliError::Failed(
            "you have no second factor set up, so no recovery codes: \
             `twostep-self enroll` sets one up"
                .into(),
        ));
    }
    refuse_if_unseen("your new recovery codes")?;
    let keyboard = proof::keyboard()?;
    let proven = proof::prove(ctx, user, &keyboard, None)?;
    let email = recovery_codes::replace(ctx, user, Over::Proven(&proven), false)?;
    ctx.notify(Event::RecoveryRegenerated, user, email.as_ref());
    Ok(())
}

/// Whether the caller may turn two-step sign-in off themselves: only with
/// `self_service.allow_disable`, never as a member of
/// `policy.always_challenge_groups`. `Err`: why not, in one line.
pub(super) fn may_disable(ctx: &Ctx, user: &UserName) -> Result<(), String> {
    if !ctx.config.self_service.allow_disable {
        return Err(
            "turning two-step sign-in off yourself is not allowed on this machine \
             (self_service.allow_disable): ask your administrator"
                .into(),
        );
    }
    let groups = &ctx.config.policy.always_challenge_groups;
    match crate::auth::confirm::always_challenged(&ctx.config, &crate::pam::SystemAccounts, user) {
        Ok(false) => Ok(()),
        Ok(true) => Err(format!(
            "members of {} (policy.always_challenge_groups) cannot turn two-step \
             sign-in off",
            groups.join(", ")
        )),
        Err(e) => Err(format!(
            "cannot tell whether you are in policy.always_challenge_groups ({e}), \
             so it stays on"
        )),
    }
}

/// `disable`: only where [`may_disable`] allows it.
pub fn disable(ctx: &Ctx, user: &UserName) -> Result<(), CliError> {
    may_disable(ctx, user).map_err(CliError::Failed)?;
    if !enroll::is_enrolled(ctx, user) {
        return Err(CliError::Failed(
            "two-step sign-in is not set up for you: there is nothing to turn off".into(),
        ));
    }
    if ctx.config.unenrolled == Unenrolled::Deny {
        term::note(
            "Note: on this machine, logins that ask for a code refuse users who have none \
             (unenrolled = \"deny\"): you will not get in there until you set it up again.",
        );
    }
    let keyboard = proof::keyboard()?;
    let proven = proof::prove(ctx, user, &keyboard, None)?;
    let (removed, email) = reset::remove(ctx, user, Event::Disabled, Over::Proven(&proven))?;
    if !removed {
        return Err(CliError::Failed(
            "two-step sign-in was removed meanwhile: nothing to turn off".into(),
        ));
    }
    ctx.log_admin("disabled", user);
    // Done and recorded: the notice goes out whatever becomes of this line
    // (`twostep-self disable | true`); a line that could not be shown is
    // said on stderr instead.
    let said = Paint::stdout().green(&format!(
        "Turned off two-step sign-in for {user}: your app's codes and your recovery \
         codes no longer work."
    ));
    if term::to_stdout(|out| writeln!(out, "{said}")).is_err() {
        term::note(&format!(
            "twostep-self: turned off two-step sign-in for {user}"
        ));
    }
    ctx.notify(Event::Disabled, user, email.as_ref());
    Ok(())
}
