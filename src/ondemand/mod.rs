//! What the module loads only when a login needs it: the on-demand part,
//! `libtwostep_ondemand.so`, at a path fixed when the module is built
//! ([`PART_PATH`]; the Debian package: `/usr/lib/twostep/`).
//!
//! Why a second library: libpam loads `pam_twostep.so` with RTLD_NOW at
//! every `pam_start` (each sshd connection, each su, sudo and console
//! login), and every undefined symbol and relocated page of it is paid for
//! there, whether the login uses it or not. Starting a child with nothing
//! of the caller's (fork, exec, setresuid, setgroups, resource limits,
//! signal masks, pidfd, waitid: `delivery::spawn` and `delivery::child`)
//! is most of the module's C surface and is needed only by the logins that
//! send a code or a notice, where the MTA's milliseconds dwarf a load. So
//! the module asks the part to run sendmail or the SMS command, and the
//! part does it with the same code the commands use in-process.
//! docs/performance.md has the figures.
//!
//! The part also draws the QR code that enrollment at login shows
//! ([`qr_drawing`]): the QR encoder's tables are 1.7 KB of pointers that
//! ld.so would otherwise relocate at every load of the module, for the few
//! logins that enroll. Without the part, enrollment at login still works:
//! the user adds the key by hand (docs/performance.md, "What a load pays
//! for").
//!
//! What guards it, since a library dlopened into sshd runs as root:
//!
//! - The path is a constant of the build, never configuration.
//! - It is loaded only if it is a regular file owned by root, not writable
//!   by group or others, reached through links and directories only root
//!   can change ([`crate::delivery::library_problem`], the check sendmail
//!   gets, and what `twostep check` reports).
//! - Its version of the request format must be the module's ([`ABI`]).
//! - A missing or refused part fails only what needs it: the send is a
//!   `delivery_failed reason=part` record naming the path and why, and the
//!   login that wanted a sent code is denied as for any failed send. A
//!   login with an app code never loads it.
//!
//! The boundary is C's: one function taking a request as bytes
//! ([`wire`]), writing a one-line error into a buffer of ours. Each side
//! has its own Rust runtime; nothing allocated on one side is freed on the
//! other, and a panic in the part is caught there.
#![deny(unsafe_code)]

// The one file of this folder that talks to C: dlopen, dlsym and the call.
#[allow(unsafe_code)]
mod load;
pub mod wire;

use crate::delivery::{DeliveryError, Job};
use std::ffi::CStr;
use std::path::Path;
use zeroize::Zeroizing;

/// Where the module looks for its on-demand part; set when it is built
/// (build.rs: `TWOSTEP_ONDEMAND_PATH`, else beside a debug build's module,
/// else `/usr/lib/twostep/libtwostep_ondemand.so`).
pub const PART_PATH: &str = env!("TWOSTEP_ONDEMAND_PATH");

/// The version of [`wire`]'s request and reply, which the part must share.
/// 2: the QR request.
pub const ABI: u32 = 2;

/// The part's symbols, C names.
pub const ABI_SYMBOL: &CStr = c"twostep_ondemand_abi";
pub const RUN_SYMBOL: &CStr = c"twostep_ondemand_run";

/// The longest reply the part may write: one line for a record's detail,
/// which holds up to `spawn::STDERR_KEPT` bytes of the program's stderr
/// besides its path (at most PATH_MAX) and a few words.
pub const REPLY_MAX: usize = 16 * 1024;

/// `twostep_ondemand_run`'s results.
pub const RUN_OK: i32 = 0;
pub const RUN_FAILED: i32 = 1;
pub const RUN_BAD_REQUEST: i32 = 2;
pub const RUN_PANICKED: i32 = 3;

/// Runs `job` through the on-demand part at [`PART_PATH`].
pub fn run(job: &Job<'_>) -> Result<(), DeliveryError> {
    let part = load::Part::open(Path::new(PART_PATH)).map_err(DeliveryError::part)?;
    let (status, reply) = part.call(&wire::encode(job));
    wire::outcome(status, &reply)
}

/// Why [`qr_drawing`] gave no drawing.
#[derive(Debug)]
pub enum NoQr {
    /// The code does not fit a terminal, or the text a QR code.
    DoesNotFit,
    /// The part is missing, refused, or failed: why, naming it.
    Part(String),
}

/// The QR code of `uri` drawn for a terminal (half blocks, quiet zone
/// included) by the on-demand part.
pub fn qr_drawing(uri: &str) -> Result<Zeroizing<String>, NoQr> {
    let part = load::Part::open(Path::new(PART_PATH)).map_err(NoQr::Part)?;
    let (status, reply) = part.call(&wire::encode_qr(uri));
    let text = String::from_utf8_lossy(&reply);
    match (status, text.split_once('\n')) {
        (RUN_OK, _) => Ok(Zeroizing::new(text.into_owned())),
        (RUN_FAILED, Some(("qr", _))) => Err(NoQr::DoesNotFit),
        (other, _) => Err(NoQr::Part(format!(
            "the on-demand part {PART_PATH} did not draw the QR code ({other}): {text}"
        ))),
    }
}

/// What is wrong with the part at [`PART_PATH`] (missing, not root's,
/// writable by others, not loadable, another version), or None: for
/// `twostep check`, which loads it as a login would.
pub fn problem() -> Option<String> {
    load::Part::open(Path::new(PART_PATH)).err()
}

/// The part's side of [`RUN_SYMBOL`]: decodes `request`, runs it here, and
/// returns the status and the reply (wiped when dropped: a QR drawing
/// holds a secret). Called by parts/ondemand, inside its catch_unwind.
pub fn serve(request: &[u8]) -> (i32, Zeroizing<String>) {
    if let Some(text) = wire::decode_qr(request) {
        return draw(&text);
    }
    let Some(job) = wire::decode(request) else {
        return (
            RUN_BAD_REQUEST,
            Zeroizing::new("part\nthe module sent a request the part cannot read".into()),
        );
    };
    match job.with_job(crate::delivery::run_here) {
        Ok(()) => (RUN_OK, Zeroizing::new(String::new())),
        Err(e) => (RUN_FAILED, Zeroizing::new(wire::failure(&e))),
    }
}

fn draw(text: &str) -> (i32, Zeroizing<String>) {
    use crate::qr::{Qr, Style};
    match Qr::encode(text.as_bytes()).and_then(|code| code.terminal(Style::Utf8)) {
        // The module's buffer takes REPLY_MAX bytes: a longer drawing
        // would arrive cut, and is refused whole instead.
        Ok(drawing) if drawing.len() <= REPLY_MAX => (RUN_OK, drawing),
        Ok(_) => (
            RUN_FAILED,
            Zeroizing::new("qr\nthe QR code is too large".into()),
        ),
        Err(e) => (RUN_FAILED, Zeroizing::new(format!("qr\n{e}"))),
    }
}
