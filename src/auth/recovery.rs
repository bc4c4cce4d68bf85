//! A recovery code typed at the code prompt.
#![forbid(unsafe_code)]

use super::{Reason, decoy};
use crate::base::user::UserName;
use crate::config::Config;
use crate::files::secret::{self, SecretError, UserSecret};
use crate::files::state;
use crate::rules::recovery;

/// A recovery code used.
pub(super) struct Used {
    /// The user's codes that remain.
    pub left: usize,
    /// A digest of its stored hash, by which a shared store refuses it on
    /// every other host.
    pub digest: [u8; 32],
    /// The secret file as it was written without it.
    pub file_now: secret::Held,
}

/// Checks `answer` against the user's recovery codes and, if it is one,
/// removes its hash from the secret file (and from `current`) before
/// returning: a used code never works again, even after a crash. Called
/// with the user's state lock held, with `current` as the code step read
/// (or re-checked) under that lock, so a code a parallel attempt used is
/// already gone from it. `Ok(None)`: not a recovery code.
///
/// `relock`: the attempt does not hold the user's lock in `state_dir` (a
/// shared store keeps the state elsewhere). The secret file is then read
/// again and written under that lock all the same, as `twostep
/// recovery-codes` and `enroll` write it under it: a login striking a code
/// off a copy read before their change would put the old secret and codes
/// back.
pub(super) fn use_code(
    config: &Config,
    user: &UserName,
    current: &mut UserSecret,
    answer: &[u8],
    relock: bool,
) -> Result<Option<Used>, (Reason, String)> {
    if !relock || recovery::normalize(answer).is_none() {
        return strike_off(config, user, current, answer);
    }
    let _locked = state::lock(&config.state_dir, user).map_err(|e| {
        (
            Reason::BadSecretFile,
            format!("cannot lock {user}'s state to strike off a recovery code: {e}"),
        )
    })?;
    *current = secret::load(&config.secret_dir, user, &config.totp).map_err(changed_secret)?;
    strike_off(config, user, current, answer)
}

fn strike_off(
    config: &Config,
    user: &UserName,
    current: &mut UserSecret,
    answer: &[u8],
) -> Result<Option<Used>, (Reason, String)> {
    if current.file.recovery_codes.is_empty() {
        // No codes: the same argon2 work on the decoy's, so that a user
        // without codes does not answer sooner than one with them.
        decoy::recovery_check(&config.state_dir, &config.totp, answer);
        return Ok(None);
    }
    let found = decoy::find_gated(&config.state_dir, &current.file.recovery_codes, answer)
        .map_err(|why| (Reason::BadCode, why))?;
    let Some(index) = found else {
        return Ok(None);
    };
    let used = current.file.recovery_codes.remove(index);
    let digest = crate::files::state::checksum(used.as_bytes());
    // If the code cannot be struck off, it must not be accepted.
    let file_now = secret::store(&config.secret_dir, user, &current.file, true).map_err(|e| {
        (
            Reason::BadSecretFile,
            format!("cannot remove the used recovery code: {e}"),
        )
    })?;
    Ok(Some(Used {
        left: current.file.recovery_codes.len(),
        digest,
        file_now,
    }))
}

/// Told to the user after a recovery code let them in.
pub fn recovery_message(left: usize) -> String {
    match left {
        0 => {
            "Recovery code accepted. That was your last one: ask your administrator for new codes."
                .into()
        }
        1 => "Recovery code accepted. 1 recovery code is left.".into(),
        n => format!("Recovery code accepted. {n} recovery codes are left."),
    }
}

/// Why a secret file read again during an attempt cannot be judged against.
pub(super) fn changed_secret(e: SecretError) -> (Reason, String) {
    match e {
        SecretError::Missing => (Reason::NoSecret, "removed during the attempt".to_string()),
        e => (Reason::BadSecretFile, e.to_string()),
    }
}
