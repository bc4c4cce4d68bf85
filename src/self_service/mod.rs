//! `twostep-self`: a user sets up, replaces, renews the recovery codes of,
//! and (where allowed) turns off their own second factor. Installed setuid
//! root (mode 4755), because the secret files are root's; it acts on the
//! real uid's account only, takes no user name, reads only
//! `/etc/twostep/twostep.toml`, and does nothing unless
//! `self_service.enabled` is true. Every change is confirmed by the user's
//! password through the PAM service `twostep-self`, then, for an enrolled
//! user, by a current code or a recovery code, under the usual lockout.
//!
//! What it took from the programs that have done this for decades:
//!
//! - **shadow-utils** (`chsh`, `chfn`, `passwd`): the caller proves who
//!   they are again through PAM, with the program's own service file,
//!   `pam_authenticate` then `pam_acct_mgmt`; the account is the real uid's
//!   (getuid, then its `pw_name`), never a name from the command line or
//!   the environment; `check_fds()`, which opens /dev/null on a closed
//!   descriptor 0, 1 or 2; `sanitize_env()`, which drops the environment
//!   and keeps locale variables only when their value is no path.
//! - **util-linux** (`chsh`, `chfn`: `pw_init()` before /etc/passwd is
//!   rewritten): resource limits lifted (the file size above all), the
//!   signals that would end the program between two writes (SIGHUP,
//!   SIGINT, SIGQUIT, SIGTERM, SIGTSTP, SIGTTOU...) held off, no core
//!   dump, umask 077; a new file written whole, then renamed over the old
//!   (here `fsutil`, through the admin command's own enrollment code).
//! - **sudo and sudo-rs**: refuse at once, saying why, when the effective
//!   uid is not 0 (not installed setuid, a `nosuid` mount) and when the
//!   `no_new_privs` flag is set (the kernel then ignores the setuid bit);
//!   the environment rebuilt from a short allow-list (`env_reset`); core
//!   dumps off (`disable_coredump`); from sudo-rs, the binary as a
//!   one-line shim, unsafe code only in the files that talk to C, each
//!   block with its `SAFETY:` comment, and its own small PAM bindings whose
//!   conversation never lets a panic unwind into libpam.
//!
//! And of its own: a panic prints one fixed line (the hook is the first
//! thing set), and the signals are held for the whole run rather than
//! around each write, so that no signal the caller sends can end it
//! between the secret file and the records, or before the new recovery
//! codes are shown (`hygiene`).
//!
//! Little runs before the caller is authenticated: the start-up above,
//! the arguments, the caller's account, the configuration (to know
//! whether self-service is on), and for `status` and `devices`, which
//! change nothing and need no password, the reading of the caller's own
//! files.
//!
//! Where each part lives: `hygiene` (the setuid start), `pam_client` (libpam
//! as an application), `proof` (password, then code, under the lockout),
//! `commands` (what each command does, reusing the admin command's code),
//! `devices` (the caller's authenticators: listed, one added, one removed).
#![deny(unsafe_code)]

mod commands;
mod devices;
#[allow(unsafe_code)]
mod hygiene;
#[allow(unsafe_code)]
mod pam_client;
mod proof;

use crate::base::user::UserName;
use crate::cli::enroll::HowCodesCome;
use crate::cli::{CliError, Ctx};
use crate::config::{self, Config};
use crate::files::secret::DeviceName;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// The PAM service that checks the password (`/etc/pam.d/twostep-self`),
/// and the `service` of this program's records.
pub const SERVICE: &str = "twostep-self";

#[derive(Parser, Debug)]
#[command(
    name = "twostep-self",
    version,
    about = "Set up, replace or turn off your own two-step sign-in",
    after_help = "Examples:\n  twostep-self status                 your method, authenticators, codes left, lock\n  twostep-self enroll                 an authenticator app: QR code, then a code from it\n  twostep-self enroll --add tablet    one more app, beside the ones you have\n  twostep-self devices                your authenticators: name, created, last used\n  twostep-self remove-device phone    remove one (confirm with a code from another)\n  twostep-self enroll --method email --email you@example.com\n  twostep-self enroll --method sms --phone +4915112345678\n  twostep-self recovery-codes         a new set of recovery codes, shown once\n  twostep-self disable                turn it off (only where the administrator allows)\n\nEvery change asks for your password first and, if you are enrolled, a\ncurrent code or a recovery code. It acts on your own account only."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show your method, where codes go (masked), recovery codes left and lock state
    Status,
    /// Set up or replace your second factor (a new phone, another method), or
    /// --add one more app
    Enroll(SelfEnroll),
    /// List your authenticators: name, when created, when last used
    Devices,
    /// Remove one of your authenticators, confirmed by a code from another
    RemoveDevice {
        /// The authenticator to remove (`twostep-self devices` lists them)
        #[arg(value_name = "NAME", value_parser = DeviceName::parse)]
        name: DeviceName,
    },
    /// Replace your recovery codes and show the new ones once
    RecoveryCodes,
    /// Turn your second factor off (if the administrator allows it)
    Disable,
}

