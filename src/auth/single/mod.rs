//! One answer for the password and the code (`preauth single`), for
//! services that ask one question: sshd's `password` method, OpenVPN's
//! auth-pam plugin, IMAP servers.
//!
//! `preauth single` takes the answer (PAM_AUTHTOK if the application set
//! it, otherwise asked once with `prompt_single`), counts the attempt as
//! `preauth` does, and then decides what the answer is:
//! - it ends in a code (`split`) that is good for this user now, judged
//!   without being spent ([`good_code`]): the password is what comes
//!   before it, handed on as PAM_AUTHTOK; the code is kept for the code
//!   step, which judges it again under the user's lock, and spends it,
//!   without a prompt;
//! - otherwise, for a user who may answer without a code (a policy skip,
//!   `unenrolled = "allow"` or `"enroll"`, an email or SMS user, whose
//!   first answer gets them a code), the whole answer is the password;
//! - otherwise (an app user asked for a code, or a name that is no
//!   enrolled account) the answer holds no good code and none can follow:
//!   the password module is handed a password that no account has
//!   (OpenSSH's own for refused logins), fails after its usual work, and
//!   `authfail` records the failure as the code's.
//!
//! Why the code is judged before the password: a wrong code and a wrong
//! password then take the same path (the password module fails, `authfail`
//! records it), with the same response and the same time, and a password
//! is never checked for an app user without a good code beside it, so the
//! answer cannot be used to guess the password alone. The only work that
//! depends on the answer before the password module is the judging of a
//! code-shaped tail, and that costs the same whether the code is right or
//! wrong (`totp::matching_step`, `codes::judge`, one argon2 hash).
#![forbid(unsafe_code)]

pub mod split;

use super::asked;
use super::attempt::{self, Failure};
use super::{Env, Outcome, Reason, Request, decoy, judge};
use crate::base::user::UserName;
use crate::config::{TotpParams, Unenrolled};
use crate::files::secret::{self, Method, UserSecret};
use crate::files::state::{Purpose, UserState};
use crate::rules::codes::{self, Verdict};
use crate::rules::policy::Decision;
use crate::rules::totp;
use split::{Shape, Split, Unusable};
use zeroize::Zeroizing;

/// What `preauth single` keeps for the lines after it (pam_set_data).
pub struct Kept {
    /// PAM_USER as `preauth` saw it: for any other user the code counts for
    /// nothing.
    pub user: Vec<u8>,
    /// The code split off the answer, if it ended in a good one.
    pub code: Option<Zeroizing<Vec<u8>>>,
    /// `false`: the answer held no good code and needed one, and the
    /// password module was handed [`NO_PASSWORD`]: its failure is the
    /// code's, the password was not checked.
    pub password_handed: bool,
    /// With `password_handed` false: the code at its end was a good one
    /// that is spent already (an app code of a step accepted before). Only
    /// the record says so; the response is a wrong code's.
    pub replayed: bool,
}

/// A password no account has: what OpenSSH hands PAM for a login it has
/// refused already, so that the password module does its usual work and
/// fails.
pub const NO_PASSWORD: &[u8] = b"\x08\n\r\x7fINCORRECT";

/// `preauth single`. On success `env.authtok` holds the password to hand
/// on and `env.kept` what the code step is to judge.
pub(super) fn preauth(env: &mut Env<'_>, req: &Request) -> Outcome {
    env.kept = None;
    let answer = match env.authtok.take() {
        Some(answer) => answer,
        None => match env.conv.ask_hidden(&env.config.prompt_single) {
            Some(answer) => answer,
            None => return Outcome::ConversationFailed,
        },
    };
    env.now = (env.clock)();
    let (counted, state) = attempt::preauth_state(env, req);
    if counted != Outcome::Success {
        return counted;
    }
    // preauth reserved an account's attempt; a name that is no account has
    // none (the decoy was counted).
    let user = env.reservation.as_ref().map(|r| r.user.clone());
    let expects = match &user {
        Some(user) => expects(env, req, user, state),
        None => {
            let _ = env.store.read_decoy();
            Expects {
                len: env.config.totp.digits,
                secret: None,
                state: None,
                needs_code: true,
            }
        }
    };
    let mut replayed = false;
    let code_at = match split::split(&answer, expects.len) {
        Split::Unusable(why) => return refuse_unusable(env, req, user.as_ref(), why),
        Split::NoCode => None,
        Split::Tail { at, shape } => {
            let (_, tail) = answer.split_at(at);
            match good_code(env, user.as_ref(), &expects, tail, shape) {
                Judged::Good => Some(at),
                Judged::Spent => {
                    replayed = true;
                    None
                }
                Judged::Bad => None,
            }
        }
    };
    env.trace(req, || {
        format!(
            "one answer: {} (a code {} digits; needed: {})",
            if code_at.is_some() {
                "ends in a good code"
            } else {
                "holds no good code"
            },
            expects.len,
            expects.needs_code
        )
    });
    let (password, code, password_handed) = match code_at {
        Some(at) => {
            let (password, code) = answer.split_at(at);
            (password, Some(Zeroizing::new(code.to_vec())), true)
        }
        None if expects.needs_code => (NO_PASSWORD, None, false),
        None => (&answer[..], None, true),
    };
    env.authtok = Some(Zeroizing::new(password.to_vec()));
    env.kept = Some(Kept {
        user: req.user.clone(),
        code,
        password_handed,
        replayed: replayed && !password_handed,
    });
    Outcome::Success
}

/// What this user's answer may hold.
struct Expects {
    /// Digits of the user's code.
    len: u8,
    /// What a code-shaped tail is judged against; `None`: the decoy's, and
    /// it is never good.
    secret: Option<UserSecret>,
    state: Option<UserState>,
    /// The answer must hold a good code: the password alone is never let
    /// through.
    needs_code: bool,
}

