//! `rediss://`: TLS through the system's OpenSSL, `libssl.so.3`, loaded
//! with dlopen(3) the first time a `rediss://` store is used, and never
//! otherwise.
//!
//! Why not link a TLS library: the module is loaded afresh for every login,
//! and almost every host has no store, or one on a unix socket. Measured
//! (Cargo.toml): rustls with ring compiled in, even untouched, made the
//! module 1.19 MB larger and each load 14-20 us slower (1,192 more
//! relocations, 7 more pages faulted); libssl as a DT_NEEDED library made
//! each login of login(1) or su(1) load libssl and libcrypto, 1.4 ms.
//! Loaded here on demand, it costs nothing to the others, and the TLS code
//! is the one Debian patches.
//!
//! The sockets stay ours: OpenSSL reads and writes memory BIOs, and this
//! module moves the bytes between them and the deadline-bound socket, so
//! the handshake is under the one deadline like everything else, and a
//! write to a closed connection cannot raise SIGPIPE (OpenSSL's own socket
//! BIO uses write(2), not send with MSG_NOSIGNAL).
//!
//! The server's certificate must chain to `store.ca_file` (PEM) or to the
//! system's CAs, and carry the host name or address of `store.url`
//! (`SSL_set1_host`, which takes either); TLS 1.2 at least.
//!
//! This is the only unsafe code of the store client: each call into
//! libssl carries a `SAFETY:` comment.

use super::error::StoreError;
use super::transport::Socket;
use libc::{c_char, c_int, c_long, c_ulong, c_void};
use std::ffi::{CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::OnceLock;
use std::time::Instant;

/// Debian 12's libssl (package libssl3).
const LIBSSL: &CStr = c"libssl.so.3";

const SSL_VERIFY_PEER: c_int = 0x01;
const SSL_CTRL_SET_TLSEXT_HOSTNAME: c_int = 55;
const TLSEXT_NAMETYPE_HOST_NAME: c_long = 0;
const SSL_CTRL_SET_MIN_PROTO_VERSION: c_int = 123;
const TLS1_2_VERSION: c_long = 0x0303;
const BIO_C_SET_BUF_MEM_EOF_RETURN: c_int = 130;
const BIO_CTRL_PENDING: c_int = 10;
const SSL_ERROR_WANT_READ: c_int = 2;
const SSL_ERROR_WANT_WRITE: c_int = 3;
const SSL_ERROR_ZERO_RETURN: c_int = 6;
const X509_V_OK: c_long = 0;

type Ptr = *mut c_void;

/// Declares `Api`, a function pointer per entry, and `Api::find`, which
/// looks each up by its symbol: one list, so that a field's type and the
/// type it is looked up as cannot differ.
macro_rules! api {
    ($($field:ident = $symbol:literal: fn($($arg:ty),*) $(-> $ret:ty)?;)*) => {
        /// The functions used, in libssl and libcrypto (its dependency).
        // SAFETY: types only; each call says why it is sound where it is made.
        struct Api {
            $($field: unsafe extern "C" fn($($arg),*) $(-> $ret)?,)*
        }

        impl Api {
            fn find(lib: Ptr) -> Result<Api, String> {
                Ok(Api {
                    $($field: {
                        // SAFETY: `lib` is a live handle from dlopen, the name a C string.
                        let f = unsafe { libc::dlsym(lib, $symbol.as_ptr()) };
                        if f.is_null() {
                            return Err(format!("{} has no {:?}", LIBSSL.to_string_lossy(), $symbol));
                        }
                        // SAFETY: a function of OpenSSL 3, declared with the
                        // prototype its headers give.
                        unsafe {
                            std::mem::transmute::<*mut c_void, unsafe extern "C" fn($($arg),*) $(-> $ret)?>(f)
                        }
                    },)*
                })
            }
        }
    };
}

api! {
    tls_client_method = c"TLS_client_method": fn() -> *const c_void;
    ssl_ctx_new = c"SSL_CTX_new": fn(*const c_void) -> Ptr;
    ssl_ctx_free = c"SSL_CTX_free": fn(Ptr);
    ssl_ctx_set_verify = c"SSL_CTX_set_verify": fn(Ptr, c_int, *const c_void);
    ssl_ctx_load_verify_locations = c"SSL_CTX_load_verify_locations": fn(Ptr, *const c_char, *const c_char) -> c_int;
    ssl_ctx_set_default_verify_paths = c"SSL_CTX_set_default_verify_paths": fn(Ptr) -> c_int;
    ssl_ctx_ctrl = c"SSL_CTX_ctrl": fn(Ptr, c_int, c_long, Ptr) -> c_long;
    ssl_new = c"SSL_new": fn(Ptr) -> Ptr;
    ssl_free = c"SSL_free": fn(Ptr);
    ssl_set_bio = c"SSL_set_bio": fn(Ptr, Ptr, Ptr);
    ssl_set1_host = c"SSL_set1_host": fn(Ptr, *const c_char) -> c_int;
    ssl_ctrl = c"SSL_ctrl": fn(Ptr, c_int, c_long, Ptr) -> c_long;
    ssl_connect = c"SSL_connect": fn(Ptr) -> c_int;
    ssl_read = c"SSL_read": fn(Ptr, Ptr, c_int) -> c_int;
    ssl_write = c"SSL_write": fn(Ptr, *const c_void, c_int) -> c_int;
    ssl_get_error = c"SSL_get_error": fn(Ptr, c_int) -> c_int;
    ssl_get_verify_result = c"SSL_get_verify_result": fn(Ptr) -> c_long;
    bio_s_mem = c"BIO_s_mem": fn() -> *const c_void;
    bio_new = c"BIO_new": fn(*const c_void) -> Ptr;
    bio_free = c"BIO_free": fn(Ptr) -> c_int;
    bio_read = c"BIO_read": fn(Ptr, Ptr, c_int) -> c_int;
    bio_write = c"BIO_write": fn(Ptr, *const c_void, c_int) -> c_int;
    bio_ctrl = c"BIO_ctrl": fn(Ptr, c_int, c_long, Ptr) -> c_long;
    x509_verify_cert_error_string = c"X509_verify_cert_error_string": fn(c_long) -> *const c_char;
    err_get_error = c"ERR_get_error": fn() -> c_ulong;
    err_error_string_n = c"ERR_error_string_n": fn(c_ulong, *mut c_char, usize);
    err_clear_error = c"ERR_clear_error": fn();
}

fn api() -> Result<&'static Api, StoreError> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    API.get_or_init(load)
        .as_ref()
        .map_err(|why| StoreError::Tls(why.clone()))
}

