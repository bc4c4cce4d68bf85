//! The same work for names that are not enrolled accounts, so that neither
//! what a client is shown nor how long it waits tells them apart; and the
//! host-wide bound on argon2 checks, which real and decoy checks share.
//!
//! # The argon2 gate
//! A recovery-shaped answer costs one argon2id computation, 19 MiB for
//! about 40 ms, for enrolled users and (on the decoy) for everyone else. 100
//! parallel connections would hold 2 GiB inside sshd. So each computation
//! first takes one of [`SLOTS`] slots: `flock`s on files in `state_dir`,
//! released by the kernel even if the process dies. Real and decoy checks
//! queue for the same slots, so the wait does not tell them apart either;
//! memory is bounded at `SLOTS` x 19 MiB per host whatever the number of
//! connections. An attempt that gets no slot within [`GATE_WAIT`] is denied.
#![forbid(unsafe_code)]

use crate::config::TotpParams;
use crate::files::secret::{self, UserSecret};
use crate::rules::recovery;
use crate::rules::totp;
use std::fs::File;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// A secret file of the usual shape (a 160-bit secret, ten recovery-code
/// hashes under one salt) that belongs to no one: its secret and codes were
/// thrown away when it was made.
const DECOY_SECRET_FILE: &str = include_str!("decoy_secret.toml");

/// argon2 computations at once on this host, at most.
pub const SLOTS: usize = 4;
/// The longest an attempt waits for a slot: 100 connections at once, four
/// at a time, 40 ms each, wait about a second.
pub const GATE_WAIT: Duration = Duration::from_secs(10);

/// The decoy secret, parsed as an enrolled user's is (before the prompt).
pub(super) fn secret(defaults: &TotpParams) -> Option<UserSecret> {
    secret::parse(DECOY_SECRET_FILE, defaults).ok()
}

/// An enrolled user's wrong answer costs a secret file parsed (before the
/// prompt), the window of codes computed for a code-shaped answer, and one
/// argon2 hash for a recovery-shaped one. Unknown and unenrolled users pay
/// the same on the decoy, so that the time to the result does not tell them
/// apart (tests/timing.rs). The result is ignored: they are denied anyway.
pub(super) fn check(state_dir: &Path, decoy: &UserSecret, now: u64, answer: &[u8]) {
    // As many windows as an enrolled user's answer costs: every
    // authenticator's, padded (`totp::matching_steps`).
    let steps = totp::matching_steps(&[(decoy.key.as_slice(), decoy.params)], answer, now);
    if steps.iter().all(Option::is_none) {
        let _ = find_gated(state_dir, &decoy.file.recovery_codes, answer);
    }
}

/// The argon2 check of a user with no recovery codes: the same cost on the
/// decoy's, so that having none does not answer 40 ms sooner.
pub(super) fn recovery_check(state_dir: &Path, defaults: &TotpParams, answer: &[u8]) {
    // Only a recovery-shaped answer costs an enrolled user anything here;
    // the decoy is not even parsed for others.
    if recovery::normalize(answer).is_none() {
        return;
    }
    if let Some(decoy) = secret(defaults) {
        let _ = find_gated(state_dir, &decoy.file.recovery_codes, answer);
    }
}

/// [`recovery::find`] behind the host's argon2 gate. `Err`: no slot in time.
/// Answers that are not recovery-shaped cost nothing and need no slot.
pub(super) fn find_gated(
    state_dir: &Path,
    stored: &[String],
    answer: &[u8],
) -> Result<Option<usize>, String> {
    if recovery::normalize(answer).is_none() {
        return Ok(None);
    }
    let _slot = Slot::take(state_dir)?;
    Ok(recovery::find(stored, answer))
}

/// One of the host's argon2 slots, held until dropped.
struct Slot {
    _file: File,
}

impl Slot {
    fn take(state_dir: &Path) -> Result<Slot, String> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        // Each waiter starts at a different slot, so that they spread.
        let first = std::process::id() as usize % SLOTS;
        loop {
            for k in 0..SLOTS {
                let path = state_dir.join(format!(".argon2-slot-{}", (first + k) % SLOTS));
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY)
                    .open(&path)
                    .map_err(|e| format!("argon2 slot {}: {e}", path.display()))?;
                match file.try_lock() {
                    Ok(()) => return Ok(Slot { _file: file }),
                    Err(std::fs::TryLockError::WouldBlock) => {}
                    Err(std::fs::TryLockError::Error(e)) => {
                        return Err(format!("argon2 slot {}: {e}", path.display()));
                    }
                }
            }
            if start.elapsed() > GATE_WAIT {
                return Err(format!(
                    "no argon2 slot free for {} s: too many recovery-code checks at once",
                    GATE_WAIT.as_secs()
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }
}
