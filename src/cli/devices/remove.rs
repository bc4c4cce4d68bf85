//! `twostep remove-device USER NAME`: one of a user's apps stops working;
//! the others and the recovery codes stay. Removing the last is removing
//! the enrollment: a `reset`, recorded and mailed as one.
#![forbid(unsafe_code)]

use super::Removed;
use crate::cli::proven::Over;
use crate::cli::term;
use crate::cli::{CliError, CliResult, Ctx, reset};
use crate::delivery::Event;
use crate::files::secret::DeviceName;

#[derive(clap::Args, Debug)]
#[command(
    about = "Remove one of a user's apps (the last one: a reset)",
    after_help = "\
Examples:
  twostep remove-device alice tablet      alice's tablet no longer logs in
  twostep devices alice                   the names to choose from

The app's codes stop working at once; the user's other apps and recovery
codes keep working. Removing the user's last app removes the enrollment, as
`twostep reset USER` does (and says so)."
)]
pub struct Args {
    /// The user
    user: String,
    /// The app to remove, as `twostep devices USER` names it
    name: String,
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    crate::cli::require_root("remove-device")?;
    let user = crate::cli::account_or_name(&args.user)?;
    let name = DeviceName::parse(&args.name)
        .map_err(|why| CliError::Usage(format!("remove-device: {why}")))?;
    // A user who is not enrolled is told so before the lock is taken, which
    // would leave them a state file (and a line in `twostep status`).
    super::current_file(ctx, &user)?;
    // The notice goes to the address in the file as it was.
    let email = ctx
        .wants_notice(Event::DeviceRemoved)
        .then(|| ctx.file_email(&user))
        .flatten();
    match super::remove(ctx, &user, &name, Over::Anything)? {
        Removed::One { left } => {
            ctx.log(
                ctx.admin_record("device_removed", &user)
                    .with("device", &name),
            );
            // Done and recorded: the notice goes out even if this cannot be shown.
            let _ = term::to_stdout(|out| {
                writeln!(
                    out,
                    "Removed the app {name} of {user}: its codes no longer work.\n\
                     {user} has {left} {} left (`twostep devices {user}`).",
                    if left == 1 { "app" } else { "apps" }
                )
            });
            ctx.notify_device(
                Event::DeviceRemoved,
                &user,
                email.as_ref(),
                Some(name.as_str()),
            );
            Ok(())
        }
        Removed::WasLast => reset::reset(
            ctx,
            &user,
            Some(format!(
                "{name} was the last app of {user}: removing it is a reset."
            )),
        ),
    }
}
