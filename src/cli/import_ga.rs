//! `twostep import-google-authenticator USER [FILE]`: adopt a
//! `~/.google_authenticator` file, so that a site can switch modules without
//! anyone re-scanning a QR code.
//!
//! The format (google-authenticator-libpam's FILEFORMAT): the first line is
//! the base32 secret; option lines start with `" ` and an upper-case name
//! (`TOTP_AUTH`, `HOTP_COUNTER n`, `STEP_SIZE n`, `WINDOW_SIZE n`,
//! `DISALLOW_REUSE [used steps]`, `RATE_LIMIT n m [times]`, `TIME_SKEW n`,
//! `RESETTING_TIME_SKEW ...`, `OTP_DISABLED`); the other lines are 8-digit
//! scratch codes. Its codes are always SHA1 and 6 digits.
#![forbid(unsafe_code)]

use super::enroll;
use super::proven::Over;
use super::term::{self, HoldSignals, Paint};
use super::{CliError, CliResult, Ctx};
use crate::config::{Algorithm, TotpParams};
use crate::files::fsutil;
use crate::files::secret::{self, SecretFile};
use crate::rules::recovery;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// google-authenticator's own limit is 1 kB; anything far past it is not one.
const MAX_FILE_BYTES: u64 = 64 * 1024;

#[derive(clap::Args, Debug)]
#[command(
    about = "Adopt a user's google-authenticator file: secret, step, scratch codes",
    after_help = "\
The user's app keeps working unchanged: same secret, SHA1, 6 digits, the
file's STEP_SIZE. Scratch codes become recovery codes (stored hashed, each
works once). Counter-based (HOTP) files are refused. The file is left in
place; remove it once pam_google_authenticator.so is out of the PAM stack.

Examples:
  twostep import-google-authenticator alice            reads ~alice/.google_authenticator
  twostep import-google-authenticator alice /root/ga/alice
  for u in $(ls /home); do twostep import-google-authenticator \"$u\"; done"
)]
pub struct Args {
    /// The user to enroll
    user: String,
    /// The file to read [default: the user's ~/.google_authenticator]
    file: Option<PathBuf>,
    /// Replace an existing twostep enrollment
    #[arg(long)]
    force: bool,
}

/// A parsed google-authenticator file.
#[derive(Debug, Default)]
pub struct GaFile {
    /// As written (upper-cased), base32 without padding.
    pub secret: Zeroizing<String>,
    pub totp: bool,
    pub hotp: bool,
    pub disabled: bool,
    /// Seconds per step; google-authenticator's default is 30.
    pub step: Option<u32>,
    /// Codes accepted around now, in total; the default 3 is one step either side.
    pub window: Option<u32>,
    /// `DISALLOW_REUSE` and the steps (Unix time / step) already used.
    pub disallow_reuse: Option<Vec<u64>>,
    pub rate_limit: Option<(u32, u32)>,
    /// Steps the phone's clock was measured off by.
    pub time_skew: Option<i64>,
    pub scratch_codes: Vec<Zeroizing<String>>,
    /// Option names this parser does not know (ignored).
    pub unknown: Vec<String>,
}

/// Why a file cannot be imported. Never quotes the file: it holds secrets.
#[derive(Debug, PartialEq, Eq)]
pub enum GaError {
    Empty,
    BadSecret,
    Option { line: usize, name: String },
    Line(usize),
    Hotp,
    NotTotp,
    Disabled,
}

impl std::fmt::Display for GaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GaError::Empty => f.write_str("is empty"),
            GaError::BadSecret => {
                f.write_str("line 1 is not a base32 secret: not a google-authenticator file")
            }
            GaError::Option { line, name } => write!(f, "line {line}: bad value for {name}"),
            GaError::Line(line) => write!(
                f,
                "line {line} is neither an option nor an 8-digit scratch code"
            ),
            GaError::Hotp => f.write_str(
                "is set up for counter-based codes (HOTP_COUNTER); twostep supports only \
                 time-based codes (TOTP): enroll this user anew with `twostep enroll`",
            ),
            GaError::NotTotp => f.write_str(
                "has no TOTP_AUTH line, so google-authenticator does not use it for \
                 time-based codes; nothing to import",
            ),
            GaError::Disabled => {
                f.write_str("has OTP_DISABLED: codes are disabled for this user; nothing to import")
            }
        }
    }
}

