//! The messages: dates, encoded subjects, quoted-printable, hostile values
//! that cannot add a header, and what each email and SMS says.
#![forbid(unsafe_code)]
use super::*;

fn at(rfc3339: &str) -> SystemTime {
    humantime::parse_rfc3339(rfc3339).unwrap()
}

#[test]
fn dates_in_rfc5322_form() {
    let cases = [
        ("1970-01-01T00:00:00Z", "Thu, 01 Jan 1970 00:00:00 +0000"),
        ("2026-11-26T14:47:18Z", "Thu, 26 Nov 2026 14:47:18 +0000"),
        ("2024-02-29T23:59:59Z", "Thu, 29 Feb 2024 23:59:59 +0000"),
        ("2025-03-02T08:05:09Z", "Sun, 02 Mar 2025 08:05:09 +0000"),
        ("2000-01-01T12:00:00Z", "Sat, 01 Jan 2000 12:00:00 +0000"),
        ("2038-01-19T03:14:08Z", "Tue, 19 Jan 2038 03:14:08 +0000"),
        ("2100-12-31T00:00:00Z", "Fri, 31 Dec 2100 00:00:00 +0000"),
    ];
    for (t, want) in cases {
        assert_eq!(rfc5322_date(at(t)), want, "{t}");
    }
    assert_eq!(
        human_time(at("2026-11-26T14:47:18Z")),
        "2026-11-26 14:47 UTC"
    );
}

#[test]
fn subjects_are_plain_or_encoded_words() {
    let cases = [
        (
            "vm: sign-in code for alice on vm",
            "vm: sign-in code for alice on vm",
        ),
        (
            "Soci\u{e9}t\u{e9}: code",
            "=?UTF-8?Q?Soci=C3=A9t=C3=A9=3A_code?=",
        ),
        // Not plain text: a line break, an encoded-word look-alike.
        ("a\nBcc: x@y.com", "=?UTF-8?Q?a=0ABcc=3A_x=40y=2Ecom?="),
        (
            "=?UTF-8?B?eA==?=",
            "=?UTF-8?Q?=3D=3FUTF-8=3FB=3FeA=3D=3D=3F=3D?=",
        ),
        ("a_b?c", "a_b?c"),
        ("\u{e9}_?", "=?UTF-8?Q?=C3=A9=5F=3F?="),
    ];
    for (raw, want) in cases {
        assert_eq!(encode_subject(raw), want, "{raw:?}");
    }
}

#[test]
fn long_subjects_fold_into_words_of_at_most_75() {
    let raw = format!(
        "{}: code for {} on vm",
        "\u{4e2d}".repeat(40),
        "a".repeat(200)
    );
    let encoded = encode_subject(&raw);
    let mut decoded = Vec::new();
    for line in encoded.split("\n ") {
        assert!(line.len() <= 75, "{line}");
        let text = line
            .strip_prefix("=?UTF-8?Q?")
            .unwrap()
            .strip_suffix("?=")
            .unwrap();
        // Each word is whole UTF-8 on its own (RFC 2047 5).
        let word = q_decode(text);
        assert!(std::str::from_utf8(&word).is_ok(), "{line}");
        decoded.extend(word);
    }
    assert_eq!(String::from_utf8(decoded).unwrap(), raw);
}

/// An independent reading of Q and quoted-printable, for the tests.
fn q_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'_' => out.push(b' '),
            b'=' if b.get(i + 1) == Some(&b'\n') => i += 1,
            b'=' => {
                out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    out
}

