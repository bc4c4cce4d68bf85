//! What a change may write over. The administrator's commands replace
//! whatever is there. twostep-self acts on a proof (the password, and for
//! an enrolled user a code: `self_service::proof`) that was judged against
//! one secret file, or against none; then it asks more (the new app's
//! code, the code it sent), for as long as the person takes, and SIGSTOP
//! stretches any moment at will. An administrator may enroll, reset or
//! re-key the user meanwhile, and a proof made before must not undo that
//! (SECURITY.md: enroll administrators yourself).
//!
//! So twostep-self writes only if, under the user's state lock (the one
//! every writer of a secret file takes), the file is still, byte for byte,
//! the one its proof was judged against (or still absent), and only within
//! [`GOOD_FOR`] of the proof. Otherwise nothing is written, the person is
//! told, and a `change_refused` record says why.
#![forbid(unsafe_code)]

use super::{CliError, Ctx};
use crate::base::records::{Record, Severity};
use crate::base::user::UserName;
use crate::files::secret::{self, Fingerprint};
use crate::files::state;
use std::time::{Duration, Instant, SystemTime};

/// How long a proof is good for: the change must be written within this
/// long of it, and the prompts after it (the new app's code, the code sent)
/// wait no longer. As long as a sent code is good by default
/// (`codes.valid`): time to scan a QR code, or for a mail to arrive.
pub const GOOD_FOR: Duration = Duration::from_secs(5 * 60);

/// [`GOOD_FOR`] in words: "5 minutes".
pub fn good_for_words() -> String {
    format!("{} minutes", GOOD_FOR.as_secs() / 60)
}

/// What a write may replace.
#[derive(Clone, Copy)]
pub enum Over<'a> {
    /// Whatever is there: the administrator's commands.
    Anything,
    /// Only the file a proof was judged against, while it is good.
    Proven(&'a Proven),
}

/// A proof, made against the secret file it was judged against.
pub struct Proven {
    judged: Fingerprint,
    /// When: by the monotonic clock, which runs on while the process is
    /// stopped, and by the wall clock, which also runs while the machine
    /// sleeps.
    at: Instant,
    at_wall: SystemTime,
}

impl Proven {
    /// A proof made now, judged against `judged`.
    pub fn now(judged: Fingerprint) -> Proven {
        Proven {
            judged,
            at: Instant::now(),
            at_wall: SystemTime::now(),
        }
    }

    /// How long it is still good for; `None` once it is not.
    pub fn time_left(&self) -> Option<Duration> {
        time_left(
            self.at.elapsed(),
            SystemTime::now().duration_since(self.at_wall).ok(),
        )
    }
}

/// [`GOOD_FOR`] less the time since the proof, by whichever clock says
/// more; `None` once nothing is left. A wall clock set back (`None`, or
/// less) counts for nothing: the monotonic one still counts.
fn time_left(monotonic: Duration, wall: Option<Duration>) -> Option<Duration> {
    let elapsed = monotonic.max(wall.unwrap_or(Duration::ZERO));
    GOOD_FOR.checked_sub(elapsed).filter(|left| !left.is_zero())
}

impl Over<'_> {
    /// How long a prompt may wait: without a proof, for ever; with one, as
    /// long as it is good (zero once it is not).
    pub fn prompt_limit(&self) -> Option<Duration> {
        match self {
            Over::Anything => None,
            Over::Proven(p) => Some(p.time_left().unwrap_or(Duration::ZERO)),
        }
    }
}

/// A change twostep-self makes, by the record it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Enrolled,
    RecoveryRegenerated,
    Disabled,
    DeviceAdded,
    DeviceRemoved,
}

impl Change {
    fn event(self) -> &'static str {
        match self {
            Change::Enrolled => "enrolled",
            Change::RecoveryRegenerated => "recovery_regenerated",
            Change::Disabled => "disabled",
            Change::DeviceAdded => "device_added",
            Change::DeviceRemoved => "device_removed",
        }
    }

    /// What the person is told stays undone (what it means for codes
    /// shown already, the command says).
    fn undone(self) -> &'static str {
        match self {
            Change::Enrolled | Change::RecoveryRegenerated | Change::DeviceAdded => {
                "nothing was written"
            }
            Change::Disabled | Change::DeviceRemoved => "nothing was removed",
        }
    }
}

/// Why a write was refused: the `reason` of `change_refused`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    /// The secret file is not the one the proof was judged against.
    ChangedMeanwhile,
    /// The proof is no longer good.
    TooLate,
    /// Whether it is the same file cannot be told.
    CannotCheck(String),
}

impl Refusal {
    fn reason(&self) -> &'static str {
        match self {
            Refusal::ChangedMeanwhile => "changed_meanwhile",
            Refusal::TooLate => "too_late",
            Refusal::CannotCheck(_) => "cannot_check",
        }
    }
}

