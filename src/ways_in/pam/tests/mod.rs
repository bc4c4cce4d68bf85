//! Unit tests of the PAM audit, table-driven: the parser (`parse`), the
//! stacks as libpam builds them (`resolve`), and the verdicts of the paths
//! (`verdict`). tests/audit_pam.rs checks the same verdicts against the
//! real libpam.
#![forbid(unsafe_code)]

mod files;
mod parse;
mod resolve;
mod verdict;

use super::files::Memory;

/// The modules a test tree has (the rest are missing).
pub const MODULES: [&str; 10] = [
    "pam_permit.so",
    "pam_deny.so",
    "pam_rootok.so",
    "pam_succeed_if.so",
    "pam_unix.so",
    "pam_twostep.so",
    "pam_cap.so",
    "pam_sss.so",
    "pam_krb5.so",
    "pam_wheel.so",
];

/// A tree with the test modules and `files` (path, text).
pub fn tree(files: &[(&str, &str)]) -> Memory {
    let mut m = Memory::default();
    for module in MODULES {
        m = m.with(&format!("/lib/x86_64-linux-gnu/security/{module}"), "ELF");
    }
    for (path, text) in files {
        m = m.with(path, text);
    }
    m
}