#[test]
fn quoted_printable_keeps_lines_short_and_round_trips() {
    let cases: &[(&str, &str)] = &[
        ("plain", "plain"),
        ("a=b", "a=3Db"),
        ("caf\u{e9}\n", "caf=C3=A9\n"),
        ("trailing \nnext\t", "trailing=20\nnext=09"),
        ("\u{1f600}", "=F0=9F=98=80"),
    ];
    for (raw, want) in cases {
        let mut out = Vec::new();
        quoted_printable(raw, &mut out);
        assert_eq!(String::from_utf8(out).unwrap(), *want, "{raw:?}");
    }
    for raw in [
        "x".repeat(200),
        "\u{e9}".repeat(100),
        format!("{}=", "y".repeat(74)),
        format!("{} \n{}", "z".repeat(75), "\u{e9}".repeat(30)),
        "a ".repeat(80),
    ] {
        let mut out = Vec::new();
        quoted_printable(&raw, &mut out);
        let text = String::from_utf8(out).unwrap();
        for line in text.lines() {
            assert!(line.len() <= 76, "{} chars: {line}", line.len());
            assert!(!line.ends_with(' ') && !line.ends_with('\t'));
        }
        // Soft breaks removed, it is the input again ('_' is Q's, not QP's).
        let back = text.replace("=\n", "");
        assert_eq!(
            q_decode(&back.replace('_', "=5F")),
            raw.as_bytes(),
            "{raw:?}"
        );
    }
}

#[test]
fn values_from_outside_are_one_printable_line() {
    let cases = [
        ("sshd", "sshd"),
        ("evil\nBcc: x@y.com", "evil?Bcc: x@y.com"),
        ("cr\rlf", "cr?lf"),
        ("esc\u{1b}[2J", "esc?[2J"),
        ("c1\u{85}", "c1?"),
        ("bidi\u{202e}moc.evil", "bidi?moc.evil"),
        (
            "Soci\u{e9}t\u{e9} G\u{e9}n\u{e9}rale",
            "Soci\u{e9}t\u{e9} G\u{e9}n\u{e9}rale",
        ),
    ];
    for (raw, want) in cases {
        assert_eq!(clean(raw), want);
    }
    let long = clean(&"h".repeat(1000));
    assert_eq!(long.len(), MAX_VALUE + 3);
    assert!(long.ends_with("..."));
}

#[test]
fn validity_reads_naturally() {
    for (secs, want) in [
        (300, "5 minutes"),
        (60, "1 minute"),
        (900, "15 minutes"),
        (90, "90 seconds"),
        (1, "1 second"),
        (3600, "60 minutes"),
    ] {
        assert_eq!(validity(Duration::from_secs(secs)), want);
    }
}

const HOST: &str = "vm.example.com";
const ISSUER: &str = "Soci\u{e9}t\u{e9} G\u{e9}n\u{e9}rale";
const NOW: &str = "2026-11-26T14:47:18Z";
const SSH: Login = Login {
    user: "alice",
    service: "sshd",
    source: "192.0.2.1",
};
const CODE: Code = Code {
    code: "493817",
    purpose: Purpose::SignIn,
    valid: Duration::from_secs(300),
};

