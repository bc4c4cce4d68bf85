//! Links GCC's unwinder statically into the module.
//!
//! Rust unwinds panics with libgcc's unwinder, normally the shared
//! libgcc_s.so.1. sshd does not load libgcc_s itself, so every login (a fresh
//! sshd session process) would map, relocate and initialise it just for us
//! (about 50 us, measured with tests/bench.sh, a sixth of a login's cost).
//! GCC's `-static-libgcc` does the same as this: link libgcc_eh.a, the static
//! build of the same unwinder. rustc asks for `-lgcc_s` explicitly, so we put
//! a `libgcc_s.a` that is libgcc_eh.a first on the search path.
//!
//! Panics still unwind and are still caught at the PAM boundary (pam-bindings'
//! catch_unwind); tests/panic.rs checks that through the real libpam. If the
//! archive cannot be found, the build falls back to the shared library.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let Some(out) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        return;
    };
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let found = Command::new(&cc)
        .arg("-print-file-name=libgcc_eh.a")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| PathBuf::from(s.trim()))
        .filter(|p| p.is_absolute() && p.exists());
    let Some(archive) = found else {
        println!(
            "cargo:warning=libgcc_eh.a not found: the module will load libgcc_s.so.1 at each login"
        );
        return;
    };
    let link = out.join("libgcc_s.a");
    let _ = std::fs::remove_file(&link);
    if std::os::unix::fs::symlink(&archive, &link).is_ok() {
        println!("cargo:rustc-link-search=native={}", out.display());
    }
}
