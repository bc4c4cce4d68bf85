//! A panic inside the module must never cross into the host process: it
//! becomes PAM_ABORT and the application carries on. Checked through the
//! real libpam with the module as built, whose unwinder is linked statically
//! (build.rs). The `panic-probe` argument exists only in test (debug) builds.

mod common;
use common::*;

const PAM_ABORT: i32 = 26;

#[test]
fn a_panic_is_caught_at_the_pam_boundary() {
    ensure_user("ts-panic", None);
    let rig = Rig::new("panic", "");
    let m = module();
    // Two modules in one stack: the application goes on after the panic and
    // runs the next line (pam_permit), so the process is intact.
    rig.service(
        "probe",
        &format!(
            "auth optional {m} config={c} panic-probe\nauth required pam_permit.so\n",
            m = m.display(),
            c = rig.config.display()
        ),
    );
    let login = rig.login_with("probe", "ts-panic", &["123456"], &[]);
    assert!(
        login.out.contains("RESULT: 0 "),
        "the stack went on: {}",
        login.out
    );
    rig.service(
        "probe",
        &format!(
            "auth required {} config={} panic-probe\n",
            m.display(),
            rig.config.display()
        ),
    );
    let login = rig.login_with("probe", "ts-panic", &["123456"], &[]);
    assert_eq!(login.code, PAM_ABORT, "{}", login.out);
    assert!(login.out.contains("RESULT: 26 "), "{}", login.out);
}

#[test]
fn the_module_does_not_load_libgcc_s() {
    // The static unwinder (build.rs): no libgcc_s.so.1 to load per login.
    let out = std::process::Command::new("readelf")
        .arg("-d")
        .arg(module())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("libpam.so"), "{text}");
    assert!(!text.contains("libgcc_s"), "{text}");
}