fn number<T: std::str::FromStr>(arg: Option<&str>, line: usize, name: &str) -> Result<T, GaError> {
    arg.and_then(|a| a.parse().ok()).ok_or(GaError::Option {
        line,
        name: name.to_string(),
    })
}

/// Parses the text of a google-authenticator file.
pub fn parse(text: &str) -> Result<GaFile, GaError> {
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let first = lines.next().map(str::trim).unwrap_or("");
    if first.is_empty() {
        return Err(GaError::Empty);
    }
    let upper = Zeroizing::new(first.to_ascii_uppercase());
    if !upper
        .bytes()
        .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
        || secret::decode_base32(&upper).is_none()
    {
        return Err(GaError::BadSecret);
    }
    let mut ga = GaFile {
        secret: upper,
        ..GaFile::default()
    };
    for (i, line) in lines.enumerate() {
        let number_of_line = i + 2;
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        if let Some(option) = trimmed.strip_prefix('"') {
            let mut words = option.split_whitespace();
            let name = words.next().unwrap_or("");
            let n = number_of_line;
            match name {
                "TOTP_AUTH" => ga.totp = true,
                "HOTP_COUNTER" => {
                    ga.hotp = true;
                    let _: u64 = number(words.next(), n, name)?;
                }
                "STEP_SIZE" => {
                    let step: u32 = number(words.next(), n, name)?;
                    if step == 0 {
                        return Err(GaError::Option {
                            line: n,
                            name: name.into(),
                        });
                    }
                    ga.step = Some(step);
                }
                "WINDOW_SIZE" => {
                    let w: u32 = number(words.next(), n, name)?;
                    // google-authenticator's own bounds.
                    if !(1..=100).contains(&w) {
                        return Err(GaError::Option {
                            line: n,
                            name: name.into(),
                        });
                    }
                    ga.window = Some(w);
                }
                "DISALLOW_REUSE" => {
                    let used = words
                        .map(|w| number(Some(w), n, name))
                        .collect::<Result<Vec<u64>, _>>()?;
                    ga.disallow_reuse = Some(used);
                }
                "RATE_LIMIT" => {
                    let count: u32 = number(words.next(), n, name)?;
                    let seconds: u32 = number(words.next(), n, name)?;
                    ga.rate_limit = Some((count, seconds));
                }
                "TIME_SKEW" => ga.time_skew = Some(number(words.next(), n, name)?),
                // google-authenticator's bookkeeping while it measures a skew.
                "RESETTING_TIME_SKEW" => {}
                "OTP_DISABLED" => ga.disabled = true,
                other => ga.unknown.push(other.to_string()),
            }
            continue;
        }
        let scratch = trimmed.len() == recovery::SCRATCH_LEN
            && trimmed.bytes().all(|b| b.is_ascii_digit())
            && !trimmed.starts_with('0');
        if !scratch {
            return Err(GaError::Line(number_of_line));
        }
        if !ga.scratch_codes.iter().any(|c| c.as_str() == trimmed) {
            ga.scratch_codes.push(Zeroizing::new(trimmed.to_string()));
        }
    }
    if ga.hotp {
        return Err(GaError::Hotp);
    }
    if ga.disabled {
        return Err(GaError::Disabled);
    }
    if !ga.totp {
        return Err(GaError::NotTotp);
    }
    Ok(ga)
}

/// Steps either side of now that google-authenticator accepted with this
/// window (its loop runs from -((w-1)/2) to w/2).
pub fn window_reach(window: u32) -> u32 {
    window / 2
}

