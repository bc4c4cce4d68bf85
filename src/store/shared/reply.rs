//! What the store's scripts answer, read back into the module's types, and
//! how their arguments are written: the one place that knows the order of
//! `scripts::FIELDS` and the words the scripts reply with.
#![forbid(unsafe_code)]

use super::super::valkey::{Reply, StoreError as ClientError, scripts};
use super::super::{
    Counted, DeviceId, DeviceStep, Held, Origin, Purpose, Remembered, SentCode, StoreError,
    UserState,
};
use crate::config::Tier;
use crate::rules::codes::Allowance;
use crate::rules::lockout::{Counters, NewLock};

pub(super) fn unavailable(e: ClientError) -> StoreError {
    StoreError::Unavailable {
        reason: e.reason(),
        detail: e.to_string(),
    }
}

pub(super) fn garbled(what: &str) -> StoreError {
    StoreError::Unavailable {
        reason: "protocol",
        detail: format!("the store's reply to {what} is not what its script returns"),
    }
}

pub(super) fn text(r: &Reply) -> Option<&[u8]> {
    match r {
        Reply::Bulk(b) | Reply::Simple(b) => Some(b),
        _ => None,
    }
}

pub(super) fn int(r: &Reply) -> Option<u64> {
    match r {
        Reply::Integer(i) => u64::try_from(*i).ok(),
        Reply::Bulk(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Reply::Nil => Some(0),
        _ => None,
    }
}

pub(super) fn purpose_digit(p: Purpose) -> &'static [u8] {
    match p {
        Purpose::SignIn => b"1",
        Purpose::LostDevice => b"2",
        Purpose::Confirm => b"3",
    }
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn unhex(text: &[u8]) -> Option<[u8; 32]> {
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
pub(super) fn decode(fields: &[Reply]) -> Option<UserState> {
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
pub(super) fn allowance_of(reply: &Reply) -> Result<Allowance, StoreError> {
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
pub(super) fn tiers_arg(tiers: &[Tier]) -> String {
    tiers
        .iter()
        .map(|t| format!("{}:{}", t.failures, t.lock.as_secs()))
        .collect::<Vec<_>>()
        .join(",")
}

/// The held epoch for a script, or '' (nothing held): a reservation made
/// in the local fallback is nothing here.
pub(super) fn held_arg(held: Option<Held>) -> String {
    held.filter(|h| h.origin == Origin::Shared)
        .map(|h| h.epoch.to_string())
        .unwrap_or_default()
}

/// `{status, failures, new lock's tier, its until, epoch, reserved}` from a
/// count.
pub(super) fn counted_from(v: &[Reply]) -> Option<Counted> {
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
