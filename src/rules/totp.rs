//! Code checking: which time step, if any, a typed code belongs to.
//!
//! RFC 6238 over the hmac crate: each key is made ready for HMAC once (its
//! inner and outer states), then cloned for each step of the window, which
//! halves the hashing of a login that computes 24 codes (`matching_steps`).
//! We walk the window ourselves, to learn the matched step, which the replay
//! check needs, and to compare each step's code in constant time.
#![forbid(unsafe_code)]

use crate::config::{Algorithm, TotpParams};
use crate::files::secret::MAX_DEVICES;
use hmac::{Hmac, KeyInit, Mac};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// A syntactically valid code: exactly `digits` ASCII digits.
pub struct Code {
    digits: Zeroizing<[u8; 8]>,
    len: usize,
}

impl Code {
    /// Refuses anything that is not exactly `digits` ASCII digits, before any
    /// crypto runs. Surrounding spaces are forgiven (apps show "123 456"), and
    /// so are spaces inside, which some users type.
    pub fn parse(answer: &[u8], digits: u8) -> Option<Code> {
        let want = usize::from(digits);
        let mut out = Zeroizing::new([0u8; 8]);
        let mut len = 0;
        // A code with spaces is at most 2x its length; anything longer is junk
        // and is refused without looking at every byte.
        if answer.len() > 2 * want + 2 {
            return None;
        }
        for &b in answer {
            match b {
                b' ' => continue,
                b'0'..=b'9' if len < want => {
                    out[len] = b;
                    len += 1;
                }
                _ => return None,
            }
        }
        (len == want).then_some(Code { digits: out, len })
    }

    fn as_bytes(&self) -> &[u8] {
        &self.digits[..self.len]
    }
}

/// The time step (counter) of a Unix time.
pub fn step_of(unix_secs: u64, period: u32) -> u64 {
    unix_secs / u64::from(period.max(1))
}

/// A key made ready for HMAC: the states after its inner and outer pads,
/// cloned for each code. The hmac crate wipes them when dropped.
enum Keyed {
    Sha1(Hmac<sha1::Sha1>),
    Sha256(Hmac<sha2::Sha256>),
    Sha512(Hmac<sha2::Sha512>),
}

impl Keyed {
    /// None only if the hmac crate refused the key, which it does for no
    /// length (a long key is hashed first): then no code matches.
    fn new(secret: &[u8], algorithm: Algorithm) -> Option<Keyed> {
        Some(match algorithm {
            Algorithm::SHA1 => Keyed::Sha1(KeyInit::new_from_slice(secret).ok()?),
            Algorithm::SHA256 => Keyed::Sha256(KeyInit::new_from_slice(secret).ok()?),
            Algorithm::SHA512 => Keyed::Sha512(KeyInit::new_from_slice(secret).ok()?),
        })
    }

    /// RFC 4226's dynamic truncation of the HMAC of `counter`: 31 bits.
    fn truncated(&self, counter: u64) -> u32 {
        match self {
            Keyed::Sha1(m) => truncate(m, counter),
            Keyed::Sha256(m) => truncate(m, counter),
            Keyed::Sha512(m) => truncate(m, counter),
        }
    }
}

fn truncate<M: Mac + Clone>(keyed: &M, counter: u64) -> u32 {
    let mut mac = keyed.clone();
    mac.update(&counter.to_be_bytes());
    // Wiped when dropped (the zeroize feature).
    let out = mac.finalize();
    let h = out.as_bytes();
    // Every HMAC here is 20 bytes or more: the offset (at most 15) and the
    // four bytes after it are inside.
    let o = usize::from(h[h.len() - 1] & 0x0f);
    u32::from_be_bytes([h[o] & 0x7f, h[o + 1], h[o + 2], h[o + 3]])
}

/// Writes the `digits`-digit code of `step` (zero-padded ASCII) into `out`;
/// its length.
fn code_at(key: &Keyed, step: u64, digits: u8, out: &mut [u8; 10]) -> usize {
    let mut v = key.truncated(step) % 10u32.pow(u32::from(digits));
    let n = usize::from(digits).min(out.len());
    for b in out[..n].iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
    }
    n
}

