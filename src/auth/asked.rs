//! Who is asked for a code (the `policy.*` keys, applied to this login),
//! and whether enrollment at login is still open: what the code step and
//! `preauth single` both decide before anything is asked.
#![forbid(unsafe_code)]

use super::identity::{self, UserGroups};
use super::{Env, Request};
use crate::base::user::UserName;
use crate::config::Config;
use crate::files::state::{Remembered, UserState};
use crate::rules::policy::{self, Decision};

/// Who is asked. The default policy asks everyone, and then this costs
/// nothing: no group lookup, no file read.
pub(super) fn decide(
    env: &mut Env<'_>,
    req: &Request,
    user: &UserName,
    state: Option<&UserState>,
) -> Decision {
    if !env.config.policy.is_active() {
        return Decision::Challenge { always: false };
    }
    let remembered: &[Remembered] = state.map_or(&[], |s| &s.remembered);
    let mut groups = UserGroups::new(env.accounts, user);
    let console = req.rhost.is_empty() && identity::on_local_terminal(&req.tty);
    let decision = policy::decide(
        &env.config.policy,
        &mut groups,
        &req.rhost,
        console,
        remembered,
        env.now,
    );
    if let Decision::Challenge { always } = decision {
        env.trace(req, || {
            format!("policy: ask (always_challenge_groups member: {always})")
        });
    }
    decision
}

/// Whether `unenrolled = "enroll"` still enrolls: before `policy.enroll_until`.
pub(super) fn enrollment_open(config: &Config, now: u64) -> bool {
    config.policy.enroll_until.is_none_or(|until| {
        let until = until
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        now < until
    })
}