fn expects(env: &mut Env<'_>, req: &Request, user: &UserName, state: Option<UserState>) -> Expects {
    let req = &req.for_account(user);
    let (skipped, always) = match asked::decide(env, req, user, state.as_ref()) {
        Decision::Skip(_) => (true, false),
        Decision::Challenge { always } => (false, always),
    };
    let config = env.config;
    let marked = secret::check_marker(&config.secret_dir).is_ok();
    let loaded = secret::load(&config.secret_dir, user, &config.totp);
    let mut out = Expects {
        len: config.totp.digits,
        secret: None,
        state,
        needs_code: !skipped,
    };
    match loaded {
        Ok(s) if marked => {
            if s.method == Method::Totp {
                out.len = s.params.digits;
            } else {
                // The first answer, the password alone, gets a code sent.
                out.len = config.codes.length;
                out.needs_code = false;
            }
            out.secret = Some(s);
        }
        Err(secret::SecretError::Missing) if marked => {
            let lets_through = match config.unenrolled {
                Unenrolled::Allow => true,
                Unenrolled::Enroll => asked::enrollment_open(config, env.now),
                Unenrolled::Deny => false,
            };
            if lets_through && !always {
                out.needs_code = false;
            }
        }
        _ => {}
    }
    out
}

/// What the end of an answer is, judged without spending it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Judged {
    Good,
    /// An app code of a step accepted already: a replay.
    Spent,
    Bad,
}

/// Whether `tail` is a code this user could log in with now: an app code
/// of the window later than the last accepted step, the code sent (not
/// expired), or an unused recovery code. Nothing is spent: the code step
/// judges it again under the user's lock. Right or wrong, the work is the
/// same (a spent app code costs what a good one does); for names with no
/// secret it is done on the decoy's, and is never good.
fn good_code(
    env: &Env<'_>,
    user: Option<&UserName>,
    expects: &Expects,
    tail: &[u8],
    shape: Shape,
) -> Judged {
    let config = env.config;
    let decoy;
    let (secret, real) = match (&expects.secret, user) {
        (Some(s), Some(_)) => (s, true),
        _ => {
            decoy = decoy::secret(&config.totp);
            match &decoy {
                Some(d) => (d, false),
                None => return Judged::Bad,
            }
        }
    };
    let good = |good: bool| if good { Judged::Good } else { Judged::Bad };
    let judged = match shape {
        Shape::Recovery | Shape::Scratch => {
            if secret.file.recovery_codes.is_empty() {
                decoy::recovery_check(&config.state_dir, &config.totp, tail);
                Judged::Bad
            } else {
                good(matches!(
                    decoy::find_gated(&config.state_dir, &secret.file.recovery_codes, tail),
                    Ok(Some(_))
                ))
            }
        }
        Shape::Code => match (secret.method, user) {
            (Method::Email | Method::Sms, Some(user)) => good(sent_code_good(
                env,
                user,
                secret,
                expects.state.as_ref(),
                tail,
            )),
            _ => {
                let keys: Vec<(&[u8], TotpParams)> = secret
                    .devices
                    .iter()
                    .map(|d| (d.key.as_slice(), d.params))
                    .collect();
                let steps = totp::matching_steps(&keys, tail, env.now);
                let none = UserState::default();
                let state = expects.state.as_ref().unwrap_or(&none);
                match judge::pick(&secret.devices, &steps, state) {
                    Ok(_) => Judged::Good,
                    Err(Reason::Replay) => Judged::Spent,
                    Err(_) => Judged::Bad,
                }
            }
        },
    };
    if real { judged } else { Judged::Bad }
}

/// Whether `tail` is the code sent to this user for signing in, in time.
fn sent_code_good(
    env: &Env<'_>,
    user: &UserName,
    secret: &UserSecret,
    state: Option<&UserState>,
    tail: &[u8],
) -> bool {
    let Some(digits) = codes::normalize(tail, env.config.codes.length) else {
        return false;
    };
    let Ok(key) = secret::code_key(&env.config.secret_dir, secret) else {
        return false;
    };
    let hash = codes::keyed_hash(&key, user, Purpose::SignIn, &digits);
    codes::judge(
        state.and_then(|s| s.sent.as_ref()),
        Purpose::SignIn,
        &hash,
        env.now,
    ) == Verdict::Right
}

/// An answer that cannot be a password and a code: denied now, counted,
/// nothing judged.
fn refuse_unusable(
    env: &mut Env<'_>,
    req: &Request,
    user: Option<&UserName>,
    why: Unusable,
) -> Outcome {
    let detail = match why {
        Unusable::TooLong => format!("one answer: longer than {} bytes", split::MAX_ANSWER),
        Unusable::Nul => "one answer: a NUL byte".to_string(),
    };
    env.conv
        .error("That answer cannot be a password followed by a code.");
    let Some(user) = user else {
        let rec = env
            .record("auth_fail", crate::base::records::Severity::Notice, req)
            .with("tty", &req.tty)
            .with("reason", Reason::BadUser.as_str())
            .with("failures", 0)
            .with("detail", detail);
        env.emit(rec);
        return Outcome::Denied;
    };
    let req = &req.for_account(user);
    attempt::fail_unjudged(env, req, user, Failure::Code(Reason::BadCode, Some(detail)))
}

/// Whether this attempt came as one answer (the code step then asks
/// nothing), and if so whether it held a good code.
pub(super) fn answered(env: &Env<'_>) -> Option<bool> {
    env.kept.as_ref().map(|k| k.code.is_some())
}