/// `twostep-self enroll`'s arguments.
#[derive(clap::Args, Debug)]
struct SelfEnroll {
    #[command(flatten)]
    how: HowCodesCome,
    /// Add one more authenticator app named NAME (letters, digits, '.', '_',
    /// '-'; at most 32), keeping the ones you have
    #[arg(
        long,
        value_name = "NAME",
        value_parser = DeviceName::parse,
        conflicts_with_all = ["method", "email", "phone"]
    )]
    add: Option<DeviceName>,
}

/// `twostep-self`'s `main`.
pub fn main() -> ExitCode {
    hygiene::quiet_panics();
    // It starts sendmail itself, as the admin's command does (delivery).
    crate::delivery::run_children_here();
    // A panic unwinds to here (it has printed its one line): exit 1.
    std::panic::catch_unwind(run).unwrap_or(ExitCode::from(1))
}

fn run() -> ExitCode {
    if let Err(why) = hygiene::start() {
        eprintln!("twostep-self: {why}");
        return ExitCode::from(1);
    }
    let cli = match crate::cli::parse_command_line::<Cli>() {
        Ok(cli) => cli,
        Err(exit) => return exit,
    };
    match command(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            crate::cli::term::note(&format!(
                "twostep-self: {}",
                crate::cli::term::escape(&e.to_string())
            ));
            ExitCode::from(match e {
                CliError::Usage(_) => 2,
                CliError::Failed(_) => 1,
            })
        }
    }
}

/// The account of the real uid, by its own name. Root is refused: root
/// manages every enrollment, its own included, with `twostep`.
fn caller() -> Result<UserName, CliError> {
    let uid = nix::unistd::getuid();
    if uid.is_root() {
        return Err(CliError::Failed(
            "root manages its own second factor with twostep(1): `twostep enroll root`".into(),
        ));
    }
    let account = nix::unistd::User::from_uid(uid)
        .map_err(|e| CliError::Failed(format!("cannot look up uid {uid}: {e}")))?
        .ok_or_else(|| CliError::Failed(format!("uid {uid} has no account")))?;
    UserName::parse(&account.name).map_err(|e| {
        CliError::Failed(format!(
            "your account's name cannot be used by twostep: {e}"
        ))
    })
}

/// The system configuration, and only it: no `--config`, no
/// `TWOSTEP_CONFIG` (the environment is gone by now anyway).
fn system_config() -> Result<Config, CliError> {
    Config::load(std::path::Path::new(config::DEFAULT_PATH), false).map_err(|e| {
        CliError::Failed(format!(
            "the configuration is not usable ({e}): ask your administrator"
        ))
    })
}

fn command(cli: Cli) -> Result<(), CliError> {
    let user = caller()?;
    let config = system_config()?;
    if !config.self_service.enabled {
        return Err(CliError::Failed(format!(
            "self-service is turned off on this machine (self_service.enabled in {}): \
             ask your administrator",
            config::DEFAULT_PATH
        )));
    }
    let ctx = Ctx {
        config,
        config_path: config::DEFAULT_PATH.into(),
        by: "self".into(),
        tag: SERVICE,
    };
    match cli.command {
        Command::Status => commands::status(&ctx, &user),
        Command::Enroll(SelfEnroll {
            add: Some(name), ..
        }) => devices::add(&ctx, &user, &name),
        Command::Enroll(SelfEnroll { how, add: None }) => commands::enroll(&ctx, &user, how),
        Command::Devices => devices::list(&ctx, &user),
        Command::RemoveDevice { name } => devices::remove(&ctx, &user, &name),
        Command::RecoveryCodes => commands::recovery_codes(&ctx, &user),
        Command::Disable => commands::disable(&ctx, &user),
    }
}

#[cfg(test)]
mod tests {
    const NAME: &str = "self_service::tests::a_panic_prints_one_fixed_line_and_nothing_of_it";
    const HERE: &str = "TWOSTEP_TEST_PANIC_HERE";

    /// The hook is the whole process's: the panic happens in a copy of this
    /// test binary that runs this test alone, with `RUST_BACKTRACE=full`.
    /// (Nothing from outside makes twostep-self panic any more: its writes
    /// to standard output are all checked.)
    #[test]
    fn a_panic_prints_one_fixed_line_and_nothing_of_it() {
        if std::env::var_os(HERE).is_some() {
            super::hygiene::quiet_panics();
            let _ = std::panic::catch_unwind(|| panic!("code 123456 in the message"));
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
            .env(HERE, "1")
            .env("RUST_BACKTRACE", "full")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            super::hygiene::PANIC_LINE
        );
    }
}
