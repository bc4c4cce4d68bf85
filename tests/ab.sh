#!/usr/bin/env bash
# Two builds of the module against each other, paired and interleaved: the
# before/after figure of a change, decided from many pairs, not from medians
# of runs taken minutes apart (this machine's speed swings more than the
# changes being measured).
#
#   sudo bash tests/ab.sh A.so B.so [STEPS] [USERS] [PAIRS]
#                                    (defaults: 6 steps, 200 users, 6 pairs)
#
# Works on tmpfs in a private mount namespace, /dev/log a datagram sink
# there (as tests/bench.sh). Every login is a right code (tests/c/pambench.c):
# pam_start, pam_authenticate, pam_end. A user's code is good once a step,
# so each batch has its own state directory; in each 30 s step, PAIRS pairs
# of batches run back to back, A then B or B then A, the order alternating.
# The report: each build's median per login, the paired differences (B - A:
# median and quartiles, and how often B was faster) and page faults a login.
# Run it with A = B first: the differences then show the noise.
#
# Creates users tsbench0001..USERS (tests/c/mkbenchusers.sh; removed at
# the end).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n '2,20p' "$0" >&2; exit 2; }
a=$(realpath "$1") b=$(realpath "$2") steps=${3:-6} users=${4:-200} pairs=${5:-6}
if [ "${AB_INNER:-}" != 1 ]; then
    [ "$(id -u)" = 0 ] || { echo "ab.sh: needs root" >&2; exit 2; }
    exec 9>/tmp/twostep-bench.lock
    flock -n 9 || { echo "ab.sh: waiting for another benchmark to end" >&2; flock 9; }
    bash tests/c/mkbenchusers.sh "$users" >/dev/null
    trap 'bash tests/c/mkbenchusers.sh 0 >/dev/null' EXIT
    AB_INNER=1 unshare -m --propagation private bash "$0" "$a" "$b" "$steps" "$users" "$pairs"
    exit
fi
work=/tmp/twostep-ab
rm -rf "$work"
mkdir -p "$work"
mount -t tmpfs none "$work"
mkdir -p "$work"/{pam.d,secrets,olddev}
chmod 700 "$work" "$work/secrets"
touch "$work/secrets/.twostep-secret-dir"
mount --bind /dev "$work/olddev"
mount -t tmpfs none /dev
for n in null zero urandom random tty full; do
    touch "/dev/$n"
    mount --bind "$work/olddev/$n" "/dev/$n"
done
python3 -c '
import os, socket
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log"); os.chmod("/dev/log", 0o666)
while True: s.recv(65536)' &
sink=$!
trap 'kill $sink' EXIT
cc -O2 -Wall -Wextra -Werror -o "$work/pambench" tests/c/pambench.c -lpam
python3 tests/c/mkbenchsecrets.py "$work" "$users"
# Copies on the same tmpfs: where a build lies must not be the difference.
cp "$a" "$work/a.so"
cp "$b" "$work/b.so"
for s in a b; do
    for p in $(seq 0 "$pairs"); do
        mkdir -m 700 "$work/state-$s$p"
        printf 'secret_dir = "%s/secrets"\nstate_dir = "%s/state-%s%s"\n' "$work" "$work" "$s" "$p" > "$work/$s$p.toml"
        echo "auth required $work/$s.so config=$work/$s$p.toml" > "$work/pam.d/$s$p"
    done
done
# pambench exits non-zero when a login fails; the report says so.
run() { "$work/pambench" --confdir "$work/pam.d" --service "$1" --users "$work/users.txt" --iterations "$users" || true; }
# Warm-up: first logins make each user's state, in the same step.
while [ $(( $(date +%s) % 30 )) -gt 10 ]; do sleep 1; done
for s in a b; do for p in $(seq 0 "$pairs"); do run "$s$p" >/dev/null; done; done
for st in $(seq 1 "$steps"); do
    sleep $((30 - $(date +%s) % 30 + 1))
    for p in $(seq 1 "$pairs"); do
        if [ $(( (st + p) % 2 )) = 0 ]; then order="a b"; else order="b a"; fi
        for s in $order; do echo "step=$st pair=$p $(run "$s$p")"; done
    done
done > "$work/results"
python3 - "$work/results" "$1" "$2" <<'PY'
import re, statistics as st, sys
pairs = {}
for line in open(sys.argv[1]):
    m = re.match(r"step=(\d+) pair=(\d+) service=([ab])\d+ .*per_login_us=([\d.]+) ok=(\d+) fail=(\d+) faults=([\d.]+)", line)
    if m:
        pairs.setdefault((m[1], m[2]), {})[m[3]] = (float(m[4]), float(m[7]), int(m[6]))
full = [p for p in pairs.values() if len(p) == 2]
fails = sum(p[s][2] for p in full for s in p)
if not full or fails:
    sys.exit("ab.sh: %d complete pairs, %d failed logins: no figures" % (len(full), fails))
d = sorted(p["b"][0] - p["a"][0] for p in full)
n = len(d)
print("A %s: median %.1f us a login, %.1f page faults" % (sys.argv[2], st.median(p["a"][0] for p in full), st.median(p["a"][1] for p in full)))
print("B %s: median %.1f us a login, %.1f page faults" % (sys.argv[3], st.median(p["b"][0] for p in full), st.median(p["b"][1] for p in full)))
print("B - A, %d pairs, %s: median %+.1f us, quartiles %+.1f .. %+.1f; B faster in %d"
      % (n, "interleaved", st.median(d), d[n // 4], d[3 * n // 4], sum(x < 0 for x in d)))
PY
