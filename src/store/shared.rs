//! The store shared by a fleet: one Valkey or Redis, each operation one
//! server-side script (`valkey::scripts`). One connection per module call,
//! opened on first use, and one budget for all of it (`store.timeout`):
//! the time spent on the store, connecting and authenticating included,
//! adds up across the call's operations, and each waits only for what is
//! left. A store that does not answer delays a login by at most that; the
//! time the person spends at the prompt does not count.
//!
//! With a Sentinel URL, the connection is opened to the primary that
//! `valkey::sentinel` finds (the one found last first, `primary::Hint`),
//! within the same budget. A write refused as a replica refuses it
//! (READONLY: the primary was demoted meanwhile, nothing was written) is
//! made again, once, on the primary the sentinels name then.
//!
//! `store.wait_replicas`: a success is written, then `WAIT`ed for; if
//! fewer replicas acknowledged it within the budget, the login is denied
//! (a failover could lose it, and the code with it could be accepted again).
#![forbid(unsafe_code)]

use super::primary::Hint;
use super::valkey::{Client, Reply, Script, StoreError as ClientError, scripts, sentinel};
use super::{
    Attempt, Begun, Committed, Counted, DeviceId, DeviceStep, Failed, Held, Issued, NewCode,
    Origin, Purpose, Refusal, Remembered, Sendable, SentCode, StepKey, Store, StoreError, Success,
    UserState,
};
use crate::base::user::UserName;
use crate::config::{self, Codes, Tier};
use crate::rules::codes::{Allowance, Plan};
use crate::rules::lockout::{Counters, NewLock};
use std::cell::{Cell, RefCell};
use std::path::Path;
use std::time::{Duration, Instant};

pub struct SharedStore {
    config: config::Store,
    /// The time spent on the store so far, against `store.timeout`.
    spent: Cell<Duration>,
    client: RefCell<Option<Client>>,
    /// The last state read, and whose: what a code attempt is judged
    /// against without reading it again (a write forgets it).
    snapshot: RefCell<Option<(UserName, UserState)>>,
    /// With a Sentinel URL: where the primary was found last.
    hint: Option<Hint>,
}

/// The decoy's key: a name no user can have (names may not start with '.').
const DECOY_KEY: &str = ".decoy";

impl SharedStore {
    /// A store that will connect on first use. `state_dir`: where a
    /// Sentinel URL's primary is remembered between processes (none: in
    /// this process only).
    pub fn new(config: &config::Store, state_dir: Option<&Path>) -> SharedStore {
        let hint = match &config.url {
            config::StoreUrl::Sentinel {
                sentinels,
                service,
                tls,
            } => {
                let scheme = if *tls { "rediss" } else { "redis" };
                let list: Vec<String> = sentinels.iter().map(|(h, p)| format!("{h}:{p}")).collect();
                let url = format!("{scheme}+sentinel://{}/{service}", list.join(","));
                Some(Hint::new(url, state_dir))
            }
            _ => None,
        };
        SharedStore {
            config: config.clone(),
            spent: Cell::new(Duration::ZERO),
            client: RefCell::new(None),
            snapshot: RefCell::new(None),
            hint,
        }
    }

    /// A new connection: to `store.url`, or to the primary a Sentinel URL
    /// leads to.
    fn open(&self, deadline: Instant) -> Result<Client, ClientError> {
        let Some(hint) = &self.hint else {
            return Client::open(&self.config, deadline);
        };
        let known = hint.get();
        match sentinel::open(&self.config, known.as_ref(), deadline) {
            Ok(opened) => {
                hint.set(&opened.primary, known.as_ref());
                Ok(opened.client)
            }
            Err(e) => {
                if known.is_some() {
                    hint.forget();
                }
                Err(e)
            }
        }
    }

    fn forget_snapshot(&self) {
        *self.snapshot.borrow_mut() = None;
    }

