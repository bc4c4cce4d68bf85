#!/usr/bin/env bash
# Runs every twostep test on a fresh Debian 12 machine, as root.
#
#   sudo bash tests/run-all.sh
#
# It installs the system packages the tests use, builds the module and the
# CLI, and runs: formatting and lint checks, unit tests, and the integration
# tests that load the built pam_twostep.so through the real libpam with real
# users. Nothing outside /tmp and the test users (ts-*) is changed.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
    echo "run-all.sh: the tests need root (real users, root-owned secret files): sudo bash $0" >&2
    exit 2
fi

packages=(
    gcc libc6-dev libpam0g-dev   # the C test client (pam_start_confdir)
    libpam-modules passwd         # pam_unix, useradd, chpasswd
    oathtool                      # codes from an independent implementation
    libpam-google-authenticator   # the benchmark's baseline
)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
echo "== cargo build"
cargo build --quiet
echo "== cargo test"
cargo test --quiet -- --test-threads=4
