//! Who is asked for a code, and when: the `policy.*` keys as a pure function
//! of the user's groups, the remote host, the remembered sources and the time.
//!
//! The login flow (`auth.rs`) refuses a locked user before it gets here, and
//! decides what an unenrolled user gets after a [`Decision::Challenge`].
//!
//! # Precedence
//! 1. `always_challenge_groups`: a member is asked. Nothing below can skip
//!    them: not `exempt_groups`, not `require_groups`, not a trusted network,
//!    a remembered address or `console = "skip"` (and, in `auth.rs`, not
//!    `unenrolled = "allow"`). Of two contradicting group lists, the one that
//!    keeps the second factor wins: a silently skipped administrator is worse
//!    than a service account that fails visibly.
//! 2. `exempt_groups`: a member is not asked.
//! 3. `require_groups` (when not empty): a user in none of them is not asked.
//! 4. No remote host (console, su): `console` decides, and nothing else; a
//!    trusted network or remembered address needs an address. `"skip"`
//!    skips only a login on a terminal of this machine (PAM_TTY names a
//!    character device under /dev): a service with neither a remote host
//!    nor a terminal (cron, a daemon checking passwords) is asked.
//! 5. A remote host that is not an IP address (a host name, which DNS can be
//!    made to say anything) is asked.
//! 6. An address in `trusted_networks` is not asked.
//! 7. An address remembered for this user and not yet expired is not asked
//!    (only while `remember` is on).
//! 8. Everyone else is asked.
//!
//! An IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, as a dual-stack sshd
//! may report) is the IPv4 address it carries, for networks and memory alike.
//!
//! Group lookups go through the [`Groups`] trait and are made only for the
//! group lists that are set, in the order above: a configuration without
//! group keys never looks a group up.
#![forbid(unsafe_code)]

use crate::config::{Console, Policy};
use crate::files::state::{MAX_REMEMBERED, Remembered};
use std::net::IpAddr;

/// Why no code was asked: the `reason` of the `skipped` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    ExemptGroup,
    NotRequired,
    Console,
    TrustedNetwork,
    Remembered,
}

impl SkipReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::ExemptGroup => "exempt_group",
            SkipReason::NotRequired => "not_required",
            SkipReason::Console => "console",
            SkipReason::TrustedNetwork => "trusted_network",
            SkipReason::Remembered => "remembered",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Ask for a code. `always`: the user is in `always_challenge_groups`,
    /// so not even `unenrolled = "allow"` lets them through without one.
    Challenge {
        always: bool,
    },
    Skip(SkipReason),
}

/// The user's group memberships, looked up on demand.
pub trait Groups {
    /// Whether the user is in at least one of `names` (primary group or
    /// supplementary). `Err`: the lookup failed; the caller takes the side
    /// that asks for a code.
    fn in_any(&mut self, names: &[String]) -> Result<bool, String>;
}

impl Policy {
    /// Whether any key can skip anyone. False for the defaults: then the
    /// login path does no policy work at all.
    pub fn is_active(&self) -> bool {
        !self.require_groups.is_empty()
            || !self.exempt_groups.is_empty()
            || !self.always_challenge_groups.is_empty()
            || !self.trusted_networks.is_empty()
            || !self.remember.is_zero()
            || self.console == Console::Skip
    }
}

/// The address in PAM_RHOST, if it is one; IPv4-mapped IPv6 as IPv4. A host
/// name, or anything else that is not an address, is `None`.
pub fn source_address(rhost: &str) -> Option<IpAddr> {
    let ip: IpAddr = rhost.parse().ok()?;
    Some(canonical(ip))
}

/// An IPv4-mapped IPv6 address as the IPv4 address it carries: one
/// address, one entry.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Decides whether this login is asked for a code. See the module
/// documentation for the order.
pub fn decide(
    policy: &Policy,
    groups: &mut dyn Groups,
    rhost: &str,
    local_terminal: bool,
    remembered: &[Remembered],
    now: u64,
) -> Decision {
    let ask = Decision::Challenge { always: false };
    // A failed lookup counts as membership here: it asks.
    if !policy.always_challenge_groups.is_empty()
        && groups
            .in_any(&policy.always_challenge_groups)
            .unwrap_or(true)
    {
        return Decision::Challenge { always: true };
    }
    // ...and as non-membership here: it asks.
    if !policy.exempt_groups.is_empty() && groups.in_any(&policy.exempt_groups).unwrap_or(false) {
        return Decision::Skip(SkipReason::ExemptGroup);
    }
    if !policy.require_groups.is_empty() && !groups.in_any(&policy.require_groups).unwrap_or(true) {
        return Decision::Skip(SkipReason::NotRequired);
    }
    if rhost.is_empty() {
        return match policy.console {
            Console::Skip if local_terminal => Decision::Skip(SkipReason::Console),
            Console::Skip | Console::Challenge => ask,
        };
    }
    let Some(addr) = source_address(rhost) else {
        return ask;
    };
    if policy.trusted_networks.iter().any(|n| n.contains(addr)) {
        return Decision::Skip(SkipReason::TrustedNetwork);
    }
    if !policy.remember.is_zero()
        && remembered
            .iter()
            .any(|r| canonical(r.addr) == addr && r.until > now)
    {
        return Decision::Skip(SkipReason::Remembered);
    }
    ask
}

