//! `twostep devices USER [--json]`: a user's apps, when each was added and
//! when a code from it was last accepted.
#![forbid(unsafe_code)]

use crate::base::user::UserName;
use crate::cli::term;
use crate::cli::{CliError, CliResult, Ctx};
use crate::files::secret::{DeviceName, devices};
use crate::files::state::StepKey;
use serde::Serialize;

#[derive(clap::Args, Debug)]
#[command(
    about = "List a user's apps (authenticators): name, when added, when last used",
    after_help = "\
Examples:
  twostep devices alice
  twostep devices alice --json | jq -r '.[] | select(.last_used == null) | .name'

LAST USED is the start of the time step of the last code accepted from that
app (the code that confirmed it counts). A user enrolled with one app has one,
named default. `twostep enroll USER --add NAME` adds one, `twostep
remove-device USER NAME` removes one."
)]
pub struct Args {
    /// The user whose apps to list
    user: String,
    /// Print a JSON list of objects with name, created and last_used (RFC
    /// 3339 times; null when unknown or never)
    #[arg(long)]
    json: bool,
}

/// One app of a user.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub name: String,
    /// When it was added, RFC 3339; `None` if the file does not say.
    pub created: Option<String>,
    /// The start of the last accepted code's step, RFC 3339; `None`: never.
    pub last_used: Option<String>,
}

/// The user's apps, in the file's order, with their last used step from
/// the store: for `twostep devices` and `twostep-self devices`.
pub fn rows(ctx: &Ctx, user: &UserName) -> Result<Vec<Row>, CliError> {
    let file = super::current_file(ctx, user)?;
    // The module refuses a user whose state cannot be read: so does this,
    // rather than show every app as never used.
    let state = ctx
        .store()
        .read(user)
        .map_err(|e| {
            CliError::Failed(format!(
                "cannot read the state of {user}: {e} (`twostep unlock {user}` replaces it)"
            ))
        })?
        .unwrap_or_default();
    Ok(devices::list(&file)
        .into_iter()
        .map(|(name, created)| {
            // Names were checked as the file was read.
            let step = DeviceName::parse(&name).map_or(0, |n| state.step_of(StepKey::of(&n)));
            Row {
                name,
                created,
                last_used: (step > 0).then(|| crate::base::records::rfc3339(step)),
            }
        })
        .collect())
}

/// The rows as a table: NAME, ADDED, LAST USED.
pub fn print_rows(out: &mut dyn std::io::Write, rows: &[Row]) -> std::io::Result<()> {
    let cells: Vec<[String; 3]> = rows
        .iter()
        .map(|r| {
            [
                term::escape(&r.name).into_owned(),
                term::escape(r.created.as_deref().unwrap_or("unknown")).into_owned(),
                r.last_used.clone().unwrap_or_else(|| "never".into()),
            ]
        })
        .collect();
    term::table(out, &["NAME", "ADDED", "LAST USED"], &cells)
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    crate::cli::require_root("devices")?;
    let user = crate::cli::account_or_name(&args.user)?;
    let rows = rows(ctx, &user)?;
    crate::cli::status::shown(term::to_stdout(|out| {
        if args.json {
            writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(&rows).unwrap_or_default()
            )
        } else {
            print_rows(out, &rows)
        }
    }))
}
