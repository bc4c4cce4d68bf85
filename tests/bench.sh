#!/usr/bin/env bash
# The module's cost per login, measured through libpam inside one process,
# against pam_permit (the floor, subtracted) and Debian's
# pam_google_authenticator.so on the same workload in the same run.
#
#   sudo bash tests/bench.sh [USERS] [ROUNDS]      (default 1000 users, 3 rounds)
#   sudo TWOSTEP_BENCH_FS=ext4 bash tests/bench.sh   (on a fresh default ext4)
#   sudo TWOSTEP_BENCH_FS=tmpfs bash tests/bench.sh  (on tmpfs: no flush cost)
#
# Where the files are (TWOSTEP_BENCH_FS):
#   unset   /tmp, on whatever file system it is on this machine;
#   ext4    a new ext4 as mkfs.ext4 makes it by default (with a journal, as
#           Debian installs it), on a loop device over /var/tmp with direct
#           I/O, so that its writes and flushes reach the disk beneath;
#   tmpfs   tmpfs, where a flush costs nothing: each module's own work
#           without its disk writes (TWOSTEP_BENCH_TMPFS=1 says the same).
#
#   TWOSTEP_BENCH_STORE=1
#           also measures twostep with its state in a private redis-server
#           on a unix socket ([store]), in the same rounds as the file
#           backend; then simulates a fleet: 1, 4, 16 and 64 "hosts"
#           (pambench processes) logging USERS users in at once against
#           that one server, and reports logins per second and the p50 and
#           p99 of a login's time as the host count grows.
#   TWOSTEP_BENCH_SENTINEL=1
#           also measures twostep with its store reached through Sentinel:
#           a private primary, two replicas and three redis-sentinel
#           processes (quorum 2) on free loopback ports; the services
#           "direct" (store.url = "redis://" straight to that primary) and
#           "sentinel" (store.url = "redis+sentinel://" naming the three
#           sentinels) take turns in the same rounds, then the same fleet
#           as TWOSTEP_BENCH_STORE (1, 4, 16 and 64 hosts) through each,
#           in the same time step: the cost of Sentinel, before and after.
#   TWOSTEP_BENCH_EMAIL=1
#           also measures what a code sent by email adds to a code attempt:
#           the same users as email users (method = "email", the real
#           /usr/sbin/sendmail, exim4, delivering to one local mailbox),
#           against app users, both answering a wrong code (the code sent
#           cannot be read back at this pace), so that only the send differs.
#   TWOSTEP_BENCH_SINGLE=1
#           also measures whole logins with the password, in the same
#           rounds: the canonical stack (preauth, pam_unix, authfail, the
#           code step: two prompts) against one answer (preauth single,
#           pam_unix use_first_pass, authfail, the code step: the password
#           and the code together). The users get a password hashed with
#           1,000 rounds of sha512crypt, the same for both, so that
#           pam_unix's share is small and equal and the module's shows.
#           With TWOSTEP_BENCH_BASELINE, that build's canonical stack too.
#   TWOSTEP_BENCH_NEW_SOURCE=1
#           also measures twostep with notify.events = ["new_source"] (its
#           own state directory), every login from one address (PAM_RHOST,
#           given to every service then): after the warm-up, each login is
#           from a known source, which costs one more state write.
#   TWOSTEP_BENCH_DEVICES=1
#           also measures users with 8 authenticators (the most a secret
#           file holds), each logging in with a code of the last one, in the
#           same rounds as the one-authenticator users (service twostep),
#           their own state directory, the two taking turns at going first.
#   TWOSTEP_BENCH_MEM=1
#           also measures twostep with its config, secrets and state on a
#           tmpfs of their own (service "mem"), in the same rounds as the
#           files where TWOSTEP_BENCH_FS put them, the two taking turns at
#           going first: with TWOSTEP_BENCH_FS=ext4, twostep less mem is
#           what the disk adds to a login, set against the durable-write
#           floor of the same rounds.
#   TWOSTEP_BENCH_PERF=FILE
#           after the rounds, records one more step of twostep's logins with
#           `perf record -g` into FILE (needs the perf package).
#   TWOSTEP_BENCH_BASELINE=/path/to/an/older/libpam_twostep.so
#           also measures that build of the module in the same run (its own
#           state directory), for before/after figures of a change; with
#           TWOSTEP_BENCH_EMAIL=1, its app and email users' wrong codes too.
#
# Each round runs, back to back in one 30 s time step: USERS logins through
# pam_permit, USERS through google-authenticator, USERS through pam_twostep,
# each a full pam_start / pam_authenticate / pam_end with a right code
# (tests/c/pambench.c). Every user logs in once per round, because both
# modules refuse a code's step a second time; rounds therefore wait for the
# next step. A warm-up round first creates every user's state, so that the
# figures are the steady state of an installed system, not first logins.
#
# Both modules do the work an administrator would enable: google-authenticator
# with DISALLOW_REUSE and RATE_LIMIT (its replay and brute-force guards, one
# fsync'd file rewrite per login), twostep with its defaults (replay step and
# lockout in the state file, one fdatasync per login). Both log one record to
# /dev/log, which is a datagram sink in a private mount namespace so that the
# machine's syslog is neither needed nor flooded.
#
# Creates users tsbench0001..N (removed at the end) and works in /tmp.
set -euo pipefail
cd "$(dirname "$0")/.."
users=${1:-1000}
rounds=${2:-3}
here=$(pwd)

