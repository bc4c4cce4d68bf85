//! `twostep enroll USER`: a new secret, shown as a QR code, the key and the
//! URI; activated only once the user's app gives a right code, and once its
//! ten recovery codes have been shown. `--batch` enrolls a list of users for
//! distribution ([`batch`]). `--method email|sms` is in [`sent`]; `--add
//! NAME`, one more app for an enrolled user, in [`added`]; what is shown,
//! in [`shown`]. twostep-self runs the same code on its proof
//! ([`super::proven`]).
//!
//! Nothing is written until the very end: an enrollment that is refused,
//! interrupted, cannot be shown or fails leaves no secret file, no image and
//! no temporary file. The helpers that write an enrollment are shared with
//! `recovery-codes` and `import-google-authenticator`.
#![forbid(unsafe_code)]

mod added;
mod app;
mod batch;
mod sent;
pub(crate) mod shown;

use super::proven::{self, Change, Over};
use super::term::{self, HoldSignals, Keyboard, NoAnswer, Paint};
use super::{CliError, CliResult, Ctx};
use crate::base::address::{EmailAddress, PhoneNumber};
use crate::base::user::UserName;
use crate::delivery::Event;
use crate::files::fsutil;
use crate::files::secret::{self, SecretFile};
use crate::files::state::{self, StateError};
use crate::rules::recovery;
use app::{NewApp, print_written};
use shown::{codes_shown_in_vain, print_enrolled, show_codes};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// How to show the QR code.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum QrStyle {
    /// UTF-8 half blocks for a dark-background terminal
    Utf8,
    /// Half blocks in explicit black on white: any terminal background
    Ansi,
    /// No QR code: key and URI only
    None,
}

/// How the user's codes reach them (the secret file's `method`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MethodArg {
    /// An authenticator app: a QR code to scan now
    Totp,
    /// A fresh code by email at each login
    Email,
    /// A fresh code by text message at each login (needs sms.command)
    Sms,
}

impl MethodArg {
    fn method(self) -> secret::Method {
        match self {
            MethodArg::Totp => secret::Method::Totp,
            MethodArg::Email => secret::Method::Email,
            MethodArg::Sms => secret::Method::Sms,
        }
    }
}

/// How the user's codes reach them: `--method`, `--email`, `--phone`, the
/// same for `twostep enroll` and `twostep-self enroll`.
#[derive(clap::Args, Debug, Clone)]
pub struct HowCodesCome {
    /// How the codes reach the user
    #[arg(long, value_enum, default_value = "totp")]
    pub method: MethodArg,
    /// The address email codes go to (default: the email.address template),
    /// and notices and lost-device codes for every method. One plain
    /// name@domain
    #[arg(long, value_name = "ADDRESS", allow_hyphen_values = true)]
    pub email: Option<EmailAddress>,
    /// The number text messages go to, in E.164 form (+4915112345678); with
    /// --method sms
    #[arg(long, value_name = "NUMBER", allow_hyphen_values = true)]
    pub phone: Option<PhoneNumber>,
}

/// Tries the user gets to type the code from the app, or the code sent.
const CONFIRM_TRIES: u32 = 3;

#[derive(clap::Args, Debug)]
#[command(
    about = "Enroll a user: new secret, QR code, confirmed first code, recovery codes",
    after_help = "\
Examples:
  twostep enroll alice                                 QR in the terminal, then confirm
  twostep enroll alice --qr ansi                       for a light-background terminal
  twostep enroll alice --png alice.png --no-confirm    an image to send to alice
  twostep enroll alice --qr none --no-confirm --json   for scripts
  twostep enroll bob --method email                    codes by email (to email.address's
                                                       {user}@...), confirmed by the first
  twostep enroll bob --method email --email bob@example.org
  twostep enroll carol --method sms --phone +4915112345678
  pass show 2fa/alice | twostep enroll alice --secret-file - --force
                                                       keep a secret alice's app has
  twostep enroll --batch team.txt --out-dir /root/2fa  one user per line; writes
                                                       USER.png, USER.uri, USER.recovery
  twostep enroll alice --add tablet                    a second app for alice, named
                                                       tablet; her phone keeps working

