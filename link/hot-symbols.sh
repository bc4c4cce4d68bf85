#!/usr/bin/env bash
# The functions a login runs, listed so that the linker puts them together.
#
#   sudo bash link/hot-symbols.sh           regenerate link/hot-symbols.txt
#   bash link/hot-symbols.sh --check        is the list still current, is SHA-1
#                                           free of its CPU probe, and is the PLT
#                                           before the code? (exit 1 if not)
#
# Why: sshd loads pam_twostep.so afresh for every login, and the kernel maps a
# shared object's code in 64 KiB windows around each page it touches. Left to
# itself, the linker scatters the ~170 KB a login runs across the whole 1 MB of
# code, so every login maps and unmaps nearly all of it (884 KB resident after
# one login, by /proc/self/smaps). build.rs hands this list to the linker
# (lld's --symbol-ordering-file), which puts these functions first and
# together; a login then touches four windows instead of fourteen, which saved
# about 15 us per login (a fifth of the module's own work; pambench on tmpfs).
#
# The list holds mangled names, which change with the toolchain and with a
# function's signature. A stale entry is ignored by the linker and costs only
# speed, never correctness. --check (run by tests/run-all.sh) fails when under
# 80% of the list is found in the release module: regenerate it then.
#
# Regenerating runs a few logins through the release module under valgrind's
# callgrind (the canonical stack's modes: preauth, a right code, wrong codes
# from an address and from the console, authfail), with every config key
# set (a minimal config too), and records every function of the module that ran.
# The module has one SHA-1 code path (.cargo/config.toml), so valgrind's CPU,
# which has no SHA extensions, runs the code that the real one does.
set -euo pipefail
cd "$(dirname "$0")/.."
list=link/hot-symbols.txt
module=${CARGO_TARGET_DIR:-target}/release/libpam_twostep.so

# The mangled names of the module's functions, one per line.
module_functions() {
    nm --defined-only "$module" | awk '$2 ~ /^[tT]$/ { print $3 }' | sort -u
}

