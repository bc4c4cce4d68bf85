//! The code step of a user whose `method` is `email` or `sms`: a fresh code
//! is made, kept as a keyed hash with its expiry and the send counted (all
//! on disk before the message is handed over), handed to sendmail or the
//! site's SMS command within `codes.timeout`, and the user told where it
//! went, masked. The answer is then judged as any code is (`judge`), under
//! the lockout, and accepted once. Throttles: while a good code was sent
//! less than `codes.resend_after` ago none is sent (the user is told to use
//! it), and at most `codes.max_per_hour` are sent in any hour.
#![forbid(unsafe_code)]

use super::attempt::{self, Failure};
use super::judge::{self, Expecting};
use super::refusal::{Target, conversation_failed, deny_after_prompt};
use super::{Env, Outcome, Reason, Request, single};
use crate::base::records::Severity;
use crate::base::user::UserName;
use crate::delivery::Login;
use crate::delivery::outbox::{self, Destination};
use crate::files::secret::{self, Method, UserSecret};
use crate::files::state::Purpose;
use crate::rules::codes::{self, Plan};
use crate::store::{Issued, NewCode};
use std::time::Duration;

pub(super) fn code_step(
    env: &mut Env<'_>,
    req: &Request,
    user: &UserName,
    read_before: (UserSecret, secret::Version),
) -> Outcome {
    let method = read_before.0.method;
    let to = match outbox::destination(env.config, user, &read_before.0, method) {
        Ok(to) => to,
        Err(why) => {
            drop(read_before);
            return deny_after_prompt(
                env,
                req,
                Target::Account(user),
                Reason::BadSecretFile,
                Some(why),
            );
        }
    };
    let expecting = Expecting::Sent {
        purpose: Purpose::SignIn,
        method: method_name(method),
    };
    let valid = env.config.codes.valid;
    match single::answered(env) {
        // One answer that ended in the code sent: judged as it is, and no
        // new code sent (it would replace the one typed).
        Some(true) => {
            let Some(answer) = env.ask_code() else {
                return conversation_failed(env, req, user);
            };
            return judge::answer(env, req, user, read_before, &answer, expecting);
        }
        // One answer, the password alone (and right): a code is sent, and
        // this answer refused. It stays counted: giving it back would reset
        // the counters, and answers of the password alone between guesses
        // would then make the guesses of the code unlimited.
        Some(false) => return ask_again(env, req, user, &read_before.0, &to, valid),
        None => {}
    }
    if let Err(refused) = issue(env, req, user, &read_before.0, &to, Purpose::SignIn, valid) {
        return refused;
    }
    let Some(answer) = env.ask_code() else {
        return conversation_failed(env, req, user);
    };
    judge::answer(env, req, user, read_before, &answer, expecting)
}

/// The first of an email or SMS user's two answers (`preauth single`): the
/// code is sent (the throttles hold) and the user told to answer again with
/// the password followed by it; the attempt is a counted failure.
fn ask_again(
    env: &mut Env<'_>,
    req: &Request,
    user: &UserName,
    secret: &UserSecret,
    to: &Destination,
    valid: Duration,
) -> Outcome {
    if let Err(refused) = issue(env, req, user, secret, to, Purpose::SignIn, valid) {
        return refused;
    }
    env.conv
        .error("Log in again: type your password followed by the code, in one answer.");
    let detail = "one answer without a code: a code is on its way".to_string();
    attempt::fail_unjudged(env, req, user, Failure::Code(Reason::BadCode, Some(detail)))
}

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Email => "email",
        Method::Sms => "sms",
        Method::Totp => "totp",
    }
}

