//! Counting before checking. Every attempt is counted as a failure before
//! its password or code is judged, so that no number of parallel logins gets
//! more passwords or codes judged than the tiers allow, and an attempt whose
//! failure cannot be recorded (a full disk, the caller's file-size limit, a
//! store that does not answer) is denied unjudged. A success gives the count
//! back (it resets the counters).
//!
//! - `preauth`, before the password module, counts the attempt durably and
//!   leaves a [`Reservation`] for the lines after it.
//! - `authfail` and the code step then judge that attempt without counting
//!   it again. Without a reservation (a stack with no `preauth` line, or a
//!   reset since), they have the store count it before judging.
#![forbid(unsafe_code)]

use super::identity::{self, Who};
use super::{Env, Outcome, Reason, Request, Reservation};
use crate::base::records::{Record, Severity};
use crate::base::user::UserName;
use crate::delivery::Event;
use crate::rules::lockout::NewLock;
use crate::store::{
    Attempt, Begun, Committed, Counted, Failed, Held, Refusal, StoreError, Success, UserState,
};

/// `preauth`: refuses a locked user at once; otherwise counts this attempt
/// before the password is checked.
pub(super) fn preauth(env: &mut Env<'_>, req: &Request) -> Outcome {
    preauth_state(env, req).0
}

/// [`preauth`], and the state as the count left it (an account's counted
/// attempt only): what `preauth single` judges a code against, without
/// reading the state again.
pub(super) fn preauth_state(env: &mut Env<'_>, req: &Request) -> (Outcome, Option<UserState>) {
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
            return (Outcome::Denied, None);
        }
        Who::Unknown => {
            // The password module refuses names that are not accounts. No
            // state for them (a flood of made-up names must not fill the
            // disk), but the same cost an account's count has, so that the
            // time taken does not tell them apart.
            env.store.decoy(false);
            return (Outcome::Success, None);
        }
    };
    let req = &req.for_account(&user);
    let store = env.store;
    match store.begin(&user, env.now, &env.config.lockout.tiers, None, true) {
        Err(e) => (env.refuse_store(req, &user, &e), None),
        Ok(Begun::Locked { until }) => (env.refuse_locked(req, until), None),
        Ok(Begun::Open(attempt)) => {
            // A reserving begin has counted the attempt.
            let Some(counted) = attempt.counted() else {
                let e = StoreError::Unavailable {
                    reason: "protocol",
                    detail: "the store did not count the attempt".into(),
                };
                return (env.refuse_store(req, &user, &e), None);
            };
            let state = attempt.state().clone();
            drop(attempt);
            env.reservation = Some(Reservation {
                user,
                epoch: counted.epoch,
                failures: counted.failures,
                new_lock: counted.new_lock,
                origin: store.origin(),
            });
            (Outcome::Success, Some(state))
        }
    }
}

/// `authfail`: the password was wrong. Records the failure (counted already
/// if `preauth` reserved it) and denies.
pub(super) fn authfail(env: &mut Env<'_>, req: &Request) -> Outcome {
    let user = match identity::resolve(env, req) {
        Who::Account(user) => user,
        who @ (Who::Invalid | Who::Unknown) => {
            // No state for names that are not accounts, but for a plausible
            // one the flush an account's failure costs here (its count,
            // written by preauth or now, is flushed with the failure), so
            // that the time taken does not tell them apart.
            if matches!(who, Who::Unknown) {
                env.store.decoy(true);
            }
            env.reservation = None;
            let rec = env
                .record("password_fail", Severity::Notice, req)
                .with("tty", &req.tty)
                .with("failures", 0);
            env.emit(rec);
            return Outcome::Denied;
        }
    };
    let failure = kept_failure(env, req);
    let req = &req.for_account(&user);
    fail_unjudged(env, req, &user, failure)
}

/// What `authfail` records after a one-answer attempt: the password's
/// failure, or the code's when the password module was never given the
/// password.
fn kept_failure(env: &Env<'_>, req: &Request) -> Failure {
    match &env.kept {
        Some(kept) if kept.user == req.user && !kept.password_handed && kept.replayed => {
            Failure::Code(
                Reason::Replay,
                Some("one answer: its code was used already; the password was not checked".into()),
            )
        }
        Some(kept) if kept.user == req.user && !kept.password_handed => Failure::Code(
            Reason::BadCode,
            Some("one answer: no good code in it; the password was not checked".into()),
        ),
        _ => Failure::Password,
    }
}

/// An attempt that fails without an answer to judge: counted (by its
/// reservation, or now), recorded, denied.
pub(super) fn fail_unjudged(
    env: &mut Env<'_>,
    req: &Request,
    user: &UserName,
    failure: Failure,
) -> Outcome {
    match Judging::begin(env, req, user) {
        Ok(judging) => judging.fail(env, req, user, failure),
        Err(refused) => refused,
    }
}

/// The reservation this attempt holds for `user`, if any, as the store
/// knows it.
pub(super) fn held(env: &Env<'_>, user: &UserName) -> Option<Held> {
    env.reservation
        .as_ref()
        .filter(|r| r.user == *user)
        .map(Reservation::held)
}

/// Whether this attempt holds a reservation that still counts in `state`.
/// Such an attempt is judged even if its own reservation (or a parallel
/// one) has since set off a lock: it was counted while the account was
/// open.
pub(super) fn holds_reservation(env: &Env<'_>, user: &UserName, state: &UserState) -> bool {
    held(env, user).is_some_and(|h| h.origin == env.store.origin() && h.epoch == state.epoch)
}