fn address(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

fn from() -> EmailAddress {
    address("twostep@vm.example.com")
}

/// A code email to alice@example.com, sent by `host` for `issuer`.
fn mail_code(host: &str, issuer: &str, login: &Login, code: &Code) -> Email {
    let from = from();
    let sender = Sender {
        from: &from,
        host,
        issuer,
    };
    code_email(&sender, &address("alice@example.com"), login, code, at(NOW))
}

/// A notice of `event` for alice, sent by `host`, done by `by` from
/// 198.51.100.7 over sshd.
fn mail_notice(host: &str, event: Event, by: &str) -> Email {
    let from = from();
    let sender = Sender {
        from: &from,
        host,
        issuer: ISSUER,
    };
    let notice = Notice {
        event,
        user: "alice",
        by: Some(by),
        service: Some("sshd"),
        source: Some("198.51.100.7"),
        device: matches!(event, Event::DeviceAdded | Event::DeviceRemoved).then_some("phone"),
        until: (event == Event::Locked).then(|| at("2026-11-26T15:47:18Z")),
        held_back: 0,
        when: at(NOW),
    };
    notice_email(&sender, &address("alice@example.com"), &notice)
}

fn headers_and_body(email: &Email) -> (Vec<(String, String)>, String) {
    let text = std::str::from_utf8(email.as_bytes()).unwrap();
    let (head, body) = text.split_once("\n\n").unwrap();
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.split('\n') {
        if let Some(cont) = line.strip_prefix(' ') {
            headers.last_mut().unwrap().1.push_str(&format!(" {cont}"));
        } else {
            let (k, v) = line.split_once(": ").unwrap();
            headers.push((k.to_string(), v.to_string()));
        }
    }
    (headers, body.to_string())
}

#[test]
fn a_code_email_says_what_where_how_long_and_what_if_not_you() {
    let email = mail_code(HOST, ISSUER, &SSH, &CODE);
    assert_eq!(email.to(), &address("alice@example.com"));
    let (headers, body) = headers_and_body(&email);
    let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "From",
            "To",
            "Subject",
            "Date",
            "Message-ID",
            "MIME-Version",
            "Content-Type",
            "Content-Transfer-Encoding",
            "Auto-Submitted"
        ]
    );
    let get = |k: &str| headers.iter().find(|(n, _)| n == k).unwrap().1.as_str();
    assert_eq!(get("From"), "twostep@vm.example.com");
    assert_eq!(get("To"), "alice@example.com");
    assert_eq!(get("Date"), "Thu, 26 Nov 2026 14:47:18 +0000");
    assert_eq!(get("MIME-Version"), "1.0");
    assert_eq!(get("Content-Type"), "text/plain; charset=utf-8");
    assert_eq!(get("Content-Transfer-Encoding"), "7bit");
    assert_eq!(get("Auto-Submitted"), "auto-generated");
    let id = get("Message-ID");
    assert!(
        id.starts_with('<') && id.ends_with("@vm.example.com>") && id.len() == 2 + 32 + 15,
        "{id}"
    );
    let subject: String = get("Subject")
        .split(' ')
        .map(|w| {
            q_decode(
                w.strip_prefix("=?UTF-8?Q?")
                    .unwrap()
                    .strip_suffix("?=")
                    .unwrap(),
            )
        })
        .map(|w| String::from_utf8(w).unwrap())
        .collect();
    assert_eq!(
        subject,
        format!("{ISSUER}: sign-in code for alice on vm.example.com")
    );
    assert!(
        !subject.contains("493817"),
        "the code stays out of the subject"
    );
    assert_eq!(
        body,
        "Your sign-in code for alice on vm.example.com:\n\n    493817\n\n\
             It is good for 5 minutes, once.\n\n\
             Requested through sshd from 192.0.2.1 at 2026-11-26 14:47 UTC.\n\n\
             If this was not you: do not give this code to anyone. Someone may\n\
             know your password; change it and tell your administrator.\n"
    );
    // Another message, another ID; a login without service or source.
    let console = Login {
        service: "",
        source: "",
        ..SSH
    };
    let (headers2, body2) = headers_and_body(&mail_code(HOST, ISSUER, &console, &CODE));
    assert_ne!(headers2[4], headers[4]);
    assert!(
        body2.contains("Requested through a login on the machine itself at"),
        "{body2}"
    );
}

#[test]
fn hostile_values_cannot_add_a_header() {
    let evil = "x\nBcc: mallory@evil.example\n\nfake body";
    let login = Login {
        user: evil,
        service: evil,
        source: evil,
    };
    let email = mail_code(evil, evil, &login, &CODE);
    let (headers, body) = headers_and_body(&email);
    assert_eq!(headers.len(), 9);
    assert!(!headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("bcc")));
    // Not a valid host name: the Message-ID falls back.
    assert!(headers[4].1.ends_with("@localhost>"));
    assert!(
        body.contains("x?Bcc: mallory@evil.example??fake body"),
        "{body}"
    );
}

#[test]
fn non_ascii_bodies_are_quoted_printable() {
    let (headers, body) = headers_and_body(&mail_notice("h\u{f6}st", Event::Unlocked, "root"));
    assert_eq!(headers[7].1, "quoted-printable");
    let decoded = String::from_utf8(q_decode(&body.replace('_', "=5F"))).unwrap();
    assert!(
        decoded.contains("Account: alice on h\u{f6}st\n"),
        "{decoded}"
    );
    assert!(
        decoded.contains("By:      the administrator root\n"),
        "{decoded}"
    );
}

