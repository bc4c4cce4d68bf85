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
mod tests {
    use super::*;

    fn sample() -> UserState {
        UserState {
            counters: Counters {
                failures: 7,
                tier_failures: 2,
                tier: 1,
                locked_until: 1_900_000_000,
            },
            last_step_time: 1_800_000_000,
            last_success: 1_799_999_999,
            remembered: vec![
                Remembered {
                    addr: "192.0.2.1".parse().unwrap(),
                    until: 5,
                    seen: 0,
                },
                Remembered {
                    addr: "2001:db8::1".parse().unwrap(),
                    until: 6,
                    seen: 1_799_999_900,
                },
            ],
            epoch: 0x0102_0304,
            sent: Some(SentCode {
                purpose: Purpose::LostDevice,
                hash: [0xab; 32],
                expires: 1_800_000_900,
                sent_at: 1_800_000_000,
            }),
            sends: vec![1_799_999_000, 1_800_000_000],
            lock_notice_at: 1_799_999_500,
            lock_notices_held: 3,
            device_steps: Vec::new(),
        }
    }

    fn named(i: u8) -> DeviceStep {
        DeviceStep {
            id: DeviceId([i; 8]),
            step_time: 1_800_000_000 + u64::from(i),
        }
    }

    #[test]
    fn named_steps_make_a_twostep6_slot_and_only_they_do() {
        // (state) -> magic written, decodes to itself
        let full = UserState {
            remembered: sample()
                .remembered
                .iter()
                .cycle()
                .take(MAX_REMEMBERED)
                .copied()
                .collect(),
            sends: (0..MAX_SENDS as u64).collect(),
            ..sample()
        };
        let table = [
            (sample(), MAGIC),
            (
                UserState {
                    device_steps: vec![named(1)],
                    ..sample()
                },
                MAGIC_V6,
            ),
            (
                UserState {
                    device_steps: (1..=8).map(named).collect(),
                    ..UserState::default()
                },
                MAGIC_V6,
            ),
            // Every list at its longest still fits a slot.
            (
                UserState {
                    device_steps: (1..=8).map(named).collect(),
                    ..full
                },
                MAGIC_V6,
            ),
        ];
        for (state, magic) in table {
            let b = encode(&state, 9);
            assert_eq!(&b[0..8], magic);
            assert_eq!(decode(&b), Some((9, state)));
        }
        // A step past u32 saturates: it is refused for good, never reopened.
        let far = UserState {
            device_steps: vec![DeviceStep {
                id: DeviceId([7; 8]),
                step_time: u64::MAX,
            }],
            ..UserState::default()
        };
        let (_, back) = decode(&encode(&far, 1)).unwrap();
        assert_eq!(back.device_steps[0].step_time, u64::from(u32::MAX));
    }

    #[test]
    fn a_twostep6_slot_with_a_bad_count_is_refused() {
        let state = UserState {
            device_steps: vec![named(1), named(2)],
            ..UserState::default()
        };
        let good = encode(&state, 1);
        let at = in_use(0, REMEMBERED_SIZE, false, 0);
        for count in [0u32, 9, u32::MAX] {
            let mut b = good;
            b[at..at + 4].copy_from_slice(&count.to_le_bytes());
            assert!(
                checksummed_len(&b).is_none() || decode(&b).is_none(),
                "{count}"
            );
        }
    }

    #[test]
    fn slot_round_trip() {
        // (state) -> decodes to itself, with each part present or not
        let full = sample();
        let cases = [
            UserState::default(),
            full.clone(),
            UserState {
                sent: None,
                ..full.clone()
            },
            UserState {
                sends: vec![],
                remembered: vec![],
                ..full.clone()
            },
            UserState {
                remembered: full
                    .remembered
                    .iter()
                    .cycle()
                    .take(MAX_REMEMBERED)
                    .copied()
                    .collect(),
                sends: (0..MAX_SENDS as u64).collect(),
                ..full.clone()
            },
        ];
        for s in cases {
            let (seq, back) = decode(&encode(&s, 42)).unwrap();
            assert_eq!((seq, &back), (42, &s));
        }
    }

    #[test]
    fn an_app_users_slot_is_one_checksum_block() {
        // The header only: BLAKE2b's block is 128 bytes.
        assert_eq!(checksummed_len(&encode(&UserState::default(), 1)), Some(64));
        assert_eq!(
            checksummed_len(&encode(&sample(), 1)),
            Some(64 + 64 + 48 + 16)
        );
    }

    #[test]
    fn every_single_bit_flip_is_detected() {
        let good = encode(&sample(), 3);
        for byte in 0..SLOT {
            for bit in 0..8 {
                let mut b = good;
                b[byte] ^= 1 << bit;
                assert!(decode(&b).is_none(), "flip at byte {byte} bit {bit}");
            }
        }
    }

