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
#![forbid(unsafe_code)]

pub mod address;
pub mod records;
pub mod tomlread;
pub mod user;
