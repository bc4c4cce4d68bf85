//! The tier arithmetic: pure functions of (counters, now, tiers).
//!
//! Failures of the password and of the code count together. After the first
//! tier's `failures` consecutive failures the user is locked for its `lock`;
//! once that lock has expired, the next tier's `failures` further failures lock
//! for its `lock`; past the last tier, the last tier repeats. A success resets
//! everything. Attempts while locked are neither evaluated nor counted.
#![forbid(unsafe_code)]

use crate::config::Tier;

/// The lockout part of a user's state. Times are Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Consecutive failures since the last success (for status and records).
    pub failures: u32,
    /// Failures counted toward the current tier.
    pub tier_failures: u32,
    /// The tier being counted, 0-based. May exceed the configured tiers after
    /// the administrator shortened the list: it is clamped when used.
    pub tier: u32,
    /// Locked while `now < locked_until`.
    pub locked_until: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Open,
    Locked { until: u64 },
}

/// Whether an attempt at `now` may be evaluated.
///
/// A lock ends at `locked_until` on the clock as it is now. If the clock was
/// set back, the lock lasts longer rather than shorter: a lock never ends early
/// because of the clock. `twostep unlock` is the remedy for a stuck lock.
pub fn standing(c: &Counters, now: u64) -> Standing {
    if now < c.locked_until {
        Standing::Locked {
            until: c.locked_until,
        }
    } else {
        Standing::Open
    }
}

/// The tier that applies to `index`, with the last tier repeating.
fn tier_at(tiers: &[Tier], index: u32) -> Option<&Tier> {
    let last = tiers.len().checked_sub(1)?;
    tiers.get(usize::try_from(index).unwrap_or(usize::MAX).min(last))
}

/// A lock that a failure just caused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewLock {
    /// 1-based, as administrators count them.
    pub tier: u32,
    pub until: u64,
}

/// Counts one failure at `now` on an open account. Returns the new counters
/// and the lock it caused, if any. Call only when [`standing`] is `Open`.
pub fn record_failure(c: &Counters, now: u64, tiers: &[Tier]) -> (Counters, Option<NewLock>) {
    let mut next = *c;
    next.failures = c.failures.saturating_add(1);
    next.tier_failures = c.tier_failures.saturating_add(1);
    let Some(tier) = tier_at(tiers, c.tier) else {
        // An empty tier list is refused when the config is read; should one
        // reach here, lock rather than count forever.
        next.locked_until = u64::MAX;
        return (
            next,
            Some(NewLock {
                tier: 1,
                until: u64::MAX,
            }),
        );
    };
    if next.tier_failures < tier.failures {
        return (next, None);
    }
    let until = now.saturating_add(tier.lock.as_secs());
    let index = usize::try_from(c.tier)
        .unwrap_or(usize::MAX)
        .min(tiers.len() - 1);
    next.locked_until = until;
    next.tier_failures = 0;
    // Advance to the next tier, staying on the last one.
    next.tier = u32::try_from((index + 1).min(tiers.len() - 1)).unwrap_or(u32::MAX);
    let tier_number = u32::try_from(index + 1).unwrap_or(u32::MAX);
    (
        next,
        Some(NewLock {
            tier: tier_number,
            until,
        }),
    )
}

/// A successful login (or an administrator's unlock) resets the count and the tier.
pub fn reset() -> Counters {
    Counters::default()
}

