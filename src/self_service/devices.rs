//! The caller's authenticators: `devices` lists them, `enroll --add NAME`
//! adds one, `remove-device NAME` removes one. The writes are the admin
//! command's (`cli::devices`), over the proof (`cli::proven`); what can be
//! refused without a password (a name taken or unknown, eight already, codes
//! that come by email) is refused first, and the same rules are applied
//! again under the lock when the file is written.
//!
//! Removing one is confirmed by a code from an authenticator that stays
//! (or a recovery code): whoever holds only the one being removed has not
//! shown that the person can still sign in. The last one is the exception:
//! removing it is turning two-step sign-in off, allowed only where
//! `disable` is, and confirmed as `disable` is.
#![forbid(unsafe_code)]

use super::{commands, proof};
use crate::base::records::{Record, Severity};
use crate::base::user::UserName;
use crate::cli::devices::{self as edit, Removed};
use crate::cli::proven::Over;
use crate::cli::status::shown;
use crate::cli::term::{self, Keyboard, NoAnswer, Paint};
use crate::cli::{CliError, Ctx, enroll};
use crate::config::TotpParams;
use crate::delivery::Event;
use crate::files::secret::devices::{self, EditError, Entry};
use crate::files::secret::{self, DeviceName, Method, SecretError, SecretFile};
use crate::qr::{self, Qr};
use crate::rules::totp::{self, Code};
use zeroize::Zeroizing;

/// Tries to type the new authenticator's code, as `enroll` gives.
const CONFIRM_TRIES: u32 = 3;

/// The caller's secret file as it is now, for an answer given before the
/// password: `None` if they are not enrolled.
fn own_file(ctx: &Ctx, user: &UserName) -> Result<Option<SecretFile>, CliError> {
    match secret::load(&ctx.config.secret_dir, user, &ctx.config.totp) {
        Ok(read) => Ok(Some(read.file)),
        Err(SecretError::Missing) => Ok(None),
        Err(e) => Err(CliError::Failed(format!(
            "your second factor's file cannot be read ({}): ask your administrator",
            term::escape(&e.to_string())
        ))),
    }
}

/// The caller's file, if their codes come from an app; otherwise the
/// refusal that says why there is no authenticator to add or remove.
fn app_file(ctx: &Ctx, user: &UserName) -> Result<SecretFile, CliError> {
    match own_file(ctx, user)? {
        None => Err(CliError::Failed(
            "you have no second factor set up: `twostep-self enroll` sets up a first \
             authenticator"
                .into(),
        )),
        Some(file) if file.method != Method::Totp => Err(CliError::Failed(format!(
            "your codes come by {}, not from an authenticator app: `twostep-self enroll` \
             sets up an app instead",
            file.method.as_str()
        ))),
        Some(file) => Ok(file),
    }
}

/// How many authenticators the caller has, for `status`: `None` when their
/// codes do not come from an app (or the file cannot be read; status says
/// so already).
pub fn count(ctx: &Ctx, user: &UserName) -> Option<usize> {
    match own_file(ctx, user) {
        Ok(Some(file)) if file.method == Method::Totp => Some(devices::list(&file).len()),
        _ => None,
    }
}

/// `devices`: read-only, about the caller's own account, so no password.
pub fn list(ctx: &Ctx, user: &UserName) -> Result<(), CliError> {
    let paint = Paint::stdout();
    match own_file(ctx, user)? {
        None => {
            return shown(term::to_stdout(|out| {
                writeln!(
                    out,
                    "You have no authenticators: `twostep-self enroll` sets up a first one."
                )
            }));
        }
        Some(file) if file.method != Method::Totp => {
            let method = file.method.as_str();
            return shown(term::to_stdout(|out| {
                writeln!(
                    out,
                    "Your codes come by {method}, not from an authenticator app: \
                     you have no authenticators."
                )
            }));
        }
        Some(_) => {}
    };
    // The admin's `twostep devices` table: the last use of each is its last
    // accepted step, as logins keep it.
    let rows = crate::cli::devices::list::rows(ctx, user)?;
    let total = rows.len();
    shown(term::to_stdout(|out| {
        writeln!(
            out,
            "{}",
            paint.bold(&format!(
                "Authenticators of {user} on this machine ({total} of at most {}):",
                devices::MAX_DEVICES
            ))
        )?;
        crate::cli::devices::list::print_rows(out, &rows)
    }))
}

