//! The code step (the module line without a mode word): who is asked, the
//! prompt, and the answer judged under the user's lock.
#![forbid(unsafe_code)]

use super::attempt::{self, Failure, Judging};
use super::identity::{self, UserGroups, Who};
use super::{Env, Outcome, Reason, Request, decoy, enroll, recovery};
use crate::audit::{Record, Severity};
use crate::config::{Config, Unenrolled};
use crate::lockout::{self, Standing};
use crate::policy::{self, Decision};
use crate::secret::{self, SecretError, UserSecret};
use crate::state::{self, Remembered};
use crate::totp::{self, Code};
use crate::user::UserName;

pub(super) fn run(env: &mut Env<'_>, req: &Request) -> Outcome {
    let Ok(typed) = UserName::parse_bytes(&req.user) else {
        return deny_after_prompt(env, req, Target::Invalid, Reason::BadUser, None);
    };
    // The secret file of the name as typed exists only if that is an
    // account's own name (identity.rs): then the account database is not
    // read. Otherwise the name is resolved, and the account's own file read.
    let mut loaded = secret::load_versioned(&env.config.secret_dir, &typed, &env.config.totp);
    let user = match &loaded {
        Err(SecretError::Missing | SecretError::Io(_)) => match identity::lookup(env, &typed) {
            Who::Account(account) => {
                if account != typed {
                    loaded =
                        secret::load_versioned(&env.config.secret_dir, &account, &env.config.totp);
                }
                account
            }
            // A user that does not exist is asked, then denied (the
            // contract); made-up names must not create state files.
            Who::Unknown | Who::Invalid => {
                return deny_after_prompt(env, req, Target::Unknown, Reason::BadUser, None);
            }
        },
        _ => typed,
    };
    let req = &req.for_account(&user);

    // A locked user is told at once and not asked, and never waved through
    // by the policy either; unless this attempt was counted by preauth
    // while the account was open.
    let state = match state::read(&env.config.state_dir, &user) {
        Ok(state) => state,
        Err(e) => return env.refuse_bad_state(req, &e),
    };
    if let Some(s) = &state
        && let Standing::Locked { until } = lockout::standing(&s.counters, env.now)
        && !attempt::holds_reservation(env, &user, s)
    {
        return env.refuse_locked(req, until);
    }

    // Who is asked. The default policy asks everyone, and then this costs
    // nothing: no group lookup, no file read.
    let mut always = false;
    if env.config.policy.is_active() {
        let remembered: &[Remembered] = state.as_ref().map_or(&[], |s| &s.remembered);
        let mut groups = UserGroups::new(env.accounts, &user);
        let console = req.rhost.is_empty() && identity::on_local_terminal(&req.tty);
        match policy::decide(
            &env.config.policy,
            &mut groups,
            &req.rhost,
            console,
            remembered,
            env.now,
        ) {
            Decision::Skip(reason) => {
                return skip(env, req, &user, reason.as_str());
            }
            Decision::Challenge { always: a } => {
                env.trace(req, || {
                    format!("policy: ask (always_challenge_groups member: {a})")
                });
                always = a;
            }
        }
    }

    // The volume that holds the secrets, if it is not mounted, must not
    // read as "nobody is enrolled" (nor serve stale files from under the
    // mount point).
    if let Err(why) = secret::check_marker(&env.config.secret_dir) {
        drop(loaded);
        return deny_after_prompt(
            env,
            req,
            Target::Account(&user),
            Reason::BadSecretFile,
            Some(why),
        );
    }

    // Read here to decide whether and how to ask; the answer is judged
    // against the file as it is after the prompt (check_answer).
    let read_before = match loaded {
        Ok(read) => {
            let (s, _) = &read;
            let (p, codes) = (s.params, s.file.recovery_codes.len());
            env.trace(req, || {
                format!(
                    "secret file read: {} digits, {} s, {}, skew {}, {codes} recovery codes",
                    p.digits,
                    p.period,
                    p.algorithm.as_str(),
                    p.skew
                )
            });
            read
        }
        Err(SecretError::Missing) => match env.config.unenrolled {
            // An always_challenge_groups member is not let through without
            // a code ("optional for everyone, required for admins"), nor
            // set up at login: someone holding only an administrator's
            // password must not enroll their own phone.
            Unenrolled::Allow if !always => {
                return skip(env, req, &user, "unenrolled");
            }
            Unenrolled::Enroll if enrollment_open(env.config, env.now) && !always => {
                return enroll::at_login(env, req, &user);
            }
            Unenrolled::Allow | Unenrolled::Deny | Unenrolled::Enroll => {
                return deny_after_prompt(env, req, Target::Account(&user), Reason::NoSecret, None);
            }
        },
        Err(e) => {
            return deny_after_prompt(
                env,
                req,
                Target::Account(&user),
                Reason::BadSecretFile,
                Some(e.to_string()),
            );
        }
    };

    let Some(answer) = env.ask_code() else {
        return conversation_failed(env, &user);
    };
    check_answer(env, req, &user, read_before, &answer)
}

