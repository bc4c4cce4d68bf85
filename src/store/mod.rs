//! Where per-user state lives: lockout counters and lock, the last accepted
//! step, remembered sources, sent codes and their throttles. The login
//! flow, the out-of-band codes and the commands use [`Store`] and do not
//! know which one they have:
//!
//! - [`file`]: this host's `state_dir`, one file per user, each change made
//!   under the file's exclusive lock (today's state files);
//! - [`valkey`]: one Valkey or Redis deployment shared by a fleet, each
//!   read-modify-write one server-side script that uses the server's clock.
//!
//! Every operation is whole: a count, a success, a send is decided and
//! recorded in one step, so the guarantees (no more attempts judged than
//! the tiers allow, a code good once, the throttles) hold for parallel
//! attempts, on one host or on many.
// deny, not forbid: valkey/openssl.rs, the one file of this folder that
// talks to C (libssl, loaded only for rediss://), allows it for itself.
#![deny(unsafe_code)]

mod fallback;
pub mod file;
mod primary;
pub mod shared;
pub mod valkey;

use crate::base::user::UserName;
use crate::config::{Codes, Config, OnUnavailable, StoreUrl, Tier};
use crate::rules::codes::{Allowance, Plan};
use crate::rules::lockout::NewLock;
use std::net::IpAddr;

pub use crate::files::state::{
    DeviceId, DeviceStep, Purpose, Remembered, SentCode, StateError, StepKey, UserState,
};

/// The store the configuration names: `store.url`, or this host's
/// `state_dir` when it is empty. With a shared store, all this store does
/// may take `store.timeout` in all (`shared`); with
/// `on_unavailable = "local"`, an operation the shared store cannot do is
/// done in `state_dir` instead, and logged.
pub fn open(config: &Config) -> Box<dyn Store> {
    if config.store.url == StoreUrl::Local {
        return Box::new(file::FileStore::new(&config.state_dir));
    }
    let shared = shared::SharedStore::new(&config.store, Some(&config.state_dir));
    match config.store.on_unavailable {
        OnUnavailable::Deny => Box::new(shared),
        OnUnavailable::Local => Box::new(fallback::Fallback::new(
            shared,
            file::FileStore::new(&config.state_dir),
            &config.log_socket,
        )),
    }
}

/// Why the store could not do what was asked.
#[derive(Debug)]
pub enum StoreError {
    /// The user's state cannot be trusted or written (a damaged or
    /// unwritable state file, a lock held too long): the user counts as
    /// locked (`lock_denied reason=bad_state`).
    State(StateError),
    /// The shared store did not answer in time, or refused
    /// (`store_unavailable`): `reason` is one word for the record.
    Unavailable {
        reason: &'static str,
        detail: String,
    },
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::State(e) => e.fmt(f),
            StoreError::Unavailable { reason, detail } => write!(f, "store {reason}: {detail}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<StateError> for StoreError {
    fn from(e: StateError) -> Self {
        StoreError::State(e)
    }
}

/// Where an attempt was counted: this host's `state_dir`, or the shared
/// store. A reservation is good only where it was made: epochs are counted
/// per store (most accounts are at epoch 0 in both), so a count that
/// `on_unavailable = "local"` made in `state_dir` must not pass for one in
/// the store, whose lock it never checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Local,
    Shared,
}

/// An attempt that an earlier line of the stack (`preauth`) counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// The epoch it was counted in: a reset since has wiped it.
    pub epoch: u32,
    /// The store it was counted in: elsewhere it counts for nothing.
    pub origin: Origin,
}

/// How an attempt was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    /// The failures counted, this one included (as of the count).
    pub failures: u32,
    /// The lock this count set off.
    pub new_lock: Option<NewLock>,
    /// The epoch of the count.
    pub epoch: u32,
    /// Counted by the reservation the caller held, not now.
    pub reserved: bool,
}

/// The outcome of [`Store::begin`].
pub enum Begun<'a> {
    /// Locked: refused, neither judged nor counted.
    Locked { until: u64 },
    /// Counted: judge it, then `fail` or `succeed`.
    Open(Box<dyn Attempt + 'a>),
}

