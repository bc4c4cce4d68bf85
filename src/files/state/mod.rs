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

use crate::base::user::UserName;
use crate::files::fsutil;
use crate::rules::lockout::Counters;
use std::fs::File;
use std::io;
use std::net::IpAddr;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod slot;

pub use slot::{FILE_SIZE, MAX_REMEMBERED, MAX_SENDS, checksum, checksummed_len};

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
    /// The code last emailed or texted, while it may still be used.
    pub sent: Option<SentCode>,
    /// When codes were sent (Unix seconds), the last hour's at most:
    /// `codes.max_per_hour` counts these.
    pub sends: Vec<u64>,
    /// When the last lock notice was mailed (Unix seconds; 0: never), and
    /// how many have been held back since (`notify.min_interval`).
    pub lock_notice_at: u64,
    pub lock_notices_held: u32,
    /// The last accepted step of each named authenticator but `default`,
    /// whose step is `last_step_time`, as it was before a user could have
    /// several: hosts and state files of the earlier version then agree on
    /// it. At most [`MAX_DEVICE_STEPS`]; the oldest goes first.
    pub device_steps: Vec<DeviceStep>,
}

/// Named authenticators' steps kept per user: as many as a user may have.
pub const MAX_DEVICE_STEPS: usize = crate::files::secret::MAX_DEVICES;

/// Which authenticator's last accepted step: `default`'s (the earlier
/// versions' one step), or a named one's, by [`DeviceId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StepKey {
    #[default]
    Default,
    Named(DeviceId),
}

impl StepKey {
    pub fn of(name: &crate::files::secret::DeviceName) -> StepKey {
        if name.is_default() {
            StepKey::Default
        } else {
            StepKey::Named(DeviceId::of(name.as_str()))
        }
    }
}

/// A named authenticator in the state: 8 bytes of a BLAKE2b digest of its
/// name, so that an entry is a fixed size. Two names of one user that
/// share an id (which takes about 2^32 tries to find) share a replay step:
/// a code of one is refused at a step the other used, nothing is let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceId(pub [u8; 8]);

impl DeviceId {
    pub fn of(name: &str) -> DeviceId {
        let mut body = Vec::with_capacity(name.len() + 7);
        body.extend_from_slice(b"device:");
        body.extend_from_slice(name.as_bytes());
        let digest = checksum(&body);
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        DeviceId(id)
    }

    pub fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(text: &str) -> Option<DeviceId> {
        if text.len() != 16 || !text.is_ascii() {
            return None;
        }
        let mut id = [0u8; 8];
        for (i, pair) in text.as_bytes().chunks_exact(2).enumerate() {
            id[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
        }
        Some(DeviceId(id))
    }
}

/// A named authenticator's last accepted step's start (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceStep {
    pub id: DeviceId,
    pub step_time: u64,
}

/// A code that was emailed or texted: only a keyed hash of it is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentCode {
    pub purpose: Purpose,
    pub hash: [u8; 32],
    /// Unix seconds: good while now < expires.
    pub expires: u64,
    pub sent_at: u64,
}

/// What a sent code is for: a code for one purpose never serves another.
pub use crate::delivery::Purpose;

impl UserState {
    /// The start of the last accepted step of authenticator `key` (0: none).
    pub fn step_of(&self, key: StepKey) -> u64 {
        match key {
            StepKey::Default => self.last_step_time,
            StepKey::Named(id) => self
                .device_steps
                .iter()
                .find(|d| d.id == id)
                .map_or(0, |d| d.step_time),
        }
    }

