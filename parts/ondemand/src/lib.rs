//! The on-demand part's two C functions; the work is the main crate's
//! (`pam_twostep::ondemand::serve`, the same code the commands run).
//! src/ondemand/mod.rs says why the part exists and what guards it.

use pam_twostep::ondemand::{ABI, RUN_BAD_REQUEST, RUN_PANICKED, serve};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// The version of the request format this part reads.
#[unsafe(no_mangle)]
pub extern "C" fn twostep_ondemand_abi() -> u32 {
    ABI
}

/// Runs the program `request` describes, as the commands would, or draws
/// the QR code it asks for. Returns `RUN_OK` (with the drawing, if one was
/// asked), or another status with one line (reason, newline, detail), in
/// `reply`, at most `reply_cap` bytes, its length in `*reply_len`.
///
/// # Safety
/// `request` is readable for `request_len` bytes, `reply` writable for
/// `reply_cap` bytes, `reply_len` a writable usize; none is kept.
// SAFETY: called only by src/ondemand/load.rs, which keeps that promise.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn twostep_ondemand_run(
    request: *const u8,
    request_len: usize,
    reply: *mut u8,
    reply_cap: usize,
    reply_len: *mut usize,
) -> i32 {
    if request.is_null() || reply.is_null() || reply_len.is_null() {
        return RUN_BAD_REQUEST;
    }
    // SAFETY: the caller's promise above; the slice lives for this call.
    let request = unsafe { std::slice::from_raw_parts(request, request_len) };
    // A panic stops here, never unwinding into the module's frames (another
    // Rust runtime's) or sshd's.
    let (status, line) = catch_unwind(AssertUnwindSafe(|| serve(request))).unwrap_or_else(|_| {
        let why = "part\na panic in the on-demand part";
        (RUN_PANICKED, why.to_string().into())
    });
    let n = line.len().min(reply_cap);
    // SAFETY: `reply` is writable for `reply_cap` >= n bytes and does not
    // overlap `line`, which is ours; `reply_len` is writable.
    unsafe {
        std::ptr::copy_nonoverlapping(line.as_ptr(), reply, n);
        *reply_len = n;
    }
    status
}
