//! `twostep unlock USER`: clear a user's failures and lock, and a last
//! accepted step that lies in the future.
#![forbid(unsafe_code)]

use super::term;
use super::{CliError, CliResult, Ctx};
use crate::base::records::rfc3339;
use crate::config::TotpParams;
use crate::delivery::Event;
use crate::files::secret;
use crate::files::state::{self, StateError, UserState};
use crate::store::StoreError;

#[derive(clap::Args, Debug)]
#[command(
    about = "Clear a user's failures and lock",
    after_help = "Also clears the time step of the last accepted code if it lies in the future\n\
                  (the clock was set forward, then back): until then every right code is\n\
                  refused as a replay.\n\nExample:\n  twostep unlock alice"
)]
pub struct Args {
    /// The user to unlock
    user: String,
}

/// Whether `last_step_time` (the start of the last accepted code's step) is
/// later than any code accepted at `now` could have left it: past the
/// window's reach, `skew` steps ahead. Only a clock that was ahead, then set
/// back, leaves one; until the real time catches up, every right code is
/// refused as a replay. One within the reach is kept: clearing it would let
/// the code that set it be used again.
#[cfg(test)]
fn in_the_future(last_step_time: u64, now: u64, params: &TotpParams) -> bool {
    last_step_time > future_beyond(now, params)
}

/// The latest step the window can still reach: now plus the skew.
fn future_beyond(now: u64, params: &TotpParams) -> u64 {
    now.saturating_add(u64::from(params.skew) * u64::from(params.period))
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    let user = super::account_or_name(&args.user)?;
    super::require_root("unlock")?;
    // The user's own period, if their secret file sets one, and address.
    let (params, email) = match secret::load(&ctx.config.secret_dir, &user, &ctx.config.totp) {
        Ok(s) => (s.params, s.email),
        Err(_) => (ctx.config.totp, None),
    };
    let now = super::unix_now();
    // A step beyond the window's reach lies in the future (the clock was set
    // forward, then back): cleared, so that right codes work again.
    let store = ctx.store();
    let future_step = match store.unlock(&user, future_beyond(now, &params)) {
        Ok(cleared) => cleared,
        // A damaged file is replaced by a fresh one. The last accepted step is
        // lost with it, so codes of the current window could be replayed once:
        // say so.
        Err(StoreError::State(StateError::Corrupt(why))) => {
            state::replace(&ctx.config.state_dir, &user, &UserState::default()).map_err(|e| {
                CliError::Failed(format!("cannot replace the damaged state of {user}: {e}"))
            })?;
            term::note(&format!(
                "twostep: the state file of {user} was damaged ({why}); replaced it with a fresh one"
            ));
            None
        }
        Err(e) => return Err(CliError::Failed(format!("cannot unlock {user}: {e}"))),
    };
    let mut record = ctx.admin_record("unlocked", &user);
    if let Some(step) = future_step {
        record = record.with("future_step_cleared", rfc3339(step));
    }
    ctx.log(record);
    // Done and recorded: the notice goes out even if this cannot be shown.
    let _ = term::to_stdout(|out| {
        writeln!(out, "Unlocked {user}.")?;
        match future_step {
            Some(step) => writeln!(
                out,
                "Cleared the last accepted code's time step, {}, which lies in the future (was \
                 the clock set forward?): {user}'s right codes are accepted again.",
                rfc3339(step)
            ),
            None => Ok(()),
        }
    });
    ctx.notify(Event::Unlocked, &user, email.as_ref());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_step_beyond_the_windows_reach_is_in_the_future() {
        let now = 1_900_000_015; // 15 s into a 30 s step
        let step = now - 15;
        let params = |skew, period| TotpParams {
            skew,
            period,
            ..TotpParams::default()
        };
        let cases = [
            // (last step start, skew, period, in the future)
            (0, 1, 30, false),
            (step, 1, 30, false),
            // The next step, accepted with skew 1 from a phone a little ahead.
            (step + 30, 1, 30, false),
            (step + 60, 1, 30, true),
            (step + 30, 0, 30, true),
            (step + 60, 2, 30, false),
            (step + 90, 2, 30, true),
            (step + 60, 1, 60, false),
            (now + 365 * 86_400, 10, 300, true),
            (u64::MAX, 10, 300, true),
        ];
        for (last, skew, period, want) in cases {
            assert_eq!(
                in_the_future(last, now, &params(skew, period)),
                want,
                "last={last} skew={skew} period={period}"
            );
        }
        assert!(!in_the_future(u64::MAX, u64::MAX, &params(10, 300)));
    }
}
