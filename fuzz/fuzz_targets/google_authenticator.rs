//! `twostep import-google-authenticator`: any text (the file belongs to the
//! user being imported, not to root) must be refused or yield a valid secret
//! and scratch codes that the module will accept as recovery codes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_twostep::cli::import_ga;
use pam_twostep::files::secret;
use pam_twostep::rules::recovery;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match import_ga::parse(text) {
        Ok(ga) => {
            assert!(ga.totp && !ga.hotp && !ga.disabled);
            assert!(secret::decode_base32(&ga.secret).is_some());
            for code in &ga.scratch_codes {
                let n = recovery::normalize(code.as_bytes()).expect("a scratch code normalizes");
                assert_eq!(n.len(), recovery::SCRATCH_LEN);
            }
            if let Some(step) = ga.step {
                assert!(step > 0);
            }
            if let Some(w) = ga.window {
                assert!((1..=100).contains(&w));
            }
        }
        // The error message never quotes the file: it holds the secret.
        Err(e) => {
            let msg = e.to_string();
            // Only a line that could be a secret: libFuzzer once made the
            // first line the text of the error message itself.
            if let Some(first) = text.lines().next().map(str::trim)
                && first.len() >= 16
                && first
                    .bytes()
                    .all(|b| b.is_ascii_alphabetic() || (b'2'..=b'7').contains(&b))
            {
                assert!(!msg.contains(first), "error quotes the file: {msg}");
            }
        }
    }
});
