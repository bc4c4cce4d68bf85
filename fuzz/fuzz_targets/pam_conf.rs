//! PAM configuration files, as `twostep audit` reads them: any bytes must
//! parse to lines (or a reported problem) without a panic, and a tree of
//! such files (a service, a file it may include or substack, `other`) must
//! be audited to findings and problems, with every path followed within
//! the walk's bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_twostep::config::Config;
use pam_twostep::ways_in::pam::{audit_source, files::Memory, parse};

fuzz_target!(|data: &[u8]| {
    let parsed = parse::parse(data);
    let physical = data.iter().filter(|&&b| b == b'\n').count() + 1;
    for line in &parsed.lines {
        assert!(line.number >= 1 && line.number as usize <= physical);
    }
    // Up to three files, split at 0x01: the service, an includable file
    // (`inc`, `/etc/pam.d/inc`), and `other`.
    let mut parts = data.splitn(3, |&b| b == 0x01);
    let mut tree = Memory::default();
    for (path, part) in ["/etc/pam.d/sshd", "/etc/pam.d/inc", "/etc/pam.d/other"]
        .iter()
        .zip(parts.by_ref())
    {
        tree.files.insert(path.to_string(), Some(part.to_vec()));
    }
    for module in [
        "pam_permit.so",
        "pam_unix.so",
        "pam_twostep.so",
        "pam_rootok.so",
    ] {
        tree.files.insert(
            format!("/lib/x86_64-linux-gnu/security/{module}"),
            Some(b"ELF".to_vec()),
        );
    }
    let out = audit_source(&tree, &Config::default(), 1_800_000_000);
    for f in &out.findings {
        let file = f.file.as_ref().map(|p| p.display().to_string());
        assert!(
            file.as_deref()
                .is_some_and(|p| p.starts_with("/etc/pam.d/")),
            "{file:?}"
        );
        assert!(f.line.is_some_and(|l| l >= 1));
        assert!(f.key.starts_with("pam:"));
        assert!(!f.why.is_empty());
    }
});
