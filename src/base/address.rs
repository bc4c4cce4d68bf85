//! The validated email address and phone number: the only way a value from a
//! secret file, the config or the command line reaches sendmail's argv, an
//! SMS command's argv or a message header.
//!
//! Both are deliberately narrower than the standards allow. An address is one
//! plain `local@domain` in ASCII: no display name, no comment, no quoting, no
//! list, no route, no domain literal; so nothing in it can start a second
//! header, add a recipient, or read as an option. A number is E.164 without
//! any formatting.
#![forbid(unsafe_code)]

use std::fmt;

/// `as_str`, `Display` (the value itself: it goes into argv and headers),
/// `Debug` and `FromStr` (through `parse`) for a validated string type.
macro_rules! validated_text {
    ($name:ident, $error:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = $error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
    };
}

/// RFC 5321's limits: the local part, the domain, and the whole path.
pub const MAX_LOCAL_LEN: usize = 64;
pub const MAX_DOMAIN_LEN: usize = 253;
pub const MAX_EMAIL_LEN: usize = 254;
const MAX_LABEL_LEN: usize = 63;

/// A plain `local@domain` address, checked by [`EmailAddress::parse`].
///
/// The local part is letters, digits and `. _ + -` (dot-separated, not
/// starting with `-`); the domain is dot-separated labels of letters, digits
/// and hyphens, none starting or ending with a hyphen, the last not all
/// digits. That refuses RFC 5322's quoted strings and rarer atext (`' ! # $ %
/// & * / = ? ^ ` { | } ~`): each is legal, none is needed by an ordinary
/// mailbox, and several mean something to an MTA (`%` routes, `|` and `/`
/// name pipes and files in alias expansion).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EmailAddress(String);

/// Why an address was refused. The caller adds which key or field it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadEmail {
    Empty,
    TooLong,
    NotAscii,
    ControlChar,
    /// A printable character no plain address has (shown: it is ASCII).
    Forbidden(char),
    NoAt,
    MoreThanOneAt,
    EmptyLocal,
    LocalTooLong,
    LeadingHyphen,
    /// A dot at the start or end of the local part, or two in a row.
    LocalDots,
    EmptyDomain,
    DomainTooLong,
    /// An empty label: a leading, trailing or doubled dot.
    EmptyLabel,
    LabelTooLong,
    LabelHyphen,
    NumericTopLabel,
}

impl fmt::Display for BadEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadEmail::Empty => f.write_str("the address is empty"),
            BadEmail::TooLong => write!(f, "the address is longer than {MAX_EMAIL_LEN} characters"),
            BadEmail::NotAscii => f.write_str(
                "the address is not ASCII (internationalised addresses are not supported)",
            ),
            BadEmail::ControlChar => {
                f.write_str("the address contains a control character (a line break?)")
            }
            BadEmail::Forbidden(' ') => f.write_str("the address contains a space"),
            BadEmail::Forbidden(c) => write!(
                f,
                "the address contains {c:?}: only one plain name@domain is accepted \
                 (no display name, list, quotes or comments)"
            ),
            BadEmail::NoAt => f.write_str("the address has no @"),
            BadEmail::MoreThanOneAt => f.write_str("the address has more than one @"),
            BadEmail::EmptyLocal => f.write_str("the address has nothing before the @"),
            BadEmail::LocalTooLong => write!(
                f,
                "the part before the @ is longer than {MAX_LOCAL_LEN} characters"
            ),
            BadEmail::LeadingHyphen => f.write_str("the address starts with '-'"),
            BadEmail::LocalDots => f.write_str(
                "the part before the @ starts or ends with a dot, or has two dots in a row",
            ),
            BadEmail::EmptyDomain => f.write_str("the address has nothing after the @"),
            BadEmail::DomainTooLong => {
                write!(f, "the domain is longer than {MAX_DOMAIN_LEN} characters")
            }
            BadEmail::EmptyLabel => {
                f.write_str("the domain starts or ends with a dot, or has two dots in a row")
            }
            BadEmail::LabelTooLong => write!(
                f,
                "a part of the domain is longer than {MAX_LABEL_LEN} characters"
            ),
            BadEmail::LabelHyphen => {
                f.write_str("a part of the domain starts or ends with a hyphen")
            }
            BadEmail::NumericTopLabel => {
                f.write_str("the domain ends in a number (IP addresses are not accepted)")
            }
        }
    }
}

