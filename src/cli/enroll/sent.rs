//! `twostep enroll USER --method email|sms`: the user gets a fresh code by
//! email or text message at each login instead of using an app.
//!
//! The address or number is validated as the arguments are read (clap parses
//! `--email` and `--phone` into `EmailAddress` and `PhoneNumber`). Unless
//! `--no-confirm`, a confirmation code is sent to it and typed here, and the
//! enrollment is written only when it is right, before `codes.valid` runs
//! out: a mistyped address cannot lock a user out. Nothing is kept of the
//! code but in this process's memory, wiped when it ends.
//!
//! The secret file still gets a random 160-bit `secret`: the module keys the
//! hash under which it keeps a sent code with it (`codes::keyed_hash`). No
//! one types it, and no QR code is shown. Recovery codes are made as for an
//! app user: they work at every code prompt.
#![forbid(unsafe_code)]

use super::{Args, Asking, MethodArg};
use crate::base::records::{Record, Severity};
use crate::base::user::UserName;
use crate::cli::proven::Over;
use crate::cli::term::{self, HoldSignals, Keyboard, Paint};
use crate::cli::{CliError, CliResult, Ctx};
use crate::delivery::outbox::{self, Destination};
use crate::delivery::{Event, Login, Purpose};
use crate::files::secret::{self, SecretFile};
use crate::rules::codes::{self, Allowance};
use crate::store::Sendable;
use std::time::Instant;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// What [`run`] would refuse before sending anything: options for an app,
/// an address or number that codes could not go to.
pub(super) fn check(ctx: &Ctx, args: &Args, user: &UserName) -> CliResult {
    prepare(ctx, args, user).map(drop)
}

/// The new secret file and where its codes go.
fn prepare(ctx: &Ctx, args: &Args, user: &UserName) -> Result<(SecretFile, Destination), CliError> {
    refuse_app_options(args)?;
    let key = super::new_key()?;
    let file = SecretFile {
        secret: Some(Zeroizing::new(secret::encode_base32(&key).to_string())),
        method: args.how.method.method(),
        email: args.how.email.as_ref().map(ToString::to_string),
        phone: args.how.phone.as_ref().map(ToString::to_string),
        digits: None,
        period: None,
        algorithm: None,
        recovery_codes: Vec::new(),
        created: Some(crate::files::enrollment::now_rfc3339()),
        authenticators: Vec::new(),
    };
    let to = destination(ctx, user, args, &file)?;
    Ok((file, to))
}

pub(super) fn run(
    ctx: &Ctx,
    args: &Args,
    user: &UserName,
    keyboard: &Keyboard,
    over: Over<'_>,
) -> CliResult {
    let (mut file, to) = prepare(ctx, args, user)?;
    let medium = match &to {
        Destination::Email(_) => "email",
        Destination::Sms(_) => "text message",
    };
    let how = format!(": sign-in codes go by {medium} to {}", shown(&to));
    if !args.no_confirm {
        // With --json, stdout is for the one object.
        let paint = Paint::stderr();
        eprintln!("{}", paint.bold(&format!("Enrolling {user}{how}.")));
        confirm(ctx, keyboard, user, &to, over)?;
    }
    let (shown, hashes) = super::new_recovery_codes()?;
    file.recovery_codes = hashes;

    // From here to the end, Ctrl-C waits: the enrollment is shown and
    // written whole, or nothing is written.
    let hold = HoldSignals::new();
    let json = args.json.then(|| {
        let mut out = serde_json::json!({
            "user": user.as_str(),
            "method": file.method.as_str(),
            "secret": file.secret.as_ref().map(|s| s.as_str()),
            "uri": null,
            "recovery_codes": shown.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        });
        // Where the codes go (an address the template made included), and
        // an address given for notices.
        match &to {
            Destination::Email(a) => out["email"] = a.as_str().into(),
            Destination::Sms(n) => out["phone"] = n.as_str().into(),
        }
        if let Some(a) = &file.email {
            out["email"] = a.as_str().into();
        }
        out
    });
    super::shown::show_codes(user, json.as_ref(), &shown)?;
    let replaced = super::activate(ctx, user, &file, args.force, None, over)
        .map_err(|e| super::shown::codes_shown_in_vain(user, e))?;
    ctx.log_admin("enrolled", user);
    if !args.json {
        // Done and recorded: the notice goes out even if this cannot be shown.
        let _ = term::to_stdout(|out| {
            super::shown::print_enrolled(out, Paint::stdout(), user, &how, replaced)
        });
    }
    drop(hold);
    ctx.notify(Event::Enrolled, user, args.how.email.as_ref());
    Ok(())
}

/// The options that only make sense for an app.
fn refuse_app_options(args: &Args) -> CliResult {
    let given = [
        ("--secret-file", args.secret_file.is_some()),
        ("--png", args.png.is_some()),
        ("--svg", args.svg.is_some()),
    ];
    match given.iter().find(|(_, set)| *set) {
        Some((option, _)) => Err(CliError::Usage(format!(
            "{option} is for --method totp: an email or SMS user has no app to set up"
        ))),
        None => Ok(()),
    }
}

