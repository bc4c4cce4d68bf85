//! Two things about how the module is linked, both for the cost of a login.
//!
//! # GCC's unwinder, linked statically
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
//!
//! # Where the module finds its on-demand part
//!
//! `TWOSTEP_ONDEMAND_PATH` when it is set (debian/rules sets it), else, for
//! a debug build, the part cargo builds beside the module (so that the
//! tests load the part of the same build), else
//! `/usr/lib/twostep/libtwostep_ondemand.so`. A constant of the build,
//! never configuration: src/ondemand/ says why.
//!
//! # The code a login runs, kept together
//! `link/hot-symbols.txt` lists the functions a login runs; the linker puts
//! them first and together, so that each login maps a quarter of the module's
//! code instead of nearly all of it (link/hot-symbols.sh says why and how the
//! list is made). Only lld takes an ordering file: Rust's default linker on
//! x86_64 Linux. The build checks that the linker accepts the flag, and
//! without it links as usual (logins are then slower, never different).
//!
//! The functions every load and unload runs (the C runtime's and std's
//! init and fini functions) go first, beside `.init`, so that a load that
//! runs nothing else faults in one window of code, not two.
//!
//! # Relative relocations packed (DT_RELR)
//! Nearly all of the module's relocations (1,309 of 1,408) are relative: a
//! pointer in a table that only needs the load address added. ld.so reads
//! and applies them at every load; packed as a bitmap they take 416 bytes
//! instead of 31 KB, and loading took 1.54x google-authenticator's time
//! instead of 1.66x (loadbench, 31 rounds of 300, one run). glibc reads
//! them from 2.36 (Debian 12); the module then requires GLIBC_ABI_DT_RELR.
//! dpkg-shlibdeps does not see that requirement (a version without a
//! symbol): debian/rules adds `libc6 (>= 2.36)`, and tests/deb.sh checks
//! it. An older glibc or a linker without the option: linked as before.
//!
//! # Segments on page boundaries
//! `-z separate-loadable-segments`: each segment starts a page of the file
//! and of memory. Otherwise where the writable data starts within its page
//! follows the size of what comes before it, and when `.data` and `.bss`
//! (3.5 KB) straddle a page boundary, every load maps and faults one more
//! page (ld.so maps an anonymous page for the `.bss` that spills over): a
//! 4 KB smaller table of relocated pointers made loads 4% slower, not
//! faster, for that reason alone. It costs file padding, never memory.
//! Measured: docs/performance.md, "What a load pays for".
//!
//! # The PLT beside `.init`
//! The static unwinder and std's precompiled code call libc through the
//! PLT, and every unload calls `__cxa_finalize` through it. The linker puts
//! the PLT after all the code, 750 KB from the rest of what a login runs,
//! so each login faulted in one more 64 KiB window of code for those few
//! bytes. A linker script moves it before `.text`, into the window that
//! `.init` and the login's code fault in anyway.
use std::path::{Path, PathBuf};
use std::process::Command;

const HOT_LIST: &str = "link/hot-symbols.txt";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={HOT_LIST}");
    let Some(out) = std::env::var_os("OUT_DIR").map(PathBuf::from) else {
        return;
    };
    static_unwinder(&out);
    ondemand_path(&out);
    if std::env::var("PROFILE").as_deref() == Ok("release") {
        order_hot_code(&out);
        pack_relocations(&out);
        page_aligned_segments(&out);
        plt_beside_init(&out);
    }
}

