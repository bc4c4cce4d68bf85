//! The sections about what twostep sends: `[email]`, `[sms]`, `[codes]`
//! (emailed and texted codes), `[lost_device]` and `[notify]`.
#![forbid(unsafe_code)]

use super::values::{AbsPath, duration_in, ranged};
use crate::base::address::EmailAddress;
use crate::base::user::UserName;
use crate::delivery::Program;
use serde::Deserialize;
use serde::de::{self, Deserializer};
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEmail {
    sendmail: Option<AbsPath>,
    from: Option<AddressText>,
    address: Option<Template>,
    user: Option<AccountName>,
}

impl RawEmail {
    pub(super) fn into_section(self) -> Email {
        let d = Email::default();
        Email {
            sendmail: self.sendmail.map_or(d.sendmail, |p| p.0),
            from: self.from.and_then(|a| a.0),
            address: self.address.map_or(d.address, |t| t.0),
            user: self.user.and_then(|u| u.0),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSms {
    command: Option<OptionalPath>,
    user: Option<AccountName>,
}

impl RawSms {
    pub(super) fn into_section(self) -> Sms {
        Sms {
            command: self.command.and_then(|p| p.0),
            user: self.user.and_then(|u| u.0),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCodes {
    length: Option<CodeLength>,
    valid: Option<CodeValid>,
    resend_after: Option<ResendAfter>,
    max_per_hour: Option<MaxPerHour>,
    timeout: Option<SendTimeout>,
}

impl RawCodes {
    pub(super) fn into_section(self) -> Result<Codes, String> {
        let d = Codes::default();
        let codes = Codes {
            length: self.length.map_or(d.length, |v| v.0),
            valid: self.valid.map_or(d.valid, |v| v.0),
            resend_after: self.resend_after.map_or(d.resend_after, |v| v.0),
            max_per_hour: self.max_per_hour.map_or(d.max_per_hour, |v| v.0),
            timeout: self.timeout.map_or(d.timeout, |v| v.0),
        };
        if codes.resend_after > codes.valid {
            return Err(format!(
                "codes.resend_after: {}s is longer than codes.valid ({}s): a user would wait for a \
                 new code after the old one expired",
                codes.resend_after.as_secs(),
                codes.valid.as_secs()
            ));
        }
        Ok(codes)
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLostDevice {
    method: Option<LostDeviceMethod>,
    valid: Option<LostValid>,
}

impl RawLostDevice {
    pub(super) fn into_section(self) -> LostDevice {
        let d = LostDevice::default();
        LostDevice {
            method: self.method.unwrap_or(d.method),
            valid: self.valid.map_or(d.valid, |v| v.0),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNotify {
    events: Option<Vec<EventName>>,
    copy_to: Option<AddressText>,
    min_interval: Option<NoticeInterval>,
}

impl RawNotify {
    pub(super) fn into_section(self) -> Notify {
        let mut events: Vec<NotifyEvent> = Vec::new();
        for e in self.events.unwrap_or_default() {
            if !events.contains(&e.0) {
                events.push(e.0);
            }
        }
        Notify {
            events,
            copy_to: self.copy_to.and_then(|a| a.0),
            min_interval: self
                .min_interval
                .map_or(Notify::default().min_interval, |i| i.0),
        }
    }
}

// ---- leaf values ---------------------------------------------------------------

/// An email address as the config gives it; `""` is none. Checked to be one
/// plain `local@domain` (no spaces, commas, angle brackets or line breaks,
/// nothing that could add a header or an argument).
pub(super) struct AddressText(Option<EmailAddress>);
impl<'de> Deserialize<'de> for AddressText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        none_if_empty(d, |s| EmailAddress::parse(s).map_err(|e| e.to_string())).map(AddressText)
    }
}

/// A string value whose `""` means none, else `parse`'s value or error.
fn none_if_empty<'de, D: Deserializer<'de>, T>(
    d: D,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, D::Error> {
    let s = String::deserialize(d)?;
    if s.is_empty() {
        return Ok(None);
    }
    parse(&s).map(Some).map_err(de::Error::custom)
}

/// `email.address`: `""`, or a template with `{user}` that makes an address.
pub(super) struct Template(String);
impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() {
            return Ok(Template(s));
        }
        crate::base::address::check_template(&s)
            .map(|()| Template(s))
            .map_err(de::Error::custom)
    }
}

/// One of the `notify.events` names.
pub(super) struct EventName(NotifyEvent);
impl<'de> Deserialize<'de> for EventName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        NotifyEvent::from_name(&s).map(EventName).ok_or_else(|| {
            let names: Vec<&str> = NotifyEvent::ALL.iter().map(|e| e.name()).collect();
            de::Error::custom(format!("{s:?} is not one of {}", names.join(", ")))
        })
    }
}

/// `email.user`, `sms.user`: an account name (validated as a login name,
/// not looked up: the account may be made after the config), or `""` for
/// root.
pub(super) struct AccountName(Option<UserName>);
impl<'de> Deserialize<'de> for AccountName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        none_if_empty(d, |s| {
            UserName::parse(s).map_err(|e| format!("{e}; \"\" runs it as root"))
        })
        .map(AccountName)
    }
}

/// An absolute path, or `""` for none.
pub(super) struct OptionalPath(Option<PathBuf>);
impl<'de> Deserialize<'de> for OptionalPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() {
            return Ok(OptionalPath(None));
        }
        if !s.starts_with('/') || s.contains('\0') {
            return Err(de::Error::custom(format!(
                "{s:?} must be an absolute path, or \"\" for none"
            )));
        }
        Ok(OptionalPath(Some(PathBuf::from(s))))
    }
}

super::values::ranged_newtype!(CodeLength, u8, 6, 10, "must be 6 to 10 digits");
super::values::ranged_newtype!(
    MaxPerHour,
    u32,
    1,
    MAX_SENDS_PER_HOUR as i64,
    "must be 1 to 30 codes"
);

macro_rules! duration_newtype {
    ($name:ident, $lo:expr, $hi:expr, $what:expr) => {
        pub(super) struct $name(Duration);
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                duration_in(d, $lo, $hi, $what).map($name)
            }
        }
    };
}

duration_newtype!(CodeValid, 30, 3600, "a sent code is good from 30s to 1h");
duration_newtype!(ResendAfter, 0, 3600, "from 0s to 1h");
duration_newtype!(SendTimeout, 1, 60, "from 1s to 60s");
duration_newtype!(LostValid, 60, 86_400, "from 1m to 24h");
duration_newtype!(
    NoticeInterval,
    0,
    86_400,
    "from 0s (every lock notice mailed) to 24h"
);