if [ "${TWOSTEP_BENCH_INNER:-}" != 1 ]; then
    [ "$(id -u)" = 0 ] || { echo "bench.sh: needs root" >&2; exit 2; }
    # One run at a time on a machine: the work directory and the tsbench
    # users are shared, and a second run would remove them under the first.
    # The lock is held (fd 9, inherited) until this run ends.
    exec 9>/tmp/twostep-bench.lock
    flock -n 9 || { echo "bench.sh: waiting for another run to end" >&2; flock 9; }
    bash packages.sh bench
    # With email users, the module looks for its on-demand part beside it
    # (the part starts sendmail). Only then: the path is compiled in, and
    # another value rebuilds the module.
    if [ "${TWOSTEP_BENCH_EMAIL:-}" = 1 ]; then
        export TWOSTEP_ONDEMAND_PATH=$here/target/release/libtwostep_ondemand.so
    fi
    sh link/release.sh --quiet
    bash tests/c/mkbenchusers.sh "$users"
    trap 'bash tests/c/mkbenchusers.sh 0' EXIT
    [ "${TWOSTEP_BENCH_TMPFS:-}" = 1 ] && export TWOSTEP_BENCH_FS=tmpfs
    if [ "${TWOSTEP_BENCH_FS:-}" = ext4 ]; then
        command -v mkfs.ext4 >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq e2fsprogs >/dev/null
        image=/var/tmp/twostep-bench-ext4.img
        rm -f "$image"
        truncate -s 1G "$image"
        mkfs.ext4 -q -F "$image"
        TWOSTEP_BENCH_DEV=$(losetup --direct-io=on --find --show "$image")
        export TWOSTEP_BENCH_DEV
        trap 'losetup -d "$TWOSTEP_BENCH_DEV"; rm -f "$image"; bash tests/c/mkbenchusers.sh 0' EXIT
        [ "$(losetup --noheadings --output DIO "$TWOSTEP_BENCH_DEV" | tr -d ' ')" = 1 ] || {
            echo "bench.sh: $TWOSTEP_BENCH_DEV has no direct I/O: its flushes would not reach the disk" >&2
            exit 1
        }
    fi
    # A private mount namespace: /dev/log there is our sink.
    TWOSTEP_BENCH_INNER=1 unshare -m --propagation private bash "$0" "$users" "$rounds"
    exit
fi

work=/tmp/twostep-bench
rm -rf "$work"
mkdir -p "$work"
case "${TWOSTEP_BENCH_FS:-}" in
tmpfs) mount -t tmpfs none "$work" ;;
ext4) mount "$TWOSTEP_BENCH_DEV" "$work" && rm -rf "${work:?}/lost+found" ;;
'') ;;
*) echo "bench.sh: TWOSTEP_BENCH_FS is ext4, tmpfs or unset" >&2; exit 2 ;;
esac
# What the figures are about: an ext4 with or without a journal flushes
# differently (docs/performance.md). Read now, while /dev is the real one.
fs=$(findmnt -n -o FSTYPE -T "$work")
if [ "${fs#ext}" != "$fs" ]; then
    if dumpe2fs -h "$(findmnt -n -o SOURCE -T "$work")" 2>/dev/null | grep -q has_journal; then
        fs="$fs,journal"
    else
        fs="$fs,no-journal"
    fi