/// The steps within `now ± skew`.
fn window(params: &TotpParams, unix_now: u64) -> std::ops::RangeInclusive<u64> {
    let now = step_of(unix_now, params.period);
    let skew = u64::from(params.skew);
    now.saturating_sub(skew)..=now.saturating_add(skew)
}

/// Returns the latest step within `now ± skew` whose code equals `code`, if
/// any: two steps match one code only by a 10^-digits coincidence, and then
/// the later is the stricter for the replay check. Every step of the window
/// is computed and compared, whatever matches, so the time taken tells
/// neither how close a wrong code came nor that a code was right (`preauth
/// single` refuses a right code that came with a wrong password, and must
/// take the same time as for a wrong one).
pub fn matching_step(
    secret: &[u8],
    params: &TotpParams,
    code: &Code,
    unix_now: u64,
) -> Option<u64> {
    let key = Keyed::new(secret, params.algorithm)?;
    let mut latest = None;
    for step in window(params, unix_now) {
        let mut buf = Zeroizing::new([0u8; 10]);
        let n = code_at(&key, step, params.digits, &mut buf);
        let same: bool = buf[..n].ct_eq(code.as_bytes()).into();
        // Ascending: the last match is the latest.
        latest = if same { Some(step) } else { latest };
    }
    latest
}

/// [`matching_step`] for each of a user's authenticators (`keys`, at most
/// [`MAX_DEVICES`]), each answer parsed with that one's digits. The work is
/// that of [`MAX_DEVICES`] authenticators whoever answers: the windows of
/// the first one's key are computed again, and thrown away, in place of
/// those a user does not have. So the time taken tells neither how many a
/// user has nor which one's code it was (`tests/timing.rs`). `keys` beyond
/// [`MAX_DEVICES`] are not looked at (a secret file holds no more).
pub fn matching_steps(
    keys: &[(&[u8], TotpParams)],
    answer: &[u8],
    unix_now: u64,
) -> [Option<u64>; MAX_DEVICES] {
    let mut out = [None; MAX_DEVICES];
    let Some(first) = keys.first() else {
        return out;
    };
    for (i, slot) in out.iter_mut().enumerate() {
        let (key, params, real) = match keys.get(i) {
            Some((key, params)) => (*key, params, true),
            None => (first.0, &first.1, false),
        };
        let step = Code::parse(answer, params.digits)
            .and_then(|code| matching_step(key, params, &code, unix_now));
        let step = std::hint::black_box(step);
        if real {
            *slot = step;
        }
    }
    out
}

