//! The sections about what twostep sends: `[email]`, `[sms]`, `[codes]`
//! (emailed and texted codes), `[lost_device]` and `[notify]`.
#![forbid(unsafe_code)]

use super::values::{abs_path, duration_in};
use crate::base::address::EmailAddress;
use crate::base::tomlread::{Bad, Table, Value, message};
use crate::base::user::UserName;
use crate::delivery::Program;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// A sendmail-compatible program, run as `sendmail -i -- ADDRESS`.
    pub sendmail: PathBuf,
    /// `None`: `twostep@<host name>`.
    pub from: Option<EmailAddress>,
    /// A template for users whose file has no `email`: `{user}@example.com`.
    /// Empty: none.
    pub address: String,
    /// The account sendmail runs as; `None`: root.
    pub user: Option<UserName>,
}

impl Default for Email {
    fn default() -> Self {
        Email {
            sendmail: PathBuf::from("/usr/sbin/sendmail"),
            from: None,
            address: String::new(),
            user: None,
        }
    }
}

impl Email {
    /// sendmail, and the account it runs as.
    pub fn program(&self) -> Program<'_> {
        Program {
            path: &self.sendmail,
            user: self.user.as_ref(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sms {
    /// The site's sender: argv[1] the number, the message on stdin. `None`:
    /// SMS is off.
    pub command: Option<PathBuf>,
    /// The account the command runs as; `None`: root.
    pub user: Option<UserName>,
}

impl Sms {
    /// The command and the account it runs as; `None`: SMS is off.
    pub fn program(&self) -> Option<Program<'_>> {
        self.command.as_deref().map(|path| Program {
            path,
            user: self.user.as_ref(),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Codes {
    /// Digits of an emailed or texted code.
    pub length: u8,
    pub valid: Duration,
    /// While an unexpired code was sent less than this long ago, no new one
    /// is sent.
    pub resend_after: Duration,
    /// Codes sent to one user in any hour, at most.
    pub max_per_hour: u32,
    /// The longest the module waits for sendmail or the SMS command.
    pub timeout: Duration,
}

/// The most `codes.max_per_hour` can be: the state keeps the time of each
/// send within the hour.
pub const MAX_SENDS_PER_HOUR: u32 = 30;

impl Default for Codes {
    fn default() -> Self {
        Codes {
            length: 6,
            valid: Duration::from_secs(5 * 60),
            resend_after: Duration::from_secs(60),
            max_per_hour: 5,
            timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LostDeviceMethod {
    Off,
    Email,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LostDevice {
    pub method: LostDeviceMethod,
    pub valid: Duration,
}

impl Default for LostDevice {
    fn default() -> Self {
        LostDevice {
            method: LostDeviceMethod::Off,
            valid: Duration::from_secs(15 * 60),
        }
    }
}

/// The events that can be mailed to the user (`notify.events`).
pub use crate::delivery::Event as NotifyEvent;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    pub events: Vec<NotifyEvent>,
    /// An address that gets a copy of every notification.
    pub copy_to: Option<EmailAddress>,
    /// Lock notices, which anyone who reaches a login prompt can cause,
    /// are mailed at most once per this, per user; the next one says how
    /// many were held back. Zero: every one.
    pub min_interval: Duration,
}

impl Default for Notify {
    fn default() -> Self {
        Notify {
            events: Vec::new(),
            copy_to: None,
            min_interval: Duration::from_secs(10 * 60),
        }
    }
}

impl Notify {
    pub fn wants(&self, event: NotifyEvent) -> bool {
        self.events.contains(&event)
    }
}

// ---- as written ----------------------------------------------------------------

impl Email {
    #[inline(never)]
    pub(super) fn read(t: &Table) -> Result<Email, Bad> {
        let mut e = Email::default();
        t.each("sendmail, from, address, user", |key, v| {
            match key {
                "sendmail" => e.sendmail = abs_path(v)?,
                "from" => e.from = address_text(v)?,
                "address" => {
                    let s = v.str()?;
                    if !s.is_empty() {
                        crate::base::address::check_template(s)
                            .map_err(|e| message(e.to_string()))?;
                    }
                    e.address = s.to_string();
                }
                "user" => e.user = account_name(v)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(e)
    }
}

impl Sms {
    #[inline(never)]
    pub(super) fn read(t: &Table) -> Result<Sms, Bad> {
        let mut sms = Sms::default();
        t.each("command, user", |key, v| {
            match key {
                "command" => sms.command = optional_path(v)?,
                "user" => sms.user = account_name(v)?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(sms)
    }
}

impl Codes {
    #[inline(never)]
    pub(super) fn read(t: &Table) -> Result<Codes, Bad> {
        const KEYS: &str = "length, valid, resend_after, max_per_hour, timeout";
        let mut c = Codes::default();
        t.each(KEYS, |key, v| {
            match key {
                "length" => c.length = v.int_in(6, 10, "must be 6 to 10 digits")? as u8,
                "valid" => {
                    c.valid = duration_in(v, 30, 3600, "a sent code is good from 30s to 1h")?
                }
                "resend_after" => c.resend_after = duration_in(v, 0, 3600, "from 0s to 1h")?,
                "max_per_hour" => {
                    c.max_per_hour =
                        v.int_in(1, MAX_SENDS_PER_HOUR.into(), "must be 1 to 30 codes")? as u32
                }
                "timeout" => c.timeout = duration_in(v, 1, 60, "from 1s to 60s")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        if c.resend_after > c.valid {
            return Err(t.bad(format_args!(
                "codes.resend_after: {}s is longer than codes.valid ({}s): a user would wait \
                 for a new code after the old one expired",
                c.resend_after.as_secs(),
                c.valid.as_secs()
            )));
        }
        Ok(c)
    }
}

impl LostDevice {
    #[inline(never)]
    pub(super) fn read(t: &Table) -> Result<LostDevice, Bad> {
        let mut l = LostDevice::default();
        t.each("method, valid", |key, v| {
            match key {
                "method" => {
                    l.method = v.one_of(&[
                        ("off", LostDeviceMethod::Off),
                        ("email", LostDeviceMethod::Email),
                    ])?
                }
                "valid" => l.valid = duration_in(v, 60, 86_400, "from 1m to 24h")?,
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(l)
    }
}

impl Notify {
    #[inline(never)]
    pub(super) fn read(t: &Table) -> Result<Notify, Bad> {
        let mut n = Notify::default();
        t.each("events, copy_to, min_interval", |key, v| {
            match key {
                "events" => {
                    n.events.clear();
                    for e in v.array(event)? {
                        if !n.events.contains(&e) {
                            n.events.push(e);
                        }
                    }
                }
                "copy_to" => n.copy_to = address_text(v)?,
                "min_interval" => {
                    n.min_interval =
                        duration_in(v, 0, 86_400, "from 0s (every lock notice mailed) to 24h")?
                }
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(n)
    }
}

/// One of the `notify.events` names.
fn event(v: &Value) -> Result<NotifyEvent, Bad> {
    let s = v.str()?;
    NotifyEvent::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = NotifyEvent::ALL.iter().map(|e| e.name()).collect();
        message(format!("{s:?} is not one of {}", names.join(", ")))
    })
}

// ---- leaf values ---------------------------------------------------------------

/// An email address as the config gives it; `""` is none. Checked to be one
/// plain `local@domain` (no spaces, commas, angle brackets or line breaks,
/// nothing that could add a header or an argument).
fn address_text(v: &Value) -> Result<Option<EmailAddress>, Bad> {
    none_if_empty(v, |s| EmailAddress::parse(s).map_err(|e| e.to_string()))
}

/// A string value whose `""` means none, else `parse`'s value or error.
fn none_if_empty<T>(
    v: &Value,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, Bad> {
    let s = v.str()?;
    if s.is_empty() {
        return Ok(None);
    }
    parse(s).map(Some).map_err(message)
}

/// `email.user`, `sms.user`: an account name (validated as a login name,
/// not looked up: the account may be made after the config), or `""` for
/// root.
fn account_name(v: &Value) -> Result<Option<UserName>, Bad> {
    none_if_empty(v, |s| {
        UserName::parse(s).map_err(|e| format!("{e}; \"\" runs it as root"))
    })
}

/// An absolute path, or `""` for none.
pub(super) fn optional_path(v: &Value) -> Result<Option<PathBuf>, Bad> {
    none_if_empty(v, |s| {
        if !s.starts_with('/') || s.contains('\0') {
            return Err(format!("{s:?} must be an absolute path, or \"\" for none"));
        }
        Ok(PathBuf::from(s))
    })
}
