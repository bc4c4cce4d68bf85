//! Judging an answer at the code prompt, under the user's exclusive state
//! lock with the attempt counted first, so that parallel attempts are
//! serialized: each sees the failures of the ones before it, and none is
//! judged once the tier's allowance is used up.
//!
//! What is expected first depends on the method: a code of the TOTP window
//! later than the last accepted step, or the code that was sent. Either way
//! an unused recovery code is accepted too.
#![forbid(unsafe_code)]

use super::attempt::{Failure, Judging};
use super::{Env, Outcome, Reason, Request, notify, recovery};
use crate::base::records::Severity;
use crate::base::user::UserName;
use crate::config::TotpParams;
use crate::delivery::Event;
use crate::files::secret::{self, DeviceName, Held, UserSecret};
use crate::files::state::{Purpose, StepKey, UserState};
use crate::rules::codes::{self, Verdict};
use crate::rules::policy;
use crate::rules::totp;
use crate::store::{Origin, Success};

/// What the answer is first checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expecting<'a> {
    /// A code of the window of one of the user's authenticators. With
    /// `not_from` (twostep-self's `remove-device NAME`), a code of that
    /// authenticator does not count while the user has another: its
    /// removal is confirmed by one that stays ([`leave_out`]).
    Totp { not_from: Option<&'a DeviceName> },
    /// The code sent for `purpose`, by `method` (`email`, `sms`).
    Sent {
        purpose: Purpose,
        method: &'static str,
    },
}

/// How an answer was accepted.
#[derive(Debug, Clone, Copy)]
pub(super) enum Accepted {
    /// `device`: the index in the secret's `devices` of the authenticator
    /// whose code it was.
    Totp { step_time: u64, device: usize },
    /// The sent code: it is used up.
    Sent { method: &'static str },
    /// `left`: the user's recovery codes that remain.
    Recovery { left: usize },
}

impl Accepted {
    fn method(self) -> &'static str {
        match self {
            Accepted::Totp { .. } => "totp",
            Accepted::Sent { method } => method,
            Accepted::Recovery { .. } => "recovery",
        }
    }
}

/// The secret file as it is now, under the lock, not as it was before the
/// prompt: a reset or a re-enrollment (a lost phone) made while someone sat
/// at the prompt applies to their answer too (tests/faults.rs). An
/// unchanged file (one lstat tells) is not read and parsed again. With what
/// the file held.
pub(super) fn current_secret(
    env: &Env<'_>,
    user: &UserName,
    read_before: (UserSecret, secret::Version),
) -> Result<(UserSecret, Held), (Reason, String)> {
    let (before, version) = read_before;
    if secret::unchanged(&env.config.secret_dir, user, &version) {
        return Ok((before, version.held()));
    }
    drop(before);
    secret::load_versioned(&env.config.secret_dir, user, &env.config.totp)
        .map(|(now, version)| (now, version.held()))
        .map_err(recovery::changed_secret)
}

