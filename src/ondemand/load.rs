//! Loading the on-demand part and calling it: the C side of
//! [`super`], kept to this file.

use super::{ABI, ABI_SYMBOL, PART_PATH, REPLY_MAX, RUN_SYMBOL};
use std::ffi::{CStr, CString, c_void};
use std::path::Path;
use zeroize::Zeroizing;

// SAFETY: the prototypes of the part's two functions (parts/ondemand):
// calling them is unsafe, and done only below, once the part's version is
// known to be ours.
type AbiFn = unsafe extern "C" fn() -> u32;
// SAFETY: as above; parts/ondemand/src/lib.rs says what it promises.
type RunFn = unsafe extern "C" fn(*const u8, usize, *mut u8, usize, *mut usize) -> i32;

/// A loaded, checked part; unloaded when dropped.
pub struct Part {
    run: RunFn,
    _handle: Handle,
}

/// A dlopen handle, closed when dropped.
struct Handle(*mut c_void);

impl Part {
    pub fn open(path: &Path) -> Result<Part, String> {
        if let Some(why) = crate::delivery::library_problem(path) {
            return Err(format!("the on-demand part {why}"));
        }
        let shown = path.display();
        let c_path = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| format!("the on-demand part {shown}: a NUL in its path"))?;
        // SAFETY: a C string. RTLD_LOCAL: nothing of the part's is seen by
        // other libraries. Loading runs its initialisers: a Rust cdylib's
        // are the runtime's, and the file was checked above as root's.
        let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() {
            return Err(format!(
                "the on-demand part {shown} cannot be loaded: {}",
                dl_error()
            ));
        }
        let handle = Handle(handle);
        let abi = handle.symbol(ABI_SYMBOL)?;
        // SAFETY: the symbol twostep_ondemand_abi, a C function taking
        // nothing and returning u32 in every version of the part.
        let abi = unsafe { std::mem::transmute::<*mut c_void, AbiFn>(abi) };
        // SAFETY: as above: it only returns a constant.
        let version = unsafe { abi() };
        if version != ABI {
            return Err(format!(
                "the on-demand part {shown} speaks version {version}, this module {ABI}: \
                 install the module and the part from the same package"
            ));
        }
        let run = handle.symbol(RUN_SYMBOL)?;
        // SAFETY: the part's version matched, so twostep_ondemand_run has
        // the prototype RunFn.
        let run = unsafe { std::mem::transmute::<*mut c_void, RunFn>(run) };
        Ok(Part {
            run,
            _handle: handle,
        })
    }

    /// Hands `request` to the part: its status and reply (wiped when
    /// dropped: a QR drawing holds a secret).
    pub fn call(&self, request: &[u8]) -> (i32, Zeroizing<Vec<u8>>) {
        let mut reply = Zeroizing::new(vec![0u8; REPLY_MAX]);
        let mut len = 0usize;
        // The part's version matched, so `run` is its twostep_ondemand_run;
        // the part writes at most that many bytes and keeps no pointer.
        // SAFETY: the request is valid for its length, the reply buffer
        // writable for REPLY_MAX bytes and `len` a live usize.
        let status = unsafe {
            (self.run)(
                request.as_ptr(),
                request.len(),
                reply.as_mut_ptr(),
                reply.len(),
                &mut len,
            )
        };
        reply.truncate(len.min(REPLY_MAX));
        (status, reply)
    }
}

impl Handle {
    fn symbol(&self, name: &CStr) -> Result<*mut c_void, String> {
        // SAFETY: a live handle from dlopen and a C string.
        let f = unsafe { libc::dlsym(self.0, name.as_ptr()) };
        if f.is_null() {
            return Err(format!(
                "the on-demand part {PART_PATH} has no {}",
                name.to_string_lossy()
            ));
        }
        Ok(f)
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle from dlopen, closed once; the only pointer into
        // the part (`Part::run`) is dropped with it.
        unsafe { libc::dlclose(self.0) };
    }
}

fn dl_error() -> String {
    // SAFETY: dlerror returns null or a C string valid until the next dl call
    // on this thread; it is copied at once.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        return "unknown error".into();
    }
    // SAFETY: non-null, NUL-terminated, copied before any other dl call.
    unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
}
