//! Judging an answer at the code prompt, under the user's exclusive state
//! lock with the attempt counted first, so that parallel attempts are
//! serialized: each sees the failures of the ones before it, and none is
//! judged once the tier's allowance is used up.
//!
//! What is expected first depends on the method: a code of the TOTP window
//! later than the last accepted step, or the code that was sent. Either way
//! an unused recovery code is accepted too.
#![forbid(unsafe_code)]

use super::attempt::{Failure, Judging};
use super::code_step::remember;
use super::{Env, Outcome, Reason, Request, notify, recovery};
use crate::audit::Severity;
use crate::codes::{self, Verdict};
use crate::delivery::Event;
use crate::secret::{self, Held, SecretError, UserSecret};
use crate::state::{Purpose, UserState};
use crate::store::{Origin, Success};
use crate::totp::{self, Code};
use crate::user::UserName;

/// What the answer is first checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expecting {
    /// A code of the app's window.
    Totp,
    /// The code sent for `purpose`, by `method` (`email`, `sms`).
    Sent {
        purpose: Purpose,
        method: &'static str,
    },
}

/// How an answer was accepted.
#[derive(Debug, Clone, Copy)]
pub(super) enum Accepted {
    Totp {
        step_time: u64,
    },
    /// The sent code: it is used up.
    Sent {
        method: &'static str,
    },
    /// `left`: the user's recovery codes that remain.
    Recovery {
        left: usize,
    },
}

impl Accepted {
    fn method(self) -> &'static str {
        match self {
            Accepted::Totp { .. } => "totp",
            Accepted::Sent { method } => method,
            Accepted::Recovery { .. } => "recovery",
        }
    }
}

/// The secret file as it is now, under the lock, not as it was before the
/// prompt: a reset or a re-enrollment (a lost phone) made while someone sat
/// at the prompt applies to their answer too (tests/faults.rs). An
/// unchanged file (one lstat tells) is not read and parsed again. With what
/// the file held.
pub(super) fn current_secret(
    env: &Env<'_>,
    user: &UserName,
    read_before: (UserSecret, secret::Version),
) -> Result<(UserSecret, Held), (Reason, String)> {
    let (before, version) = read_before;
    if secret::unchanged(&env.config.secret_dir, user, &version) {
        return Ok((before, version.held()));
    }
    drop(before);
    secret::load_versioned(&env.config.secret_dir, user, &env.config.totp)
        .map(|(now, version)| (now, version.held()))
        .map_err(changed_secret)
}

/// Why a secret file read again during an attempt cannot be judged against.
pub(super) fn changed_secret(e: SecretError) -> (Reason, String) {
    match e {
        SecretError::Missing => (Reason::NoSecret, "removed during the attempt".to_string()),
        e => (Reason::BadSecretFile, e.to_string()),
    }
}