/// The refusal, before the password, of an addition the file would refuse
/// (`devices::add`'s rules: eight already, the name taken).
fn refuse_addition(ctx: &Ctx, user: &UserName, name: &DeviceName) -> Result<(), CliError> {
    let file = app_file(ctx, user)?;
    devices::can_add(&file, name).map_err(|e| CliError::Failed(edit_refused(&e)))
}

fn edit_refused(e: &EditError) -> String {
    match e {
        EditError::NoSuch(name) => {
            format!("you have no authenticator named {name} (`twostep-self devices` lists them)")
        }
        EditError::Full => format!(
            "you have {} authenticators already, the most allowed: \
             `twostep-self remove-device NAME` removes one first",
            devices::MAX_DEVICES
        ),
        EditError::Taken(name) => format!(
            "you have an authenticator named {name} already: choose another name, or \
             remove it first"
        ),
        other => other.to_string(),
    }
}

/// `enroll --add NAME`: after the proof (the password, and a code from one
/// of the caller's authenticators or a recovery code), a new key shown,
/// confirmed by a code from the new app, then added to the file.
pub fn add(ctx: &Ctx, user: &UserName, name: &DeviceName) -> Result<(), CliError> {
    refuse_addition(ctx, user, name)?;
    commands::refuse_if_unseen("your new authenticator's key")?;
    let keyboard = proof::keyboard()?;
    let proven = proof::prove(ctx, user, &keyboard, None)?;
    let over = Over::Proven(&proven);

    let key = enroll::new_key()?;
    let params = ctx.config.totp;
    let issuer = enroll::issuer(ctx);
    let b32 = secret::encode_base32(&key);
    let label = enroll::shown::device_label(user, name);
    let uri = qr::otpauth_uri(&issuer, &label, &b32, &params);
    let drawing = Qr::encode(uri.as_bytes()).map_err(|e| CliError::Failed(e.to_string()))?;
    let heading = format!("A new authenticator, {name}, for {user} (issuer \"{issuer}\").");
    term::to_stdout(|out| {
        enroll::shown::show(
            out,
            Paint::stdout(),
            &heading,
            &format!("{issuer}:{label}"),
            &b32,
            &params,
            &uri,
            Some((&drawing, enroll::QrStyle::Utf8)),
        )
    })
    .map_err(|e| not_added(name, &format!("the new key could not be shown ({e})")))?;
    let step_time = confirm_new(&keyboard, name, &key, &params, over)?;

    let entry = Entry {
        name: name.to_string(),
        secret: Zeroizing::new(b32.to_string()),
        digits: Some(params.digits),
        period: Some(params.period),
        algorithm: Some(params.algorithm),
        created: Some(crate::files::enrollment::now_rfc3339()),
    };
    edit::add(ctx, user, entry, Some(step_time), over).map_err(|e| match e {
        CliError::Failed(why) => not_added(name, &why),
        usage => usage,
    })?;
    let left = count(ctx, user).unwrap_or(0);
    done(
        ctx,
        user,
        name,
        Event::DeviceAdded,
        &format!(
            "Added the authenticator {name}: its codes work from now on \
             ({left} authenticator(s) in all)."
        ),
    );
    Ok(())
}

/// After a change is written: its record (`device_added` or
/// `device_removed`, `user device by`), the line that says it, and the
/// notice, which goes out whatever becomes of that line (a line that
/// cannot be shown is said on stderr instead).
fn done(ctx: &Ctx, user: &UserName, name: &DeviceName, event: Event, said: &str) {
    ctx.log(
        Record::new(event.name(), Severity::Notice)
            .with("user", user)
            .with("device", name.as_str())
            .with("by", &ctx.by),
    );
    let painted = Paint::stdout().green(said);
    if term::to_stdout(|out| writeln!(out, "{painted}")).is_err() {
        term::note(&format!("twostep-self: {said}"));
    }
    ctx.notify_device(
        event,
        user,
        ctx.file_email(user).as_ref(),
        Some(name.as_str()),
    );
}

