//! The store in this host's `state_dir`: one file per user (`crate::files::state`:
//! two checksummed slots, updated in place). Each operation holds the file's
//! exclusive lock from its read to its write; an attempt holds it from its
//! count until it fails or succeeds, so its judgement is serialized with
//! every other attempt on the user.
#![forbid(unsafe_code)]

use super::{
    Attempt, Begun, Committed, Counted, Failed, Held, Issued, NewCode, Origin, Purpose, Refusal,
    Sendable, StepKey, Store, StoreError, Success, UserState,
};
use crate::base::user::UserName;
use crate::config::{Codes, Tier};
use crate::files::state::{self, Locked, StateError};
use crate::rules::codes::{self, Allowance, Plan};
use crate::rules::lockout::{self, Standing};
use crate::rules::policy;
use std::path::{Path, PathBuf};

pub struct FileStore {
    pub state_dir: PathBuf,
}

impl FileStore {
    pub fn new(state_dir: &Path) -> FileStore {
        FileStore {
            state_dir: state_dir.to_path_buf(),
        }
    }

    fn lock(&self, user: &UserName) -> Result<Locked, StoreError> {
        Ok(state::lock(&self.state_dir, user)?)
    }
}

/// Whether `held` still counts in `state`: made in this store, same epoch,
/// no reset since.
fn still_counts(held: Option<Held>, state: &UserState) -> bool {
    held.is_some_and(|h| h.origin == Origin::Local && h.epoch == state.epoch)
}

/// An attempt on a locked file.
struct FileAttempt {
    locked: Locked,
    counted: Counted,
    /// The count is written but not yet flushed.
    unsynced: bool,
}

impl Attempt for FileAttempt {
    fn state(&self) -> &UserState {
        &self.locked.state
    }

    fn counted(&self) -> Option<Counted> {
        Some(self.counted)
    }

    fn fail(mut self: Box<Self>) -> Result<Failed, StoreError> {
        self.fail_durably()?;
        Ok(Failed::Counted(self.counted))
    }

    fn succeed(mut self: Box<Self>, now: u64, success: &Success) -> Result<Committed, StoreError> {
        let current = &self.locked.state;
        if let Some(step_time) = success.step_time
            && step_time <= current.step_of(success.device)
            && !success.new_secret
        {
            self.fail_durably()?;
            return Ok(self.refused(Refusal::Replay));
        }
        if let Some((purpose, hash)) = &success.spend
            && !current
                .sent
                .as_ref()
                .is_some_and(|s| s.purpose == *purpose && s.hash == *hash)
        {
            self.fail_durably()?;
            return Ok(self.refused(Refusal::CodeGone));
        }
        // A recovery code is struck from this host's secret file under
        // this lock before the success is committed (auth::recovery): here
        // there is nothing more to check.
        let next = apply(current.reset(), now, success);
        self.locked.commit(next)?;
        Ok(Committed::Done)
    }

    fn spend(&mut self, purpose: Purpose, hash: &[u8; 32]) -> Result<bool, StoreError> {
        let current = &self.locked.state;
        if !current
            .sent
            .as_ref()
            .is_some_and(|s| s.purpose == purpose && s.hash == *hash)
        {
            return Ok(false);
        }
        let next = UserState {
            sent: None,
            ..current.clone()
        };
        self.locked.commit(next)?;
        self.unsynced = false;
        Ok(true)
    }
}

impl FileAttempt {
    fn refused(&self, why: Refusal) -> Committed {
        Committed::Refused {
            why,
            counted: self.counted,
        }
    }

    fn fail_durably(&mut self) -> Result<(), StoreError> {
        if self.unsynced {
            self.locked.sync()?;
        }
        Ok(())
    }
}

/// `state` with `key`'s step moved on to `step_time` ([`Store::mark_used`]).
pub fn marked_used(state: &UserState, key: StepKey, step_time: u64, new_secret: bool) -> UserState {
    let mut next = state.clone();
    if new_secret {
        next.remembered.clear();
        next.device_steps.clear();
    }
    next.accept_step(key, step_time);
    next
}

/// The state after a success: `reset` (counters cleared, a new epoch) with
/// `success` applied.
pub fn apply(reset: UserState, now: u64, success: &Success) -> UserState {
    let remembered = if success.new_secret {
        Vec::new()
    } else {
        reset.remembered.clone()
    };
    let remembered = match success.remember {
        Some((addr, secs)) => policy::remember(&remembered, addr, now, secs),
        None => remembered,
    };
    let mut next = UserState {
        // A new secret replaces every authenticator: their steps go too.
        device_steps: if success.new_secret {
            Vec::new()
        } else {
            reset.device_steps.clone()
        },
        last_success: now,
        sent: if success.spend.is_some() {
            None
        } else {
            reset.sent.clone()
        },
        remembered,
        ..reset
    };
    if let Some(t) = success.step_time {
        next.accept_step(success.device, t);
    }
    next
}