/// Judges `answer` and answers the login: success (durably recorded before
/// the module answers) or a counted failure.
pub(super) fn answer(
    env: &mut Env<'_>,
    req: &Request,
    user: &UserName,
    read_before: (UserSecret, secret::Version),
    answer: &[u8],
    expecting: Expecting,
) -> Outcome {
    let judging = match Judging::begin(env, req, user) {
        Ok(j) => j,
        Err(refused) => return refused,
    };
    let current = current_secret(env, user, read_before);
    let mut detail = None;
    let mut sent_hash = None;
    let verdict = match &current {
        Err((reason, why)) => {
            detail = Some(why.clone());
            Err(*reason)
        }
        Ok((secret, _)) => match expecting {
            Expecting::Totp => totp_verdict(env, req, secret, judging.state(), answer),
            Expecting::Sent { purpose, method } => {
                let (verdict, hash) =
                    sent_verdict(env, user, secret, judging.state(), answer, purpose, method);
                sent_hash = hash;
                verdict
            }
        },
    };
    // Not the expected code: perhaps a recovery code. The expected code goes
    // first, as an 8-digit scratch code looks like an 8-digit code. With the
    // file store still under the lock; with a shared store, the success
    // below is refused if the code was used meanwhile anywhere.
    let mut used_recovery = None;
    let (verdict, current, judged) = match (verdict, current) {
        (Err(Reason::BadCode), Ok((mut secret, _))) => {
            // The file store's attempt holds the user's lock already.
            let relock = env.store.origin() != Origin::Local;
            let (verdict, judged) =
                match recovery::use_code(env.config, user, &mut secret, answer, relock) {
                    Ok(Some(used)) => {
                        used_recovery = Some(used.digest);
                        (
                            Ok(Accepted::Recovery { left: used.left }),
                            Some(used.file_now),
                        )
                    }
                    Ok(None) => (Err(Reason::BadCode), None),
                    Err((reason, why)) => {
                        detail = Some(why);
                        (Err(reason), None)
                    }
                };
            (verdict, secret.email, judged)
        }
        (other, Ok((secret, judged))) => (other, secret.email, Some(judged)),
        (other, Err(_)) => (other, None, None),
    };
    let accepted = match verdict {
        Ok(accepted) => accepted,
        Err(reason) => return judging.fail(env, req, user, Failure::Code(reason, detail)),
    };
    // The step, or the used sent code, must be recorded before we answer,
    // or the code could be used again after a crash.
    let success = Success {
        step_time: match accepted {
            Accepted::Totp { step_time } => Some(step_time),
            _ => None,
        },
        spend: match (accepted, expecting) {
            (Accepted::Sent { .. }, Expecting::Sent { purpose, .. }) => {
                sent_hash.map(|h| (purpose, h))
            }
            _ => None,
        },
        recovery: used_recovery,
        remember: remember(env, req),
        new_secret: false,
    };
    if let Err(refused) = judging.succeed(env, req, user, &success) {
        return refused;
    }
    env.judged = judged;
    if let Accepted::Recovery { left } = accepted {
        env.conv.info(&recovery::recovery_message(left));
    }
    let rec = env
        .record("auth_ok", Severity::Info, req)
        .with("tty", &req.tty)
        .with("method", accepted.method());
    env.emit(rec);
    if let Accepted::Recovery { .. } = accepted {
        notify::event(
            env,
            Event::RecoveryUsed,
            user,
            current.as_ref(),
            req,
            None,
            None,
        );
    }
    Outcome::Success
}

/// A TOTP answer: a code of the window, later than the last accepted step.
fn totp_verdict(
    env: &mut Env<'_>,
    req: &Request,
    secret: &UserSecret,
    state: &UserState,
    answer: &[u8],
) -> Result<Accepted, Reason> {
    let verdict = match Code::parse(answer, secret.params.digits) {
        None => Err(Reason::BadCode),
        Some(code) => match totp::matching_step(&secret.key, &secret.params, &code, env.now) {
            None => Err(Reason::BadCode),
            Some(step) => {
                let step_time = step.saturating_mul(u64::from(secret.params.period));
                if step_time <= state.last_step_time {
                    Err(Reason::Replay)
                } else {
                    Ok(Accepted::Totp { step_time })
                }
            }
        },
    };
    // The message is built only under `debug`: this runs on every attempt.
    let now = env.now;
    let p = secret.params;
    env.trace(req, || match &verdict {
        Ok(Accepted::Totp { step_time }) => {
            let offset =
                (step_time / u64::from(p.period)) as i128 - totp::step_of(now, p.period) as i128;
            format!(
                "answer: the code of step offset {offset} (skew window), later than the last accepted"
            )
        }
        Err(Reason::Replay) => {
            "answer: a code of the window, but not later than the last accepted step".into()
        }
        Err(_) if Code::parse(answer, p.digits).is_none() => {
            format!("answer: not {} digits", p.digits)
        }
        Err(_) => "answer: no step of the window has this code".into(),
        Ok(_) => "answer: accepted".into(),
    });
    verdict
}

/// An answer to a sent code: its keyed hash against the one kept, in time.
fn sent_verdict(
    env: &mut Env<'_>,
    user: &UserName,
    secret: &UserSecret,
    state: &UserState,
    answer: &[u8],
    purpose: Purpose,
    method: &'static str,
) -> (Result<Accepted, Reason>, Option<[u8; 32]>) {
    let Some(digits) = codes::normalize(answer, env.config.codes.length) else {
        return (Err(Reason::BadCode), None);
    };
    let key = match secret::code_key(&env.config.secret_dir, secret) {
        Ok(k) => k,
        Err(_) => return (Err(Reason::BadSecretFile), None),
    };
    let hash = codes::keyed_hash(&key, user, purpose, &digits);
    let verdict = match codes::judge(state.sent.as_ref(), purpose, &hash, env.now) {
        Verdict::Right => Ok(Accepted::Sent { method }),
        Verdict::Expired => Err(Reason::Expired),
        Verdict::Wrong => Err(Reason::BadCode),
    };
    (verdict, Some(hash))
}
