//! Recovery codes: one-time codes for a user who has lost their phone.
//!
//! A code is 10 characters of Crockford's base32 alphabet (no `i l o u`),
//! 50 bits, shown as `xxxxx-xxxxx`. Codes imported from a google-authenticator
//! file are its 8-digit scratch codes. The secret file keeps only argon2id
//! hashes (PHC strings), never the codes.
//!
//! # One salt per set
//! Every hash of a user's set shares one random salt, so that checking an
//! answer costs one argon2 computation, whose output is then compared with
//! every stored hash in constant time. A per-code salt would make a wrong
//! answer cost ten. Sharing the salt within one user's set gives up nothing
//! that matters here: the codes are random, not chosen by people, so there
//! is no dictionary for a shared salt to help with across the set; the salt
//! still differs between users and between sets.
//!
//! # Cost
//! argon2id with 19 MiB, 4 passes, 1 lane: OWASP's memory figure, with the
//! passes raised until one hash takes 20-50 ms. Measured with
//! `cargo run --release --example argon_timing` on the 2-core reference VM
//! (Xeon, Debian 12): 41 ms per check (median of 20), 476 ms to hash a set
//! of 10. That was 28 ms (2 passes 14 ms, 3 passes 21 ms) before the release
//! profile was optimised for size, which slows argon2's loop by a third to
//! make every login's load cheaper (Cargo.toml). A check is paid at most once per
//! login attempt, under the user's lock, and only when the answer has the
//! shape of a recovery code. Stored hashes carry their parameters, so these
//! can be raised later without invalidating existing codes.
#![forbid(unsafe_code)]

use argon2::password_hash::phc::{Output, PasswordHash, Salt};
use argon2::{Algorithm, Argon2, Params, Version};
use subtle::{Choice, ConstantTimeEq};
use zeroize::Zeroizing;

/// How many codes an enrollment gets.
pub const COUNT: usize = 10;
/// Characters in a generated code (5 bits each: 50 bits).
pub const LEN: usize = 10;
/// Digits in a google-authenticator scratch code.
pub const SCRATCH_LEN: usize = 8;
/// Crockford's base32: no `i`, `l`, `o`, `u`, so nothing reads as something else.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// Answers longer than this are not codes; refuse them before any work.
const MAX_ANSWER: usize = 64;
/// How many distinct (salt, parameters) groups one check computes at most.
/// Sets written by twostep have one; this only bounds a hand-edited file.
const MAX_GROUPS: usize = 2;

/// argon2id, m = 19 MiB, t = 4, p = 1, 32-byte output.
pub const M_COST_KIB: u32 = 19 * 1024;
pub const T_COST: u32 = 4;
pub const P_COST: u32 = 1;
const OUTPUT_LEN: usize = 32;

#[derive(Debug)]
pub enum RecoveryError {
    /// The system gave no randomness.
    Random(String),
    /// argon2 refused (cannot happen with our parameters).
    Hash(String),
}

impl std::fmt::Display for RecoveryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecoveryError::Random(e) => write!(f, "no randomness: {e}"),
            RecoveryError::Hash(e) => write!(f, "argon2: {e}"),
        }
    }
}

impl std::error::Error for RecoveryError {}

fn params() -> Result<Params, RecoveryError> {
    Params::new(M_COST_KIB, T_COST, P_COST, Some(OUTPUT_LEN))
        .map_err(|e| RecoveryError::Hash(e.to_string()))
}

/// The canonical form of an answer, as it is hashed: lower case, without
/// spaces or dashes, with `o` read as `0` and `i`/`l` as `1` (Crockford's
/// rules). `None` unless it is the shape of a code: 10 alphabet characters, or
/// 8 digits (a google-authenticator scratch code). Nothing is hashed for
/// other answers.
pub fn normalize(answer: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if answer.len() > MAX_ANSWER {
        return None;
    }
    let mut out = Zeroizing::new(Vec::with_capacity(LEN));
    for &b in answer {
        let c = match b.to_ascii_lowercase() {
            b' ' | b'-' | b'\t' => continue,
            b'o' => b'0',
            b'i' | b'l' => b'1',
            c if ALPHABET.contains(&c) => c,
            _ => return None,
        };
        out.push(c);
    }
    let scratch = out.len() == SCRATCH_LEN && out.iter().all(u8::is_ascii_digit);
    (out.len() == LEN || scratch).then_some(out)
}

/// `abcde-fghjk`: how a generated code is shown.
pub fn display(code: &[u8]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(code.len() + 1));
    for (i, &c) in code.iter().enumerate() {
        if i == LEN / 2 && code.len() == LEN {
            out.push('-');
        }
        out.push(char::from(c));
    }
    out
}

