#!/bin/sh
# How long `twostep audit` takes on its sshd side, for 1, 50 and 1000
# accounts, in a system tree (--root) with a synthetic passwd file: this
# machine's sshd_config, then the same with Match blocks (two Match User
# lines, a Match Address line; not Match Group, which needs the tree's
# accounts on this machine). Median of 5 runs each.
# Usage: sh tests/audit_sshd_bench.sh [path/to/twostep]
set -eu
bin=${1:-target/debug/twostep}
tree=$(mktemp -d /tmp/ts-as-bench-XXXXXX)
trap 'rm -rf "$tree"' EXIT
chmod 755 "$tree"
mkdir -p "$tree/etc/ssh" "$tree/usr/sbin"
cp /usr/sbin/sshd "$tree/usr/sbin/sshd"
cp /etc/group "$tree/etc/group"
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
run() { # accounts, label
    {
        echo "root:x:0:0:root:/root:/bin/bash"
        i=1
        while [ "$i" -lt "$1" ]; do
            echo "ts-as-bench$i:x:$((10000 + i)):100::/nonexistent:/bin/sh"
            i=$((i + 1))
        done
    } > "$tree/etc/passwd"
    for _ in 1 2 3 4 5; do
        s=$(date +%s%N)
        "$bin" audit --root "$tree" > /dev/null 2>&1 || [ $? -eq 1 ]
        e=$(date +%s%N)
        echo $(((e - s) / 1000000))
    done | median | xargs printf '%-28s %5s accounts: %s ms\n' "$2" "$1"
}
sed 's/^Include .*//' /etc/ssh/sshd_config > "$tree/etc/ssh/sshd_config"
for n in 1 50 1000; do run "$n" "this machine's sshd_config"; done
cat >> "$tree/etc/ssh/sshd_config" <<'CONF'
Match User ts-as-bench7
    AuthenticationMethods publickey
Match User ts-as-bench1?,!ts-as-bench15
    PasswordAuthentication no
Match Address 10.0.0.0/8
    PubkeyAuthentication no
CONF
for n in 1 50 1000; do run "$n" "with 3 Match blocks"; done
