//! The state file's bytes: two slots, each a whole copy of the state with a
//! sequence number and a BLAKE2b-256 checksum.
//!
//! # Formats
//! - `TWOSTEP6` (written for a user with named authenticators' steps): a
//!   TWOSTEP5 slot followed, after the sends, by the named authenticators'
//!   last accepted steps: a 4-byte count, then 12 bytes each (8 of the
//!   name's digest, the step's start as u32 Unix seconds, saturating in
//!   2106). Every other user's slot stays TWOSTEP5, which the previous
//!   version reads: a downgrade loses nothing but for users with several
//!   authenticators, whose secret files it refuses anyway. The first
//!   TWOSTEP6 slot is written into both (`super::Locked::write`): the
//!   previous version, finding no slot it reads, denies and writes nothing,
//!   rather than read the state from before and lose the named steps.
//! - `TWOSTEP5` (written for everyone else): 1024-byte slots, a 2048-byte file. After the
//!   64-byte header come the remembered sources (32 bytes each: the address,
//!   until when it is remembered, when a login from it was last noted), then,
//!   if one is outstanding, the sent code (48 bytes), then the times of the
//!   codes sent in the last hour (8 bytes each). The checksum covers the bytes in
//!   use and the rest must be zero: an app user's slot is one BLAKE2b block.
//!   The header's last five bytes, once padding, hold the lock-notice
//!   throttle (`notify.min_interval`): byte 59 the notices held back
//!   (saturating at 255), bytes 60-63 when the last one was mailed (Unix
//!   seconds, u32). A version that predates them reads past them and
//!   writes zeros: it forgets the throttle, nothing else.
//! - `TWOSTEP4` (read): the same, but 24-byte sources without the time last
//!   noted (read as 0: never). A version that reads only TWOSTEP4 finds a
//!   TWOSTEP5 file damaged (the user counts as locked until `twostep
//!   unlock`): downgrades across this change need the state files removed.
//! - `TWOSTEP3` and `TWOSTEP2` (read): 512-byte slots, a 1024-byte file,
//!   without sent codes; TWOSTEP2 checksums all 480 bytes before the sum.
//!   A file of the earlier format is read as is and rewritten in this one the
//!   first time it is locked for an update (`super::lock`).
#![forbid(unsafe_code)]

use super::{
    DeviceId, DeviceStep, MAX_DEVICE_STEPS, Purpose, Remembered, SentCode, StateError, UserState,
};
use crate::rules::lockout::Counters;
use blake2::{Blake2b256, Digest};
use std::net::{IpAddr, Ipv6Addr};

const MAGIC_V6: &[u8; 8] = b"TWOSTEP6";
const MAGIC: &[u8; 8] = b"TWOSTEP5";
const MAGIC_V4: &[u8; 8] = b"TWOSTEP4";
const MAGIC_V3: &[u8; 8] = b"TWOSTEP3";
const MAGIC_V2: &[u8; 8] = b"TWOSTEP2";
pub const SLOT: usize = 1024;
const SLOT_V3: usize = 512;
pub const FILE_SIZE: u64 = (2 * SLOT) as u64;
/// The size of a file of the earlier format.
pub const FILE_SIZE_V3: u64 = (2 * SLOT_V3) as u64;
const HEADER: usize = 64;
const REMEMBERED_SIZE: usize = 32;
/// A remembered source in TWOSTEP4 and earlier: no time last noted.
const REMEMBERED_SIZE_V4: usize = 24;
const SENT_CODE_SIZE: usize = 48;
const SEND_SIZE: usize = 8;
const DEVICE_COUNT_SIZE: usize = 4;
const DEVICE_STEP_SIZE: usize = 12;
/// Remembered source addresses kept per user (policy.remember); the oldest
/// goes first.
pub const MAX_REMEMBERED: usize = 16;
/// Sends kept per user: codes.max_per_hour is at most this.
pub const MAX_SENDS: usize = crate::config::MAX_SENDS_PER_HOUR as usize;

/// Where a slot's checksum is: its last 32 bytes.
fn checksum_at(slot_len: usize) -> usize {
    slot_len - 32
}

