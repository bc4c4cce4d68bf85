//! The login flow as plain Rust: what each module mode does, over small traits
//! for the conversation, the account database and the audit log. No PAM types
//! here; `pam.rs` maps [`Outcome`] to PAM codes in one place.
//!
//! Where each part lives:
//! - `identity`: which account an attempt is about (one identity per account)
//! - `attempt`: counting before checking: the reservation `preauth` makes, the
//!   attempt judged under the user's lock, failures and locks recorded
//! - `code_step`: the code step: who is asked, the prompt
//! - `judge`: the answer judged under the lock (an app code, a sent code,
//!   a recovery code)
//! - `sent_code`: codes sent by email or SMS: throttled, kept as a keyed
//!   hash, handed over
//! - `lost_device`: `lost` at an app-code prompt: a code by email, then a
//!   new app set up at this login
//! - `recovery`: a recovery code at the prompt
//! - `confirm`: a change made with twostep-self, confirmed by a current code
//!   after the password
//! - `enroll`: enrollment at login (and the new app of a lost device)
//! - `notify`: the notices the module mails
//! - `single`: the password and the code in one answer (`preauth single`):
//!   where the code ends, which part is handed on, what is kept
//! - `new_source`: after a successful code step, whether it came from an
//!   address not seen lately (`notify.events` = `new_source`)
//! - `decoy`: the same work for names that are not enrolled accounts, so that
//!   the response does not tell them apart; and the bound on argon2 checks
#![forbid(unsafe_code)]

mod asked;
mod attempt;
mod code_step;
pub mod confirm;
mod decoy;
mod enroll;
mod identity;
mod judge;
mod lost_device;
mod new_source;
mod notify;
mod recovery;
mod refusal;
mod sent_code;
pub mod single;

use crate::base::records::{Record, Severity, Sink};
use crate::base::user::UserName;
use crate::config::Config;
use crate::files::state::StateError;
use crate::rules::lockout::NewLock;
use crate::store::{Store, StoreError};
use zeroize::Zeroizing;

pub use notify::password_changed;
pub use recovery::recovery_message;
pub use single::Kept;

/// The module's mode word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Ask for and check the code.
    Code,
    /// Before the password: deny at once if the user is locked; otherwise
    /// count the attempt before the password is checked.
    Preauth,
    /// After a failed password: record the failure, deny.
    Authfail,
}

/// What the module answers. Mapped to PAM codes in `pam.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Let the login through (a good code, a skipped challenge, preauth passed).
    Success,
    /// Deny. Everything that is not a proven success ends here.
    Denied,
    /// The conversation failed (client went away): deny, nothing evaluated.
    ConversationFailed,
}

/// The PAM items of this attempt. `user` is the raw PAM_USER: not validated.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub user: Vec<u8>,
    pub service: String,
    pub rhost: String,
    pub tty: String,
}

impl Request {
    /// The same attempt, about the account `user` resolved to: records name
    /// the account, not the spelling typed.
    fn for_account(&self, user: &UserName) -> Request {
        Request {
            user: user.as_str().as_bytes().to_vec(),
            ..self.clone()
        }
    }
}

/// Talking to the person logging in.
pub trait Conversation {
    /// Asks with echo off. `None` if the conversation failed.
    fn ask_hidden(&mut self, prompt: &str) -> Option<Zeroizing<Vec<u8>>>;
    fn error(&mut self, text: &str);
    fn info(&mut self, text: &str);
}

/// The system's account and group databases.
pub trait Accounts {
    /// The account a login name resolves to, by its own name (`pw_name`):
    /// NSS may resolve other spellings (SSSD and winbind ignore case by
    /// default). `None`: no such account, or one whose own name is not a
    /// plausible login name. An error is a lookup failure (fail closed).
    fn canonical(&self, typed: &UserName) -> Result<Option<UserName>, String>;
    /// The IDs of the user's groups, the primary one and the supplementary
    /// ones (getgrouplist). `None`: there is no such user.
    fn group_ids(&self, user: &UserName) -> Result<Option<Vec<u32>>, String>;
    /// A group's ID; `None`: there is no such group.
    fn group_id(&self, name: &str) -> Result<Option<u32>, String>;
}

