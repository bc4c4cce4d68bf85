//! The `password` line: `password optional pam_twostep.so notify`, after
//! the password modules. It records `password_changed` and mails the notice
//! when a change succeeded, and only then.
//!
//! libpam calls pam_sm_chauthtok twice: first with PAM_PRELIM_CHECK (the
//! modules check they can go ahead; pam_unix checks the current password),
//! then, if that pass succeeded, with PAM_UPDATE_AUTHTOK (pam_unix asks for
//! the new password and writes it). The second pass decides; the first
//! only keeps a fingerprint of the account's password entry
//! (`crate::files::shadow`) with the PAM handle.
//!
//! Whether this line runs in the second pass after a failed change depends
//! on the stack and on libpam, and the module cannot ask libpam how the
//! lines above it did. With Debian's common-password
//! (`[success=1 default=ignore] pam_unix.so`, `requisite pam_deny.so`,
//! `required pam_permit.so`, then this line) libpam 1.5 reaches it only
//! when pam_unix succeeded; after `required pam_unix.so` it runs whatever
//! pam_unix returned, and older libpams decided the second pass's jumps by
//! the first pass's results. So the module checks for itself: an entry that
//! changed since the first pass is a password that changed. No first pass
//! seen, or no local entry (LDAP, Kerberos): nothing is mailed, and `debug`
//! says why.
//!
//! The line never changes the outcome of the change: it returns PAM_IGNORE
//! whatever happens (a bad config or argument is logged, a failure to mail
//! is a `delivery_failed` record). A panic is caught at the boundary
//! (pam-bindings' `catch_unwind`).
#![forbid(unsafe_code)]

use super::{SystemAccounts, before_change, item_string};
use crate::auth::Accounts;
use crate::base::records::{Record, Severity, Sink, Syslog};
use crate::base::user::UserName;
use crate::config::{self, Config};
use pam::constants::{PamFlag, PamResultCode};
use pam::items::{Service, User};
use pam::module::PamHandle;
use std::ffi::CStr;
use std::path::{Path, PathBuf};

/// Linux-PAM's flags of the two passes (security/_pam_types.h).
const PAM_PRELIM_CHECK: PamFlag = 0x4000;
const PAM_UPDATE_AUTHTOK: PamFlag = 0x2000;

/// Where pam_unix keeps passwords.
const ETC: &str = "/etc";

/// The parsed arguments of a `password` line.
#[derive(Debug, PartialEq, Eq)]
pub struct PasswordArgs {
    pub config: Option<PathBuf>,
    pub debug: bool,
    /// `notify`: the only thing the line does. Without it, nothing.
    pub notify: bool,
}

/// `config=PATH` (once), `debug`, `notify`. Anything else is an error
/// (logged; the password change goes on).
pub fn parse_password_args(args: &[&[u8]]) -> Result<PasswordArgs, String> {
    let mut out = PasswordArgs {
        config: super::config_arg(args)?,
        debug: false,
        notify: false,
    };
    for raw in args {
        let arg =
            std::str::from_utf8(raw).map_err(|_| "a module argument is not UTF-8".to_string())?;
        match arg {
            "debug" => out.debug = true,
            "notify" => out.notify = true,
            // Test builds only, as on auth lines (tests/notices.rs).
            #[cfg(debug_assertions)]
            #[allow(clippy::panic)]
            "panic-probe" => panic!("panic-probe: a deliberate panic for tests/notices.rs"),
            _ if arg.starts_with("config=/") => {}
            _ => return Err(format!("{arg:?} is not an argument of a password line")),
        }
    }
    Ok(out)
}

/// The hook. A notice is never worth a failed password change: a panic
/// is caught here (as pam-bindings would catch it) but answered PAM_IGNORE,
/// not PAM_ABORT, so that even a `required` line cannot fail the change.
pub fn chauthtok(pamh: &mut PamHandle, args: &[&CStr], flags: PamFlag) -> PamResultCode {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| notice(pamh, args, flags)))
        .unwrap_or(PamResultCode::PAM_IGNORE)
}