    /// `key`'s last accepted step moved on to `step_time` (never back). A
    /// ninth named entry pushes out the one used longest ago: the user has
    /// removed a device, or one of theirs was last used so long ago that
    /// every code of its step is out of the window.
    pub fn accept_step(&mut self, key: StepKey, step_time: u64) {
        match key {
            StepKey::Default => self.last_step_time = self.last_step_time.max(step_time),
            StepKey::Named(id) => {
                if let Some(d) = self.device_steps.iter_mut().find(|d| d.id == id) {
                    d.step_time = d.step_time.max(step_time);
                    return;
                }
                if self.device_steps.len() >= MAX_DEVICE_STEPS
                    && let Some(oldest) =
                        (0..self.device_steps.len()).min_by_key(|&i| self.device_steps[i].step_time)
                {
                    self.device_steps.remove(oldest);
                }
                self.device_steps.push(DeviceStep { id, step_time });
            }
        }
    }

    /// `key`'s step forgotten (its authenticator was removed).
    pub fn forget_step(&mut self, key: StepKey) {
        match key {
            StepKey::Default => self.last_step_time = 0,
            StepKey::Named(id) => self.device_steps.retain(|d| d.id != id),
        }
    }

    /// The state after a successful login or an unlock: counters cleared, a
    /// new epoch.
    pub fn reset(&self) -> UserState {
        UserState {
            counters: crate::rules::lockout::reset(),
            epoch: self.epoch.wrapping_add(1),
            ..self.clone()
        }
    }
}

/// A source address of this user's logins: remembered (`policy.remember`:
/// not asked for a code until `until`) and known (`new_source`: last seen
/// logging in at `seen`). One list, two clocks (`crate::rules::policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remembered {
    pub addr: IpAddr,
    /// Unix seconds: not asked for a code before this (0: not remembered).
    pub until: u64,
    /// Unix seconds of the last successful login from it, as noted for
    /// `new_source` (0: never noted).
    pub seen: u64,
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

/// The current state in a whole file image, as the module would read it:
/// the fuzz target for the state file decoder (fuzz/fuzz_targets/state_file.rs).
pub fn decode_image(image: &[u8]) -> Result<UserState, StateError> {
    slot::current(image).map(|(_, _, s)| s)
}

