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
// unsafe: only dlopen, dlsym and the call into the part, here; wire.rs forbids it.

pub mod wire;

use crate::delivery::{DeliveryError, Job};
use std::ffi::{CStr, CString, c_void};
use std::path::Path;

/// Where the module looks for its on-demand part; set when it is built
/// (build.rs: `TWOSTEP_ONDEMAND_PATH`, else beside a debug build's module,
/// else `/usr/lib/twostep/libtwostep_ondemand.so`).
pub const PART_PATH: &str = env!("TWOSTEP_ONDEMAND_PATH");

/// The version of [`wire`]'s request and reply, which the part must share.
pub const ABI: u32 = 1;

/// The part's symbols, C names.
pub const ABI_SYMBOL: &CStr = c"twostep_ondemand_abi";
pub const RUN_SYMBOL: &CStr = c"twostep_ondemand_run";

/// The longest reply the part may write: one line for a record's detail.
pub const REPLY_MAX: usize = 2048;

/// `twostep_ondemand_run`'s results.
pub const RUN_OK: i32 = 0;
pub const RUN_FAILED: i32 = 1;
pub const RUN_BAD_REQUEST: i32 = 2;
pub const RUN_PANICKED: i32 = 3;

type AbiFn = unsafe extern "C" fn() -> u32;
type RunFn = unsafe extern "C" fn(*const u8, usize, *mut u8, usize, *mut usize) -> i32;

/// Runs `job` through the on-demand part at [`PART_PATH`].
pub fn run(job: &Job<'_>) -> Result<(), DeliveryError> {
    run_with(Path::new(PART_PATH), job)
}

/// What is wrong with the part at [`PART_PATH`] (missing, not root's,
/// writable by others, not loadable, another version), or None: for
/// `twostep check`, which loads it as a login would.
pub fn problem() -> Option<String> {
    Part::open(Path::new(PART_PATH)).err()
}

fn run_with(path: &Path, job: &Job<'_>) -> Result<(), DeliveryError> {
    let part = Part::open(path).map_err(DeliveryError::part)?;
    let request = wire::encode(job);
    let mut reply = vec![0u8; REPLY_MAX];
    let mut len = 0usize;
    // SAFETY: `run` is the part's twostep_ondemand_run, whose ABI version
    // matched; the request is valid for its length, the reply buffer is
    // writable for REPLY_MAX bytes and `len` is a live usize. The part
    // writes at most that many bytes and keeps no pointer after returning.
    let status = unsafe {
        (part.run)(
            request.as_ptr(),
            request.len(),
            reply.as_mut_ptr(),
            reply.len(),
            &mut len,
        )
    };
    reply.truncate(len.min(REPLY_MAX));
    wire::outcome(status, &reply)
}

/// A loaded, checked part; unloaded when dropped.
struct Part {
    run: RunFn,
    _handle: Handle,
}

/// A dlopen handle, closed when dropped.
struct Handle(*mut c_void);

impl Part {
    fn open(path: &Path) -> Result<Part, String> {
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

/// The part's side of [`RUN_SYMBOL`]: decodes `request`, runs it here, and
/// returns the status and the reply line. Called by parts/ondemand, inside
/// its catch_unwind.
pub fn serve(request: &[u8]) -> (i32, String) {
    let Some(job) = wire::decode(request) else {
        return (
            RUN_BAD_REQUEST,
            "part\nthe module sent a request the part cannot read".into(),
        );
    };
    match job.with_job(crate::delivery::run_here) {
        Ok(()) => (RUN_OK, String::new()),
        Err(e) => (RUN_FAILED, wire::failure(&e)),
    }
}