/// Where this enrollment's codes would go, judged as the module will judge
/// the file: a user the module could send nothing to is not enrolled.
fn destination(
    ctx: &Ctx,
    user: &UserName,
    args: &Args,
    file: &SecretFile,
) -> Result<Destination, CliError> {
    let c = &ctx.config;
    match args.how.method {
        MethodArg::Sms if args.how.phone.is_none() => {
            return Err(CliError::Usage(
                "--method sms needs --phone NUMBER (E.164: +4915112345678)".into(),
            ));
        }
        MethodArg::Email if args.how.email.is_none() && c.email.address.is_empty() => {
            return Err(CliError::Usage(
                "--method email needs --email ADDRESS, or an email.address template in the \
                 configuration (\"{user}@example.com\")"
                    .into(),
            ));
        }
        _ => {}
    }
    let option = format!("--method {}", file.method.as_str());
    let read = file
        .clone()
        .into_user_secret(&c.totp)
        .map_err(|e| CliError::Usage(format!("{option}: {e}")))?;
    outbox::destination(c, user, &read, read.method)
        .map_err(|why| CliError::Usage(format!("{option}: {why}")))
}

/// Sends a confirmation code to `to` and asks for it, up to
/// [`super::CONFIRM_TRIES`] times, until `codes.valid` runs out (or the
/// time `over`'s proof gives).
fn confirm(
    ctx: &Ctx,
    keyboard: &Keyboard,
    user: &UserName,
    to: &Destination,
    over: Over<'_>,
) -> CliResult {
    let settings = &ctx.config.codes;
    let code = codes::new_code(settings.length).map_err(CliError::Failed)?;
    let login = Login {
        user: user.as_str(),
        service: &format!("{} enroll", ctx.tag),
        source: "",
    };
    let sent_at = Instant::now();
    let record = |event: &str, severity| {
        Record::new(event, severity)
            .with("user", user)
            .with("service", ctx.tag)
            .with("rhost", "")
            .with("method", to.method())
    };
    if let Err(why) = count_toward_throttles(ctx, user, to) {
        ctx.log(
            record("delivery_failed", Severity::Warning)
                .with("reason", "throttled")
                .with("to", to.masked())
                .with("detail", format!("confirmation code: {why}"))
                .with("by", &ctx.by),
        );
        return Err(super::not_enrolled(
            user,
            &format!("no code was sent: {why}"),
        ));
    }
    if let Err(e) = outbox::send_code(
        &ctx.config,
        to,
        &login,
        &code,
        Purpose::Confirm,
        settings.valid,
    ) {
        ctx.log(
            record("delivery_failed", Severity::Warning)
                .with("reason", e.reason())
                .with("to", to.masked())
                .with("detail", format!("confirmation code: {e}"))
                .with("by", &ctx.by),
        );
        return Err(super::not_enrolled(
            user,
            &format!("no code could be sent ({e})"),
        ));
    }
    ctx.log(
        record("code_sent", Severity::Info)
            .with("to", to.masked())
            .with("by", &ctx.by),
    );
    let valid = humantime::format_duration(settings.valid);
    eprintln!(
        "A confirmation code was sent; it is good for {valid}. Type it here when it arrives."
    );
    let len = settings.length;
    let asking = Asking {
        prompt: format!("Code sent to {} ({len} digits): ", shown(to)),
        wrong: "That is not the code that was sent",
        last: "did it come to the right address or number?",
    };
    super::ask_until_right(
        keyboard,
        &super::Undone::enrollment(user),
        &asking,
        over,
        |answer| {
            if sent_at.elapsed() >= settings.valid {
                return Err(format!("the code expired after {valid} (codes.valid)"));
            }
            Ok(codes::normalize(answer, len)
                .filter(|typed| bool::from(typed.as_slice().ct_eq(code.as_bytes())))
                .map(|_| ()))
        },
    )
}

/// Counts the confirmation code toward the user's limits and the
/// destination's (`Store::count_send`): the same `codes.max_per_hour` and
/// `codes.resend_after` as a login's codes, so that enrolling again and
/// again (or pressing Ctrl-C at the prompt) sends no more than logins
/// would, and no account floods an address or number that is not its own.
/// `Err`: why nothing may be sent now.
fn count_toward_throttles(ctx: &Ctx, user: &UserName, to: &Destination) -> Result<(), String> {
    let store = crate::store::open(&ctx.config);
    let codes = &ctx.config.codes;
    let at = |until: u64| {
        crate::base::records::rfc3339(until)
            .replace('T', " ")
            .replace('Z', " UTC")
    };
    match store.count_send(user, &to.throttle_key(), crate::cli::unix_now(), codes) {
        Ok(Sendable::Yes) => Ok(()),
        Ok(Sendable::User(Allowance::TooSoon { until })) => Err(format!(
            "a code was sent to {user} less than {} ago (codes.resend_after); try again after {}",
            humantime::format_duration(codes.resend_after),
            at(until)
        )),
        Ok(Sendable::User(Allowance::Throttled { until })) => Err(format!(
            "{} codes were sent to {user} in the last hour (codes.max_per_hour); \
             try again after {}",
            codes.max_per_hour,
            at(until)
        )),
        Ok(Sendable::User(Allowance::Send)) => Ok(()),
        Ok(Sendable::Destination { until }) => Err(format!(
            "{} codes went to {} in the last hour, from any account (codes.max_per_hour); \
             try again after {}",
            codes.max_per_hour,
            to.masked(),
            at(until)
        )),
        Err(e) => Err(format!("the codes sent could not be counted ({e})")),
    }
}

/// The address or number, in full: the administrator typed it, or the
/// template made it, and needs to see which it is.
fn shown(to: &Destination) -> &str {
    match to {
        Destination::Email(a) => a.as_str(),
        Destination::Sms(n) => n.as_str(),
    }
}
