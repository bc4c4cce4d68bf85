#!/usr/bin/env bash
# Builds the previous release's module, for tests/downgrade.rs: what an
# administrator who goes back one version runs against the secret and state
# files this version wrote.
#
#   bash tests/old-release.sh      prints the path of its pam_twostep.so
#
# The release is pinned below (main before issue 24, several
# authenticators). Its source is exported from git (no worktree is
# registered) and built once, with its own Cargo.lock, into
# target/old-release/; later runs find it there and print the path at once.
# Two runs at the same time build it once (flock).
set -euo pipefail
cd "$(dirname "$0")/.."

OLD_RELEASE=1b3ed44cc4c8f1552dc1069a29bfb1c9cbbec90f
cache="$PWD/target/old-release"
src="$cache/src-$OLD_RELEASE"
module="$cache/build/debug/libpam_twostep.so"
stamp="$cache/built-$OLD_RELEASE"

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ ! -e "$stamp" ] || [ ! -e "$module" ]; then
    if ! git cat-file -e "$OLD_RELEASE^{commit}" 2>/dev/null; then
        echo "old-release.sh: commit $OLD_RELEASE is not in this clone (a shallow clone?): git fetch --unshallow" >&2
        exit 2
    fi
    rm -rf "$src" "$stamp"
    mkdir -p "$src"
    git archive "$OLD_RELEASE" | tar -x -C "$src"
    # A workspace of its own: cargo would otherwise take it for a stray
    # member of this tree's workspace (Cargo.toml), which it sits inside.
    printf '\n[workspace]\n' >> "$src/Cargo.toml"
    # Only the library: the module is all that the downgrade tests load.
    (cd "$src" && CARGO_TARGET_DIR="$cache/build" cargo build --quiet --locked --lib) >&2
    touch "$stamp"
fi
echo "$module"