/// The pure rule: a write over `now` on a proof judged against `judged`,
/// with `left` of its time, is refused for the first of: another file,
/// no time left. `now`: `Err` when the file cannot be read.
fn refusal(
    judged: Fingerprint,
    now: Result<Fingerprint, String>,
    left: Option<Duration>,
) -> Option<Refusal> {
    match now {
        Err(why) => Some(Refusal::CannotCheck(why)),
        Ok(now) if now != judged => Some(Refusal::ChangedMeanwhile),
        Ok(_) if left.is_none() => Some(Refusal::TooLate),
        Ok(_) => None,
    }
}

/// Takes the user's state lock for a write ([`super::enroll::lock_user`])
/// and, with a proof, checks under it that the write may go ahead: the same
/// secret file, in time. A refusal is recorded (`change_refused user by
/// change reason`) and returned as the error to show.
pub fn lock_for_write(
    ctx: &Ctx,
    user: &UserName,
    over: Over<'_>,
    change: Change,
) -> Result<Option<state::Locked>, CliError> {
    let locked = super::enroll::lock_user(ctx, user)?;
    let Over::Proven(proven) = over else {
        return Ok(locked);
    };
    let dir = &ctx.config.secret_dir;
    let now = if locked.is_none() {
        // A damaged state file gives no lock to check under.
        Err("your state file is damaged".to_string())
    } else {
        // Without its marker secret_dir may be an unmounted volume, where
        // "absent" would mean nothing (as in auth::confirm).
        secret::check_marker(dir).and_then(|()| {
            secret::fingerprint(dir, user).map_err(|e| format!("your secret file: {e}"))
        })
    };
    match refusal(proven.judged, now, proven.time_left()) {
        None => Ok(locked),
        Some(refused) => {
            drop(locked);
            ctx.log(
                Record::new("change_refused", Severity::Warning)
                    .with("user", user)
                    .with("by", &ctx.by)
                    .with("change", change.event())
                    .with("reason", refused.reason()),
            );
            Err(CliError::Failed(refusal_message(&refused, change)))
        }
    }
}

