//! Adding and removing one authenticator of a user's secret file: the
//! writes behind `twostep enroll USER --add NAME`, `twostep remove-device`
//! and their twostep-self counterparts. Each is one whole-file replacement
//! under the user's state lock, over what `over` allows (`proven`): a
//! reader, or a kill at any moment, sees the old file or the new one.
//! `twostep enroll --add` is in `enroll/added.rs`.
#![forbid(unsafe_code)]

// The commands: `twostep devices` and `twostep remove-device`.
pub mod list;
pub mod remove;

use super::proven::{self, Change, Over};
use super::{CliError, Ctx};
use crate::base::user::UserName;
use crate::files::secret::devices::{self, Entry};
use crate::files::secret::{self, DeviceName, SecretError, SecretFile};
use crate::files::state::StepKey;

/// The user's secret file as it is now, for an edit: an error if they are
/// not enrolled or the file is refused.
pub fn current_file(ctx: &Ctx, user: &UserName) -> Result<SecretFile, CliError> {
    match secret::load(&ctx.config.secret_dir, user, &ctx.config.totp) {
        Ok(s) => Ok(s.file),
        Err(SecretError::Missing) => Err(CliError::Failed(format!(
            "{user} is not enrolled: `twostep enroll {user}` sets up a first authenticator"
        ))),
        Err(e) => Err(CliError::Failed(format!("{user}: {e}"))),
    }
}

/// Adds `entry` to the user's file, under the lock, over what `over`
/// allows. `confirmed_step_time`: the start of the step of the code that
/// confirmed the new authenticator, recorded as its last used, so that the
/// same code cannot log in as well.
pub fn add(
    ctx: &Ctx,
    user: &UserName,
    entry: Entry,
    confirmed_step_time: Option<u64>,
    over: Over<'_>,
) -> Result<(), CliError> {
    let name = DeviceName::parse(&entry.name).map_err(CliError::Usage)?;
    let mut locked = proven::lock_for_write(ctx, user, over, Change::DeviceAdded)?;
    // Read under the lock: a recovery code struck off meanwhile stays
    // struck off.
    let file = current_file(ctx, user)?;
    let next = devices::add(&file, entry).map_err(|e| CliError::Failed(format!("{user}: {e}")))?;
    write(ctx, user, &next)?;
    if let Some(t) = confirmed_step_time {
        mark_used(ctx, user, locked.as_mut(), StepKey::of(&name), t, false);
    }
    Ok(())
}

/// Marks the step of a code that confirmed a new authenticator used where
/// the state is, so that the same code does not log in as well: in this
/// host's state file, under the lock the caller holds (`locked`), or in
/// the shared store, where every host's logins look (a code confirmed on
/// one host was good once more on another: tests/devices_cli.rs). With
/// `new_secret`, the remembered sources and the named authenticators'
/// steps go too. A failure is a note: the change is written already.
pub fn mark_used(
    ctx: &Ctx,
    user: &UserName,
    locked: Option<&mut crate::files::state::Locked>,
    key: StepKey,
    step_time: u64,
    new_secret: bool,
) {
    if let Err(e) = mark_used_or_fail(ctx, user, locked, key, step_time, new_secret) {
        super::term::note(&format!(
            "{}: note: could not mark the confirmation code as used{}: {e}",
            ctx.tag,
            if new_secret {
                " and forget the addresses remembered for the old secret"
            } else {
                ""
            }
        ));
    }
}

/// [`mark_used`], its failure returned.
pub fn mark_used_or_fail(
    ctx: &Ctx,
    user: &UserName,
    locked: Option<&mut crate::files::state::Locked>,
    key: StepKey,
    step_time: u64,
    new_secret: bool,
) -> Result<(), String> {
    if ctx.config.store.url == crate::config::StoreUrl::Local {
        match locked {
            Some(l) => {
                let next = crate::store::file::marked_used(&l.state, key, step_time, new_secret);
                if next == l.state {
                    Ok(())
                } else {
                    l.commit(next).map_err(|e| e.to_string())
                }
            }
            // A damaged state file: the module refuses the user until
            // `twostep unlock`, which starts it afresh.
            None => Ok(()),
        }
    } else {
        ctx.store()
            .mark_used(user, key, step_time, new_secret)
            .map_err(|e| e.to_string())
    }
}

/// What a removal left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removed {
    /// The authenticator is gone; `left` remain.
    One { left: usize },
    /// It was the last: nothing was changed. The caller decides whether to
    /// remove the enrollment (`twostep reset`), which is what removing the
    /// last authenticator means.
    WasLast,
}

/// Removes the authenticator `name` from the user's file, under the lock,
/// over what `over` allows, and forgets its replay step. The last one is
/// not removed here ([`Removed::WasLast`]).
pub fn remove(
    ctx: &Ctx,
    user: &UserName,
    name: &DeviceName,
    over: Over<'_>,
) -> Result<Removed, CliError> {
    let mut locked = proven::lock_for_write(ctx, user, over, Change::DeviceRemoved)?;
    let file = current_file(ctx, user)?;
    let next = match devices::remove(&file, name) {
        Ok(Some(next)) => next,
        Ok(None) => return Ok(Removed::WasLast),
        Err(e) => return Err(CliError::Failed(format!("{user}: {e}"))),
    };
    write(ctx, user, &next)?;
    if let Some(l) = locked.as_mut() {
        let mut state = l.state.clone();
        state.forget_step(StepKey::of(name));
        if state != l.state
            && let Err(e) = l.commit(state)
        {
            super::term::note(&format!(
                "{}: note: could not forget the last used step of {name}: {e}",
                ctx.tag
            ));
        }
    }
    Ok(Removed::One {
        left: devices::list(&next).len(),
    })
}

fn write(ctx: &Ctx, user: &UserName, file: &SecretFile) -> Result<(), CliError> {
    let dir = &ctx.config.secret_dir;
    secret::store(dir, user, file, true)
        .map(|_| ())
        .map_err(|e| {
            CliError::Failed(format!(
                "cannot write {}: {e}",
                secret::path_for(dir, user).display()
            ))
        })
}
