//! `store.on_unavailable = "local"`: an operation the shared store cannot do
//! (no answer in time, refused) is done in this host's `state_dir` instead,
//! and logged as `store_unavailable ... fallback=local`. Once fallen back,
//! the rest of the module call stays local, so that one attempt's count and
//! judgement are in the same place.
//!
//! What it trades: while the store is away, each host counts and remembers
//! on its own (as without a store), so lockout, replay and throttles hold
//! per host only. `"deny"` (the default) keeps them fleet-wide by refusing
//! logins instead. Only an outage (no answer in time, no connection, a
//! refusal or garbled reply from the server) falls back; TLS, credential
//! and configuration faults deny.
#![forbid(unsafe_code)]

use super::file::FileStore;
use super::shared::SharedStore;
use super::{
    Begun, Held, Issued, NewCode, Origin, Sendable, StepKey, Store, StoreError, UserState,
};
use crate::base::records::{Record, Severity, Sink, Syslog};
use crate::base::user::UserName;
use crate::config::{Codes, Tier};
use std::cell::Cell;
use std::path::{Path, PathBuf};

pub struct Fallback {
    shared: SharedStore,
    local: FileStore,
    log_socket: PathBuf,
    fell: Cell<bool>,
}

impl Fallback {
    pub fn new(shared: SharedStore, local: FileStore, log_socket: &Path) -> Fallback {
        Fallback {
            shared,
            local,
            log_socket: log_socket.to_path_buf(),
            fell: Cell::new(false),
        }
    }

    /// Which store to use now, given the shared one's answer to `first`.
    /// Only an outage falls back: a certificate refused, credentials
    /// refused or a configuration that cannot work are faults that a
    /// working deployment never has, and someone between the host and the
    /// store can cause the first. Falling back on them would end the
    /// fleet-wide guarantees quietly and for good (each host then allows
    /// the whole tier); they deny, as with `"deny"`.
    fn fall_back(&self, user: &str, err: &StoreError) -> bool {
        let StoreError::Unavailable { reason, detail } = err else {
            return false;
        };
        if matches!(*reason, "tls" | "auth" | "config") {
            return false;
        }
        Syslog {
            socket: &self.log_socket,
            tag: "pam_twostep",
        }
        .emit(
            Record::new("store_unavailable", Severity::Warning)
                .with("user", user)
                .with("reason", *reason)
                .with("fallback", "local")
                .with("detail", detail),
        );
        self.fell.set(true);
        true
    }
}

/// Tries the shared store unless fallen back already; on `Unavailable`,
/// logs, falls back, and does it locally.
macro_rules! either {
    ($self:ident, $user:expr, |$s:ident| $call:expr) => {{
        if $self.fell.get() {
            let $s = &$self.local;
            $call
        } else {
            let first = {
                let $s = &$self.shared;
                $call
            };
            match first {
                Err(e) if $self.fall_back($user, &e) => {
                    let $s = &$self.local;
                    $call
                }
                other => other,
            }
        }
    }};
}

impl Store for Fallback {
    fn origin(&self) -> Origin {
        if self.fell.get() {
            Origin::Local
        } else {
            Origin::Shared
        }
    }

    fn read(&self, user: &UserName) -> Result<Option<UserState>, StoreError> {
        either!(self, user.as_str(), |s| s.read(user))
    }

    fn begin<'a>(
        &'a self,
        user: &UserName,
        now: u64,
        tiers: &[Tier],
        held: Option<Held>,
        reserve: bool,
    ) -> Result<Begun<'a>, StoreError> {
        either!(self, user.as_str(), |s| s
            .begin(user, now, tiers, held, reserve))
    }

    fn mark_used(
        &self,
        user: &UserName,
        key: StepKey,
        step_time: u64,
        new_secret: bool,
    ) -> Result<(), StoreError> {
        either!(self, user.as_str(), |s| s
            .mark_used(user, key, step_time, new_secret))
    }

    fn give_back(&self, user: &UserName, held: Held) -> Result<(), StoreError> {
        either!(self, user.as_str(), |s| s.give_back(user, held))
    }

    fn issue(
        &self,
        user: &UserName,
        now: u64,
        code: &NewCode,
        codes: &Codes,
        held: Option<Held>,
    ) -> Result<Issued, StoreError> {
        either!(self, user.as_str(), |s| s
            .issue(user, now, code, codes, held))
    }

    fn count_send(
        &self,
        user: &UserName,
        destination: &str,
        now: u64,
        codes: &Codes,
    ) -> Result<Sendable, StoreError> {
        either!(self, user.as_str(), |s| s.count_send(
            user,
            destination,
            now,
            codes
        ))
    }

    fn lock_notice(
        &self,
        user: &UserName,
        now: u64,
        min_interval: u64,
    ) -> Result<Option<u32>, StoreError> {
        either!(self, user.as_str(), |s| s.lock_notice(
            user,
            now,
            min_interval
        ))
    }

    fn note_source(
        &self,
        user: &UserName,
        addr: std::net::IpAddr,
        now: u64,
        window: u64,
    ) -> Result<crate::rules::policy::Source, StoreError> {
        either!(self, user.as_str(), |s| s
            .note_source(user, addr, now, window))
    }

    fn withdraw(&self, user: &UserName, hash: &[u8; 32]) -> Result<(), StoreError> {
        either!(self, user.as_str(), |s| s.withdraw(user, hash))
    }

    fn read_decoy(&self) -> Result<(), StoreError> {
        either!(self, "", |s| s.read_decoy())
    }

    fn decoy(&self, flush: bool) {
        if self.fell.get() {
            self.local.decoy(flush);
        } else {
            self.shared.decoy(flush);
        }
    }

    fn unlock(&self, user: &UserName, future_beyond: u64) -> Result<Option<u64>, StoreError> {
        either!(self, user.as_str(), |s| s.unlock(user, future_beyond))
    }

    fn forget(&self, user: &UserName) -> Result<bool, StoreError> {
        either!(self, user.as_str(), |s| s.forget(user))
    }

    fn users(&self) -> Result<Vec<String>, StoreError> {
        either!(self, "", |s| s.users())
    }
}
