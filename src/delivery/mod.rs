//! Codes and notices by email and text message.
#![deny(unsafe_code)]

pub mod address;
pub mod message;
// The one file of this module that talks to C: fork and exec, signal
// dispositions and masks, pidfd.
#[allow(unsafe_code)]
pub mod spawn;
