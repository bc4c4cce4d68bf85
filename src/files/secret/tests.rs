//! The secret file: base32, lengths, per-user overrides, methods and their
//! keys, the TOML round trip and a Debug that shows no key.
#![forbid(unsafe_code)]
use super::*;

#[test]
fn base32_round_trip_and_leniency() {
    let key = b"12345678901234567890";
    let b32 = encode_base32(key);
    assert_eq!(b32.as_str(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    assert_eq!(decode_base32(&b32).unwrap().as_slice(), key);
    assert_eq!(decode_base32(&b32.to_lowercase()).unwrap().as_slice(), key);
    assert_eq!(decode_base32("MFRGG===").unwrap().as_slice(), b"abc");
    for bad in ["0189", "GEZD GNBV", "@@@@", "GEZDGNBVGY3TQOJQ!"] {
        assert!(decode_base32(bad).is_none(), "{bad}");
    }
}

fn file(secret: &str) -> SecretFile {
    SecretFile {
        secret: Some(Zeroizing::new(secret.into())),
        ..SecretFile::default()
    }
}

#[test]
fn secret_length_bounds() {
    let d = TotpParams::default();
    // 15 bytes = 120 bits: refused; 16 bytes: accepted.
    assert!(
        matches!(file(&encode_base32(&[7u8; 15])).into_user_secret(&d), Err(SecretError::Bad(m)) if m.contains("120 bits"))
    );
    assert!(
        file(&encode_base32(&[7u8; 16]))
            .into_user_secret(&d)
            .is_ok()
    );
    assert!(
        file(&encode_base32(&[7u8; 128]))
            .into_user_secret(&d)
            .is_ok()
    );
    assert!(
        file(&encode_base32(&[7u8; 129]))
            .into_user_secret(&d)
            .is_err()
    );
    assert!(file("").into_user_secret(&d).is_err());
}

#[test]
fn per_user_overrides() {
    let d = TotpParams::default();
    let mut f = file(&encode_base32(&[1u8; 20]));
    f.digits = Some(8);
    f.period = Some(60);
    f.algorithm = Some(Algorithm::SHA256);
    let s = f.clone().into_user_secret(&d).unwrap();
    assert_eq!(
        s.params,
        TotpParams {
            digits: 8,
            period: 60,
            algorithm: Algorithm::SHA256,
            skew: d.skew
        }
    );
    f.digits = Some(9);
    assert!(f.clone().into_user_secret(&d).is_err());
    f.digits = None;
    f.period = Some(5);
    assert!(f.into_user_secret(&d).is_err());
}

#[test]
fn methods_and_their_keys() {
    let d = TotpParams::default();
    const S: &str = "secret = \"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\"\n";
    // (file, Ok(method, email?, phone?) or Err(words of the message))
    type Want = Result<(Method, bool, bool), &'static str>;
    let table: &[(String, Want)] = &[
        (S.to_string(), Ok((Method::Totp, false, false))),
        (
            format!("{S}method = \"email\"\nemail = \"a@example.com\"\n"),
            Ok((Method::Email, true, false)),
        ),
        (
            "method = \"email\"\nemail = \"a@example.com\"\n".into(),
            Ok((Method::Email, true, false)),
        ),
        // The address may come from email.address instead.
        (
            "method = \"email\"\n".into(),
            Ok((Method::Email, false, false)),
        ),
        (
            "method = \"sms\"\nphone = \"+4915112345678\"\n".into(),
            Ok((Method::Sms, false, true)),
        ),
        ("method = \"sms\"\n".into(), Err("phone is missing")),
        ("method = \"totp\"\n".into(), Err("secret is missing")),
        ("".into(), Err("secret is missing")),
        ("method = \"pigeon\"\n".into(), Err("TOML error")),
        (
            "method = \"email\"\nemail = \"a@example.com\\nBcc: x@y.com\"\n".into(),
            Err("email:"),
        ),
        (
            "method = \"email\"\nemail = \"a@example.com, b@example.com\"\n".into(),
            Err("email:"),
        ),
        (
            "method = \"email\"\nemail = \"-oQ@example.com\"\n".into(),
            Err("email:"),
        ),
        (
            "method = \"sms\"\nphone = \"015112345678\"\n".into(),
            Err("phone:"),
        ),
        (
            "method = \"sms\"\nphone = \"+49 151 1234\"\n".into(),
            Err("phone:"),
        ),
        (
            "method = \"sms\"\nphone = \"+4915112345678 -x\"\n".into(),
            Err("phone:"),
        ),
    ];
    for (text, want) in table {
        match (parse(text, &d), want) {
            (Ok(u), Ok((method, email, phone))) => {
                assert_eq!(
                    (u.method, u.email.is_some(), u.phone.is_some()),
                    (*method, *email, *phone),
                    "{text:?}"
                );
            }
            (Err(SecretError::Bad(why)), Err(words)) => {
                assert!(why.contains(words), "{text:?}: {why}");
            }
            (got, want) => panic!("{text:?}: got {:?}, want {want:?}", got.err()),
        }
    }
    // A file without a method round-trips without writing one.
    let f = SecretFile::from_toml(S).unwrap();
    assert!(!f.to_toml().contains("method"));
}

#[test]
fn toml_round_trip_and_debug_redacts() {
    let mut f = file("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    f.created = Some("2026-11-23T06:31:00Z".into());
    let text = f.to_toml();
    let back = SecretFile::from_toml(&text).unwrap();
    assert_eq!(back, f);
    assert!(!format!("{f:?}").contains("GEZD"));
    assert!(SecretFile::from_toml("secret = \"GEZD\"\nextra = 1\n").is_err());
}
