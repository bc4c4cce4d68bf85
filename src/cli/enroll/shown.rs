//! What an enrollment shows: the new key (QR code, key, URI), the recovery
//! codes, that it is done. Every write is checked: what could not be shown
//! is not made (the recovery codes go out before anything is written), and
//! what comes after the write never stops its record and notice.
#![forbid(unsafe_code)]

use super::{QrStyle, not_enrolled};
use crate::base::user::UserName;
use crate::cli::term::{self, Paint};
use crate::cli::{CliError, CliResult};
use crate::config::TotpParams;
use crate::files::secret::DeviceName;
use crate::qr::{self, Qr};
use std::io::Write;
use zeroize::Zeroizing;

/// The recovery codes, two columns, numbered.
pub fn print_recovery_codes(
    out: &mut dyn Write,
    paint: Paint,
    user: &UserName,
    codes: &[Zeroizing<String>],
) -> std::io::Result<()> {
    writeln!(
        out,
        "\n{}",
        paint.bold(&format!(
            "Recovery codes for {user}: each one logs in once, in place of a code."
        ))
    )?;
    writeln!(
        out,
        "Keep them somewhere safe, away from the phone. They are not shown again.\n"
    )?;
    let half = codes.len().div_ceil(2);
    for i in 0..half {
        let left = format!("{:>4}. {}", i + 1, codes[i].as_str());
        match codes.get(i + half) {
            Some(right) => writeln!(out, "{left:<20}{:>4}. {}", i + half + 1, right.as_str())?,
            None => writeln!(out, "{left}")?,
        }
    }
    Ok(())
}

/// The error of an enrollment that failed after its recovery codes were
/// shown: they do not work.
pub(super) fn codes_shown_in_vain(user: &UserName, e: CliError) -> CliError {
    CliError::Failed(format!(
        "{e}; {user} was not enrolled: the recovery codes shown above do not work"
    ))
}

/// Shows the new recovery codes (with `--json`, the one object instead),
/// before anything is written: codes that could not be shown are not made.
pub(super) fn show_codes(
    user: &UserName,
    json: Option<&serde_json::Value>,
    codes: &[Zeroizing<String>],
) -> CliResult {
    term::to_stdout(|out| match json {
        Some(object) => writeln!(out, "{object}"),
        None => print_recovery_codes(out, Paint::stdout(), user, codes),
    })
    .map_err(|e| {
        not_enrolled(
            user,
            &format!("the recovery codes could not be shown (standard output: {e})"),
        )
    })
}

/// The account an app shows for one more authenticator of `user`: "USER
/// (NAME)", so that an app holding two of them tells them apart.
pub(crate) fn device_label(user: &UserName, name: &DeviceName) -> String {
    format!("{user} ({name})")
}

/// What the person setting up an app is shown: `heading`, the QR code,
/// the key, the account ("ISSUER:LABEL", as the app will show it) and the
/// URI.
#[allow(clippy::too_many_arguments)]
pub(crate) fn show(
    out: &mut dyn Write,
    paint: Paint,
    heading: &str,
    account: &str,
    b32: &str,
    params: &TotpParams,
    uri: &str,
    code: Option<(&Qr, QrStyle)>,
) -> std::io::Result<()> {
    writeln!(out, "{}\n", paint.bold(heading))?;
    if let Some((qr, style)) = code {
        let style = match style {
            QrStyle::Ansi => qr::Style::Ansi,
            _ => qr::Style::Utf8,
        };
        match qr.terminal(style) {
            Ok(drawing) => writeln!(out, "{}", drawing.as_str())?,
            Err(e) => writeln!(
                out,
                "{}\n",
                paint.yellow(&format!("No QR code shown: {e}."))
            )?,
        }
    }
    writeln!(
        out,
        "Scan the QR code with an authenticator app (Google Authenticator, Microsoft\n\
         Authenticator, Authy...), or add the account by hand:\n"
    )?;
    write!(
        out,
        "{}",
        term::aligned(&[
            ("Key", paint.bold(&super::grouped(b32))),
            ("Account", account.to_string()),
            (
                "Type",
                format!(
                    "time-based, {}, {} digits, every {} seconds",
                    params.algorithm.as_str(),
                    params.digits,
                    params.period
                ),
            ),
            ("URI", uri.to_string()),
        ])
    )?;
    writeln!(out)
}

/// "Enrolled USER`how`." and, if an enrollment was replaced, that its
/// secret and recovery codes no longer work.
pub(super) fn print_enrolled(
    out: &mut dyn Write,
    paint: Paint,
    user: &UserName,
    how: &str,
    replaced: bool,
) -> std::io::Result<()> {
    writeln!(out, "{}", paint.green(&format!("Enrolled {user}{how}.")))?;
    if replaced {
        writeln!(
            out,
            "The previous secret and recovery codes of {user} no longer work."
        )?;
    }
    Ok(())
}