fn refusal_message(refused: &Refusal, change: Change) -> String {
    let undone = change.undone();
    match refused {
        Refusal::ChangedMeanwhile => format!(
            "your two-step sign-in changed after you confirmed (an administrator, or \
             another twostep-self, changed it meanwhile): {undone}. \
             `twostep-self status` shows it as it is now"
        ),
        Refusal::TooLate => format!(
            "more than {} passed since you confirmed: {undone}. Run it again",
            good_for_words()
        ),
        Refusal::CannotCheck(why) => format!(
            "cannot tell whether your two-step sign-in is still as you confirmed it \
             ({why}): {undone}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_is_good_for_five_minutes_by_either_clock() {
        let s = Duration::from_secs;
        // (monotonic, wall, time left)
        let table: &[(Duration, Option<Duration>, Option<Duration>)] = &[
            (s(0), Some(s(0)), Some(s(300))),
            (s(1), Some(s(1)), Some(s(299))),
            (s(299), Some(s(299)), Some(s(1))),
            (
                Duration::from_millis(299_999),
                None,
                Some(Duration::from_millis(1)),
            ),
            (s(300), Some(s(300)), None),
            (s(301), Some(s(1)), None),
            (s(86_400), Some(s(86_400)), None),
            // SIGSTOP: the monotonic clock runs on.
            (s(400), Some(s(400)), None),
            // The machine slept: the wall clock ran, the monotonic did not.
            (s(10), Some(s(3_600)), None),
            // The wall clock was set back: the monotonic one still counts.
            (s(10), None, Some(s(290))),
            (s(310), None, None),
            (s(10), Some(s(0)), Some(s(290))),
        ];
        for (mono, wall, want) in table {
            assert_eq!(time_left(*mono, *wall), *want, "{mono:?} {wall:?}");
        }
        assert_eq!(GOOD_FOR, s(300), "the man page says five minutes");
        assert_eq!(good_for_words(), "5 minutes");
    }

    #[test]
    fn only_the_same_file_in_time_may_be_written_over() {
        let a = Fingerprint::Digest([1; 32]);
        let b = Fingerprint::Digest([2; 32]);
        let none = Fingerprint::Absent;
        let time = Some(Duration::from_secs(60));
        let late = None;
        let cannot = || Err("damaged".to_string());
        use Refusal::*;
        // (judged, now, left, refused)
        let table: Vec<(Fingerprint, Result<Fingerprint, String>, _, Option<Refusal>)> = vec![
            (a, Ok(a), time, None),
            (none, Ok(none), time, None),
            // An administrator enrolled, re-keyed, reset meanwhile.
            (none, Ok(a), time, Some(ChangedMeanwhile)),
            (a, Ok(b), time, Some(ChangedMeanwhile)),
            (a, Ok(none), time, Some(ChangedMeanwhile)),
            // Changed and late: the change is what the record tells.
            (a, Ok(b), late, Some(ChangedMeanwhile)),
            (a, Ok(a), late, Some(TooLate)),
            (none, Ok(none), late, Some(TooLate)),
            (a, cannot(), time, Some(CannotCheck("damaged".into()))),
            (none, cannot(), late, Some(CannotCheck("damaged".into()))),
        ];
        for (judged, now, left, want) in table {
            assert_eq!(
                refusal(judged, now.clone(), left),
                want,
                "{judged:?} {now:?} {left:?}"
            );
        }
    }

    /// A proof made `ago`, against `judged`.
    fn made(judged: Fingerprint, ago: Duration) -> Proven {
        Proven {
            judged,
            at: Instant::now() - ago,
            at_wall: SystemTime::now() - ago,
        }
    }

    #[test]
    fn a_write_on_a_stale_or_late_proof_is_refused_recorded_and_undone() {
        // The real lock, files and record (a datagram socket of its own):
        // only the proof's age is made up. Secret files must be root's.
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root, as the secret files it reads must be root's");
            return;
        }
        let root = std::env::temp_dir().join(format!("twostep-proven-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let config = crate::config::Config {
            secret_dir: root.join("secrets"),
            state_dir: root.join("state"),
            log_socket: root.join("log"),
            ..crate::config::Config::default()
        };
        super::super::enroll::ensure_private_dir(&config.secret_dir).unwrap();
        secret::mark_dir(&config.secret_dir).unwrap();
        let log = std::os::unix::net::UnixDatagram::bind(&config.log_socket).unwrap();
        log.set_nonblocking(true).unwrap();
        let records = || {
            let mut got = Vec::new();
            let mut buf = [0u8; 2048];
            while let Ok(n) = log.recv(&mut buf) {
                got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
            got
        };
        let ctx = Ctx {
            config,
            config_path: root.join("twostep.toml"),
            by: "self".into(),
            tag: "twostep-self",
        };
        let user = UserName::parse("ts-sv-unit").unwrap();
        let write = |proven: &Proven, change| {
            lock_for_write(&ctx, &user, Over::Proven(proven), change).map(drop)
        };
        let refused = |got: Result<(), CliError>, words: &str, reason: &str| {
            let message = got.unwrap_err().to_string();
            assert!(message.contains(words), "{message}");
            let lines = records();
            assert_eq!(lines.len(), 1, "{lines:?}");
            assert!(
                lines[0].contains(&format!(
                    "event=change_refused user=ts-sv-unit by=self change=enrolled reason={reason}"
                )),
                "{lines:?}"
            );
        };
        let second = Duration::from_secs(1);

        // Nobody enrolled, and nobody meanwhile: in time, written; late, not.
        assert!(write(&made(Fingerprint::Absent, second), Change::Enrolled).is_ok());
        refused(
            write(&made(Fingerprint::Absent, GOOD_FOR), Change::Enrolled),
            "more than 5 minutes passed since you confirmed: nothing was written",
            "too_late",
        );
        // The administrator enrolls meanwhile.
        let file = crate::files::enrollment::secret_file(
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
            &ctx.config.totp,
            vec![],
        );
        let theirs = secret::store(&ctx.config.secret_dir, &user, &file, false)
            .unwrap()
            .fingerprint();
        refused(
            write(&made(Fingerprint::Absent, second), Change::Enrolled),
            "changed after you confirmed",
            "changed_meanwhile",
        );
        // A proof of theirs: in time, written; late, not.
        assert!(write(&made(theirs, second), Change::Enrolled).is_ok());
        refused(
            write(&made(theirs, GOOD_FOR + second), Change::Enrolled),
            "more than 5 minutes passed",
            "too_late",
        );
        // Nothing was written by any of it, and the administrator writes as ever.
        assert_eq!(
            secret::fingerprint(&ctx.config.secret_dir, &user).unwrap(),
            theirs
        );
        assert!(lock_for_write(&ctx, &user, Over::Anything, Change::Enrolled).is_ok());
        assert!(records().is_empty());
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn the_administrator_has_no_prompt_limit_and_a_proof_has_its_own() {
        assert_eq!(Over::Anything.prompt_limit(), None);
        let fresh = Proven::now(Fingerprint::Absent);
        let limit = Over::Proven(&fresh).prompt_limit().unwrap();
        assert!(limit > GOOD_FOR - Duration::from_secs(5) && limit <= GOOD_FOR);
        let old = made(Fingerprint::Absent, GOOD_FOR);
        assert_eq!(Over::Proven(&old).prompt_limit(), Some(Duration::ZERO));
        assert_eq!(old.time_left(), None);
    }
}
