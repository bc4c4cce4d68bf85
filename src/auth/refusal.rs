//! How an attempt ends without an answer to judge: the person went away
//! at the prompt, or the name cannot be judged (an unknown or unenrolled
//! user is asked like anyone, then denied). Below the code step and the
//! methods, which all end this way at times: nothing here calls back up.
#![forbid(unsafe_code)]

use super::attempt::{self, Failure};
use super::{Env, Outcome, Reason, Request, decoy};
use crate::base::records::Severity;
use crate::base::user::UserName;

/// The person went away at the prompt. A preauth reservation stays counted;
/// a lock it set off is recorded now, as no failure will record it.
pub(super) fn conversation_failed(env: &mut Env<'_>, req: &Request, user: &UserName) -> Outcome {
    if let Some(r) = env.reservation.take()
        && r.user == *user
        && let Some(lock) = r.new_lock
    {
        attempt::record_lock(env, req, user, lock);
    }
    Outcome::ConversationFailed
}

/// Whose failure [`deny_after_prompt`] records.
pub(super) enum Target<'a> {
    Invalid,
    Unknown,
    Account(&'a UserName),
}

/// Asks like any other attempt, then denies: a remote client cannot tell an
/// unknown or unenrolled user from a wrong code. Accounts count the failure;
/// unknown names do an equivalent durable write to a decoy, so that the
/// response time does not tell them apart either. Invalid names touch nothing.
pub(super) fn deny_after_prompt(
    env: &mut Env<'_>,
    req: &Request,
    target: Target<'_>,
    reason: Reason,
    detail: Option<String>,
) -> Outcome {
    // An enrolled user's secret file is parsed before the prompt and judged
    // after it: the decoy's too.
    let decoy = decoy::secret(&env.config.totp);
    let Some(answer) = env.ask_code() else {
        return match target {
            Target::Account(user) => conversation_failed(env, req, user),
            _ => Outcome::ConversationFailed,
        };
    };
    if let Some(decoy) = &decoy {
        decoy::check(&env.config.state_dir, decoy, env.now, &answer);
    }
    match target {
        Target::Account(user) => {
            return attempt::fail_unjudged(env, req, user, Failure::Code(reason, detail));
        }
        Target::Unknown => env.store.decoy(true),
        Target::Invalid => {}
    }
    let mut rec = env
        .record("auth_fail", Severity::Notice, req)
        .with("tty", &req.tty)
        .with("reason", reason.as_str())
        .with("failures", 0);
    if let Some(detail) = detail {
        rec = rec.with("detail", detail);
    }
    env.emit(rec);
    Outcome::Denied
}
