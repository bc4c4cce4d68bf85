#!/usr/bin/env bash
# The Debian package, for real: build it with dpkg-buildpackage, install it
# with dpkg -i, run `twostep check`, enable the pam-auth-update profiles and
# log in through the system's /etc/pam.d/common-auth; `twostep audit` finds
# no way in; the same with the profiles of libpam-sss, libpam-krb5,
# libpam-ldapd and libpam-systemd installed and composed with ours (those
# not here before are purged again); then remove and purge it and check
# that nothing of it is left in /etc/pam.d/common-*.
#
#   sudo bash tests/deb.sh        (tests/run-all.sh runs it)
#
# This changes the real system PAM configuration while it runs. Whatever
# happens, the EXIT trap puts /etc/pam.d/common-*, /var/lib/pam and
# /etc/nsswitch.conf back as they were *before* it removes the packages, so
# common-auth never names a module that is not installed.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

if [ "$(id -u)" != 0 ]; then
    echo "deb.sh: needs root (it installs the package): sudo bash $0" >&2
    exit 2
fi
if dpkg-query -W -f='${Status}' libpam-twostep 2>/dev/null | grep -q installed; then
    echo "deb.sh: libpam-twostep is already installed here; this test would remove it. Not touching it." >&2
    echo "        (left by a killed run? then: pam-auth-update --package --remove twostep twostep-preauth twostep-authfail twostep-notify; dpkg -P libpam-twostep)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
work=$(mktemp -d /tmp/twostep-deb.XXXXXX)
backup="$work/backup"
user=ts-deb
password='deb pass-W0rd'
secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ

mkdir -p "$backup/pam.d" "$backup/varlibpam"
cp -a /etc/pam.d/common-* "$backup/pam.d/"
cp -a /var/lib/pam/. "$backup/varlibpam/" 2>/dev/null || true
cp -a /etc/nsswitch.conf "$backup/nsswitch.conf"
# The profiles of other packages that pam-auth-update composes with ours,
# installed for real below (and purged at the end, if they were not here).
others=(libpam-sss libpam-krb5 libpam-ldapd libpam-systemd)
others_new=()
for p in "${others[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || others_new+=("$p")
done
had_etc_twostep=no; [ -e /etc/twostep ] && had_etc_twostep=yes
had_var_twostep=no; [ -e /var/lib/twostep ] && had_var_twostep=yes

