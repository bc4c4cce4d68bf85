//! Counting before checking. Every attempt is counted as a failure before
//! its password or code is judged, under the user's exclusive state lock, so
//! that no number of parallel logins gets more passwords or codes judged than
//! the tiers allow, and an attempt whose failure cannot be recorded (a full
//! disk, the caller's file-size limit) is denied unjudged. A success gives
//! the count back (it resets the counters).
//!
//! - `preauth`, before the password module, counts the attempt durably and
//!   leaves a [`Reservation`] for the lines after it.
//! - `authfail` and the code step then judge that attempt without counting
//!   it again. Without a reservation (a stack with no `preauth` line, or a
//!   reset since), they count it themselves under the lock before judging:
//!   the failure is written first, and made durable with the outcome.
#![forbid(unsafe_code)]

use super::identity::{self, Who};
use super::{Env, Outcome, Reason, Request, Reservation};
use crate::audit::{Record, Severity};
use crate::delivery::Event;
use crate::lockout::{self, NewLock, Standing};
use crate::state::{self, UserState};
use crate::user::UserName;

/// `preauth`: refuses a locked user at once; otherwise counts this attempt
/// before the password is checked.
pub(super) fn preauth(env: &mut Env<'_>, req: &Request) -> Outcome {
    env.reservation = None;
    let user = match identity::resolve(env, req) {
        Who::Account(user) => user,
        Who::Invalid => {
            let rec = env
                .record("auth_fail", Severity::Notice, req)
                .with("tty", &req.tty)
                .with("reason", Reason::BadUser.as_str())
                .with("failures", 0);
            env.emit(rec);
            return Outcome::Denied;
        }
        Who::Unknown => {
            // The password module refuses names that are not accounts. No
            // state for them (a flood of made-up names must not fill the
            // disk), but the same durable write an account's reservation
            // costs, so that the time taken does not tell them apart.
            state::decoy_write(&env.config.state_dir);
            return Outcome::Success;
        }
    };
    let req = &req.for_account(&user);
    let mut locked = match lock_open(env, req, &user) {
        Ok(l) => l,
        Err(refused) => return refused,
    };
    let counted = count_one(env, &mut locked).and_then(|c| locked.sync().map(|()| c));
    let (failures, new_lock) = match counted {
        Ok(c) => c,
        Err(e) => {
            drop(locked);
            return env.refuse_bad_state(req, &e);
        }
    };
    env.reservation = Some(Reservation {
        user,
        epoch: locked.state.epoch,
        failures,
        new_lock,
    });
    Outcome::Success
}

/// Counts one failure in the locked state, written but not yet flushed: the
/// failures so far and the lock it set off.
fn count_one(
    env: &Env<'_>,
    locked: &mut state::Locked,
) -> Result<(u32, Option<NewLock>), state::StateError> {
    let (counters, new_lock) =
        lockout::record_failure(&locked.state.counters, env.now, &env.config.lockout.tiers);
    let next = UserState {
        counters,
        ..locked.state.clone()
    };
    locked.write(next)?;
    Ok((counters.failures, new_lock))
}

/// `authfail`: the password was wrong. Records the failure (counted already
/// if `preauth` reserved it) and denies.
pub(super) fn authfail(env: &mut Env<'_>, req: &Request) -> Outcome {
    let user = match identity::resolve(env, req) {
        Who::Account(user) => user,
        Who::Invalid | Who::Unknown => {
            // No state for names that are not accounts.
            env.reservation = None;
            let rec = env
                .record("password_fail", Severity::Notice, req)
                .with("tty", &req.tty)
                .with("failures", 0);
            env.emit(rec);
            return Outcome::Denied;
        }
    };
    let req = &req.for_account(&user);
    match Judging::begin(env, req, &user) {
        Ok(judging) => judging.fail(env, req, &user, Failure::Password),
        Err(refused) => refused,
    }
}

/// Takes the user's state lock. A user locked meanwhile is refused (not
/// evaluated, not counted), and so is a damaged state file.
pub(super) fn lock_open(
    env: &mut Env<'_>,
    req: &Request,
    user: &UserName,
) -> Result<state::Locked, Outcome> {
    let locked = match state::lock(&env.config.state_dir, user) {
        Ok(l) => l,
        Err(e) => return Err(env.refuse_bad_state(req, &e)),
    };
    if let Standing::Locked { until } = lockout::standing(&locked.state.counters, env.now) {
        drop(locked);
        return Err(env.refuse_locked(req, until));
    }
    Ok(locked)
}

/// Whether this attempt holds a reservation that still counts in `state`:
/// made for this user, in this epoch. Such an attempt is judged even if its
/// own reservation (or a parallel one) has since set off a lock: it was
/// counted while the account was open.
pub(super) fn holds_reservation(env: &Env<'_>, user: &UserName, state: &UserState) -> bool {
    env.reservation
        .as_ref()
        .is_some_and(|r| r.user == *user && r.epoch == state.epoch)
}

/// How an attempt was counted before it was judged.
enum Counted {
    /// By `preauth`, durably.
    Reserved(Reservation),
    /// Here, under the lock: written, made durable with the outcome.
    Here {
        failures: u32,
        new_lock: Option<NewLock>,
    },
}

