//! `twostep recovery-codes USER`: replace a user's recovery codes.
#![forbid(unsafe_code)]

use super::enroll;
use super::proven::{self, Change, Over};
use super::term::{self, HoldSignals, Paint};
use super::{CliError, CliResult, Ctx};
use crate::base::address::EmailAddress;
use crate::base::user::UserName;
use crate::delivery::Event;
use crate::files::secret::{self, SecretError};

#[derive(clap::Args, Debug)]
#[command(
    about = "Replace a user's recovery codes and show the new ones once",
    after_help = "\
The old codes, used or not, stop working at once. The new ones are shown
once and stored only as argon2id hashes. They are shown before they are
written: if they cannot be (standard output closed), nothing changes.

Examples:
  twostep recovery-codes alice
  twostep recovery-codes alice --json | jq -r '.recovery_codes[]'"
)]
pub struct Args {
    /// The enrolled user
    user: String,
    /// Print one JSON object: user, recovery_codes
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    super::require_root("recovery-codes")?;
    let user = super::account_or_name(&args.user)?;
    let hold = HoldSignals::new();
    let email = replace(ctx, &user, Over::Anything, args.json)?;
    drop(hold);
    ctx.notify(Event::RecoveryRegenerated, &user, email.as_ref());
    Ok(())
}

/// Replaces the user's recovery codes: the new ones are shown first (with
/// `json`, as one object), then written, under the user's lock, over what
/// `over` allows, and logged (`recovery_regenerated`). Codes that cannot be
/// shown are not made. Returns the secret file's address, for the notice.
pub fn replace(
    ctx: &Ctx,
    user: &UserName,
    over: Over<'_>,
    json: bool,
) -> Result<Option<EmailAddress>, CliError> {
    if !enroll::is_enrolled(ctx, user) {
        return Err(not_enrolled(user));
    }
    let (shown, hashes) = enroll::new_recovery_codes()?;
    let paint = Paint::stdout();
    term::to_stdout(|out| {
        if json {
            let object = serde_json::json!({
                "user": user.as_str(),
                "recovery_codes": shown.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
            });
            writeln!(out, "{object}")
        } else {
            enroll::print_recovery_codes(out, paint, user, &shown)
        }
    })
    .map_err(|e| {
        CliError::Failed(format!(
            "the new recovery codes could not be shown (standard output: {e}): nothing was \
             changed; the recovery codes of {user} are as they were"
        ))
    })?;
    let email = write(ctx, user, over, hashes).map_err(|e| {
        CliError::Failed(format!("{e}; the recovery codes shown above do not work"))
    })?;
    ctx.log_admin("recovery_regenerated", user);
    if !json {
        // Done and recorded: the notice goes out even if this cannot be shown.
        let _ = term::to_stdout(|out| {
            writeln!(
                out,
                "{}",
                paint.green(&format!(
                    "Replaced the recovery codes of {user}: the old ones no longer work."
                ))
            )
        });
    }
    Ok(email)
}

fn not_enrolled(user: &UserName) -> CliError {
    CliError::Failed(format!(
        "{user} is not enrolled: `twostep enroll {user}` first"
    ))
}

/// Puts `hashes` in the user's secret file in place of its recovery codes.
fn write(
    ctx: &Ctx,
    user: &UserName,
    over: Over<'_>,
    hashes: Vec<String>,
) -> Result<Option<EmailAddress>, CliError> {
    // Read, change and write under the user's lock: a login striking off a
    // code meanwhile would otherwise write the old set back.
    let _locked = proven::lock_for_write(ctx, user, over, Change::RecoveryRegenerated)?;
    let current = match secret::load(&ctx.config.secret_dir, user, &ctx.config.totp) {
        Ok(s) => s,
        Err(SecretError::Missing) => return Err(not_enrolled(user)),
        Err(e) => return Err(CliError::Failed(format!("{user}: {e}"))),
    };
    let mut file = current.file;
    file.recovery_codes = hashes;
    secret::store(&ctx.config.secret_dir, user, &file, true).map_err(|e| {
        CliError::Failed(format!(
            "cannot write {}: {e}",
            secret::path_for(&ctx.config.secret_dir, user).display()
        ))
    })?;
    Ok(current.email)
}
