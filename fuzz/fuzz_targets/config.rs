//! The configuration file: any text must parse to a validated config or to an
//! error naming a line inside the text, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_twostep::config::Config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text) {
        Ok(c) => {
            // What the rest of the module relies on, whatever the file said.
            assert!((6..=8).contains(&c.totp.digits));
            assert!((15..=300).contains(&c.totp.period));
            assert!(c.totp.skew <= 10);
            assert!(!c.lockout.tiers.is_empty());
            assert!(c.lockout.tiers.iter().all(|t| t.failures > 0));
        }
        Err((line, message)) => {
            assert!(!message.is_empty());
            if let Some(line) = line {
                assert!(line >= 1 && line <= text.lines().count() + 1, "line {line}");
            }
        }
    }
});