impl std::error::Error for BadEmail {}

fn local_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'+' | b'-')
}

fn domain_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')
}

/// A host or mail domain: dot-separated labels of letters, digits and
/// hyphens (1..=63 each, no hyphen at either end), at most 253 in all, the
/// last label not all digits. Also used for the Message-ID's host part.
pub fn check_domain(domain: &str) -> Result<(), BadEmail> {
    if domain.is_empty() {
        return Err(BadEmail::EmptyDomain);
    }
    if domain.len() > MAX_DOMAIN_LEN {
        return Err(BadEmail::DomainTooLong);
    }
    if let Some(b) = domain.bytes().find(|&b| !domain_char(b)) {
        return Err(refused_byte(b));
    }
    let mut last = "";
    for label in domain.split('.') {
        if label.is_empty() {
            return Err(BadEmail::EmptyLabel);
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(BadEmail::LabelTooLong);
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(BadEmail::LabelHyphen);
        }
        last = label;
    }
    if last.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BadEmail::NumericTopLabel);
    }
    Ok(())
}

/// The error for a byte that is not allowed where it stands.
fn refused_byte(b: u8) -> BadEmail {
    match b {
        _ if !b.is_ascii() => BadEmail::NotAscii,
        _ if b.is_ascii_control() => BadEmail::ControlChar,
        b'@' => BadEmail::MoreThanOneAt,
        _ => BadEmail::Forbidden(char::from(b)),
    }
}

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, BadEmail> {
        if raw.is_empty() {
            return Err(BadEmail::Empty);
        }
        // Character classes first, so that the error names the worst thing:
        // an injected line break says "control character", not "too long".
        if !raw.is_ascii() {
            return Err(BadEmail::NotAscii);
        }
        if raw.bytes().any(|b| b.is_ascii_control()) {
            return Err(BadEmail::ControlChar);
        }
        if raw.starts_with('-') {
            return Err(BadEmail::LeadingHyphen);
        }
        if let Some(b) = raw.bytes().find(|&b| !local_char(b) && b != b'@') {
            return Err(BadEmail::Forbidden(char::from(b)));
        }
        if raw.len() > MAX_EMAIL_LEN {
            return Err(BadEmail::TooLong);
        }
        let (local, domain) = raw.split_once('@').ok_or(BadEmail::NoAt)?;
        if domain.contains('@') {
            return Err(BadEmail::MoreThanOneAt);
        }
        if local.is_empty() {
            return Err(BadEmail::EmptyLocal);
        }
        if local.len() > MAX_LOCAL_LEN {
            return Err(BadEmail::LocalTooLong);
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(BadEmail::LocalDots);
        }
        check_domain(domain)?;
        Ok(EmailAddress(raw.to_string()))
    }

    /// For records and messages: `alice@example.com` is `a***@e***.com`.
    /// The first character of each side and the last label of the domain;
    /// the stars do not tell the lengths.
    pub fn masked(&self) -> String {
        let (local, domain) = self.0.split_once('@').unwrap_or((&self.0, ""));
        let first = |s: &str| s.chars().next().unwrap_or('*');
        let mut out = format!("{}***@{}***", first(local), first(domain));
        if let Some((_, top)) = domain.rsplit_once('.') {
            out.push('.');
            out.push_str(top);
        }
        out
    }
}

validated_text!(EmailAddress, BadEmail);

/// Why an `email.address` template was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadTemplate {
    NoPlaceholder,
    /// A brace that is not part of the one `{user}`.
    StrayBrace,
    MoreThanOnePlaceholder,
    /// The expansion is not a plain address.
    Address(BadEmail),
}

