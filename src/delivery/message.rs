//! The messages: a login code by email or text, and the notices of account
//! events by email. Only [`code_email`] and [`code_sms`] ever carry a code;
//! a notice has no field that could hold one.
//!
//! The email is RFC 5322 with MIME (RFC 2045), written here in a few
//! table-tested functions rather than by a mail crate. The one that fits,
//! mail-builder 2.0 (lettre's builder pulls in idna and ICU's tables), made
//! the release module 107 KB larger than this file does (1,491,824 bytes
//! against 1,382,392 with every delivery path reachable from the hooks) and
//! added three crates, for eight headers; it also builds in buffers of its
//! own that would leave copies of the code in freed memory. Here the whole
//! message is written into one buffer sized up front and wiped on drop.
//! What it writes:
//!
//! - `Subject` as RFC 2047 encoded-words (Q, UTF-8) whenever it is not short
//!   plain ASCII: the issuer may be "Société Générale";
//! - the body in `7bit` when it is ASCII in short lines (the usual case,
//!   readable as is), else `quoted-printable`: 7-bit safe through any relay,
//!   where `8bit` would need 8BITMIME at every hop;
//! - `Date` in RFC 5322 form, UTC; `Message-ID` of 128 random bits at the
//!   host name; `Auto-Submitted: auto-generated` (RFC 3834), so that vacation
//!   responders do not answer;
//! - LF line endings, as sendmail expects on its standard input.
//!
//! Values that come from outside (issuer, user, host, source address) are
//! made one printable line each before they reach a header or the body.
//!
//! One file, 620 lines besides its tests (message_tests.rs): the headers,
//! their encodings and the body's are one format, each part bounded by the
//! others (a header's folding by the encoded-word's length, the body's
//! encoding by its lines), and read best together.
#![forbid(unsafe_code)]

use crate::base::address::{EmailAddress, check_domain};
use crate::base::records::month_name;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use zeroize::Zeroizing;

/// A complete message and the one recipient it is addressed to: sendmail's
/// argv and the `To` header cannot disagree.
pub struct Email {
    to: EmailAddress,
    bytes: Zeroizing<Vec<u8>>,
}

impl Email {
    pub fn to(&self) -> &EmailAddress {
        &self.to
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Who a message is from and what it is about: the same for every message
/// a host sends.
pub struct Sender<'a> {
    pub from: &'a EmailAddress,
    /// This machine's name, as users know it.
    pub host: &'a str,
    /// The config's `issuer`: what the user's app or company calls this.
    pub issuer: &'a str,
}

/// The login a code is for.
pub struct Login<'a> {
    pub user: &'a str,
    /// The PAM service: `sshd`, `login`, `su`.
    pub service: &'a str,
    /// The remote host (PAM_RHOST); empty for a local login.
    pub source: &'a str,
}

/// A code just made, what it is for, and how long it is good.
pub struct Code<'a> {
    pub code: &'a str,
    pub purpose: Purpose,
    pub valid: Duration,
}

/// What a sent code is for: the wording changes, not the shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The code step of a login, for a user whose `method` is email or sms.
    SignIn,
    /// `lost` at an app-code prompt: the code leads to setting up a new app.
    LostDevice,
    /// An enrollment (`--method email|sms`) proving the address or number.
    Confirm,
}

impl Purpose {
    /// (what the code is called, what it does, what to do if it was not
    /// them: in an email, in a text)
    fn wording(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            Purpose::SignIn => (
                "sign-in code",
                "",
                "If this was not you: do not give this code to anyone. Someone may\n\
                 know your password; change it and tell your administrator.",
                "Not you? Don't share it; tell your admin.",
            ),
            Purpose::LostDevice => (
                "lost-device code",
                "With it you can set up a new authenticator app at this sign-in.\n",
                "If this was not you: do not give this code to anyone. Someone who\n\
                 knows your password is trying to replace your authenticator app;\n\
                 change your password and tell your administrator now.",
                "Not you? Don't share it; change your password, tell your admin.",
            ),
            Purpose::Confirm => (
                "confirmation code",
                "It confirms that codes for this account can be sent here.\n",
                "If you did not ask for this: do not give this code to anyone, and\n\
                 tell your administrator.",
                "Not you? Don't share it; tell your admin.",
            ),
        }
    }
}