    fn key(&self, user: &str) -> Vec<u8> {
        format!("{}{{{user}}}", self.config.prefix).into_bytes()
    }

    fn recovery_key(&self, user: &str) -> Vec<u8> {
        format!("{}{{{user}}}:rec", self.config.prefix).into_bytes()
    }

    /// The state under `key`, one HMGET.
    fn read_key(&self, key: &[u8]) -> Result<Option<UserState>, StoreError> {
        let mut args: Vec<&[u8]> = vec![b"HMGET", key];
        args.extend(scripts::FIELDS.iter().map(|f| f.as_bytes()));
        let reply = self.with(|c, deadline| c.call(&args, deadline))?;
        let Reply::Array(fields) = reply else {
            return Err(garbled("a read"));
        };
        if fields.iter().all(|f| matches!(f, Reply::Nil)) {
            return Ok(None);
        }
        Ok(Some(decode(&fields).ok_or_else(|| garbled("a read"))?))
    }

    /// Runs `f` on the connection, opening it first if need be. A failed
    /// connection is dropped (its state is unknown). With a Sentinel URL, a
    /// READONLY refusal (nothing done: the server is a replica now) runs
    /// `f` once more on the primary the sentinels name.
    fn with<T>(
        &self,
        mut f: impl FnMut(&mut Client, Instant) -> Result<T, ClientError>,
    ) -> Result<T, StoreError> {
        let start = Instant::now();
        let left = self.config.timeout.saturating_sub(self.spent.get());
        let deadline = start + left;
        let result = (|| {
            let mut slot = self.client.borrow_mut();
            let mut tries = 0;
            loop {
                tries += 1;
                let client = match slot.as_mut() {
                    Some(client) => client,
                    None => slot.insert(self.open(deadline)?),
                };
                let result = f(client, deadline);
                let Err(e) = result else {
                    return result;
                };
                *slot = None;
                if let Some(hint) = &self.hint
                    && sentinel::moved(&e)
                {
                    hint.forget();
                    if tries == 1 && e.server_code() == Some("READONLY") {
                        continue;
                    }
                }
                return Err(e);
            }
        })();
        self.spent.set(self.spent.get() + start.elapsed());
        result.map_err(unavailable)
    }

    /// `store.wait_replicas`: waits, within the budget, until that many
    /// replicas acknowledged what this connection wrote. The server is
    /// told to wait for all that is left: it ends a WAIT up to its cron
    /// period (100ms at hz 10) late, so its own answer may come after the
    /// budget; no answer by then is no acknowledgement.
    fn wait_for_replicas(&self) -> Result<(), StoreError> {
        let want = self.config.wait_replicas;
        if want == 0 {
            return Ok(());
        }
        let n = want.to_string();
        let short = |got: &str| StoreError::Unavailable {
            reason: "replicas",
            detail: format!(
                "the success was acknowledged by fewer than the {want} replica(s) of \
                 store.wait_replicas within store.timeout ({got}): denied, the code stays used"
            ),
        };
        let reply = self.with(|c, deadline| {
            let left = deadline.saturating_duration_since(Instant::now());
            // WAIT 0 would wait for ever.
            let ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX).max(1);
            c.call(
                &[b"WAIT", n.as_bytes(), ms.to_string().as_bytes()],
                deadline,
            )
        });
        match reply {
            Ok(reply) => {
                let acked = int(&reply).ok_or_else(|| garbled("WAIT"))?;
                if acked >= u64::from(want) {
                    Ok(())
                } else {
                    Err(short(&format!("{acked} did")))
                }
            }
            Err(StoreError::Unavailable {
                reason: "timeout", ..
            }) => Err(short("no answer in time")),
            Err(e) => Err(e),
        }
    }

    fn run(&self, script: &Script, keys: &[&[u8]], args: &[&[u8]]) -> Result<Reply, StoreError> {
        self.with(|client, deadline| client.eval_script(script, keys, args, deadline))
    }
}

