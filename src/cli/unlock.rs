//! `twostep unlock USER`: clear a user's failures and lock.
#![forbid(unsafe_code)]

use super::{CliError, CliResult, Ctx};
use crate::lockout;
use crate::state::{self, StateError, UserState};

#[derive(clap::Args, Debug)]
#[command(
    about = "Clear a user's failures and lock",
    after_help = "Example:\n  twostep unlock alice"
)]
pub struct Args {
    /// The user to unlock
    user: String,
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    let user = super::parse_user(&args.user)?;
    super::require_root("unlock")?;
    let dir = &ctx.config.state_dir;
    match state::update(dir, &user, |s| UserState {
        counters: lockout::reset(),
        ..s.clone()
    }) {
        Ok(_) => {}
        // A damaged file is replaced by a fresh one. The last accepted step is
        // lost with it, so codes of the current window could be replayed once:
        // say so.
        Err(StateError::Corrupt(why)) => {
            state::replace(dir, &user, &UserState::default()).map_err(|e| {
                CliError::Failed(format!("cannot replace the damaged state of {user}: {e}"))
            })?;
            eprintln!(
                "twostep: the state file of {user} was damaged ({why}); replaced it with a fresh one"
            );
        }
        Err(e) => return Err(CliError::Failed(format!("cannot unlock {user}: {e}"))),
    }
    ctx.log_admin("unlocked", &user);
    println!("Unlocked {user}.");
    Ok(())
}