An app's secret is activated only when the code from the app is right (3
tries). With --method email or sms, a code is sent to the address or number
and typed here (3 tries, within codes.valid). A wrong code or Ctrl-C writes
nothing. The 10 recovery codes are shown once; they work with every method.
--email also gives an app user an address for notices (notify.events) and
lost-device codes. --add shows the new app's QR code, key and URI (its
account reads \"ISSUER:USER (NAME)\") and adds it once a code from it is
right; `twostep devices USER` lists a user's apps, `twostep remove-device`
removes one."
)]
pub struct Args {
    /// The user to enroll
    #[arg(required_unless_present = "batch")]
    user: Option<String>,
    /// Read a base32 secret (at least 128 bits) from FILE instead of making a
    /// new one; - is standard input (the app's code is then asked on the
    /// terminal). Never on the command line, which every local user can read.
    /// A file that group or others can read is used, with a warning
    #[arg(long, value_name = "FILE|-", conflicts_with = "batch")]
    secret_file: Option<PathBuf>,
    /// How to draw the QR code in the terminal
    #[arg(long, value_enum, default_value = "utf8")]
    qr: QrStyle,
    /// Also write the QR code as a PNG image (mode 0600)
    #[arg(long, value_name = "FILE", conflicts_with = "batch")]
    png: Option<PathBuf>,
    /// Also write the QR code as an SVG image (mode 0600)
    #[arg(long, value_name = "FILE", conflicts_with = "batch")]
    svg: Option<PathBuf>,
    #[command(flatten)]
    how: HowCodesCome,
    /// Activate without asking for a code from the app (or the code sent)
    #[arg(long)]
    no_confirm: bool,
    /// Replace an existing enrollment (its secret and recovery codes stop working)
    #[arg(long)]
    force: bool,
    /// Print one JSON object: user, secret, uri, recovery_codes (with
    /// --method email or sms also method and email or phone; uri is null;
    /// with --add: user, device, secret, uri)
    #[arg(long)]
    json: bool,
    /// Add one more app to an enrolled user, named NAME (1 to 32 of
    /// A-Z a-z 0-9 . _ -; at most 8 a user). Their other apps and recovery
    /// codes keep working; no new recovery codes are made
    #[arg(long, value_name = "NAME", conflicts_with = "batch")]
    add: Option<String>,
    /// Enroll every user listed in FILE (one name a line, # comments; - for
    /// stdin). Implies --no-confirm; needs --out-dir
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["user", "method", "email", "phone"],
        requires = "out_dir"
    )]
    batch: Option<PathBuf>,
    /// Where --batch writes USER.png, USER.uri and USER.recovery (mode 0600)
    #[arg(long, value_name = "DIR", requires = "batch")]
    out_dir: Option<PathBuf>,
}

// ---- shared by the commands that write an enrollment ---------------------------

// The parts of an enrollment the module shares (enrollment at login).
pub use crate::files::enrollment::{grouped, secret_file};
pub use shown::print_recovery_codes;

/// A fresh 160-bit secret, the size RFC 4226 recommends.
pub fn new_key() -> Result<Zeroizing<Vec<u8>>, CliError> {
    crate::files::enrollment::new_key().map_err(CliError::Failed)
}

/// The name apps show above the code.
pub fn issuer(ctx: &Ctx) -> String {
    crate::files::enrollment::issuer(&ctx.config)
}

/// New recovery codes: (codes to show once, hashes to store).
pub type RecoveryCodes = (Vec<Zeroizing<String>>, Vec<String>);

pub fn new_recovery_codes() -> Result<RecoveryCodes, CliError> {
    let codes =
        recovery::generate().map_err(|e| CliError::Failed(format!("recovery codes: {e}")))?;
    let hashes =
        recovery::hash_set(&codes).map_err(|e| CliError::Failed(format!("recovery codes: {e}")))?;
    let shown = codes.iter().map(|c| recovery::display(c)).collect();
    Ok((shown, hashes))
}

/// Creates a root-only directory (and its parents) if it is missing.
pub fn ensure_private_dir(dir: &Path) -> Result<(), CliError> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| CliError::Failed(format!("cannot create {}: {e}", dir.display())))
}

/// The user's state lock, held while their secret file is written so that
/// the module, which strikes off used recovery codes under the same lock,
/// never writes back a stale copy over ours. A damaged state file is no
/// obstacle: the module refuses such a user before it gets that far.
pub fn lock_user(ctx: &Ctx, user: &UserName) -> Result<Option<state::Locked>, CliError> {
    ensure_private_dir(&ctx.config.state_dir)?;
    match state::lock(&ctx.config.state_dir, user) {
        Ok(l) => Ok(Some(l)),
        Err(StateError::Corrupt(why)) => {
            term::note(&format!(
                "{}: note: the state file of {user} is damaged ({why}); \
                 the module refuses {user} until `twostep unlock {user}`",
                ctx.tag
            ));
            Ok(None)
        }
        Err(e) => Err(CliError::Failed(format!(
            "cannot lock the state of {user}: {e}"
        ))),
    }
}

/// Whether the user has a secret file (or anything in its place).
pub fn is_enrolled(ctx: &Ctx, user: &UserName) -> bool {
    secret::path_for(&ctx.config.secret_dir, user)
        .symlink_metadata()
        .is_ok()
}