#[test]
fn every_notice_names_the_event_account_and_time_and_carries_no_code() {
    for event in Event::ALL {
        assert_eq!(Event::from_name(event.name()), Some(event));
        let (headers, body) = headers_and_body(&mail_notice(HOST, event, "login"));
        assert_eq!(headers[7].1, "7bit", "{event:?}");
        let (_, headline) = event.wording();
        assert!(body.starts_with(headline), "{event:?}: {body}");
        for want in [
            "Account: alice on vm.example.com\n",
            "When:    2026-11-26 14:47 UTC\n",
            "By:      a sign-in\n",
            "From:    198.51.100.7 (sshd)\n",
            "tell your administrator",
        ] {
            assert!(body.contains(want), "{event:?}: {want:?} in {body}");
        }
        assert_eq!(
            body.contains("Until:   2026-11-26 15:47 UTC\n"),
            event == Event::Locked
        );
        let digits = body
            .split(|c: char| !c.is_ascii_digit())
            .map(str::len)
            .max();
        assert!(digits < Some(6), "{event:?}: a code-like number in {body}");
    }
    assert_eq!(Event::from_name("password_fail"), None);
    assert_eq!(by_whom("self"), "you (twostep-self)");
    assert_eq!(by_whom("lost_device"), "a sign-in with a lost-device code");
    assert_eq!(by_whom("root"), "the administrator root");
}

#[test]
fn each_purpose_names_the_code_and_what_to_do() {
    let cases = [
        (
            Purpose::SignIn,
            "sign-in code",
            "It is good for 5 minutes",
            "Someone may\nknow your password",
        ),
        (
            Purpose::LostDevice,
            "lost-device code",
            "With it you can set up a new authenticator app at this sign-in.\nIt is good",
            "trying to replace your authenticator app",
        ),
        (
            Purpose::Confirm,
            "confirmation code",
            "It confirms that codes for this account can be sent here.\nIt is good",
            "If you did not ask for this",
        ),
    ];
    let from = from();
    let sender = Sender {
        from: &from,
        host: HOST,
        issuer: "ACME",
    };
    for (purpose, name, what, not_you) in cases {
        let code = Code { purpose, ..CODE };
        let (headers, body) = headers_and_body(&mail_code(HOST, "ACME", &SSH, &code));
        assert_eq!(headers[2].1, format!("ACME: {name} for alice on {HOST}"));
        assert!(body.starts_with(&format!(
            "Your {name} for alice on {HOST}:\n\n    493817\n\n"
        )));
        assert!(body.contains(what) && body.contains(not_you), "{body}");
        assert!(body.lines().all(|l| l.len() <= 76), "{body}");
        let text = code_sms(&sender, &SSH, &code);
        assert!(text.starts_with(&format!("493817 is your ACME {name} for alice")));
        assert!(text.len() <= 160, "{} chars: {}", text.len(), text.as_str());
    }
}

#[test]
fn the_sms_is_one_short_line_code_first() {
    let from = from();
    let sender = Sender {
        from: &from,
        host: HOST,
        issuer: "ACME\nIT",
    };
    let text = code_sms(&sender, &SSH, &CODE);
    assert_eq!(
        text.as_str(),
        "493817 is your ACME?IT sign-in code for alice on vm.example.com, good for 5 minutes. \
             Not you? Don't share it; tell your admin.\n"
    );
    assert!(text.len() <= 160);
    let test = test_sms(&sender, "alice");
    assert_eq!(test.matches('\n').count(), 1);
    assert!(!test.bytes().any(|b| b.is_ascii_digit()));
}

#[test]
fn the_test_email_has_no_code() {
    let from = from();
    let sender = Sender {
        from: &from,
        host: HOST,
        issuer: ISSUER,
    };
    let email = test_email(&sender, &address("alice@example.com"), "alice", at(NOW));
    let (_, body) = headers_and_body(&email);
    assert!(
        body.starts_with("This is a test from vm.example.com"),
        "{body}"
    );
    assert!(!body.contains("code:"));
}