fn unavailable(e: ClientError) -> StoreError {
    StoreError::Unavailable {
        reason: e.reason(),
        detail: e.to_string(),
    }
}

fn garbled(what: &str) -> StoreError {
    StoreError::Unavailable {
        reason: "protocol",
        detail: format!("the store's reply to {what} is not what its script returns"),
    }
}

fn text(r: &Reply) -> Option<&[u8]> {
    match r {
        Reply::Bulk(b) | Reply::Simple(b) => Some(b),
        _ => None,
    }
}

fn int(r: &Reply) -> Option<u64> {
    match r {
        Reply::Integer(i) => u64::try_from(*i).ok(),
        Reply::Bulk(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Reply::Nil => Some(0),
        _ => None,
    }
}

fn purpose_digit(p: Purpose) -> &'static [u8] {
    match p {
        Purpose::SignIn => b"1",
        Purpose::LostDevice => b"2",
        Purpose::Confirm => b"3",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &[u8]) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in text.chunks_exact(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

/// A state from the 16 fields of `scripts::FIELDS`, as HMGET returns them.
fn decode(fields: &[Reply]) -> Option<UserState> {
    if fields.len() != scripts::FIELDS.len() {
        return None;
    }
    let n = |i: usize| int(&fields[i]);
    let remembered = text(&fields[7])
        .map(|t| String::from_utf8_lossy(t).into_owned())
        .unwrap_or_default()
        .split(';')
        .filter(|s| !s.is_empty())
        .filter_map(|item| {
            // `addr=until=seen`; a host of an earlier version writes
            // `addr=until` (never noted).
            let mut parts = item.split('=');
            let addr = parts.next()?.parse().ok()?;
            let until = parts.next()?.parse().ok()?;
            let seen = parts.next().map_or(Some(0), |s| s.parse().ok())?;
            Some(Remembered { addr, until, seen })
        })
        .collect();
    let sent = match text(&fields[8]) {
        Some(p) => Some(SentCode {
            purpose: match p {
                b"1" => Purpose::SignIn,
                b"2" => Purpose::LostDevice,
                b"3" => Purpose::Confirm,
                _ => return None,
            },
            hash: unhex(text(&fields[9])?)?,
            expires: n(10)?,
            sent_at: n(11)?,
        }),
        None => None,
    };
    let sends = text(&fields[12])
        .map(|t| String::from_utf8_lossy(t).into_owned())
        .unwrap_or_default()
        .split(',')
        .filter_map(|t| t.parse().ok())
        .collect();
    let held = n(14)?;
    // `id=step;...`: an entry that does not parse is dropped, as `rm`'s
    // are; its authenticator then counts as never used, which the script
    // that records a success checks again anyway.
    let device_steps = text(&fields[15])
        .map(|t| String::from_utf8_lossy(t).into_owned())
        .unwrap_or_default()
        .split(';')
        .filter_map(|item| {
            let (id, step) = item.split_once('=')?;
            Some(DeviceStep {
                id: DeviceId::from_hex(id)?,
                step_time: step.parse().ok()?,
            })
        })
        .collect();
    Some(UserState {
        device_steps,
        lock_notice_at: n(13)?,
        lock_notices_held: u32::try_from(held).unwrap_or(u32::MAX),
        counters: Counters {
            failures: u32::try_from(n(0)?).ok()?,
            tier_failures: u32::try_from(n(1)?).ok()?,
            tier: u32::try_from(n(2)?).ok()?,
            locked_until: n(3)?,
        },
        last_step_time: n(4)?,
        last_success: n(5)?,
        epoch: u32::try_from(n(6)?).ok()?,
        remembered,
        sent,
        sends,
    })
}

/// A `COUNT_SEND` reply.
fn allowance_of(reply: &Reply) -> Result<Allowance, StoreError> {
    let Reply::Array(v) = reply else {
        return Err(garbled("a send count"));
    };
    let until = || {
        v.get(1)
            .and_then(int)
            .ok_or_else(|| garbled("a send count"))
    };
    match v.first().and_then(text) {
        Some(b"send") => Ok(Allowance::Send),
        Some(b"soon") => Ok(Allowance::TooSoon { until: until()? }),
        Some(b"throttled") => Ok(Allowance::Throttled { until: until()? }),
        _ => Err(garbled("a send count")),
    }
}

/// `failures:lock,failures:lock`
fn tiers_arg(tiers: &[Tier]) -> String {
    tiers
        .iter()
        .map(|t| format!("{}:{}", t.failures, t.lock.as_secs()))
        .collect::<Vec<_>>()
        .join(",")
}

/// The held epoch for a script, or '' (nothing held): a reservation made
/// in the local fallback is nothing here.
fn held_arg(held: Option<Held>) -> String {
    held.filter(|h| h.origin == Origin::Shared)
        .map(|h| h.epoch.to_string())
        .unwrap_or_default()
}

/// An attempt on the shared store. After a reserving `begin` (preauth) it is
/// counted already; otherwise (the code step, authfail) it is counted by
/// the server in the same script that records its outcome, so that a
/// login costs one round trip for its judgement, as the file store's
/// costs one flush. What it is judged against is the state read before
/// the prompt (or again after a send); the success script checks anew,
/// atomically, everything a success depends on.
struct SharedAttempt<'a> {
    store: &'a SharedStore,
    user: UserName,
    state: UserState,
    counted: Option<Counted>,
    tiers: String,
    held: Option<Held>,
}

/// `{status, failures, new lock's tier, its until, epoch, reserved}` from a
/// count.
fn counted_from(v: &[Reply]) -> Option<Counted> {
    let n = |i: usize| v.get(i).and_then(int);
    let tier = n(2)?;
    Some(Counted {
        failures: u32::try_from(n(1)?).unwrap_or(u32::MAX),
        new_lock: (tier > 0).then(|| NewLock {
            tier: u32::try_from(tier).unwrap_or(u32::MAX),
            until: n(3).unwrap_or(0),
        }),
        epoch: u32::try_from(n(4)?).unwrap_or(0),
        reserved: n(5)? == 1,
    })
}

impl SharedAttempt<'_> {
    /// Counts the attempt now, if it is not yet. `Ok(Err(until))`: locked.
    fn count(&mut self) -> Result<Result<Counted, u64>, StoreError> {
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

impl Store for SharedStore {
    fn origin(&self) -> Origin {
        Origin::Shared
    }

    fn read(&self, user: &UserName) -> Result<Option<UserState>, StoreError> {
        let state = self.read_key(&self.key(user.as_str()))?;
        *self.snapshot.borrow_mut() = Some((user.clone(), state.clone().unwrap_or_default()));
        Ok(state)
    }

    fn read_decoy(&self) -> Result<(), StoreError> {
        self.read_key(&self.key(DECOY_KEY)).map(|_| ())
    }

    fn begin<'a>(
        &'a self,
        user: &UserName,
        _now: u64,
        tiers: &[Tier],
        held: Option<Held>,
        reserve: bool,
    ) -> Result<Begun<'a>, StoreError> {
        let cached = match &*self.snapshot.borrow() {
            Some((who, state)) if who == user => Some(state.clone()),
            _ => None,
        };
        let state = match cached {
            Some(state) if !reserve => state,
            _ if !reserve => self.read(user)?.unwrap_or_default(),
            _ => UserState::default(),
        };
        let mut attempt = SharedAttempt {
            store: self,
            user: user.clone(),
            state,
            counted: None,
            tiers: tiers_arg(tiers),
            held,
        };
        if reserve {
            // preauth: counted now, before the password is checked.
            if let Err(until) = attempt.count()? {
                return Ok(Begun::Locked { until });
            }
        }
        Ok(Begun::Open(Box::new(attempt)))
    }

    fn mark_used(
        &self,
        user: &UserName,
        key: StepKey,
        step_time: u64,
        new_secret: bool,
    ) -> Result<(), StoreError> {
        let hash = self.key(user.as_str());
        let id = match key {
            StepKey::Default => String::new(),
            StepKey::Named(id) => id.hex(),
        };
        let (t, keep) = (
            step_time.to_string(),
            crate::files::state::MAX_DEVICE_STEPS.to_string(),
        );
        let new_secret: &[u8] = if new_secret { b"1" } else { b"0" };
        self.forget_snapshot();
        self.run(
            &scripts::all().mark_used,
            &[&hash],
            &[t.as_bytes(), id.as_bytes(), keep.as_bytes(), new_secret],
        )
        .map(|_| ())
    }

    fn give_back(&self, user: &UserName, held: Held) -> Result<(), StoreError> {
        let key = self.key(user.as_str());
        let epoch = held.epoch.to_string();
        self.forget_snapshot();
        self.run(&scripts::all().give_back, &[&key], &[epoch.as_bytes()])
            .map(|_| ())
    }

    fn issue(
        &self,
        user: &UserName,
        _now: u64,
        code: &NewCode,
        codes: &Codes,
        held: Option<Held>,
    ) -> Result<Issued, StoreError> {
        let key = self.key(user.as_str());
        let args = [
            purpose_digit(code.purpose).to_vec(),
            hex(&code.hash).into_bytes(),
            code.valid.to_string().into_bytes(),
            codes.resend_after.as_secs().to_string().into_bytes(),
            codes.max_per_hour.to_string().into_bytes(),
            held_arg(held).into_bytes(),
        ];
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
        self.forget_snapshot();
        let reply = self.run(&scripts::all().issue, &[&key], &args)?;
        let Reply::Array(v) = reply else {
            return Err(garbled("a send"));
        };
        let n = |i: usize| v.get(i).and_then(int).ok_or_else(|| garbled("a send"));
        match v.first().and_then(text) {
            Some(b"locked") => Ok(Issued::Locked { until: n(1)? }),
            Some(b"use") => Ok(Issued::Planned(Plan::UseSent {
                sent_at: n(1)?,
                expires: n(2)?,
            })),
            Some(b"throttled") => Ok(Issued::Planned(Plan::Throttled { until: n(1)? })),
            Some(b"send") => Ok(Issued::Planned(Plan::Send)),
            _ => Err(garbled("a send")),
        }
    }

    fn count_send(
        &self,
        user: &UserName,
        destination: &str,
        _now: u64,
        codes: &Codes,
    ) -> Result<Sendable, StoreError> {
        // Two keys, two scripts (they may live in different cluster slots):
        // the user's first, so that a destination's refusal leaves the
        // user's send counted, never the other way round.
        let max = codes.max_per_hour.to_string();
        let gap = codes.resend_after.as_secs().to_string();
        let user_key = self.key(user.as_str());
        let dest_key = self.key(&format!(".dest-{destination}"));
        self.forget_snapshot();
        let script = &scripts::all().count_send;
        let mine = self.run(script, &[&user_key], &[max.as_bytes(), gap.as_bytes()])?;
        match allowance_of(&mine)? {
            Allowance::Send => {}
            refused => return Ok(Sendable::User(refused)),
        }
        let theirs = self.run(script, &[&dest_key], &[max.as_bytes(), b"0"])?;
        Ok(match allowance_of(&theirs)? {
            Allowance::Send => Sendable::Yes,
            Allowance::TooSoon { until } | Allowance::Throttled { until } => {
                Sendable::Destination { until }
            }
        })
    }

    fn lock_notice(
        &self,
        user: &UserName,
        _now: u64,
        min_interval: u64,
    ) -> Result<Option<u32>, StoreError> {
        let key = self.key(user.as_str());
        let interval = min_interval.to_string();
        self.forget_snapshot();
        let reply = self.run(&scripts::all().lock_notice, &[&key], &[interval.as_bytes()])?;
        let Reply::Array(v) = reply else {
            return Err(garbled("a lock notice"));
        };
        match v.first().and_then(text) {
            Some(b"mail") => {
                let held = v
                    .get(1)
                    .and_then(int)
                    .ok_or_else(|| garbled("a lock notice"))?;
                Ok(Some(u32::try_from(held).unwrap_or(u32::MAX)))
            }
            Some(b"hold") => Ok(None),
            _ => Err(garbled("a lock notice")),
        }
    }

    fn note_source(
        &self,
        user: &UserName,
        addr: std::net::IpAddr,
        _now: u64,
        window: u64,
    ) -> Result<crate::rules::policy::Source, StoreError> {
        let key = self.key(user.as_str());
        // The script compares addresses as text: one form for each.
        let addr = crate::rules::policy::canonical(addr).to_string();
        let slack = crate::rules::policy::note_slack(window).to_string();
        let window = window.to_string();
        let keep = crate::files::state::MAX_REMEMBERED.to_string();
        self.forget_snapshot();
        let reply = self.run(
            &scripts::all().note_source,
            &[&key],
            &[
                addr.as_bytes(),
                window.as_bytes(),
                keep.as_bytes(),
                slack.as_bytes(),
            ],
        )?;
        match text(&reply) {
            Some(b"known") => Ok(crate::rules::policy::Source::Known),
            Some(b"new") => Ok(crate::rules::policy::Source::New),
            Some(b"first") => Ok(crate::rules::policy::Source::First),
            _ => Err(garbled("a source noted")),
        }
    }

    fn withdraw(&self, user: &UserName, hash: &[u8; 32]) -> Result<(), StoreError> {
        let key = self.key(user.as_str());
        self.forget_snapshot();
        self.run(&scripts::all().withdraw, &[&key], &[hex(hash).as_bytes()])
            .map(|_| ())
    }

    fn decoy(&self, _flush: bool) {
        // The same round trip as an account's count, on a key that never
        // locks (the server's persistence is its own: one cost either way).
        let key = self.key(DECOY_KEY);
        let _ = self.run(&scripts::all().begin, &[&key], &[b"1000000:1", b""]);
    }

    fn unlock(&self, user: &UserName, future_beyond: u64) -> Result<Option<u64>, StoreError> {
        let key = self.key(user.as_str());
        let beyond = future_beyond.to_string();
        let reply = self.run(&scripts::all().unlock, &[&key], &[beyond.as_bytes()])?;
        match reply {
            Reply::Integer(i) if i >= 0 => Ok(Some(i.unsigned_abs())),
            Reply::Integer(_) => Ok(None),
            _ => Err(garbled("an unlock")),
        }
    }

    fn forget(&self, user: &UserName) -> Result<bool, StoreError> {
        let (key, rkey) = (self.key(user.as_str()), self.recovery_key(user.as_str()));
        let reply = self.with(|c, deadline| c.call(&[b"DEL", &key, &rkey], deadline))?;
        Ok(int(&reply).is_some_and(|n| n > 0))
    }

    fn users(&self) -> Result<Vec<String>, StoreError> {
        let pattern = format!("{}{{*}}", self.config.prefix);
        let mut cursor = b"0".to_vec();
        let mut names = Vec::new();
        // Pages of at most 200 keys: each reply stays far below the
        // client's bounds, however many users there are.
        for _ in 0..100_000 {
            let args: [&[u8]; 6] = [
                b"SCAN",
                &cursor,
                b"MATCH",
                pattern.as_bytes(),
                b"COUNT",
                b"200",
            ];
            let reply = self.with(|c, deadline| c.call(&args, deadline))?;
            let Reply::Array(page) = reply else {
                return Err(garbled("a scan"));
            };
            let (Some(next), Some(Reply::Array(keys))) = (page.first().and_then(text), page.get(1))
            else {
                return Err(garbled("a scan"));
            };
            cursor = next.to_vec();
            for k in keys.iter().filter_map(text) {
                let k = String::from_utf8_lossy(k);
                if let Some(name) = k
                    .strip_prefix(&self.config.prefix)
                    .and_then(|r| r.strip_prefix('{'))
                    .and_then(|r| r.strip_suffix('}'))
                    && UserName::parse(name).is_ok()
                {
                    names.push(name.to_string());
                }
            }
            if cursor == b"0" {
                break;
            }
        }
        names.sort();
        names.dedup();
        Ok(names)
    }
}

