//! The pure rules, no I/O: functions of their arguments (the config, the
//! state as read, the time), so that table-driven unit tests can cover them
//! exhaustively. The only thing they take from the system is randomness, for
//! a new sent code (`codes`) or recovery code set (`recovery`); reading and
//! writing the state around them is `auth`'s and `store`'s.
#![forbid(unsafe_code)]

pub mod codes;
pub mod lockout;
pub mod policy;
pub mod recovery;
pub mod totp;
