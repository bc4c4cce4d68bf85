//! The `twostep` admin command. One file per subcommand; this one holds the
//! argument grammar, the shared context and the exit codes.
//!
//! Exit codes: 0 success, 1 the operation failed, 2 bad usage or bad
//! configuration. Errors are one line on stderr.
#![forbid(unsafe_code)]

mod audit;
mod check;
pub(crate) mod devices;
// pub(crate): twostep-self (src/self_service/) reuses the enrollment, the
// recovery codes, the removal, the status and the terminal of the commands.
pub(crate) mod enroll;
pub(crate) mod proven;
// pub: its parser is a fuzz target (fuzz/fuzz_targets/google_authenticator.rs).
pub mod import_ga;
pub(crate) mod recovery_codes;
pub(crate) mod reset;
mod secret_input;
mod send_test;
pub(crate) mod status;
pub(crate) mod term;
mod unlock;

use crate::base::address::EmailAddress;
use crate::base::records::{Record, Severity, Sink, Syslog};
use crate::base::user::UserName;
use crate::config::{self, Config};
use crate::delivery::Event;
use crate::delivery::outbox::{self, Details};
use crate::files::secret;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "twostep",
    version,
    about = "Enroll users in two-factor login and manage their lockouts",
    after_help = "Examples:\n  twostep enroll alice                 show a QR code, confirm a code, activate\n  twostep enroll bob --method email    codes by email (to email.address's {user}@...)\n  twostep enroll carol --method sms --phone +4915112345678\n  twostep enroll alice --add tablet    a second app for alice, beside her phone\n  twostep devices alice                alice's apps, when added, when last used\n  twostep remove-device alice tablet   that app stops working; the others stay\n  twostep send-test bob                check that bob's codes can reach him\n  twostep recovery-codes alice         replace alice's recovery codes\n  twostep reset alice                  remove alice's enrollment\n  twostep import-google-authenticator alice   adopt ~alice/.google_authenticator\n  twostep status                       every enrolled or locked user\n  twostep unlock alice                 clear alice's failures and lock\n  twostep check                        validate the config and directories\n\nConfiguration: /etc/twostep/twostep.toml (see twostep.toml(5))."
)]
pub struct Cli {
    /// Configuration file [env: TWOSTEP_CONFIG] [default: /etc/twostep/twostep.toml]
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    Enroll(enroll::Args),
    RecoveryCodes(recovery_codes::Args),
    Reset(reset::Args),
    #[command(name = "import-google-authenticator")]
    ImportGoogleAuthenticator(import_ga::Args),
    SendTest(send_test::Args),
    Status(status::Args),
    Unlock(unlock::Args),
    Check(check::Args),
    Audit(audit::Args),
    Devices(devices::list::Args),
    #[command(name = "remove-device")]
    RemoveDevice(devices::remove::Args),
    /// Internal: `twostep check` runs it as nobody to learn whether any
    /// local user can connect to the store (and so use up its clients).
    #[command(name = "probe-store-as-nobody", hide = true)]
    ProbeStore(check::ProbeArgs),
}

/// A failed command: what to print and how to exit.
#[derive(Debug)]
pub enum CliError {
    /// Bad usage or bad configuration: exit 2.
    Usage(String),
    /// The operation failed: exit 1.
    Failed(String),
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Failed(_) => 1,
        }
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CliError::Usage(m) | CliError::Failed(m) => f.write_str(m),
        }
    }
}

pub type CliResult = Result<(), CliError>;

/// What every subcommand works with.
pub struct Ctx {
    pub config: Config,
    pub config_path: PathBuf,
    /// Who acts, as records and notices name them (`by=`): the
    /// administrator ([`admin_name`]), or `self` in twostep-self.
    pub by: String,
    /// The records' syslog tag, which also begins notes on stderr:
    /// `twostep`, or `twostep-self`.
    pub tag: &'static str,
}

impl Ctx {
    /// Where per-user state lives, as the configuration says.
    pub fn store(&self) -> Box<dyn crate::store::Store> {
        crate::store::open(&self.config)
    }

