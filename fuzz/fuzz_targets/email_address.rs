//! What reaches sendmail's argv and the To header: an `email` from a secret
//! file, `--email` on the command line, or `email.address` expanded for a
//! user. Anything is refused or is one plain local@domain that cannot start
//! a header, add a recipient or read as an option.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_twostep::base::address::{self, EmailAddress};

/// The shape every accepted address has, checked independently of the parser.
fn plain(s: &str) {
    assert!(!s.is_empty() && s.len() <= address::MAX_EMAIL_LEN);
    assert!(!s.starts_with('-'));
    assert!(
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-@".contains(&b))
    );
    let (local, domain) = s.split_once('@').expect("an @");
    assert!(!domain.contains('@'));
    assert!(!local.is_empty() && local.len() <= address::MAX_LOCAL_LEN);
    assert!(!local.starts_with('.') && !local.ends_with('.') && !local.contains(".."));
    assert!(!domain.is_empty() && domain.len() <= address::MAX_DOMAIN_LEN);
    for label in domain.split('.') {
        assert!((1..=63).contains(&label.len()));
        assert!(!label.starts_with('-') && !label.ends_with('-'));
        assert!(!label.contains(['_', '+']));
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match EmailAddress::parse(text) {
        Ok(email) => {
            assert_eq!(email.as_str(), text);
            plain(email.as_str());
            // The mask shows the first character of each side, no more of
            // the local part, and never the whole address.
            let masked = email.masked();
            assert!(masked.contains("***@") && masked.is_ascii());
            assert!(masked.len() <= 3 + 1 + 3 + 1 + 63 + 2);
        }
        Err(e) => assert!(!e.to_string().contains('\n')),
    }
    // The same text as an email.address template, for a plain user name.
    if let Ok(email) = address::expand_template(text, "alice") {
        plain(email.as_str());
        assert_eq!(text.matches(address::PLACEHOLDER).count(), 1);
        assert_eq!(email.as_str(), text.replace(address::PLACEHOLDER, "alice"));
    }
    // And as a user name put into a good template.
    if let Ok(email) = address::expand_template("{user}@example.com", text) {
        plain(email.as_str());
    }
});