fi
mkdir -p "$work"/{pam.d,ga,secrets,state,state-baseline,olddev}
chmod 700 "$work" "$work"/{ga,secrets,state,state-baseline}
# As the package makes it: this is the real secret directory.
touch "$work/secrets/.twostep-secret-dir"

# /dev/log as a sink, in this namespace only.
mount --bind /dev "$work/olddev"
mount -t tmpfs none /dev
for n in null zero urandom random tty full; do
    touch "/dev/$n"
    mount --bind "$work/olddev/$n" "/dev/$n"
done
python3 - "$work" <<'EOF' &
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log"); os.chmod("/dev/log", 0o666)
n = 0
while True:
    s.recv(65536); n += 1
    if n % 500 == 0:
        open(sys.argv[1] + "/records", "w").write(str(n))
EOF
sink=$!
trap 'kill $sink 2>/dev/null' EXIT
sleep 0.3

module=$here/target/release/libpam_twostep.so
cat > "$work/twostep.toml" <<EOF
secret_dir = "$work/secrets"
state_dir = "$work/state"
EOF
echo "auth required pam_permit.so" > "$work/pam.d/permit"
echo "auth required pam_google_authenticator.so secret=$work/ga/\${USER} user=root" > "$work/pam.d/ga"
echo "auth required $module config=$work/twostep.toml" > "$work/pam.d/twostep"
echo "auth required pam_deny.so" > "$work/pam.d/other"
services=(permit ga twostep)
if [ "${TWOSTEP_BENCH_STORE:-}" = 1 ]; then
    mkdir -p "$work/redis" "$work/state-store"
    chmod 700 "$work/redis" "$work/state-store"
    redis-server --port 0 --unixsocket "$work/redis/redis.sock" --unixsocketperm 700 \
        --save '' --appendonly no --dir "$work/redis" --maxclients 10000 \
        >"$work/redis/log" 2>&1 &
    redis_pid=$!
    trap 'kill $sink $redis_pid 2>/dev/null' EXIT
    for _ in $(seq 1 100); do [ -S "$work/redis/redis.sock" ] && break; sleep 0.05; done
    cat > "$work/store.toml" <<EOF
secret_dir = "$work/secrets"
state_dir = "$work/state-store"
[store]
url = "unix://$work/redis/redis.sock"
prefix = "twostep:bench:"
timeout = "5s"
EOF
    echo "auth required $module config=$work/store.toml" > "$work/pam.d/store"
    services+=(store)
fi
sentinel_pids=()
if [ "${TWOSTEP_BENCH_SENTINEL:-}" = 1 ]; then
    # Free loopback ports: bound by the kernel's choice, then let go.
    free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
    sdir=$work/sentinel
    mkdir -p "$sdir" "$work/state-direct" "$work/state-sentinel"
    chmod 700 "$sdir" "$work/state-direct" "$work/state-sentinel"
    ports=()
    for i in 0 1 2; do
        ports+=("$(free_port)")
        replicaof=()
        [ "$i" != 0 ] && replicaof=(--replicaof 127.0.0.1 "${ports[0]}")
        redis-server --bind 127.0.0.1 --port "${ports[$i]}" --save '' --appendonly no \
            --repl-diskless-sync-delay 0 --dir "$sdir" --dbfilename "dump-$i.rdb" \
            --maxclients 10000 --logfile "$sdir/server-$i.log" ${replicaof[@]+"${replicaof[@]}"} &
        sentinel_pids+=($!)
    done
    for _ in $(seq 1 200); do
        redis-cli -p "${ports[0]}" info replication 2>/dev/null | grep -q '^connected_slaves:2' && break
        sleep 0.05
    done
    # down-after 5 s: a primary busy with 64 hosts is never taken for dead
    # (the run checks at its end that no failover happened).
    sentinel_ports=()
    for i in 0 1 2; do
        sentinel_ports+=("$(free_port)")
        cat > "$sdir/sentinel-$i.conf" <<EOF