/// Judges `answer` and answers the login: success (durably recorded before
/// the module answers) or a counted failure.
pub(super) fn answer(
    env: &mut Env<'_>,
    req: &Request,
    user: &UserName,
    read_before: (UserSecret, secret::Version),
    answer: &[u8],
    expecting: Expecting<'_>,
) -> Outcome {
    let judging = match Judging::begin(env, req, user) {
        Ok(j) => j,
        Err(refused) => return refused,
    };
    let current = current_secret(env, user, read_before);
    let mut detail = None;
    let mut sent_hash = None;
    let verdict = match &current {
        Err((reason, why)) => {
            detail = Some(why.clone());
            Err(*reason)
        }
        Ok((secret, _)) => match expecting {
            Expecting::Totp { not_from } => {
                let (verdict, why) =
                    totp_verdict(env, req, secret, judging.state(), answer, not_from);
                detail = why;
                verdict
            }
            Expecting::Sent { purpose, method } => {
                let (verdict, hash) =
                    sent_verdict(env, user, secret, judging.state(), answer, purpose, method);
                sent_hash = hash;
                verdict
            }
        },
    };
    // Not the expected code: perhaps a recovery code. The expected code goes
    // first, as an 8-digit scratch code looks like an 8-digit code. With the
    // file store still under the lock; with a shared store, the success
    // below is refused if the code was used meanwhile anywhere.
    let mut used_recovery = None;
    // The name of the authenticator whose code it was, for the record and
    // its replay step.
    let device = match (&verdict, &current) {
        (Ok(Accepted::Totp { device, .. }), Ok((secret, _))) => {
            secret.devices.get(*device).map(|d| d.name.clone())
        }
        _ => None,
    };
    let (verdict, current, judged) = match (verdict, current) {
        (Err(Reason::BadCode), Ok((mut secret, _))) => {
            // The file store's attempt holds the user's lock already.
            let relock = env.store.origin() != Origin::Local;
            let (verdict, judged) =
                match recovery::use_code(env.config, user, &mut secret, answer, relock) {
                    Ok(Some(used)) => {
                        used_recovery = Some(used.digest);
                        (
                            Ok(Accepted::Recovery { left: used.left }),
                            Some(used.file_now),
                        )
                    }
                    Ok(None) => (Err(Reason::BadCode), None),
                    Err((reason, why)) => {
                        detail = Some(why);
                        (Err(reason), None)
                    }
                };
            (verdict, secret.email, judged)
        }
        (other, Ok((secret, judged))) => (other, secret.email, Some(judged)),
        (other, Err(_)) => (other, None, None),
    };
    let accepted = match verdict {
        Ok(accepted) => accepted,
        Err(reason) => return judging.fail(env, req, user, Failure::Code(reason, detail)),
    };
    // The step, or the used sent code, must be recorded before we answer,
    // or the code could be used again after a crash.
    let success = Success {
        step_time: match accepted {
            Accepted::Totp { step_time, .. } => Some(step_time),
            _ => None,
        },
        device: device.as_ref().map_or(StepKey::Default, StepKey::of),
        spend: match (accepted, expecting) {
            (Accepted::Sent { .. }, Expecting::Sent { purpose, .. }) => {
                sent_hash.map(|h| (purpose, h))
            }
            _ => None,
        },
        recovery: used_recovery,
        remember: remember(env, req),
        new_secret: false,
    };
    if let Err(refused) = judging.succeed(env, req, user, &success) {
        return refused;
    }
    env.judged = judged;
    if let Accepted::Recovery { left } = accepted {
        env.conv.info(&recovery::recovery_message(left));
    }
    let mut rec = env
        .record("auth_ok", Severity::Info, req)
        .with("tty", &req.tty)
        .with("method", accepted.method());
    if let Some(name) = &device {
        rec = rec.with("device", name.as_str());
    }
    env.emit(rec);
    if let Accepted::Recovery { .. } = accepted {
        notify::event(
            env,
            Event::RecoveryUsed,
            user,
            current.as_ref(),
            req,
            None,
            None,
        );
    }
    Outcome::Success
}

