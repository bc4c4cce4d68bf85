//! Codes and notices by email and text message.
#![forbid(unsafe_code)]

pub mod address;