/// The code for `unix_now`, for enrollment confirmation and tests.
pub fn code_now(secret: &[u8], params: &TotpParams, unix_now: u64) -> Zeroizing<String> {
    let Some(key) = Keyed::new(secret, params.algorithm) else {
        return Zeroizing::new(String::new());
    };
    let mut buf = Zeroizing::new([0u8; 10]);
    let n = code_at(
        &key,
        step_of(unix_now, params.period),
        params.digits,
        &mut buf,
    );
    Zeroizing::new(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_steps_answers_for_each_authenticator_and_no_more() {
        let p = TotpParams::default();
        let p8 = TotpParams { digits: 8, ..p };
        let (a, b, c) = ([1u8; 20], [2u8; 20], [3u8; 20]);
        let now = 1_800_000_000;
        let keys = [(&a[..], p), (&b[..], p8), (&c[..], p)];
        let step = step_of(now, p.period);
        // (answer) -> which indices match
        let table: &[(Zeroizing<String>, [bool; 3])] = &[
            (code_now(&a, &p, now), [true, false, false]),
            (code_now(&b, &p8, now), [false, true, false]),
            (code_now(&c, &p, now - 30), [false, false, true]),
            (Zeroizing::new("000000x".into()), [false, false, false]),
        ];
        for (answer, want) in table {
            let got = matching_steps(&keys, answer.as_bytes(), now);
            for i in 0..3 {
                assert_eq!(got[i].is_some(), want[i], "{i}");
            }
            // The padding never answers.
            assert!(got[3..].iter().all(Option::is_none));
        }
        let got = matching_steps(&keys, code_now(&c, &p, now - 30).as_bytes(), now);
        assert_eq!(got[2], Some(step - 1));
        assert_eq!(matching_steps(&[], b"123456", now), [None; MAX_DEVICES]);
    }

    /// The obvious walk (latest first, stop at a match): what
    /// [`matching_step`] must find, by other means.
    fn matching_step_walk(
        secret: &[u8],
        params: &TotpParams,
        code: &Code,
        unix_now: u64,
    ) -> Option<u64> {
        let key = Keyed::new(secret, params.algorithm).unwrap();
        window(params, unix_now).rev().find(|&step| {
            let mut buf = Zeroizing::new([0u8; 10]);
            let n = code_at(&key, step, params.digits, &mut buf);
            buf[..n].ct_eq(code.as_bytes()).into()
        })
    }

    fn params(algorithm: Algorithm, digits: u8, skew: u8) -> TotpParams {
        TotpParams {
            digits,
            period: 30,
            algorithm,
            skew,
        }
    }

    // RFC 6238 Appendix B: the seeds are the ASCII "1234567890" repeated to
    // the hash's block-friendly length.
    fn seed(alg: Algorithm) -> Vec<u8> {
        let len = match alg {
            Algorithm::SHA1 => 20,
            Algorithm::SHA256 => 32,
            Algorithm::SHA512 => 64,
        };
        b"1234567890".iter().cycle().take(len).copied().collect()
    }

    /// The codes agree with totp-rs (which the enrollment's otpauth URL
    /// describes) for every algorithm, digit count and key length a secret
    /// may have, at steps from 0 to far ahead.
    #[test]
    fn codes_agree_with_totp_rs() {
        let steps = [
            0,
            1,
            29,
            30,
            59_652_323,
            60_000_000,
            u64::from(u32::MAX) + 7,
        ];
        for alg in [Algorithm::SHA1, Algorithm::SHA256, Algorithm::SHA512] {
            for len in [16, 20, 32, 33, 64, 65, 128] {
                let secret: Vec<u8> = (0..len).map(|i| (i * 37 + len) as u8).collect();
                for digits in [6, 7, 8] {
                    let theirs = totp_rs::Builder::new()
                        .with_algorithm(match alg {
                            Algorithm::SHA1 => totp_rs::Algorithm::SHA1,
                            Algorithm::SHA256 => totp_rs::Algorithm::SHA256,
                            Algorithm::SHA512 => totp_rs::Algorithm::SHA512,
                        })
                        .with_digits(digits)
                        .with_step_duration(30)
                        .with_skew(0)
                        .with_secret(secret.clone())
                        .build_noncompliant();
                    let key = Keyed::new(&secret, alg).unwrap();
                    for step in steps {
                        let mut buf = [0u8; 10];
                        let n = code_at(&key, step, digits, &mut buf);
                        assert_eq!(
                            std::str::from_utf8(&buf[..n]).unwrap(),
                            theirs.generate(step * 30).to_string(),
                            "{alg:?}, {len}-byte key, {digits} digits, step {step}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn rfc6238_appendix_b() {
        let table: &[(u64, &str, &str, &str)] = &[
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for &(t, sha1, sha256, sha512) in table {
            for (alg, want) in [
                (Algorithm::SHA1, sha1),
                (Algorithm::SHA256, sha256),
                (Algorithm::SHA512, sha512),
            ] {
                let p = params(alg, 8, 0);
                assert_eq!(code_now(&seed(alg), &p, t).as_str(), want, "{alg:?} at {t}");
                let code = Code::parse(want.as_bytes(), 8).unwrap();
                assert_eq!(
                    matching_step(&seed(alg), &p, &code, t),
                    Some(t / 30),
                    "{alg:?} at {t}"
                );
                // 6 digits are the last 6 of the 8.
                let p6 = params(alg, 6, 0);
                assert_eq!(
                    code_now(&seed(alg), &p6, t).as_str(),
                    &want[2..],
                    "{alg:?} at {t}"
                );
            }
        }
    }

    #[test]
    fn window_edges() {
        let secret = seed(Algorithm::SHA1);
        let t = 1_700_000_000u64;
        let now = t / 30;
        // (code from step offset, skew, expected match)
        let cases: &[(i64, u8, bool)] = &[
            (0, 0, true),
            (-1, 0, false),
            (1, 0, false),
            (-1, 1, true),
            (1, 1, true),
            (-2, 1, false),
            (2, 1, false),
            (-2, 2, true),
            (10, 10, true),
            (-10, 10, true),
            (11, 10, false),
        ];
        for &(offset, skew, want) in cases {
            let p = params(Algorithm::SHA1, 6, skew);
            let step = now.checked_add_signed(offset).unwrap();
            let c = code_now(&secret, &p, step * 30);
            let code = Code::parse(c.as_bytes(), 6).unwrap();
            let got = matching_step(&secret, &p, &code, t);
            assert_eq!(got.is_some(), want, "offset {offset} skew {skew}");
            if want {
                assert_eq!(got, Some(step));
            }
        }
    }

    #[test]
    fn window_at_the_step_boundaries() {
        let secret = seed(Algorithm::SHA1);
        let p = params(Algorithm::SHA1, 6, 0);
        let start = 1_700_000_010u64; // a multiple of 30
        assert_eq!(start % 30, 0);
        let c = code_now(&secret, &p, start);
        let code = Code::parse(c.as_bytes(), 6).unwrap();
        assert_eq!(matching_step(&secret, &p, &code, start), Some(start / 30));
        assert_eq!(
            matching_step(&secret, &p, &code, start + 29),
            Some(start / 30)
        );
        assert_eq!(matching_step(&secret, &p, &code, start + 30), None);
        assert_eq!(matching_step(&secret, &p, &code, start - 1), None);
    }

    #[test]
    fn every_step_finds_what_the_walk_finds() {
        let secret = seed(Algorithm::SHA1);
        let start = 1_700_000_010u64;
        for skew in 0..=3 {
            let p = params(Algorithm::SHA1, 6, skew);
            for offset in -5i64..=5 {
                let at = start.checked_add_signed(offset * 30).unwrap();
                let c = code_now(&secret, &p, at);
                let code = Code::parse(c.as_bytes(), 6).unwrap();
                for now in [start, start + 29, start - 1, 5] {
                    assert_eq!(
                        matching_step(&secret, &p, &code, now),
                        matching_step_walk(&secret, &p, &code, now),
                        "skew {skew} offset {offset} now {now}"
                    );
                }
            }
            let wrong = Code::parse(b"000000", 6).unwrap();
            assert_eq!(
                matching_step(&secret, &p, &wrong, start),
                matching_step_walk(&secret, &p, &wrong, start)
            );
        }
    }

    #[test]
    fn near_the_epoch_the_window_does_not_underflow() {
        let secret = seed(Algorithm::SHA1);
        let p = params(Algorithm::SHA1, 6, 10);
        let c = code_now(&secret, &p, 0);
        let code = Code::parse(c.as_bytes(), 6).unwrap();
        assert_eq!(matching_step(&secret, &p, &code, 5), Some(0));
    }

    #[test]
    fn answer_syntax() {
        let cases: &[(&[u8], u8, Option<&str>)] = &[
            (b"123456", 6, Some("123456")),
            (b"123 456", 6, Some("123456")),
            (b" 123456 ", 6, Some("123456")),
            (b"12345678", 8, Some("12345678")),
            (b"1234567", 7, Some("1234567")),
            (b"", 6, None),
            (b"12345", 6, None),
            (b"1234567", 6, None),
            (b"12345a", 6, None),
            (b"+12345", 6, None),
            (b"-12345", 6, None),
            (b"123456\n", 6, None),
            (b"12345\x00", 6, None),
            (
                b"\xef\xbc\x91\xef\xbc\x92\xef\xbc\x93\xef\xbc\x94\xef\xbc\x95\xef\xbc\x96",
                6,
                None,
            ),
            (b"123456", 8, None),
            (b"      ", 6, None),
        ];
        for &(answer, digits, want) in cases {
            let got = Code::parse(answer, digits)
                .map(|c| String::from_utf8(c.as_bytes().to_vec()).unwrap());
            assert_eq!(got.as_deref(), want, "{answer:?}");
        }
        let long = vec![b'1'; 100_000];
        assert!(Code::parse(&long, 6).is_none());
    }
}