/// The events a notice can tell of (`notify.events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    Enrolled,
    Reset,
    Locked,
    Unlocked,
    RecoveryUsed,
    RecoveryRegenerated,
    LostDevice,
    Disabled,
    /// A password changed through a `password` line (`notify`).
    PasswordChanged,
    /// A successful login from an address not seen for this user lately.
    NewSource,
    /// An authenticator was added (`twostep enroll --add`, twostep-self).
    DeviceAdded,
    /// An authenticator was removed (`twostep remove-device`, twostep-self).
    DeviceRemoved,
}

impl Event {
    pub const ALL: [Event; 12] = [
        Event::Enrolled,
        Event::Reset,
        Event::Locked,
        Event::Unlocked,
        Event::RecoveryUsed,
        Event::RecoveryRegenerated,
        Event::LostDevice,
        Event::Disabled,
        Event::PasswordChanged,
        Event::NewSource,
        Event::DeviceAdded,
        Event::DeviceRemoved,
    ];

    /// The name in `notify.events` and in records.
    pub fn name(self) -> &'static str {
        match self {
            Event::Enrolled => "enrolled",
            Event::Reset => "reset",
            Event::Locked => "locked",
            Event::Unlocked => "unlocked",
            Event::RecoveryUsed => "recovery_used",
            Event::RecoveryRegenerated => "recovery_regenerated",
            Event::LostDevice => "lost_device",
            Event::Disabled => "disabled",
            Event::PasswordChanged => "password_changed",
            Event::NewSource => "new_source",
            Event::DeviceAdded => "device_added",
            Event::DeviceRemoved => "device_removed",
        }
    }

    pub fn from_name(name: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.name() == name)
    }

    /// (the subject's words, the body's first sentence)
    fn wording(self) -> (&'static str, &'static str) {
        match self {
            Event::Enrolled => (
                "two-step sign-in set up",
                "Two-step sign-in was set up for your account.",
            ),
            Event::Reset => (
                "two-step sign-in removed",
                "Your two-step sign-in setup was removed (reset).",
            ),
            Event::Locked => (
                "account locked",
                "Your account was locked after too many failed sign-in attempts.",
            ),
            Event::Unlocked => ("account unlocked", "Your account was unlocked."),
            Event::RecoveryUsed => (
                "recovery code used",
                "A recovery code was used to sign in to your account. Each code works once.",
            ),
            Event::RecoveryRegenerated => (
                "new recovery codes",
                "New recovery codes were made for your account; the old ones no longer work.",
            ),
            Event::LostDevice => (
                "lost-device sign-in",
                "A lost-device code mailed to you was used to sign in and set up a new app.",
            ),
            Event::Disabled => (
                "two-step sign-in turned off",
                "Two-step sign-in was turned off for your account.",
            ),
            Event::PasswordChanged => (
                "password changed",
                "The password of your account was changed.",
            ),
            Event::DeviceAdded => (
                "authenticator added",
                "An authenticator was added to your two-step sign-in: its codes\n\
                 now let you in.",
            ),
            Event::DeviceRemoved => (
                "authenticator removed",
                "An authenticator was removed from your two-step sign-in: its\n\
                 codes no longer let you in.",
            ),
            Event::NewSource => (
                "sign-in from a new address",
                "Your account was signed in to from an address it has not\n\
                 signed in from lately.",
            ),
        }
    }

    /// What to do if it was not them: the notice's last paragraph.
    fn advice(self) -> &'static str {
        match self {
            Event::PasswordChanged => {
                "If you did not change it, someone else can use your account:\n\
                 tell your administrator now."
            }
            Event::NewSource => {
                "If this was not you, someone has your password and your second\n\
                 factor: change your password at once and tell your administrator\n\
                 now. If it was you, nothing needs doing."
            }
            _ => "If you did not expect this, tell your administrator now.",
        }
    }
}