/// What a success changes besides resetting the counters.
#[derive(Debug, Clone, Default)]
pub struct Success {
    /// An app code's step start: accepted only if it is later than the last
    /// accepted one (else [`Committed::Replay`]).
    pub step_time: Option<u64>,
    /// Whose step `step_time` is: replay is refused per authenticator.
    pub device: StepKey,
    /// The sent code used up: only if it is still the one kept (else
    /// [`Committed::CodeGone`]).
    pub spend: Option<(Purpose, [u8; 32])>,
    /// A recovery code used, as a digest of its stored hash: once, wherever
    /// (else [`Committed::RecoveryUsed`]).
    pub recovery: Option<[u8; 32]>,
    /// Remember this source address for this many seconds
    /// (`policy.remember`).
    pub remember: Option<(IpAddr, u64)>,
    /// A new secret was set up with `step_time`'s code: the sources
    /// remembered for the old one are forgotten, so are the named
    /// authenticators' steps (it replaces them all), and the step is kept
    /// if it is later (a code of another secret is no replay).
    pub new_secret: bool,
}

/// What became of a success.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    Done,
    /// A failure after all, counted: what it depended on was used meanwhile
    /// (another attempt, another host).
    Refused {
        why: Refusal,
        counted: Counted,
    },
    /// The user was locked meanwhile: neither judged nor counted (a store
    /// that counts an attempt only with its outcome).
    Locked {
        until: u64,
    },
}

/// Why a success was refused after all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The step was accepted meanwhile.
    Replay,
    /// The sent code was used or replaced meanwhile.
    CodeGone,
    /// The sent code is past its expiry by the store's clock (a host whose
    /// clock lags took it for good).
    Expired,
    /// The recovery code was used meanwhile.
    RecoveryUsed,
}

/// What became of a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    /// Counted (or found counted by a reservation).
    Counted(Counted),
    /// The user was locked meanwhile: not counted.
    Locked { until: u64 },
}

/// An attempt open for judging, counted before its outcome is known to
/// anyone: the file store counts it when it begins (under the user's lock,
/// held until it ends); the shared store counts it in the same server-side
/// step that records its outcome, so that nothing about the answer is
/// acted on, or shown, before the count is recorded.
pub trait Attempt {
    /// The state the answer is judged against. What a success depends on is
    /// checked again when it is recorded.
    fn state(&self) -> &UserState;
    /// How it was counted, if it was already (always after a durable
    /// `begin`).
    fn counted(&self) -> Option<Counted>;
    /// The answer was wrong: the count stands, durably.
    fn fail(self: Box<Self>) -> Result<Failed, StoreError>;
    /// The answer was right: counters reset (the count given back), a new
    /// epoch, `success` applied, durably; unless the store finds that what
    /// it depends on was used meanwhile.
    fn succeed(self: Box<Self>, now: u64, success: &Success) -> Result<Committed, StoreError>;
    /// Counts the attempt (if not yet) and spends the sent code of `purpose`
    /// if it is still `hash`, without ending the attempt (a lost-device code
    /// leads on to a new app). `Ok(false)`: the code is gone, or the user
    /// was locked meanwhile.
    fn spend(&mut self, purpose: Purpose, hash: &[u8; 32]) -> Result<bool, StoreError>;
}

/// A code made to be sent, if the throttles allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewCode {
    pub purpose: Purpose,
    /// Its keyed hash (`codes::keyed_hash`).
    pub hash: [u8; 32],
    /// How long it is good, in seconds.
    pub valid: u64,
}

/// What [`Store::issue`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issued {
    /// The user is locked: nothing is sent.
    Locked { until: u64 },
    /// [`Plan::Send`] means the code is recorded and must now be handed over.
    Planned(Plan),
}

/// What [`Store::count_send`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sendable {
    /// Counted toward the user's limits and the destination's: send it.
    Yes,
    /// The user's own limits (`codes.resend_after`, `codes.max_per_hour`)
    /// refuse it; nothing was counted.
    User(Allowance),
    /// The destination has had `codes.max_per_hour` in the last hour, from
    /// any accounts: none before `until`. The user's count stands.
    Destination { until: u64 },
}

/// Where per-user state lives. See the module documentation.
pub trait Store {
    /// Where this store keeps state now (a fallback that has fallen back:
    /// `Local`). Counts made here are reservations only here.
    fn origin(&self) -> Origin;

    /// The user's state, or `None` if there is none yet.
    fn read(&self, user: &UserName) -> Result<Option<UserState>, StoreError>;

