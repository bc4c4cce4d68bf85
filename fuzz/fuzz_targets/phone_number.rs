//! What reaches the SMS command's argv: a `phone` from a secret file or
//! `--phone` on the command line. Anything is refused or is E.164: `+`, then
//! 8 to 15 digits, the first not 0.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_twostep::base::address::PhoneNumber;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(number) = PhoneNumber::parse(text) {
        assert_eq!(number.as_str(), text);
        let digits = text.strip_prefix('+').expect("a +");
        assert!((8..=15).contains(&digits.len()));
        assert!(digits.bytes().all(|b| b.is_ascii_digit()));
        assert!(!digits.starts_with('0'));
        // The mask keeps the + and the last four digits, and the length.
        let masked = number.masked();
        assert_eq!(masked.len(), text.len());
        assert!(masked.starts_with("+*"));
        assert_eq!(&masked[masked.len() - 4..], &text[text.len() - 4..]);
        assert_eq!(masked.matches('*').count(), digits.len() - 4);
    }
});
