//! The proof a change needs: the password, checked by PAM through the
//! service `twostep-self`, then, for an enrolled user, a current code or a
//! recovery code, judged by the library as the module judges a login.
//!
//! The lockout is the module's, step for step, as in the canonical stack:
//! the attempt is counted (durably, under the user's lock) before the
//! password is checked, and a locked user is refused before being asked
//! anything ([`Mode::Preauth`]); a wrong password is recorded as a failure
//! ([`Mode::Authfail`], `password_fail`); the code is judged against that
//! same count (`auth::confirm`), a wrong one is an `auth_fail`, a right one
//! resets the counters. So the PAM service checks the password only, and
//! the counting does not depend on what an administrator puts in it.
#![forbid(unsafe_code)]

use super::{SERVICE, pam_client};
use crate::auth::{self, Conversation, Env, Mode, Outcome, Request};
use crate::base::records::Syslog;
use crate::base::user::UserName;
use crate::caller::Shield;
use crate::cli::proven::Proven;
use crate::cli::term::{self, Keyboard};
use crate::cli::{CliError, Ctx};
use crate::files::secret::DeviceName;
use zeroize::Zeroizing;

/// The refusal after a failed proof; what went wrong was said above it.
fn not_confirmed() -> CliError {
    CliError::Failed("not confirmed: nothing was changed".into())
}

/// The terminal to type the password and codes on.
pub fn keyboard() -> Result<Keyboard, CliError> {
    Keyboard::terminal().map_err(|_| {
        CliError::Failed(
            "a change needs your password, typed on a terminal: run it from one".into(),
        )
    })
}

/// The terminal name, as records and pam_unix name it (`pts/3`).
fn tty_name() -> String {
    use std::os::fd::AsFd;
    nix::unistd::ttyname(std::io::stdin().as_fd())
        .ok()
        .map(|p| {
            let p = p.to_string_lossy().into_owned();
            p.strip_prefix("/dev/").map(str::to_string).unwrap_or(p)
        })
        .unwrap_or_default()
}

/// Asks for the password, then a code if `user` is enrolled. `Ok`: the
/// change may go ahead, over the secret file the proof was judged against
/// and within the time it gives (`cli::proven`). Every failure is counted
/// and recorded, and the person has been told why. `not_from`: the
/// authenticator being removed, whose code does not confirm its own
/// removal while another remains (`auth::confirm::second_factor`).
pub fn prove(
    ctx: &Ctx,
    user: &UserName,
    keyboard: &Keyboard,
    not_from: Option<&DeviceName>,
) -> Result<Proven, CliError> {
    let store = crate::store::open(&ctx.config);
    let mut audit = Syslog {
        socket: &ctx.config.log_socket,
        tag: SERVICE,
    };
    let mut conv = TerminalConversation { keyboard };
    let accounts = crate::pam::SystemAccounts;
    let tty = tty_name();
    let req = Request {
        user: user.as_str().as_bytes().to_vec(),
        service: SERVICE.into(),
        rhost: String::new(),
        tty: tty.clone(),
    };
    let mut env = Env {
        config: &ctx.config,
        now: auth::system_clock(),
        clock: auth::system_clock,
        conv: &mut conv,
        accounts: &accounts,
        store: store.as_ref(),
        audit: &mut audit,
        debug: false,
        reservation: None,
        judged: None,
        authtok: None,
        kept: None,
    };
    // The count is made under the user's lock, which the caller must not be
    // able to hold by stopping this process (`caller`); PAM checks the
    // password with the caller's real uid, as the administrator's PAM file
    // expects of any setuid program (pam_rootok must not see root there).
    let shield = Shield::raise();
    let counted = auth::run(&mut env, Mode::Preauth, &req);
    drop(shield);
    if counted != Outcome::Success {
        return Err(not_confirmed());
    }
    let checked = pam_client::check_password(SERVICE, user, &tty, keyboard);
    // From here on, nothing is the caller's to stop or slow: the code is
    // judged under the lockout, and the change written, out of their reach.
    Shield::raise().keep();
    env.now = auth::system_clock();
    if let Err(refused) = checked {
        let _ = auth::run(&mut env, Mode::Authfail, &req);
        term::note(&term::escape(&format!("twostep-self: {refused}")));
        return Err(not_confirmed());
    }
    match auth::confirm::second_factor(&mut env, &req, user, not_from) {
        // Every success names the file it was judged against; should one
        // not, nothing may be written.
        Outcome::Success => env
            .judged
            .map(|held| Proven::now(held.fingerprint()))
            .ok_or_else(not_confirmed),
        Outcome::Denied | Outcome::ConversationFailed => Err(not_confirmed()),
    }
}

/// The library's questions and messages, on the terminal: the code is
/// read hidden, messages go to stderr (escaped, as everything shown is).
struct TerminalConversation<'a> {
    keyboard: &'a Keyboard,
}

impl Conversation for TerminalConversation<'_> {
    fn ask_hidden(&mut self, prompt: &str) -> Option<Zeroizing<Vec<u8>>> {
        self.keyboard
            .read_code(prompt)
            .ok()
            .map(|code| Zeroizing::new(code.as_bytes().to_vec()))
    }

    fn error(&mut self, text: &str) {
        term::note(&term::escape(text));
    }

    // After a recovery code, this comes once the proof is committed: a
    // stderr that cannot be written must not stop what follows.
    fn info(&mut self, text: &str) {
        term::note(&term::escape(text));
    }
}