/// The tier being counted, 1-based, for status and records.
pub fn tier_number(c: &Counters, tiers: &[Tier]) -> u32 {
    let last = u32::try_from(tiers.len().saturating_sub(1)).unwrap_or(u32::MAX);
    c.tier.min(last).saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn tiers(spec: &[(u32, u64)]) -> Vec<Tier> {
        spec.iter()
            .map(|&(failures, secs)| Tier {
                failures,
                lock: Duration::from_secs(secs),
            })
            .collect()
    }

    /// Drives a sequence of (time, action) and checks the outcome of each.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Step {
        /// A failure at t: expect (evaluated?, new lock tier and until)
        Fail(u64, bool, Option<(u32, u64)>),
        /// A success at t: expect evaluated?
        Ok(u64, bool),
    }

    fn run(tiers: &[Tier], steps: &[Step]) {
        let mut c = Counters::default();
        for (i, step) in steps.iter().enumerate() {
            match *step {
                Step::Fail(t, evaluated, lock) => {
                    let open = standing(&c, t) == Standing::Open;
                    assert_eq!(open, evaluated, "step {i}: {step:?} counters {c:?}");
                    if open {
                        let (next, new_lock) = record_failure(&c, t, tiers);
                        assert_eq!(
                            new_lock.map(|l| (l.tier, l.until)),
                            lock,
                            "step {i}: {step:?}"
                        );
                        c = next;
                    }
                }
                Step::Ok(t, evaluated) => {
                    let open = standing(&c, t) == Standing::Open;
                    assert_eq!(open, evaluated, "step {i}: {step:?} counters {c:?}");
                    if open {
                        c = reset();
                    }
                }
            }
        }
    }

    use Step::{Fail, Ok};

    #[test]
    fn default_tiers_5m_then_1h_then_1h_repeats() {
        let t = tiers(&[(5, 300), (5, 3600)]);
        let mut steps = vec![];
        for s in 0..4 {
            steps.push(Fail(s, true, None));
        }
        steps.push(Fail(4, true, Some((1, 304))));
        // Refused while locked, not counted, up to the last second.
        steps.push(Fail(5, false, None));
        steps.push(Fail(303, false, None));
        steps.push(Ok(303, false));
        // Exactly at expiry the account is open again; tier 2 counts afresh.
        for s in 304..308 {
            steps.push(Fail(s, true, None));
        }
        steps.push(Fail(308, true, Some((2, 3908))));
        steps.push(Fail(3907, false, None));
        // Past the last tier, the last tier repeats.
        for s in 3908..3912 {
            steps.push(Fail(s, true, None));
        }
        steps.push(Fail(3912, true, Some((2, 7512))));
        // A success resets the tier: the next lock is tier 1 again.
        steps.push(Ok(7512, true));
        for s in 7513..7517 {
            steps.push(Fail(s, true, None));
        }
        steps.push(Fail(7517, true, Some((1, 7817))));
        run(&t, &steps);
    }

    #[test]
    fn success_before_the_limit_resets_the_count() {
        let t = tiers(&[(3, 60)]);
        run(
            &t,
            &[
                Fail(0, true, None),
                Fail(1, true, None),
                Ok(2, true),
                Fail(3, true, None),
                Fail(4, true, None),
                Fail(5, true, Some((1, 65))),
            ],
        );
    }

    #[test]
    fn a_single_tier_repeats() {
        let t = tiers(&[(1, 10)]);
        run(
            &t,
            &[
                Fail(0, true, Some((1, 10))),
                Fail(9, false, None),
                Fail(10, true, Some((1, 20))),
                Fail(20, true, Some((1, 30))),
            ],
        );
    }

    #[test]
    fn three_tiers() {
        let t = tiers(&[(2, 10), (1, 100), (3, 1000)]);
        run(
            &t,
            &[
                Fail(0, true, None),
                Fail(1, true, Some((1, 11))),
                Fail(11, true, Some((2, 111))),
                Fail(111, true, None),
                Fail(112, true, None),
                Fail(113, true, Some((3, 1113))),
                Fail(1113, true, None),
                Fail(1114, true, None),
                Fail(1115, true, Some((3, 2115))),
            ],
        );
    }

    #[test]
    fn clock_set_back_never_shortens_a_lock() {
        let t = tiers(&[(1, 300)]);
        let (c, lock) = record_failure(&Counters::default(), 1_000_000, &t);
        assert_eq!(
            lock,
            Some(NewLock {
                tier: 1,
                until: 1_000_300
            })
        );
        // (now, expected standing)
        let cases = [
            (0, Standing::Locked { until: 1_000_300 }),
            (999_000, Standing::Locked { until: 1_000_300 }),
            (1_000_299, Standing::Locked { until: 1_000_300 }),
            (1_000_300, Standing::Open),
            (u64::MAX, Standing::Open),
        ];
        for (now, want) in cases {
            assert_eq!(standing(&c, now), want, "now {now}");
        }
    }

    #[test]
    fn counters_from_a_longer_tier_list_are_clamped() {
        // The state was written under three tiers; the admin now has one.
        let c = Counters {
            failures: 9,
            tier_failures: 0,
            tier: 2,
            locked_until: 0,
        };
        let t = tiers(&[(2, 50)]);
        assert_eq!(tier_number(&c, &t), 1);
        let (c, lock) = record_failure(&c, 100, &t);
        assert_eq!(lock, None);
        let (c, lock) = record_failure(&c, 101, &t);
        assert_eq!(
            lock,
            Some(NewLock {
                tier: 1,
                until: 151
            })
        );
        assert_eq!(c.failures, 11);
        assert_eq!(c.tier, 0);
    }

    #[test]
    fn far_future_does_not_overflow() {
        let t = tiers(&[(1, 365 * 86400)]);
        let (c, lock) = record_failure(&Counters::default(), u64::MAX - 5, &t);
        assert_eq!(lock.map(|l| l.until), Some(u64::MAX));
        assert_eq!(
            standing(&c, u64::MAX - 1),
            Standing::Locked { until: u64::MAX }
        );
    }

    #[test]
    fn failure_count_is_total_since_success() {
        let t = tiers(&[(2, 1), (2, 1)]);
        let mut c = Counters::default();
        let mut now = 0;
        for want in 1..=7u32 {
            while standing(&c, now) != Standing::Open {
                now += 1;
            }
            c = record_failure(&c, now, &t).0;
            assert_eq!(c.failures, want);
        }
    }
}
