//! Codes and notices by email and text message: handing a message to
//! sendmail or to the site's SMS command. The login flow and the CLI call
//! [`send_email`] and [`send_sms`] with a message built by [`message`] for
//! an address or number validated by [`crate::base::address`].
//!
//! The model is Linux-PAM's pam_exec, which runs a child from inside sshd;
//! [`spawn`] adds the deadline it lacks. What a caller can rely on:
//!
//! - The program runs exactly as the contract says, `SENDMAIL -i -- ADDRESS`
//!   or `COMMAND NUMBER`, with the message on stdin and nothing else: the
//!   address and the number are validated types, and `--` ends sendmail's
//!   options in any case.
//! - It is run only if it is an absolute path to a regular executable file
//!   owned by root that no one else can change, through every directory and
//!   link on the way ([`program_problem`], also what `twostep check` shows).
//! - It runs wholly as root (real, effective and saved uid and gid 0, no
//!   supplementary groups), or wholly as the account `email.user` or
//!   `sms.user` names, with that account's groups, looked up at each run
//!   (an account that does not exist is a failure, never root). Nothing of
//!   a setuid host's caller reaches it: its limits are [`child::LIMITS`],
//!   its umask 022, its working directory `/`, its priority the default,
//!   and it has no controlling terminal.
//! - It inherits no environment (only `HOME=/` and a fixed PATH), no
//!   descriptor but its stdin, stdout (/dev/null) and stderr, and no
//!   ignored or blocked signal; it leads a session and process group of
//!   its own.
//! - The call returns within `timeout` (plus the time to kill and reap): a
//!   program that has not exited by then is killed with its process group.
//!   It never leaves a zombie, and the host's SIGCHLD disposition is the
//!   same afterwards as before.
//! - An error says what happened in one line for a record's `detail` and one
//!   word for its `reason`. It never contains the message, and runs of six
//!   or more digits in what the program wrote to stderr (an echoed code, a
//!   phone number) are hidden.
#![deny(unsafe_code)]

pub mod child;
mod excerpt;
pub mod message;
pub mod outbox;
// The one file of this module that talks to C: fork and exec, signal
// dispositions and masks, pidfd.
#[allow(unsafe_code)]
pub mod spawn;

pub use message::{
    Code, Email, Event, Login, Notice, Purpose, Sender, code_email, code_sms, notice_email,
    test_email, test_sms,
};
pub use spawn::RunError;

use crate::base::address::PhoneNumber;
use crate::base::user::UserName;

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// Why a message was not handed over.
#[derive(Debug)]
pub enum DeliveryError {
    /// The program may not be run: [`program_problem`]'s finding.
    UnsafeProgram(String),
    /// It ran and did not accept the message.
    Run { program: PathBuf, error: RunError },
    /// No message could be made (no From address, no SMS command).
    Message(String),
    /// The account the program is to run as cannot be used (there is no
    /// such account): it is not run at all.
    Account(String),
    /// As reported by the module's on-demand part, which ran the program
    /// (`reason` is one of the words above), or `part`: the part itself
    /// is missing, not root's, or failed ([`crate::ondemand`]).
    Part {
        reason: &'static str,
        detail: String,
    },
}

impl DeliveryError {
    /// The on-demand part could not be used: why.
    pub fn part(detail: String) -> DeliveryError {
        DeliveryError::Part {
            reason: "part",
            detail,
        }
    }

    /// One word for the `delivery_failed` record's `reason`: `program`,
    /// `account`, `spawn`, `exit`, `signal`, `timeout`, `io` or `part`.
    pub fn reason(&self) -> &'static str {
        match self {
            DeliveryError::Part { reason, .. } => reason,
            DeliveryError::UnsafeProgram(_) => "program",
            DeliveryError::Account(_) => "account",
            DeliveryError::Message(_) => "message",
            DeliveryError::Run { error, .. } => error.reason(),
        }
    }
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeliveryError::UnsafeProgram(why)
            | DeliveryError::Message(why)
            | DeliveryError::Account(why)
            | DeliveryError::Part { detail: why, .. } => f.write_str(why),
            DeliveryError::Run { program, error } => write!(f, "{} {error}", program.display()),
        }
    }
}

impl std::error::Error for DeliveryError {}

/// A program that hands messages on (`email.sendmail`, `sms.command`) and
/// the account it runs as (`email.user`, `sms.user`; `None`: root).
#[derive(Debug, Clone, Copy)]
pub struct Program<'a> {
    pub path: &'a Path,
    pub user: Option<&'a UserName>,
}

impl<'a> Program<'a> {
    /// `path`, run as root.
    pub fn root(path: &'a Path) -> Program<'a> {
        Program { path, user: None }
    }
}

/// Hands `email` to `sendmail` as `sendmail -i -- ADDRESS`, the address
/// being the one the message is addressed to.
pub fn send_email(
    sendmail: Program<'_>,
    email: &Email,
    timeout: Duration,
) -> Result<(), DeliveryError> {
    let args: [&OsStr; 3] = ["-i".as_ref(), "--".as_ref(), email.to().as_str().as_ref()];
    run_checked(sendmail, &args, email.as_bytes(), timeout)
}

/// Hands `text` to the site's SMS command as `command NUMBER`, the text on
/// its stdin; exit status 0 means accepted.
pub fn send_sms(
    command: Program<'_>,
    to: &PhoneNumber,
    text: &str,
    timeout: Duration,
) -> Result<(), DeliveryError> {
    let args: [&OsStr; 1] = [to.as_str().as_ref()];
    run_checked(command, &args, text.as_bytes(), timeout)
}

/// One program to run: what [`send_email`] and [`send_sms`] hand to the
/// process that starts it.
#[derive(Debug, Clone, Copy)]
pub struct Job<'a> {
    pub program: Program<'a>,
    pub args: &'a [&'a OsStr],
    pub input: &'a [u8],
    pub timeout: Duration,
}

