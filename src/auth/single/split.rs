//! Where one answer (`preauth single`) may end in a code: a pure function of
//! the answer's last bytes and the user's code length, so that the rules
//! are few, written down (pam_twostep(8)), and tested exhaustively.
//!
//! The code is typed right after the password, nothing between them. Three
//! shapes can end an answer, and no answer ends in two of them (the tests
//! prove it over every answer of the relevant bytes), so the split never
//! needs a guess:
//! - the user's code: the last `len` bytes, all digits (an app's code, or a
//!   code sent by email or SMS);
//! - a recovery code as it is shown, `xxxxx-xxxxx`: its dash is 6th from
//!   the end, where a code of 6 or more digits has a digit;
//! - a google-authenticator scratch code typed `nnnn-nnnn`: its dash is 5th
//!   from the end, where both others have something else.
//!
//! A shape is only where a code may be: whether it is one is judged against
//! the user's secret and state (`single`), not guessed from the bytes.
#![forbid(unsafe_code)]

/// The longest answer looked at: libpam's own limit on a reply
/// (PAM_MAX_RESP_SIZE), which pam_unix also applies to passwords.
pub const MAX_ANSWER: usize = 512;

/// A recovery code as shown: 5 characters, a dash, 5 characters.
const RECOVERY_SHOWN: usize = 11;
/// A scratch code typed `nnnn-nnnn`.
const SCRATCH_SHOWN: usize = 9;

/// What may end an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The user's code: an app's, or one sent by email or SMS.
    Code,
    /// A recovery code as shown, `xxxxx-xxxxx`.
    Recovery,
    /// A google-authenticator scratch code, `nnnn-nnnn`.
    Scratch,
}

/// Why an answer is refused before anything is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    /// Longer than [`MAX_ANSWER`].
    TooLong,
    /// A NUL byte: no password has one.
    Nul,
}

/// Where an answer may end in a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The password would be `..at` and the code `at..`.
    Tail { at: usize, shape: Shape },
    /// Nothing code-shaped at the end: the answer can only be a password.
    NoCode,
    /// Refused unjudged.
    Unusable(Unusable),
}

/// Where `answer` may end in a code of `len` digits (6..=10), or a
/// recovery or scratch code as typed.
pub fn split(answer: &[u8], len: u8) -> Split {
    if answer.len() > MAX_ANSWER {
        return Split::Unusable(Unusable::TooLong);
    }
    if answer.contains(&0) {
        return Split::Unusable(Unusable::Nul);
    }
    let tail = |n: usize| answer.len().checked_sub(n).map(|at| (at, &answer[at..]));
    if let Some((at, t)) = tail(RECOVERY_SHOWN)
        && t[5] == b'-'
        && t[..5].iter().chain(&t[6..]).all(|&b| recovery_char(b))
    {
        return Split::Tail {
            at,
            shape: Shape::Recovery,
        };
    }
    if let Some((at, t)) = tail(SCRATCH_SHOWN)
        && t[4] == b'-'
        && t[..4].iter().chain(&t[5..]).all(u8::is_ascii_digit)
    {
        return Split::Tail {
            at,
            shape: Shape::Scratch,
        };
    }
    if let Some((at, t)) = tail(usize::from(len))
        && !t.is_empty()
        && t.iter().all(u8::is_ascii_digit)
    {
        return Split::Tail {
            at,
            shape: Shape::Code,
        };
    }
    Split::NoCode
}