/// `COUNT` new codes in canonical form (see [`display`] to show them).
pub fn generate() -> Result<Vec<Zeroizing<Vec<u8>>>, RecoveryError> {
    let mut codes = Vec::with_capacity(COUNT);
    while codes.len() < COUNT {
        let mut raw = Zeroizing::new([0u8; LEN]);
        getrandom::fill(raw.as_mut()).map_err(|e| RecoveryError::Random(e.to_string()))?;
        // 256 is a multiple of 32: masking is unbiased.
        let code: Zeroizing<Vec<u8>> =
            Zeroizing::new(raw.iter().map(|b| ALPHABET[usize::from(b & 31)]).collect());
        // A repeat is a 2^-50 event; skipping it keeps the set at COUNT codes.
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    Ok(codes)
}

/// Hashes a set of codes (canonical form, see [`normalize`]) under one fresh
/// salt. Returns PHC strings: `$argon2id$v=19$m=19456,t=4,p=1$SALT$HASH`.
pub fn hash_set(codes: &[Zeroizing<Vec<u8>>]) -> Result<Vec<String>, RecoveryError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| RecoveryError::Random(e.to_string()))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params()?);
    codes
        .iter()
        .map(|code| {
            let mut out = Zeroizing::new([0u8; OUTPUT_LEN]);
            argon
                .hash_password_into(code, &salt, out.as_mut())
                .map_err(|e| RecoveryError::Hash(e.to_string()))?;
            let phc = PasswordHash {
                algorithm: argon2::ARGON2ID_IDENT,
                version: Some(Version::V0x13.into()),
                params: (&params()?)
                    .try_into()
                    .map_err(|e: argon2::password_hash::Error| {
                        RecoveryError::Hash(e.to_string())
                    })?,
                salt: Some(Salt::new(&salt).map_err(|e| RecoveryError::Hash(e.to_string()))?),
                hash: Some(
                    Output::new(out.as_ref()).map_err(|e| RecoveryError::Hash(e.to_string()))?,
                ),
            };
            Ok(phc.to_string())
        })
        .collect()
}

/// Hashes a set of codes given as the user would type them (scratch
/// codes of an imported file). Codes that are not the shape of a code are
/// skipped; the number hashed is the length of the result.
pub fn hash_typed(codes: &[impl AsRef<[u8]>]) -> Result<Vec<String>, RecoveryError> {
    let canonical: Vec<_> = codes.iter().filter_map(|c| normalize(c.as_ref())).collect();
    hash_set(&canonical)
}