    #[test]
    fn lengths_out_of_bounds_are_refused() {
        for (at, value) in [(56, MAX_REMEMBERED + 1), (57, MAX_SENDS + 1), (58, 4)] {
            let mut b = encode(&sample(), 1);
            b[at] = value as u8;
            assert!(decode(&b).is_none(), "byte {at} = {value}");
        }
    }

    #[test]
    fn files_of_the_earlier_formats_are_read() {
        // TWOSTEP4: all but the time a source was last noted (never).
        let never_noted = UserState {
            remembered: sample()
                .remembered
                .iter()
                .map(|r| Remembered { seen: 0, ..*r })
                .collect(),
            ..sample()
        };
        assert_eq!(
            decode(&encode_v4(&sample(), 9)),
            Some((9, never_noted.clone()))
        );
        let image = [encode_v4(&sample(), 1), encode(&UserState::default(), 0)].concat();
        assert_eq!(current(&image).unwrap().2, never_noted);
        let s = UserState {
            sent: None,
            sends: vec![],
            lock_notice_at: 0,
            lock_notices_held: 0,
            ..never_noted
        };
        // TWOSTEP3: the checksum covers the bytes in use.
        let v3 = encode_v3(&s, 7);
        assert_eq!(decode(&v3), Some((7, s.clone())));
        let image = [encode_v3(&s, 1), encode_v3(&UserState::default(), 0)].concat();
        assert_eq!(current(&image).unwrap().2, s);
        // TWOSTEP2: the checksum covers all 480 bytes before it.
        let mut v2 = v3.clone();
        v2[0..8].copy_from_slice(MAGIC_V2);
        let sum = checksum(&v2[..checksum_at(SLOT_V3)]);
        let at = checksum_at(SLOT_V3);
        v2[at..].copy_from_slice(&sum);
        assert_eq!(decode(&v2), Some((7, s)));
        // A magic read with the other slot size is no slot.
        assert!(decode(&encode(&UserState::default(), 1)[..SLOT_V3]).is_none());
    }

    #[test]
    fn newest_valid_slot_wins_and_a_torn_slot_falls_back() {
        let old = UserState::default();
        let new = sample();
        let image = [encode(&old, 1), encode(&new, 2)].concat();
        assert_eq!(current(&image).unwrap().2, new);
        // The write of the newer slot was torn at every possible length.
        let newer = encode(
            &UserState {
                last_success: 9,
                ..new.clone()
            },
            3,
        );
        for cut in 0..SLOT {
            let mut torn = [encode(&old, 1), encode(&new, 2)].concat();
            torn[..cut].copy_from_slice(&newer[..cut]);
            let (_, seq, got) = current(&torn).unwrap();
            assert_eq!((seq, got), (2, new.clone()), "torn at {cut}");
        }
    }

    #[test]
    fn the_valid_slot_with_the_higher_number_is_current() {
        // (slot 0, slot 1) as (valid, sequence number it claims) -> the slot
        // read, or None for corruption.
        type Slot = (bool, u64);
        let table: &[(Slot, Slot, Option<usize>)] = &[
            ((true, 5), (true, 6), Some(1)),
            ((true, 7), (true, 6), Some(0)),
            ((true, 5), (false, 9), Some(0)),
            ((false, 9), (true, 5), Some(1)),
            ((false, u64::MAX), (true, 0), Some(1)),
            ((true, 0), (false, u64::MAX), Some(0)),
            ((true, 4), (true, 4), Some(0)),
            ((false, 1), (false, 2), None),
        ];
        let slot = |(valid, seq): Slot, marker: u64| {
            let mut b = encode(
                &UserState {
                    last_success: marker,
                    ..UserState::default()
                },
                seq,
            );
            if !valid {
                b[SLOT - 1] ^= 1; // a damaged checksum; the number still reads
            }
            b
        };
        for &(a, b, want) in table {
            let image = [slot(a, 100), slot(b, 101)].concat();
            match (current(&image), want) {
                (Ok((got, seq, s)), Some(want)) => {
                    let claimed = if want == 0 { a.1 } else { b.1 };
                    assert_eq!(
                        (got, seq, s.last_success),
                        (want, claimed, 100 + want as u64)
                    );
                }
                (Err(StateError::Corrupt(_)), None) => {}
                (got, want) => panic!("{a:?} {b:?}: got {got:?}, want slot {want:?}"),
            }
        }
    }

    #[test]
    fn truncation_to_any_length_is_corruption() {
        let image = [encode(&sample(), 1), encode(&sample(), 2)].concat();
        for len in 0..image.len() {
            if len as u64 == FILE_SIZE_V3 {
                continue;
            }
            assert!(
                matches!(current(&image[..len]), Err(StateError::Corrupt(_))),
                "len {len}"
            );
        }
        // The earlier format's length holds no valid slot of this one.
        assert!(matches!(
            current(&image[..FILE_SIZE_V3 as usize]),
            Err(StateError::Corrupt(_))
        ));
        assert!(matches!(current(&[0u8; 2048]), Err(StateError::Corrupt(_))));
    }
}
