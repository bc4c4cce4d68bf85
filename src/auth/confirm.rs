//! Confirming a change to one's own second factor (twostep-self): the
//! second half of the proof, after the password, judged exactly as the
//! code step judges a login, under the same lockout.
//!
//! The program counts the attempt before the password is checked
//! ([`super::Mode::Preauth`], which refuses a locked user), has PAM check
//! the password, records a wrong one ([`super::Mode::Authfail`]), and then
//! calls [`second_factor`] with the reservation still in the [`Env`]: an
//! enrolled user gives a current code (an app's, or one sent by email or
//! SMS) or a recovery code, judged by `judge` against that same count; a
//! user with no enrollment has proved all there is with the password, and
//! the count is given back, as a login let through without a code gives
//! it back. Nothing of the policy applies here: trusted networks,
//! remembered addresses and `console = "skip"` let a login through without
//! a code, never a change of the second factor.
#![forbid(unsafe_code)]

use super::attempt::{self, Failure, Judging};
use super::identity::UserGroups;
use super::{Accounts, Env, Outcome, Reason, Request, judge, sent_code};
use crate::base::user::UserName;
use crate::config::Config;
use crate::files::secret::{self, DeviceName, Held, Method, SecretError};
use crate::rules::lockout::{self, Standing};
use crate::rules::policy::Groups;

/// After a right password: asks an enrolled user for a current code or a
/// recovery code and judges it under the lockout (a failure counts, a
/// success resets the counters, a locked user is refused unasked); gives
/// the attempt's count back for a user with no enrollment. `Success`: the
/// change may go ahead, over the secret file `env.judged` names, no other.
/// `not_from`: an authenticator whose code does not confirm (its own
/// removal), while the user has another (`judge::Expecting::Totp`).
pub fn second_factor(
    env: &mut Env<'_>,
    req: &Request,
    user: &UserName,
    not_from: Option<&DeviceName>,
) -> Outcome {
    let req = &req.for_account(user);
    let store = env.store;
    match store.read(user) {
        Err(e) => return env.refuse_store(req, user, &e),
        Ok(Some(s)) => {
            if let Standing::Locked { until } = lockout::standing(&s.counters, env.now)
                && !attempt::holds_reservation(env, user, &s)
            {
                return env.refuse_locked(req, until);
            }
        }
        Ok(None) => {}
    }
    // Without its marker, secret_dir may be an unmounted volume: "no
    // enrollment" read there would let the password alone replace a
    // second factor that is only out of sight.
    if let Err(why) = secret::check_marker(&env.config.secret_dir) {
        return refuse_unasked(env, req, user, Reason::BadSecretFile, why);
    }
    let read_before = match secret::load_versioned(&env.config.secret_dir, user, &env.config.totp) {
        Ok(read) => read,
        Err(SecretError::Missing) => {
            return match attempt::give_back(env, req, user) {
                Ok(()) => {
                    env.judged = Some(Held::Absent);
                    Outcome::Success
                }
                Err(refused) => refused,
            };
        }
        Err(e) => return refuse_unasked(env, req, user, Reason::BadSecretFile, e.to_string()),
    };
    if read_before.0.method != Method::Totp {
        return sent_code::code_step(env, req, user, read_before);
    }
    let Some(answer) = env.ask_code() else {
        return super::refusal::conversation_failed(env, req, user);
    };
    let expecting = judge::Expecting::Totp { not_from };
    judge::answer(env, req, user, read_before, &answer, expecting)
}

/// A secret file that cannot be judged against: the attempt fails, counted
/// and recorded, and the user is told to see the administrator.
fn refuse_unasked(
    env: &mut Env<'_>,
    req: &Request,
    user: &UserName,
    reason: Reason,
    why: String,
) -> Outcome {
    env.conv.error(
        "Your second factor cannot be checked right now (its file is not in order). \
         Ask your administrator.",
    );
    match Judging::begin(env, req, user) {
        Ok(judging) => judging.fail(env, req, user, Failure::Code(reason, Some(why))),
        Err(refused) => refused,
    }
}

/// Whether `user` is a member of one of `policy.always_challenge_groups`,
/// whose members may never turn their second factor off. A failed lookup
/// is an error: the caller refuses.
pub fn always_challenged(
    config: &Config,
    accounts: &dyn Accounts,
    user: &UserName,
) -> Result<bool, String> {
    let groups = &config.policy.always_challenge_groups;
    if groups.is_empty() {
        return Ok(false);
    }
    UserGroups::new(accounts, user).in_any(groups)
}