/// "`why`: NAME was not added; nothing was written"
fn not_added(name: &DeviceName, why: &str) -> CliError {
    CliError::Failed(format!("{why}: {name} was not added; nothing was written"))
}

/// Asks for the new app's code, up to [`CONFIRM_TRIES`] times, within the
/// time the proof gives. The start of the matched step.
fn confirm_new(
    keyboard: &Keyboard,
    name: &DeviceName,
    key: &[u8],
    params: &TotpParams,
    over: Over<'_>,
) -> Result<u64, CliError> {
    let paint = Paint::stderr();
    let prompt = format!("Code from {name} ({} digits): ", params.digits);
    for attempt in 1..=CONFIRM_TRIES {
        let answer = keyboard
            .read_code_within(&prompt, over.prompt_limit())
            .map_err(|no| match no {
                NoAnswer::Cancelled => not_added(name, "cancelled"),
                NoAnswer::TimedOut => not_added(
                    name,
                    &format!(
                        "no answer within {} of your confirmation",
                        crate::cli::proven::good_for_words()
                    ),
                ),
            })?;
        let step = Code::parse(answer.as_bytes(), params.digits)
            .and_then(|code| totp::matching_step(key, params, &code, crate::cli::unix_now()));
        if let Some(step) = step {
            eprintln!("{}", paint.green("Code accepted."));
            return Ok(step.saturating_mul(u64::from(params.period)));
        }
        let left = CONFIRM_TRIES - attempt;
        if left > 0 {
            eprintln!(
                "{}",
                paint.yellow(&format!(
                    "That is not the current code of the new authenticator ({left} {} left).",
                    if left == 1 { "try" } else { "tries" }
                ))
            );
        }
    }
    Err(not_added(
        name,
        &format!("{CONFIRM_TRIES} wrong codes (is the clock of {name} set automatically?)"),
    ))
}

/// `remove-device NAME`: confirmed by the password and a code from one of
/// the caller's other authenticators, or a recovery code. The last one is
/// `disable`'s to remove.
pub fn remove(ctx: &Ctx, user: &UserName, name: &DeviceName) -> Result<(), CliError> {
    let file = app_file(ctx, user)?;
    let names: Vec<String> = devices::list(&file).into_iter().map(|(n, _)| n).collect();
    if !names.iter().any(|n| n == name.as_str()) {
        return Err(CliError::Failed(edit_refused(&EditError::NoSuch(
            name.clone(),
        ))));
    }
    if names.len() == 1 {
        commands::may_disable(ctx, user).map_err(|why| {
            CliError::Failed(format!(
                "{name} is your last authenticator, and removing it would turn two-step \
                 sign-in off: {why}"
            ))
        })?;
        term::note(&format!(
            "{name} is your last authenticator: removing it turns two-step sign-in off, \
             as `twostep-self disable` does."
        ));
        return commands::disable(ctx, user);
    }
    let keyboard = proof::keyboard()?;
    term::note(&format!(
        "Confirm with a code from one of your other authenticators (not {name}), or a \
         recovery code."
    ));
    let proven = proof::prove(ctx, user, &keyboard, Some(name))?;
    let left = match edit::remove(ctx, user, name, Over::Proven(&proven))? {
        Removed::One { left } => left,
        // Only if the file the proof was judged against already held no
        // other: it was changed after the names above were read.
        Removed::WasLast => {
            return Err(CliError::Failed(format!(
                "{name} is now your last authenticator (your two-step sign-in changed \
                 meanwhile): nothing was removed; `twostep-self disable` turns it off"
            )));
        }
    };
    done(
        ctx,
        user,
        name,
        Event::DeviceRemoved,
        &format!(
            "Removed the authenticator {name}: its codes no longer work \
             ({left} authenticator(s) left)."
        ),
    );
    Ok(())
}