impl fmt::Display for BadTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BadTemplate::NoPlaceholder => f.write_str(
                "the template has no {user}: every user's codes would go to one mailbox",
            ),
            BadTemplate::StrayBrace => {
                f.write_str("the template has a brace that is not part of {user}")
            }
            BadTemplate::MoreThanOnePlaceholder => {
                f.write_str("the template has {user} more than once")
            }
            BadTemplate::Address(e) => write!(f, "the template does not make an address: {e}"),
        }
    }
}

impl std::error::Error for BadTemplate {}

pub const PLACEHOLDER: &str = "{user}";

/// Expands an `email.address` template such as `"{user}@example.com"` for
/// one user, and checks that the result is a plain address. `{user}` is the
/// only placeholder and appears exactly once: a template without it would
/// send every user's codes to the same mailbox.
pub fn expand_template(template: &str, user: &str) -> Result<EmailAddress, BadTemplate> {
    let mut parts = template.split(PLACEHOLDER);
    let (Some(before), Some(after)) = (parts.next(), parts.next()) else {
        return Err(if template.contains(['{', '}']) {
            BadTemplate::StrayBrace
        } else {
            BadTemplate::NoPlaceholder
        });
    };
    if parts.next().is_some() {
        return Err(BadTemplate::MoreThanOnePlaceholder);
    }
    if before.contains(['{', '}']) || after.contains(['{', '}']) {
        return Err(BadTemplate::StrayBrace);
    }
    EmailAddress::parse(&format!("{before}{user}{after}")).map_err(BadTemplate::Address)
}

/// Checks a template as `twostep check` and the config do: its shape, and
/// that an ordinary user name makes an address of it.
pub fn check_template(template: &str) -> Result<(), BadTemplate> {
    expand_template(template, "user").map(|_| ())
}

/// An E.164 number: `+`, then 8 to 15 digits, the first not 0.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

pub const MIN_PHONE_DIGITS: usize = 8;
pub const MAX_PHONE_DIGITS: usize = 15;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadPhone {
    Empty,
    NoPlus,
    NotDigits,
    LeadingZero,
    TooShort,
    TooLong,
}

impl fmt::Display for BadPhone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BadPhone::Empty => "the number is empty",
            BadPhone::NoPlus => {
                "the number must start with + and the country code (E.164: +4915112345678)"
            }
            BadPhone::NotDigits => {
                "after the + the number may have only digits (no spaces, dashes or brackets)"
            }
            BadPhone::LeadingZero => "a country code does not start with 0",
            BadPhone::TooShort => "the number has fewer than 8 digits",
            BadPhone::TooLong => "the number has more than 15 digits (E.164's limit)",
        })
    }
}

impl std::error::Error for BadPhone {}

impl PhoneNumber {
    pub fn parse(raw: &str) -> Result<Self, BadPhone> {
        if raw.is_empty() {
            return Err(BadPhone::Empty);
        }
        let digits = raw.strip_prefix('+').ok_or(BadPhone::NoPlus)?;
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BadPhone::NotDigits);
        }
        if digits.starts_with('0') {
            return Err(BadPhone::LeadingZero);
        }
        if digits.len() < MIN_PHONE_DIGITS {
            return Err(BadPhone::TooShort);
        }
        if digits.len() > MAX_PHONE_DIGITS {
            return Err(BadPhone::TooLong);
        }
        Ok(PhoneNumber(raw.to_string()))
    }

    /// For records and messages: the `+` and the last four digits,
    /// `+4915112345678` is `+*********5678`.
    pub fn masked(&self) -> String {
        let digits = &self.0[1..];
        let shown = digits.len().saturating_sub(4);
        format!("+{}{}", "*".repeat(shown), &digits[shown..])
    }
}

validated_text!(PhoneNumber, BadPhone);

#[cfg(test)]
#[path = "address_tests.rs"]
mod tests;
