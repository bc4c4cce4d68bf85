//! What the person who started a setuid host can do to it while twostep
//! holds what other logins wait for.
//!
//! `su`, `sudo`, polkit's helper and `twostep-self` run with the caller's
//! real uid and only the effective uid 0. The kernel lets a process signal,
//! renice and reschedule another whose real or saved uid is its own, so the
//! caller can stop such a host with SIGSTOP (or Ctrl-Z, SIGTSTP from the
//! terminal), or starve it with `chrt --idle` or `nice -n 19` beside a busy
//! loop, or `ionice -c3` beside heavy I/O, at the very moment it holds a
//! user's state lock (another user's, under `su victim`) or one of the
//! host's argon2 slots. Every other login waiting on that lock or slot then
//! waits too, and after 10 s is refused.
//!
//! [`Shield`] closes that for as long as it lives: the real uid becomes 0
//! (the saved and effective ones are 0 already), so that the caller may no
//! longer signal, renice or reschedule the process; the terminal's stop
//! signals (SIGTSTP, SIGTTIN, SIGTTOU, which the kernel sends whatever the
//! uids) are blocked in the thread; and an idle or batch scheduling policy,
//! a positive nice value and the idle I/O class are lifted to the defaults.
//! Dropped, it puts back each thing it changed, so that the host carries on
//! exactly as it was. Where the real uid is 0 already (sshd, login(1), cron)
//! no one but root can do any of this, and it costs one `getuid`.
//!
//! The one file of the library that talks to C for this (its declaration in
//! lib.rs allows unsafe code here alone): the scheduler, nice and I/O
//! priority calls have no safe wrapper in nix.

use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
use nix::unistd::{Uid, getresuid, setresuid};

/// While alive, the process's caller cannot stop, signal or starve it.
#[must_use = "the shield lasts only as long as the value"]
pub struct Shield {
    /// The real uid to put back.
    real_uid: Option<Uid>,
    /// The thread's signal mask to put back.
    mask: Option<SigSet>,
    /// The scheduling policy to put back (SCHED_IDLE or SCHED_BATCH).
    policy: Option<libc::c_int>,
    /// The nice value to put back.
    nice: Option<libc::c_int>,
    /// The I/O priority to put back.
    ioprio: Option<libc::c_int>,
}

/// The stop signals a terminal sends its foreground process group,
/// whatever the uids.
fn terminal_stops() -> SigSet {
    let mut set = SigSet::empty();
    for s in [Signal::SIGTSTP, Signal::SIGTTIN, Signal::SIGTTOU] {
        set.add(s);
    }
    set
}

impl Shield {
    /// Raises the shield if this process runs for a caller other than root
    /// (its real uid is not 0) with the rights to do so (effective uid 0);
    /// otherwise changes nothing.
    pub fn raise() -> Shield {
        let mut shield = Shield {
            real_uid: None,
            mask: None,
            policy: None,
            nice: None,
            ioprio: None,
        };
        let Ok(ids) = getresuid() else {
            return shield;
        };
        if ids.real.is_root() || !ids.effective.is_root() {
            return shield;
        }
        // First the signals and the uid: a stop already on its way is taken
        // now, before anything is held.
        let mut old = SigSet::empty();
        if pthread_sigmask(
            SigmaskHow::SIG_BLOCK,
            Some(&terminal_stops()),
            Some(&mut old),
        )
        .is_ok()
        {
            shield.mask = Some(old);
        }
        if setresuid(
            Uid::from_raw(0),
            Uid::from_raw(u32::MAX),
            Uid::from_raw(u32::MAX),
        )
        .is_ok()
        {
            shield.real_uid = Some(ids.real);
        }
        shield.policy = lift_policy();
        shield.nice = lift_nice();
        shield.ioprio = lift_ioprio();
        shield
    }