impl Store for FileStore {
    fn origin(&self) -> Origin {
        Origin::Local
    }

    fn read(&self, user: &UserName) -> Result<Option<UserState>, StoreError> {
        Ok(state::read(&self.state_dir, user)?)
    }

    fn begin<'a>(
        &'a self,
        user: &UserName,
        now: u64,
        tiers: &[Tier],
        held: Option<Held>,
        _reserve: bool,
    ) -> Result<Begun<'a>, StoreError> {
        let mut locked = self.lock(user)?;
        if still_counts(held, &locked.state) {
            let counted = Counted {
                failures: locked.state.counters.failures,
                new_lock: None,
                epoch: locked.state.epoch,
                reserved: true,
            };
            // preauth wrote the reservation and did not flush it: whatever
            // this attempt ends in is flushed, and the reservation with it.
            return Ok(Begun::Open(Box::new(FileAttempt {
                locked,
                counted,
                unsynced: true,
            })));
        }
        if let Standing::Locked { until } = lockout::standing(&locked.state.counters, now) {
            return Ok(Begun::Locked { until });
        }
        let (counters, new_lock) = lockout::record_failure(&locked.state.counters, now, tiers);
        let next = UserState {
            counters,
            ..locked.state.clone()
        };
        // Written, not flushed: the outcome is flushed with it (preauth's
        // reservation: by authfail or the code step; Store::begin says why).
        locked.write(next)?;
        let counted = Counted {
            failures: counters.failures,
            new_lock,
            epoch: locked.state.epoch,
            reserved: false,
        };
        Ok(Begun::Open(Box::new(FileAttempt {
            locked,
            counted,
            unsynced: true,
        })))
    }

    fn give_back(&self, user: &UserName, held: Held) -> Result<(), StoreError> {
        let mut locked = self.lock(user)?;
        if locked.state.epoch != held.epoch {
            return Ok(());
        }
        let next = locked.state.reset();
        Ok(locked.commit(next)?)
    }

    fn issue(
        &self,
        user: &UserName,
        now: u64,
        code: &NewCode,
        codes: &Codes,
        held: Option<Held>,
    ) -> Result<Issued, StoreError> {
        let mut locked = self.lock(user)?;
        if let Standing::Locked { until } = lockout::standing(&locked.state.counters, now)
            && !still_counts(held, &locked.state)
        {
            return Ok(Issued::Locked { until });
        }
        let plan = codes::plan(&locked.state, code.purpose, now, codes);
        if plan == Plan::Send {
            let next = codes::after_send(&locked.state, code.purpose, code.hash, now, code.valid);
            locked.commit(next)?;
        }
        Ok(Issued::Planned(plan))
    }

    fn count_send(
        &self,
        user: &UserName,
        destination: &str,
        now: u64,
        codes: &Codes,
    ) -> Result<Sendable, StoreError> {
        // Always the user first, then the destination: no two of these
        // wait on each other.
        let mut mine = self.lock(user)?;
        let gap = codes.resend_after.as_secs();
        let allowed = codes::allowance(&mine.state.sends, now, codes.max_per_hour, gap);
        if allowed != Allowance::Send {
            return Ok(Sendable::User(allowed));
        }
        let mut theirs = state::lock_destination(&self.state_dir, destination)?;
        match codes::allowance(&theirs.state.sends, now, codes.max_per_hour, 0) {
            Allowance::Send => {}
            Allowance::TooSoon { until } | Allowance::Throttled { until } => {
                return Ok(Sendable::Destination { until });
            }
        }
        let counted = codes::with_send(&theirs.state, now);
        theirs.commit(counted)?;
        let counted = codes::with_send(&mine.state, now);
        mine.commit(counted)?;
        Ok(Sendable::Yes)
    }

    fn lock_notice(
        &self,
        user: &UserName,
        now: u64,
        min_interval: u64,
    ) -> Result<Option<u32>, StoreError> {
        let mut locked = self.lock(user)?;
        let (next, mailed) = codes::lock_notice(&locked.state, now, min_interval);
        locked.commit(next)?;
        Ok(mailed)
    }

    fn note_source(
        &self,
        user: &UserName,
        addr: std::net::IpAddr,
        now: u64,
        window: u64,
    ) -> Result<policy::Source, StoreError> {
        let mut locked = self.lock(user)?;
        let (remembered, source) = policy::note_source(&locked.state.remembered, addr, now, window);
        if let Some(remembered) = remembered {
            let next = UserState {
                remembered,
                ..locked.state.clone()
            };
            locked.commit(next)?;
        }
        Ok(source)
    }

    fn withdraw(&self, user: &UserName, hash: &[u8; 32]) -> Result<(), StoreError> {
        let mut locked = self.lock(user)?;
        if locked.state.sent.as_ref().is_some_and(|s| s.hash == *hash) {
            let next = UserState {
                sent: None,
                ..locked.state.clone()
            };
            locked.commit(next)?;
        }
        Ok(())
    }

    fn read_decoy(&self) -> Result<(), StoreError> {
        Ok(state::decoy_read(&self.state_dir)?)
    }

    fn decoy(&self, flush: bool) {
        state::decoy_write(&self.state_dir, flush);
    }

    fn unlock(&self, user: &UserName, future_beyond: u64) -> Result<Option<u64>, StoreError> {
        let mut cleared = None;
        match state::update(&self.state_dir, user, |s| {
            let mut next = s.reset();
            if s.last_step_time > future_beyond {
                cleared = Some(s.last_step_time);
                next.last_step_time = 0;
            }
            // Named authenticators' steps in the future go the same way.
            for d in s
                .device_steps
                .iter()
                .filter(|d| d.step_time > future_beyond)
            {
                cleared = Some(cleared.map_or(d.step_time, |c: u64| c.max(d.step_time)));
            }
            next.device_steps.retain(|d| d.step_time <= future_beyond);
            next
        }) {
            Ok(_) => Ok(cleared),
            Err(e) => Err(e.into()),
        }
    }

    fn mark_used(
        &self,
        user: &UserName,
        key: StepKey,
        step_time: u64,
        new_secret: bool,
    ) -> Result<(), StoreError> {
        state::update(&self.state_dir, user, |s| {
            marked_used(s, key, step_time, new_secret)
        })?;
        Ok(())
    }

    fn forget(&self, user: &UserName) -> Result<bool, StoreError> {
        let path = state::path_for(&self.state_dir, user);
        crate::files::fsutil::remove_durably(&self.state_dir, &path)
            .map_err(|e| StoreError::State(StateError::Io(e)))
    }

    fn users(&self) -> Result<Vec<String>, StoreError> {
        let entries = match std::fs::read_dir(&self.state_dir) {
            Ok(e) => e,
            // No state_dir: no state (status says what else is wrong).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::State(StateError::Io(e))),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| UserName::parse(n).is_ok())
            .collect();
        names.sort();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Tier;
    use std::time::Duration;

    fn scratch(name: &str) -> FileStore {
        let dir = std::env::temp_dir().join(format!("twostep-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        FileStore::new(&dir)
    }

    fn open(b: Begun<'_>) -> Box<dyn Attempt + '_> {
        match b {
            Begun::Open(a) => a,
            Begun::Locked { until } => panic!("locked until {until}"),
        }
    }

    #[test]
    fn an_attempt_is_counted_then_given_back_or_kept() {
        let store = scratch("attempt");
        let user = UserName::parse("alice").unwrap();
        let tiers = [Tier {
            failures: 2,
            lock: Duration::from_secs(60),
        }];
        // Counted, then failed: one failure.
        let a = open(store.begin(&user, 100, &tiers, None, false).unwrap());
        let counted = a.counted().unwrap();
        assert_eq!((counted.failures, counted.reserved), (1, false));
        a.fail().unwrap();
        // Counted durably (preauth), then judged by its reservation: not
        // counted again, and a lock it set off does not stop it.
        let a = open(store.begin(&user, 101, &tiers, None, true).unwrap());
        let counted = a.counted().unwrap();
        let held = Held {
            epoch: counted.epoch,
            origin: Origin::Local,
        };
        assert!(counted.new_lock.is_some());
        drop(a);
        let b = open(store.begin(&user, 102, &tiers, Some(held), false).unwrap());
        let counted = b.counted().unwrap();
        assert_eq!((counted.failures, counted.reserved), (2, true));
        // A replayed step is no success, and the count stands.
        let success = Success {
            step_time: Some(0),
            ..Success::default()
        };
        assert!(matches!(
            b.succeed(103, &success).unwrap(),
            Committed::Refused {
                why: Refusal::Replay,
                ..
            }
        ));
        // Without the reservation the user is locked now.
        assert!(matches!(
            store.begin(&user, 104, &tiers, None, false).unwrap(),
            Begun::Locked { until: 161 }
        ));
        // An unlock, then a success resets all and remembers the step.
        assert_eq!(store.unlock(&user, u64::MAX).unwrap(), None);
        let c = open(store.begin(&user, 105, &tiers, None, false).unwrap());
        let success = Success {
            step_time: Some(90),
            ..Success::default()
        };
        assert_eq!(c.succeed(105, &success).unwrap(), Committed::Done);
        let s = store.read(&user).unwrap().unwrap();
        assert_eq!(
            (s.counters.failures, s.last_step_time, s.last_success),
            (0, 90, 105)
        );
        // A reservation from before that reset is counted again.
        let d = open(store.begin(&user, 106, &tiers, Some(held), false).unwrap());
        let counted = d.counted().unwrap();
        assert_eq!((counted.failures, counted.reserved), (1, false));
        d.fail().unwrap();
        std::fs::remove_dir_all(&store.state_dir).unwrap();
    }
}
