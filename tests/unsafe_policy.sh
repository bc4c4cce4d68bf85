#!/usr/bin/env bash
# The unsafe-code policy (STYLE.md, SECURITY.md), checked on every run:
# - every file under src/ starts its pure module with #![forbid(unsafe_code)],
#   except src/pam.rs (the FFI boundary) and src/lib.rs, which has
#   #![deny(unsafe_code)] and allows it for `pam` alone;
# - every `unsafe` block, fn or impl under src/ has a `// SAFETY:` comment on
#   one of the three lines above it.
#   bash tests/unsafe_policy.sh [DIR]     (DIR defaults to src)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-src}
bad=0

grep -q '^#!\[deny(unsafe_code)\]' "$dir/lib.rs" ||
    { echo "$dir/lib.rs: no #![deny(unsafe_code)]"; bad=1; }
while IFS= read -r f; do
    case "$f" in "$dir/pam.rs" | "$dir/lib.rs") continue ;; esac
    grep -q '^#!\[forbid(unsafe_code)\]' "$f" ||
        { echo "$f: no #![forbid(unsafe_code)]"; bad=1; }
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
done < <(find "$dir" -name '*.rs' | sort)

if [ "$bad" != 0 ]; then
    echo "unsafe_policy.sh: the unsafe-code policy is broken (see above)" >&2
    exit 1
fi
echo "unsafe policy ok: forbid(unsafe_code) in every pure module; every unsafe block has SAFETY:"
