//! What the module and the commands send, as the configuration says: who
//! sends it, to which address or number, through which program, within
//! which deadline, and the records of it. A failure to send a notice never
//! changes an outcome: it is a `delivery_failed` record.
#![forbid(unsafe_code)]

use super::{
    Code, DeliveryError, Event, Login, Notice, Purpose, Sender, code_email, code_sms, notice_email,
    send_email, send_sms,
};
use crate::base::address::{self, EmailAddress, PhoneNumber};
use crate::base::records::{Record, Severity, Sink};
use crate::base::user::UserName;
use crate::config::Config;
use crate::files::secret::{Method, UserSecret};
use std::time::{Duration, SystemTime};

/// Where a user's codes go: an address or a number, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Email(EmailAddress),
    Sms(PhoneNumber),
}

impl Destination {
    /// As records and messages show it: `a***@e***.com`, `+*******4567`.
    pub fn masked(&self) -> String {
        match self {
            Destination::Email(a) => a.masked(),
            Destination::Sms(p) => p.masked(),
        }
    }

    /// The `method` of records: `email` or `sms`.
    pub fn method(&self) -> &'static str {
        match self {
            Destination::Email(_) => "email",
            Destination::Sms(_) => "sms",
        }
    }

    /// The name under which sends to this address or number are counted,
    /// every account's together (`Store::count_send`): a hex digest of it,
    /// so that no state file or store key names an address. An address is
    /// taken in lower case: mail systems deliver `Victim@` to `victim@`.
    pub fn throttle_key(&self) -> String {
        use blake2::{Blake2b256, Digest};
        let text = match self {
            Destination::Email(a) => format!("email:{}", a.as_str().to_ascii_lowercase()),
            Destination::Sms(p) => format!("sms:{}", p.as_str()),
        };
        let digest = Blake2b256::new()
            .chain_update(b"twostep destination v1\0")
            .chain_update(text.as_bytes())
            .finalize();
        digest[..16].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The user's email address: the secret file's `email` (given as
/// `from_file`), else the config's `email.address` template. `None`:
/// neither.
pub fn user_email(
    config: &Config,
    user: &UserName,
    from_file: Option<&EmailAddress>,
) -> Option<EmailAddress> {
    if let Some(a) = from_file {
        return Some(a.clone());
    }
    if config.email.address.is_empty() {
        return None;
    }
    address::expand_template(&config.email.address, user.as_str()).ok()
}

/// Where `method`'s codes go for this user, or why nowhere.
pub fn destination(
    config: &Config,
    user: &UserName,
    secret: &UserSecret,
    method: Method,
) -> Result<Destination, String> {
    match method {
        Method::Email => user_email(config, user, secret.email.as_ref())
            .map(Destination::Email)
            .ok_or_else(|| {
                "no email address: set `email` in the secret file or email.address in the config"
                    .into()
            }),
        Method::Sms => {
            if config.sms.command.is_none() {
                return Err("sms.command is not set: SMS is off".into());
            }
            secret
                .phone
                .clone()
                .map(Destination::Sms)
                .ok_or_else(|| "no phone number in the secret file".into())
        }
        Method::Totp => Err("an app user has no address to send codes to".into()),
    }
}

/// Who a message is from, owned: this host's name, `email.from` (or its
/// default) and the issuer. [`Origin::sender`] lends it as a [`Sender`].
pub struct Origin {
    host: String,
    from: EmailAddress,
    issuer: String,
}

impl Origin {
    pub fn new(config: &Config) -> Result<Origin, DeliveryError> {
        let host = crate::files::enrollment::hostname();
        let from = from_address(config, &host)?;
        Ok(Origin {
            host,
            from,
            issuer: crate::files::enrollment::issuer(config),
        })
    }

    pub fn sender(&self) -> Sender<'_> {
        Sender {
            from: &self.from,
            host: &self.host,
            issuer: &self.issuer,
        }
    }
}

/// A `delivery_failed` record with its user, method and reason; the caller
/// adds `to` and `detail`.
pub fn failure_record(user: &UserName, method: &str, reason: &str) -> Record {
    Record::new("delivery_failed", Severity::Warning)
        .with("user", user)
        .with("method", method)
        .with("reason", reason)
}

/// `email.from`, else `twostep@<host name>` (else `twostep@localhost`, for a
/// host name that is no domain).
fn from_address(config: &Config, host: &str) -> Result<EmailAddress, DeliveryError> {
    if let Some(from) = &config.email.from {
        return Ok(from.clone());
    }
    EmailAddress::parse(&format!("twostep@{host}"))
        .or_else(|_| EmailAddress::parse("twostep@localhost"))
        .map_err(|e| DeliveryError::Message(format!("no From address: {e}")))
}

/// Hands a code to `to`, within `codes.timeout`.
pub fn send_code(
    config: &Config,
    to: &Destination,
    login: &Login,
    code: &str,
    purpose: Purpose,
    valid: Duration,
) -> Result<(), DeliveryError> {
    let origin = Origin::new(config)?;
    let sender = origin.sender();
    let code = Code {
        code,
        purpose,
        valid,
    };
    let timeout = config.codes.timeout;
    match to {
        Destination::Email(address) => {
            let email = code_email(&sender, address, login, &code, SystemTime::now());
            send_email(config.email.program(), &email, timeout)
        }
        Destination::Sms(number) => {
            let text = code_sms(&sender, login, &code);
            match config.sms.program() {
                Some(command) => send_sms(command, number, &text, timeout),
                None => Err(DeliveryError::Message("sms.command is not set".into())),
            }
        }
    }
}

/// What a notice says besides its event: by whom, from where, until when.
#[derive(Default)]
pub struct Details<'a> {
    pub by: Option<&'a str>,
    pub service: Option<&'a str>,
    pub source: Option<&'a str>,
    /// The authenticator added or removed.
    pub device: Option<&'a str>,
    pub until: Option<SystemTime>,
    /// Lock notices held back since the last one mailed.
    pub held_back: u32,
}

