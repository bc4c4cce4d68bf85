#!/usr/bin/env bash
# The Debian packages twostep's scripts need, declared once and installed
# only when missing:
#
#   sudo bash packages.sh build    what the build links and runs (debian/control)
#   sudo bash packages.sh demo     build + what demo.sh runs: sshd, pam_unix, useradd
#   sudo bash packages.sh test     demo + what tests/run-all.sh uses
#   sudo bash packages.sh bench    build + what tests/bench.sh compares against
#
# The build's packages are listed in one place only, debian/control's
# Build-Depends, and installed from there with `apt-get build-dep ./` (the
# README's Install step), so demo.sh, the tests and the package cannot drift
# apart. The other sets add what is run rather than built, and are listed
# here. "Fresh" means Debian 12 with Rust (>= the MSRV in Cargo.toml) and its
# C linker (gcc, libc6-dev), run as root; tests/fresh.sh checks that these
# sets take such a machine to a working build.
set -euo pipefail
cd "$(dirname "$0")"

demo=(
    openssh-server openssh-client # the demo's private sshd and the ssh to log in with
    libpam-modules passwd         # pam_unix, useradd, chpasswd
)
bench=(
    libpam-google-authenticator   # the baseline measured in the same run
    python3                       # the benchmark's report
    redis-server                  # TWOSTEP_BENCH_STORE=1: the shared store
    redis-sentinel                # TWOSTEP_BENCH_SENTINEL=1: the store through Sentinel
    exim4-daemon-light            # TWOSTEP_BENCH_EMAIL=1: the real /usr/sbin/sendmail
)
test=(
    "${demo[@]}"
    oathtool                      # codes from an independent implementation
    libfaketime                   # the default 5m/1h tiers under a faked clock
    libpam-google-authenticator   # the benchmark's baseline; real files for the import tests
    zbar-tools                    # zbarimg: QR codes decoded by an independent decoder
    expect                        # a real pty for the interactive enrollment
    login util-linux              # login(1), su(1), script(1), unshare(1)
    rsyslog                       # the real-syslog test (its own private instance)
    groff-base man-db             # rendering the man pages in the tests
    valgrind                      # memcheck of the module (tests/valgrind.rs)
    btrfs-progs                   # a full copy-on-write disk (tests/review.rs)
    strace                        # kills a writer at each fsync (tests/faults.rs)
    python3                       # the benchmark's report; mail parsing and the SMS gateway in tests/delivery.rs
    # /usr/sbin/sendmail for tests/delivery.rs: Debian's default "local" config
    # delivers to /var/mail/<user> with no daemon running (sendmail forks the
    # delivery), so nothing needs configuring or starting.
    exim4-daemon-light
    curl                          # examples/sms-gateway-sender, tested against a local listener
    # tests/valkey_client.rs starts private instances (Debian 12 ships Redis
    # 7.0; Valkey speaks the same protocol); the system's own is never used.
    # openssl(1) makes the test CA for rediss://.
    redis-server openssl
    # tests/sentinel.rs: three private sentinels (quorum 2) over a primary
    # and two replicas, for the failover tests (store.url redis+sentinel://).
    redis-sentinel
    # tests/dovecot.rs: a real IMAP server whose PAM passdb asks the module
    # (a private instance on a free port; the system's own is never used).
    dovecot-imapd
    # tests/devices_cli.rs: a second, independent reader of the otpauth://
    # URIs `enroll --add` prints (labels "Issuer:user (name)"), beside oathtool.
    python3-pyotp
)

case "${1:-}" in
    build) extra=() ;;
    demo) extra=("${demo[@]}") ;;
    test) extra=("${test[@]}") ;;
    bench) extra=("${bench[@]}") ;;
    *)
        echo "usage: sudo bash packages.sh build|demo|test|bench" >&2
        exit 2
        ;;
esac
if [ "$(id -u)" != 0 ]; then
    echo "packages.sh: installing packages needs root: sudo bash $0 $1" >&2
    exit 2
fi

missing=()
for p in "${extra[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# dpkg-checkbuilddeps (dpkg-dev) reads Build-Depends exactly as
# dpkg-buildpackage will; without dpkg-dev the build needs installing anyway.
build_ok=no
if command -v dpkg-checkbuilddeps >/dev/null && dpkg-checkbuilddeps >/dev/null 2>&1; then
    build_ok=yes
fi
[ "$build_ok" = yes ] && [ ${#missing[@]} -eq 0 ] && exit 0

export DEBIAN_FRONTEND=noninteractive
what=("${missing[@]}")
[ "$build_ok" = no ] && what+=("debian/control's Build-Depends")
echo "== packages.sh $1: installing ${what[*]}"
apt-get update -qq
if [ "$build_ok" = no ]; then
    apt-get build-dep -y -qq ./ >/dev/null
fi
if [ ${#missing[@]} -gt 0 ]; then
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
