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
use crate::secret::devices::{self, Entry};
use crate::secret::{self, DeviceName, SecretError, SecretFile};
use crate::state::StepKey;
use crate::user::UserName;

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
    if let (Some(l), Some(t)) = (locked.as_mut(), confirmed_step_time) {
        let mut state = l.state.clone();
        state.accept_step(StepKey::of(&name), t);
        if let Err(e) = l.commit(state) {
            super::term::note(&format!(
                "{}: note: could not mark the confirmation code as used: {e}",
                ctx.tag
            ));
        }
    }
    Ok(())
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