/// What failed, for the record.
pub(super) enum Failure {
    /// `password_fail`.
    Password,
    /// `auth_fail` with its reason and detail.
    Code(Reason, Option<String>),
}

/// An attempt open for judging, counted before its outcome is known (see
/// `store::Attempt`). With the file store it holds the user's exclusive
/// lock until it ends.
pub(super) struct Judging<'a> {
    attempt: Box<dyn Attempt + 'a>,
    /// The reservation `preauth` made for it, if the store may count on it.
    reservation: Option<Reservation>,
}

impl<'a> Judging<'a> {
    /// Makes sure the attempt is counted before anything is judged: by its
    /// reservation, or now. A locked user without a reservation is refused
    /// unjudged; so is an attempt whose failure cannot be recorded.
    pub(super) fn begin(
        env: &mut Env<'a>,
        req: &Request,
        user: &UserName,
    ) -> Result<Judging<'a>, Outcome> {
        let reservation = env.reservation.take().filter(|r| r.user == *user);
        let held = reservation.as_ref().map(Reservation::held);
        let store = env.store;
        let attempt = match store.begin(user, env.now, &env.config.lockout.tiers, held, false) {
            Ok(Begun::Open(a)) => a,
            Ok(Begun::Locked { until }) => return Err(env.refuse_locked(req, until)),
            Err(e) => return Err(env.refuse_store(req, user, &e)),
        };
        Ok(Judging {
            attempt,
            reservation,
        })
    }

    /// The failures counted and the lock the count set off, as the records
    /// tell them: the reservation's, if the attempt was counted by it.
    fn told_by(reservation: Option<&Reservation>, counted: Counted) -> (u32, Option<NewLock>) {
        match (reservation, counted.reserved) {
            (Some(r), true) => (r.failures, r.new_lock),
            _ => (counted.failures, counted.new_lock),
        }
    }

    /// The state as of the count: what the answer is judged against.
    pub(super) fn state(&self) -> &UserState {
        self.attempt.state()
    }

    /// Spends the sent code of `purpose` if it is still `hash`; the attempt
    /// goes on (see `Attempt::spend`).
    pub(super) fn spend(
        &mut self,
        purpose: crate::store::Purpose,
        hash: &[u8; 32],
    ) -> Result<bool, StoreError> {
        self.attempt.spend(purpose, hash)
    }

    /// The attempt failed: its count stands, made durable, then recorded
    /// (and a lock it set off told).
    pub(super) fn fail(
        self,
        env: &mut Env<'_>,
        req: &Request,
        user: &UserName,
        failure: Failure,
    ) -> Outcome {
        let reservation = self.reservation.clone();
        let told = |c: Counted| Judging::told_by(reservation.as_ref(), c);
        match self.attempt.fail() {
            Ok(Failed::Counted(c)) => {
                let (failures, new_lock) = told(c);
                record_failure(env, req, user, failure, failures, new_lock)
            }
            Ok(Failed::Locked { until }) => env.refuse_locked(req, until),
            Err(e) => env.refuse_store(req, user, &e),
        }
    }

    /// The attempt succeeded: the counters are reset (the count given back)
    /// and `success` applied, durably, before the module answers. If what it
    /// depends on was used meanwhile (the step, the sent code, the recovery
    /// code: another attempt, another host), it is a failure after all.
    pub(super) fn succeed(
        self,
        env: &mut Env<'_>,
        req: &Request,
        user: &UserName,
        success: &Success,
    ) -> Result<(), Outcome> {
        let reservation = self.reservation.clone();
        let meanwhile = "used meanwhile by another attempt";
        let (reason, detail, counted) = match self.attempt.succeed(env.now, success) {
            Ok(Committed::Done) => return Ok(()),
            Ok(Committed::Locked { until }) => return Err(env.refuse_locked(req, until)),
            Ok(Committed::Refused { why, counted }) => match why {
                Refusal::Replay => (Reason::Replay, meanwhile, counted),
                Refusal::Expired => (
                    Reason::Expired,
                    "past its expiry by the store's clock",
                    counted,
                ),
                Refusal::CodeGone | Refusal::RecoveryUsed => (Reason::BadCode, meanwhile, counted),
            },
            Err(e) => return Err(env.refuse_store(req, user, &e)),
        };
        let (failures, new_lock) = Judging::told_by(reservation.as_ref(), counted);
        let detail = Some(detail.to_string());
        Err(record_failure(
            env,
            req,
            user,
            Failure::Code(reason, detail),
            failures,
            new_lock,
        ))
    }
}

/// The records of a counted failure, and the lock it set off told.
fn record_failure(
    env: &mut Env<'_>,
    req: &Request,
    user: &UserName,
    failure: Failure,
    failures: u32,
    new_lock: Option<NewLock>,
) -> Outcome {
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

/// A login let through without a code gives its reservation back: a right
/// password is a successful login, and must not leave a failure counted.
/// Without a reservation nothing is written.
pub(super) fn give_back(env: &mut Env<'_>, req: &Request, user: &UserName) -> Result<(), Outcome> {
    let Some(held) = held(env, user) else {
        return Ok(());
    };
    env.reservation = None;
    let store = env.store;
    store
        .give_back(user, held)
        .map_err(|e| env.refuse_store(req, user, &e))
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
            .with("until", crate::base::records::rfc3339(lock.until)),
    );
    super::notify::event(env, Event::Locked, user, None, req, None, Some(lock.until));
}