port ${sentinel_ports[$i]}
bind 127.0.0.1
dir $sdir
logfile $sdir/sentinel-$i.log
sentinel monitor bench 127.0.0.1 ${ports[0]} 2
sentinel down-after-milliseconds bench 5000
sentinel failover-timeout bench 10000
EOF
        redis-sentinel "$sdir/sentinel-$i.conf" &
        sentinel_pids+=($!)
    done
    trap 'kill $sink ${redis_pid:-} ${sentinel_pids[*]} 2>/dev/null' EXIT
    for p in "${sentinel_ports[@]}"; do
        for _ in $(seq 1 200); do
            redis-cli -p "$p" sentinel get-master-addr-by-name bench 2>/dev/null | grep -qx "${ports[0]}" && break
            sleep 0.05
        done
    done
    urls=$(printf '127.0.0.1:%s,' "${sentinel_ports[@]}")
    for kind in direct sentinel; do
        url="redis://127.0.0.1:${ports[0]}"
        [ "$kind" = sentinel ] && url="redis+sentinel://${urls%,}/bench"
        cat > "$work/$kind.toml" <<EOF
secret_dir = "$work/secrets"
state_dir = "$work/state-$kind"
[store]
url = "$url"
prefix = "twostep:$kind:"
timeout = "5s"
EOF
        echo "auth required $module config=$work/$kind.toml" > "$work/pam.d/$kind"
    done
    services+=(direct sentinel)
fi
bench_password="bench pass 1"
if [ "${TWOSTEP_BENCH_SINGLE:-}" = 1 ]; then
    # Each stack its own state: a step accepted in one is no replay in another.
    stacks=(stack single)
    [ -n "${TWOSTEP_BENCH_BASELINE:-}" ] && stacks+=(base-stack)
    for kind in "${stacks[@]}"; do
        mkdir -p "$work/state-$kind"
        chmod 700 "$work/state-$kind"
        sed "s|/state\"|/state-$kind\"|" "$work/twostep.toml" > "$work/$kind.toml"
        m=$module
        [ "$kind" = base-stack ] && m=$TWOSTEP_BENCH_BASELINE
        first="preauth" unix="pam_unix.so nodelay"
        [ "$kind" = single ] && first="preauth single" unix="pam_unix.so nodelay use_first_pass"
        cat > "$work/pam.d/$kind" <<EOF
auth requisite $m config=$work/$kind.toml $first
auth [success=1 default=ignore] $unix
auth [default=die] $m config=$work/$kind.toml authfail
auth required $m config=$work/$kind.toml
EOF
    done
    services+=("${stacks[@]}")
fi
rhost=()
if [ "${TWOSTEP_BENCH_NEW_SOURCE:-}" = 1 ]; then
    mkdir -p "$work/state-ns"
    chmod 700 "$work/state-ns"
    cat > "$work/new-source.toml" <<EOF
secret_dir = "$work/secrets"
state_dir = "$work/state-ns"
[email]
sendmail = "/bin/true"
address = "{user}@localhost"
[notify]
events = ["new_source"]
EOF
    echo "auth required $module config=$work/new-source.toml" > "$work/pam.d/new-source"
    services+=(new-source)
    rhost=(--rhost 192.0.2.1)
fi
if [ "${TWOSTEP_BENCH_DEVICES:-}" = 1 ]; then
    mkdir -p "$work/secrets-8" "$work/state-8"
    chmod 700 "$work/secrets-8" "$work/state-8"
    touch "$work/secrets-8/.twostep-secret-dir"
    cat > "$work/devices8.toml" <<EOF
secret_dir = "$work/secrets-8"
state_dir = "$work/state-8"
EOF
    echo "auth required $module config=$work/devices8.toml" > "$work/pam.d/devices8"
    services+=(devices8)
fi
if [ "${TWOSTEP_BENCH_MEM:-}" = 1 ]; then
    mkdir -p "$work/mem"
    mount -t tmpfs -o mode=700 none "$work/mem"
    mkdir -m 700 "$work/mem/secrets" "$work/mem/state"
    touch "$work/mem/secrets/.twostep-secret-dir"
    printf 'secret_dir = "%s/mem/secrets"\nstate_dir = "%s/mem/state"\n' "$work" "$work" > "$work/mem/twostep.toml"
    echo "auth required $module config=$work/mem/twostep.toml" > "$work/pam.d/mem"
    services+=(mem)
