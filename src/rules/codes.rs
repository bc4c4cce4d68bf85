//! Codes sent by email or text message, as pure functions: making one, the
//! keyed hash under which it is kept, whether to send one now (resend and
//! hourly throttles), and judging an answer. The I/O (the state, the
//! hand-over) is `auth::sent_code`'s.
//!
//! Only a keyed hash of a sent code is kept: BLAKE2b-256 over the user's
//! secret (a per-user key that the enrollment writes and that the secret
//! file's copies share across a fleet), the user, the purpose and the code.
//! Someone who reads the state alone (a backup, a shared store) learns
//! nothing that lets them try the million codes offline.
#![forbid(unsafe_code)]

use crate::base::user::UserName;
use crate::config::Codes;
use crate::files::state::{Purpose, SentCode, UserState};
use blake2::{Blake2b256, Digest};
use zeroize::Zeroizing;

/// An hour, the window of `codes.max_per_hour`.
pub const HOUR: u64 = 3600;

/// A fresh code of `len` decimal digits from the OS's random source, each
/// digit uniform (bytes of 250 and above are drawn again).
pub fn new_code(len: u8) -> Result<Zeroizing<String>, String> {
    let mut out = Zeroizing::new(String::with_capacity(usize::from(len)));
    let mut pool = Zeroizing::new([0u8; 32]);
    while out.len() < usize::from(len) {
        getrandom::fill(pool.as_mut()).map_err(|e| format!("no randomness: {e}"))?;
        for &b in pool.iter() {
            if b < 250 && out.len() < usize::from(len) {
                out.push(char::from(b'0' + b % 10));
            }
        }
    }
    Ok(out)
}

/// The answer as a code of `len` digits, spaces and dashes ignored; `None`
/// if it is not one.
pub fn normalize(answer: &[u8], len: u8) -> Option<Zeroizing<Vec<u8>>> {
    if answer.len() > 64 {
        return None;
    }
    let digits: Zeroizing<Vec<u8>> = Zeroizing::new(
        answer
            .iter()
            .copied()
            .filter(|b| !matches!(b, b' ' | b'-'))
            .collect(),
    );
    (digits.len() == usize::from(len) && digits.iter().all(u8::is_ascii_digit)).then_some(digits)
}

fn purpose_tag(p: Purpose) -> &'static [u8] {
    match p {
        Purpose::SignIn => b"sign-in",
        Purpose::LostDevice => b"lost-device",
        Purpose::Confirm => b"confirm",
    }
}

/// The keyed hash a sent code is kept under. `key` is the user's secret
/// (empty for a user without one: then it is only salted by the user and
/// purpose).
pub fn keyed_hash(key: &[u8], user: &UserName, purpose: Purpose, code: &[u8]) -> [u8; 32] {
    let mut h = Blake2b256::new();
    h.update(b"twostep sent code v1\0");
    h.update((key.len() as u64).to_le_bytes());
    h.update(key);
    h.update((user.as_str().len() as u64).to_le_bytes());
    h.update(user.as_str().as_bytes());
    h.update(purpose_tag(purpose));
    h.update([0]);
    h.update(code);
    h.finalize().into()
}

/// Whether to send a code for `purpose` now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// Send a new one.
    Send,
    /// One was sent less than `codes.resend_after` ago and is still good:
    /// the user is to use it.
    UseSent { sent_at: u64, expires: u64 },
    /// `codes.max_per_hour` were sent in the last hour: none until `until`.
    Throttled { until: u64 },
}

/// Whether something may be sent outside a login (a confirmation code), as
/// far as one set of sends goes: a user's, or a destination's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowance {
    /// May be sent: count it.
    Send,
    /// The last send was less than `resend_after` ago: none before `until`.
    TooSoon { until: u64 },
    /// `max_per_hour` were sent in the last hour: none before `until`.
    Throttled { until: u64 },
}

/// Decides [`Allowance`] from the times of past sends: at most
/// `max_per_hour` in any hour, and `resend_after` seconds apart (0: no gap
/// asked for).
pub fn allowance(sends: &[u64], now: u64, max_per_hour: u32, resend_after: u64) -> Allowance {
    let recent = recent_sends(sends, now);
    if let Some(&last) = recent.last()
        && now - last < resend_after
    {
        return Allowance::TooSoon {
            until: last.saturating_add(resend_after),
        };
    }
    let max = max_per_hour as usize;
    if recent.len() >= max {
        let oldest = recent.len() - max;
        return Allowance::Throttled {
            until: recent.get(oldest).map_or(now, |t| t.saturating_add(HOUR)),
        };
    }
    Allowance::Send
}

