//! What a remote client types or sends: the answer at the code prompt (TOTP
//! code or recovery code), the PAM user name, and the module arguments.
//! None may panic; each accepts only what its grammar allows.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_twostep::base::user::UserName;
use pam_twostep::config::TotpParams;
use pam_twostep::pam;
use pam_twostep::rules::recovery;
use pam_twostep::rules::totp::{self, Code};

const KEY: &[u8; 20] = b"12345678901234567890";

fuzz_target!(|data: &[u8]| {
    for digits in [6u8, 7, 8] {
        if let Some(code) = Code::parse(data, digits) {
            assert!(data.iter().all(|&b| b == b' ' || b.is_ascii_digit()));
            let n = data.iter().filter(|b| b.is_ascii_digit()).count();
            assert_eq!(n, usize::from(digits));
            let params = TotpParams {
                digits,
                ..TotpParams::default()
            };
            let _ = totp::matching_step(KEY, &params, &code, 1_800_000_000);
        }
    }
    if let Some(code) = recovery::normalize(data) {
        assert!(code.len() == recovery::LEN || code.len() == recovery::SCRATCH_LEN);
        assert!(
            code.iter()
                .all(|&b| b"0123456789abcdefghjkmnpqrstvwxyz".contains(&b))
        );
    }
    if let Ok(user) = UserName::parse_bytes(data) {
        let s = user.as_str();
        assert_eq!(s.as_bytes(), data);
        assert!(!s.starts_with(['-', '.']) && !s.contains('/') && s.len() <= 256);
    }
    // Debug builds (which fuzz builds are: overflow checks on) have a
    // deliberate "panic-probe" argument for tests/panic.rs; release builds
    // do not. libFuzzer finds it within seconds, so it is left out here.
    let args: Vec<&[u8]> = data
        .split(|&b| b == 0)
        .filter(|a| *a != b"panic-probe")
        .collect();
    if let Ok(parsed) = pam::parse_args(&args) {
        if let Some(path) = parsed.config {
            assert!(path.is_absolute());
        }
    }
});