/// What happened to whose account, when, by whom and from where. No field
/// can carry a code or a secret.
pub struct Notice<'a> {
    pub event: Event,
    pub user: &'a str,
    /// The record's `by`: `login`, `lost_device`, `self` or an admin's name.
    pub by: Option<&'a str>,
    /// The PAM service and remote host, when a login did it.
    pub service: Option<&'a str>,
    pub source: Option<&'a str>,
    /// For `device_added` and `device_removed`: the authenticator's name.
    pub device: Option<&'a str>,
    /// For `locked`: until when.
    pub until: Option<SystemTime>,
    /// For `locked`: the earlier lock notices held back since the last one
    /// mailed (`notify.min_interval`).
    pub held_back: u32,
    pub when: SystemTime,
}

/// The email with a code: what it is, for which account on which host,
/// asked from where, how long it is good, and what to do if it was not them.
pub fn code_email(
    sender: &Sender,
    to: &EmailAddress,
    login: &Login,
    code: &Code,
    now: SystemTime,
) -> Email {
    let user = clean(login.user);
    let host = clean(sender.host);
    let (name, what, not_you, _) = code.purpose.wording();
    let subject = format!("{}: {name} for {user} on {host}", clean(sender.issuer));
    let mut body = Zeroizing::new(String::with_capacity(1024 + 2 * (user.len() + host.len())));
    let _ = write!(
        body,
        "Your {name} for {user} on {host}:\n\n    {}\n\n\
         {what}It is good for {}, once.\n\n\
         Requested through {} at {}.\n\n\
         {not_you}\n",
        code.code,
        validity(code.valid),
        origin(login.service, login.source),
        human_time(now),
    );
    compose(sender, to, &subject, &body, now)
}

/// The text message with a code: one line, the code first (for the
/// phone's preview and autofill), then what it is for and what to do if it
/// was not them. Ends with a newline.
pub fn code_sms(sender: &Sender, login: &Login, code: &Code) -> Zeroizing<String> {
    let (name, _, _, not_you) = code.purpose.wording();
    let mut text = Zeroizing::new(String::with_capacity(
        256 + login.user.len() + sender.host.len(),
    ));
    let _ = writeln!(
        text,
        "{} is your {} {name} for {} on {}, good for {}. {not_you}",
        code.code,
        clean(sender.issuer),
        clean(login.user),
        clean(sender.host),
        validity(code.valid),
    );
    text
}

/// The email telling a user of an event on their account.
pub fn notice_email(sender: &Sender, to: &EmailAddress, notice: &Notice) -> Email {
    let user = clean(notice.user);
    let host = clean(sender.host);
    let (what, headline) = notice.event.wording();
    let subject = format!("{}: {what} for {user} on {host}", clean(sender.issuer));
    let mut body = format!(
        "{headline}\n\nAccount: {user} on {host}\nWhen:    {}\n",
        human_time(notice.when)
    );
    if let Some(by) = notice.by {
        let _ = writeln!(body, "By:      {}", by_whom(by));
    }
    match (
        notice.source.filter(|s| !s.is_empty()),
        notice.service.filter(|s| !s.is_empty()),
    ) {
        (Some(source), service) => {
            let _ = write!(body, "From:    {}", clean(source));
            if let Some(service) = service {
                let _ = write!(body, " ({})", clean(service));
            }
            body.push('\n');
        }
        // On the machine itself (passwd, su at a console): which program.
        (None, Some(service)) => {
            let _ = writeln!(body, "Through: {} on this machine", clean(service));
        }
        (None, None) => {}
    }
    if let Some(device) = notice.device {
        let _ = writeln!(body, "Device:  {}", clean(device));
    }
    if let Some(until) = notice.until {
        let _ = writeln!(body, "Until:   {}", human_time(until));
    }
    match notice.held_back {
        0 => {}
        1 => body
            .push_str("\n1 earlier lock of this account since the last notice was not mailed.\n"),
        n => {
            let _ = writeln!(
                body,
                "\n{n} earlier locks of this account since the last notice were not mailed."
            );
        }
    }
    let _ = writeln!(body, "\n{}", notice.event.advice());
    compose(sender, to, &subject, &body, notice.when)
}

