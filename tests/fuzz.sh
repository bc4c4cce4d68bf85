#!/usr/bin/env bash
# A short, time-boxed run of every fuzz target (fuzz/), as part of
# tests/run-all.sh. A crash fails the run and leaves the input that caused it
# in fuzz/artifacts/<target>/; reproduce it with
#   cargo +nightly fuzz run <target> fuzz/artifacts/<target>/crash-...
# then turn it into a unit test next to the parser before fixing it.
#
#   bash tests/fuzz.sh              # FUZZ_SECONDS (default 20) per target
#   FUZZ_SECONDS=600 bash tests/fuzz.sh config   # a longer run of one target
#
# libFuzzer needs a nightly toolchain (sanitizer flags); rustup cannot
# download one where only package registries are reachable, so it must
# already be installed (`rustup toolchain list`). cargo-fuzz is installed
# from crates.io at a pinned version if it is missing.
#
# The committed seeds (fuzz/corpus/<target>/seed-*) are only read: what
# libFuzzer adds goes to a scratch corpus under /tmp, so a run leaves the
# working tree as it was.
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
seconds=${FUZZ_SECONDS:-20}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config secret_file state_file google_authenticator answer email_address phone_number resp_reply pam_conf)

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz.sh: no nightly toolchain (rustup toolchain list); libFuzzer needs one" >&2
    exit 1
fi
if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
    echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION (about 30 s)"
    cargo install --quiet --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

echo "== building the fuzz targets (nightly, libFuzzer, AddressSanitizer, debug assertions)"
(cd fuzz && cargo +nightly fuzz build)

scratch=$(mktemp -d /tmp/twostep-fuzz.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
    mkdir -p "$scratch/$t"
    log="$scratch/$t.log"
    # The secret and config files are bounded well below 64 KiB by the
    # module; 4 KiB inputs reach every construct of their grammars.
    if ! (cd fuzz && cargo +nightly fuzz run "$t" "$scratch/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1) >"$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "fuzz.sh: target $t FAILED; the input is in fuzz/artifacts/$t/" >&2
        exit 1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    echo "fuzz $t: ${runs:-?} inputs in ${seconds}s, ${cov:-cov: ?}, corpus $(ls "$scratch/$t" | wc -l), no crash"
done
