//! Notices the module mails (`notify.events`): a lock, a recovery code
//! used, a lost-device sign-in, an enrollment at login, a login from a new
//! source, a password changed (from a `password` line). A failure to mail
//! never changes the outcome: it is a `delivery_failed` record.
#![forbid(unsafe_code)]

use super::{Env, Request};
use crate::base::address::EmailAddress;
use crate::base::user::UserName;
use crate::delivery::Event;
use crate::delivery::outbox::{self, Details};
use crate::files::secret;
use std::time::{Duration, SystemTime};

/// Mails `event` if the config asks for it. `email`: the secret file's
/// address if the caller has it at hand; otherwise the file is read for it
/// (notices are rare: no login pays for this unless one is due).
pub(super) fn event(
    env: &mut Env<'_>,
    event: Event,
    user: &UserName,
    email: Option<&EmailAddress>,
    req: &Request,
    by: Option<&str>,
    until: Option<u64>,
) {
    if !env.config.notify.wants(event) {
        return;
    }
    // Anyone who reaches a login prompt can lock an account: its notices
    // are held to one per notify.min_interval, the next saying how many
    // were held back. A throttle that cannot be read or kept mails it:
    // one notice too many rather than none.
    let mut held_back = 0;
    if event == Event::Locked {
        let interval = env.config.notify.min_interval;
        match env.store.lock_notice(user, env.now, interval.as_secs()) {
            Ok(Some(n)) => held_back = n,
            Ok(None) => {
                env.emit(outbox::failure_record(user, "email", "throttled").with(
                    "detail",
                    format!(
                        "notice of locked held back: one was mailed less than {} ago \
                         (notify.min_interval)",
                        humantime::format_duration(interval)
                    ),
                ));
                return;
            }
            Err(_) => {}
        }
    }
    let loaded;
    let email = match email {
        Some(e) => Some(e),
        None => {
            loaded = secret::load(&env.config.secret_dir, user, &env.config.totp)
                .ok()
                .and_then(|s| s.email);
            loaded.as_ref()
        }
    };
    let details = Details {
        by,
        service: Some(&req.service),
        source: Some(&req.rhost),
        device: None,
        until: until.map(|t| SystemTime::UNIX_EPOCH + Duration::from_secs(t)),
        held_back,
    };
    outbox::notify(env.config, env.audit, event, user, email, &details);
}

/// A password was changed (a `password ... notify` line saw the account's
/// entry change): the `password_changed` record, and the notice when
/// `notify.events` names it. Outside any login: no state, no lock.
pub fn password_changed(
    config: &crate::config::Config,
    audit: &mut dyn crate::base::records::Sink,
    user: &UserName,
    service: &str,
) {
    audit.emit(
        crate::base::records::Record::new(
            "password_changed",
            crate::base::records::Severity::Notice,
        )
        .with("user", user)
        .with("service", service),
    );
    if !config.notify.wants(Event::PasswordChanged) {
        return;
    }
    let email = secret::load(&config.secret_dir, user, &config.totp)
        .ok()
        .and_then(|s| s.email);
    let details = Details {
        service: Some(service),
        ..Details::default()
    };
    outbox::notify(
        config,
        audit,
        Event::PasswordChanged,
        user,
        email.as_ref(),
        &details,
    );
}