restore() {
    local rc=$?
    set +e
    # First the PAM files, so that no stack names pam_twostep.so any more.
    cp -a "$backup/pam.d/." /etc/pam.d/
    cp -a "$backup/varlibpam/." /var/lib/pam/
    if dpkg-query -W -f='${Status}' libpam-twostep 2>/dev/null | grep -q installed; then
        dpkg -P libpam-twostep >/dev/null 2>&1
    fi
    for p in "${others_new[@]}"; do
        if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q installed; then
            apt-get purge -y -qq "$p" >/dev/null 2>&1
        fi
    done
    [ ${#others_new[@]} -eq 0 ] || apt-get autoremove --purge -y -qq >/dev/null 2>&1
    cp -a "$backup/nsswitch.conf" /etc/nsswitch.conf
    cp -a "$backup/pam.d/." /etc/pam.d/
    [ "$had_etc_twostep" = no ] && rm -rf /etc/twostep
    [ "$had_var_twostep" = no ] && rm -rf /var/lib/twostep
    rm -rf "$work"
    if [ $rc -ne 0 ]; then echo "deb.sh: FAILED (system PAM files restored)" >&2; fi
    exit $rc
}
trap restore EXIT
trap 'exit 130' INT TERM

fail() { echo "deb.sh: FAIL: $*" >&2; exit 1; }
twostep_lines() { grep -l 'twostep' /etc/pam.d/common-* 2>/dev/null || true; }

echo "== deb: dpkg-buildpackage -us -uc -b"
# Build from a copy, so that the artifacts land in $work and not next to
# the repository; reuse the tree's cargo cache.
mkdir -p "$work/src"
tar -C "$repo" --exclude=./target --exclude=./.git -cf - . | tar -C "$work/src" -xf -
if ! (cd "$work/src" && CARGO_TARGET_DIR="$repo/target" dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1; then
    tail -40 "$work/build.log" >&2
    fail "dpkg-buildpackage"
fi
deb=$(ls "$work"/libpam-twostep_*.deb)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)

echo "== deb: contents"
contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
for path in \
    "./lib/$multiarch/security/pam_twostep.so" \
    ./usr/lib/twostep/libtwostep_ondemand.so \
    ./usr/bin/twostep \
    ./usr/bin/twostep-self \
    ./etc/pam.d/twostep-self \
    ./etc/twostep/twostep.toml \
    ./usr/share/pam-configs/twostep \
    ./usr/share/pam-configs/twostep-preauth \
    ./usr/share/pam-configs/twostep-authfail \
    ./usr/share/pam-configs/twostep-notify \
    ./usr/share/man/man8/pam_twostep.8.gz \
    ./usr/share/man/man1/twostep.1.gz \
    ./usr/share/man/man1/twostep-self.1.gz \
    ./usr/share/man/man5/twostep.toml.5.gz; do
    grep -qxF "$path" <<<"$contents" || fail "$path is not in the package"
done
dpkg-deb -I "$deb" conffiles | grep -qx /etc/twostep/twostep.toml || fail "twostep.toml is not a conffile"
dpkg-deb -I "$deb" conffiles | grep -qx /etc/pam.d/twostep-self || fail "the PAM file of twostep-self is not a conffile"
# Setuid root in the archive (dh_fixperms must have left it alone).
perms=$(dpkg-deb -c "$deb" | awk '$6 == "./usr/bin/twostep-self" {print $1, $2}')
[ "$perms" = "-rwsr-xr-x root/root" ] || fail "twostep-self is '$perms' in the package, not -rwsr-xr-x root/root"
# The password only: not common-auth, which runs pam_twostep when the profiles are on.
dpkg-deb --fsys-tarfile "$deb" | tar -xOf - ./etc/pam.d/twostep-self >"$work/twostep-self.pam"
grep -qE '^auth[[:space:]]+required[[:space:]]+pam_unix\.so$' "$work/twostep-self.pam" \
    || fail "the PAM file of twostep-self does not check the password with pam_unix"
! grep -qE '^[^#]*(common-auth|pam_twostep)' "$work/twostep-self.pam" \
    || fail "the PAM file of twostep-self runs common-auth or pam_twostep"
for p in twostep twostep-preauth twostep-authfail twostep-notify; do
    dpkg-deb --fsys-tarfile "$deb" | tar -xOf - "./usr/share/pam-configs/$p" | grep -qx 'Default: no' \
        || fail "profile $p is not Default: no"
done
# A module with packed relocations (build.rs) loads only under glibc 2.36
# or later, and must say so: dpkg would otherwise let an older libc6 stay
# and every login through the module fail to load it.
dpkg-deb --fsys-tarfile "$deb" | tar -xOf - "./lib/$multiarch/security/pam_twostep.so" >"$work/module.so"
depends=$(dpkg-deb -f "$deb" Depends)
echo "== deb: Depends: $depends"
if readelf -d "$work/module.so" | grep -q '(RELR)'; then
    version=$(grep -oE 'libc6 \(>= [0-9.]+\)' <<<"$depends" | grep -oE '[0-9][0-9.]*' | sort -V | tail -1 || true)
    dpkg --compare-versions "${version:-0}" ge 2.36 \
        || fail "the module needs glibc 2.36 (DT_RELR) but the package depends on: $depends"
fi
suggests=$(dpkg-deb -f "$deb" Suggests)
for p in mail-transport-agent libssl3; do
    grep -q "$p" <<<"$suggests" || fail "the package does not suggest $p: Suggests: $suggests"
done

echo "== deb: dpkg -i"
dpkg -i "$deb" >"$work/install.log" 2>&1 || { cat "$work/install.log" >&2; fail "dpkg -i"; }
[ -f "/lib/$multiarch/security/pam_twostep.so" ] || fail "module not installed"
# The on-demand part: where the installed module looks for it, root's, and
# writable by no one else (the module refuses it otherwise).
part=/usr/lib/twostep/libtwostep_ondemand.so
[ "$(stat -c '%a %U %G %F' "$part")" = "644 root root regular file" ] ||
    fail "$part is $(stat -c '%a %U %G %F' "$part" 2>&1), not 644 root root regular file"
[ "$(stat -c '%a %U' /usr/lib/twostep)" = "755 root" ] ||
    fail "/usr/lib/twostep is $(stat -c '%a %U' /usr/lib/twostep), not 755 root"
grep -qaF "$part" "/lib/$multiarch/security/pam_twostep.so" ||
    fail "the installed module does not look for its part at $part"
[ "$(stat -c '%a %U %G' /usr/bin/twostep-self)" = "4755 root root" ] ||
    fail "/usr/bin/twostep-self is $(stat -c '%a %U %G' /usr/bin/twostep-self), not 4755 root root"
[ -f /etc/pam.d/twostep-self ] || fail "/etc/pam.d/twostep-self was not installed"
# (It exits 1 when off: its output is taken first, as pipefail would fail
# the pipe whatever grep found.)
said=$(setpriv --reuid=65534 --regid=65534 --clear-groups twostep-self status 2>&1) || true
grep -q "self-service is turned off" <<<"$said" ||
    fail "twostep-self is not off by default, or not setuid: $said"
for d in /var/lib/twostep/secrets /var/lib/twostep/state; do
    [ "$(stat -c '%a %U' "$d")" = "700 root" ] || fail "$d is $(stat -c '%a %U' "$d"), not 700 root"
done
marker=/var/lib/twostep/secrets/.twostep-secret-dir
[ -f "$marker" ] || fail "$marker was not made"
[ "$(stat -c '%a %U %s' "$marker")" = "600 root 0" ] || fail "$marker is $(stat -c '%a %U %s' "$marker"), not 600 root 0"
[ -z "$(twostep_lines)" ] || fail "installing enabled the profiles (Default: no): $(twostep_lines)"

echo "== deb: twostep check"
twostep check || fail "twostep check on a fresh install"

echo "== deb: pam-auth-update --enable"
pam-auth-update --enable twostep-preauth twostep-authfail twostep
# The canonical stack, as pam-auth-update lays it out: preauth before the
# password, authfail after it, pam_unix's success jumping over authfail and
# pam_deny, the code step after pam_permit.
grep -E '^auth' /etc/pam.d/common-auth | sed -E 's/[[:space:]]+/ /g; s/ $//' | head -6 >"$work/stack"
cat >"$work/expected" <<'STACK'
^auth requisite pam_twostep\.so preauth$
^auth \[success=2 default=ignore\] pam_unix\.so( .*)?$
^auth \[default=die\] pam_twostep\.so authfail$
^auth requisite pam_deny\.so$
^auth required pam_permit\.so$
^auth required pam_twostep\.so$
STACK
paste -d '\n' "$work/expected" "$work/stack" | while IFS= read -r pattern && IFS= read -r line; do
    grep -qE "$pattern" <<<"$line" || { echo "common-auth: '$line' does not match $pattern" >&2; exit 1; }
done || fail "unexpected common-auth:
$(grep -v '^#' /etc/pam.d/common-auth)"
[ "$(wc -l <"$work/stack")" = 6 ] || fail "common-auth is short: $(cat "$work/stack")"
# The password-change notice: its line last in common-password, after
# pam_unix's jump and pam_permit.
pam-auth-update --enable twostep-notify
last=$(grep -E '^password' /etc/pam.d/common-password | sed -E 's/[[:space:]]+/ /g; s/ $//' | tail -1)
[ "$last" = "password optional pam_twostep.so notify" ] ||
    fail "the notify line is not last in common-password: $(grep -v '^#' /etc/pam.d/common-password)"

echo "== deb: a login through the system's common-auth"
cc -O2 -o "$work/pamdrive" tests/c/pamdrive.c -lpam
if ! id -u "$user" >/dev/null 2>&1; then useradd -M -N -s /bin/sh "$user"; fi
echo "$user:$password" | chpasswd
printf '%s\n' "$secret" | twostep enroll "$user" --secret-file - --no-confirm --qr none --force --json >/dev/null
mkdir -p "$work/pam.d"
printf 'auth include /etc/pam.d/common-auth\n' >"$work/pam.d/twostep-deb"
login() { # code -> PAM status
    printf '%s\n%s\n' "$password" "$1" |
        "$work/pamdrive" --confdir "$work/pam.d" --service twostep-deb --user "$user" --nodelay \
            --rhost 192.0.2.9 >"$work/login.out" 2>&1 && echo 0 || echo $?
}
now=$(date +%s)
while [ $((30 - now % 30)) -le 3 ]; do sleep 1; now=$(date +%s); done
code=$(oathtool --totp -b "$secret")
wrong=$(printf '%06d' $(((10#$code + 1) % 1000000)))
[ "$(login "$wrong")" != 0 ] || fail "a wrong code logged in: $(cat "$work/login.out")"
[ "$(login "$code")" = 0 ] || fail "the right code was refused: $(cat "$work/login.out")"
grep -q 'Verification code' "$work/login.out" || fail "no code prompt: $(cat "$work/login.out")"
twostep status "$user"

echo "== deb: twostep audit of the system's stacks"
# No way in for local users through PAM. sshd's own settings (keys alone
# by default) are the sshd part's business: only PAM findings count here.
audit_pam() { # -> the PAM findings that are not accepted, one a line
    twostep audit --json >"$work/audit.json" || true
    python3 - "$work/audit.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
# A way in for root alone (su's pam_rootok) lets in no one who is not root
# already.
for f in report["findings"]:
    if f["setting"] is None and not f["accepted"] and f["users"] != "root":
        print("%s %s:%s %s: %s" % (f["service"], f["file"], f["line"], f["users"], f["why"]))
PY
}
[ -z "$(audit_pam)" ] || fail "twostep audit finds ways in through PAM: $(audit_pam)"

echo "== deb: composed with the profiles of ${others[*]}"
# Installed for real: their postinst enables their profiles (Default: yes)
# beside ours; the composed common-auth must still ask every local user for
# the code, as the audit and a real login say.
if [ ${#others_new[@]} -gt 0 ]; then
    apt-get install -y -qq --no-install-recommends "${others_new[@]}" >"$work/others.log" 2>&1 ||
        { tail -20 "$work/others.log" >&2; fail "installing ${others_new[*]}"; }
fi
for m in pam_sss pam_krb5 pam_ldap; do
    grep -q "$m" /etc/pam.d/common-auth || fail "$m is not in common-auth: $(grep -v '^#' /etc/pam.d/common-auth)"
done
grep -qE '^auth[[:space:]]+required[[:space:]]+pam_twostep\.so[[:space:]]*$' /etc/pam.d/common-auth ||
    fail "the code step left common-auth: $(grep -v '^#' /etc/pam.d/common-auth)"
[ -z "$(audit_pam)" ] || fail "composed with ${others[*]}, twostep audit finds ways in: $(audit_pam)
$(grep -v '^#' /etc/pam.d/common-auth)"
# The next time step: this one's code was used above.
sleep $((30 - $(date +%s) % 30 + 1))
code=$(oathtool --totp -b "$secret")
wrong=$(printf '%06d' $(((10#$code + 1) % 1000000)))
[ "$(login "$wrong")" != 0 ] || fail "composed: a wrong code logged in: $(cat "$work/login.out")"
[ "$(login "$code")" = 0 ] || fail "composed: the right code was refused: $(cat "$work/login.out")"
grep -q 'Verification code' "$work/login.out" || fail "composed: no code prompt: $(cat "$work/login.out")"
# Gone again, with their lines: what follows checks that common-* are as
# they were.
if [ ${#others_new[@]} -gt 0 ]; then
    apt-get purge -y -qq "${others_new[@]}" >>"$work/others.log" 2>&1 || fail "purging ${others_new[*]}"
    apt-get autoremove --purge -y -qq >>"$work/others.log" 2>&1 || true
fi
cp -a "$backup/nsswitch.conf" /etc/nsswitch.conf

echo "== deb: dpkg -r"
dpkg -r libpam-twostep >"$work/remove.log" 2>&1 || { cat "$work/remove.log" >&2; fail "dpkg -r"; }
[ -z "$(twostep_lines)" ] || fail "twostep lines left after remove in: $(twostep_lines)"
[ ! -e "/lib/$multiarch/security/pam_twostep.so" ] || fail "module left after remove"
[ ! -e /usr/lib/twostep ] || fail "/usr/lib/twostep left after remove"
[ -f /etc/twostep/twostep.toml ] || fail "remove (not purge) dropped the conffile"
[ -d /var/lib/twostep/secrets ] || fail "remove (not purge) dropped the secrets"

echo "== deb: dpkg -P"
dpkg -P libpam-twostep >"$work/purge.log" 2>&1 || { cat "$work/purge.log" >&2; fail "dpkg -P"; }
[ -z "$(twostep_lines)" ] || fail "twostep lines left after purge in: $(twostep_lines)"
[ ! -e /etc/twostep ] || fail "/etc/twostep left after purge"
[ ! -e /etc/pam.d/twostep-self ] || fail "/etc/pam.d/twostep-self left after purge"
[ ! -e /var/lib/twostep ] || fail "/var/lib/twostep left after purge"
for f in "$backup"/pam.d/common-*; do
    cmp -s "$f" "/etc/pam.d/$(basename "$f")" || fail "/etc/pam.d/$(basename "$f") differs from before the test"
done
userdel "$user" 2>/dev/null || true
echo "== deb: ok"
