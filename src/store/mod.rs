//! The shared state store of a fleet. `valkey` is its client.
// Not forbid: valkey/openssl.rs talks to libssl (tests/unsafe_policy.sh).
#![deny(unsafe_code)]

pub mod valkey;
