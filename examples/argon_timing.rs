//! How long one recovery-code check takes with the built-in argon2
//! parameters (see src/rules/recovery.rs "Cost"). Run with --release.
fn main() {
    let codes = match pam_twostep::rules::recovery::generate() {
        Ok(c) => c,
        Err(e) => return eprintln!("{e}"),
    };
    let t = std::time::Instant::now();
    let Ok(hashes) = pam_twostep::rules::recovery::hash_set(&codes) else {
        return eprintln!("hashing failed");
    };
    println!("hash a set of {}: {:.0?}", codes.len(), t.elapsed());
    let mut ms: Vec<f64> = (0..20)
        .map(|_| {
            let t = std::time::Instant::now();
            let _ = pam_twostep::rules::recovery::find(&hashes, b"00000-00000");
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    println!(
        "one check (a wrong code), ms: min {:.1}  median {:.1}  max {:.1}",
        ms[0], ms[10], ms[19]
    );
}