/// How this process runs a [`Job`], when it is not the PAM module.
type Runner = fn(&Job<'_>) -> Result<(), DeliveryError>;

static RUNNER: OnceLock<Runner> = OnceLock::new();

/// Makes this process start programs itself ([`run_here`]), as the
/// commands do: they are started for the purpose and load nothing at each
/// login. Until it is called (in the PAM module, always), a program is
/// started by the module's on-demand part ([`crate::ondemand`]), so that
/// the code that starts children, and the C functions it needs, are loaded
/// only by the logins that send something. Only a function pointer joins
/// the two, so the module's link leaves [`run_here`] out.
pub fn run_children_here() {
    let _ = RUNNER.set(run_here);
}

fn run_checked(
    program: Program<'_>,
    args: &[&OsStr],
    input: &[u8],
    timeout: Duration,
) -> Result<(), DeliveryError> {
    let job = Job {
        program,
        args,
        input,
        timeout,
    };
    match RUNNER.get() {
        Some(run) => run(&job),
        None => crate::ondemand::run(&job),
    }
}

/// Runs `job` in this process: checks the program ([`program_problem`]),
/// finds the account, and starts it with nothing of ours ([`spawn`]).
pub fn run_here(job: &Job<'_>) -> Result<(), DeliveryError> {
    let Job {
        program,
        args,
        input,
        timeout,
    } = *job;
    let path = program.path;
    if let Some(why) = program_problem(path) {
        return Err(DeliveryError::UnsafeProgram(why));
    }
    let identity = match program.user {
        None => child::Identity::root(),
        Some(name) => child::Identity::account(name).map_err(|why| {
            DeliveryError::Account(format!("{} was not run as {name}: {why}", path.display()))
        })?,
    };
    spawn::run(path, args, input, timeout, &identity).map_err(|error| DeliveryError::Run {
        program: path.to_path_buf(),
        error,
    })
}

/// How many links [`program_problem`] follows (the kernel's own limit).
const MAX_LINKS: usize = 40;

/// What is wrong with `path` as a program to run as root, or None: it must
/// be an absolute path to a regular, executable file owned by root and not
/// writable by group or others, reached through links owned by root and
/// directories that only root can change (a sticky directory such as /tmp
/// counts as root's: others cannot rename root's entries in it).
pub fn program_problem(path: &Path) -> Option<String> {
    trusted_file_problem(path, true)
}

/// As [`program_problem`], for a file root reads but does not run (the
/// module's on-demand part, which it loads): the executable bit is not
/// asked for.
pub fn library_problem(path: &Path) -> Option<String> {
    trusted_file_problem(path, false)
}

fn trusted_file_problem(path: &Path, executable: bool) -> Option<String> {
    let shown = path.display();
    if !path.is_absolute() {
        return Some(format!("{shown} is not an absolute path"));
    }
    let mut current = path.to_path_buf();
    // Where links were followed, the place an error is at is named too.
    let at = |current: &Path| {
        if current == path {
            String::new()
        } else {
            format!("{}: ", current.display())
        }
    };
    for _ in 0..MAX_LINKS {
        if let Some(why) = unsafe_directory(&current) {
            return Some(format!("{shown}: {why}"));
        }
        let meta = match std::fs::symlink_metadata(&current) {
            Ok(m) => m,
            Err(e) => return Some(format!("{shown}: {}{e}", at(&current))),
        };
        if meta.file_type().is_symlink() {
            if meta.uid() != 0 {
                return Some(format!(
                    "{shown}: {}the link is owned by uid {}, not root",
                    at(&current),
                    meta.uid()
                ));
            }
            let target = match std::fs::read_link(&current) {
                Ok(t) => t,
                Err(e) => return Some(format!("{shown}: {}{e}", at(&current))),
            };
            // A relative target is relative to the link's directory; an
            // absolute one replaces the whole path (Path::join does both).
            current = current.parent().unwrap_or(Path::new("/")).join(target);
            continue;
        }
        return file_problem(&meta, executable)
            .map(|why| format!("{shown} {why}"))
            .or_else(|| {
                // Directories reached through links (/sbin -> usr/sbin) are
                // checked where they really are.
                let real = std::fs::canonicalize(&current).ok()?;
                unsafe_directory(&real).map(|why| format!("{shown}: {why}"))
            });
    }
    Some(format!("{shown}: more than {MAX_LINKS} symbolic links"))
}

fn file_problem(meta: &std::fs::Metadata, executable: bool) -> Option<String> {
    let mode = meta.mode() & 0o7777;
    if !meta.is_file() {
        Some("is not a regular file".into())
    } else if meta.uid() != 0 {
        Some(format!("is owned by uid {}, not root", meta.uid()))
    } else if mode & 0o022 != 0 {
        Some(format!("is writable by group or others (mode {mode:04o})"))
    } else if executable && mode & 0o111 == 0 {
        Some(format!("is not executable (mode {mode:04o})"))
    } else {
        None
    }
}

/// The first directory above `path` that someone other than root could
/// change, as `twostep check` judges `secret_dir`'s parents.
fn unsafe_directory(path: &Path) -> Option<String> {
    path.ancestors().skip(1).find_map(|dir| {
        let meta = match std::fs::metadata(dir) {
            Ok(m) => m,
            Err(e) => return Some(format!("{}: {e}", dir.display())),
        };
        crate::files::fsutil::others_can_change_dir(&meta).then(|| {
            format!(
                "the directory {} can be changed by users other than root",
                dir.display()
            )
        })
    })
}
