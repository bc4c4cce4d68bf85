//! libpam as an application: the caller's password checked through the
//! PAM service `twostep-self` (pam_start, pam_authenticate, pam_acct_mgmt,
//! pam_end), with a conversation on the terminal.
//!
//! Written here rather than taken from a crate: `pam-client` is MPL-2.0,
//! which `deny.toml` does not allow, and brings bitflags 1, enum-repr and
//! rustversion; `pam` 0.8 needs the unmaintained `users` crate, and its
//! library name is the one pam-bindings (the module side) already has.
//! What is needed is six functions, declared below as Linux-PAM's
//! `<security/pam_appl.h>` declares them, as sudo-rs declares its own.
//!
//! Every unsafe block of the file is a call into libpam or libc, or the
//! conversation callback reading what libpam hands it; each says why it is
//! sound. The callback never unwinds into libpam: a panic is caught and is
//! a conversation error.

use crate::base::user::UserName;
use crate::cli::term::{self, Keyboard};
use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::panic::AssertUnwindSafe;
use zeroize::Zeroizing;

const PAM_SUCCESS: c_int = 0;
const PAM_BUF_ERR: c_int = 5;
const PAM_CONV_ERR: c_int = 19;
const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_PROMPT_ECHO_ON: c_int = 2;
const PAM_ERROR_MSG: c_int = 3;
const PAM_TEXT_INFO: c_int = 4;
const PAM_TTY: c_int = 3;
const PAM_RUSER: c_int = 8;
const PAM_DISALLOW_NULL_AUTHTOK: c_int = 0x0001;
const PAM_MAX_NUM_MSG: c_int = 32;
/// The longest answer libpam takes (PAM_MAX_RESP_SIZE).
const PAM_MAX_RESP_SIZE: usize = 512;

#[repr(C)]
struct PamHandle {
    _opaque: [u8; 0],
}

#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