/// What `twostep send-test` sends: proof that the path works, no code.
pub fn test_email(sender: &Sender, to: &EmailAddress, user: &str, now: SystemTime) -> Email {
    let user = clean(user);
    let host = clean(sender.host);
    let subject = format!(
        "{}: test message for {user} on {host}",
        clean(sender.issuer)
    );
    let body = format!(
        "This is a test from {host}: sign-in codes for {user} will come to this\n\
         address. Nothing needs doing.\n\nSent at {}.\n",
        human_time(now)
    );
    compose(sender, to, &subject, &body, now)
}

/// The text-message form of [`test_email`]. Ends with a newline.
pub fn test_sms(sender: &Sender, user: &str) -> String {
    format!(
        "Test from {} ({}): sign-in codes for {} will come to this number. Nothing needs doing.\n",
        clean(sender.host),
        clean(sender.issuer),
        clean(user),
    )
}

fn by_whom(by: &str) -> String {
    match by {
        "login" => "a sign-in".into(),
        "lost_device" => "a sign-in with a lost-device code".into(),
        "self" => "you (twostep-self)".into(),
        admin => format!("the administrator {}", clean(admin)),
    }
}

fn origin(service: &str, source: &str) -> String {
    let how = match clean(service) {
        s if s.is_empty() => "a login".to_string(),
        s => s,
    };
    match clean(source) {
        s if s.is_empty() => format!("{how} on the machine itself"),
        s => format!("{how} from {s}"),
    }
}

fn validity(valid: Duration) -> String {
    let secs = valid.as_secs();
    let (n, unit) = if secs >= 60 && secs.is_multiple_of(60) {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// The longest value shown from outside, in characters.
const MAX_VALUE: usize = 256;

/// One printable line: control characters (line breaks, escapes, C1) and
/// bidirectional overrides become `?`, and the value is cut at [`MAX_VALUE`].
fn clean(value: &str) -> String {
    let mut out: String = value
        .chars()
        .take(MAX_VALUE)
        .map(|c| {
            if c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') {
                '?'
            } else {
                c
            }
        })
        .collect();
    if value.chars().nth(MAX_VALUE).is_some() {
        out.push_str("...");
    }
    out
}

/// Headers and body into one buffer that is wiped on drop.
fn compose(
    sender: &Sender,
    to: &EmailAddress,
    subject: &str,
    body: &str,
    now: SystemTime,
) -> Email {
    let plain = is_7bit(body);
    let mut out = Zeroizing::new(Vec::with_capacity(
        1024 + subject.len() * 3 + body.len() * 3,
    ));
    let mut head = String::with_capacity(1024 + subject.len() * 3);
    let _ = write!(
        head,
        "From: {}\nTo: {}\nSubject: {}\nDate: {}\nMessage-ID: <{}@{}>\n\
         MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n\
         Content-Transfer-Encoding: {}\nAuto-Submitted: auto-generated\n\n",
        sender.from,
        to,
        encode_subject(subject),
        rfc5322_date(now),
        random_hex(),
        if check_domain(sender.host).is_ok() {
            sender.host
        } else {
            "localhost"
        },
        if plain { "7bit" } else { "quoted-printable" },
    );
    out.extend_from_slice(head.as_bytes());
    if plain {
        out.extend_from_slice(body.as_bytes());
    } else {
        quoted_printable(body, &mut out);
    }
    Email {
        to: to.clone(),
        bytes: out,
    }
}

/// ASCII text in lines of at most 76 characters, none ending in a blank:
/// sent as it is.
fn is_7bit(body: &str) -> bool {
    body.lines().all(|l| {
        l.len() <= 76 && l.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) && !l.ends_with(' ')
    })
}