if [ "${1:-}" = --check ]; then
    [ -f "$module" ] || sh link/release.sh --quiet
    total=$(grep -cv '^#' "$list")
    found=$(grep -v '^#' "$list" | sort -u | comm -12 - <(module_functions) | wc -l)
    echo "hot-symbols: $found of $total listed functions are in $module"
    # Every login runs SHA-1; its SHA-NI code would probe the CPU at every
    # module load (.cargo/config.toml says why that is slow and how it is off).
    if nm "$module" | grep -q 'sha1.*cpuid'; then
        echo "hot-symbols: $module probes the CPU for SHA-1 at each load:" >&2
        echo "was it built without .cargo/config.toml, or did the sha1 crate rename sha1_backend?" >&2
        exit 1
    fi
    # The PLT must sit before the code (build.rs, "The PLT beside .init"):
    # after it, every unload faults in one more window of code.
    section_at() { readelf -SW "$module" | awk -v n="$1" '{ for (i = 1; i < NF; i++) if ($i == n) print $(i + 2) }'; }
    plt=$(section_at .plt) text=$(section_at .text)
    if [ -n "$plt" ] && [ $((16#$plt)) -gt $((16#$text)) ]; then
        echo "hot-symbols: $module has its PLT after its code: was build.rs's linker script refused?" >&2
        exit 1
    fi
    if [ $((found * 100)) -lt $((total * 80)) ]; then
        echo "hot-symbols: the list is stale (toolchain or code changed), or the module was" >&2
        echo "not built by link/release.sh: sudo bash $0" >&2
        exit 1
    fi
    exit 0
fi

[ "$(id -u)" = 0 ] || { echo "hot-symbols.sh: needs root (root-owned secret files): sudo bash $0" >&2; exit 2; }
for c in valgrind oathtool cc python3; do
    command -v "$c" >/dev/null || { echo "hot-symbols.sh: needs $c" >&2; exit 2; }
done
sh link/release.sh --quiet

work=$(mktemp -d /tmp/twostep-hot.XXXXXX)
trap 'kill "${sink:-}" 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$work"/{pam.d,secrets,cg}
chmod 700 "$work/secrets"
secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP
printf 'secret = "%s"\n' "$secret" > "$work/secrets/root"
chmod 600 "$work/secrets/root"
touch "$work/secrets/.twostep-secret-dir"   # as the package makes it

# Two configs, each with its own state: "minimal" sets only the paths (the
# shipped file sets nothing); "full" sets every key, so that parsing each kind
# of value is on the list: the shipped sample with its keys uncommented, and
# lists that are not empty.
python3 - conf/twostep.toml "$work" <<'EOF'
import re, sys
sample, work = open(sys.argv[1]).read(), sys.argv[2]
paths = {
    "secret_dir": '"%s/secrets"' % work,
    "state_dir": '"%s/state-%%s"' % work,
    "socket": '"%s/log"' % work,
}
values = dict(paths, **{
    "unenrolled": '"enroll"',
    "enroll_until": '"2999-01-01T00:00:00Z"',
    "require_groups": '["root"]',
    "exempt_groups": '["nogroup"]',
    "always_challenge_groups": '["root"]',
    "trusted_networks": '["192.0.2.0/24", "2001:db8::/32"]',
    "remember": '"1h"',
})
for name, keys, every in (("minimal", paths, False), ("full", values, True)):
    with open("%s/%s.toml" % (work, name), "w") as out:
        for line in sample.splitlines():
            m = re.match(r"# ([a-z_]+) = (.*)$", line)
            if m and (every or m.group(1) in keys):
                line = "%s = %s" % (m.group(1), keys.get(m.group(1), m.group(2)))
                if m.group(1) == "state_dir":
                    line = line % name
            print(line, file=out)
EOF
# A syslog sink, so that records take the path they take in production.
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
while True: s.recv(65536)
' "$work/log" &
sink=$!
so=$(realpath "$module")
for config in minimal full; do
    mkdir -m 700 "$work/state-$config"
    for mode in preauth "" authfail; do
        echo "auth required $so $mode config=$work/$config.toml" > "$work/pam.d/$config${mode:+-$mode}"
    done
done
cc -O2 -Wall -Wextra -Werror -o "$work/pamdrive" tests/c/pamdrive.c -lpam
sleep 0.3

login() { # service answer [pamdrive arguments]
    printf '%s\n' "$2" | valgrind -q --tool=callgrind --demangle=no \
        --callgrind-out-file="$work/cg/${tag:-$1}.$RANDOM" \
        "$work/pamdrive" --confdir "$work/pam.d" --service "$1" --user root --nodelay "${@:3}" >/dev/null
}
fail() { echo "hot-symbols.sh: $*" >&2; exit 1; }
for config in minimal full; do
    # Keep clear of a step boundary: the right code must still be right when
    # the module checks it, seconds later under valgrind.
    while [ $(( $(date +%s) % 30 )) -gt 15 ]; do sleep 1; done
    # Each must end as shown, or the list would describe some other path.
    login "$config-preauth" "" --rhost 198.51.100.7 || fail "$config: preauth denied"
    # The right code, from an address (ssh) and from the console (su,
    # login), each in a step of its own: the most common login, whose
    # functions go first (tag "right").
    [ "$config" = minimal ] && tag=right
    login "$config" "$(oathtool --totp -b "$secret")" --rhost 198.51.100.7 ||
        fail "$config: the right code was refused"
    s=$(date +%s)
    sleep $((30 - s % 30 + 1))
    login "$config" "$(oathtool --totp -b "$secret")" ||
        fail "$config: the right code was refused from the console"
    tag=
    ! login "$config" 000000 --rhost 2001:db8:1::7 || fail "$config: a wrong code passed"
    ! login "$config" 000000 || fail "$config: a wrong code passed"
    # authfail always denies: it runs only after the password module failed.
    ! login "$config-authfail" "" --rhost 198.51.100.7 || fail "$config: authfail passed"
done

{
    echo "# Functions a login runs in pam_twostep.so, for the linker (build.rs)."
    echo "# Generated by link/hot-symbols.sh; regenerate rather than edit."
    python3 - "$work"/cg/* <<'EOF'
import os, re, sys
# The functions of a right code with the minimal config come first (the
# most common login: the kernel maps the code in 64 KiB windows, and each
# window costs a page fault at the login and its unmapping at pam_end), then
# the rest of the logins with the minimal config, then those that only the
# full config ran. A login with few keys set (the usual case) then touches
# the front of the hot code only.
ran = {"right": set(), "minimal": set(), "full": set()}
for path in sys.argv[1:]:
    kind = os.path.basename(path).split("-")[0].split(".")[0]
    objects, names, current = {}, {}, None
    for line in open(path, errors="replace"):
        m = re.match(r"(c?)ob=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
        if m:
            if m.group(3):
                objects[m.group(2)] = m.group(3)
            if not m.group(1):
                current = objects.get(m.group(2), "")
            continue
        m = re.match(r"(c?)fn=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
        if m:
            if m.group(3):
                names[m.group(2)] = m.group(3)
            if not m.group(1) and current.endswith("libpam_twostep.so"):
                # callgrind marks recursion depth as name'N
                ran[kind].add(re.sub(r"'\d+$", "", names[m.group(2)]))
# The C runtime's functions of every shared object: frame_dummy runs at
# each load, __do_global_dtors_aux at each unload, with the right code.
crt = {"frame_dummy", "register_tm_clones", "deregister_tm_clones", "__do_global_dtors_aux"}
for name in sorted(ran["right"] | crt):
    print(name)
for name in sorted(ran["minimal"] - ran["right"]):
    print(name)
for name in sorted(ran["full"] - ran["minimal"] - ran["right"]):
    print(name)
EOF
} | awk '!/^#/ && seen[$0]++ { next } { print }' > "$work/list"
# Only names the module defines (callgrind also reports PLT stubs).
# (grep -Fx keeps the list's order, which is the linker's order.)
{ grep '^#' "$work/list"; grep -v '^#' "$work/list" | grep -Fxf <(module_functions); } > "$list"
echo "hot-symbols: $(grep -cv '^#' "$list") functions written to $list"