/// A character a recovery code may be typed with: Crockford's base32 in
/// either case, with `o`, `i` and `l` read as it reads them (`recovery`).
fn recovery_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() && !matches!(b, b'u' | b'U')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tail(at: usize, shape: Shape) -> Split {
        Split::Tail { at, shape }
    }

    #[test]
    fn the_table() {
        use Shape::*;
        let cases: &[(&[u8], u8, Split)] = &[
            // The usual: a password, then the code.
            (b"hunter2492039", 6, tail(7, Code)),
            (b"hunter249203912", 8, tail(7, Code)),
            (b"pw0123456789", 10, tail(2, Code)),
            // A password that ends in digits: the code is the last `len`.
            (b"summer2024492039", 6, tail(10, Code)),
            // Only a code: the password is empty (the password module
            // decides what an empty one means).
            (b"492039", 6, tail(0, Code)),
            // Shorter than a code, or a code of the wrong length at the end.
            (b"49203", 6, Split::NoCode),
            (b"hunter2", 6, Split::NoCode),
            (b"pw12345", 6, Split::NoCode),
            (b"pw1234567", 8, Split::NoCode),
            // No digits at all, and nothing at all.
            (b"correct horse", 6, Split::NoCode),
            (b"", 6, Split::NoCode),
            // Spaces: not part of a code here (they would be part of the
            // password).
            (b"pw 492 039", 6, Split::NoCode),
            (b"pw492039 ", 6, Split::NoCode),
            // A recovery code as shown, in either case, Crockford's o/i/l.
            (b"hunter2abcde-fghjk", 6, tail(7, Recovery)),
            (b"hunter2ABCDE-FGHJK", 6, tail(7, Recovery)),
            (b"pwoilOI-12345", 6, tail(2, Recovery)),
            (b"abcde-fghjk", 6, tail(0, Recovery)),
            (b"pw12345-67890", 6, tail(2, Recovery)),
            // Without its dash it is not recognised; with `u`, not one.
            (b"hunter2abcdefghjk", 6, Split::NoCode),
            (b"hunter2abcde-fghju", 6, Split::NoCode),
            (b"hunter2abcd-efghjk", 6, Split::NoCode),
            // A scratch code as typed.
            (b"hunter21234-5678", 6, tail(7, Scratch)),
            (b"1234-5678", 8, tail(0, Scratch)),
            // 11 characters around a dash: a recovery code's shape, even
            // of digits (the recovery codes judge it, not the app's).
            (b"hunter2123-45678", 6, tail(5, Recovery)),
            (b"pw_1234-56789", 6, Split::NoCode),
            // Bad input.
            (
                &[b'1'; MAX_ANSWER + 1],
                6,
                Split::Unusable(Unusable::TooLong),
            ),
            (b"pw\x00492039", 6, Split::Unusable(Unusable::Nul)),
            (b"\x00", 6, Split::Unusable(Unusable::Nul)),
        ];
        for (answer, len, want) in cases {
            assert_eq!(
                split(answer, *len),
                *want,
                "{:?} len {len}",
                String::from_utf8_lossy(answer)
            );
        }
        // The longest answer looked at is still split.
        let mut longest = vec![b'x'; MAX_ANSWER - 6];
        longest.extend_from_slice(b"492039");
        assert_eq!(split(&longest, 6), tail(MAX_ANSWER - 6, Code));
        let huge = vec![b'1'; 64 * 1024];
        assert_eq!(split(&huge, 6), Split::Unusable(Unusable::TooLong));
    }

    /// The shapes one at a time, as a reference the split must agree with.
    fn is_code(t: &[u8], len: usize) -> bool {
        t.len() >= len && t[t.len() - len..].iter().all(u8::is_ascii_digit)
    }
    fn is_dashed(t: &[u8], n: usize, dash: usize, ok: fn(u8) -> bool) -> bool {
        t.len() >= n
            && t[t.len() - n..]
                .iter()
                .enumerate()
                .all(|(i, &b)| if i == dash { b == b'-' } else { ok(b) })
    }

    /// Every answer of up to 11 bytes drawn from the bytes that matter (a
    /// digit, a letter of the alphabet, `u`, a dash), for every
    /// code length: no answer has two shapes, the split finds the one it
    /// has, and the two parts put together are the answer.
    #[test]
    fn no_answer_has_two_shapes() {
        let bytes = [b'7', b'k', b'u', b'-'];
        let mut answer = Vec::new();
        let mut checked = 0u64;
        fn walk(answer: &mut Vec<u8>, bytes: &[u8], checked: &mut u64) {
            for len in 6..=10u8 {
                let shapes = [
                    is_code(answer, usize::from(len)),
                    is_dashed(answer, RECOVERY_SHOWN, 5, recovery_char),
                    is_dashed(answer, SCRATCH_SHOWN, 4, |b| b.is_ascii_digit()),
                ];
                assert!(
                    shapes.iter().filter(|s| **s).count() <= 1,
                    "{:?} has two shapes",
                    String::from_utf8_lossy(answer)
                );
                let want = match shapes {
                    [true, _, _] => tail(answer.len() - usize::from(len), Shape::Code),
                    [_, true, _] => tail(answer.len() - RECOVERY_SHOWN, Shape::Recovery),
                    [_, _, true] => tail(answer.len() - SCRATCH_SHOWN, Shape::Scratch),
                    _ => Split::NoCode,
                };
                assert_eq!(split(answer, len), want, "{answer:?} len {len}");
                *checked += 1;
            }
            if answer.len() == RECOVERY_SHOWN {
                return;
            }
            for &b in bytes {
                answer.push(b);
                walk(answer, bytes, checked);
                answer.pop();
            }
        }
        walk(&mut answer, &bytes, &mut checked);
        // 4^0 + ... + 4^11 answers, 5 lengths each.
        assert_eq!(checked, 5 * (4u64.pow(12) - 1) / 3);
    }
}