/// Mails `event` to the user (the secret file's `email`, given as
/// `from_file`, or the `email.address` template) and to `notify.copy_to`,
/// if `notify.events` names it. Each failure is a `delivery_failed` record;
/// nothing else changes.
pub fn notify(
    config: &Config,
    audit: &mut dyn Sink,
    event: Event,
    user: &UserName,
    from_file: Option<&EmailAddress>,
    details: &Details<'_>,
) {
    if !config.notify.wants(event) {
        return;
    }
    let mut to: Vec<EmailAddress> = user_email(config, user, from_file).into_iter().collect();
    if let Some(copy) = &config.notify.copy_to
        && !to.contains(copy)
    {
        to.push(copy.clone());
    }
    if to.is_empty() {
        audit.emit(failure_record(user, "email", "no_address").with(
            "detail",
            format!("no address to notify of {}", event.name()),
        ));
        return;
    }
    let origin = match Origin::new(config) {
        Ok(origin) => origin,
        Err(e) => {
            audit.emit(failure_record(user, "email", e.reason()).with("detail", e));
            return;
        }
    };
    let sender = origin.sender();
    let notice = Notice {
        event,
        user: user.as_str(),
        by: details.by,
        service: details.service,
        source: details.source,
        device: details.device,
        until: details.until,
        held_back: details.held_back,
        when: SystemTime::now(),
    };
    for address in &to {
        let email = notice_email(&sender, address, &notice);
        if let Err(e) = send_email(config.email.program(), &email, config.codes.timeout) {
            audit.emit(
                failure_record(user, "email", e.reason())
                    .with("to", address.masked())
                    .with("detail", format!("notice of {}: {e}", event.name())),
            );
        }
    }
}
