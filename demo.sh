#!/usr/bin/env bash
# A throwaway twostep demo: builds the module and the CLI, starts a private
# sshd on 127.0.0.1 (a free port) whose PAM stack is the canonical one, and
# enrolls a demo user. Scan the QR code with an authenticator app, then log
# in with the printed ssh command: password first, then the code.
#
#   sudo bash demo.sh
#
# Enter or Ctrl-C stops it and removes everything it made: the sshd, the
# demo user, /etc/pam.d/twostep-demo and the temporary directory. Nothing
# else on the machine is changed; the system's sshd is not touched.
set -euo pipefail
cd "$(dirname "$0")"
repo=$(pwd)

if [ "$(id -u)" != 0 ]; then
    echo "demo.sh: needs root (a demo user, a PAM service file): sudo bash $0" >&2
    exit 2
fi

user=twostep-demo
service=twostep-demo                  # sshd's PAM service is its program name
pam_file=/etc/pam.d/$service
work=""
sshd_pid=""
made_user=no

cleanup() {
    set +e
    if [ -n "$sshd_pid" ]; then
        kill "$sshd_pid" 2>/dev/null
        wait "$sshd_pid" 2>/dev/null
    fi
    # Logins that are still open belong to the demo user: end them first.
    if [ "$made_user" = yes ]; then
        pkill -KILL -u "$user" 2>/dev/null
        userdel -r "$user" >/dev/null 2>&1 || userdel "$user" >/dev/null 2>&1
    fi
    rm -f "$pam_file"
    [ -n "$work" ] && rm -rf "$work"
    echo
    echo "demo stopped: sshd, $user, $pam_file and the temporary files are gone."
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# Someone else's demo (or an old one that was killed) would collide.
if [ -e "$pam_file" ] || id -u "$user" >/dev/null 2>&1; then
    echo "demo.sh: $pam_file or the user $user already exists (another demo running?)." >&2
    echo "         If not, remove them: rm -f $pam_file; userdel -r $user" >&2
    trap - EXIT
    exit 1
fi

command -v cargo >/dev/null || { echo "demo.sh: cargo is missing: install Rust (https://rustup.rs)" >&2; exit 2; }
# The build's packages (debian/control) and the demo's own: sshd, pam_unix.
bash packages.sh demo

echo "== building (link/release.sh: the CLI and the module, as packaged)"
sh link/release.sh --quiet
module=$repo/target/release/libpam_twostep.so
twostep=$repo/target/release/twostep

work=$(mktemp -d /tmp/twostep-demo.XXXXXX)
chmod 0711 "$work"
install -d -m 0700 "$work/secrets" "$work/state"
config=$work/twostep.toml
cat >"$config" <<EOF
secret_dir = "$work/secrets"
state_dir = "$work/state"
issuer = "twostep demo ($(hostname))"

[lockout]
tiers = [{failures = 5, lock = "1m"}, {failures = 5, lock = "5m"}]
EOF

password=$(head -c 12 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 12)
useradd -m -s /bin/bash -c "twostep demo" "$user"
made_user=yes
echo "$user:$password" | chpasswd

cat >"$pam_file" <<EOF
# twostep demo (demo.sh); removed when the demo stops
auth     requisite                    $module config=$config preauth
auth     [success=1 default=ignore]   pam_unix.so
auth     [default=die]                $module config=$config authfail
auth     required                     $module config=$config
account  required                     pam_unix.so
session  required                     pam_unix.so
password required                     pam_deny.so
EOF

install -d -m 0755 /run/sshd
cp /usr/sbin/sshd "$work/$service"
ssh-keygen -q -t ed25519 -N '' -C twostep-demo -f "$work/host_ed25519"

port=""
for _ in $(seq 1 20); do
    candidate=$((20000 + RANDOM % 40000))
    cat >"$work/sshd_config" <<EOF
Port $candidate
ListenAddress 127.0.0.1
HostKey $work/host_ed25519
PidFile $work/sshd.pid
UsePAM yes
KbdInteractiveAuthentication yes
PasswordAuthentication no
PubkeyAuthentication no
PermitRootLogin no
AllowUsers $user
UseDNS no
EOF
    : >"$work/sshd.log"
    "$work/$service" -D -e -f "$work/sshd_config" 2>>"$work/sshd.log" &
    sshd_pid=$!
    for _ in $(seq 1 50); do
        grep -q "Server listening" "$work/sshd.log" && break
        kill -0 "$sshd_pid" 2>/dev/null || break
        sleep 0.1
    done
    if grep -q "Server listening" "$work/sshd.log"; then
        port=$candidate
        break
    fi
    kill "$sshd_pid" 2>/dev/null || true
    wait "$sshd_pid" 2>/dev/null || true
    sshd_pid=""
    grep -q "Address already in use" "$work/sshd.log" || { cat "$work/sshd.log" >&2; exit 1; }
done
[ -n "$port" ] || { echo "demo.sh: no free port found" >&2; exit 1; }

echo
echo "== 1. Scan this QR code with an authenticator app"
echo "      (Google Authenticator, FreeOTP, Aegis, 1Password, ...):"
echo
"$twostep" --config "$config" enroll "$user" --qr utf8 --no-confirm --force
echo
echo "== 2. Log in (password, then the 6-digit code from the app):"
echo
echo "      password:  $password"
echo "      command:   ssh -p $port -o PreferredAuthentications=keyboard-interactive -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null $user@127.0.0.1"
echo
echo "   Try a wrong code, or the same code twice: both are refused."
echo "   State of the demo user:  $twostep --config $config status $user"
echo
echo "== Press Enter (or Ctrl-C) to stop the demo and remove everything."
read -r _ || true