/// What failed, for the record.
pub(super) enum Failure {
    /// `password_fail`.
    Password,
    /// `auth_fail` with its reason and detail.
    Code(Reason, Option<String>),
}

/// An attempt being judged under the user's exclusive state lock, already
/// counted as a failure.
pub(super) struct Judging {
    pub(super) locked: state::Locked,
    counted: Counted,
}

impl Judging {
    /// Takes the lock and makes sure the attempt is counted before anything
    /// is judged: by its reservation, or now. A locked user without a
    /// reservation is refused unjudged; so is an attempt whose failure
    /// cannot be written.
    pub(super) fn begin(
        env: &mut Env<'_>,
        req: &Request,
        user: &UserName,
    ) -> Result<Judging, Outcome> {
        let mut locked = match state::lock(&env.config.state_dir, user) {
            Ok(l) => l,
            Err(e) => return Err(env.refuse_bad_state(req, &e)),
        };
        if holds_reservation(env, user, &locked.state)
            && let Some(reservation) = env.reservation.take()
        {
            return Ok(Judging {
                locked,
                counted: Counted::Reserved(reservation),
            });
        }
        env.reservation = None;
        if let Standing::Locked { until } = lockout::standing(&locked.state.counters, env.now) {
            drop(locked);
            return Err(env.refuse_locked(req, until));
        }
        match count_one(env, &mut locked) {
            Ok((failures, new_lock)) => Ok(Judging {
                locked,
                counted: Counted::Here { failures, new_lock },
            }),
            Err(e) => {
                drop(locked);
                Err(env.refuse_bad_state(req, &e))
            }
        }
    }

    /// The attempt failed: its count stands, made durable if it is not yet,
    /// then recorded (and a lock it set off told).
    pub(super) fn fail(
        mut self,
        env: &mut Env<'_>,
        req: &Request,
        user: &UserName,
        failure: Failure,
    ) -> Outcome {
        let (failures, new_lock) = match self.counted {
            Counted::Reserved(r) => (r.failures, r.new_lock),
            Counted::Here { failures, new_lock } => {
                if let Err(e) = self.locked.sync() {
                    drop(self.locked);
                    return env.refuse_bad_state(req, &e);
                }
                (failures, new_lock)
            }
        };
        drop(self.locked);
        let rec = match failure {
            Failure::Password => env
                .record("password_fail", Severity::Notice, req)
                .with("tty", &req.tty)
                .with("failures", failures),
            Failure::Code(reason, detail) => {
                let mut rec = env
                    .record("auth_fail", Severity::Notice, req)
                    .with("tty", &req.tty)
                    .with("reason", reason.as_str())
                    .with("failures", failures);
                if let Some(detail) = detail {
                    rec = rec.with("detail", detail);
                }
                rec
            }
        };
        env.emit(rec);
        announce_lock(env, req, user, new_lock);
        Outcome::Denied
    }

    /// The attempt succeeded: the counters are reset (the attempt's count
    /// given back) and `change` applied, durably, before the module answers.
    pub(super) fn succeed(
        mut self,
        env: &mut Env<'_>,
        req: &Request,
        change: impl FnOnce(UserState) -> UserState,
    ) -> Result<(), Outcome> {
        let next = change(self.locked.state.reset());
        match self.locked.commit(next) {
            Ok(()) => Ok(()),
            Err(e) => {
                drop(self.locked);
                Err(env.refuse_bad_state(req, &e))
            }
        }
    }
}

/// A login let through without a code gives its reservation back: a right
/// password is a successful login, and must not leave a failure counted.
/// Without a reservation nothing is written.
pub(super) fn give_back(env: &mut Env<'_>, req: &Request, user: &UserName) -> Result<(), Outcome> {
    let Some(reservation) = env.reservation.take() else {
        return Ok(());
    };
    if reservation.user != *user {
        return Ok(());
    }
    let mut locked = match state::lock(&env.config.state_dir, user) {
        Ok(l) => l,
        Err(e) => return Err(env.refuse_bad_state(req, &e)),
    };
    if locked.state.epoch != reservation.epoch {
        return Ok(());
    }
    let next = locked.state.reset();
    locked
        .commit(next)
        .map_err(|e| env.refuse_bad_state(req, &e))
}

/// Records and tells a lock that a failure set off, and mails the notice.
pub(super) fn announce_lock(
    env: &mut Env<'_>,
    req: &Request,
    user: &UserName,
    new_lock: Option<NewLock>,
) {
    if let Some(lock) = new_lock {
        record_lock(env, req, user, lock);
        env.conv.error(&super::lock_message(lock.until, env.now));
    }
}

/// The `locked` record and notice of a lock.
pub(super) fn record_lock(env: &mut Env<'_>, req: &Request, user: &UserName, lock: NewLock) {
    env.emit(
        Record::new("locked", Severity::Warning)
            .with("user", user)
            .with("tier", lock.tier)
            .with("until", crate::audit::rfc3339(lock.until)),
    );
    super::notify::event(env, Event::Locked, user, None, req, None, Some(lock.until));
}