/// Whether a lock notice may be mailed at `now`, at most one per
/// `min_interval` seconds (`notify.min_interval`; 0: every one). Returns the
/// state to keep and, if it may, how many were held back since the last
/// one mailed (the notice says so, and the count starts again).
pub fn lock_notice(state: &UserState, now: u64, min_interval: u64) -> (UserState, Option<u32>) {
    let last = state.lock_notice_at;
    // A last notice in the future (a clock set back) does not hold others.
    let due = last == 0 || last > now || now - last >= min_interval;
    if due {
        let next = UserState {
            lock_notice_at: now,
            lock_notices_held: 0,
            ..state.clone()
        };
        (next, Some(state.lock_notices_held))
    } else {
        let next = UserState {
            lock_notices_held: state.lock_notices_held.saturating_add(1),
            ..state.clone()
        };
        (next, None)
    }
}

/// The sends of the last hour, oldest first.
pub fn recent_sends(sends: &[u64], now: u64) -> Vec<u64> {
    let mut recent: Vec<u64> = sends
        .iter()
        .copied()
        .filter(|&t| t <= now && now - t < HOUR)
        .collect();
    recent.sort_unstable();
    recent
}

/// Decides whether a code for `purpose` may be sent at `now`.
pub fn plan(state: &UserState, purpose: Purpose, now: u64, codes: &Codes) -> Plan {
    if let Some(sent) = &state.sent
        && sent.purpose == purpose
        && now < sent.expires
        && now.saturating_sub(sent.sent_at) < codes.resend_after.as_secs()
    {
        return Plan::UseSent {
            sent_at: sent.sent_at,
            expires: sent.expires,
        };
    }
    let recent = recent_sends(&state.sends, now);
    if recent.len() >= codes.max_per_hour as usize {
        let oldest = recent.len() - codes.max_per_hour as usize;
        return Plan::Throttled {
            until: recent[oldest].saturating_add(HOUR),
        };
    }
    Plan::Send
}

/// The state after a code was made for `purpose`: its hash and expiry kept,
/// the send counted (a code of another purpose is replaced).
pub fn after_send(
    state: &UserState,
    purpose: Purpose,
    hash: [u8; 32],
    now: u64,
    valid: u64,
) -> UserState {
    UserState {
        sent: Some(SentCode {
            purpose,
            hash,
            expires: now.saturating_add(valid),
            sent_at: now,
        }),
        ..with_send(state, now)
    }
}

/// The state with a send at `now` counted, and sends older than an hour
/// forgotten.
pub fn with_send(state: &UserState, now: u64) -> UserState {
    let mut sends = recent_sends(&state.sends, now);
    sends.push(now);
    UserState {
        sends,
        ..state.clone()
    }
}

/// How an answer compares with the code sent for `purpose`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The code, in time: accept it (once).
    Right,
    /// The code, too late.
    Expired,
    /// Not the code (or none was sent for this purpose).
    Wrong,
}