/// A TOTP answer: a code of one of the user's authenticators' windows,
/// later than that authenticator's last accepted step. Every
/// authenticator's window is computed (`totp::matching_steps`), and the
/// choice among them looks at all of them, whichever matched. With the
/// detail of the record when the code was one of `not_from`'s.
fn totp_verdict(
    env: &mut Env<'_>,
    req: &Request,
    secret: &UserSecret,
    state: &UserState,
    answer: &[u8],
    not_from: Option<&DeviceName>,
) -> (Result<Accepted, Reason>, Option<String>) {
    let keys: Vec<(&[u8], TotpParams)> = secret
        .devices
        .iter()
        .map(|d| (d.key.as_slice(), d.params))
        .collect();
    let mut steps = totp::matching_steps(&keys, answer, env.now);
    let left_out = leave_out(&secret.devices, &mut steps, not_from);
    let verdict = pick(&secret.devices, &steps, state);
    let detail = match (&verdict, left_out) {
        (Err(_), Some(name)) => {
            env.conv.error(&format!(
                "That code is from {name}, the authenticator you are removing: its removal \
                 is confirmed by a code from one that stays, or by a recovery code."
            ));
            Some(format!("a code of {name}, the authenticator being removed"))
        }
        _ => None,
    };
    // The message is built only under `debug`: this runs on every attempt.
    let now = env.now;
    env.trace(req, || match &verdict {
        Ok(Accepted::Totp { step_time, device }) => {
            let p = secret.devices[*device].params;
            let offset =
                (step_time / u64::from(p.period)) as i128 - totp::step_of(now, p.period) as i128;
            format!(
                "answer: the code of authenticator {} at step offset {offset} (skew window), \
                 later than its last accepted",
                secret.devices[*device].name
            )
        }
        Err(Reason::Replay) => {
            "answer: a code of the window, but not later than the last accepted step (of its \
             authenticator)"
                .into()
        }
        Err(_)
            if secret
                .devices
                .iter()
                .all(|d| totp::Code::parse(answer, d.params.digits).is_none()) =>
        {
            let mut digits: Vec<String> = secret
                .devices
                .iter()
                .map(|d| d.params.digits.to_string())
                .collect();
            digits.sort();
            digits.dedup();
            format!("answer: not {} digits", digits.join(" or "))
        }
        Err(_) => format!(
            "answer: no step of the window of any of {} authenticator(s) has this code",
            secret.devices.len()
        ),
        Ok(_) => "answer: accepted".into(),
    });
    (verdict, detail)
}

/// Takes the step `not_from` matched out of `steps`, so that its code
/// counts for nothing, unless it is the user's only authenticator (then
/// removing it is turning two-step sign-in off, which any of the user's
/// codes confirms, as `twostep-self disable`). Its name if its window
/// matched. Decided on the file as it is under the lock, not as it was
/// before the prompt.
fn leave_out<'d>(
    devices: &'d [secret::Device],
    steps: &mut [Option<u64>],
    not_from: Option<&DeviceName>,
) -> Option<&'d DeviceName> {
    let name = not_from.filter(|_| devices.len() > 1)?;
    let i = devices.iter().position(|d| d.name == *name)?;
    steps.get_mut(i)?.take().map(|_| &devices[i].name)
}

/// Of the authenticators whose window matched (`steps`, by index), the
/// first whose step is later than its last accepted one; else a replay if
/// any matched. Every entry is looked at.
pub(super) fn pick(
    devices: &[secret::Device],
    steps: &[Option<u64>],
    state: &UserState,
) -> Result<Accepted, Reason> {
    let mut fresh = None;
    let mut matched = false;
    for (i, (device, step)) in devices.iter().zip(steps).enumerate() {
        let Some(step) = step else { continue };
        matched = true;
        let step_time = step.saturating_mul(u64::from(device.params.period));
        if fresh.is_none() && step_time > state.step_of(StepKey::of(&device.name)) {
            fresh = Some(Accepted::Totp {
                step_time,
                device: i,
            });
        }
    }
    match (fresh, matched) {
        (Some(accepted), _) => Ok(accepted),
        (None, true) => Err(Reason::Replay),
        (None, false) => Err(Reason::BadCode),
    }
}

/// An answer to a sent code: its keyed hash against the one kept, in time.
fn sent_verdict(
    env: &mut Env<'_>,
    user: &UserName,
    secret: &UserSecret,
    state: &UserState,
    answer: &[u8],
    purpose: Purpose,
    method: &'static str,
) -> (Result<Accepted, Reason>, Option<[u8; 32]>) {
    let Some(digits) = codes::normalize(answer, env.config.codes.length) else {
        return (Err(Reason::BadCode), None);
    };
    let key = match secret::code_key(&env.config.secret_dir, secret) {
        Ok(k) => k,
        Err(_) => return (Err(Reason::BadSecretFile), None),
    };
    let hash = codes::keyed_hash(&key, user, purpose, &digits);
    let verdict = match codes::judge(state.sent.as_ref(), purpose, &hash, env.now) {
        Verdict::Right => Ok(Accepted::Sent { method }),
        Verdict::Expired => Err(Reason::Expired),
        Verdict::Wrong => Err(Reason::BadCode),
    };
    (verdict, Some(hash))
}

