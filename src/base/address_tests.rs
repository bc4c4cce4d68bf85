//! The address and number checks, case by case: every injection and shape
//! refused, every byte classified, the masks and the templates.
#![forbid(unsafe_code)]
use super::*;

#[test]
fn accepts_plain_addresses() {
    let local64 = format!("{}@example.com", "l".repeat(64));
    // 64 + 1 + 189 = 254: the longest whole address.
    let label = "d".repeat(63);
    let longest = format!("{}@{label}.{label}.{}.com", "l".repeat(64), "d".repeat(57));
    assert_eq!(longest.len(), MAX_EMAIL_LEN);
    for ok in [
        "alice@example.com",
        "a@b.co",
        "Alice.Smith@Example.COM",
        "first.last+tag@mail.example.co.uk",
        "under_score@x-y.example",
        "a-b@example.com",
        "1234@example.com",
        "alice@localhost",
        "a@b1",
        "alice@123.example.com",
        "alice@xn--bcher-kva.example",
        local64.as_str(),
        longest.as_str(),
    ] {
        let e = EmailAddress::parse(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        assert_eq!(e.as_str(), ok);
    }
}

#[test]
fn refuses_everything_but_one_plain_address() {
    let long_local = format!("{}@example.com", "l".repeat(65));
    let long_label = format!("a@{}.com", "d".repeat(64));
    let long_domain = format!("a@{}.com", vec!["d".repeat(60); 5].join("."));
    let too_long = format!(
        "{}@{}.{}.{}.com",
        "l".repeat(64),
        "d".repeat(63),
        "d".repeat(63),
        "d".repeat(58)
    );
    assert_eq!(too_long.len(), MAX_EMAIL_LEN + 1);
    let cases: &[(&str, BadEmail)] = &[
        ("", BadEmail::Empty),
        // header and recipient injection
        ("a@b.com\nBcc: x@y.com", BadEmail::ControlChar),
        ("a@b.com\r\nBcc: x@y.com", BadEmail::ControlChar),
        ("a@b.com\n", BadEmail::ControlChar),
        ("a@b.com\r", BadEmail::ControlChar),
        ("a@b.com\0", BadEmail::ControlChar),
        ("a\t@b.com", BadEmail::ControlChar),
        ("a@b.com\x7f", BadEmail::ControlChar),
        ("a@b.com, c@d.com", BadEmail::Forbidden(',')),
        ("a@b.com,c@d.com", BadEmail::Forbidden(',')),
        ("a@b.com;c@d.com", BadEmail::Forbidden(';')),
        ("a@b.com c@d.com", BadEmail::Forbidden(' ')),
        ("<a@b.com>", BadEmail::Forbidden('<')),
        ("Alice <a@b.com>", BadEmail::Forbidden(' ')),
        ("a@b.com>", BadEmail::Forbidden('>')),
        ("\"a b\"@b.com", BadEmail::Forbidden('"')),
        ("'a'@b.com", BadEmail::Forbidden('\'')),
        ("a(comment)@b.com", BadEmail::Forbidden('(')),
        ("a@b.com(comment)", BadEmail::Forbidden('(')),
        ("a\\@b.com", BadEmail::Forbidden('\\')),
        ("a@[192.0.2.1]", BadEmail::Forbidden('[')),
        ("a@192.0.2.1", BadEmail::NumericTopLabel),
        ("a%b@relay.com", BadEmail::Forbidden('%')),
        ("|/bin/sh@x.com", BadEmail::Forbidden('|')),
        ("/tmp/x@x.com", BadEmail::Forbidden('/')),
        ("a@b.com:25", BadEmail::Forbidden(':')),
        ("@route:a@b.com", BadEmail::Forbidden(':')),
        ("@example.com@", BadEmail::MoreThanOneAt),
        ("a@b@c.com", BadEmail::MoreThanOneAt),
        ("a@@b.com", BadEmail::MoreThanOneAt),
        // options
        ("-oQ/tmp@x.com", BadEmail::LeadingHyphen),
        ("-bh@x.com", BadEmail::LeadingHyphen),
        ("-", BadEmail::LeadingHyphen),
        // unicode
        ("jos\u{e9}@example.com", BadEmail::NotAscii),
        ("a@b\u{fc}cher.example", BadEmail::NotAscii),
        ("a@example.com\u{2028}", BadEmail::NotAscii),
        ("a\u{ff20}b.com", BadEmail::NotAscii),
        // shape
        ("alice", BadEmail::NoAt),
        ("alice.example.com", BadEmail::NoAt),
        ("@example.com", BadEmail::EmptyLocal),
        ("alice@", BadEmail::EmptyDomain),
        (".a@b.com", BadEmail::LocalDots),
        ("a.@b.com", BadEmail::LocalDots),
        ("a..b@b.com", BadEmail::LocalDots),
        ("a@.b.com", BadEmail::EmptyLabel),
        ("a@b.com.", BadEmail::EmptyLabel),
        ("a@b..com", BadEmail::EmptyLabel),
        ("a@-b.com", BadEmail::LabelHyphen),
        ("a@b-.com", BadEmail::LabelHyphen),
        ("a@b.-com", BadEmail::LabelHyphen),
        ("a@b_c.com", BadEmail::Forbidden('_')),
        ("a@b.123", BadEmail::NumericTopLabel),
        (long_local.as_str(), BadEmail::LocalTooLong),
        (long_label.as_str(), BadEmail::LabelTooLong),
        (long_domain.as_str(), BadEmail::TooLong),
        (too_long.as_str(), BadEmail::TooLong),
    ];
    for (raw, want) in cases {
        assert_eq!(EmailAddress::parse(raw), Err(want.clone()), "{raw:?}");
        // Every refusal says something, and never echoes a line break.
        let said = want.to_string();
        assert!(!said.is_empty() && !said.contains('\n'), "{said:?}");
    }
}

#[test]
fn domain_length_is_bounded_apart_from_the_address() {
    let domain = vec!["d".repeat(63); 4].join(".");
    assert_eq!(domain.len(), 255);
    assert_eq!(check_domain(&domain), Err(BadEmail::DomainTooLong));
    let domain = format!(
        "{}.{}.{}.{}",
        "d".repeat(63),
        "d".repeat(63),
        "d".repeat(63),
        "d".repeat(61)
    );
    assert_eq!(domain.len(), MAX_DOMAIN_LEN);
    assert_eq!(check_domain(&domain), Ok(()));
}

#[test]
fn every_byte_is_classified() {
    for b in 0u8..=255 {
        let local = EmailAddress::parse(&format!("a{}z@example.com", char::from(b)));
        assert_eq!(local.is_ok(), local_char(b), "local byte {b}");
        let domain = EmailAddress::parse(&format!("a@e{}z.com", char::from(b)));
        assert_eq!(domain.is_ok(), domain_char(b), "domain byte {b}");
    }
}

#[test]
fn masks() {
    let cases = [
        ("alice@example.com", "a***@e***.com"),
        ("a@b.co", "a***@b***.co"),
        ("Bob.Smith@mail.example.co.uk", "B***@m***.uk"),
        ("root@localhost", "r***@l***"),
    ];
    for (raw, want) in cases {
        assert_eq!(EmailAddress::parse(raw).unwrap().masked(), want);
    }
    let cases = [
        ("+4915112345678", "+*********5678"),
        ("+12025554567", "+*******4567"),
        ("+12345678", "+****5678"),
        ("+123456789012345", "+***********2345"),
    ];
    for (raw, want) in cases {
        assert_eq!(PhoneNumber::parse(raw).unwrap().masked(), want);
    }
}

#[test]
fn phone_numbers_are_e164() {
    for ok in [
        "+4915112345678",
        "+12025550123",
        "+12345678",
        "+123456789012345",
    ] {
        assert_eq!(PhoneNumber::parse(ok).unwrap().as_str(), ok);
    }
    let cases: &[(&str, BadPhone)] = &[
        ("", BadPhone::Empty),
        ("+", BadPhone::TooShort),
        ("4915112345678", BadPhone::NoPlus),
        ("00491511234567", BadPhone::NoPlus),
        ("-4915112345678", BadPhone::NoPlus),
        ("++4915112345678", BadPhone::NotDigits),
        ("+49 151 12345678", BadPhone::NotDigits),
        ("+49-151-12345678", BadPhone::NotDigits),
        ("+1 (202) 555-0123", BadPhone::NotDigits),
        ("+4915112345678\n", BadPhone::NotDigits),
        ("+4915112345678;reboot", BadPhone::NotDigits),
        ("+49151123456\u{661}", BadPhone::NotDigits),
        ("+\u{ff14}9151123456", BadPhone::NotDigits),
        ("+0915112345678", BadPhone::LeadingZero),
        ("+1234567", BadPhone::TooShort),
        ("+1234567890123456", BadPhone::TooLong),
    ];
    for (raw, want) in cases {
        assert_eq!(PhoneNumber::parse(raw), Err(*want), "{raw:?}");
    }
}

#[test]
fn templates() {
    let ok = [
        ("{user}@example.com", "alice", "alice@example.com"),
        ("{user}+2fa@example.com", "bob", "bob+2fa@example.com"),
        ("it.{user}@corp.example", "carol", "it.carol@corp.example"),
    ];
    for (template, user, want) in ok {
        assert_eq!(expand_template(template, user).unwrap().as_str(), want);
        assert_eq!(check_template(template), Ok(()));
    }
    let bad: &[(&str, &str, BadTemplate)] = &[
        ("admin@example.com", "alice", BadTemplate::NoPlaceholder),
        ("", "alice", BadTemplate::NoPlaceholder),
        ("{User}@example.com", "alice", BadTemplate::StrayBrace),
        ("{uid}@example.com", "alice", BadTemplate::StrayBrace),
        ("{user@example.com", "alice", BadTemplate::StrayBrace),
        ("{user}}@example.com", "alice", BadTemplate::StrayBrace),
        ("{{user}}@example.com", "alice", BadTemplate::StrayBrace),
        ("{user}@{host}", "alice", BadTemplate::StrayBrace),
        (
            "{user}.{user}@example.com",
            "alice",
            BadTemplate::MoreThanOnePlaceholder,
        ),
        ("{user}", "alice", BadTemplate::Address(BadEmail::NoAt)),
        (
            "{user}@example.com, x@y.com",
            "alice",
            BadTemplate::Address(BadEmail::Forbidden(',')),
        ),
        (
            "{user}@example.com\nBcc: x@y.com",
            "alice",
            BadTemplate::Address(BadEmail::ControlChar),
        ),
        // Names a login may have that no address does.
        (
            "{user}@example.com",
            "alice@corp",
            BadTemplate::Address(BadEmail::MoreThanOneAt),
        ),
        (
            "{user}@example.com",
            "a..b",
            BadTemplate::Address(BadEmail::LocalDots),
        ),
        (
            "{user}@example.com",
            "",
            BadTemplate::Address(BadEmail::EmptyLocal),
        ),
    ];
    for (template, user, want) in bad {
        assert_eq!(
            expand_template(template, user),
            Err(want.clone()),
            "{template:?} {user:?}"
        );
    }
}