/// One stored hash, parsed: the argon2 inputs that must be recomputed, and
/// the output to compare with.
struct Stored {
    params: Params,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

fn parse_stored(phc: &str) -> Option<Stored> {
    let parsed = PasswordHash::new(phc).ok()?;
    if parsed.algorithm != argon2::ARGON2ID_IDENT
        || parsed
            .version
            .is_some_and(|v| v != u32::from(Version::V0x13))
    {
        return None;
    }
    let params = Params::try_from(&parsed).ok()?;
    let salt = parsed.salt?;
    let hash = parsed.hash?;
    // A parameter set far beyond ours would let a damaged file stall logins.
    if params.m_cost() > 4 * M_COST_KIB || params.t_cost() > 8 * T_COST || params.p_cost() > 4 {
        return None;
    }
    Some(Stored {
        params,
        salt: salt.to_vec(),
        hash: hash.as_bytes().to_vec(),
    })
}

/// Which stored hash, if any, the answer is. Costs one argon2 computation for
/// a set written by twostep (zero if the answer is not the shape of a code);
/// every stored hash is compared, whatever matches. Entries that are not
/// argon2id PHC strings never match.
pub fn find(stored: &[String], answer: &[u8]) -> Option<usize> {
    let code = normalize(answer)?;
    let parsed: Vec<Option<Stored>> = stored.iter().map(|s| parse_stored(s)).collect();
    // Distinct (salt, parameters) groups, in order of appearance.
    let mut groups: Vec<(&[u8], Params)> = Vec::new();
    for s in parsed.iter().flatten() {
        if !groups
            .iter()
            .any(|(salt, p)| *salt == s.salt.as_slice() && *p == s.params)
            && groups.len() < MAX_GROUPS
        {
            groups.push((s.salt.as_slice(), s.params.clone()));
        }
    }
    let mut found: Option<usize> = None;
    for (salt, params) in groups {
        let len = params.output_len().unwrap_or(OUTPUT_LEN);
        let mut out = Zeroizing::new(vec![0u8; len]);
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        if argon.hash_password_into(&code, salt, &mut out).is_err() {
            continue;
        }
        for (i, s) in parsed.iter().enumerate() {
            let Some(s) = s else { continue };
            let same_group: bool = s.salt.as_slice() == salt && s.params == params;
            let equal: Choice = s.hash.as_slice().ct_eq(out.as_slice());
            if same_group && bool::from(equal) {
                found = Some(i);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_table() {
        let cases: &[(&str, Option<&str>)] = &[
            ("abcde-fghjk", Some("abcdefghjk")),
            ("ABCDE-FGHJK", Some("abcdefghjk")),
            ("abcdefghjk", Some("abcdefghjk")),
            (" abcde fghjk ", Some("abcdefghjk")),
            ("ab-cd-ef-gh-jk", Some("abcdefghjk")),
            // Crockford's readings of look-alikes.
            ("O1234-5678I", Some("0123456781")),
            ("l0000-00000", Some("1000000000")),
            // google-authenticator scratch codes.
            ("12345678", Some("12345678")),
            ("1234 5678", Some("12345678")),
            // Not the shape of a code.
            ("", None),
            ("123456", None),
            ("abcdefgh", None),
            ("abcde-fghj", None),
            ("abcde-fghjkm", None),
            ("abcde-fghju", None),
            ("abcde_fghjk", None),
            ("abcde-fghj\u{e9}", None),
            ("abcde\nfghjk", None),
        ];
        for &(answer, want) in cases {
            let got = normalize(answer.as_bytes()).map(|v| String::from_utf8(v.to_vec()).unwrap());
            assert_eq!(got.as_deref(), want, "{answer:?}");
        }
        assert!(normalize(&[b'a'; 100]).is_none());
    }

    #[test]
    fn generated_codes_are_distinct_well_formed_and_display_with_a_dash() {
        let codes = generate().unwrap();
        assert_eq!(codes.len(), COUNT);
        for c in &codes {
            assert_eq!(c.len(), LEN);
            assert!(c.iter().all(|b| ALPHABET.contains(b)));
            let shown = display(c);
            assert_eq!(shown.len(), LEN + 1);
            assert_eq!(&shown[5..6], "-");
            assert_eq!(normalize(shown.as_bytes()).unwrap(), *c);
        }
        let mut uniq: Vec<Vec<u8>> = codes.iter().map(|c| c.to_vec()).collect();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), COUNT);
        assert_eq!(display(b"12345678").as_str(), "12345678");
    }

    #[test]
    fn hashes_share_one_salt_and_verify_each_code_only() {
        let codes = generate().unwrap();
        let hashes = hash_set(&codes).unwrap();
        assert_eq!(hashes.len(), COUNT);
        let salts: Vec<_> = hashes
            .iter()
            .map(|h| PasswordHash::new(h).unwrap().salt.unwrap().to_vec())
            .collect();
        assert!(salts.windows(2).all(|w| w[0] == w[1]), "one salt per set");
        for h in &hashes {
            assert!(h.starts_with("$argon2id$v=19$m=19456,t=4,p=1$"), "{h}");
        }
        for (i, c) in codes.iter().enumerate() {
            let shown = display(c);
            assert_eq!(find(&hashes, shown.as_bytes()), Some(i));
            assert_eq!(find(&hashes, shown.to_uppercase().as_bytes()), Some(i));
            // The hashes hold no trace of the code.
            assert!(hashes.iter().all(|h| !h.contains(shown.as_str())));
        }
        assert_eq!(find(&hashes, b"00000-00000"), None);
        assert_eq!(find(&hashes, b"not a code"), None);
        // A second set has a different salt: codes do not cross over.
        let other = hash_set(&codes[..1]).unwrap();
        assert_ne!(
            PasswordHash::new(&other[0]).unwrap().salt.unwrap().to_vec(),
            salts[0]
        );
        assert_eq!(find(&other, display(&codes[0]).as_bytes()), Some(0));
    }

    #[test]
    fn scratch_codes_and_damaged_entries() {
        let hashes = hash_typed(&["12345678", "87654321", "junk"]).unwrap();
        assert_eq!(hashes.len(), 2);
        let mut stored = vec![
            "not a hash".to_string(),
            "$argon2i$v=19$m=16,t=2,p=1$c29tZXNhbHQ$aGFzaA".to_string(),
        ];
        stored.extend(hashes);
        assert_eq!(find(&stored, b"87654321"), Some(3));
        assert_eq!(find(&stored, b"1234 5678"), Some(2));
        assert_eq!(find(&stored, b"12345679"), None);
        assert_eq!(find(&[], b"12345678"), None);
    }
}
