//! `twostep enroll USER --add NAME`: one more app for an enrolled user,
//! beside the ones they have (INTERFACE.md, "Several authenticators").
//!
//! Its key is shown as an enrollment's is, under the account "USER (NAME)"
//! so that an app holding two of them tells them apart, and it is added
//! only once a code from it is right (unless `--no-confirm`), through
//! [`crate::cli::devices::add`]: one whole-file replacement under the
//! user's lock, which marks the confirming code's step used. No recovery
//! codes are made: the user's stay as they are. What would be refused (the
//! name, a ninth app, a user who is not enrolled or gets codes sent) is
//! refused before anything is shown.
#![forbid(unsafe_code)]

use super::app::{NewApp, print_written};
use super::{Args, MethodArg, Undone, issuer};
use super::{remove_all, write_all_private};
use crate::base::user::UserName;
use crate::cli::proven::Over;
use crate::cli::term::{self, HoldSignals, Keyboard, Paint};
use crate::cli::{CliError, CliResult, Ctx, devices};
use crate::delivery::Event;
use crate::files::secret::devices::Entry;
use crate::files::secret::{self, DeviceName};
use zeroize::Zeroizing;

/// The options that belong to a new enrollment, not to one more app.
fn refuse_options(args: &Args) -> CliResult {
    if args.force {
        return Err(CliError::Usage(
            "--add keeps the enrollment and --force replaces it: give one or the other".into(),
        ));
    }
    if args.how.method != MethodArg::Totp {
        return Err(CliError::Usage(
            "--add is for apps (--method totp): codes by email or text message go one way only"
                .into(),
        ));
    }
    if args.how.email.is_some() || args.how.phone.is_some() {
        return Err(CliError::Usage(
            "--email and --phone are for a new enrollment: --add keeps the user's".into(),
        ));
    }
    Ok(())
}

/// The name `--add` gives, or the rule it breaks (the name itself is not
/// repeated: it may be long or hold anything).
fn device_name(raw: &str) -> Result<DeviceName, CliError> {
    DeviceName::parse(raw).map_err(|why| CliError::Usage(format!("--add: {why}")))
}

/// An entry for the app `name` with this key, its parameters spelt out, as
/// an enrollment's are, so that a later change of the config's defaults
/// cannot break the app.
fn entry(name: &DeviceName, b32: &str, app: &NewApp) -> Entry {
    Entry {
        name: name.to_string(),
        secret: Zeroizing::new(b32.to_string()),
        digits: Some(app.params.digits),
        period: Some(app.params.period),
        algorithm: Some(app.params.algorithm),
        created: Some(crate::files::enrollment::now_rfc3339()),
    }
}

/// Refuses, before anything is shown, an app that could not be added: the
/// options, the name, a user who is not enrolled, whose codes are sent, who
/// has an app of that name or 8 already.
pub(super) fn check(ctx: &Ctx, args: &Args, user: &UserName, raw: &str) -> CliResult {
    refuse_options(args)?;
    let name = device_name(raw)?;
    let file = devices::current_file(ctx, user)?;
    secret::devices::can_add(&file, &name).map_err(|e| CliError::Failed(format!("{user}: {e}")))
}

pub(super) fn run(
    ctx: &Ctx,
    args: &Args,
    user: &UserName,
    raw: &str,
    keyboard: &Keyboard,
    over: Over<'_>,
) -> CliResult {
    check(ctx, args, user, raw)?;
    let name = device_name(raw)?;
    let undone = Undone::device(user, &name);
    let issuer = issuer(ctx);
    let app = NewApp::shown(
        ctx,
        args,
        &format!("Adding the app {name} for {user} (issuer \"{issuer}\")."),
        &super::shown::device_label(user, &name),
        &undone,
    )?;
    let confirmed = app.confirmed(args, keyboard, &undone, over)?;
    let images = app.images(args)?;
    let entry = entry(&name, &app.b32, &app);

    // From here to the end, Ctrl-C waits: the app is shown and added
    // whole, or nothing is written.
    let hold = HoldSignals::new();
    if args.json {
        // Before the write, as an enrollment's codes: a key that could not
        // be handed over is not added.
        let object = serde_json::json!({
            "user": user.as_str(),
            "device": name.as_str(),
            "secret": app.b32.as_str(),
            "uri": app.uri.as_str(),
        });
        term::to_stdout(|out| writeln!(out, "{object}")).map_err(|e| {
            undone.because(&format!(
                "the key could not be shown (standard output: {e})"
            ))
        })?;
    }
    let written = write_all_private(&images).map_err(|e| undone.because(&e.to_string()))?;
    if let Err(e) = devices::add(ctx, user, entry, confirmed, over) {
        remove_all(&written);
        return Err(e);
    }
    ctx.log(ctx.admin_record("device_added", user).with("device", &name));
    let now = devices::current_file(ctx, user)
        .map(|f| secret::devices::list(&f))
        .unwrap_or_default();
    if !args.json {
        let names: Vec<&str> = now.iter().map(|(n, _)| n.as_str()).collect();
        // Done and recorded: the notice goes out even if this cannot be shown.
        let _ = term::to_stdout(|out| {
            writeln!(
                out,
                "{}",
                Paint::stdout().green(&format!("Added the app {name} to {user}."))
            )?;
            writeln!(
                out,
                "{user} has {} apps now: {}. Their recovery codes are unchanged.",
                names.len(),
                names.join(", ")
            )?;
            print_written(out, &written)
        });
    }
    drop(hold);
    ctx.notify_device(
        Event::DeviceAdded,
        user,
        ctx.file_email(user).as_ref(),
        Some(name.as_str()),
    );
    Ok(())
}