/// An attempt that `preauth` counted before the password was checked. The
/// module keeps it with the PAM handle (pam_set_data) for the lines after
/// it: `authfail` and the code step then judge this attempt without
/// counting it again, and a success gives it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    pub user: UserName,
    /// The state's epoch when it was counted: a reset since (a success, an
    /// unlock) has wiped it, and the attempt is then counted again.
    pub epoch: u32,
    /// The failures counted, this one included.
    pub failures: u32,
    /// The lock this reservation set off, told to the user if the attempt
    /// fails (and lifted if it succeeds).
    pub new_lock: Option<NewLock>,
    /// The store that counted it: in any other it counts for nothing.
    pub origin: crate::store::Origin,
}

impl Reservation {
    /// As the store is told of it.
    pub fn held(&self) -> crate::store::Held {
        crate::store::Held {
            epoch: self.epoch,
            origin: self.origin,
        }
    }
}

/// Everything one attempt works with.
pub struct Env<'a> {
    pub config: &'a Config,
    /// Unix seconds: read at the start and again whenever an answer arrives
    /// ([`Env::answer_arrived`]), so that a code is judged by the time it was
    /// typed, not by when the prompt was shown.
    pub now: u64,
    pub clock: fn() -> u64,
    pub conv: &'a mut dyn Conversation,
    pub accounts: &'a dyn Accounts,
    /// Where per-user state lives (this host's files, or the fleet's store).
    pub store: &'a dyn Store,
    pub audit: &'a mut dyn Sink,
    /// The `debug` module argument: also log `event=debug` records that say
    /// how the decision was reached (never an answer, code or secret).
    pub debug: bool,
    /// In: the reservation an earlier line of this stack made for this
    /// attempt, if any. Out: the one to keep for the next line (`pam.rs`
    /// stores it). Taken when used, so it serves one judgement only.
    pub reservation: Option<Reservation>,
    /// Out: after a successful code step, the secret file the answer was
    /// judged against, as the answer left it (a used recovery code struck
    /// off); `Absent` when a user with none was let through. twostep-self
    /// writes its change only over that same file (`cli::proven`).
    pub judged: Option<crate::files::secret::Held>,
    /// `preauth single`. In: the answer the application set as
    /// PAM_AUTHTOK, if it did (otherwise the module asks). Out: the
    /// password to hand on as PAM_AUTHTOK.
    pub authtok: Option<Zeroizing<Vec<u8>>>,
    /// In: what a `preauth single` line of this stack kept for the lines
    /// after it; the code step then asks nothing and judges the code kept.
    /// Out: what `preauth single` keeps (`pam.rs` stores it).
    pub kept: Option<Kept>,
}

