#!/usr/bin/env bash
# What loading a PAM module pays for, measured on reference libraries built
# beside the module: where the floor is, and what moves a load above it.
#
#   bash tests/loadfloor.sh [MODULE.so] [ROUNDS] [PER_ROUND] [PROCESSES]
#                  (defaults: target/release/libpam_twostep.so, 41, 300, 5)
#
# ROUNDS in all, split over PROCESSES processes run one after another
# (tests/c/loadruns.sh: one process is one draw; the summary gives the
# median of their ratios and the range).
# Each library is loaded and unloaded PER_ROUND times a round, in turns
# (tests/c/loadbench.c: dlopen RTLD_NOW + dlclose with libpam resident, as
# libpam does at every pam_start and pam_end); the table gives the median of
# the rounds, the ratio to google-authenticator's in the same rounds, and
# the page faults of one load. The libraries, all with one pam_sm_
# function:
#
#   empty-c       cc -shared, nothing else
#   c+tls, c+init, c+pointers-700, c+imports+35
#                 empty-c and one of what every std cdylib has and empty-c
#                 has not: a thread-local (std's need a TLS block), an
#                 init_array function (std's keeps argv), 700 relocated
#                 pointers (5.6 KB: empty-rust has 5.3 KB), 35 more libc
#                 imports (empty-rust's 39): what part of Rust's floor each is
#   empty-rust    a std cdylib built as the module is (LTO, opt-level "s",
#                 panic=unwind with the unwinder linked statically, packed
#                 relocations): Rust's own floor
#   untouched-1m  empty-rust and 1 MB of data no load touches
#   imports+48    empty-rust and 48 more libc functions imported (the
#                 module's count)
#   pointers-N    empty-rust and a table of N &str: 16N bytes of pointers
#                 ld.so must relocate, so write, at every load
#   lean          a stand-in for a module that does only an app-code login:
#                 the config and the secret file read with toml's parser,
#                 one HMAC-SHA1, a state file written and synced (the same
#                 toml, hmac and sha1 as the module; it is not run, only
#                 loaded)
#
# Needs root only for nothing; needs cargo, cc, and the crates of the
# module's Cargo.lock already fetched (it builds --offline).
set -euo pipefail
cd "$(dirname "$0")/.."
module=$(realpath "${1:-target/release/libpam_twostep.so}")
rounds=${2:-41}
per=${3:-300}
processes=${4:-5}
ga=/lib/x86_64-linux-gnu/security/pam_google_authenticator.so
[ -f "$module" ] || { echo "loadfloor.sh: no $module (sh link/release.sh)" >&2; exit 2; }
[ -f "$ga" ] || { echo "loadfloor.sh: no $ga (bash packages.sh bench)" >&2; exit 2; }
work=$(mktemp -d /tmp/twostep-loadfloor.XXXXXX)
trap 'rm -rf "$work"' EXIT
here=$(pwd)

cc -O2 -o "$work/loadbench" tests/c/loadbench.c -Wl,--no-as-needed -lpam -ldl
# c NAME SOURCE: a C library of SOURCE.
c() {
    printf '%s\n' "$2" >"$work/$1.c"
    cc -O2 -shared -fPIC -Wl,-z,now -o "$work/$1.so" "$work/$1.c"
}
c empty-c 'int pam_sm_authenticate(void *h, int f, int c, const char **v) { return 0; }'
c c+tls '__thread int x[4];
int pam_sm_authenticate(void *h, int f, int c, const char **v) { return x[f & 3]++; }'
c c+init 'static int seen;
static void init(int argc, char **argv, char **env) { seen = argc; }
__attribute__((section(".init_array"), used)) static void (*init_p)(int, char **, char **) = init;
int pam_sm_authenticate(void *h, int f, int c, const char **v) { return seen; }'
c c+pointers-700 "$(for i in $(seq 700); do printf 'static const char s%d[] = "%d";\n' "$i" "$i"; done)
const char *const table[] = { $(seq -s, -f 's%g' 700) };
int pam_sm_authenticate(void *h, int f, int c, const char **v) { return table[f][0]; }"
c_imports="abort bcmp calloc close dl_iterate_phdr free getcwd getenv gettid lseek64 malloc memcpy
memmove memset mmap64 munmap open64 posix_memalign pthread_mutex_lock pthread_mutex_unlock
pthread_once read readlink realloc realpath statx strlen syscall write fstat64 stat64 getsockopt
recv sigaddset sigemptyset"
c c+imports+35 "$(for s in $c_imports; do printf 'extern void %s(void);\n' "$s"; done)
void (*const table[])(void) = { $(echo $c_imports | tr ' ' ,) };
int pam_sm_authenticate(void *h, int f, int c, const char **v) { return table[f] != 0; }"

# The module's link: libgcc's unwinder from libgcc_eh.a (build.rs), DT_RELR.
mkdir -p "$work/eh"
ln -s "$(cc -print-file-name=libgcc_eh.a)" "$work/eh/libgcc_s.a"
export RUSTFLAGS="-L native=$work/eh -C link-arg=-Wl,-z,pack-relative-relocs"
export CARGO_TARGET_DIR="$work/target"
profile='[profile.release]
panic = "unwind"
lto = "fat"
codegen-units = 1
strip = "debuginfo"
opt-level = "s"'

