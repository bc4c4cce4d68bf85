//! The code step (the module line without a mode word): who is asked, the
//! prompt, and the answer judged under the user's lock.
#![forbid(unsafe_code)]

use super::attempt::{self, Failure};
use super::identity::{self, UserGroups, Who};
use super::{Env, Outcome, Reason, Request, decoy, enroll, judge, lost_device, sent_code};
use crate::base::records::Severity;
use crate::base::user::UserName;
use crate::config::{Config, Unenrolled};
use crate::files::secret::{self, Method, SecretError};
use crate::files::state::{Remembered, UserState};
use crate::rules::lockout::{self, Standing};
use crate::rules::policy::{self, Decision};

pub(super) fn run(env: &mut Env<'_>, req: &Request) -> Outcome {
    // A code kept by `preauth single` is this user's only: if PAM_USER
    // changed since, it counts for nothing (and nothing is asked).
    if let Some(kept) = &mut env.kept
        && kept.user != req.user
    {
        kept.code = None;
    }
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
            // contract); made-up names must not create state files. Before
            // the prompt, the work an account's attempt does below: its
            // state read (with a shared store, the connection and a round
            // trip) and the secret_dir marker, on the decoy's. Without them
            // an unknown name's prompt came 0.4 ms sooner with a store (no
            // connection yet), and its result 0.3 ms later (tests/timing.rs).
            Who::Unknown | Who::Invalid => {
                let _ = env.store.read_decoy();
                let _ = secret::check_marker(&env.config.secret_dir);
                return deny_after_prompt(env, req, Target::Unknown, Reason::BadUser, None);
            }
        },
        _ => typed,
    };
    let req = &req.for_account(&user);

    // A locked user is told at once and not asked, and never waved through
    // by the policy either; unless this attempt was counted by preauth
    // while the account was open.
    let store = env.store;
    let state = match store.read(&user) {
        Ok(state) => state,
        Err(e) => return env.refuse_store(req, &user, &e),
    };
    if let Some(s) = &state
        && let Standing::Locked { until } = lockout::standing(&s.counters, env.now)
        && !attempt::holds_reservation(env, &user, s)
    {
        return env.refuse_locked(req, until);
    }

    let always = match decide(env, req, &user, state.as_ref()) {
        Decision::Skip(reason) => return skip(env, req, &user, reason.as_str()),
        Decision::Challenge { always } => always,
    };

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

    if read_before.0.method != Method::Totp {
        return sent_code::code_step(env, req, &user, read_before);
    }
    let Some(answer) = env.ask_code() else {
        return conversation_failed(env, req, &user);
    };
    if lost_device::asked(env.config, &answer) {
        return lost_device::run(env, req, &user, read_before);
    }
    judge::answer(
        env,
        req,
        &user,
        read_before,
        &answer,
        judge::Expecting::Totp { not_from: None },
    )
}

/// Who is asked. The default policy asks everyone, and then this costs
/// nothing: no group lookup, no file read.
pub(super) fn decide(
    env: &mut Env<'_>,
    req: &Request,
    user: &UserName,
    state: Option<&UserState>,
) -> Decision {
    if !env.config.policy.is_active() {
        return Decision::Challenge { always: false };
    }
    let remembered: &[Remembered] = state.map_or(&[], |s| &s.remembered);
    let mut groups = UserGroups::new(env.accounts, user);
    let console = req.rhost.is_empty() && identity::on_local_terminal(&req.tty);
    let decision = policy::decide(
        &env.config.policy,
        &mut groups,
        &req.rhost,
        console,
        remembered,
        env.now,
    );
    if let Decision::Challenge { always } = decision {
        env.trace(req, || {
            format!("policy: ask (always_challenge_groups member: {always})")
        });
    }
    decision
}

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
pub(super) fn enrollment_open(config: &Config, now: u64) -> bool {
    config.policy.enroll_until.is_none_or(|until| {
        let until = until
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        now < until
    })
}

/// The source to remember after a successful code login, for how long:
/// when `policy.remember` is on and the source is an address.
pub(super) fn remember(env: &Env<'_>, req: &Request) -> Option<(std::net::IpAddr, u64)> {
    let secs = env.config.policy.remember.as_secs();
    if secs == 0 {
        return None;
    }
    policy::source_address(&req.rhost).map(|addr| (addr, secs))
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
