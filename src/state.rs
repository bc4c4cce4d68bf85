//! Per-user state: lockout counters, the last accepted time step, remembered
//! sources. One file per user in `state_dir`.
//!
//! # Durability without a rename
//! The file is two fixed-size slots. An update writes the whole new state into
//! the slot that does not hold the current state, with a higher sequence
//! number and a BLAKE2b-256 checksum of the bytes in use, then `fdatasync`s. A
//! crash at any instant leaves the current slot untouched, so a reader sees
//! the old state or the new, never a torn one. Because the file is updated in
//! place, one `flock` on it serializes every read-modify-write, and one data
//! sync makes the update durable (no directory sync, no temporary files).
//!
//! A file of the wrong size, wrong owner or mode, or with no valid slot is
//! [`StateError::Corrupt`]: the caller treats the user as locked.
#![forbid(unsafe_code)]

use crate::fsutil;
use crate::lockout::Counters;
use crate::user::UserName;
use blake2::{Blake2b256, Digest};
use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Slots checksum the bytes in use (the header and the remembered sources)
/// and require the rest to be zero: one BLAKE2b block for most users instead
/// of four, and still every damaged byte is detected. Slots of the earlier
/// format (TWOSTEP2, from development builds), which checksum all 480 bytes,
/// are still read; updates write this format.
const MAGIC: &[u8; 8] = b"TWOSTEP3";
const MAGIC_WHOLE_SLOT: &[u8; 8] = b"TWOSTEP2";
const SLOT: usize = 512;
const HEADER: usize = 64;
const REMEMBERED_SIZE: usize = 24;
pub const FILE_SIZE: u64 = (2 * SLOT) as u64;
/// Remembered source addresses kept per user (policy.remember); the oldest
/// goes first.
pub const MAX_REMEMBERED: usize = 16;
const CHECKSUMMED: usize = SLOT - 32;
/// How long an attempt waits for another attempt on the same user.
const LOCK_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserState {
    pub counters: Counters,
    /// Start (Unix seconds) of the last accepted code's time step. A code is
    /// accepted only for a later step. Stored as a time rather than a step
    /// number so that a change of `period` cannot reopen old codes.
    pub last_step_time: u64,
    /// Unix seconds of the last successful code login; 0 = never.
    pub last_success: u64,
    pub remembered: Vec<Remembered>,
    /// Bumped by every reset of the counters (a success, an unlock). An
    /// attempt's reservation (counted in `preauth`) belongs to the epoch it
    /// was made in: once a reset has wiped it, the attempt's failure is
    /// counted again rather than lost.
    pub epoch: u32,
}

impl UserState {
    /// The state after a successful login or an unlock: counters cleared, a
    /// new epoch.
    pub fn reset(&self) -> UserState {
        UserState {
            counters: crate::lockout::reset(),
            epoch: self.epoch.wrapping_add(1),
            ..self.clone()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remembered {
    pub addr: IpAddr,
    /// Unix seconds.
    pub until: u64,
}

#[derive(Debug)]
pub enum StateError {
    /// The file exists but cannot be trusted: the user counts as locked.
    Corrupt(String),
    /// Another attempt held the lock for too long.
    Busy,
    Io(io::Error),
}

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateError::Corrupt(why) => write!(f, "state file fails its integrity check: {why}"),
            StateError::Busy => write!(
                f,
                "state file is locked by another login for over {}s",
                LOCK_WAIT.as_secs()
            ),
            StateError::Io(e) => write!(f, "state file: {e}"),
        }
    }
}

impl std::error::Error for StateError {}

impl From<io::Error> for StateError {
    fn from(e: io::Error) -> Self {
        StateError::Io(e)
    }
}

pub fn path_for(state_dir: &Path, user: &UserName) -> PathBuf {
    state_dir.join(user.as_str())
}

// ---- encoding ----------------------------------------------------------------