impl SharedStore {
    /// What `twostep check` reports about the store: it answers, accepts
    /// the credentials, and lets this host run every script and command the
    /// module and the commands use (on a key no user can have, removed
    /// after). Empty when all is well.
    pub fn problems(&self) -> Vec<String> {
        let key = self.key(".check");
        let rkey = self.recovery_key(".check");
        let s = scripts::all();
        // (what it is for, the script, its keys, its arguments)
        type Check<'a> = (&'a str, &'a Script, Vec<&'a [u8]>, Vec<&'a [u8]>);
        let checks: [Check; 9] = [
            (
                "counting an attempt",
                &s.begin,
                vec![&key],
                vec![b"1000000:1", b""],
            ),
            (
                "recording a success",
                &s.succeed,
                vec![&key, &rkey],
                vec![
                    b"",
                    b"",
                    b"",
                    b"check",
                    b"192.0.2.1",
                    b"1",
                    b"0",
                    b"16",
                    b"",
                    b"",
                ],
            ),
            (
                "giving an attempt back",
                &s.give_back,
                vec![&key],
                vec![b"0"],
            ),
            (
                "sending a code",
                &s.issue,
                vec![&key],
                vec![b"3", b"00", b"1", b"0", b"30", b""],
            ),
            ("withdrawing a code", &s.withdraw, vec![&key], vec![b"00"]),
            (
                "counting a confirmation code",
                &s.count_send,
                vec![&key],
                vec![b"30", b"0"],
            ),
            ("spending a code", &s.spend, vec![&key], vec![b"3", b"00"]),
            (
                "holding back lock notices",
                &s.lock_notice,
                vec![&key],
                vec![b"600"],
            ),
            ("unlocking", &s.unlock, vec![&key], vec![b"0"]),
        ];
        let mut problems = Vec::new();
        for (what, script, keys, args) in &checks {
            if let Err(e) = self.run(script, keys, args) {
                problems.push(format!("store: {what}: {e}"));
                if problems.len() == 1
                    && !matches!(
                        e,
                        StoreError::Unavailable {
                            reason: "refused",
                            ..
                        }
                    )
                {
                    // Not reachable, or not these credentials: nothing more to learn.
                    return problems;
                }
            }
        }
        let mut read: Vec<&[u8]> = vec![b"HMGET", &key];
        read.extend(scripts::FIELDS.iter().map(|f| f.as_bytes()));
        let commands: [(&str, Vec<&[u8]>); 3] = [
            ("reading a state (HMGET)", read),
            (
                "listing the users (SCAN, for twostep status)",
                vec![b"SCAN", b"0", b"MATCH", &key, b"COUNT", b"1"],
            ),
            (
                "removing a state (DEL, for twostep reset)",
                vec![b"DEL", &key, &rkey],
            ),
        ];
        for (what, args) in &commands {
            if let Err(e) = self.with(|c, deadline| c.call(args, deadline)) {
                problems.push(format!("store: {what}: {e}"));
            }
        }
        // The check's writes, acknowledged as a login's success must be.
        if let Err(e) = self.wait_for_replicas() {
            problems.push(format!(
                "store: waiting for replicas (WAIT, for store.wait_replicas): {e}; \
                 every successful login would be denied"
            ));
        }
        problems
    }
}
