//! A lost device (`lost_device.method = "email"`): the answer `lost` at an
//! app-code prompt mails the user a code good for `lost_device.valid`; the
//! right code is recorded (`lost_device`) and the user sets up a new app at
//! this login, exactly as in enrollment at login. Only a right code from
//! the new app replaces the old secret (its recovery codes and remembered
//! addresses go with it); a wrong one writes nothing and counts as a
//! failure, and the mailed code is spent either way once it was right.
//!
//! What it trades: whoever holds the password and the mailbox can replace
//! the second factor. It is off by default (SECURITY.md).
#![forbid(unsafe_code)]

use super::attempt::{Failure, Judging};
use super::enroll::{self, SetUp};
use super::judge;
use super::refusal::conversation_failed;
use super::{Env, Outcome, Reason, Request, notify, sent_code};
use crate::base::records::Severity;
use crate::base::user::UserName;
use crate::config::{Config, LostDeviceMethod};
use crate::delivery::Event;
use crate::delivery::outbox::{self, Destination};
use crate::files::secret::{self, UserSecret};
use crate::files::state::Purpose;
use crate::rules::codes::{self, Verdict};

/// Whether `answer` asks for the lost-device path, and it is on.
pub(super) fn asked(config: &Config, answer: &[u8]) -> bool {
    config.lost_device.method == LostDeviceMethod::Email
        && answer.trim_ascii().eq_ignore_ascii_case(b"lost")
}

pub(super) fn run(
    env: &mut Env<'_>,
    req: &Request,
    user: &UserName,
    read_before: (UserSecret, secret::Version),
) -> Outcome {
    let Some(address) = outbox::user_email(env.config, user, read_before.0.email.as_ref()) else {
        // Not an answer this user can use: judged as the wrong code it is.
        let detail = "lost: no email address for the lost-device code".to_string();
        return match Judging::begin(env, req, user) {
            Ok(j) => j.fail(env, req, user, Failure::Code(Reason::BadCode, Some(detail))),
            Err(refused) => refused,
        };
    };
    let to = Destination::Email(address.clone());
    let valid = env.config.lost_device.valid;
    if let Err(refused) = sent_code::issue(
        env,
        req,
        user,
        &read_before.0,
        &to,
        Purpose::LostDevice,
        valid,
    ) {
        return refused;
    }
    let Some(answer) = env.conv.ask_hidden("Code from the email: ") else {
        return conversation_failed(env, req, user);
    };
    env.now = (env.clock)();

    // The mailed code, judged as any code is: counted first, under the lock.
    let mut judging = match Judging::begin(env, req, user) {
        Ok(j) => j,
        Err(refused) => return refused,
    };
    let current = match judge::current_secret(env, user, read_before) {
        Ok((s, _)) => s,
        Err((reason, why)) => {
            return judging.fail(env, req, user, Failure::Code(reason, Some(why)));
        }
    };
    let (verdict, hash) = match codes::normalize(&answer, env.config.codes.length) {
        None => (Verdict::Wrong, [0; 32]),
        Some(digits) => {
            let hash = codes::keyed_hash(&current.key, user, Purpose::LostDevice, &digits);
            let sent = judging.state().sent.as_ref();
            (
                codes::judge(sent, Purpose::LostDevice, &hash, env.now),
                hash,
            )
        }
    };
    match verdict {
        Verdict::Wrong => {
            return judging.fail(env, req, user, Failure::Code(Reason::BadCode, None));
        }
        Verdict::Expired => {
            return judging.fail(env, req, user, Failure::Code(Reason::Expired, None));
        }
        Verdict::Right => {}
    }
    // Spent: it leads to one new app, at this login. The attempt stays
    // counted until the new app's code succeeds.
    match judging.spend(Purpose::LostDevice, &hash) {
        Ok(true) => drop(judging),
        Ok(false) => {
            let detail = Some("the lost-device code was used meanwhile".to_string());
            return judging.fail(env, req, user, Failure::Code(Reason::BadCode, detail));
        }
        Err(e) => {
            drop(judging);
            return env.refuse_store(req, user, &e);
        }
    }
    let rec = env.record("lost_device", Severity::Notice, req);
    env.emit(rec);
    notify::event(
        env,
        Event::LostDevice,
        user,
        Some(&address),
        req,
        Some("login"),
        None,
    );
    enroll::set_up(env, req, user, SetUp::Replace(current.file))
}