    /// Keeps the shield up for the rest of the process (twostep-self, once
    /// the password is proved: nothing after it is the caller's to stop).
    pub fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for Shield {
    fn drop(&mut self) {
        if let Some(ioprio) = self.ioprio {
            set_ioprio(ioprio);
        }
        if let Some(nice) = self.nice {
            // SAFETY: setpriority takes integers; it changes this thread's
            // nice value back to what it was, which is always allowed.
            unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
        }
        if let Some(policy) = self.policy {
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: the parameter lives on our stack for the call; going
            // back to SCHED_IDLE or SCHED_BATCH at priority 0 is always
            // allowed.
            unsafe { libc::sched_setscheduler(0, policy, &param) };
        }
        if let Some(uid) = self.real_uid {
            // As effective root this cannot fail; if it did, the host would
            // go on with real uid 0, which it can do nothing more with than
            // its effective uid 0 allows already.
            let _ = setresuid(uid, Uid::from_raw(u32::MAX), Uid::from_raw(u32::MAX));
        }
        if let Some(mask) = self.mask {
            let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&mask), None);
        }
    }
}

/// SCHED_IDLE or SCHED_BATCH to SCHED_OTHER; the policy lifted, if any.
fn lift_policy() -> Option<libc::c_int> {
    // SAFETY: sched_getscheduler takes a pid (0: this thread) and returns
    // an integer; it touches no memory of ours.
    let policy = unsafe { libc::sched_getscheduler(0) };
    if policy != libc::SCHED_IDLE && policy != libc::SCHED_BATCH {
        return None;
    }
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: the parameter lives on our stack for the call.
    let done = unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &param) };
    (done == 0).then_some(policy)
}

/// A positive nice value to 0; the value lifted, if any.
fn lift_nice() -> Option<libc::c_int> {
    // getpriority returns -1 both as a value and for an error: errno tells.
    nix::errno::Errno::clear();
    // SAFETY: getpriority takes integers and returns one.
    let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
    if nice <= 0 || nix::errno::Errno::last_raw() != 0 {
        return None;
    }
    // SAFETY: setpriority takes integers; as effective root it may lower
    // the nice value.
    let done = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 0) };
    (done == 0).then_some(nice)
}

const IOPRIO_WHO_PROCESS: libc::c_int = 1;
const IOPRIO_CLASS_SHIFT: libc::c_int = 13;
const IOPRIO_CLASS_IDLE: libc::c_int = 3;

/// The idle I/O class to the default (none: by the CPU nice value); the
/// priority lifted, if any.
fn lift_ioprio() -> Option<libc::c_int> {
    // SAFETY: ioprio_get takes integers (who, which: this thread) and
    // returns an integer.
    let prio = unsafe { libc::syscall(libc::SYS_ioprio_get, IOPRIO_WHO_PROCESS, 0) };
    let prio = libc::c_int::try_from(prio).ok()?;
    if prio < 0 || prio >> IOPRIO_CLASS_SHIFT != IOPRIO_CLASS_IDLE {
        return None;
    }
    set_ioprio(0).then_some(prio)
}

fn set_ioprio(prio: libc::c_int) -> bool {
    // SAFETY: ioprio_set takes integers (who, which: this thread, the
    // priority); it touches no memory of ours.
    unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, prio) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_caller_changes_nothing() {
        // The test runs as root (real uid 0): nothing to shield.
        if !nix::unistd::getuid().is_root() {
            return;
        }
        let shield = Shield::raise();
        assert!(shield.real_uid.is_none() && shield.mask.is_none());
        assert!(shield.policy.is_none() && shield.nice.is_none() && shield.ioprio.is_none());
    }

    #[test]
    fn the_terminal_stops_are_the_three() {
        let set = terminal_stops();
        for s in [Signal::SIGTSTP, Signal::SIGTTIN, Signal::SIGTTOU] {
            assert!(set.contains(s));
        }
        assert!(!set.contains(Signal::SIGINT));
    }
}
