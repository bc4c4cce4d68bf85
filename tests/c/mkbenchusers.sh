#!/bin/sh
# mkbenchusers.sh N - make exactly the benchmark users tsbench0001..tsbenchNNNN
# exist (N = 0 removes them all). Idempotent: existing users are kept, missing
# ones created, tsbench users numbered above N removed. Needs root.
#
# The users have no home directory, no own group (group "users") and
# /usr/sbin/nologin as shell; their password is locked. pam_twostep needs
# them because it denies users absent from the passwd database;
# pam_google_authenticator with "user=root secret=DIR/${USER}" does not look
# the user up at all (see FINDINGS-ga.md).
set -eu

case "${1:-}" in
'' | *[!0-9]*) echo "usage: $0 N   (N = 0 removes all tsbench users)" >&2; exit 2 ;;
esac
n=$1
[ "$n" -le 9999 ] || { echo "$0: N must be <= 9999" >&2; exit 2; }

# Present tsbench users, from the local files only (what useradd manages).
existing=$(awk -F: '/^tsbench[0-9][0-9][0-9][0-9]:/ {print $1}' /etc/passwd)
present=" $(echo $existing) "

for u in $existing; do
	num=${u#tsbench}
	if [ "$(expr "$num" + 0)" -gt "$n" ]; then
		userdel "$u"
	fi
done

i=1
created=0
while [ "$i" -le "$n" ]; do
	u=$(printf 'tsbench%04d' "$i")
	case "$present" in
	*" $u "*) ;;
	*) useradd -M -N -s /usr/sbin/nologin "$u"; created=$((created + 1)) ;;
	esac
	i=$((i + 1))
done

total=$(grep -c '^tsbench[0-9][0-9][0-9][0-9]:' /etc/passwd || true)
echo "tsbench users: $total (created $created)"