/// The person went away at the prompt. A preauth reservation stays counted;
/// a lock it set off is recorded now, as no failure will record it.
fn conversation_failed(env: &mut Env<'_>, user: &UserName) -> Outcome {
    if let Some(r) = env.reservation.take()
        && r.user == *user
        && let Some(lock) = r.new_lock
    {
        env.emit(
            Record::new("locked", Severity::Warning)
                .with("user", user)
                .with("tier", lock.tier)
                .with("until", crate::audit::rfc3339(lock.until)),
        );
    }
    Outcome::ConversationFailed
}

/// Lets an existing account through without a code, records why, and gives
/// back the attempt's reservation.
fn skip(env: &mut Env<'_>, req: &Request, user: &UserName, reason: &str) -> Outcome {
    if let Err(refused) = attempt::give_back(env, req, user) {
        return refused;
    }
    let rec = env
        .record("skipped", Severity::Info, req)
        .with("reason", reason);
    env.emit(rec);
    Outcome::Success
}

/// Whether `unenrolled = "enroll"` still enrolls: before `policy.enroll_until`.
fn enrollment_open(config: &Config, now: u64) -> bool {
    config.policy.enroll_until.is_none_or(|until| {
        let until = until
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        now < until
    })
}

/// The remembered sources after a successful code login: this source added
/// or refreshed when `policy.remember` is on and the source is an address.
pub(super) fn remembered_after_success(
    env: &Env<'_>,
    req: &Request,
    current: &[Remembered],
) -> Vec<Remembered> {
    let remember = env.config.policy.remember.as_secs();
    if remember == 0 {
        return current.to_vec();
    }
    match policy::source_address(&req.rhost) {
        Some(addr) => policy::remember(current, addr, env.now, remember),
        None => current.to_vec(),
    }
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
            Target::Account(user) => conversation_failed(env, user),
            _ => Outcome::ConversationFailed,
        };
    };
    if let Some(decoy) = &decoy {
        decoy::check(&env.config.state_dir, decoy, env.now, &answer);
    }
    match target {
        Target::Account(user) => {
            return match Judging::begin(env, req, user) {
                Ok(judging) => judging.fail(env, req, user, Failure::Code(reason, detail)),
                Err(refused) => refused,
            };
        }
        Target::Unknown => state::decoy_write(&env.config.state_dir),
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

/// How an answer was accepted.
#[derive(Debug, Clone, Copy)]
enum Accepted {
    Totp {
        step_time: u64,
    },
    /// `left`: the user's recovery codes that remain.
    Recovery {
        left: usize,
    },
}

/// Judges the answer under the user's exclusive state lock, the attempt
/// counted first, so that parallel attempts are serialized: each sees the
/// failures of the ones before it, and none is judged once the tier's
/// allowance is used up.
fn check_answer(
    env: &mut Env<'_>,
    req: &Request,
    user: &UserName,
    read_before: (UserSecret, secret::Version),
    answer: &[u8],
) -> Outcome {
    let judging = match Judging::begin(env, req, user) {
        Ok(j) => j,
        Err(refused) => return refused,
    };
    // The answer is judged against the secret file as it is now, under the
    // lock, not as it was before the prompt: a reset or a re-enrollment (a
    // lost phone) made while someone sat at the prompt applies to their
    // answer too (tests/faults.rs).
    // An unchanged file (one lstat tells) is not read and parsed again.
    let (before, version) = read_before;
    let current = if secret::unchanged(&env.config.secret_dir, user, &version) {
        Ok(before)
    } else {
        drop(before);
        secret::load(&env.config.secret_dir, user, &env.config.totp).map_err(|e| match e {
            SecretError::Missing => (Reason::NoSecret, "removed during the attempt".to_string()),
            e => (Reason::BadSecretFile, e.to_string()),
        })
    };
    let mut detail = None;
    let last_step_time = judging.locked.state.last_step_time;
    let verdict = match &current {
        Err((reason, why)) => {
            detail = Some(why.clone());
            Err(*reason)
        }
        Ok(secret) => match Code::parse(answer, secret.params.digits) {
            None => Err(Reason::BadCode),
            Some(code) => match totp::matching_step(&secret.key, &secret.params, &code, env.now) {
                None => Err(Reason::BadCode),
                Some(step) => {
                    let step_time = step.saturating_mul(u64::from(secret.params.period));
                    if step_time <= last_step_time {
                        Err(Reason::Replay)
                    } else {
                        Ok(Accepted::Totp { step_time })
                    }
                }
            },
        },
    };
    // The message is built only under `debug`: this line runs on every attempt.
    let now = env.now;
    env.trace(req, || match (&verdict, &current) {
        (Ok(Accepted::Totp { step_time }), Ok(s)) => {
            let offset = (step_time / u64::from(s.params.period)) as i128
                - totp::step_of(now, s.params.period) as i128;
            format!(
                "answer: the code of step offset {offset} (skew window), later than the last accepted"
            )
        }
        (Err(Reason::Replay), _) => {
            "answer: a code of the window, but not later than the last accepted step".into()
        }
        (Err(Reason::BadCode), Ok(s)) if Code::parse(answer, s.params.digits).is_none() => {
            format!("answer: not {} digits", s.params.digits)
        }
        (Err(Reason::BadCode), _) => "answer: no step of the window has this code".into(),
        (Err(reason), _) => format!("answer: not judged ({})", reason.as_str()),
        (Ok(_), _) => "answer: accepted".into(),
    });
    // Not a code of the window: perhaps a recovery code. TOTP goes first, as
    // an 8-digit scratch code looks like an 8-digit TOTP code. Still under
    // the lock, so that parallel uses of one recovery code succeed once.
    let verdict = match (verdict, current) {
        (Err(Reason::BadCode), Ok(secret)) => {
            match recovery::use_code(env.config, user, secret, answer) {
                Ok(Some(left)) => Ok(Accepted::Recovery { left }),
                Ok(None) => Err(Reason::BadCode),
                Err((reason, why)) => {
                    detail = Some(why);
                    Err(reason)
                }
            }
        }
        (other, _) => other,
    };
    match verdict {
        Ok(accepted) => {
            let method = match accepted {
                Accepted::Totp { .. } => "totp",
                Accepted::Recovery { .. } => "recovery",
            };
            let remembered = remembered_after_success(env, req, &judging.locked.state.remembered);
            let now = env.now;
            // The step must be on disk before we answer, or the code could be
            // replayed after a crash.
            let written = judging.succeed(env, req, |next| state::UserState {
                last_step_time: match accepted {
                    Accepted::Totp { step_time } => step_time,
                    Accepted::Recovery { .. } => next.last_step_time,
                },
                last_success: now,
                remembered,
                ..next
            });
            if let Err(refused) = written {
                return refused;
            }
            if let Accepted::Recovery { left } = accepted {
                env.conv.info(&recovery::recovery_message(left));
            }
            let rec = env
                .record("auth_ok", Severity::Info, req)
                .with("tty", &req.tty)
                .with("method", method);
            env.emit(rec);
            Outcome::Success
        }
        Err(reason) => judging.fail(env, req, user, Failure::Code(reason, detail)),
    }
}