// SAFETY: the type of `pam_conv`'s callback, as libpam calls it.
type ConvFn = unsafe extern "C" fn(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int;

#[repr(C)]
struct PamConv {
    conv: Option<ConvFn>,
    appdata_ptr: *mut c_void,
}

// SAFETY: Linux-PAM's declarations, as <security/pam_appl.h> has them;
// each call site says why its arguments are valid.
#[link(name = "pam")]
unsafe extern "C" {
    fn pam_start(
        service_name: *const c_char,
        user: *const c_char,
        pam_conversation: *const PamConv,
        pamh: *mut *mut PamHandle,
    ) -> c_int;
    fn pam_end(pamh: *mut PamHandle, pam_status: c_int) -> c_int;
    fn pam_set_item(pamh: *mut PamHandle, item_type: c_int, item: *const c_void) -> c_int;
    fn pam_authenticate(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_acct_mgmt(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_strerror(pamh: *mut PamHandle, errnum: c_int) -> *const c_char;
}

/// Why the password did not prove the caller.
#[derive(Debug)]
pub enum Refused {
    /// PAM could not be started (a missing or broken service file).
    Start(String),
    /// pam_authenticate failed: a wrong password, or the person gave up.
    Password(String),
    /// pam_acct_mgmt refused the account (expired, password too old).
    Account(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Start(m) => write!(f, "PAM could not be started: {m}"),
            Refused::Password(m) => write!(f, "the password was not accepted ({m})"),
            Refused::Account(m) => write!(f, "the account was refused ({m})"),
        }
    }
}

/// Checks `user`'s password through the PAM service `service`, asking on
/// `keyboard`; then the account's standing (pam_acct_mgmt). An empty
/// password never passes (PAM_DISALLOW_NULL_AUTHTOK).
pub fn check_password(
    service: &str,
    user: &UserName,
    tty: &str,
    keyboard: &Keyboard,
) -> Result<(), Refused> {
    let c = |s: &str| CString::new(s).map_err(|_| Refused::Start(format!("{s:?} holds a NUL")));
    let (service, name, tty) = (c(service)?, c(user.as_str())?, c(tty)?);
    let conv = PamConv {
        conv: Some(converse),
        appdata_ptr: std::ptr::from_ref(keyboard).cast_mut().cast(),
    };
    let mut pamh: *mut PamHandle = std::ptr::null_mut();
    // `keyboard`, which appdata points to, outlives the handle: pam_end is
    // called below, before this function returns.
    // SAFETY: the strings are NUL-terminated and outlive the call; libpam
    // copies `conv` (its function and appdata pointer) into the handle.
    let started = unsafe { pam_start(service.as_ptr(), name.as_ptr(), &conv, &mut pamh) };
    if started != PAM_SUCCESS || pamh.is_null() {
        return Err(Refused::Start(describe(std::ptr::null_mut(), started)));
    }
    let outcome = (|| {
        if !tty.is_empty() {
            // SAFETY: a live handle; libpam copies the string.
            unsafe { pam_set_item(pamh, PAM_TTY, tty.as_ptr().cast()) };
        }
        // SAFETY: as above.
        unsafe { pam_set_item(pamh, PAM_RUSER, name.as_ptr().cast()) };
        // SAFETY: a live handle; the conversation it calls is `converse`,
        // with `keyboard` alive.
        let rc = unsafe { pam_authenticate(pamh, PAM_DISALLOW_NULL_AUTHTOK) };
        if rc != PAM_SUCCESS {
            return (rc, Err(Refused::Password(describe(pamh, rc))));
        }
        // SAFETY: as above.
        let rc = unsafe { pam_acct_mgmt(pamh, PAM_DISALLOW_NULL_AUTHTOK) };
        if rc != PAM_SUCCESS {
            return (rc, Err(Refused::Account(describe(pamh, rc))));
        }
        (rc, Ok(()))
    })();
    // SAFETY: the handle pam_start made, ended once; not used after.
    unsafe { pam_end(pamh, outcome.0) };
    outcome.1
}

/// libpam's text for a return code.
fn describe(pamh: *mut PamHandle, rc: c_int) -> String {
    // SAFETY: pam_strerror returns a static string (it ignores the handle,
    // which may be null) or null.
    let text = unsafe { pam_strerror(pamh, rc) };
    if text.is_null() {
        return format!("PAM error {rc}");
    }
    // SAFETY: a NUL-terminated static string from libpam.
    unsafe { CStr::from_ptr(text) }
        .to_string_lossy()
        .into_owned()
}

/// The conversation: prompts are read hidden from the terminal (an echo-on
/// prompt too: this stack asks for no name, and nothing typed here need be
/// shown); messages go to stderr, escaped.
///
/// # Safety
/// Called by libpam only, with the arguments of a `pam_conv` callback and
/// `appdata_ptr` as set in [`check_password`].
// SAFETY: see # Safety: libpam is the only caller.
unsafe extern "C" fn converse(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int {
    // SAFETY: the caller's contract, passed on.
    let answered = std::panic::catch_unwind(AssertUnwindSafe(|| unsafe {
        converse_inner(num_msg, msg, resp, appdata_ptr)
    }));
    answered.unwrap_or(PAM_CONV_ERR)
}

/// # Safety
/// As [`converse`].
// SAFETY: see # Safety: called by `converse` alone.
unsafe fn converse_inner(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int {
    if !(1..=PAM_MAX_NUM_MSG).contains(&num_msg)
        || msg.is_null()
        || resp.is_null()
        || appdata_ptr.is_null()
    {
        return PAM_CONV_ERR;
    }
    // SAFETY: appdata_ptr is the `&Keyboard` check_password gave pam_start,
    // alive for the whole pam session.
    let keyboard = unsafe { &*appdata_ptr.cast::<Keyboard>() };
    let count = num_msg as usize;
    // SAFETY: calloc of `count` zeroed responses (null `resp` pointers):
    // libpam frees the array and each `resp` with free().
    let replies =
        unsafe { libc::calloc(count, std::mem::size_of::<PamResponse>()) }.cast::<PamResponse>();
    if replies.is_null() {
        return PAM_BUF_ERR;
    }
    for i in 0..count {
        // SAFETY: Linux-PAM passes an array of `num_msg` pointers to
        // messages (checked non-null above), each valid during the call.
        let m = unsafe { *msg.add(i) };
        if m.is_null() {
            // SAFETY: `replies` holds `count` responses of ours.
            unsafe { free_replies(replies, count) };
            return PAM_CONV_ERR;
        }
        // SAFETY: a valid message; its text is NUL-terminated or null.
        let (style, text) = unsafe {
            let text = (*m).msg;
            let text = if text.is_null() {
                String::new()
            } else {
                CStr::from_ptr(text).to_string_lossy().into_owned()
            };
            ((*m).msg_style, text)
        };
        let shown = term::escape(&text);
        match style {
            PAM_PROMPT_ECHO_OFF | PAM_PROMPT_ECHO_ON => {
                let Ok(answer) = keyboard.read_password(&shown, PAM_MAX_RESP_SIZE) else {
                    // SAFETY: as above.
                    unsafe { free_replies(replies, count) };
                    return PAM_CONV_ERR;
                };
                let copy = c_copy(&answer);
                if copy.is_null() {
                    // SAFETY: as above.
                    unsafe { free_replies(replies, count) };
                    return PAM_BUF_ERR;
                }
                // SAFETY: `i < count`, inside the array calloc made.
                unsafe { (*replies.add(i)).resp = copy };
            }
            PAM_ERROR_MSG | PAM_TEXT_INFO => eprintln!("{shown}"),
            _ => {
                // SAFETY: as above.
                unsafe { free_replies(replies, count) };
                return PAM_CONV_ERR;
            }
        }
    }
    // SAFETY: `resp` is libpam's out-pointer (checked non-null); it takes
    // ownership of the array and its strings.
    unsafe { *resp = replies };
    PAM_SUCCESS
}

/// A malloc'd, NUL-terminated copy of `answer` for libpam to own (and wipe
/// and free), or null if there is no memory. Our copy is wiped by its
/// `Zeroizing`.
fn c_copy(answer: &Zeroizing<Vec<u8>>) -> *mut c_char {
    let len = answer.len();
    // SAFETY: malloc of len + 1 bytes; checked for null before use.
    let copy = unsafe { libc::malloc(len + 1) }.cast::<u8>();
    if copy.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: `copy` has room for len + 1 bytes and does not overlap
    // `answer`. The answer holds no NUL (the reader keeps no control byte).
    unsafe {
        std::ptr::copy_nonoverlapping(answer.as_ptr(), copy, len);
        *copy.add(len) = 0;
    }
    copy.cast()
}

/// Wipes and frees the answers given so far, and the array.
///
/// # Safety
/// `replies` is an array of `count` responses made by calloc in
/// [`converse_inner`], each `resp` null or from [`c_copy`].
// SAFETY: see # Safety: called by `converse_inner` alone.
unsafe fn free_replies(replies: *mut PamResponse, count: usize) {
    for i in 0..count {
        // SAFETY: the caller's contract.
        unsafe {
            let r = (*replies.add(i)).resp;
            if !r.is_null() {
                let len = libc::strlen(r);
                zeroize::Zeroize::zeroize(std::slice::from_raw_parts_mut(r.cast::<u8>(), len));
                libc::free(r.cast());
            }
        }
    }
    // SAFETY: the array calloc made, freed once.
    unsafe { libc::free(replies.cast()) };
}