fn notice(pamh: &mut PamHandle, args: &[&CStr], flags: PamFlag) -> PamResultCode {
    let raw_args: Vec<&[u8]> = args.iter().map(|a| a.to_bytes()).collect();
    let service = item_string(pamh.get_item::<Service>().ok().flatten().map(|s| s.0));
    let parsed = parse_password_args(&raw_args);
    let path = match &parsed {
        Ok(a) => a.config.clone(),
        Err(_) => super::config_arg(&raw_args).ok().flatten(),
    };
    let explicit = path.is_some();
    let path = path.unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH));
    let config = match Config::load(&path, explicit) {
        Ok(c) => c,
        Err(e) => {
            let socket = e
                .log_socket
                .clone()
                .unwrap_or_else(|| Config::default().log_socket);
            refused(&socket, &service, e.to_string());
            return PamResultCode::PAM_IGNORE;
        }
    };
    let args = match parsed {
        Ok(a) => a,
        Err(why) => {
            refused(&config.log_socket, &service, why);
            return PamResultCode::PAM_IGNORE;
        }
    };
    if !args.notify {
        refused(
            &config.log_socket,
            &service,
            "a password line does nothing without \"notify\"".into(),
        );
        return PamResultCode::PAM_IGNORE;
    }
    let mut audit = Syslog {
        socket: &config.log_socket,
        tag: "pam_twostep",
    };
    let Some(user) = account(pamh) else {
        trace(&mut audit, args.debug, &service, "no valid PAM_USER");
        return PamResultCode::PAM_IGNORE;
    };
    let entry = crate::files::shadow::fingerprint(Path::new(ETC), &user);
    if flags & PAM_PRELIM_CHECK != 0 {
        if before_change::put(pamh, entry).is_err() {
            trace(&mut audit, args.debug, &service, "pam_set_data failed");
        }
        return PamResultCode::PAM_IGNORE;
    }
    if flags & PAM_UPDATE_AUTHTOK == 0 {
        return PamResultCode::PAM_IGNORE;
    }
    match (before_change::take(pamh), entry) {
        (Some(before), Some(after)) if before != Some(after) => {
            crate::auth::password_changed(&config, &mut audit, &user, &service);
        }
        (Some(_), Some(_)) => trace(&mut audit, args.debug, &service, "password entry unchanged"),
        (None, _) => trace(
            &mut audit,
            args.debug,
            &service,
            "no first pass (PAM_PRELIM_CHECK) was seen: the change cannot be confirmed",
        ),
        (Some(_), None) => trace(
            &mut audit,
            args.debug,
            &service,
            "no local password entry: the change cannot be confirmed",
        ),
    }
    PamResultCode::PAM_IGNORE
}

/// The account whose password is changed, by its own name. PAM_USER as
/// the application set it: a notice line never asks for a name.
fn account(pamh: &PamHandle) -> Option<UserName> {
    let typed = pamh.get_item::<User>().ok().flatten()?;
    let typed = UserName::parse_bytes(typed.0.to_bytes()).ok()?;
    SystemAccounts.canonical(&typed).ok().flatten()
}

/// A line that cannot work: no notice can be mailed, which is a
/// `delivery_failed` record (`reason=config`); the change goes on.
fn refused(socket: &Path, service: &str, why: String) {
    Syslog {
        socket,
        tag: "pam_twostep",
    }
    .emit(
        Record::new("delivery_failed", Severity::Warning)
            .with("user", "")
            .with("method", "email")
            .with("reason", "config")
            .with("service", service)
            .with("detail", why),
    );
}

fn trace(audit: &mut dyn Sink, debug: bool, service: &str, detail: &str) {
    if debug {
        audit.emit(
            Record::new("debug", Severity::Debug)
                .with("service", service)
                .with("detail", detail),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_line_arguments() {
        let ok: &[(&[&str], PasswordArgs)] = &[
            (
                &["notify"],
                PasswordArgs {
                    config: None,
                    debug: false,
                    notify: true,
                },
            ),
            (
                &["config=/etc/x.toml", "notify", "debug"],
                PasswordArgs {
                    config: Some(PathBuf::from("/etc/x.toml")),
                    debug: true,
                    notify: true,
                },
            ),
            (
                &[],
                PasswordArgs {
                    config: None,
                    debug: false,
                    notify: false,
                },
            ),
        ];
        for (args, want) in ok {
            let raw: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
            assert_eq!(&parse_password_args(&raw).unwrap(), want, "{args:?}");
        }
        let bad: &[&[&str]] = &[
            &["preauth", "notify"],
            &["notify", "use_authtok"],
            &["config=", "notify"],
            &["config=relative.toml", "notify"],
            &["config=/a", "config=/b", "notify"],
            &["Notify"],
        ];
        for args in bad {
            let raw: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
            assert!(parse_password_args(&raw).is_err(), "{args:?}");
        }
    }
}