fn encode(state: &UserState, seq: u64) -> [u8; SLOT] {
    let mut b = [0u8; SLOT];
    b[0..8].copy_from_slice(MAGIC);
    b[8..16].copy_from_slice(&seq.to_le_bytes());
    let c = &state.counters;
    b[16..20].copy_from_slice(&c.failures.to_le_bytes());
    b[20..24].copy_from_slice(&c.tier_failures.to_le_bytes());
    b[24..28].copy_from_slice(&c.tier.to_le_bytes());
    b[28..32].copy_from_slice(&state.epoch.to_le_bytes());
    b[32..40].copy_from_slice(&c.locked_until.to_le_bytes());
    b[40..48].copy_from_slice(&state.last_step_time.to_le_bytes());
    b[48..56].copy_from_slice(&state.last_success.to_le_bytes());
    let n = state.remembered.len().min(MAX_REMEMBERED);
    b[56] = u8::try_from(n).unwrap_or(0);
    for (i, r) in state.remembered.iter().take(n).enumerate() {
        let at = HEADER + i * REMEMBERED_SIZE;
        let v6 = match r.addr {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        b[at..at + 16].copy_from_slice(&v6.octets());
        b[at + 16..at + 24].copy_from_slice(&r.until.to_le_bytes());
    }
    let sum = checksum(&b[..in_use(n)]);
    b[CHECKSUMMED..].copy_from_slice(&sum);
    b
}

/// The bytes of a slot that hold its state, with `n` remembered sources.
fn in_use(n: usize) -> usize {
    HEADER + n * REMEMBERED_SIZE
}

/// How many leading bytes of a whole slot its checksum covers, by its magic:
/// the bytes in use (TWOSTEP3) or all before the checksum (TWOSTEP2). `None`
/// for a slot of neither format or with too many remembered sources.
pub fn checksummed_len(b: &[u8]) -> Option<usize> {
    let n = usize::from(*b.get(56)?);
    if n > MAX_REMEMBERED {
        return None;
    }
    match b.get(0..8)? {
        m if m == MAGIC => Some(in_use(n)),
        m if m == MAGIC_WHOLE_SLOT => Some(CHECKSUMMED),
        _ => None,
    }
}

/// A slot's checksum, over the bytes in use before it. It detects torn and
/// damaged slots; it is no defence against root, who can write any file.
/// BLAKE2b rather than SHA-256: as fast in plain code, so it needs no CPU feature
/// probe, which costs microseconds in every freshly loaded module (in a VM,
/// each CPUID instruction traps to the hypervisor).
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

/// Decodes one slot: `(seq, state)` if its checksum and fields are valid.
fn decode(b: &[u8]) -> Option<(u64, UserState)> {
    if b.len() != SLOT {
        return None;
    }
    let summed = checksummed_len(b)?;
    // Bytes outside the checksum must be zero, or damage there would pass.
    if b[summed..CHECKSUMMED].iter().any(|&x| x != 0) {
        return None;
    }
    let n = usize::from(b[56]);
    let sum = checksum(&b[..summed]);
    let ok: bool = subtle::ConstantTimeEq::ct_eq(&sum[..], &b[CHECKSUMMED..]).into();
    if !ok {
        return None;
    }
    let remembered = (0..n)
        .map(|i| {
            let at = HEADER + i * REMEMBERED_SIZE;
            let mut o = [0u8; 16];
            o.copy_from_slice(&b[at..at + 16]);
            let v6 = Ipv6Addr::from(o);
            let addr = v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4);
            Remembered {
                addr,
                until: u64_at(b, at + 16),
            }
        })
        .collect();
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
        // Zero in slots written before epochs existed: the same layout,
        // these bytes were padding.
        epoch: u32_at(b, 28),
    };
    Some((u64_at(b, 8), state))
}

/// The current state in a whole file image: the valid slot with the higher
/// sequence number. The slot that claims the higher number is checked first,
/// and the other only if that one is not valid: one checksum per read.
fn current(image: &[u8]) -> Result<(usize, u64, UserState), StateError> {
    if image.len() as u64 != FILE_SIZE {
        return Err(StateError::Corrupt(format!(
            "{} bytes, expected {FILE_SIZE}",
            image.len()
        )));
    }
    let claimed = |slot: usize| u64_at(image, slot * SLOT + 8);
    // A tie checks slot 0 first, as a tie always has.
    let order = if claimed(1) > claimed(0) {
        [1, 0]
    } else {
        [0, 1]
    };
    order
        .into_iter()
        .find_map(|slot| {
            decode(&image[slot * SLOT..(slot + 1) * SLOT]).map(|(seq, s)| (slot, seq, s))
        })
        .ok_or_else(|| StateError::Corrupt("no valid copy of the state".into()))
}

/// The current state in a whole file image, as the module would read it:
/// the fuzz target for the state file decoder (fuzz/fuzz_targets/state_file.rs).
pub fn decode_image(image: &[u8]) -> Result<UserState, StateError> {
    current(image).map(|(_, _, s)| s)
}

/// Encodes `state` as a whole file image, both slots valid (the newer is
/// slot 0): the fuzz seeds and the tests that damage files start from this.
pub fn encode_image(state: &UserState) -> Vec<u8> {
    [encode(state, 1), encode(state, 0)].concat()
}

// ---- the store ----------------------------------------------------------------

/// A user's state file, open and exclusively locked. The lock is released on drop.
pub struct Locked {
    file: File,
    slot: usize,
    seq: u64,
    pub state: UserState,
}

impl Locked {
    /// Replaces the state durably: on disk before this returns.
    pub fn commit(&mut self, state: UserState) -> Result<(), StateError> {
        self.write(state)?;
        self.sync()
    }

