//! `new_source`: after a successful code step (a good code, a policy skip,
//! an enrollment), whether the login came from an address its user has not
//! logged in from within `policy.remember` (or 30 days when that is off).
//! If so: the `new_source` record and, as every notice, a mail.
//!
//! The known sources are the remembered sources' list (`policy`,
//! `Remembered::seen`), in the store: fleet-wide with a shared one, at most
//! `state::MAX_REMEMBERED` per user. Only logins from an address are
//! judged: a console has none, and a host name is what DNS says it is.
//! The first source ever noted for a user (`policy::Source::First`) is
//! learned without a notice. Nothing here runs unless `notify.events` has
//! `new_source`, and nothing here changes the login's outcome.
#![forbid(unsafe_code)]

use super::identity::{self, Who};
use super::{Env, Request, notify};
use crate::base::records::Severity;
use crate::delivery::Event;
use crate::rules::policy::{self, Source};

/// The window when `policy.remember` is off.
const DEFAULT_WINDOW: u64 = 30 * 86_400;

/// After a successful code step of `req`.
pub(super) fn after_login(env: &mut Env<'_>, req: &Request) {
    if !env.config.notify.wants(Event::NewSource) {
        return;
    }
    let Some(addr) = policy::source_address(&req.rhost) else {
        return;
    };
    let Who::Account(user) = identity::resolve(env, req) else {
        return;
    };
    let req = &req.for_account(&user);
    let window = match env.config.policy.remember.as_secs() {
        0 => DEFAULT_WINDOW,
        secs => secs,
    };
    match env.store.note_source(&user, addr, env.now, window) {
        Ok(Source::New) => {
            let rec = env.record("new_source", Severity::Notice, req);
            env.emit(rec);
            notify::event(env, Event::NewSource, &user, None, req, None, None);
        }
        Ok(source) => env.trace(req, || format!("source {addr}: {source:?}")),
        Err(e) => {
            let rec = crate::delivery::outbox::failure_record(&user, "email", "store").with(
                "detail",
                format!("whether {addr} is a new source is not known: {e}"),
            );
            env.emit(rec);
        }
    }
}