fn static_unwinder(out: &Path) {
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

const ONDEMAND_ENV: &str = "TWOSTEP_ONDEMAND_PATH";
const ONDEMAND_INSTALLED: &str = "/usr/lib/twostep/libtwostep_ondemand.so";

fn ondemand_path(out: &Path) {
    println!("cargo:rerun-if-env-changed={ONDEMAND_ENV}");
    let path = match std::env::var(ONDEMAND_ENV) {
        Ok(set) if !set.is_empty() => set,
        _ if std::env::var("PROFILE").as_deref() == Ok("debug") => {
            // OUT_DIR is <target>/debug/build/<package>-<hash>/out.
            match out.ancestors().nth(3) {
                Some(dir) => dir.join("libtwostep_ondemand.so").display().to_string(),
                None => ONDEMAND_INSTALLED.to_string(),
            }
        }
        _ => ONDEMAND_INSTALLED.to_string(),
    };
    println!("cargo:rustc-env={ONDEMAND_ENV}={path}");
}

fn order_hot_code(out: &Path) {
    let Some(source) = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(|d| PathBuf::from(d).join(HOT_LIST))
        .filter(|p| p.exists())
    else {
        return;
    };
    // The linker reads the list from OUT_DIR, not from the source tree: cargo
    // may reuse this script's output for a copy of the tree elsewhere
    // (tests/deb.sh builds one), and that copy may be gone by the next link.
    let list = out.join("hot-symbols.txt");
    let Ok(text) = std::fs::read_to_string(&source) else {
        return;
    };
    // What runs at every load and unload, whether or not the module is
    // used (crtbeginS.o's init and fini functions, std's init_array entry),
    // first: beside `.init` at the start of the code, in the window that
    // load faults in anyway. The list is sorted by name, which put them at
    // its end, one more window away.
    let at_load = |name: &str| {
        matches!(
            name,
            "frame_dummy" | "register_tm_clones" | "deregister_tm_clones" | "__do_global_dtors_aux"
        ) || name.ends_with("ARGV_INIT_ARRAY12init_wrapper")
    };
    let (first, rest): (Vec<&str>, Vec<&str>) = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .partition(|l| at_load(l));
    if std::fs::write(&list, [first, rest].concat().join("\n")).is_err() {
        return;
    }
    let args = [
        format!("-Wl,--symbol-ordering-file={}", list.display()),
        // Entries the toolchain no longer emits are expected; link/hot-symbols.sh --check
        // says when there are too many.
        "-Wl,--no-warn-symbol-ordering".to_string(),
    ];
    if !link_if_accepted(out, &args) {
        println!(
            "cargo:warning=the linker does not take an ordering file (lld does): \
             the module links as usual, with logins somewhat slower"
        );
    }
}

fn pack_relocations(out: &Path) {
    // The glibc the module will load under: this machine's (the package
    // is built where it is meant to run, and declares the version).
    let glibc = Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|v| {
            let (major, minor) = v.trim().strip_prefix("glibc ")?.split_once('.')?;
            Some((major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?))
        });
    if glibc.is_none_or(|v| v < (2, 36)) {
        return;
    }
    link_if_accepted(out, &["-Wl,-z,pack-relative-relocs".to_string()]);
}

fn page_aligned_segments(out: &Path) {
    link_if_accepted(out, &["-Wl,-z,separate-loadable-segments".to_string()]);
}

fn plt_beside_init(out: &Path) {
    // An INSERT script only moves the one section; the linker's own layout
    // stays as it is for everything else.
    let script = out.join("plt-beside-init.ld");
    let text = "SECTIONS { .plt : { *(.plt) *(.iplt) } } INSERT BEFORE .text;\n";
    if std::fs::write(&script, text).is_ok() {
        link_if_accepted(out, &[format!("-Wl,-T,{}", script.display())]);
    }
}

/// Links the module with `args` if the linker takes them; whether it does.
fn link_if_accepted(out: &Path, args: &[String]) -> bool {
    let accepted = linker_accepts(out, args);
    if accepted {
        for arg in args {
            println!("cargo:rustc-cdylib-link-arg={arg}");
        }
    }
    accepted
}

/// Links an empty cdylib with `args`, the same compiler and flags.
fn linker_accepts(out: &Path, args: &[String]) -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let src = out.join("probe.rs");
    if std::fs::write(&src, "").is_err() {
        return false;
    }
    let mut cmd = Command::new(rustc);
    cmd.args([
        "--crate-type",
        "cdylib",
        "--crate-name",
        "probe",
        "--edition",
        "2021",
    ])
    .arg("-o")
    .arg(out.join("libprobe.so"))
    .arg(&src);
    if let Ok(target) = std::env::var("TARGET") {
        cmd.args(["--target", &target]);
    }
    if let Ok(flags) = std::env::var("CARGO_ENCODED_RUSTFLAGS") {
        cmd.args(flags.split('\x1f').filter(|f| !f.is_empty()));
    }
    for arg in args {
        cmd.arg("-C").arg(format!("link-arg={arg}"));
    }
    cmd.output().is_ok_and(|o| o.status.success())
}