/// Reads FILE as root without being fooled by the user who owns it: no
/// symbolic link, a regular file, owned by the user or root, not open to
/// others, and small.
fn read_file(path: &std::path::Path, owner: u32) -> Result<Zeroizing<String>, CliError> {
    let shown = path.display();
    let file = fsutil::open_nofollow(path, false).map_err(|e| {
        let why = fsutil::classify_open_error(e, |s| s, |e| e.to_string());
        CliError::Failed(format!("{shown}: {why}"))
    })?;
    let meta = file
        .metadata()
        .map_err(|e| CliError::Failed(format!("{shown}: {e}")))?;
    if !meta.file_type().is_file() {
        return Err(CliError::Failed(format!("{shown} is not a regular file")));
    }
    if meta.uid() != owner && meta.uid() != 0 {
        return Err(CliError::Failed(format!(
            "{shown} is owned by uid {}, neither the user nor root: refusing to trust it",
            meta.uid()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(CliError::Failed(format!(
            "{shown} has mode {:04o}: others may know its secret (pam_google_authenticator \
             refuses it too); enroll this user anew with `twostep enroll`",
            meta.mode() & 0o7777
        )));
    }
    if meta.size() > MAX_FILE_BYTES {
        return Err(CliError::Failed(format!(
            "{shown} is {} bytes: not a google-authenticator file",
            meta.size()
        )));
    }
    fsutil::read_text(&file, meta.size(), MAX_FILE_BYTES)
        .map(Zeroizing::new)
        .map_err(|e| CliError::Failed(format!("{shown}: {e}")))
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    super::require_root("import-google-authenticator")?;
    let user = super::existing_user(&args.user)?;
    let account = match nix::unistd::User::from_name(user.as_str()) {
        Ok(Some(a)) => a,
        Ok(None) => return Err(CliError::Failed(format!("no such user: {user}"))),
        Err(e) => return Err(CliError::Failed(format!("cannot look up {user}: {e}"))),
    };
    if enroll::is_enrolled(ctx, &user) && !args.force {
        return Err(CliError::Failed(format!(
            "{user} is already enrolled in twostep; use --force to replace the enrollment"
        )));
    }
    let path = args
        .file
        .clone()
        .unwrap_or_else(|| account.dir.join(".google_authenticator"));
    let text = read_file(&path, account.uid.as_raw())?;
    let ga = parse(&text).map_err(|e| CliError::Failed(format!("{}: {e}", path.display())))?;

    let key = secret::decode_base32(&ga.secret)
        .ok_or_else(|| CliError::Failed(format!("{}: the secret is not base32", path.display())))?;
    if key.len() < secret::MIN_SECRET_BYTES {
        return Err(CliError::Failed(format!(
            "{}: the secret is {} bits; twostep requires at least 128 (older \
             google-authenticator versions made 80): enroll this user anew with `twostep enroll`",
            path.display(),
            key.len() * 8
        )));
    }
    if key.len() > secret::MAX_SECRET_BYTES {
        return Err(CliError::Failed(format!(
            "{}: the secret is longer than 1024 bits",
            path.display()
        )));
    }
    let step = ga.step.unwrap_or(30);
    if !(15..=300).contains(&step) {
        return Err(CliError::Failed(format!(
            "{}: STEP_SIZE {step} is outside what twostep supports (15 to 300 seconds)",
            path.display()
        )));
    }
    // What the user's app has: google-authenticator's codes are SHA1, 6 digits.
    let params = TotpParams {
        digits: 6,
        period: step,
        algorithm: Algorithm::SHA1,
        skew: ctx.config.totp.skew,
    };
    let hashes = recovery::hash_typed(&ga.scratch_codes)
        .map_err(|e| CliError::Failed(format!("recovery codes: {e}")))?;
    let file = SecretFile {
        secret: Some(Zeroizing::new(secret::encode_base32(&key).to_string())),
        method: secret::Method::Totp,
        email: None,
        phone: None,
        ..enroll::secret_file("", &params, hashes)
    };
    // Steps google-authenticator already accepted stay used here too.
    let used_until = ga
        .disallow_reuse
        .as_ref()
        .and_then(|steps| steps.iter().max())
        .map(|s| s.saturating_mul(u64::from(step)));

    let hold = HoldSignals::new();
    let replaced = enroll::activate(ctx, &user, &file, args.force, used_until, Over::Anything)?;
    ctx.log_admin("enrolled", &user);
    // Done and recorded: the notice goes out even if this cannot be shown.
    let bits = key.len() * 8;
    let _ =
        term::to_stdout(|out| print_report(out, ctx, &user, &path, &ga, &params, bits, replaced));
    drop(hold);
    ctx.notify(crate::delivery::Event::Enrolled, &user, None);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn print_report(
    out: &mut dyn std::io::Write,
    ctx: &Ctx,
    user: &crate::base::user::UserName,
    path: &std::path::Path,
    ga: &GaFile,
    params: &TotpParams,
    bits: usize,
    replaced: bool,
) -> std::io::Result<()> {
    let paint = Paint::stdout();
    writeln!(
        out,
        "{}{}",
        paint.green(&format!("Imported {} for {user}.", term::escape_path(path))),
        if replaced {
            " The previous twostep enrollment was replaced."
        } else {
            ""
        }
    )?;
    let skew = ctx.config.totp.skew;
    let mut rows = vec![
        (
            "Secret",
            format!(
                "{bits} bits, SHA1, 6 digits, every {} seconds: the app needs no change",
                params.period
            ),
        ),
        (
            "Scratch codes",
            match ga.scratch_codes.len() {
                0 => "none: issue recovery codes with `twostep recovery-codes`".to_string(),
                n => format!("{n}, now recovery codes (stored hashed; each works once)"),
            },
        ),
    ];
    let reach = window_reach(ga.window.unwrap_or(3));
    let window = match reach.cmp(&u32::from(skew)) {
        std::cmp::Ordering::Equal => format!("{reach} step(s) either side, as totp.skew here"),
        std::cmp::Ordering::Less => {
            format!("{reach} step(s) either side in the file; twostep accepts totp.skew = {skew}")
        }
        std::cmp::Ordering::Greater => paint.yellow(&format!(
            "the file accepted codes {reach} steps away; twostep accepts totp.skew = {skew} \
             for every user (a secret file has no per-user window). Raise totp.skew in {} \
             if this user's phone clock drifts",
            ctx.config_path.display()
        )),
    };
    rows.push(("Window", window));
    if let Some(off) = ga.time_skew.filter(|s| *s != 0) {
        rows.push((
            "Clock",
            paint.yellow(&format!(
                "pam_google_authenticator measured this phone's clock {off} step(s) off and \
                 corrected for it; twostep does not. If codes are refused, set the phone's \
                 clock automatically"
            )),
        ));
    }
    rows.push((
        "Reuse",
        match &ga.disallow_reuse {
            Some(_) => "refused, as in the file (twostep always refuses it)".to_string(),
            None => "now refused: twostep accepts each code once".to_string(),
        },
    ));
    if let Some((n, m)) = ga.rate_limit {
        rows.push((
            "Rate limit",
            format!("RATE_LIMIT {n} per {m}s gives way to twostep's lockout tiers"),
        ));
    }
    if !ga.unknown.is_empty() {
        rows.push((
            "Ignored",
            format!("unknown options: {}", term::escape(&ga.unknown.join(" "))),
        ));
    }
    write!(out, "{}", term::aligned(&rows))?;
    writeln!(
        out,
        "The file was left in place: its scratch codes still work with pam_google_authenticator.\n\
         Remove it once that module is out of the PAM stack."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "7PFDNWGA4WTWSGPZ4CLU3435WE";

    #[test]
    fn a_file_as_google_authenticator_writes_it() {
        // google-authenticator -t -d -f -r 3 -R 30 -w 3 -q -Q NONE -C -s FILE
        let text = format!(
            "{SECRET}\n\" RATE_LIMIT 3 30\n\" WINDOW_SIZE 3\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n\
             38485167\n24447943\n35195581\n99121822\n11508917\n"
        );
        let ga = parse(&text).unwrap();
        assert_eq!(ga.secret.as_str(), SECRET);
        assert!(ga.totp && !ga.hotp);
        assert_eq!(ga.rate_limit, Some((3, 30)));
        assert_eq!(ga.window, Some(3));
        assert_eq!(ga.disallow_reuse, Some(vec![]));
        assert_eq!(ga.step, None);
        let codes: Vec<&str> = ga.scratch_codes.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            codes,
            ["38485167", "24447943", "35195581", "99121822", "11508917"]
        );
    }

    #[test]
    fn options_and_their_state() {
        let text = format!(
            "{}\r\n\" WINDOW_SIZE 17\r\n\" STEP_SIZE 60\r\n\" DISALLOW_REUSE 28333334 28333335\r\n\
             \" RATE_LIMIT 3 30 1700000000 1700000010\r\n\" TIME_SKEW -2\r\n\
             \" RESETTING_TIME_SKEW 28333334+2 28333335+2\r\n\" FUTURE_OPTION x\r\n\
             \" TOTP_AUTH\r\n\r\n12345678\r\n12345678\r\n",
            SECRET.to_lowercase()
        );
        let ga = parse(&text).unwrap();
        assert_eq!(ga.secret.as_str(), SECRET);
        assert_eq!(ga.window, Some(17));
        assert_eq!(ga.step, Some(60));
        assert_eq!(ga.disallow_reuse, Some(vec![28333334, 28333335]));
        assert_eq!(ga.rate_limit, Some((3, 30)));
        assert_eq!(ga.time_skew, Some(-2));
        assert_eq!(ga.unknown, ["FUTURE_OPTION"]);
        assert_eq!(ga.scratch_codes.len(), 1, "duplicates collapse");
    }

    #[test]
    fn malformed_and_refused_files() {
        let ok = |rest: &str| format!("{SECRET}\n\" TOTP_AUTH\n{rest}");
        let cases: Vec<(String, GaError)> = vec![
            (String::new(), GaError::Empty),
            ("\n\" TOTP_AUTH\n".into(), GaError::Empty),
            ("not a secret!\n\" TOTP_AUTH\n".into(), GaError::BadSecret),
            ("secret = \"GEZDGNBVGY3TQOJQ\"\n".into(), GaError::BadSecret),
            ("GEZD1NBV\n\" TOTP_AUTH\n".into(), GaError::BadSecret),
            (format!("{SECRET}\n\" WINDOW_SIZE 3\n"), GaError::NotTotp),
            (
                format!("{SECRET}\n\" WINDOW_SIZE 3\n\" HOTP_COUNTER 1\n12345678\n"),
                GaError::Hotp,
            ),
            (
                format!("{SECRET}\n\" TOTP_AUTH\n\" HOTP_COUNTER 4\n"),
                GaError::Hotp,
            ),
            (ok("\" OTP_DISABLED\n"), GaError::Disabled),
            (
                ok("\" STEP_SIZE\n"),
                GaError::Option {
                    line: 3,
                    name: "STEP_SIZE".into(),
                },
            ),
            (
                ok("\" STEP_SIZE 0\n"),
                GaError::Option {
                    line: 3,
                    name: "STEP_SIZE".into(),
                },
            ),
            (
                ok("\" WINDOW_SIZE 101\n"),
                GaError::Option {
                    line: 3,
                    name: "WINDOW_SIZE".into(),
                },
            ),
            (
                ok("\" DISALLOW_REUSE 1 x\n"),
                GaError::Option {
                    line: 3,
                    name: "DISALLOW_REUSE".into(),
                },
            ),
            (
                ok("\" RATE_LIMIT 3\n"),
                GaError::Option {
                    line: 3,
                    name: "RATE_LIMIT".into(),
                },
            ),
            (ok("1234567\n"), GaError::Line(3)),
            (ok("123456789\n"), GaError::Line(3)),
            (ok("01234567\n"), GaError::Line(3)),
            (ok("12345678\nhello\n"), GaError::Line(4)),
        ];
        for (text, want) in cases {
            assert_eq!(parse(&text).unwrap_err(), want, "{text:?}");
        }
    }

    #[test]
    fn errors_never_quote_the_file() {
        let text = format!("{SECRET}\n\" TOTP_AUTH\n99999999 {SECRET}\n");
        let e = parse(&text).unwrap_err().to_string();
        assert!(!e.contains(SECRET) && !e.contains("99999999"), "{e}");
    }

    #[test]
    fn window_sizes() {
        // google-authenticator checks steps -((w-1)/2) ..= w/2.
        assert_eq!(window_reach(1), 0);
        assert_eq!(window_reach(3), 1);
        assert_eq!(window_reach(4), 2);
        assert_eq!(window_reach(17), 8);
    }
}