fn load() -> Result<Api, String> {
    // RTLD_NODELETE: libssl stays for the life of the process, even when
    // libpam unloads this module (libcrypto pins itself the same way).
    // SAFETY: a C string; dlopen runs libssl's initialisers, which is
    // what linking it would have done at every login.
    let lib = unsafe {
        libc::dlopen(
            LIBSSL.as_ptr(),
            libc::RTLD_NOW | libc::RTLD_LOCAL | libc::RTLD_NODELETE,
        )
    };
    if lib.is_null() {
        return Err(format!(
            "cannot load {} (Debian package libssl3), needed for rediss://",
            LIBSSL.to_string_lossy()
        ));
    }
    Api::find(lib)
}

/// A TLS connection over a socket of ours.
#[derive(Debug)]
pub struct TlsStream {
    socket: Socket,
    ssl: NonNull<c_void>,
    /// Ciphertext from the server, for OpenSSL to read; owned by `ssl`.
    inbox: NonNull<c_void>,
    /// Ciphertext from OpenSSL, for the server; owned by `ssl`.
    outbox: NonNull<c_void>,
    api: &'static Api,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("libssl")
    }
}

// SAFETY: an SSL object and its BIOs may be used from any thread, one at a
// time (OpenSSL's threading rules); `&mut self` makes every use exclusive.
unsafe impl Send for TlsStream {}

/// What of a read or write buffer one OpenSSL call takes (its lengths are ints).
fn c_len(len: usize) -> c_int {
    c_int::try_from(len).unwrap_or(c_int::MAX)
}