    /// Begins an attempt: refuses a locked user (unless `held` still counts
    /// in the state), otherwise counts the attempt as a failure (or finds
    /// it counted by `held`). With `reserve`, the count is recorded before
    /// this returns, where every other attempt sees it (`preauth`: the
    /// password is checked next, by another module), and [`Begun::Open`]'s
    /// attempt is only dropped; otherwise it may be recorded with the
    /// outcome (see [`Attempt`]).
    ///
    /// A reservation is not flushed to disk by itself: the attempt's
    /// outcome (authfail's failure, the code step's verdict) is, with it,
    /// so that a login with the password pays one flush, not two. Written,
    /// it is in the page cache that every process reads, so parallel
    /// attempts and a killed process see it; only a crash of the machine
    /// between the password check and the outcome can lose it, and then
    /// the answer that attempt would have had never left the host.
    fn begin<'a>(
        &'a self,
        user: &UserName,
        now: u64,
        tiers: &[Tier],
        held: Option<Held>,
        reserve: bool,
    ) -> Result<Begun<'a>, StoreError>;

    /// A login let through without a code (a policy skip) after `held` was
    /// counted: the counters are reset, if it still counts.
    fn give_back(&self, user: &UserName, held: Held) -> Result<(), StoreError>;

    /// Decides whether a code for `purpose` is sent now (`codes::plan`)
    /// and, if so, records `hash` with its expiry and the send, durably,
    /// before it is handed over. Nothing is sent to a locked user unless
    /// `held` still counts.
    fn issue(
        &self,
        user: &UserName,
        now: u64,
        code: &NewCode,
        codes: &Codes,
        held: Option<Held>,
    ) -> Result<Issued, StoreError>;

    /// A code sent outside a login (an enrollment's confirmation code) to
    /// `destination` (`outbox::Destination::throttle_key`): counted toward
    /// the user's limits, as every code a twostep program sends is, and
    /// toward the destination's hourly limit, which every account's sends
    /// to that address or number share, so that no account floods an
    /// address or number that it does not own.
    fn count_send(
        &self,
        user: &UserName,
        destination: &str,
        now: u64,
        codes: &Codes,
    ) -> Result<Sendable, StoreError>;

    /// A lock notice for `user` is due (`codes::lock_notice`): `Some(n)`
    /// if it may be mailed now, `n` being how many were held back since
    /// the last one; `None` if one was mailed less than `min_interval`
    /// seconds ago (this one is counted as held back).
    fn lock_notice(
        &self,
        user: &UserName,
        now: u64,
        min_interval: u64,
    ) -> Result<Option<u32>, StoreError>;

    /// A successful login came from `addr` (`new_source`): what it was to
    /// the user (`policy::note_source`: known if a login from it was noted
    /// within `window` seconds), and it is noted as seen now, in the same
    /// list as the remembered sources and as bounded.
    fn note_source(
        &self,
        user: &UserName,
        addr: IpAddr,
        now: u64,
        window: u64,
    ) -> Result<crate::rules::policy::Source, StoreError>;

    /// Forgets the sent code if it is still `hash` (a hand-over that
    /// failed: the code must not work if it arrives after all).
    fn withdraw(&self, user: &UserName, hash: &[u8; 32]) -> Result<(), StoreError>;

    /// For a name that is not an account, before the prompt: the same cost
    /// as [`Store::read`] of an account's state (with a shared store, the
    /// connection and a round trip), of a decoy no account can have. The
    /// caller denies the name whatever this returns; the result is for
    /// `on_unavailable = "local"`, which falls back as an account's read
    /// would.
    fn read_decoy(&self) -> Result<(), StoreError>;

    /// For a name that is not an account: the same cost as counting an
    /// account's attempt, nothing kept: with `flush`, as a verdict's
    /// (written and flushed); without, as `preauth`'s reservation (written).
    /// Errors do not matter.
    fn decoy(&self, flush: bool);

    /// `twostep unlock`: counters reset, a new epoch, and a last accepted
    /// step later than `future_beyond` cleared (returned).
    fn unlock(&self, user: &UserName, future_beyond: u64) -> Result<Option<u64>, StoreError>;

    /// A code that confirmed a new authenticator outside a login (`twostep
    /// enroll`, `--add`, twostep-self): `key`'s step moved on to
    /// `step_time`, so that the same code does not log in too, on any host.
    /// With `new_secret` (every authenticator replaced), the remembered
    /// sources and the named authenticators' steps are forgotten as well.
    /// Callers that hold this host's state lock (the file store) write the
    /// file under it themselves.
    fn mark_used(
        &self,
        user: &UserName,
        key: StepKey,
        step_time: u64,
        new_secret: bool,
    ) -> Result<(), StoreError>;

    /// `twostep reset`: the user's state removed. `Ok(false)`: there was none.
    fn forget(&self, user: &UserName) -> Result<bool, StoreError>;

    /// Every user with state, for `twostep status` (a damaged one with its
    /// error).
    fn users(&self) -> Result<Vec<String>, StoreError>;
}
