#!/bin/sh
# The release build, made the way the Debian package makes it:
#
#   sh link/release.sh [cargo options, e.g. --locked]
#
# leaves the CLI in target/release/twostep, the self-service command in
# target/release/twostep-self, the PAM module in
# target/release/libpam_twostep.so and its on-demand part (src/ondemand/)
# in target/release/libtwostep_ondemand.so. The module looks for the part
# where TWOSTEP_ONDEMAND_PATH says when it is built (debian/rules), else at
# /usr/lib/twostep/libtwostep_ondemand.so.
#
# Why not just `cargo build --release`: the library is both a cdylib (the
# module) and an rlib (for the CLI and the tests), and cargo does not run
# link-time optimisation on a unit that is both. Without it the module calls
# even its own functions through the GOT and needs two thirds more relocations
# at every load. So the module is built a second time on its own, as a plain
# cdylib, which cargo does optimise across crates ("lto" in Cargo.toml).
# Run last, it is the one left at target/release/libpam_twostep.so.
set -eu
cd "$(dirname "$0")/.."
cargo build --release --bin twostep --bin twostep-self "$@"
cargo build --release -p twostep-ondemand "$@"
cargo rustc --release --lib --crate-type cdylib "$@"