/// Compares `hash` (of the answer) with the sent code, in constant time.
pub fn judge(sent: Option<&SentCode>, purpose: Purpose, hash: &[u8; 32], now: u64) -> Verdict {
    let Some(sent) = sent.filter(|s| s.purpose == purpose) else {
        return Verdict::Wrong;
    };
    let same: bool = subtle::ConstantTimeEq::ct_eq(&sent.hash[..], &hash[..]).into();
    match (same, now < sent.expires) {
        (true, true) => Verdict::Right,
        (true, false) => Verdict::Expired,
        (false, _) => Verdict::Wrong,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn codes(resend: u64, per_hour: u32) -> Codes {
        Codes {
            resend_after: Duration::from_secs(resend),
            max_per_hour: per_hour,
            ..Codes::default()
        }
    }

    fn sent(purpose: Purpose, sent_at: u64, expires: u64) -> Option<SentCode> {
        Some(SentCode {
            purpose,
            hash: [7; 32],
            expires,
            sent_at,
        })
    }

    #[test]
    fn new_codes_are_digits_of_the_length_asked_and_differ() {
        for len in 6..=10 {
            let a = new_code(len).unwrap();
            assert_eq!(a.len(), usize::from(len));
            assert!(a.bytes().all(|b| b.is_ascii_digit()));
        }
        let many: std::collections::HashSet<String> =
            (0..50).map(|_| new_code(10).unwrap().to_string()).collect();
        assert_eq!(many.len(), 50);
        // Every digit turns up: no digit is left out by the sampling.
        let all: String = (0..40).map(|_| new_code(10).unwrap().to_string()).collect();
        for d in '0'..='9' {
            assert!(all.contains(d), "{d}");
        }
    }

    #[test]
    fn answers_are_normalized() {
        type Case<'a> = (&'a [u8], u8, Option<&'a [u8]>);
        let table: &[Case] = &[
            (b"123456", 6, Some(b"123456")),
            (b"123 456", 6, Some(b"123456")),
            (b"123-456", 6, Some(b"123456")),
            (b"12345", 6, None),
            (b"1234567", 6, None),
            (b"12345a", 6, None),
            (b"", 6, None),
            (b"0123456789", 10, Some(b"0123456789")),
            (b"lost", 6, None),
        ];
        for (answer, len, want) in table {
            assert_eq!(
                normalize(answer, *len).as_deref().map(|v| v.as_slice()),
                *want,
                "{answer:?}"
            );
        }
        assert!(normalize(&[b'1'; 65], 6).is_none());
    }

    #[test]
    fn the_hash_depends_on_key_user_purpose_and_code() {
        let alice = UserName::parse("alice").unwrap();
        let bob = UserName::parse("bob").unwrap();
        let base = keyed_hash(b"k", &alice, Purpose::SignIn, b"123456");
        assert_eq!(base, keyed_hash(b"k", &alice, Purpose::SignIn, b"123456"));
        for other in [
            keyed_hash(b"K", &alice, Purpose::SignIn, b"123456"),
            keyed_hash(b"", &alice, Purpose::SignIn, b"123456"),
            keyed_hash(b"k", &bob, Purpose::SignIn, b"123456"),
            keyed_hash(b"k", &alice, Purpose::LostDevice, b"123456"),
            keyed_hash(b"k", &alice, Purpose::Confirm, b"123456"),
            keyed_hash(b"k", &alice, Purpose::SignIn, b"123457"),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn lock_notices_are_held_to_one_per_interval() {
        let now = 100_000;
        let state = |at: u64, held: u32| UserState {
            lock_notice_at: at,
            lock_notices_held: held,
            ..UserState::default()
        };
        // (last mailed, held back, min_interval) -> (mailed now with this
        // count held back, or held back; the state after)
        type Case = (u64, u32, u64, Option<u32>, (u64, u32));
        let table: &[Case] = &[
            (0, 0, 600, Some(0), (now, 0)),
            (now - 100, 0, 600, None, (now - 100, 1)),
            (now - 100, 4, 600, None, (now - 100, 5)),
            (now - 600, 4, 600, Some(4), (now, 0)),
            (now - 601, 2, 600, Some(2), (now, 0)),
            (now, 0, 0, Some(0), (now, 0)),
            (now + 50, 3, 600, Some(3), (now, 0)),
            (now - 1, u32::MAX, 600, None, (now - 1, u32::MAX)),
        ];
        for &(at, held, interval, want, (next_at, next_held)) in table {
            let (next, got) = lock_notice(&state(at, held), now, interval);
            assert_eq!(got, want, "{at} {held} {interval}");
            assert_eq!(
                (next.lock_notice_at, next.lock_notices_held),
                (next_at, next_held),
                "{at} {held} {interval}"
            );
        }
    }

    #[test]
    fn what_may_be_sent_outside_a_login() {
        let now = 10_000;
        // (sends, per hour, resend_after) -> allowance
        type Case = (Vec<u64>, u32, u64, Allowance);
        let table: &[Case] = &[
            (vec![], 5, 60, Allowance::Send),
            (vec![], 0, 0, Allowance::Throttled { until: now }),
            (
                vec![now - 30],
                5,
                60,
                Allowance::TooSoon { until: now + 30 },
            ),
            (vec![now - 60], 5, 60, Allowance::Send),
            (vec![now], 5, 0, Allowance::Send),
            // The newest send decides the gap, whatever the order kept.
            (
                vec![now - 10, now - 3000],
                5,
                60,
                Allowance::TooSoon { until: now + 50 },
            ),
            (
                vec![now - 3000, now - 2000, now - 1000, now - 500, now - 100],
                5,
                60,
                Allowance::Throttled {
                    until: now - 3000 + HOUR,
                },
            ),
            (
                vec![now - 3600, now - 2000, now - 1000, now - 500, now - 100],
                5,
                60,
                Allowance::Send,
            ),
            // Sends in the future (a clock set back) do not count.
            (vec![now + 100; 5], 5, 60, Allowance::Send),
            (
                vec![now - 100, now - 200],
                2,
                0,
                Allowance::Throttled {
                    until: now - 200 + HOUR,
                },
            ),
        ];
        for (sends, per_hour, resend, want) in table {
            assert_eq!(
                allowance(sends, now, *per_hour, *resend),
                *want,
                "{sends:?} {per_hour} {resend}"
            );
        }
    }

    #[test]
    fn when_a_code_is_sent() {
        let now = 10_000;
        // (sent code, sends, resend_after, per hour) -> plan
        // (sent code, sends, resend_after, per hour, plan)
        type Case = (Option<SentCode>, Vec<u64>, u64, u32, Plan);
        let table: &[Case] = &[
            (None, vec![], 60, 5, Plan::Send),
            // A good code sent 30 s ago: use it.
            (
                sent(Purpose::SignIn, now - 30, now + 270),
                vec![now - 30],
                60,
                5,
                Plan::UseSent {
                    sent_at: now - 30,
                    expires: now + 270,
                },
            ),
            // Sent 60 s ago: resend_after has passed.
            (
                sent(Purpose::SignIn, now - 60, now + 240),
                vec![now - 60],
                60,
                5,
                Plan::Send,
            ),
            // Expired, though sent recently (a short validity).
            (
                sent(Purpose::SignIn, now - 30, now),
                vec![now - 30],
                60,
                5,
                Plan::Send,
            ),
            // A code of another purpose does not stand in.
            (
                sent(Purpose::LostDevice, now - 30, now + 270),
                vec![now - 30],
                60,
                5,
                Plan::Send,
            ),
            // resend_after = 0: always a new one.
            (
                sent(Purpose::SignIn, now, now + 300),
                vec![now],
                0,
                5,
                Plan::Send,
            ),
            // Five in the last hour: throttled until the oldest is an hour old.
            (
                None,
                vec![now - 3000, now - 2000, now - 1000, now - 500, now - 100],
                60,
                5,
                Plan::Throttled {
                    until: now - 3000 + HOUR,
                },
            ),
            // The oldest is older than an hour: four count.
            (
                None,
                vec![now - 3600, now - 2000, now - 1000, now - 500, now - 100],
                60,
                5,
                Plan::Send,
            ),
            // Sends in the future (a clock set back) do not count.
            (None, vec![now + 100; 5], 60, 5, Plan::Send),
            (
                None,
                vec![now - 10],
                60,
                1,
                Plan::Throttled {
                    until: now - 10 + HOUR,
                },
            ),
        ];
        for (i, (code, sends, resend, per_hour, want)) in table.iter().enumerate() {
            let state = UserState {
                sent: code.clone(),
                sends: sends.clone(),
                ..UserState::default()
            };
            assert_eq!(
                plan(&state, Purpose::SignIn, now, &codes(*resend, *per_hour)),
                *want,
                "case {i}"
            );
        }
    }

    #[test]
    fn a_send_is_counted_and_old_sends_dropped() {
        let state = UserState {
            sends: vec![100, 5000, 6000],
            ..UserState::default()
        };
        let next = after_send(&state, Purpose::SignIn, [1; 32], 7000, 300);
        assert_eq!(next.sends, [5000, 6000, 7000]);
        assert_eq!(
            next.sent,
            Some(SentCode {
                purpose: Purpose::SignIn,
                hash: [1; 32],
                expires: 7300,
                sent_at: 7000
            })
        );
    }

    #[test]
    fn answers_are_judged() {
        let now = 1000;
        let right = [7; 32];
        let table = [
            (
                sent(Purpose::SignIn, 900, 1200),
                right,
                Purpose::SignIn,
                Verdict::Right,
            ),
            (
                sent(Purpose::SignIn, 900, 1000),
                right,
                Purpose::SignIn,
                Verdict::Expired,
            ),
            (
                sent(Purpose::SignIn, 900, 999),
                right,
                Purpose::SignIn,
                Verdict::Expired,
            ),
            (
                sent(Purpose::SignIn, 900, 1200),
                [8; 32],
                Purpose::SignIn,
                Verdict::Wrong,
            ),
            (
                sent(Purpose::LostDevice, 900, 1200),
                right,
                Purpose::SignIn,
                Verdict::Wrong,
            ),
            (None, right, Purpose::SignIn, Verdict::Wrong),
        ];
        for (i, (code, hash, purpose, want)) in table.iter().enumerate() {
            assert_eq!(judge(code.as_ref(), *purpose, hash, now), *want, "case {i}");
        }
    }
}
