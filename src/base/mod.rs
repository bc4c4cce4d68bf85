//! The values shared by the module and the commands, below everything else:
//! they import nothing of the crate's, so config, the files, delivery and the
//! commands can all build on them.
//!
//! - `user`: the validated user name, the only way a name reaches a path
//! - `address`: the validated email address and phone number, the only way a
//!   value reaches sendmail's or an SMS command's argv
//! - `records`: the syslog records (not the `twostep audit` command)
//! - `tomlread`: the config's and the secret files' reader, over toml's parse
//!   tree, with messages that name the key and its line
//! - [`errno_text`]: an errno in words
#![forbid(unsafe_code)]

pub mod address;
pub mod records;
pub mod tomlread;
pub mod user;

/// An errno as the C library words it ("Permission denied (os error 13)").
/// Not nix's `Display` or `desc()`: their tables of names and descriptions
/// are 4 KB of pointers that ld.so would relocate at every load of the
/// module (docs/performance.md, "What a load pays for").
pub fn errno_text(e: nix::Error) -> String {
    std::io::Error::from(e).to_string()
}