impl TlsStream {
    /// The handshake over a connected socket, by the deadline.
    pub fn handshake(
        socket: Socket,
        host: &str,
        ca_file: Option<&Path>,
        deadline: Instant,
    ) -> Result<TlsStream, StoreError> {
        let api = api()?;
        let c_host =
            CString::new(host).map_err(|_| StoreError::Config(format!("{host:?}: a NUL byte")))?;
        let ca = match ca_file {
            Some(p) => Some(
                CString::new(p.as_os_str().as_bytes())
                    .map_err(|_| StoreError::Config(format!("{}: a NUL byte", p.display())))?,
            ),
            None => None,
        };
        // SAFETY: clears this thread's OpenSSL error queue; no arguments.
        unsafe { (api.err_clear_error)() };
        // SAFETY: TLS_client_method returns a static method table.
        let ctx = unsafe { (api.ssl_ctx_new)((api.tls_client_method)()) };
        let Some(ctx) = NonNull::new(ctx) else {
            return Err(openssl_error(api, "SSL_CTX_new"));
        };
        let made = configure(api, ctx.as_ptr(), ca.as_deref(), ca_file);
        let ssl = made.and_then(|()| {
            // SAFETY: a live, configured context.
            let ssl = unsafe { (api.ssl_new)(ctx.as_ptr()) };
            NonNull::new(ssl).ok_or_else(|| openssl_error(api, "SSL_new"))
        });
        // SAFETY: `ctx` came from SSL_CTX_new and is not used after this;
        // an SSL object holds its own reference to it.
        unsafe { (api.ssl_ctx_free)(ctx.as_ptr()) };
        let ssl = ssl?;
        // SAFETY: BIO_s_mem returns a static method table; BIO_new a new BIO or null.
        let (inbox, outbox) = unsafe {
            (
                (api.bio_new)((api.bio_s_mem)()),
                (api.bio_new)((api.bio_s_mem)()),
            )
        };
        let (Some(inbox), Some(outbox)) = (NonNull::new(inbox), NonNull::new(outbox)) else {
            // SAFETY: each non-null BIO is ours until given to SSL_set_bio;
            // `ssl` came from SSL_new and is not used after this.
            unsafe {
                for bio in [inbox, outbox] {
                    if !bio.is_null() {
                        (api.bio_free)(bio);
                    }
                }
                (api.ssl_free)(ssl.as_ptr());
            }
            return Err(openssl_error(api, "BIO_new"));
        };
        // SAFETY: the BIOs pass to `ssl`, which frees them with itself.
        // An empty inbox then reads as "retry" (-1), not as the end.
        unsafe {
            (api.bio_ctrl)(
                inbox.as_ptr(),
                BIO_C_SET_BUF_MEM_EOF_RETURN,
                -1,
                std::ptr::null_mut(),
            );
            (api.ssl_set_bio)(ssl.as_ptr(), inbox.as_ptr(), outbox.as_ptr());
        }
        // From here `Drop` frees `ssl`.
        let mut stream = TlsStream {
            socket,
            ssl,
            inbox,
            outbox,
            api,
        };
        stream.set_host(&c_host, host)?;
        loop {
            // SAFETY: a live SSL object with its BIOs set.
            let ret = unsafe { (api.ssl_connect)(stream.ssl.as_ptr()) };
            stream.flush(deadline, "the TLS handshake")?;
            if ret == 1 {
                break;
            }
            if !stream.after(ret, deadline, "the TLS handshake")? {
                return Err(StoreError::Connect(
                    "the server closed the connection during the TLS handshake".into(),
                ));
            }
        }
        // SAFETY: a live SSL object, after its handshake.
        let verified = unsafe { (api.ssl_get_verify_result)(stream.ssl.as_ptr()) };
        if verified != X509_V_OK {
            return Err(StoreError::Tls(verify_error(api, verified)));
        }
        Ok(stream)
    }

