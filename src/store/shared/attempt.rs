//! A login's attempt on the shared store: counted by the server, and
//! judged in one script with its outcome.
#![forbid(unsafe_code)]

use super::super::valkey::{Reply, scripts};
use super::super::{
    Attempt, Committed, Counted, Failed, Held, Purpose, Refusal, StepKey, StoreError, Success,
    UserState,
};
use super::SharedStore;
use super::reply::{counted_from, garbled, held_arg, hex, int, purpose_digit, text};
use crate::base::user::UserName;

/// An attempt on the shared store. After a reserving `begin` (preauth) it is
/// counted already; otherwise (the code step, authfail) it is counted by
/// the server in the same script that records its outcome, so that a
/// login costs one round trip for its judgement, as the file store's
/// costs one flush. What it is judged against is the state read before
/// the prompt (or again after a send); the success script checks anew,
/// atomically, everything a success depends on.
pub(super) struct SharedAttempt<'a> {
    pub(super) store: &'a SharedStore,
    pub(super) user: UserName,
    pub(super) state: UserState,
    pub(super) counted: Option<Counted>,
    pub(super) tiers: String,
    pub(super) held: Option<Held>,
}

impl SharedAttempt<'_> {
    /// Counts the attempt now, if it is not yet. `Ok(Err(until))`: locked.
    pub(super) fn count(&mut self) -> Result<Result<Counted, u64>, StoreError> {
        if let Some(c) = self.counted {
            return Ok(Ok(c));
        }
        let key = self.store.key(self.user.as_str());
        let reply = self.store.run(
            &scripts::all().begin,
            &[&key],
            &[self.tiers.as_bytes(), held_arg(self.held).as_bytes()],
        )?;
        let Reply::Array(v) = reply else {
            return Err(garbled("a count"));
        };
        match v.first().and_then(text) {
            Some(b"locked") => Ok(Err(v
                .get(1)
                .and_then(int)
                .ok_or_else(|| garbled("a count"))?)),
            Some(b"open") => {
                let c = counted_from(&v).ok_or_else(|| garbled("a count"))?;
                self.counted = Some(c);
                Ok(Ok(c))
            }
            _ => Err(garbled("a count")),
        }
    }
}

impl Attempt for SharedAttempt<'_> {
    fn state(&self) -> &UserState {
        &self.state
    }

    fn counted(&self) -> Option<Counted> {
        self.counted
    }

    fn fail(mut self: Box<Self>) -> Result<Failed, StoreError> {
        Ok(match self.count()? {
            Ok(c) => Failed::Counted(c),
            Err(until) => Failed::Locked { until },
        })
    }

    fn succeed(self: Box<Self>, _now: u64, success: &Success) -> Result<Committed, StoreError> {
        let s = self.store;
        let key = s.key(self.user.as_str());
        let rkey = s.recovery_key(self.user.as_str());
        let step = success.step_time.map(|t| t.to_string()).unwrap_or_default();
        let device = match success.device {
            StepKey::Default => String::new(),
            StepKey::Named(id) => id.hex(),
        };
        let keep_steps = crate::files::state::MAX_DEVICE_STEPS.to_string();
        let (purpose, hash) = match &success.spend {
            Some((p, h)) => (purpose_digit(*p).to_vec(), hex(h)),
            None => (Vec::new(), String::new()),
        };
        let recovery = success.recovery.map(|d| hex(&d)).unwrap_or_default();
        let (addr, secs) = match success.remember {
            Some((a, secs)) => (a.to_string(), secs.to_string()),
            None => (String::new(), "0".into()),
        };
        let new_secret: &[u8] = if success.new_secret { b"1" } else { b"0" };
        let keep = crate::files::state::MAX_REMEMBERED.to_string();
        // Counted already (preauth): nothing to count here.
        let tiers = if self.counted.is_some() {
            String::new()
        } else {
            self.tiers.clone()
        };
        let held = held_arg(self.held);
        let reply = s.run(
            &scripts::all().succeed,
            &[&key, &rkey],
            &[
                step.as_bytes(),
                &purpose,
                hash.as_bytes(),
                recovery.as_bytes(),
                addr.as_bytes(),
                secs.as_bytes(),
                new_secret,
                keep.as_bytes(),
                tiers.as_bytes(),
                held.as_bytes(),
                device.as_bytes(),
                keep_steps.as_bytes(),
            ],
        )?;
        s.forget_snapshot();
        let Reply::Array(v) = reply else {
            return Err(garbled("a success"));
        };
        let why = match v.first().and_then(text) {
            Some(b"done") => {
                s.wait_for_replicas()?;
                return Ok(Committed::Done);
            }
            Some(b"locked") => {
                let until = v.get(1).and_then(int).ok_or_else(|| garbled("a success"))?;
                return Ok(Committed::Locked { until });
            }
            Some(b"replay") => Refusal::Replay,
            Some(b"gone") => Refusal::CodeGone,
            Some(b"expired") => Refusal::Expired,
            Some(b"used") => Refusal::RecoveryUsed,
            _ => return Err(garbled("a success")),
        };
        let counted = match self.counted {
            Some(c) => c,
            None => counted_from(&v).ok_or_else(|| garbled("a success"))?,
        };
        Ok(Committed::Refused { why, counted })
    }

    fn spend(&mut self, purpose: Purpose, hash: &[u8; 32]) -> Result<bool, StoreError> {
        if self.count()?.is_err() {
            return Ok(false);
        }
        let key = self.store.key(self.user.as_str());
        let reply = self.store.run(
            &scripts::all().spend,
            &[&key],
            &[purpose_digit(purpose), hex(hash).as_bytes()],
        )?;
        self.store.forget_snapshot();
        Ok(int(&reply) == Some(1))
    }
}
