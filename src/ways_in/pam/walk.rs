//! Every path through a flattened stack, each module returning each of its
//! possible results, evaluated as libpam's `_pam_dispatch_aux` evaluates
//! one (Linux-PAM 1.5, pam_dispatch.c):
//!
//! - impression UNDEF/POSITIVE/NEGATIVE and a status; `ok`/`done` set
//!   POSITIVE with the module's result while the impression is UNDEF or a
//!   positive success; `done` then ends the (sub)stack, if POSITIVE;
//! - `bad`/`die` set NEGATIVE (once); `die` ends the (sub)stack;
//! - `reset` goes back to the state at the substack's entry (the stack's
//!   start at the top);
//! - a jump of N skips N lines of its level, a substack being one; past the
//!   end of its level it is a "bad jump": NEGATIVE;
//! - entering a substack remembers the state; leaving it keeps whatever the
//!   substack left;
//! - the stack succeeds when it ends POSITIVE with a success.
//!
//! Paths are not enumerated one by one (2^n of them): the walk visits
//! states, and a state is what decides the rest of a path (position,
//! impression, status, the substack entry states) plus what the report
//! needs (whether the code was given, whom the conditions so far let
//! through, which line skipped the code step). Each state is visited once,
//! so the cost is polynomial in the stack's length; it is bounded anyway
//! by [`MAX_STATES`] (about 0.2 s of a release build; real stacks take
//! tens to a few thousand states).
#![forbid(unsafe_code)]

use super::Users;
use super::modules::{Outcome, Step, narrower};
use super::parse::{Action, PAM_SUCCESS};
use super::resolve::{Handler, Kind, MAX_DEPTH};
use std::collections::HashSet;

/// The most states one stack's walk visits (each a few hundred bytes).
pub const MAX_STATES: usize = 50_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Impression {
    Undef,
    Positive,
    Negative,
}

/// What a reset goes back to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Saved {
    impression: Impression,
    success: bool,
    grantor: Option<u32>,
}

const START: Saved = Saved {
    impression: Impression::Undef,
    success: false,
    grantor: None,
};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct State {
    pos: usize,
    prev_level: u8,
    impression: Impression,
    /// The status is PAM_SUCCESS.
    success: bool,
    /// The line whose success first made the impression positive.
    grantor: Option<u32>,
    /// The entry state of each level up to the current one.
    saved: Vec<Saved>,
    /// The best the code steps on the path did.
    step: Step,
    users: Users,
    /// The first line whose jump or end of stack skipped a code step, and
    /// that code step.
    skipper: Option<(u32, u32)>,
    /// The first code step that failed without stopping the path.
    ignored: Option<u32>,
    /// The first module known to let someone in (a password or a pass
    /// such as pam_permit) that succeeded on the path.
    pass: Option<u32>,
}

/// How a successful path got through.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Through {
    pub step: Step,
    pub users: Users,
    pub skipper: Option<(u32, u32)>,
    pub ignored: Option<u32>,
    pub pass: Option<u32>,
    pub grantor: Option<u32>,
}

/// What the walk found.
#[derive(Debug, Clone, Default)]
pub struct Walked {
    /// Every distinct way a path ends in success.
    pub successes: HashSet<Through>,
    /// The handlers some path ran.
    pub reached: Vec<bool>,
    /// The bound was hit: not every path was followed.
    pub truncated: bool,
}

/// A handler's possible results, as the walk uses them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub action: Action,
    pub success: bool,
    pub users: Users,
    pub step: Step,
}

/// The distinct moves of a handler whose module returns `outcomes`.
pub fn moves(h: &Handler, outcomes: &[Outcome]) -> Vec<Move> {
    let mut out: Vec<Move> = Vec::new();
    for o in outcomes {
        let Some(&action) = h.actions.get(usize::from(o.retval)) else {
            continue;
        };
        let m = Move {
            action,
            success: o.retval == PAM_SUCCESS,
            users: o.users.clone(),
            step: o.step,
        };
        if !out.contains(&m) {
            out.push(m);
        }
    }
    out
}

/// What the walk knows of each handler besides its moves.
pub struct Facts {
    /// A pam_twostep code step.
    pub code_step: Vec<bool>,
    /// A module whose success lets someone in (see [`State::pass`]).
    pub grants: Vec<bool>,
}