    /// The name or address the certificate must carry, and SNI for a name.
    fn set_host(&mut self, c_host: &CStr, host: &str) -> Result<(), StoreError> {
        let ssl = self.ssl.as_ptr();
        // SAFETY: a live SSL object and a C string, which OpenSSL copies.
        // SSL_set1_host takes an IP address as one (OpenSSL 3).
        if unsafe { (self.api.ssl_set1_host)(ssl, c_host.as_ptr()) } != 1 {
            return Err(openssl_error(self.api, "SSL_set1_host"));
        }
        if host.parse::<std::net::IpAddr>().is_err() {
            // SAFETY: as above (SSL_set_tlsext_host_name is this SSL_ctrl).
            let ok = unsafe {
                (self.api.ssl_ctrl)(
                    ssl,
                    SSL_CTRL_SET_TLSEXT_HOSTNAME,
                    TLSEXT_NAMETYPE_HOST_NAME,
                    c_host.as_ptr().cast_mut().cast(),
                )
            };
            if ok != 1 {
                return Err(openssl_error(self.api, "SSL_set_tlsext_host_name"));
            }
        }
        Ok(())
    }

    /// Sends what OpenSSL has written to the outbox.
    fn flush(&mut self, deadline: Instant, during: &'static str) -> Result<(), StoreError> {
        let mut buf = [0u8; 4096];
        loop {
            // SAFETY: a live BIO owned by `ssl`; BIO_CTRL_PENDING only reads its length.
            let pending = unsafe {
                (self.api.bio_ctrl)(
                    self.outbox.as_ptr(),
                    BIO_CTRL_PENDING,
                    0,
                    std::ptr::null_mut(),
                )
            };
            if pending <= 0 {
                return Ok(());
            }
            // SAFETY: `buf` is writable for the length given.
            let n = unsafe {
                (self.api.bio_read)(
                    self.outbox.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    c_len(buf.len()),
                )
            };
            let Some(bytes) = usize::try_from(n).ok().and_then(|n| buf.get(..n)) else {
                return Err(openssl_error(self.api, "BIO_read"));
            };
            self.socket.write_all(bytes, deadline, during)?;
        }
    }

    /// After an OpenSSL call returned `ret`: feeds it what the server sent
    /// when it wants more, or says what went wrong. `Ok(false)`: the server
    /// closed the connection.
    fn after(
        &mut self,
        ret: c_int,
        deadline: Instant,
        during: &'static str,
    ) -> Result<bool, StoreError> {
        // SAFETY: a live SSL object and the value its last call returned.
        match unsafe { (self.api.ssl_get_error)(self.ssl.as_ptr(), ret) } {
            SSL_ERROR_WANT_READ => {
                let mut buf = [0u8; 4096];
                let n = self.socket.read(&mut buf, deadline, during)?;
                let Some(bytes) = buf.get(..n).filter(|b| !b.is_empty()) else {
                    return Ok(false);
                };
                // SAFETY: `bytes` is readable for its length; a memory BIO
                // takes all of it (it grows).
                let put = unsafe {
                    (self.api.bio_write)(
                        self.inbox.as_ptr(),
                        bytes.as_ptr().cast(),
                        c_len(bytes.len()),
                    )
                };
                if usize::try_from(put).ok() != Some(bytes.len()) {
                    return Err(openssl_error(self.api, "BIO_write"));
                }
                Ok(true)
            }
            // A memory BIO always has room; should it ever not, the
            // deadline still ends the retries.
            SSL_ERROR_WANT_WRITE => super::transport::remaining(deadline, during).map(|_| true),
            SSL_ERROR_ZERO_RETURN => Ok(false),
            _ => {
                // SAFETY: a live SSL object.
                let verified = unsafe { (self.api.ssl_get_verify_result)(self.ssl.as_ptr()) };
                if verified != X509_V_OK {
                    return Err(StoreError::Tls(verify_error(self.api, verified)));
                }
                Err(openssl_error(self.api, during))
            }
        }
    }