/// A slot's checksum, over the bytes in use before it. It detects torn and
/// damaged slots; it is no defence against root, who can write any file.
/// BLAKE2b rather than SHA-256: as fast in plain code, so it needs no CPU
/// feature probe, which costs microseconds in every freshly loaded module (in
/// a VM, each CPUID instruction traps to the hypervisor).
pub fn checksum(body: &[u8]) -> [u8; 32] {
    Blake2b256::digest(body).into()
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn purpose_byte(p: Purpose) -> u8 {
    match p {
        Purpose::SignIn => 1,
        Purpose::LostDevice => 2,
        Purpose::Confirm => 3,
    }
}

fn purpose_of(b: u8) -> Option<Purpose> {
    match b {
        1 => Some(Purpose::SignIn),
        2 => Some(Purpose::LostDevice),
        3 => Some(Purpose::Confirm),
        _ => None,
    }
}

/// The bytes of a TWOSTEP5 (or, with 24-byte sources, TWOSTEP4) slot in
/// use: the header, `n` remembered sources of `entry` bytes, a sent code if
/// `code`, and `m` sends.
fn in_use(n: usize, entry: usize, code: bool, m: usize) -> usize {
    HEADER + n * entry + if code { SENT_CODE_SIZE } else { 0 } + m * SEND_SIZE
}

/// Encodes one TWOSTEP5 slot. Lists longer than the format holds keep their
/// last entries (the newest).
pub fn encode(state: &UserState, seq: u64) -> [u8; SLOT] {
    let magic = if state.device_steps.is_empty() {
        MAGIC
    } else {
        MAGIC_V6
    };
    encode_as(state, seq, magic, REMEMBERED_SIZE)
}

/// A slot of `magic`'s layout, whose sources take `entry` bytes (the
/// earlier formats' for the tests that read them).
fn encode_as(state: &UserState, seq: u64, magic: &[u8; 8], entry: usize) -> [u8; SLOT] {
    let mut b = [0u8; SLOT];
    b[0..8].copy_from_slice(magic);
    b[8..16].copy_from_slice(&seq.to_le_bytes());
    let c = &state.counters;
    b[16..20].copy_from_slice(&c.failures.to_le_bytes());
    b[20..24].copy_from_slice(&c.tier_failures.to_le_bytes());
    b[24..28].copy_from_slice(&c.tier.to_le_bytes());
    b[28..32].copy_from_slice(&state.epoch.to_le_bytes());
    b[32..40].copy_from_slice(&c.locked_until.to_le_bytes());
    b[40..48].copy_from_slice(&state.last_step_time.to_le_bytes());
    b[48..56].copy_from_slice(&state.last_success.to_le_bytes());
    let remembered = tail(&state.remembered, MAX_REMEMBERED);
    let sends = tail(&state.sends, MAX_SENDS);
    b[56] = u8::try_from(remembered.len()).unwrap_or(0);
    b[57] = u8::try_from(sends.len()).unwrap_or(0);
    b[58] = state.sent.as_ref().map_or(0, |s| purpose_byte(s.purpose));
    b[59] = u8::try_from(state.lock_notices_held).unwrap_or(u8::MAX);
    b[60..64].copy_from_slice(
        &u32::try_from(state.lock_notice_at)
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    let mut at = HEADER;
    for r in remembered {
        let v6 = match r.addr {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        b[at..at + 16].copy_from_slice(&v6.octets());
        b[at + 16..at + 24].copy_from_slice(&r.until.to_le_bytes());
        if entry == REMEMBERED_SIZE {
            b[at + 24..at + 32].copy_from_slice(&r.seen.to_le_bytes());
        }
        at += entry;
    }
    if let Some(sent) = &state.sent {
        b[at..at + 32].copy_from_slice(&sent.hash);
        b[at + 32..at + 40].copy_from_slice(&sent.expires.to_le_bytes());
        b[at + 40..at + 48].copy_from_slice(&sent.sent_at.to_le_bytes());
        at += SENT_CODE_SIZE;
    }
    for t in sends {
        b[at..at + 8].copy_from_slice(&t.to_le_bytes());
        at += SEND_SIZE;
    }
    if magic == MAGIC_V6 {
        let devices = tail(&state.device_steps, MAX_DEVICE_STEPS);
        b[at..at + 4].copy_from_slice(&(devices.len() as u32).to_le_bytes());
        at += DEVICE_COUNT_SIZE;
        for d in devices {
            b[at..at + 8].copy_from_slice(&d.id.0);
            let t = u32::try_from(d.step_time).unwrap_or(u32::MAX);
            b[at + 8..at + 12].copy_from_slice(&t.to_le_bytes());
            at += DEVICE_STEP_SIZE;
        }
    }
    let sum = checksum(&b[..at]);
    b[checksum_at(SLOT)..].copy_from_slice(&sum);
    b
}

fn tail<T>(v: &[T], max: usize) -> &[T] {
    &v[v.len().saturating_sub(max)..]
}

/// How many leading bytes of a whole slot its checksum covers, by its magic
/// and lengths. `None` for a slot of no known format, or one whose lengths
/// are out of bounds.
pub fn checksummed_len(b: &[u8]) -> Option<usize> {
    let n = usize::from(*b.get(56)?);
    if n > MAX_REMEMBERED {
        return None;
    }
    match b.get(0..8)? {
        m if m == MAGIC_V6 && b.len() == SLOT => {
            let sends = usize::from(*b.get(57)?);
            let code = *b.get(58)? != 0;
            if sends > MAX_SENDS {
                return None;
            }
            let at = in_use(n, REMEMBERED_SIZE, code, sends);
            let count = usize::try_from(u32_at(b, at)).ok()?;
            if count == 0 || count > MAX_DEVICE_STEPS {
                return None;
            }
            Some(at + DEVICE_COUNT_SIZE + count * DEVICE_STEP_SIZE)
        }
        m if (m == MAGIC || m == MAGIC_V4) && b.len() == SLOT => {
            let sends = usize::from(*b.get(57)?);
            let code = *b.get(58)? != 0;
            let entry = if m == MAGIC {
                REMEMBERED_SIZE
            } else {
                REMEMBERED_SIZE_V4
            };
            (sends <= MAX_SENDS).then(|| in_use(n, entry, code, sends))
        }
        m if m == MAGIC_V3 && b.len() == SLOT_V3 => Some(HEADER + n * REMEMBERED_SIZE_V4),
        m if m == MAGIC_V2 && b.len() == SLOT_V3 => Some(checksum_at(SLOT_V3)),
        _ => None,
    }
}

/// Decodes one slot of either format: `(seq, state)` if its checksum and
/// fields are valid.
pub fn decode(b: &[u8]) -> Option<(u64, UserState)> {
    let summed = checksummed_len(b)?;
    let sum_at = checksum_at(b.len());
    // Bytes outside the checksum must be zero, or damage there would pass.
    if b[summed..sum_at].iter().any(|&x| x != 0) {
        return None;
    }
    let sum = checksum(&b[..summed]);
    let ok: bool = subtle::ConstantTimeEq::ct_eq(&sum[..], &b[sum_at..]).into();
    if !ok {
        return None;
    }
    let v4 = b.len() == SLOT;
    let v6 = &b[0..8] == MAGIC_V6;
    let v5 = &b[0..8] == MAGIC || v6;
    let entry = if v5 {
        REMEMBERED_SIZE
    } else {
        REMEMBERED_SIZE_V4
    };
    let n = usize::from(b[56]);
    let mut at = HEADER;
    let mut remembered = Vec::with_capacity(n);
    for _ in 0..n {
        let mut o = [0u8; 16];
        o.copy_from_slice(&b[at..at + 16]);
        let v6 = Ipv6Addr::from(o);
        remembered.push(Remembered {
            addr: v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            until: u64_at(b, at + 16),
            seen: if v5 { u64_at(b, at + 24) } else { 0 },
        });
        at += entry;
    }
    let (mut sent, mut sends) = (None, Vec::new());
    if v4 {
        if b[58] != 0 {
            let mut hash = [0u8; 32];
            hash.copy_from_slice(&b[at..at + 32]);
            sent = Some(SentCode {
                purpose: purpose_of(b[58])?,
                hash,
                expires: u64_at(b, at + 32),
                sent_at: u64_at(b, at + 40),
            });
            at += SENT_CODE_SIZE;
        }
        for _ in 0..usize::from(b[57]) {
            sends.push(u64_at(b, at));
            at += SEND_SIZE;
        }
    }
    let mut device_steps = Vec::new();
    if v6 {
        let count = usize::try_from(u32_at(b, at)).ok()?;
        at += DEVICE_COUNT_SIZE;
        for _ in 0..count {
            let mut id = [0u8; 8];
            id.copy_from_slice(&b[at..at + 8]);
            device_steps.push(DeviceStep {
                id: DeviceId(id),
                step_time: u64::from(u32_at(b, at + 8)),
            });
            at += DEVICE_STEP_SIZE;
        }
    }
    let state = UserState {
        counters: Counters {
            failures: u32_at(b, 16),
            tier_failures: u32_at(b, 20),
            tier: u32_at(b, 24),
            locked_until: u64_at(b, 32),
        },
        last_step_time: u64_at(b, 40),
        last_success: u64_at(b, 48),
        remembered,
        // Zero in slots written before epochs existed: these bytes were
        // padding.
        epoch: u32_at(b, 28),
        sent,
        sends,
        // Header bytes that earlier versions wrote as zero and read past:
        // a downgrade forgets the notice throttle, nothing more.
        lock_notice_at: if v4 { u64::from(u32_at(b, 60)) } else { 0 },
        lock_notices_held: if v4 { u32::from(b[59]) } else { 0 },
        device_steps,
    };
    Some((u64_at(b, 8), state))
}

/// The current state in a whole file image of either format: the valid
/// slot with the higher sequence number. The slot that claims the higher
/// number is checked first, and the other only if that one is not valid:
/// one checksum per read. Returns the slot's index too.
pub fn current(image: &[u8]) -> Result<(usize, u64, UserState), StateError> {
    let slot = match image.len() as u64 {
        FILE_SIZE => SLOT,
        FILE_SIZE_V3 => SLOT_V3,
        other => {
            return Err(StateError::Corrupt(format!(
                "{other} bytes, expected {FILE_SIZE} (or {FILE_SIZE_V3}, the earlier format)"
            )));
        }
    };
    let claimed = |i: usize| u64_at(image, i * slot + 8);
    // A tie checks slot 0 first, as a tie always has.
    let order = if claimed(1) > claimed(0) {
        [1, 0]
    } else {
        [0, 1]
    };
    order
        .into_iter()
        .find_map(|i| decode(&image[i * slot..(i + 1) * slot]).map(|(seq, s)| (i, seq, s)))
        .ok_or_else(|| StateError::Corrupt("no valid copy of the state".into()))
}

/// A whole TWOSTEP5 file image of `state`, both slots valid (the newer is
/// slot 0).
pub fn image(state: &UserState) -> Vec<u8> {
    [encode(state, 1), encode(state, 0)].concat()
}

/// A slot of the earlier format TWOSTEP4, for the tests that read them.
#[cfg(test)]
pub fn encode_v4(state: &UserState, seq: u64) -> [u8; SLOT] {
    encode_as(state, seq, MAGIC_V4, REMEMBERED_SIZE_V4)
}

/// A slot of the earlier format (TWOSTEP3), for the tests that read them.
#[cfg(test)]
pub fn encode_v3(state: &UserState, seq: u64) -> Vec<u8> {
    let mut b = encode_v4(
        &UserState {
            sent: None,
            sends: Vec::new(),
            lock_notice_at: 0,
            lock_notices_held: 0,
            device_steps: Vec::new(),
            ..state.clone()
        },
        seq,
    )[..SLOT_V3]
        .to_vec();
    b[0..8].copy_from_slice(MAGIC_V3);
    b[57] = 0;
    b[58] = 0;
    let n = usize::from(b[56]);
    let sum = checksum(&b[..HEADER + n * REMEMBERED_SIZE_V4]);
    let at = checksum_at(SLOT_V3);
    b[at..].copy_from_slice(&sum);
    b
}

#[cfg(test)]
#[path = "slot_tests.rs"]
mod tests;
