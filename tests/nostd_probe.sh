#!/usr/bin/env bash
# Can an always-loaded module be built without std and without a single
# reachable panic? A probe for that decision (docs/performance.md, "What
# is left is Rust's own floor"), not a test of the module.
#
#   bash tests/nostd_probe.sh [ROUNDS] [PER_ROUND] [PROCESSES]
#                             (defaults: 30, 300, 5)
#
# Builds two `#![no_std]` PAM-shaped libraries with the module's crate
# versions (Cargo.lock, --offline), panic = "abort", LTO, opt-level "s":
#
#   totp          HMAC-SHA1 of a counter and RFC 4226's truncation (the
#                 hmac and sha1 crates the module uses)
#   totp+toml     the same, after lexing and parsing a TOML text given at
#                 run time with toml_parser (the module's TOML parser),
#                 into a fixed array: no allocator
#
# Their panic handler calls a function that is never defined. Where the
# optimiser proved every panic unreachable, the handler is dropped and the
# library imports nothing of the kind; where a panic is left, the library
# imports that function (and `-z defs` would fail the link). So "panics
# reachable: no" is a proof by the compiler that the library cannot panic,
# and with no panic, panic = "abort" can never abort the host. For each,
# the probe prints whether a panic is reachable, the functions that can
# panic, and then the cost of loading it against google-authenticator's
# and an empty C library's (tests/c/loadruns.sh).
#
# Needs cargo, cc and the crates of Cargo.lock already fetched.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-30} per=${2:-300} processes=${3:-5}
ga=/lib/x86_64-linux-gnu/security/pam_google_authenticator.so
[ -f "$ga" ] || { echo "nostd_probe.sh: no $ga (bash packages.sh bench)" >&2; exit 2; }
work=$(mktemp -d /tmp/twostep-nostd.XXXXXX)
trap 'rm -rf "$work"' EXIT
here=$(pwd)
export CARGO_TARGET_DIR="$work/target"

cc -O2 -o "$work/loadbench" tests/c/loadbench.c -Wl,--no-as-needed -lpam -ldl
printf 'int pam_sm_authenticate(void *h, int f, int c, const char **v) { return 0; }\n' >"$work/empty.c"
cc -O2 -shared -fPIC -o "$work/empty-c.so" "$work/empty.c"

# probe NAME DEPENDENCIES PRELUDE BODY: a no_std cdylib whose
# pam_sm_authenticate computes a TOTP code with key byte KEY, which BODY
# sets from `text` (the f bytes at v, UTF-8).
probe() {
    local dir="$work/$1"
    mkdir -p "$dir/src"
    cat >"$dir/Cargo.toml" <<EOF
[package]
name = "probe"
version = "0.1.0"
edition = "2021"
[lib]
crate-type = ["cdylib"]
[dependencies]
hmac = { version = "0.13", default-features = false }
sha1 = { version = "0.11", default-features = false }
$2
[profile.release]
panic = "abort"
lto = "fat"
codegen-units = 1
opt-level = "s"
EOF
    cp "$here/Cargo.lock" "$dir/Cargo.lock"
    cat >"$dir/src/lib.rs" <<EOF
#![no_std]
use hmac::{Hmac, KeyInit, Mac};
$3

extern "C" {
    // Never defined: imported only if a panic is still reachable.
    fn a_panic_is_reachable() -> !;
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // SAFETY: never runs; the probe reads whether it is linked at all.
    unsafe { a_panic_is_reachable() }
}

#[no_mangle]
pub extern "C" fn pam_sm_authenticate(_h: *mut u8, f: i32, c: i32, v: *const u8) -> i32 {
    if v.is_null() || f < 0 {
        return -1;
    }
    // SAFETY: the caller passes f readable bytes at v.
    let text = unsafe { core::slice::from_raw_parts(v, f as usize) };
    let Ok(text) = core::str::from_utf8(text) else { return -1 };
    $4
    let Ok(mut mac) = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(&[key; 20]) else {
        return -1;
    };
    mac.update(&(c as u64).to_be_bytes());
    let h = mac.finalize().into_bytes();
    let o = usize::from(h[19] & 0x0f);
    let n = u32::from_be_bytes([h[o] & 0x7f, h[o + 1], h[o + 2], h[o + 3]]);
    (n % 1_000_000) as i32
}
EOF
    (cd "$dir" && cargo build --release --offline -q >"$dir/build.log" 2>&1) ||
        { cat "$dir/build.log" >&2; echo "nostd_probe.sh: $1 did not build" >&2; exit 1; }
    cp "$CARGO_TARGET_DIR/release/libprobe.so" "$work/$1.so"
    rm -f "$CARGO_TARGET_DIR/release/libprobe.so"
    local so="$work/$1.so" verdict=no
    nm -D --undefined-only "$so" | grep -q a_panic_is_reachable && verdict=yes
    printf '%-10s %7d bytes, panics reachable: %s\n' "$1" "$(stat -c %s "$so")" "$verdict"
    # Only a library without the undefined import loads (RTLD_NOW).
    [ "$verdict" = no ] && loadable+=("$1=$so")
    if [ "$verdict" = yes ]; then
        # The functions that call into core's panicking code.
        objdump -d --no-show-raw-insn "$so" |
            awk '/^[0-9a-f]+ <.*>:$/ { fn = $2 }
                 /(call|jmp).*<.*(panicking|slice_index_fail|unwrap_failed|slice_error_fail)/ \
                   && fn !~ /4core/ { print "    can panic: " fn }' |
            sort -u | c++filt
    fi
}

loadable=()
probe totp '' '' 'let key = text.len() as u8;'
probe totp+toml 'toml_parser = { version = "1", default-features = false }' '
use toml_parser::parser::{parse_document, EventReceiver};
use toml_parser::{decoder::Encoding, ErrorSink, Source, Span};

struct Scalars(usize);
impl EventReceiver for Scalars {
    fn scalar(&mut self, span: Span, _: Option<Encoding>, _: &mut dyn ErrorSink) {
        self.0 = self.0.wrapping_add(span.end().wrapping_sub(span.start()));
    }
}

fn scalars(text: &str) -> usize {
    let mut lexer = Source::new(text).lex();
    let Some(first) = lexer.next() else { return 0 };
    let mut tokens = [first; 512];
    let mut n = 1;
    for token in lexer {
        let Some(slot) = tokens.get_mut(n) else { return 0 };
        *slot = token;
        n += 1;
    }
    let mut found = Scalars(0);
    let mut error = None;
    parse_document(tokens.get(..n).unwrap_or(&[]), &mut found, &mut error);
    if error.is_some() { 0 } else { found.0 }
}' 'let key = scalars(text) as u8;'

echo
echo "loading the libraries that cannot panic:"
bash tests/c/loadruns.sh "$work/loadbench" "$processes" "$(( (rounds + processes - 1) / processes ))" "$per" \
    google-authenticator="$ga" empty-c="$work/empty-c.so" "${loadable[@]}" | tail -4
