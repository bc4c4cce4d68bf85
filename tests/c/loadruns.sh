#!/usr/bin/env bash
# loadbench (tests/c/loadbench.c) in several processes, one after another:
# each process is one draw of this machine's mood (the same builds' ratio
# moved by 0.1 between processes run minutes apart, 2026-12-03), so a
# figure is the median of the processes' own paired ratios, with their
# range.
#
#   bash tests/c/loadruns.sh LOADBENCH PROCESSES ROUNDS PER_ROUND NAME=PATH...
#
# Prints each process's table, then per library: the median per-load time
# and ratio to the first library over the processes, the ratios' range,
# and the page faults of one load.
set -euo pipefail
[ $# -ge 5 ] || { sed -n '2,12p' "$0" >&2; exit 2; }
loadbench=$1 processes=$2 rounds=$3 per=$4
shift 4
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for p in $(seq 1 "$processes"); do
    echo "process $p of $processes:"
    "$loadbench" "$rounds" "$per" "$@" | tee -a "$out"
done
python3 - "$out" "$processes" <<'PY'
import statistics as st, sys
rows = {}
order = []
for line in open(sys.argv[1]):
    f = line.split()
    if len(f) != 6 or f[0] == "library":
        continue
    if f[0] not in rows:
        order.append(f[0])
    rows.setdefault(f[0], []).append((float(f[1]), float(f[4]), float(f[5])))
print("over %s processes: median per load, ratio to the first (median, range), faults" % sys.argv[2])
for name in order:
    r = rows[name]
    ratios = [x[1] for x in r]
    print("  %-22s %7.1f us  %5.2f  (%.2f-%.2f)  %4.1f" % (
        name, st.median(x[0] for x in r), st.median(ratios), min(ratios), max(ratios),
        st.median(x[2] for x in r)))
PY
