//! Which PAM services are ways in: those that grant a session or
//! privileges. A service is audited when
//! - its name is one of [`WAYS_IN`] (remote and console logins, su, sudo,
//!   runuser, polkit, display managers), or
//! - it is `other`, the stack of every service without a file of its own,
//!   or
//! - its auth stack includes Debian's common-auth (dovecot, cups, samba,
//!   vsftpd, a screen locker...: they check who someone is), or
//! - its auth stack has a pam_twostep line (the administrator meant it to
//!   ask for the code),
//!
//! unless it is one of [`NOT_WAYS_IN`]. Files that are not services (the
//! common-* files, editors' and dpkg's leftovers) are skipped.
#![forbid(unsafe_code)]

use super::files::Source;

/// Services that grant a session or privileges.
pub const WAYS_IN: [&str; 27] = [
    "sshd",
    "login",
    "remote",
    "su",
    "su-l",
    "sudo",
    "sudo-i",
    "doas",
    "runuser",
    "runuser-l",
    "polkit-1",
    "cockpit",
    "gdm-password",
    "gdm-autologin",
    "gdm-fingerprint",
    "gdm-smartcard",
    "lightdm",
    "lightdm-autologin",
    "sddm",
    "sddm-autologin",
    "xdm",
    "kdm",
    "kde",
    "lxdm",
    "slim",
    "ly",
    "greetd",
];

/// Services that are not ways in, although some include common-auth.
pub const NOT_WAYS_IN: [&str; 13] = [
    // twostep's own self-service: it asks for the code itself, and its PAM
    // file deliberately checks the password only.
    "twostep-self",
    // Change the caller's own finger information or login shell: the
    // caller is already logged in, and no session or privilege is granted.
    "chfn",
    "chsh",
    // The password stack, not auth: they change passwords, they let no one in.
    "passwd",
    "chpasswd",
    "newusers",
    // Jobs of existing accounts, started without authentication (account
    // and session stacks only).
    "cron",
    "atd",
    // The per-user systemd instance of someone already logged in (no auth).
    "systemd-user",
    // Display managers' greeters: the display manager's own unprivileged
    // account, to draw the login screen (whose login is gdm-password...).
    "gdm-launch-environment",
    "lightdm-greeter",
    "sddm-greeter",
    // polkit's helper for a session that already exists.
    "polkit-agent-helper-1",
];

/// Why a service is audited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    Named,
    Fallback,
    CommonAuth,
    HasTwostep,
}

/// Whether a name in a PAM directory is a service at all.
pub fn is_service(name: &str) -> bool {
    const LEFTOVERS: [&str; 7] = [".dpkg-", ".ucf-", ".pam-", ".bak", ".orig", ".old", ".save"];
    !name.is_empty()
        && !name.starts_with('.')
        && !name.ends_with('~')
        && !name.starts_with("common-")
        && !LEFTOVERS.iter().any(|l| name.contains(l))
}

/// Every service named in the tree's PAM directories (`other` among them
/// if it has a file).
pub fn names(src: &dyn Source) -> Vec<String> {
    let mut names: Vec<String> = ["/etc/pam.d", "/usr/lib/pam.d"]
        .iter()
        .flat_map(|d| src.list(d))
        .filter(|n| is_service(n))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Whether `service`, whose auth stack read `files` and has pam_twostep
/// lines if `twostep`, is audited, and why.
pub fn audited(service: &str, files: &[&str], twostep: bool) -> Option<Why> {
    if NOT_WAYS_IN.contains(&service) || !is_service(service) {
        return None;
    }
    if service == "other" {
        return Some(Why::Fallback);
    }
    if WAYS_IN.contains(&service) {
        return Some(Why::Named);
    }
    if files.contains(&"/etc/pam.d/common-auth") {
        return Some(Why::CommonAuth);
    }
    twostep.then_some(Why::HasTwostep)
}