fn already_enrolled(user: &UserName) -> CliError {
    CliError::Failed(format!(
        "{user} is already enrolled; use --force to replace the enrollment"
    ))
}

/// Writes the secret file under the user's lock, over what `over` allows.
/// Without `replace`, an existing enrollment is an error.
/// `confirmed_step_time`: the step of the code that confirmed the
/// enrollment, recorded as used so that it cannot log in as well. Returns
/// whether an enrollment was replaced.
pub fn activate(
    ctx: &Ctx,
    user: &UserName,
    file: &SecretFile,
    replace: bool,
    confirmed_step_time: Option<u64>,
    over: Over<'_>,
) -> Result<bool, CliError> {
    let dir = &ctx.config.secret_dir;
    ensure_private_dir(dir)?;
    let mut locked = proven::lock_for_write(ctx, user, over, Change::Enrolled)?;
    let existed = is_enrolled(ctx, user);
    if existed && !replace {
        return Err(already_enrolled(user));
    }
    secret::store(dir, user, file, replace).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => already_enrolled(user),
        _ => CliError::Failed(format!(
            "cannot write {}: {e}",
            secret::path_for(dir, user).display()
        )),
    })?;
    // A new secret: addresses remembered for the old one are forgotten.
    super::devices::mark_used(
        ctx,
        user,
        locked.as_mut(),
        crate::files::state::StepKey::Default,
        confirmed_step_time.unwrap_or(0),
        true,
    );
    Ok(existed)
}

/// Writes a file only root may read (images and lists that hold secrets),
/// atomically: a failure leaves no partial file and no temporary one.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if path.file_name().is_none() {
        return Err(CliError::Usage(format!(
            "{} is not a file name",
            path.display()
        )));
    }
    fsutil::replace_complete(dir, path, bytes)
        .map_err(|e| CliError::Failed(format!("cannot write {}: {e}", path.display())))
}

/// Writes each file as [`write_private`] does, all or none: after a
/// failure, those already written are removed. Returns their paths.
fn write_all_private<B: AsRef<[u8]>>(files: &[(PathBuf, B)]) -> Result<Vec<PathBuf>, CliError> {
    let mut written = Vec::new();
    for (path, bytes) in files {
        if let Err(e) = write_private(path, bytes.as_ref()) {
            remove_all(&written);
            return Err(e);
        }
        written.push(path.clone());
    }
    Ok(written)
}

fn remove_all(paths: &[PathBuf]) {
    for p in paths {
        let _ = std::fs::remove_file(p);
    }
}

// ---- one user ------------------------------------------------------------------

/// What the person confirming an enrollment is asked and told.
struct Asking {
    prompt: String,
    /// Said after a wrong answer, before the tries left.
    wrong: &'static str,
    /// A hint after the last wrong answer.
    last: &'static str,
}

/// What did not happen when a new key is not set up, for the error that
/// says why: "USER was not enrolled", "NAME was not added to USER".
struct Undone(String);

impl Undone {
    fn enrollment(user: &UserName) -> Undone {
        Undone(format!("{user} was not enrolled"))
    }

    fn device(user: &UserName, name: &crate::files::secret::DeviceName) -> Undone {
        Undone(format!("{name} was not added to {user}"))
    }

    /// "`why`: USER was not enrolled; nothing was written"
    fn because(&self, why: &str) -> CliError {
        CliError::Failed(format!("{why}: {}; nothing was written", self.0))
    }
}

/// "`why`: USER was not enrolled; nothing was written"
fn not_enrolled(user: &UserName, why: &str) -> CliError {
    Undone::enrollment(user).because(why)
}

/// Asks up to [`CONFIRM_TRIES`] times until `check` finds an answer right
/// (`Ok(Some(_))`). `Err(why)` from `check` ends the enrollment at once;
/// so does the end of the time a proof gives (`over`).
fn ask_until_right<T>(
    keyboard: &Keyboard,
    undone: &Undone,
    asking: &Asking,
    over: Over<'_>,
    mut check: impl FnMut(&[u8]) -> Result<Option<T>, String>,
) -> Result<T, CliError> {
    let paint = Paint::stderr();
    for attempt in 1..=CONFIRM_TRIES {
        let answer = keyboard
            .read_code_within(&asking.prompt, over.prompt_limit())
            .map_err(|no| match no {
                NoAnswer::Cancelled => undone.because("cancelled"),
                NoAnswer::TimedOut => undone.because(&format!(
                    "no answer within {} of your confirmation",
                    proven::good_for_words()
                )),
            })?;
        if let Some(right) = check(answer.as_bytes()).map_err(|why| undone.because(&why))? {
            eprintln!("{}", paint.green("Code accepted."));
            return Ok(right);
        }
        let left = CONFIRM_TRIES - attempt;
        if left > 0 {
            eprintln!(
                "{}",
                paint.yellow(&format!(
                    "{} ({left} {} left).",
                    asking.wrong,
                    if left == 1 { "try" } else { "tries" }
                ))
            );
        }
    }
    Err(undone.because(&format!("{CONFIRM_TRIES} wrong codes ({})", asking.last)))
}

