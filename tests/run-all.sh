#!/usr/bin/env bash
# Runs every twostep test on a fresh Debian 12 machine, as root.
#
#   sudo bash tests/run-all.sh
#
# It installs the system packages the tests use (packages.sh test), checks
# that a machine without the build packages gets them from the documented
# steps (tests/fresh.sh), builds the module and the CLI, and runs:
# formatting and lint checks, unit tests, and the integration tests that
# load the built pam_twostep.so through the real libpam with real users
# (fault injection, valgrind memcheck and timing among them); the
# unsafe-code and cargo-deny policies; a short fuzzing run of every parser;
# end-to-end tests through a private sshd, login(1), su(1) and rsyslogd; and
# the Debian package, built, installed and purged.
# Besides installing packages (tests/fresh.sh removes the build's and
# installs them again) and cargo-fuzz and cargo-deny (pinned, into
# ~/.cargo/bin), it changes nothing outside /tmp and the test users (ts-*),
# with two bounded exceptions: the ssh tests add uniquely named
# /etc/pam.d/twostep-e2e-* files (removed after), and tests/deb.sh enables the
# package's profiles in /etc/pam.d/common-* and restores them (EXIT trap).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "run-all.sh: the tests need root (real users, root-owned secret files): sudo bash $0" >&2
    exit 2
fi

# Every package the tests use, the build's among them (packages.sh says
# which come from where).
bash packages.sh test
echo "== a fresh machine: the demo's and the package's install steps (tests/fresh.sh)"
bash tests/fresh.sh

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
echo "== cargo build"
cargo build --quiet
# tests/downgrade.rs loads the previous release's module beside this one.
# It is built here, alone, once (about 70 s on 2 cores, then cached in
# target/old-release/), rather than inside the parallel test run below,
# which would otherwise build it when the test first asks for it.
echo "== the previous release's module, for tests/downgrade.rs (tests/old-release.sh)"
bash tests/old-release.sh >/dev/null
echo "== cargo test"
cargo test --quiet -- --test-threads=4
echo "== timing, alone (tests/timing.rs)"
cargo test --quiet --test timing -- --ignored --nocapture
echo "== unsafe-code policy (tests/unsafe_policy.sh)"
bash tests/unsafe_policy.sh
echo "== cargo deny: licenses, bans, sources (deny.toml; advisories need network, see there)"
# A debug build of cargo-deny compiles in about 1 minute on 2 cores; the
# release profile (fat LTO) takes over 3, for a check that runs in a second.
CARGO_DENY_VERSION=0.20.2
if [ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $CARGO_DENY_VERSION" ]; then
    cargo install --quiet --locked --debug cargo-deny --version "$CARGO_DENY_VERSION"
fi
cargo deny --offline --log-level error check licenses bans sources
echo "== fuzzing, 20 s per target (tests/fuzz.sh)"
cargo fmt --check --manifest-path fuzz/Cargo.toml
bash tests/fuzz.sh
echo "== the Debian package (tests/deb.sh)"
bash tests/deb.sh
echo "== the demo (tests/demo.sh)"
bash tests/demo.sh
echo "== the benchmark, small (tests/bench.sh 200 1): every login must succeed; docs/performance.md has full figures"
bash tests/bench.sh 200 1
echo "== the paired A/B tool, the module against itself (tests/ab.sh, one step): every login must succeed"
bash tests/ab.sh target/release/libpam_twostep.so target/release/libpam_twostep.so 1 50 2
echo "== what a load pays for, small (tests/loadfloor.sh, 3 rounds): every reference library builds and loads"
bash tests/loadfloor.sh target/release/libpam_twostep.so 3 100
echo "== the hot-code list still matches the module (link/hot-symbols.sh --check)"
bash link/hot-symbols.sh --check