    /// Where the command's records go (tag [`Ctx::tag`]).
    pub fn syslog(&self) -> Syslog<'_> {
        Syslog {
            socket: &self.config.log_socket,
            tag: self.tag,
        }
    }

    /// Writes an admin record.
    pub fn log(&self, record: Record) {
        self.syslog().emit(record);
    }

    /// `event=<event> user=<user> by=<who>`, to which more keys may be added.
    pub fn admin_record(&self, event: &str, user: &UserName) -> Record {
        Record::new(event, Severity::Notice)
            .with("user", user)
            .with("by", &self.by)
    }

    /// Writes [`Ctx::admin_record`].
    pub fn log_admin(&self, event: &str, user: &UserName) {
        self.log(self.admin_record(event, user));
    }

    /// Whether `notify.events` asks for `event` to be mailed.
    pub fn wants_notice(&self, event: Event) -> bool {
        self.config.notify.wants(event)
    }

    /// The `email` of the user's secret file, if it has a readable one.
    pub fn file_email(&self, user: &UserName) -> Option<EmailAddress> {
        secret::load(&self.config.secret_dir, user, &self.config.totp)
            .ok()
            .and_then(|s| s.email)
    }

    /// Mails `event`, done by this admin, to the user (`from_file`, their
    /// secret file's address, else the `email.address` template) and to
    /// `notify.copy_to`, if `notify.events` asks for it. Called once the
    /// command has done its work and shown its output: a failure is a
    /// `delivery_failed` record and a note on stderr, never the command's
    /// outcome.
    pub fn notify(&self, event: Event, user: &UserName, from_file: Option<&EmailAddress>) {
        self.notify_device(event, user, from_file, None);
    }

    /// [`Ctx::notify`], naming the authenticator added or removed.
    pub fn notify_device(
        &self,
        event: Event,
        user: &UserName,
        from_file: Option<&EmailAddress>,
        device: Option<&str>,
    ) {
        if !self.wants_notice(event) {
            return;
        }
        let details = Details {
            by: Some(&self.by),
            device,
            ..Details::default()
        };
        outbox::notify(
            &self.config,
            &mut NoticeSink(self.syslog()),
            event,
            user,
            from_file,
            &details,
        );
    }
}

/// The records of mailing a notice: to syslog, and a notice that could not
/// be mailed also said on stderr, so that the administrator learns of it at
/// once.
struct NoticeSink<'a>(Syslog<'a>);

impl Sink for NoticeSink<'_> {
    fn emit(&mut self, record: Record) {
        if record.event() == "delivery_failed" {
            let detail = record.get("detail").unwrap_or("the hand-over failed");
            term::note(&format!(
                "{}: note: not mailed: {}",
                self.0.tag,
                term::escape(detail)
            ));
        }
        self.0.emit(record);
    }
}

/// Who is running the command: the sudo caller if any, else the real user.
pub fn admin_name() -> String {
    if let Ok(sudo) = std::env::var("SUDO_USER")
        && UserName::parse(&sudo).is_ok()
    {
        return sudo;
    }
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| format!("uid={}", nix::unistd::getuid()))
}

/// Unix seconds now (0 if the clock is before 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Commands that write need root: say so before touching anything.
pub fn require_root(what: &str) -> CliResult {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "{what} needs root: try `sudo twostep {what} ...`"
        )))
    }
}

pub fn parse_user(raw: &str) -> Result<UserName, CliError> {
    UserName::parse(raw)
        .map_err(|e| CliError::Usage(format!("\"{raw}\" is not a valid user name: {e}")))
}

/// The user must be an account on this system; the result is the account's
/// own name (`pw_name`), which names its files: where NSS resolves other
/// spellings (SSSD and winbind ignore case), `ALICE` is alice.
pub fn existing_user(raw: &str) -> Result<UserName, CliError> {
    match account(raw)? {
        Some(account) => Ok(account),
        None => Err(CliError::Failed(format!(
            "no such user: {}",
            term::escape(raw)
        ))),
    }
}

/// The account's own name if `raw` resolves to one, else `raw` itself (the
/// files of an account that has since been removed keep its name).
pub fn account_or_name(raw: &str) -> Result<UserName, CliError> {
    Ok(match account(raw)? {
        Some(account) => account,
        None => parse_user(raw)?,
    })
}