    pub fn write_all(
        &mut self,
        buf: &[u8],
        deadline: Instant,
        during: &'static str,
    ) -> Result<(), StoreError> {
        let mut rest = buf;
        while !rest.is_empty() {
            // SAFETY: `rest` is readable for the length given.
            let n = unsafe {
                (self.api.ssl_write)(self.ssl.as_ptr(), rest.as_ptr().cast(), c_len(rest.len()))
            };
            self.flush(deadline, during)?;
            match usize::try_from(n) {
                Ok(n) if n > 0 => rest = rest.get(n..).unwrap_or_default(),
                _ => {
                    if !self.after(n, deadline, during)? {
                        return Err(StoreError::Connect(
                            "the server closed the TLS connection".into(),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// Plaintext that has arrived, waiting until the deadline. `Ok(0)`: closed.
    pub fn read(
        &mut self,
        buf: &mut [u8],
        deadline: Instant,
        during: &'static str,
    ) -> Result<usize, StoreError> {
        loop {
            // SAFETY: `buf` is writable for the length given.
            let n = unsafe {
                (self.api.ssl_read)(self.ssl.as_ptr(), buf.as_mut_ptr().cast(), c_len(buf.len()))
            };
            if let Ok(n) = usize::try_from(n)
                && n > 0
            {
                return Ok(n);
            }
            self.flush(deadline, during)?;
            if !self.after(n, deadline, during)? {
                return Ok(0);
            }
        }
    }
}

impl Drop for TlsStream {
    fn drop(&mut self) {
        // SAFETY: `ssl` came from SSL_new and is freed once, with its BIOs.
        unsafe { (self.api.ssl_free)(self.ssl.as_ptr()) };
    }
}

/// Verification, CAs and the lowest protocol version, on a new context.
fn configure(
    api: &Api,
    ctx: Ptr,
    ca: Option<&CStr>,
    ca_path: Option<&Path>,
) -> Result<(), StoreError> {
    // SAFETY: a live context; no callback (OpenSSL's own verification).
    unsafe { (api.ssl_ctx_set_verify)(ctx, SSL_VERIFY_PEER, std::ptr::null()) };
    // SAFETY: a live context.
    if unsafe {
        (api.ssl_ctx_ctrl)(
            ctx,
            SSL_CTRL_SET_MIN_PROTO_VERSION,
            TLS1_2_VERSION,
            std::ptr::null_mut(),
        )
    } != 1
    {
        return Err(openssl_error(api, "SSL_CTX_set_min_proto_version"));
    }
    let loaded = match ca {
        // SAFETY: a live context and a C string (a file name) or null.
        Some(file) => unsafe {
            (api.ssl_ctx_load_verify_locations)(ctx, file.as_ptr(), std::ptr::null())
        },
        // SAFETY: a live context.
        None => unsafe { (api.ssl_ctx_set_default_verify_paths)(ctx) },
    };
    if loaded != 1 {
        let what = ca_path.map_or("the system's CA certificates".into(), |p| {
            p.display().to_string()
        });
        let why = openssl_error(api, "loading CA certificates");
        return Err(StoreError::Config(format!("{what}: {why}")));
    }
    Ok(())
}

/// OpenSSL's reason for a failed certificate verification.
fn verify_error(api: &Api, code: c_long) -> String {
    // SAFETY: returns a static string for any code.
    let text = unsafe { (api.x509_verify_cert_error_string)(code) };
    let text = if text.is_null() {
        String::from("unknown")
    } else {
        // SAFETY: a non-null static C string from OpenSSL.
        unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned()
    };
    format!("the server's certificate: {text}")
}

/// The oldest error on this thread's OpenSSL queue, which is then cleared.
fn openssl_error(api: &Api, during: &str) -> StoreError {
    // SAFETY: reads and removes the oldest error code of this thread.
    let code = unsafe { (api.err_get_error)() };
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is writable for its length; OpenSSL NUL-terminates.
    unsafe { (api.err_error_string_n)(code, buf.as_mut_ptr().cast(), buf.len()) };
    // SAFETY: no arguments.
    unsafe { (api.err_clear_error)() };
    let text = CStr::from_bytes_until_nul(&buf)
        .map_or_else(|_| "unknown".into(), |c| c.to_string_lossy().into_owned());
    if code == 0 {
        return StoreError::Tls(format!("{during}: failed"));
    }
    StoreError::Tls(format!("{during}: {text}"))
}