/// The source to remember after a successful code login, for how long:
/// when `policy.remember` is on and the source is an address.
pub(super) fn remember(env: &Env<'_>, req: &Request) -> Option<(std::net::IpAddr, u64)> {
    let secs = env.config.policy.remember.as_secs();
    if secs == 0 {
        return None;
    }
    policy::source_address(&req.rhost).map(|addr| (addr, secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::secret::{Device, DeviceName};
    use zeroize::Zeroizing;

    fn device(name: &str) -> Device {
        Device {
            name: DeviceName::parse(name).unwrap(),
            key: Zeroizing::new(vec![1; 20]),
            params: TotpParams::default(),
            created: None,
        }
    }

    #[test]
    fn the_first_fresh_match_wins_and_a_replay_is_per_authenticator() {
        let devices = [device("default"), device("phone"), device("tablet")];
        let mut state = UserState::default();
        // default used step 100 (its start 3000), phone step 101.
        state.accept_step(StepKey::Default, 3000);
        state.accept_step(StepKey::of(&devices[1].name), 3030);
        // (steps matched) -> verdict
        type Want = Result<(u64, usize), Reason>;
        let table: &[([Option<u64>; 3], Want)] = &[
            ([None, None, None], Err(Reason::BadCode)),
            ([Some(100), None, None], Err(Reason::Replay)),
            ([Some(101), None, None], Ok((3030, 0))),
            ([None, Some(101), None], Err(Reason::Replay)),
            ([None, Some(100), Some(100)], Ok((3000, 2))),
            ([Some(100), Some(101), None], Err(Reason::Replay)),
            ([Some(100), Some(102), Some(102)], Ok((3060, 1))),
        ];
        for (steps, want) in table {
            let got = pick(&devices, steps, &state).map(|a| match a {
                Accepted::Totp { step_time, device } => (step_time, device),
                other => panic!("{other:?}"),
            });
            assert_eq!(&got, want, "{steps:?}");
        }
    }

    #[test]
    fn a_code_of_the_authenticator_being_removed_counts_only_when_it_is_the_last() {
        let two = [device("phone"), device("tablet")];
        let one = [device("phone")];
        let phone = DeviceName::parse("phone").unwrap();
        let other = DeviceName::parse("watch").unwrap();
        let state = UserState::default();
        type Want = Result<(u64, usize), Reason>;
        type Row<'a> = (
            &'a [Device],
            &'a [Option<u64>],
            Option<&'a DeviceName>,
            Want,
            bool,
        );
        // (devices, steps matched, not_from) -> (verdict, left out)
        let table: &[Row] = &[
            (&two, &[Some(100), None], None, Ok((3000, 0)), false),
            (
                &two,
                &[Some(100), None],
                Some(&phone),
                Err(Reason::BadCode),
                true,
            ),
            (&two, &[None, Some(100)], Some(&phone), Ok((3000, 1)), false),
            (
                &two,
                &[Some(100), Some(100)],
                Some(&phone),
                Ok((3000, 1)),
                true,
            ),
            (
                &two,
                &[None, None],
                Some(&phone),
                Err(Reason::BadCode),
                false,
            ),
            (&two, &[Some(100), None], Some(&other), Ok((3000, 0)), false),
            // The last one: removing it is turning off, which its code confirms.
            (&one, &[Some(100)], Some(&phone), Ok((3000, 0)), false),
        ];
        for (devices, steps, not_from, want, left) in table {
            let mut steps = steps.to_vec();
            let left_out = leave_out(devices, &mut steps, *not_from);
            assert_eq!(left_out.is_some(), *left, "{steps:?} {not_from:?}");
            let got = pick(devices, &steps, &state).map(|a| match a {
                Accepted::Totp { step_time, device } => (step_time, device),
                other => panic!("{other:?}"),
            });
            assert_eq!(&got, want, "{steps:?} {not_from:?}");
        }
    }
}