/// Encodes `state` as a whole file image, both slots valid (the newer is
/// slot 0): the fuzz seeds and the tests that damage files start from this.
pub fn encode_image(state: &UserState) -> Vec<u8> {
    slot::image(state)
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
    ///
    /// The first step of a named authenticator is written into both slots:
    /// the previous release cannot read a TWOSTEP6 slot, and would read the
    /// other one, the state from before, and write its count over the
    /// newer slot. The named steps would be lost, and back on this version
    /// a spent code of that authenticator would log in again. With no slot
    /// it can read, it denies and writes nothing (tests/downgrade.rs).
    pub fn write(&mut self, state: UserState) -> Result<(), StateError> {
        let first_named = self.state.device_steps.is_empty() && !state.device_steps.is_empty();
        self.write_slot(&state)?;
        if first_named {
            self.write_slot(&state)?;
        }
        self.state = state;
        Ok(())
    }

    /// `state` into the slot that does not hold the current one.
    fn write_slot(&mut self, state: &UserState) -> Result<(), StateError> {
        let slot = 1 - self.slot;
        let seq = self.seq.wrapping_add(1);
        let bytes = slot::encode(state, seq);
        fsutil::with_file_size_limit_lifted(|| {
            self.file.write_all_at(&bytes, (slot * slot::SLOT) as u64)
        })?;
        self.slot = slot;
        self.seq = seq;
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
/// others, of this format's size or the earlier one's.
fn check_file(meta: &std::fs::Metadata) -> Result<(), StateError> {
    fsutil::check_private_file(meta, fsutil::expected_owner()).map_err(StateError::Corrupt)?;
    if meta.size() != FILE_SIZE && meta.size() != slot::FILE_SIZE_V3 {
        return Err(StateError::Corrupt(format!(
            "{} bytes, expected {FILE_SIZE}",
            meta.size()
        )));
    }
    Ok(())
}

fn read_image(file: &File, meta: &std::fs::Metadata) -> Result<Vec<u8>, StateError> {
    let mut image = vec![0u8; usize::try_from(meta.size()).unwrap_or(0)];
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
    read_at(&path_for(state_dir, user))
}

fn read_at(path: &Path) -> Result<Option<UserState>, StateError> {
    let file = match fsutil::open_nofollow(path, false) {
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
    let meta = file.metadata()?;
    check_file(&meta)?;
    let image = read_image(&file, &meta)?;
    slot::current(&image).map(|(_, _, s)| Some(s))
}

/// Opens (creating it if needed) and exclusively locks a user's state file.
pub fn lock(state_dir: &Path, user: &UserName) -> Result<Locked, StateError> {
    lock_at(state_dir, &path_for(state_dir, user))
}

/// The state file of a destination's sends (`.dest-<key>`, `key` the hex
/// digest `outbox::Destination::throttle_key` makes): a name no user can
/// have, locked and kept as a user's is; only its sends are used.
pub fn lock_destination(state_dir: &Path, key: &str) -> Result<Locked, StateError> {
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(StateError::Io(io::Error::other(
            "a destination key is a hex digest",
        )));
    }
    lock_at(state_dir, &state_dir.join(format!(".dest-{key}")))
}

fn lock_at(state_dir: &Path, path: &Path) -> Result<Locked, StateError> {
    // The file can be removed (twostep reset) between our open and our lock:
    // after locking, make sure the path still names the file we hold.
    for _ in 0..5 {
        let file = match fsutil::open_nofollow(path, true) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                create(state_dir, path)?;
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
        if !fsutil::still_at(&meta, path)? {
            continue;
        }
        check_file(&meta)?;
        let image = read_image(&file, &meta)?;
        let (slot, seq, state) = slot::current(&image)?;
        if meta.size() != FILE_SIZE {
            // The earlier format: rewritten in this one, the new file locked
            // before it takes the path, so that no one else updates either.
            return upgrade(state_dir, path, state);
        }
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

/// Replaces a file of the earlier format at `path`, which the caller holds
/// locked, with one of this format holding `state`: written, synced and
/// locked under a temporary name, then renamed into place. Attempts waiting
/// on the old file find, once they have it, that the path names another,
/// and start over on the new one (`lock`).
fn upgrade(state_dir: &Path, path: &Path, state: UserState) -> Result<Locked, StateError> {
    let image = slot::image(&state);
    let file = fsutil::with_file_size_limit_lifted(|| {
        fsutil::replace_complete_locked(state_dir, path, &image)
    })?;
    Ok(Locked {
        file,
        slot: 0,
        seq: 1,
        state,
    })
}

/// Creates a fresh state file atomically: written and synced under a temporary
/// name, then linked into place (never over an existing file), so that a file
/// at the real path is always complete. An empty or short file is therefore
/// always damage, never "new".
fn create(state_dir: &Path, path: &Path) -> Result<(), StateError> {
    let image = slot::image(&UserState::default());
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

/// The decoy's state file: a name no user can have (names may not start
/// with '.').
fn decoy_path(state_dir: &Path) -> PathBuf {
    state_dir.join(".decoy")
}

/// The same read an account's state costs before the prompt ([`read`]), of
/// the decoy's file. Used for made-up user names, so that their prompt comes
/// no sooner than an account's.
pub fn decoy_read(state_dir: &Path) -> Result<(), StateError> {
    read_at(&decoy_path(state_dir)).map(|_| ())
}

/// The same write an account's count costs (flushed, with `flush`, as a
/// verdict is), to the decoy's file. Used for made-up user names, so that
/// their refusal takes as long as a real one. Errors are irrelevant here.
pub fn decoy_write(state_dir: &Path, flush: bool) {
    let _ = lock_at(state_dir, &decoy_path(state_dir)).and_then(|mut locked| {
        if flush {
            locked.commit(UserState::default())
        } else {
            locked.write(UserState::default())
        }
    });
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
    fsutil::replace_complete(state_dir, &path, &slot::image(state)).map_err(StateError::Io)
}

#[cfg(test)]
mod tests;