impl Args {
    /// The enrollment twostep-self makes: the caller's own, confirmed by a
    /// code from the new app (or the code sent), shown on the terminal,
    /// replacing any enrollment (the caller has proved the current one).
    pub fn for_self(how: HowCodesCome) -> Args {
        Args {
            user: None,
            secret_file: None,
            qr: QrStyle::Utf8,
            png: None,
            svg: None,
            how,
            no_confirm: false,
            force: true,
            json: false,
            batch: None,
            out_dir: None,
            add: None,
        }
    }
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    super::require_root("enroll")?;
    if let (Some(list), Some(out_dir)) = (&args.batch, &args.out_dir) {
        return batch::run(ctx, &args, list, out_dir);
    }
    let raw = args
        .user
        .as_deref()
        .ok_or_else(|| CliError::Usage("enroll needs USER, or --batch FILE".into()))?;
    let user = super::existing_user(raw)?;
    check(ctx, &args, &user)?;
    one(ctx, &args, &user, &Keyboard::Stdin, Over::Anything)
}

/// Refuses, before anything is shown or asked, an enrollment that could
/// not be made: options that do not go together, an existing enrollment
/// without `--force`, codes that could be sent nowhere; with `--add`, what
/// [`added::check`] refuses.
pub fn check(ctx: &Ctx, args: &Args, user: &UserName) -> CliResult {
    if let Some(name) = &args.add {
        return added::check(ctx, args, user, name);
    }
    if args.how.phone.is_some() && args.how.method != MethodArg::Sms {
        return Err(CliError::Usage(
            "--phone is for --method sms: app and email users get no text messages".into(),
        ));
    }
    if is_enrolled(ctx, user) && !args.force {
        return Err(already_enrolled(user));
    }
    if args.how.method != MethodArg::Totp {
        sent::check(ctx, args, user)?;
    }
    Ok(())
}

/// Enrolls `user` as `args` say, after [`check`]: the new secret shown, the
/// confirmation typed on `keyboard`, the recovery codes shown, the file
/// written over what `over` allows, the record and the notice. What cannot
/// be shown is not made.
pub fn one(
    ctx: &Ctx,
    args: &Args,
    user: &UserName,
    keyboard: &Keyboard,
    over: Over<'_>,
) -> CliResult {
    if let Some(name) = &args.add {
        return added::run(ctx, args, user, name, keyboard, over);
    }
    if args.how.method != MethodArg::Totp {
        return sent::run(ctx, args, user, keyboard, over);
    }
    let undone = Undone::enrollment(user);
    let issuer = issuer(ctx);
    let app = NewApp::shown(
        ctx,
        args,
        &format!("Enrolling {user} (issuer \"{issuer}\")."),
        user.as_str(),
        &undone,
    )?;
    let params = app.params;
    let (b32, uri) = (&app.b32, &app.uri);
    let confirmed = app.confirmed(args, keyboard, &undone, over)?;

    let (shown, hashes) = new_recovery_codes()?;
    let file = SecretFile {
        email: args.how.email.as_ref().map(ToString::to_string),
        ..secret_file(b32, &params, hashes)
    };
    let images = app.images(args)?;

    // From here to the end, Ctrl-C waits: the enrollment is shown and
    // written whole, or nothing is written.
    let hold = HoldSignals::new();
    let json = args.json.then(|| {
        serde_json::json!({
            "user": user.as_str(),
            "secret": b32.as_str(),
            "uri": uri.as_str(),
            "recovery_codes": shown.iter().map(|c| c.as_str()).collect::<Vec<_>>(),
        })
    });
    show_codes(user, json.as_ref(), &shown)?;
    let written = write_all_private(&images).map_err(|e| codes_shown_in_vain(user, e))?;
    let replaced = match activate(ctx, user, &file, args.force, confirmed, over) {
        Ok(r) => r,
        Err(e) => {
            remove_all(&written);
            return Err(codes_shown_in_vain(user, e));
        }
    };
    ctx.log_admin("enrolled", user);
    if !args.json {
        // Done and recorded: the notice goes out even if this cannot be shown.
        let _ = term::to_stdout(|out| {
            print_enrolled(out, Paint::stdout(), user, "", replaced)?;
            print_written(out, &written)
        });
    }
    drop(hold);
    ctx.notify(Event::Enrolled, user, args.how.email.as_ref());
    Ok(())
}