# rust NAME BODY [DEPENDENCIES]: a cdylib whose pam_sm_authenticate is BODY.
rust() {
    local dir="$work/$1"
    mkdir -p "$dir/src"
    printf '[package]\nname = "lf"\nversion = "0.1.0"\nedition = "2021"\n[lib]\ncrate-type = ["cdylib"]\n[dependencies]\n%s\n%s\n' \
        "${3:-}" "$profile" >"$dir/Cargo.toml"
    printf '%s\n' "$2" >"$dir/src/lib.rs"
    # The module's locked versions, for the lean stand-in's crates.
    cp "$here/Cargo.lock" "$dir/Cargo.lock"
    (cd "$dir" && cargo build --release --offline -q >"$dir/build.log" 2>&1) ||
        { cat "$dir/build.log" >&2; echo "loadfloor.sh: $1 did not build" >&2; exit 1; }
    cp "$CARGO_TARGET_DIR/release/liblf.so" "$work/$1.so"
    rm -f "$CARGO_TARGET_DIR/release/liblf.so"
}

entry='#[no_mangle]
pub extern "C" fn pam_sm_authenticate(_h: *mut u8, f: i32, _c: i32, _v: *const *const u8) -> i32 {
    std::panic::catch_unwind(|| BODY).unwrap_or(7)
}'
# Bash 5.2 would put the matched text for each & of a replacement (&B).
shopt -u patsub_replacement 2>/dev/null || true
body() { printf '%s\n%s\n' "$1" "${entry/BODY/$2}"; }

rust empty-rust "$(body '' 'f & 0')"
rust untouched-1m "$(body 'static B: [u8; 1_000_000] = [1; 1_000_000];' \
    'std::hint::black_box(&B)[f as usize] as i32')"
imports="clock_gettime clock_nanosleep closedir connect dirfd fchmod fdatasync flock fsync
getgrnam_r getgrouplist gethostname getpid getpriority getpwnam_r getresuid getrlimit getsockopt
ioctl linkat lstat memcmp open opendir poll pread pwrite readdir rename sched_getscheduler
sched_setscheduler send sendto setpriority setresuid setrlimit setsockopt sigaddset sigemptyset
socket sysconf unlink recv dlopen dlsym dlclose dlerror pthread_sigmask"
decls=$(for s in $imports; do printf 'fn %s();\n' "$s"; done)
uses=$(for s in $imports; do printf 'std::hint::black_box(%s as *const () as usize);\n' "$s"; done)
rust imports+48 "$(body "extern \"C\" { $decls }
fn touch() { $uses }" '{ if f == 99 { touch() } 0 }')"
for n in 350 700 1400; do
    rust "pointers-$n" "$(body "static S: [&str; $n] = [\"x\"; $n];" \
        'std::hint::black_box(&S)[f as usize].len() as i32')"
done
lean=$(cat <<'EOF'
use hmac::{Hmac, KeyInit, Mac};
use std::io::Write;
use toml::de::{DeTable, DeValue};

fn walk(t: &DeTable<'_>, out: &mut u64) -> Result<(), String> {
    for (k, v) in t.iter() {
        match v.get_ref() {
            DeValue::String(s) => *out += s.len() as u64,
            DeValue::Integer(i) => *out += i.as_str().len() as u64,
            DeValue::Boolean(b) => *out += *b as u64,
            DeValue::Table(t) => walk(t, out)?,
            DeValue::Array(a) => *out += a.len() as u64,
            _ => return Err(format!("{}: unsupported value", k.get_ref())),
        }
    }
    Ok(())
}

fn login(user: &str) -> Result<i32, String> {
    let mut n = 0u64;
    for p in ["/etc/twostep/config.toml".to_string(), format!("/var/lib/twostep/{user}.toml")] {
        let text = std::fs::read_to_string(&p).map_err(|e| format!("{p}: {e}"))?;
        let doc = DeTable::parse(&text).map_err(|e| format!("{p}: {e}"))?;
        walk(doc.get_ref(), &mut n)?;
    }
    let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(&n.to_be_bytes())
        .map_err(|e| e.to_string())?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?;
    mac.update(&(now.as_secs() / 30).to_be_bytes());
    let code = mac.finalize().into_bytes();
    let mut f = std::fs::File::create(format!("/tmp/lean-{user}")).map_err(|e| e.to_string())?;
    f.write_all(&code).map_err(|e| e.to_string())?;
    f.sync_data().map_err(|e| e.to_string())?;
    Ok((code[0] & 1) as i32)
}

fn run(f: i32) -> i32 {
    match login(if f == 0 { "x" } else { "y" }) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            7
        }
    }
}
EOF
)
rust lean "$(body "$lean" 'run(f)')" \
    'toml = { version = "1", default-features = false, features = ["parse"] }
hmac = { version = "0.13", default-features = false }
sha1 = { version = "0.11", default-features = false }'

echo "bytes, relocated data (.data.rel.ro + .got), imported symbols:"
libs=(google-authenticator="$ga" empty-c="$work/empty-c.so")
for n in c+tls c+init c+pointers-700 c+imports+35; do
    libs+=("$n=$work/$n.so")
done
for n in empty-rust untouched-1m imports+48 pointers-350 pointers-700 pointers-1400 lean; do
    libs+=("$n=$work/$n.so")
done
libs+=(module="$module")
for l in "${libs[@]}"; do
    f=${l#*=}
    relro=0
    for size in $(readelf -SW "$f" | awk '$2 == ".data.rel.ro" || $2 == ".got" { print $6 }'); do
        relro=$((relro + 16#$size))
    done
    printf '  %-22s %9d B  %6d B  %3d\n' "${l%%=*}" "$(stat -c %s "$f")" "$relro" \
        "$(nm -D --undefined-only "$f" | wc -l)"
done
echo
each=$(( (rounds + processes - 1) / processes ))
bash tests/c/loadruns.sh "$work/loadbench" "$processes" "$each" "$per" "${libs[@]}"