fn account(raw: &str) -> Result<Option<UserName>, CliError> {
    let user = parse_user(raw)?;
    match nix::unistd::User::from_name(user.as_str()) {
        Ok(Some(a)) => UserName::parse(&a.name).map(Some).map_err(|e| {
            CliError::Failed(format!(
                "{user} is the account {}, whose name twostep cannot use: {e}",
                term::escape(&a.name)
            ))
        }),
        Ok(None) => Ok(None),
        Err(e) => Err(CliError::Failed(format!("cannot look up {user}: {e}"))),
    }
}

/// `--help` shows the examples right under the one-line summary, before the
/// options: a busy administrator looks for an example first.
const HELP_TEMPLATE: &str = "{about}{after-help}\n\n{usage-heading} {usage}\n\n{all-args}";

/// Parses the command line as `P`, with examples first in `--help`.
/// `Err`: how to exit, `--help` or `--version` printed (0) or the usage
/// error (2). Shared by `twostep` and `twostep-self`.
pub(crate) fn parse_command_line<P: clap::Parser>() -> Result<P, ExitCode> {
    let command = P::command()
        .help_template(HELP_TEMPLATE)
        .mut_subcommands(|sub| sub.help_template(HELP_TEMPLATE));
    match command
        .try_get_matches()
        .and_then(|m| P::from_arg_matches(&m))
    {
        Ok(parsed) => Ok(parsed),
        // --help and --version are not errors.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            Err(ExitCode::SUCCESS)
        }
        Err(e) => {
            print_usage_error(&e);
            Err(ExitCode::from(2))
        }
    }
}

pub fn main() -> ExitCode {
    // A command starts sendmail and the SMS command itself; only the PAM
    // module goes through its on-demand part.
    crate::delivery::run_children_here();
    let cli = match parse_command_line::<Cli>() {
        Ok(cli) => cli,
        Err(exit) => return exit,
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Messages quote names and paths as given: escaped here, once.
            eprintln!("twostep: {}", term::escape(&e.to_string()));
            ExitCode::from(e.exit_code())
        }
    }
}

/// clap's message, as clap styles it, unless an argument holds characters
/// that need escaping: clap would quote it raw on a terminal. Then its plain
/// text (from which clap drops escape sequences), each line escaped.
fn print_usage_error(e: &clap::Error) {
    use std::os::unix::ffi::OsStrExt;
    let outside = std::env::args_os()
        .any(|a| matches!(term::escape_bytes(a.as_bytes()), std::borrow::Cow::Owned(_)));
    if !outside {
        let _ = e.print();
        return;
    }
    let plain = e.render().to_string();
    let lines: Vec<_> = plain.lines().map(term::escape).collect();
    eprintln!("{}", lines.join("\n"));
}

fn run(cli: Cli) -> CliResult {
    // Run as nobody, with no configuration to read.
    if let Command::ProbeStore(a) = &cli.command {
        return check::probe(a);
    }
    let (config_path, explicit) = match cli
        .config
        .or_else(|| std::env::var_os("TWOSTEP_CONFIG").map(PathBuf::from))
    {
        Some(p) => (p, true),
        None => (PathBuf::from(config::DEFAULT_PATH), false),
    };
    let config =
        Config::load(&config_path, explicit).map_err(|e| CliError::Usage(e.to_string()))?;
    let ctx = Ctx {
        config,
        config_path,
        by: admin_name(),
        tag: "twostep",
    };
    match cli.command {
        Command::Enroll(a) => enroll::run(&ctx, a),
        Command::RecoveryCodes(a) => recovery_codes::run(&ctx, a),
        Command::Reset(a) => reset::run(&ctx, a),
        Command::ImportGoogleAuthenticator(a) => import_ga::run(&ctx, a),
        Command::SendTest(a) => send_test::run(&ctx, a),
        Command::Status(a) => status::run(&ctx, a),
        Command::Unlock(a) => unlock::run(&ctx, a),
        Command::Check(a) => check::run(&ctx, a),
        Command::Audit(a) => audit::run(&ctx, a),
        Command::Devices(a) => devices::list::run(&ctx, a),
        Command::RemoveDevice(a) => devices::remove::run(&ctx, a),
        Command::ProbeStore(a) => check::probe(&a),
    }
}
