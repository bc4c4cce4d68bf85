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

// How the folder is cut: this file holds the connection, its budget and
// the Store operations; reply.rs what the scripts' replies mean and how
// their arguments are written; attempt.rs a login's attempt; check.rs what
// `twostep check` asks of the server.
mod attempt;
mod check;
mod reply;

use attempt::SharedAttempt;
use reply::{
    allowance_of, decode, garbled, held_arg, hex, int, purpose_digit, text, tiers_arg, unavailable,
};

use super::primary::Hint;
use super::valkey::{Client, Reply, Script, StoreError as ClientError, scripts, sentinel};
use super::{
    Begun, Held, Issued, NewCode, Origin, Sendable, StepKey, Store, StoreError, UserState,
};
use crate::base::user::UserName;
use crate::config::{self, Codes, Tier};
use crate::rules::codes::{Allowance, Plan};
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