/// RFC 2045 6.7: `=XX` for bytes outside printable ASCII, `=` itself and a
/// blank ending a line; soft line breaks (`=` at the end) keep every line
/// within 76 characters. Line breaks in the text stay line breaks.
fn quoted_printable(text: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        let bytes = line.as_bytes();
        let mut width = 0;
        for (j, &b) in bytes.iter().enumerate() {
            let last = j + 1 == bytes.len();
            let literal = (b.is_ascii_graphic() && b != b'=') || (b == b' ' && !last);
            let len = if literal { 1 } else { 3 };
            // Room for this and, unless it ends the line, a soft break.
            let limit = if last { 76 } else { 75 };
            if width + len > limit {
                out.extend_from_slice(b"=\n");
                width = 0;
            }
            if literal {
                out.push(b);
            } else {
                out.extend_from_slice(&[b'=', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
            }
            width += len;
        }
    }
}

/// RFC 2047: plain when it is short printable ASCII, else Q-encoded words
/// of UTF-8, each at most 75 characters and never splitting a character,
/// folded one to a line.
fn encode_subject(subject: &str) -> String {
    const MAX_PLAIN: usize = 66; // "Subject: " + 66 + line end stays within 78
    const MAX_TEXT: usize = 75 - "=?UTF-8?Q??=".len();
    if subject.len() <= MAX_PLAIN
        && subject.bytes().all(|b| b == b' ' || b.is_ascii_graphic())
        && !subject.contains("=?")
    {
        return subject.to_string();
    }
    let mut words: Vec<String> = vec![String::new()];
    for c in subject.chars() {
        let mut encoded = String::new();
        let mut utf8 = [0u8; 4];
        for &b in c.encode_utf8(&mut utf8).as_bytes() {
            match b {
                b' ' => encoded.push('_'),
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'!' | b'*' | b'+' | b'-' | b'/' => {
                    encoded.push(char::from(b));
                }
                _ => {
                    let _ = write!(encoded, "={b:02X}");
                }
            }
        }
        if words
            .last()
            .is_some_and(|w| w.len() + encoded.len() > MAX_TEXT)
        {
            words.push(String::new());
        }
        if let Some(w) = words.last_mut() {
            w.push_str(&encoded);
        }
    }
    words
        .iter()
        .map(|w| format!("=?UTF-8?Q?{w}?="))
        .collect::<Vec<_>>()
        .join("\n ")
}

/// The fields of `2026-11-26T14:47:18Z` (humantime's RFC 3339, UTC).
fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn field(stamp: &str, at: std::ops::Range<usize>) -> &str {
    stamp.get(at).unwrap_or("00")
}

/// `2026-11-26 14:47 UTC`
fn human_time(t: SystemTime) -> String {
    let stamp = rfc3339(t);
    format!("{} {} UTC", field(&stamp, 0..10), field(&stamp, 11..16))
}

/// `Thu, 26 Nov 2026 14:47:18 +0000`
fn rfc5322_date(t: SystemTime) -> String {
    // From one string, as month_name's: not a relocated table.
    const DAYS: &str = "ThuFriSatSunMonTueWed";
    let days = t
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400);
    let stamp = rfc3339(t);
    let month = field(&stamp, 5..7)
        .parse::<usize>()
        .ok()
        .and_then(month_name)
        .unwrap_or("Jan");
    let day = (days % 7) as usize * 3;
    format!(
        "{}, {} {month} {} {} +0000",
        &DAYS[day..day + 3],
        field(&stamp, 8..10),
        field(&stamp, 0..4),
        field(&stamp, 11..19),
    )
}

/// 128 bits from the OS's random source, for the Message-ID.
fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // Unique enough for an ID: it is not a secret.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = (nanos ^ u128::from(std::process::id()) << 96).to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