/// Sends a code for `purpose` to `to` unless a throttle says otherwise, and
/// tells the user what happened. `Err`: the login is refused now (a locked
/// account, a state that cannot be written); a failed hand-over is not an
/// error here: the user is told, and only a recovery code can then succeed.
pub(super) fn issue(
    env: &mut Env<'_>,
    req: &Request,
    user: &UserName,
    secret: &UserSecret,
    to: &Destination,
    purpose: Purpose,
    valid: Duration,
) -> Result<(), Outcome> {
    // The code is made first; the store keeps its hash only if one is to
    // be sent now, in the same step as it decides so.
    let code = match codes::new_code(env.config.codes.length) {
        Ok(c) => c,
        Err(why) => return Err(fail_to_send(env, user, to, "random", why)),
    };
    let key = match secret::code_key(&env.config.secret_dir, secret) {
        Ok(k) => k,
        Err(why) => return Err(fail_to_send(env, user, to, "key", why)),
    };
    let hash = codes::keyed_hash(&key, user, purpose, code.as_bytes());
    let now = env.now;
    let held = attempt::held(env, user);
    let store = env.store;
    let codes_cfg = env.config.codes;
    let new = NewCode {
        purpose,
        hash,
        valid: valid.as_secs(),
    };
    let plan = match store.issue(user, now, &new, &codes_cfg, held) {
        // Nothing is sent to a locked account (unless this very attempt
        // was counted while it was open).
        Ok(Issued::Locked { until }) => return Err(env.refuse_locked(req, until)),
        Ok(Issued::Planned(plan)) => plan,
        Err(e) => return Err(env.refuse_store(req, user, &e)),
    };
    let masked = to.masked();
    match plan {
        Plan::UseSent { sent_at, expires } => {
            env.conv.info(&format!(
                "A code was sent to {masked} {} ago; use that one. It is good until {}.",
                ago(now.saturating_sub(sent_at)),
                clock(expires)
            ));
            Ok(())
        }
        Plan::Throttled { until } => {
            env.emit(outbox::failure_record(user, to.method(), "throttled").with(
                "detail",
                format!(
                    "codes.max_per_hour ({}) reached until {}",
                    env.config.codes.max_per_hour,
                    crate::base::records::rfc3339(until)
                ),
            ));
            env.conv.error(&format!(
                "Too many codes were sent in the last hour: no new one before {}. \
                 A code you already have, or a recovery code, still works.",
                clock(until)
            ));
            Ok(())
        }
        Plan::Send => {
            // Recorded (durably) before it is handed over: a code that
            // reaches the user is always one the store knows.
            let login = Login {
                user: user.as_str(),
                service: &req.service,
                source: &req.rhost,
            };
            match outbox::send_code(env.config, to, &login, &code, purpose, valid) {
                Ok(()) => {
                    let rec = env
                        .record("code_sent", Severity::Info, req)
                        .with("method", to.method())
                        .with("to", &masked);
                    env.emit(rec);
                    env.conv.info(&format!(
                        "A code was sent to {masked}; it is good for {}.",
                        ago(valid.as_secs())
                    ));
                }
                Err(e) => {
                    withdraw(env, user, &hash);
                    let detail = e.to_string();
                    let _ = fail_to_send(env, user, to, e.reason(), detail);
                }
            }
            Ok(())
        }
    }
}

/// Records a failed hand-over and tells the user: only a recovery code can
/// succeed now.
fn fail_to_send(
    env: &mut Env<'_>,
    user: &UserName,
    to: &Destination,
    reason: &str,
    detail: String,
) -> Outcome {
    env.emit(outbox::failure_record(user, to.method(), reason).with("detail", detail));
    env.conv.error(&format!(
        "No code could be sent to {}. Only a recovery code works now; try again later \
         or ask your administrator.",
        to.masked()
    ));
    Outcome::Denied
}

/// A code that was not handed over (or not in time) must not work if it
/// arrives after all: forget it, if it is still the one kept.
fn withdraw(env: &mut Env<'_>, user: &UserName, hash: &[u8; 32]) {
    let _ = env.store.withdraw(user, hash);
}

/// "5 minutes", "40 seconds".
fn ago(secs: u64) -> String {
    match secs {
        0..=1 => "1 second".into(),
        2..=119 => format!("{secs} seconds"),
        _ => format!("{} minutes", secs.div_ceil(60)),
    }
}

/// "07:05 UTC".
fn clock(unix: u64) -> String {
    let stamp = crate::base::records::rfc3339(unix);
    format!("{} UTC", stamp.get(11..16).unwrap_or("?"))
}
