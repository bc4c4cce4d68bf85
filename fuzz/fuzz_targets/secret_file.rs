//! The secret file: any text must be refused or yield a key and parameters
//! inside the bounds the code step relies on; a file that parses survives a
//! write and a read unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_twostep::config::TotpParams;
use pam_twostep::files::secret::{self, SecretFile};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let defaults = TotpParams::default();
    let Ok(user) = secret::parse(text, &defaults) else {
        return;
    };
    assert!((secret::MIN_SECRET_BYTES..=secret::MAX_SECRET_BYTES).contains(&user.key.len()));
    assert!((6..=8).contains(&user.params.digits));
    assert!((15..=300).contains(&user.params.period));
    // What the CLI writes back (a recovery code used, codes regenerated) reads
    // back as the same file.
    let written = user.file.to_toml();
    let back = SecretFile::from_toml(&written).expect("a written secret file parses");
    assert!(back == user.file, "round trip changed the file");
    let again = secret::parse(&written, &defaults).expect("a written secret file is valid");
    assert_eq!(again.key, user.key);
});
