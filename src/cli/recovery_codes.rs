//! `twostep recovery-codes USER`: replace a user's recovery codes.
#![forbid(unsafe_code)]

use super::enroll;
use super::term::{HoldSignals, Paint};
use super::{CliError, CliResult, Ctx};
use crate::delivery::{EmailAddress, Event};
use crate::secret::{self, SecretError};
use crate::user::UserName;
use zeroize::Zeroizing;

#[derive(clap::Args, Debug)]
#[command(
    about = "Replace a user's recovery codes and show the new ones once",
    after_help = "\
The old codes, used or not, stop working at once. The new ones are shown
once and stored only as argon2id hashes.

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
    let (shown, email) = replace(ctx, &user)?;
    if args.json {
        let out = serde_json::json!({
            "user": user.as_str(),
            "recovery_codes": shown.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        });
        println!("{out}");
    } else {
        print(&user, &shown);
    }
    drop(hold);
    ctx.notify(Event::RecoveryRegenerated, &user, email.as_ref());
    Ok(())
}

/// Replaces the user's recovery codes and logs `recovery_regenerated`.
/// Returns the new codes, to be shown once, and the secret file's address
/// for the notice.
pub fn replace(
    ctx: &Ctx,
    user: &UserName,
) -> Result<(Vec<Zeroizing<String>>, Option<EmailAddress>), CliError> {
    let (shown, hashes) = enroll::new_recovery_codes()?;
    let email = {
        // Read, change and write under the user's lock: a login striking off
        // a code meanwhile would otherwise write the old set back.
        let _locked = enroll::lock_user(ctx, user)?;
        let current = match secret::load(&ctx.config.secret_dir, user, &ctx.config.totp) {
            Ok(s) => s,
            Err(SecretError::Missing) => {
                return Err(CliError::Failed(format!(
                    "{user} is not enrolled: `twostep enroll {user}` first"
                )));
            }
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
        current.email
    };
    ctx.log_admin("recovery_regenerated", user);
    Ok((shown, email))
}

/// The new codes, shown once.
pub fn print(user: &UserName, shown: &[Zeroizing<String>]) {
    let paint = Paint::stdout();
    println!(
        "{}",
        paint.green(&format!(
            "Replaced the recovery codes of {user}: the old ones no longer work."
        ))
    );
    enroll::print_recovery_codes(&mut std::io::stdout(), paint, user, shown);
}