    /// Replaces the state in the file without waiting for the disk: every
    /// other attempt sees it at once, and a killed process cannot lose it,
    /// but a power cut can until [`Locked::sync`] (or a later commit). An
    /// attempt writes its reservation this way before judging a code under
    /// the lock: a write that fails (a full disk, the caller's file-size
    /// limit) then denies before anything is judged, and the outcome's
    /// commit makes both durable with one flush.
    pub fn write(&mut self, state: UserState) -> Result<(), StateError> {
        let slot = 1 - self.slot;
        let seq = self.seq.wrapping_add(1);
        let bytes = encode(&state, seq);
        fsutil::with_file_size_limit_lifted(|| {
            self.file.write_all_at(&bytes, (slot * SLOT) as u64)
        })?;
        self.slot = slot;
        self.seq = seq;
        self.state = state;
        Ok(())
    }

    /// Makes what was written durable.
    pub fn sync(&mut self) -> Result<(), StateError> {
        self.file.sync_data()?;
        Ok(())
    }
}

/// Checks the opened file (its fstat), not the path: a regular file, owned by
/// root (or by whoever runs the tests' unprivileged store), not accessible to
/// others.
fn check_file(meta: &std::fs::Metadata) -> Result<(), StateError> {
    fsutil::check_private_file(meta, fsutil::expected_owner()).map_err(StateError::Corrupt)?;
    if meta.size() != FILE_SIZE {
        return Err(StateError::Corrupt(format!(
            "{} bytes, expected {FILE_SIZE}",
            meta.size()
        )));
    }
    Ok(())
}

fn read_image(file: &File) -> Result<Vec<u8>, StateError> {
    let mut image = vec![0u8; FILE_SIZE as usize];
    file.read_exact_at(&mut image, 0)?;
    Ok(image)
}

/// Whether the user has a state file (of any kind: it is checked when read).
pub fn exists(state_dir: &Path, user: &UserName) -> bool {
    std::fs::symlink_metadata(path_for(state_dir, user)).is_ok()
}

/// Reads a user's state without locking it for writing. `Ok(None)` when the
/// user has no state file (never failed, never logged in).
pub fn read(state_dir: &Path, user: &UserName) -> Result<Option<UserState>, StateError> {
    let path = path_for(state_dir, user);
    let file = match fsutil::open_nofollow(&path, false) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(fsutil::classify_open_error(
                e,
                StateError::Corrupt,
                StateError::Io,
            ));
        }
    };
    // A shared lock: never observe a slot while it is being written.
    flock_with_timeout(&file, false)?;
    check_file(&file.metadata()?)?;
    let image = read_image(&file)?;
    current(&image).map(|(_, _, s)| Some(s))
}

/// Opens (creating it if needed) and exclusively locks a user's state file.
pub fn lock(state_dir: &Path, user: &UserName) -> Result<Locked, StateError> {
    let path = path_for(state_dir, user);
    // The file can be removed (twostep reset) between our open and our lock:
    // after locking, make sure the path still names the file we hold.
    for _ in 0..5 {
        let file = match fsutil::open_nofollow(&path, true) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                create(state_dir, &path)?;
                continue;
            }
            Err(e) => {
                return Err(fsutil::classify_open_error(
                    e,
                    StateError::Corrupt,
                    StateError::Io,
                ));
            }
        };
        flock_with_timeout(&file, true)?;
        let meta = file.metadata()?;
        if !fsutil::still_at(&meta, &path)? {
            continue;
        }
        check_file(&meta)?;
        let image = read_image(&file)?;
        let (slot, seq, state) = current(&image)?;
        return Ok(Locked {
            file,
            slot,
            seq,
            state,
        });
    }
    Err(StateError::Io(io::Error::other(
        "state file keeps changing under us",
    )))
}

/// Creates a fresh state file atomically: written and synced under a temporary
/// name, then linked into place (never over an existing file), so that a file
/// at the real path is always complete. An empty or short file is therefore
/// always damage, never "new".
fn create(state_dir: &Path, path: &Path) -> Result<(), StateError> {
    let image = [
        encode(&UserState::default(), 1),
        encode(&UserState::default(), 0),
    ]
    .concat();
    match fsutil::with_file_size_limit_lifted(|| fsutil::create_complete(state_dir, path, &image)) {
        Ok(()) => Ok(()),
        // Another attempt created it first: use theirs.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StateError::Io(e)),
    }
}

