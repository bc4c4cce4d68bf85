#!/usr/bin/env bash
# The unsafe-code policy (STYLE.md, SECURITY.md), checked on every run:
# - unsafe code lives in seven FFI files only: src/pam.rs (the PAM entry
#   points), src/caller.rs (the scheduler and priority of a setuid host),
#   src/delivery/spawn.rs (fork/exec, signals, pidfd),
#   src/ondemand/load.rs (dlopen of the module's on-demand part),
#   src/store/valkey/openssl.rs (libssl, loaded for rediss:// only), and
#   twostep-self's src/self_service/pam_client.rs (libpam as an
#   application) and src/self_service/hygiene.rs (the setuid start: the
#   environment). Each is allowed it by its module declaration alone, in a
#   parent that has #![deny(unsafe_code)] (src/lib.rs for `pam` and `caller`,
#   src/delivery/mod.rs for `spawn`, src/ondemand/mod.rs for `load`,
#   src/store/valkey/mod.rs for `openssl`,
#   src/self_service/mod.rs for `pam_client` and `hygiene`); every other
#   file under src/ starts with #![forbid(unsafe_code)];
# - `allow(unsafe_code)` appears nowhere else;
# - every `unsafe` block, fn or impl under src/ has a `// SAFETY:` comment on
#   one of the three lines above it.
#   bash tests/unsafe_policy.sh [DIR]     (DIR defaults to src)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-src}
bad=0

# parent file, the module it may allow unsafe code in, the FFI file
exceptions=(
    "$dir/lib.rs pam $dir/pam.rs"
    "$dir/lib.rs caller $dir/caller.rs"
    "$dir/delivery/mod.rs spawn $dir/delivery/spawn.rs"
    "$dir/ondemand/mod.rs load $dir/ondemand/load.rs"
    "$dir/store/valkey/mod.rs openssl $dir/store/valkey/openssl.rs"
    "$dir/self_service/mod.rs pam_client $dir/self_service/pam_client.rs"
    "$dir/self_service/mod.rs hygiene $dir/self_service/hygiene.rs"
)
# Folders above an FFI file's parent: they deny (forbid would reach down).
deny_only=(
    "$dir/store/mod.rs"
)
allowed_files=()
for f in "${deny_only[@]}"; do
    allowed_files+=("$f")
    grep -q '^#!\[deny(unsafe_code)\]' "$f" || { echo "$f: no #![deny(unsafe_code)]"; bad=1; }
    if grep -n 'allow(unsafe_code)' "$f"; then
        echo "$f: allow(unsafe_code) outside the FFI files' declarations"
        bad=1
    fi
done
for e in "${exceptions[@]}"; do
    read -r parent module ffi <<<"$e"
    allowed_files+=("$parent" "$ffi")
    grep -q '^#!\[deny(unsafe_code)\]' "$parent" ||
        { echo "$parent: no #![deny(unsafe_code)]"; bad=1; }
    # The FFI modules this parent may allow unsafe code in (one or more).
    modules=$(for x in "${exceptions[@]}"; do
        read -r p m _ <<<"$x"
        if [ "$p" = "$parent" ]; then printf '%s|' "$m"; fi
    done)
    modules=${modules%|}
    # Each allow must sit right above `mod <module>;` (a comment may follow it).
    awk -v f="$parent" -v m="$modules" '
        /allow\(unsafe_code\)/ { pending = NR; next }
        pending && /^[ \t]*\/\// { next }
        pending {
            if ($0 !~ "^(pub )?mod (" m ");") {
                printf "%s:%d: allow(unsafe_code) on something other than mod %s\n", f, pending, m
                bad = 1
            }
            pending = 0
        }
        END { exit bad }
    ' "$parent" || bad=1
done
while IFS= read -r f; do
    for a in "${allowed_files[@]}"; do [ "$f" = "$a" ] && continue 2; done
    grep -q '^#!\[forbid(unsafe_code)\]' "$f" ||
        { echo "$f: no #![forbid(unsafe_code)]"; bad=1; }
    if grep -n 'allow(unsafe_code)' "$f"; then
        echo "$f: allow(unsafe_code) outside the FFI files' declarations"
        bad=1
    fi
done < <(find "$dir" -name '*.rs' | sort)

# An `unsafe` keyword in code (not in a comment or a string, roughly: the
# line's code part, before any //), then a SAFETY comment in the 3 lines above.
while IFS= read -r f; do
    awk -v f="$f" '
        { code = $0; sub(/\/\/.*/, "", code) }
        code ~ /(^|[^A-Za-z_])unsafe[ \t]*(\{|fn|impl|extern)/ {
            ok = 0
            for (i = 1; i <= 3; i++) if (prev[i] ~ /\/\/ SAFETY:/) ok = 1
            if ($0 ~ /\/\/ SAFETY:/) ok = 1
            if (!ok) { printf "%s:%d: unsafe without a // SAFETY: comment\n", f, NR; bad = 1 }
        }
        { prev[3] = prev[2]; prev[2] = prev[1]; prev[1] = $0 }
        END { exit bad }
    ' "$f" || bad=1
done < <(find "$dir" -name '*.rs' | sort
    # The on-demand part's crate is all FFI (its two C functions): only
    # the SAFETY comments are checked there.
    if [ "$dir" = src ]; then find parts/ondemand/src -name '*.rs' | sort; fi)

if [ "$bad" != 0 ]; then
    echo "unsafe_policy.sh: the unsafe-code policy is broken (see above)" >&2
    exit 1
fi
echo "unsafe policy ok: unsafe code only in src/pam.rs, src/caller.rs, src/delivery/spawn.rs, src/ondemand/load.rs, src/store/valkey/openssl.rs, src/self_service/pam_client.rs and src/self_service/hygiene.rs; forbid(unsafe_code) everywhere else; every unsafe block has SAFETY:"