/// The remembered sources after a successful code login from `addr`:
/// `addr` (re)set to be remembered for `remember_secs` from now (when it
/// was last seen is kept), entries that lapsed dropped, and at most
/// [`MAX_REMEMBERED`] kept, those that lapse soonest evicted first. Entries
/// noted as seen are left for [`note_source`] to drop: it runs after this,
/// and must still find that this user's sources were noted before.
pub fn remember(
    current: &[Remembered],
    addr: IpAddr,
    now: u64,
    remember_secs: u64,
) -> Vec<Remembered> {
    let addr = canonical(addr);
    let seen = entry(current, addr).map_or(0, |r| r.seen);
    upsert(
        current,
        Remembered {
            addr,
            until: now.saturating_add(remember_secs),
            seen,
        },
        now,
        remember_secs,
        true,
    )
}

/// What a successful login's source was to its user (`new_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Logged in from within the window: nothing to tell.
    Known,
    /// Not logged in from within the window, while others were: a notice.
    New,
    /// No source of this user was ever noted (the first login since this
    /// was turned on, or since a new secret or reset forgot them): learned
    /// without a notice, or every user would be mailed at their next login.
    First,
}

/// How stale a known source's last login may be noted: a login from an
/// address noted less than this ago is not noted again, so that logins in
/// quick succession do not each write the state. 1/64 of the window, at
/// most an hour: an address may count as new up to that much before its
/// window ends, never after.
pub fn note_slack(window: u64) -> u64 {
    (window / 64).min(3600)
}

/// The known sources after a successful login from `addr` (`None`: as they
/// are), and what `addr` was: known if a login from it was noted within
/// `window` seconds. It is noted as seen now, unless it was less than
/// [`note_slack`] ago (how long it is remembered for is kept); entries that
/// lapsed are dropped and at most [`MAX_REMEMBERED`] kept, as [`remember`]
/// does. The same list serves both: a user's record of sources is bounded
/// whatever they do.
pub fn note_source(
    current: &[Remembered],
    addr: IpAddr,
    now: u64,
    window: u64,
) -> (Option<Vec<Remembered>>, Source) {
    let addr = canonical(addr);
    let mine = entry(current, addr);
    let source = if current.iter().all(|r| r.seen == 0) {
        Source::First
    } else if mine.is_some_and(|r| r.seen != 0 && r.seen.saturating_add(window) > now) {
        Source::Known
    } else {
        Source::New
    };
    if source == Source::Known
        && mine.is_some_and(|r| r.seen.saturating_add(note_slack(window)) > now)
    {
        return (None, source);
    }
    let until = mine.map_or(0, |r| r.until);
    let next = upsert(
        current,
        Remembered {
            addr,
            until,
            seen: now,
        },
        now,
        window,
        false,
    );
    (Some(next), source)
}

fn entry(current: &[Remembered], addr: IpAddr) -> Option<&Remembered> {
    current.iter().find(|r| canonical(r.addr) == addr)
}

/// `current` with `new` in place of its address's entry: entries that
/// lapsed (neither remembered nor seen within `window`) dropped, unless
/// `keep_seen` and they were ever seen, and at most [`MAX_REMEMBERED`]
/// kept, those that lapse soonest evicted first.
fn upsert(
    current: &[Remembered],
    new: Remembered,
    now: u64,
    window: u64,
    keep_seen: bool,
) -> Vec<Remembered> {
    let lapses = |r: &Remembered| r.until.max(r.seen.saturating_add(window));
    let mut next: Vec<Remembered> = current
        .iter()
        .filter(|r| {
            (lapses(r) > now || (keep_seen && r.seen != 0)) && canonical(r.addr) != new.addr
        })
        .copied()
        .collect();
    next.push(new);
    if next.len() > MAX_REMEMBERED {
        // Stable: of equal lapses, the one remembered first goes first.
        next.sort_by_key(|r| std::cmp::Reverse(lapses(r)));
        next.truncate(MAX_REMEMBERED);
        next.reverse();
    }
    next
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