fi
if [ -n "${TWOSTEP_BENCH_BASELINE:-}" ]; then
    sed "s|/state\"|/state-baseline\"|" "$work/twostep.toml" > "$work/baseline.toml"
    echo "auth required $TWOSTEP_BENCH_BASELINE config=$work/baseline.toml" > "$work/pam.d/baseline"
    services+=(baseline)
fi

# The same secret for every module, per user.
python3 tests/c/mkbenchsecrets.py "$work" "$users"
# The same files, on tmpfs (cp -a: root's, mode 0600, as written).
[ "${TWOSTEP_BENCH_MEM:-}" = 1 ] && cp -a "$work/secrets/." "$work/mem/secrets/"

if [ "${TWOSTEP_BENCH_SINGLE:-}" = 1 ]; then
    cut -f1 "$work/users.txt" | sed "s/\$/:$bench_password/" | chpasswd -c SHA512 -s 1000
fi

cc -O2 -Wall -Wextra -Werror -o "$work/pambench" tests/c/pambench.c -lpam
bench() {
    # What a service's logins type besides the codes.
    local extra=()
    case "$1" in
    permit) extra=(--answer x) ;;
    stack | base-stack) extra=(--password "$bench_password") ;;
    single) extra=(--prefix "$bench_password") ;;
    esac
    "$work/pambench" --confdir "$work/pam.d" --service "$1" --users "$work/users.txt" --iterations "$users" "${extra[@]}" ${rhost[@]+"${rhost[@]}"} "${@:2}"
}
next_step() { # sleep into the first seconds of the next 30 s step
    local s; s=$(date +%s); sleep $((30 - s % 30 + 1))
}

# swap_in_order A B: services A and B trade places in this round's order.
swap_in_order() {
    local i
    for i in "${!order[@]}"; do
        case "${order[$i]}" in
        "$1") order[i]=$2 ;;
        "$2") order[i]=$1 ;;
        esac
    done
}
cc -O2 -o "$work/flushfloor" tests/c/flushfloor.c
echo "warm-up: creating every user's state (first logins)"
for s in "${services[@]:1}"; do bench "$s" >/dev/null || true; done

