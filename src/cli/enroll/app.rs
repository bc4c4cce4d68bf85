//! A new app's key, for an enrollment and for `--add`: read from
//! `--secret-file` or made here, shown (QR code, key, URI), and confirmed
//! by a code from the app.
#![forbid(unsafe_code)]

use super::shown::show;
use super::{Args, Asking, CliError, QrStyle, Undone, ask_until_right, issuer, new_key};
use crate::cli::Ctx;
use crate::cli::proven::Over;
use crate::cli::secret_input;
use crate::cli::term::{self, Keyboard, Paint};
use crate::config::TotpParams;
use crate::files::secret;
use crate::qr::{self, Qr};
use crate::rules::totp::{self, Code};
use std::io::Write;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// Images to write: (path, bytes that hold the secret).
pub(super) type Images = Vec<(PathBuf, Zeroizing<Vec<u8>>)>;

/// A new app's key, shown to the person setting it up: from
/// `--secret-file` or made here, its URI, QR code and key shown (on stderr
/// with `--json`, not at all with `--json --no-confirm`), and the terminal
/// its first code is typed on.
pub(super) struct NewApp {
    pub key: Zeroizing<Vec<u8>>,
    pub b32: Zeroizing<String>,
    pub uri: Zeroizing<String>,
    pub params: TotpParams,
    code: Option<Qr>,
    /// The controlling terminal, when the secret took standard input.
    tty: Option<Keyboard>,
}

impl NewApp {
    /// `label`: the account the app shows under the issuer (the user, or
    /// "USER (NAME)" for one more app). `heading`: the line above.
    pub(super) fn shown(
        ctx: &Ctx,
        args: &Args,
        heading: &str,
        label: &str,
        undone: &Undone,
    ) -> Result<NewApp, CliError> {
        let confirming = !args.no_confirm;
        let mut tty = None;
        let key = match &args.secret_file {
            Some(source) => {
                let given = secret_input::read(source)?;
                if given.took_stdin && confirming {
                    tty = Some(Keyboard::controlling_terminal().map_err(|_| {
                        CliError::Usage(
                            "the secret took standard input and there is no terminal to type \
                             the app's code on: add --no-confirm, or give the secret as a file"
                                .into(),
                        )
                    })?);
                }
                given.key
            }
            None => new_key()?,
        };
        let params = ctx.config.totp;
        let issuer = issuer(ctx);
        let b32 = secret::encode_base32(&key);
        let uri = qr::otpauth_uri(&issuer, label, &b32, &params);
        let wants_qr = args.qr != QrStyle::None || args.png.is_some() || args.svg.is_some();
        let code = if wants_qr {
            Some(Qr::encode(uri.as_bytes()).map_err(|e| CliError::Failed(e.to_string()))?)
        } else {
            None
        };
        // With --json, stdout is for the one object: the person confirming
        // reads stderr.
        if !args.json || confirming {
            let drawing = code
                .as_ref()
                .filter(|_| args.qr != QrStyle::None)
                .map(|c| (c, args.qr));
            let account = format!("{issuer}:{label}");
            let show_on = |out: &mut dyn Write, paint| {
                show(out, paint, heading, &account, &b32, &params, &uri, drawing)
            };
            let shown = if args.json {
                let mut err = std::io::stderr();
                show_on(&mut err, Paint::stderr()).and_then(|()| err.flush())
            } else {
                term::to_stdout(|out| show_on(out, Paint::stdout()))
            };
            shown.map_err(|e| undone.because(&format!("the new key could not be shown ({e})")))?;
        }
        Ok(NewApp {
            key,
            b32,
            uri,
            params,
            code,
            tty,
        })
    }

    /// Unless `--no-confirm`, asks for a code from the app ([`confirm`]),
    /// on the controlling terminal if the secret took standard input, else
    /// on `keyboard`. Returns the start of its step.
    pub(super) fn confirmed(
        &self,
        args: &Args,
        keyboard: &Keyboard,
        undone: &Undone,
        over: Over<'_>,
    ) -> Result<Option<u64>, CliError> {
        if args.no_confirm {
            return Ok(None);
        }
        let keyboard = self.tty.as_ref().unwrap_or(keyboard);
        confirm(keyboard, undone, &self.key, &self.params, over).map(Some)
    }

    /// The images `--png` and `--svg` ask for, to write with the key.
    pub(super) fn images(&self, args: &Args) -> Result<Images, CliError> {
        let mut images = Vec::new();
        if let Some(c) = &self.code {
            if let Some(p) = &args.png {
                images.push((
                    p.clone(),
                    c.png().map_err(|e| CliError::Failed(e.to_string()))?,
                ));
            }
            if let Some(p) = &args.svg {
                images.push((p.clone(), Zeroizing::new(c.svg().as_bytes().to_vec())));
            }
        }
        Ok(images)
    }
}

/// "Wrote FILE (mode 0600: it holds the secret)." for each image written.
pub(super) fn print_written(out: &mut dyn Write, written: &[PathBuf]) -> std::io::Result<()> {
    for p in written {
        writeln!(
            out,
            "Wrote {} (mode 0600: it holds the secret).",
            p.display()
        )?;
    }
    Ok(())
}

/// Asks for the app's code, up to [`super::CONFIRM_TRIES`] times. Returns the start
/// of the matched time step.
fn confirm(
    keyboard: &Keyboard,
    undone: &Undone,
    key: &[u8],
    params: &TotpParams,
    over: Over<'_>,
) -> Result<u64, CliError> {
    let asking = Asking {
        prompt: format!("Code from the app ({} digits): ", params.digits),
        wrong: "That is not the app's current code for this account",
        last: "is the phone's clock set automatically?",
    };
    ask_until_right(keyboard, undone, &asking, over, |answer| {
        Ok(Code::parse(answer, params.digits)
            .and_then(|code| totp::matching_step(key, params, &code, crate::cli::unix_now()))
            .map(|step| step.saturating_mul(u64::from(params.period))))
    })
}