/// Unix seconds now.
pub fn system_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Why a code attempt failed, as the `reason` of `auth_fail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    BadCode,
    Replay,
    NoSecret,
    BadSecretFile,
    BadUser,
    /// A sent code past its validity.
    Expired,
    /// The shared store was unavailable.
    Store,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::BadCode => "bad_code",
            Reason::Replay => "replay",
            Reason::NoSecret => "no_secret",
            Reason::BadSecretFile => "bad_secret_file",
            Reason::BadUser => "bad_user",
            Reason::Expired => "expired",
            Reason::Store => "store",
        }
    }
}

/// The name as it may appear in a record: validated names as they are,
/// anything else escaped by the record formatter.
fn display_name(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

impl Env<'_> {
    /// Asks for the code (echo off) and reads the clock when the answer
    /// arrives. `None`: the conversation failed.
    /// After one answer (`preauth single`) nothing is asked: the code
    /// kept is the answer, once (none: an empty answer, a wrong code).
    fn ask_code(&mut self) -> Option<Zeroizing<Vec<u8>>> {
        if let Some(kept) = &mut self.kept {
            return Some(kept.code.take().unwrap_or_default());
        }
        let answer = self.conv.ask_hidden(&self.config.prompt)?;
        self.now = (self.clock)();
        Some(answer)
    }

    fn record(&mut self, event: &str, severity: Severity, req: &Request) -> Record {
        let _ = self;
        Record::new(event, severity)
            .with("user", display_name(&req.user))
            .with("service", &req.service)
            .with("rhost", &req.rhost)
    }

    fn emit(&mut self, record: Record) {
        self.audit.emit(record);
    }

    /// With `debug`: one `event=debug` record (authpriv.debug).
    fn trace(&mut self, req: &Request, detail: impl FnOnce() -> String) {
        if self.debug {
            let rec = Record::new("debug", Severity::Debug)
                .with("user", display_name(&req.user))
                .with("service", &req.service)
                .with("detail", detail());
            self.emit(rec);
        }
    }

    /// Tells a locked user until when, and records the refusal.
    fn refuse_locked(&mut self, req: &Request, until: u64) -> Outcome {
        self.conv.error(&lock_message(until, self.now));
        let rec = self
            .record("lock_denied", Severity::Notice, req)
            .with("until", crate::base::records::rfc3339(until));
        self.emit(rec);
        Outcome::Denied
    }

    /// The store could not count or record this attempt: nothing is judged.
    /// A damaged or unwritable state is a lock of unknown end; a shared
    /// store that does not answer is `store_unavailable`, then the
    /// attempt's own `auth_fail reason=store`.
    fn refuse_store(&mut self, req: &Request, user: &UserName, err: &StoreError) -> Outcome {
        match err {
            StoreError::State(e) => self.refuse_bad_state(req, e),
            StoreError::Unavailable { reason, detail } => {
                self.emit(
                    Record::new("store_unavailable", Severity::Warning)
                        .with("user", user)
                        .with("reason", *reason)
                        .with("detail", detail),
                );
                let rec = self
                    .record("auth_fail", Severity::Warning, req)
                    .with("tty", &req.tty)
                    .with("reason", Reason::Store.as_str())
                    .with("failures", 0);
                self.emit(rec);
                self.conv.error(
                    "Login is not possible right now: the sign-in service cannot be reached. \
                     Try again later or contact your administrator.",
                );
                Outcome::Denied
            }
        }
    }

    /// A state file that cannot be trusted, or an attempt that cannot be
    /// recorded in it, counts as a lock of unknown end: nothing is judged.
    fn refuse_bad_state(&mut self, req: &Request, err: &StateError) -> Outcome {
        self.conv
            .error("Login is temporarily blocked for this account. Contact your administrator.");
        let rec = self
            .record("lock_denied", Severity::Warning, req)
            .with("until", "unknown")
            .with("reason", "bad_state")
            .with("detail", err);
        self.emit(rec);
        Outcome::Denied
    }
}

/// "Too many failed attempts. Try again after 07:05:00 UTC (in 5 minutes)."
pub fn lock_message(until: u64, now: u64) -> String {
    let left = until.saturating_sub(now);
    let stamp = crate::base::records::rfc3339(until);
    let when = stamp.replace('T', " ").replace('Z', " UTC");
    let (n, unit) = match left {
        0..=59 => (left, "second"),
        60..=5399 => (left.div_ceil(60), "minute"),
        _ => (left.div_ceil(3600), "hour"),
    };
    let wait = format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    format!("Too many failed attempts: this account is locked until {when} (in {wait}).")
}

/// Runs `preauth single`: the answer taken (or asked once), the attempt
/// counted, the password split off for the password module.
pub fn preauth_single(env: &mut Env<'_>, req: &Request) -> Outcome {
    single::preauth(env, req)
}

/// Runs one module call.
pub fn run(env: &mut Env<'_>, mode: Mode, req: &Request) -> Outcome {
    match mode {
        Mode::Code => {
            let outcome = code_step::run(env, req);
            if outcome == Outcome::Success {
                new_source::after_login(env, req);
            }
            outcome
        }
        Mode::Preauth => attempt::preauth(env, req),
        Mode::Authfail => attempt::authfail(env, req),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_messages_say_until_when() {
        let cases = [
            (
                1_000_300,
                1_000_000,
                "locked until 1970-01-12 13:51:40 UTC (in 5 minutes).",
            ),
            (1_000_030, 1_000_000, "(in 30 seconds)."),
            (1_000_001, 1_000_000, "(in 1 second)."),
            (1_000_000, 1_000_000, "(in 0 seconds)."),
            (1_000_060, 1_000_000, "(in 1 minute)."),
            (1_000_061, 1_000_000, "(in 2 minutes)."),
            (1_005_401, 1_000_000, "(in 2 hours)."),
            (1_003_600, 1_000_000, "(in 60 minutes)."),
            (1_007_200, 1_000_000, "(in 2 hours)."),
        ];
        for (until, now, want) in cases {
            let msg = lock_message(until, now);
            assert!(msg.contains(want), "{msg}");
        }
    }
}
