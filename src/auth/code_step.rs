//! The code step (the module line without a mode word): who is asked, the
//! prompt, and the answer judged under the user's lock.
#![forbid(unsafe_code)]

use super::asked::{decide, enrollment_open};
use super::attempt;
use super::identity::{self, Who};
use super::refusal::{Target, conversation_failed, deny_after_prompt};
use super::{Env, Outcome, Reason, Request, enroll, judge, lost_device, sent_code};
use crate::base::records::Severity;
use crate::base::user::UserName;
use crate::config::Unenrolled;
use crate::files::secret::{self, Method, SecretError};
use crate::rules::lockout::{self, Standing};
use crate::rules::policy::Decision;

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