echo "users=$users rounds=$rounds kernel=$(uname -r) fs=$fs"
results=$work/results
: > "$results"
for r in $(seq 1 "$rounds"); do
    next_step
    order=("${services[@]}")
    # With a baseline, the two builds take turns at going first: the module
    # measured right after google-authenticator pays for what it left
    # behind (about 20 us here, measured with the same build twice).
    if [ -n "${TWOSTEP_BENCH_BASELINE:-}" ] && [ $((r % 2)) = 0 ]; then
        # baseline is the last service: it goes before the others this round.
        last=$((${#services[@]} - 1))
        order=(permit ga baseline "${services[@]:2:$((last - 2))}")
    fi
    # One answer and two prompts take turns at going first, for the same
    # reason.
    [ "${TWOSTEP_BENCH_SINGLE:-}" = 1 ] && [ $((r % 2)) = 0 ] && swap_in_order stack single
    # Eight authenticators and one take turns at going first.
    [ "${TWOSTEP_BENCH_DEVICES:-}" = 1 ] && [ $((r % 2)) = 0 ] && swap_in_order twostep devices8
    # The files on disk and on tmpfs take turns at going first.
    [ "${TWOSTEP_BENCH_MEM:-}" = 1 ] && [ $((r % 2)) = 1 ] && swap_in_order twostep mem
    # Direct and through Sentinel take turns at going first.
    [ "${TWOSTEP_BENCH_SENTINEL:-}" = 1 ] && [ $((r % 2)) = 0 ] && swap_in_order direct sentinel
    for s in "${order[@]}"; do
        line=$(bench "$s") || { echo "round $r $s: not every login succeeded: $line" >&2; exit 1; }
        echo "round $r: $line"
        echo "$line" >> "$results"
    done
    # The durable-write floor, in the same round and directory.
    line=$("$work/flushfloor" "$work/state" "$users")
    echo "round $r: $line"
    echo "$line" >> "$results"
done

if [ -n "${TWOSTEP_BENCH_PERF:-}" ]; then
    # Where a login's time goes: one more step of twostep's logins, sampled
    # (perf report -i FILE --no-children --sort dso,symbol).
    next_step
    perf record -q -F 20000 -g -o "$TWOSTEP_BENCH_PERF" -- "$work/pambench" --confdir "$work/pam.d" \
        --service twostep --users "$work/users.txt" --iterations "$users" >/dev/null
fi

# What loading costs a PAM host, whatever the login then does: libpam loads
# the module at every pam_start and unloads it at pam_end. The same paired,
# rotating rounds (tests/c/loadbench.c), against google-authenticator's and
# an empty library; with the size and the work the dynamic linker has.
cc -O2 -o "$work/loadbench" tests/c/loadbench.c -Wl,--no-as-needed -lpam -ldl
echo 'int twostep_bench_empty(void) { return 0; }' > "$work/empty.c"
cc -shared -fPIC -O2 -o "$work/libempty.so" "$work/empty.c"
ga_so=$(find /lib /usr/lib -name pam_google_authenticator.so 2>/dev/null | head -1)
part=$here/target/release/libtwostep_ondemand.so
loads=(ga="$ga_so" empty="$work/libempty.so" twostep="$module" part="$part")
[ -n "${TWOSTEP_BENCH_BASELINE:-}" ] && loads+=(baseline="$TWOSTEP_BENCH_BASELINE")
echo "loading: dlopen(RTLD_NOW)+dlclose, libpam resident, 3 processes of 5 rounds of 300; ratio paired by round"
bash "$here/tests/c/loadruns.sh" "$work/loadbench" 3 5 300 "${loads[@]}"
printf '%-10s %10s %10s %12s %s\n' library bytes undefined relocations needed
for l in "${loads[@]}"; do
    f=${l#*=}
    printf '%-10s %10s %10s %12s %s\n' "${l%%=*}" "$(stat -c %s "$f")" \
        "$(nm -D --undefined-only "$f" | wc -l)" "$(readelf -r "$f" | grep -c R_X86_64)" \
        "$(readelf -d "$f" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p' | tr '\n' ' ')"
done

python3 - "$results" <<'EOF'
import re, statistics, sys
per, faults = {}, {}
for line in open(sys.argv[1]):
    f = dict(kv.split("=") for kv in line.split())
    per.setdefault(f["service"], []).append(float(f["per_login_us"]))
    if "faults" in f:
        faults.setdefault(f["service"], []).append(float(f["faults"]))
floor = statistics.median(per["permit"])
ga = statistics.median(per["ga"]) - floor
ts = statistics.median(per["twostep"]) - floor
print()
print("median per successful login, pam_permit's %.0f us subtracted:" % floor)
print("  google-authenticator  %7.0f us" % ga)
print("  twostep               %7.0f us  (%.0f%% of google-authenticator)" % (ts, 100 * ts / ga))
# Page faults a login (loading, running and unloading the module; the
# kernel maps code 64 KiB at a time): on a VM each costs microseconds.
print("  page faults a login:  " + ", ".join(
    "%s %.1f" % (s, statistics.median(v)) for s, v in faults.items() if s != "floor"))
if "floor" in per:
    fl = statistics.median(per["floor"])
    paired = [t - p for t, p in zip(per["twostep"], per["permit"])]
    ratios = ["%.2f" % (x / f) for x, f in zip(paired, per["floor"])]
    print("  durable-write floor   %7.0f us  (one pwrite of 1 KiB + fdatasync of a per-user file, no PAM)" % fl)
    print("  twostep / floor       %7.2f     (per round: %s)" % (ts / fl, " ".join(ratios)))
if "mem" in per:
    mem = statistics.median(per["mem"]) - floor
    print("  twostep, files on tmpfs %5.0f us  (%.0f%% of google-authenticator)" % (mem, 100 * mem / ga))
    if "floor" in per:
        adds = [t - m for t, m in zip(per["twostep"], per["mem"])]
        print("  what the disk adds    %7.0f us  (twostep - the same on tmpfs: %.2fx the floor; per round: %s)"
              % (statistics.median(adds), statistics.median(a / f for a, f in zip(adds, per["floor"])),
                 " ".join("%.2f" % (a / f) for a, f in zip(adds, per["floor"]))))
if "store" in per:
    st = statistics.median(per["store"]) - floor
    print("  twostep, shared store  %7.0f us  (%.0f%% of google-authenticator; a redis-server on a unix socket)" % (st, 100 * st / ga))
if "sentinel" in per:
    d = statistics.median(per["direct"]) - floor
    se = statistics.median(per["sentinel"]) - floor
    rounds = ["%+.0f" % (b - a) for a, b in zip(per["direct"], per["sentinel"])]
    print("  twostep, store direct %7.0f us  (redis:// to the primary over loopback TCP)" % d)
    print("  twostep, via Sentinel %7.0f us  (redis+sentinel://, three sentinels: %+.0f us; per round: %s us)"
          % (se, se - d, " ".join(rounds)))
if "new-source" in per:
    ns = statistics.median(per["new-source"]) - floor
    print("  twostep, new_source   %7.0f us  (%.0f%% of google-authenticator; %+.0f us over twostep)"
          % (ns, 100 * ns / ga, ns - ts))
if "single" in per:
    two = statistics.median(per["stack"]) - floor
    one = statistics.median(per["single"]) - floor
    print("whole logins with the password (pam_unix, sha512crypt with 1,000 rounds):")
    print("  two prompts (preauth, pam_unix, authfail, code)       %7.0f us" % two)
    print("  one answer (preauth single, pam_unix use_first_pass)  %7.0f us  (%+.0f us, %.0f%% of two prompts)"
          % (one, one - two, 100 * one / two))
    if "base-stack" in per:
        base = statistics.median(per["base-stack"]) - floor
        print("  baseline build, two prompts                           %7.0f us  (this build %+.0f us)"
              % (base, two - base))
if "devices8" in per:
    d8 = statistics.median(per["devices8"]) - floor
    rounds = ["%+.0f" % (b - a) for a, b in zip(per["twostep"], per["devices8"])]
    print("  twostep, 8 authenticators, the 8th's code  %7.0f us  (%.2fx one authenticator; per round: %s us)"
          % (d8, d8 / ts, " ".join(rounds)))
if "baseline" in per:
    base = statistics.median(per["baseline"]) - floor
    print("  baseline twostep      %7.0f us  (%.0f%% of google-authenticator; this build %+.0f us)"
          % (base, 100 * base / ga, ts - base))
EOF
# fleet SERVICE HOSTS: HOSTS pambench processes log the users in at once
# through SERVICE, each its share of them; one line of figures.
fleet() {
    local service=$1 hosts=$2 per off n h pids=() failed=0 start end
    per=$(( (users + hosts - 1) / hosts ))
    rm -f "$work"/lat.*
    start=$(date +%s.%N)
    for h in $(seq 0 $((hosts - 1))); do
        off=$((h * per))
        [ "$off" -ge "$users" ] && break
        n=$(( users - off < per ? users - off : per ))
        "$work/pambench" --confdir "$work/pam.d" --service "$service" --users "$work/users.txt" \
            --iterations "$n" --offset "$off" --latencies "$work/lat.$h" >/dev/null &
        pids+=($!)
    done
    for job in "${pids[@]}"; do wait "$job" || failed=1; done
    end=$(date +%s.%N)
    python3 - "$service" "$hosts" "$start" "$end" "$failed" "$work"/lat.* <<'EOF2'
import sys
service, hosts = sys.argv[1], int(sys.argv[2])
start, end, failed = float(sys.argv[3]), float(sys.argv[4]), sys.argv[5] == "1"
lat = sorted(float(l) for f in sys.argv[6:] for l in open(f))
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
print("  %-8s %2d hosts: %5d logins in %5.2f s = %6.0f logins/s, p50 %6.0f us, p99 %6.0f us%s"
      % (service, hosts, len(lat), end - start, len(lat) / (end - start), q(0.5), q(0.99),
         "  (SOME LOGINS FAILED)" if failed else ""))
EOF2
}
if [ "${TWOSTEP_BENCH_STORE:-}" = 1 ]; then
    echo
    echo "a fleet on one store: HOSTS processes logging $users users in at once (each once a step)"
    for hosts in 1 4 16 64; do
        next_step
        fleet store "$hosts"
    done
fi
if [ "${TWOSTEP_BENCH_SENTINEL:-}" = 1 ]; then
    echo
    echo "a fleet through Sentinel: the same, direct (redis://) and through the sentinels, in the same step"
    pair=(direct sentinel)
    for hosts in 1 4 16 64; do
        next_step
        # Each user logs in once a step per service (their own prefixes);
        # the two take turns at going first.
        for s in "${pair[@]}"; do fleet "$s" "$hosts"; done
        pair=("${pair[1]}" "${pair[0]}")
    done
    now=$(redis-cli -p "${sentinel_ports[0]}" sentinel get-master-addr-by-name bench | tail -n 1)
    [ "$now" = "${ports[0]}" ] || echo "  (A FAILOVER HAPPENED DURING THE RUN: the primary is now $now)"
fi
if [ "${TWOSTEP_BENCH_EMAIL:-}" = 1 ]; then
    mailuser=tsbenchmail
    id -u "$mailuser" >/dev/null 2>&1 || useradd -m -s /usr/sbin/nologin "$mailuser"
    mkdir -p "$work"/{secrets-email,state-app,state-email}
    chmod 700 "$work"/{secrets-email,state-app,state-email}
    touch "$work/secrets-email/.twostep-secret-dir"
    while IFS=$'\t' read -r u b32; do
        printf 'secret = "%s"\nmethod = "email"\nemail = "%s@localhost"\n' "$b32" "$mailuser" \
            > "$work/secrets-email/$u"
        chmod 600 "$work/secrets-email/$u"
    done < "$work/users.txt"
    attempts=$(( users < 200 ? users : 200 ))
    # With a baseline, its app and email users too, in the same rounds.
    kinds=(app email)
    [ -n "${TWOSTEP_BENCH_BASELINE:-}" ] && kinds+=(base-app base-email)
    for kind in "${kinds[@]}"; do
        secrets=$work/secrets; [ "${kind#base-}" = email ] && secrets=$work/secrets-email
        mkdir -p "$work/state-$kind"
        chmod 700 "$work/state-$kind"
        cat > "$work/$kind.toml" <<EOF2
secret_dir = "$secrets"
state_dir = "$work/state-$kind"
[lockout]
tiers = [{failures = 1000, lock = "1s"}]
[codes]
resend_after = "0s"
max_per_hour = 30
[email]
from = "twostep@localhost"
EOF2
        m=$module; [ "$kind" != "${kind#base-}" ] && m=$TWOSTEP_BENCH_BASELINE
        echo "auth required $m config=$work/$kind.toml" > "$work/pam.d/$kind-wrong"
    done
    echo
    echo "a wrong code attempt, $attempts users, app users against email users (a code mailed each):"
    for r in 1 2 3; do
        for kind in "${kinds[@]}"; do
            line=$("$work/pambench" --confdir "$work/pam.d" --service "$kind-wrong" \
                --users "$work/users.txt" --iterations "$attempts" --answer 000000 || true)
            echo "round $r: $line"
            echo "$line" >> "$work/email-results"
        done
    done
    python3 - "$work/email-results" <<'EOF2'
import statistics, sys
per = {}
for line in open(sys.argv[1]):
    f = dict(kv.split("=") for kv in line.split())
    per.setdefault(f["service"], []).append(float(f["per_login_us"]))
app = statistics.median(per["app-wrong"])
email = statistics.median(per["email-wrong"])
print("  app user, wrong code      %8.0f us" % app)
print("  email user, wrong code    %8.0f us  (a code made, kept and handed to sendmail: +%.0f us)" % (email, email - app))
if "base-app-wrong" in per:
    bapp = statistics.median(per["base-app-wrong"])
    bemail = statistics.median(per["base-email-wrong"])
    print("  baseline app user         %8.0f us  (this build %+.0f us)" % (bapp, app - bapp))
    print("  baseline email user       %8.0f us  (this build %+.0f us)" % (bemail, email - bemail))
EOF2
    rm -f "/var/mail/$mailuser"
    # Made above for this run only, like the tsbench users.
    userdel -r "$mailuser" 2>/dev/null || userdel "$mailuser"
fi
if [ -n "${TWOSTEP_BENCH_BASELINE:-}" ]; then
    echo "module size: $(stat -c %s "$module") bytes; baseline $(stat -c %s "$TWOSTEP_BENCH_BASELINE") bytes"
fi