fn flock_with_timeout(file: &File, exclusive: bool) -> Result<(), StateError> {
    let start = Instant::now();
    let mut pause = Duration::from_micros(200);
    loop {
        let r = if exclusive {
            file.try_lock()
        } else {
            file.try_lock_shared()
        };
        match r {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => return Err(StateError::Io(e)),
        }
        if start.elapsed() > LOCK_WAIT {
            return Err(StateError::Busy);
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// The same durable write an account's failure costs, to a file no user can
/// own (names may not start with '.'). Used for made-up user names, so that
/// their refusal takes as long as a real one. Errors are irrelevant here.
pub fn decoy_write(state_dir: &Path) {
    let path = state_dir.join(".decoy");
    let attempt = || -> Result<(), StateError> {
        let file = match fsutil::open_nofollow(&path, true) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                create(state_dir, &path)?;
                fsutil::open_nofollow(&path, true)?
            }
            Err(e) => return Err(StateError::Io(e)),
        };
        flock_with_timeout(&file, true)?;
        let image = read_image(&file)?;
        let (slot, seq, state) = current(&image)?;
        let mut locked = Locked {
            file,
            slot,
            seq,
            state,
        };
        locked.commit(UserState::default())
    };
    let _ = attempt();
}

/// Replaces a user's state under the lock (the CLI's unlock).
pub fn update<F>(state_dir: &Path, user: &UserName, f: F) -> Result<UserState, StateError>
where
    F: FnOnce(&UserState) -> UserState,
{
    let mut locked = lock(state_dir, user)?;
    let next = f(&locked.state);
    locked.commit(next.clone())?;
    Ok(next)
}

/// Overwrites a damaged state file with `state` (the CLI's unlock of a
/// corrupt file): the old file is replaced atomically.
pub fn replace(state_dir: &Path, user: &UserName, state: &UserState) -> Result<(), StateError> {
    let path = path_for(state_dir, user);
    let image = [encode(state, 1), encode(state, 0)].concat();
    fsutil::replace_complete(state_dir, &path, &image).map_err(StateError::Io)
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
                },
                Remembered {
                    addr: "2001:db8::1".parse().unwrap(),
                    until: 6,
                },
            ],
            epoch: 0x0102_0304,
        }
    }

    #[test]
    fn slot_round_trip() {
        let s = sample();
        let (seq, back) = decode(&encode(&s, 42)).unwrap();
        assert_eq!(seq, 42);
        assert_eq!(back, s);
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
    fn slots_of_the_whole_slot_format_are_read() {
        // TWOSTEP2: the checksum covers all 480 bytes before it.
        let s = sample();
        let mut b = encode(&s, 7);
        b[0..8].copy_from_slice(MAGIC_WHOLE_SLOT);
        let sum = checksum(&b[..CHECKSUMMED]);
        b[CHECKSUMMED..].copy_from_slice(&sum);
        assert_eq!(decode(&b), Some((7, s)));
        // Under the new magic the same bytes are refused: the checksums differ.
        b[0..8].copy_from_slice(MAGIC);
        assert!(decode(&b).is_none());
    }

    #[test]
    fn the_checksum_covers_the_bytes_in_use_and_the_rest_must_be_zero() {
        // (remembered sources) -> checksummed length
        for n in [0, 1, MAX_REMEMBERED] {
            let s = UserState {
                remembered: sample().remembered.into_iter().cycle().take(n).collect(),
                ..sample()
            };
            let b = encode(&s, 1);
            assert_eq!(b[CHECKSUMMED..], checksum(&b[..HEADER + n * 24]), "n={n}");
            assert_eq!(decode(&b).map(|(_, d)| d), Some(s), "n={n}");
            if in_use(n) < CHECKSUMMED {
                let mut junk = b;
                junk[CHECKSUMMED - 1] = 1;
                assert!(decode(&junk).is_none(), "n={n}: junk after the state");
            }
        }
    }

    #[test]
    fn newest_valid_slot_wins_and_a_torn_slot_falls_back() {
        let old = UserState::default();
        let new = sample();
        let image = [encode(&old, 1), encode(&new, 2)].concat();
        assert_eq!(current(&image).unwrap().2, new);
        // The write of the newer slot was torn at every possible length.
        for cut in 0..SLOT {
            let mut torn = [encode(&old, 1), encode(&new, 2)].concat();
            let newer = encode(
                &UserState {
                    last_success: 9,
                    ..new.clone()
                },
                3,
            );
            torn[..cut].copy_from_slice(&newer[..cut]);
            let (_, seq, got) = current(&torn).unwrap();
            if cut == SLOT {
                assert_eq!(seq, 3);
            } else {
                assert_eq!((seq, got), (2, new.clone()), "torn at {cut}");
            }
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
            assert!(
                matches!(current(&image[..len]), Err(StateError::Corrupt(_))),
                "len {len}"
            );
        }
        assert!(matches!(current(&[0u8; 1024]), Err(StateError::Corrupt(_))));
    }
}