/// Walks every path of `handlers`, whose possible moves are `moves`.
pub fn walk(handlers: &[Handler], moves: &[Vec<Move>], facts: &Facts) -> Walked {
    let n = handlers.len();
    let mut out = Walked {
        reached: vec![false; n],
        ..Walked::default()
    };
    let start = State {
        pos: 0,
        prev_level: 0,
        impression: Impression::Undef,
        success: false,
        grantor: None,
        saved: vec![START],
        step: Step::None,
        users: Users::All,
        skipper: None,
        ignored: None,
        pass: None,
    };
    let mut seen: HashSet<State> = HashSet::new();
    let mut todo = vec![start];
    while let Some(s) = todo.pop() {
        if seen.contains(&s) {
            continue;
        }
        if seen.len() >= MAX_STATES {
            out.truncated = true;
            break;
        }
        seen.insert(s.clone());
        let Some(h) = handlers.get(s.pos) else {
            if s.impression == Impression::Positive && s.success {
                out.successes.insert(Through {
                    step: s.step,
                    users: s.users,
                    skipper: s.skipper,
                    ignored: s.ignored,
                    pass: s.pass,
                    grantor: s.grantor,
                });
            }
            continue;
        };
        let level = h.level;
        let mut base = s;
        let depth = usize::from(level);
        if depth >= MAX_DEPTH {
            continue;
        }
        if base.saved.len() <= depth {
            base.saved.resize(depth + 1, START);
        }
        if base.prev_level < level
            && let Some(slot) = base.saved.get_mut(depth)
        {
            *slot = Saved {
                impression: base.impression,
                success: base.success,
                grantor: base.grantor,
            };
        }
        base.prev_level = level;
        if h.kind == Kind::Marker {
            base.pos += 1;
            todo.push(canonical(base, handlers));
            continue;
        }
        if let Some(r) = out.reached.get_mut(base.pos) {
            *r = true;
        }
        let here = u32::try_from(base.pos).unwrap_or(u32::MAX);
        let is_code = facts.code_step.get(base.pos).copied().unwrap_or(false);
        let grants = facts.grants.get(base.pos).copied().unwrap_or(false);
        for m in moves.get(base.pos).map(Vec::as_slice).unwrap_or_default() {
            let mut t = base.clone();
            if m.success {
                t.users = narrower(&t.users, &m.users);
                t.step = t.step.max(m.step);
                if grants && t.pass.is_none() {
                    t.pass = Some(here);
                }
            } else if is_code
                && !matches!(m.action, Action::Bad | Action::Die)
                && t.ignored.is_none()
            {
                t.ignored = Some(here);
            }
            let mut end_of_level = false;
            match m.action {
                Action::Reset => {
                    let back = t.saved.get(depth).copied().unwrap_or(START);
                    t.impression = back.impression;
                    t.success = back.success;
                    t.grantor = back.grantor;
                    t.pos += 1;
                }
                Action::Ok | Action::Done => {
                    if t.impression == Impression::Undef
                        || (t.impression == Impression::Positive && t.success)
                    {
                        if t.impression == Impression::Undef && m.success {
                            t.grantor = Some(here);
                        }
                        t.impression = Impression::Positive;
                        t.success = m.success;
                    }
                    end_of_level = m.action == Action::Done && t.impression == Impression::Positive;
                    t.pos += 1;
                }
                Action::Bad | Action::Die => {
                    if t.impression != Impression::Negative {
                        t.impression = Impression::Negative;
                        t.success = m.success;
                    }
                    end_of_level = m.action == Action::Die;
                    t.pos += 1;
                }
                Action::Ignore => t.pos += 1,
                Action::Jump(k) => {
                    let (last, left) = jump(handlers, t.pos, level, k);
                    let from = t.pos + 1;
                    note_skip(&mut t, here, from, last + 1, facts);
                    if left > 0 {
                        t.impression = Impression::Negative;
                        t.success = false;
                    }
                    t.pos = last + 1;
                }
            }
            if end_of_level {
                let end = (t.pos..n)
                    .find(|&j| handlers.get(j).is_some_and(|x| x.level < level))
                    .unwrap_or(n);
                let from = t.pos;
                note_skip(&mut t, here, from, end, facts);
                t.pos = end;
            }
            todo.push(canonical(t, handlers));
        }
    }
    out
}

/// libpam's jump from `pos`: over `k` lines of `level` (a deeper run
/// following one is part of it). Returns the last handler skipped, and how
/// many lines were left to skip (more than 0: a bad jump).
fn jump(handlers: &[Handler], pos: usize, level: u8, k: u32) -> (usize, u32) {
    let mut h = pos;
    let mut k = k;
    let deeper_or_same = |j: usize| handlers.get(j).is_some_and(|x| x.level >= level);
    while k > 0 && deeper_or_same(h + 1) {
        h += 1;
        while handlers.get(h + 1).is_some_and(|x| x.level > level) {
            h += 1;
        }
        k -= 1;
    }
    (h, k)
}

/// Records the first skip of a code step: `from..to` skipped by `here`.
fn note_skip(t: &mut State, here: u32, from: usize, to: usize, facts: &Facts) {
    if t.skipper.is_some() {
        return;
    }
    if let Some(code) = (from..to).find(|&j| facts.code_step.get(j).copied().unwrap_or(false)) {
        t.skipper = Some((here, u32::try_from(code).unwrap_or(u32::MAX)));
    }
}

/// Forgets what cannot matter any more (the entry states of levels deeper
/// than the next handler's), so that equal futures are one state.
fn canonical(mut s: State, handlers: &[Handler]) -> State {
    match handlers.get(s.pos) {
        Some(next) => s.saved.truncate(usize::from(next.level) + 1),
        None => {
            s.saved.clear();
            s.prev_level = 0;
            s.grantor = s.grantor.filter(|_| s.impression == Impression::Positive);
        }
    }
    s
}
