//! The files on disk, opened without following links and written so that a
//! reader never sees a partial one: the secret files, the state file's
//! format, a new enrollment's secret file, and the account's password entry
//! (`shadow`). Where a fleet's state lives instead is `store`'s.
#![forbid(unsafe_code)]

pub mod enrollment;
pub mod fsutil;
pub mod secret;
pub mod shadow;
pub mod state;
