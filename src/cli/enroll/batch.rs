//! `twostep enroll --batch FILE --out-dir DIR`: every user listed, each
//! enrolled whole or not at all, without confirmation; for each, the QR code
//! as a PNG, the URI and the recovery codes in files only root may read, to
//! hand to the user.
#![forbid(unsafe_code)]

use super::{Args, activate, ensure_private_dir, is_enrolled, issuer, new_key};
use super::{new_recovery_codes, remove_all, secret_file, write_all_private};
use crate::cli::proven::Over;
use crate::cli::term::{self, HoldSignals, Paint};
use crate::cli::{CliError, CliResult, Ctx};
use crate::delivery::Event;
use crate::files::secret;
use crate::qr::{self, Qr};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The user names of a batch file: one a line; blank lines and `#` comments
/// are skipped. Returns (line number, name as written).
pub fn batch_names(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let name = line.split('#').next().unwrap_or("").trim();
            (!name.is_empty()).then(|| (i + 1, name.to_string()))
        })
        .collect()
}

#[derive(Default, serde::Serialize)]
struct BatchSummary {
    enrolled: Vec<String>,
    skipped: Vec<String>,
    failed: Vec<BatchFailure>,
    out_dir: String,
}

#[derive(serde::Serialize)]
struct BatchFailure {
    user: String,
    error: String,
}

fn read_list(list: &Path) -> Result<String, CliError> {
    let mut text = String::new();
    let result = if list == Path::new("-") {
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
    } else {
        std::fs::File::open(list).and_then(|mut f| std::io::Read::read_to_string(&mut f, &mut text))
    };
    result.map_err(|e| CliError::Usage(format!("cannot read {}: {e}", list.display())))?;
    Ok(text)
}

/// Enrolls one user of a batch: all or nothing. `Ok(false)`: skipped,
/// already enrolled.
fn enroll_one(ctx: &Ctx, raw: &str, out_dir: &Path, force: bool) -> Result<bool, CliError> {
    let user = crate::cli::existing_user(raw)?;
    if is_enrolled(ctx, &user) && !force {
        return Ok(false);
    }
    let params = ctx.config.totp;
    let issuer = issuer(ctx);
    let key = new_key()?;
    let b32 = secret::encode_base32(&key);
    let uri = qr::otpauth_uri(&issuer, user.as_str(), &b32, &params);
    let png = Qr::encode(uri.as_bytes())
        .and_then(|c| c.png())
        .map_err(|e| CliError::Failed(e.to_string()))?;
    let (shown, hashes) = new_recovery_codes()?;
    let mut codes_text = Zeroizing::new(format!(
        "# Recovery codes for {user} on {issuer}: each one logs in once, in place of a code.\n"
    ));
    for c in &shown {
        codes_text.push_str(c);
        codes_text.push('\n');
    }
    let uri_line = Zeroizing::new(format!("{}\n", uri.as_str()));
    let outputs: [(PathBuf, &[u8]); 3] = [
        (out_dir.join(format!("{user}.png")), &png[..]),
        (out_dir.join(format!("{user}.uri")), uri_line.as_bytes()),
        (
            out_dir.join(format!("{user}.recovery")),
            codes_text.as_bytes(),
        ),
    ];
    let written = write_all_private(&outputs)?;
    let file = secret_file(&b32, &params, hashes);
    if let Err(e) = activate(ctx, &user, &file, force, None, Over::Anything) {
        remove_all(&written);
        return Err(e);
    }
    ctx.log_admin("enrolled", &user);
    ctx.notify(Event::Enrolled, &user, None);
    Ok(true)
}

pub(super) fn run(ctx: &Ctx, args: &Args, list: &Path, out_dir: &Path) -> CliResult {
    let text = read_list(list)?;
    ensure_private_dir(out_dir)?;
    let mut summary = BatchSummary {
        out_dir: out_dir.display().to_string(),
        ..BatchSummary::default()
    };
    let mut seen = BTreeSet::new();
    for (line, raw) in batch_names(&text) {
        if !seen.insert(raw.clone()) {
            continue;
        }
        // Each user is written and shown whole: Ctrl-C stops between users.
        let _hold = HoldSignals::new();
        match enroll_one(ctx, &raw, out_dir, args.force) {
            Ok(true) => summary.enrolled.push(raw),
            Ok(false) => summary.skipped.push(raw),
            Err(e) => summary.failed.push(BatchFailure {
                user: raw,
                error: format!("line {line}: {e}"),
            }),
        }
    }
    if args.json {
        println!("{}", serde_json::to_string(&summary).unwrap_or_default());
    } else {
        print_batch_summary(&summary, args.force);
    }
    if summary.failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Failed(format!(
            "{} of the listed users could not be enrolled",
            summary.failed.len()
        )))
    }
}

fn print_batch_summary(s: &BatchSummary, force: bool) {
    let paint = Paint::stdout();
    let mut rows = vec![(
        "Enrolled",
        if s.enrolled.is_empty() {
            "none".to_string()
        } else {
            paint.green(&format!("{} ({})", s.enrolled.join(" "), s.enrolled.len()))
        },
    )];
    if !s.skipped.is_empty() {
        rows.push((
            "Skipped",
            format!(
                "{} ({}): already enrolled, left as they were{}",
                s.skipped.join(" "),
                s.skipped.len(),
                if force { "" } else { " (--force re-keys them)" }
            ),
        ));
    }
    if !s.failed.is_empty() {
        rows.push((
            "Failed",
            paint.red(&format!(
                "{} user(s), nothing written for them:",
                s.failed.len()
            )),
        ));
    }
    print!("{}", term::aligned(&rows));
    for f in &s.failed {
        println!("    {}: {}", term::escape(&f.user), term::escape(&f.error));
    }
    if !s.enrolled.is_empty() {
        println!(
            "\nFor each enrolled user, {} holds USER.png (the QR code), USER.uri and\n\
             USER.recovery (the recovery codes), mode 0600. They are the secrets in clear:\n\
             hand each user their files, then delete them.",
            s.out_dir
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_files_skip_blanks_and_comments() {
        let text =
            "# the ops team\nalice\n\n  bob  \ncarol # on leave until May\n   # nobody\n\tdave\n";
        let got = batch_names(text);
        assert_eq!(
            got,
            vec![
                (2, "alice".to_string()),
                (4, "bob".to_string()),
                (5, "carol".to_string()),
                (7, "dave".to_string()),
            ]
        );
        assert!(batch_names("").is_empty());
    }
}
