//! The PAM boundary: entry points, module arguments, PAM items, the
//! conversation, and the one place where outcomes become PAM codes.
//!
//! pam-bindings' `pam_hooks!` generates the `extern "C"` entry points (the
//! only unsafe code in the module, reviewed in that crate): it wraps every hook
//! in `catch_unwind`, so a panic becomes PAM_ABORT instead of unwinding into
//! sshd. Everything below is safe Rust.
//!
//! One file (550 lines besides its tests): everything that knows libpam's
//! types is here, so that the rest of the module never sees a PAM handle.

use crate::auth::{self, Accounts, Conversation, Env, Mode, Outcome, Request};
use crate::base::errno_text;
use crate::base::records::{Record, Severity, Sink, Syslog};
use crate::base::user::UserName;
use crate::config::{self, Config};
use pam::constants::{PAM_ERROR_MSG, PAM_PROMPT_ECHO_OFF, PAM_TEXT_INFO, PamFlag, PamResultCode};
use pam::conv::Conv;
use pam::items::{AuthTok, Item, RHost, Service, Tty};
use pam::module::{PamHandle, PamHooks};
use std::ffi::CStr;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

pub struct PamTwostep;
pam::pam_hooks!(PamTwostep);

impl PamHooks for PamTwostep {
    fn sm_authenticate(pamh: &mut PamHandle, args: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        authenticate(pamh, &args, flags)
    }

    fn sm_setcred(_pamh: &mut PamHandle, _args: Vec<&CStr>, _flags: PamFlag) -> PamResultCode {
        PamResultCode::PAM_SUCCESS
    }

    fn sm_chauthtok(pamh: &mut PamHandle, args: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        password::chauthtok(pamh, &args, flags)
    }
}

mod password;

/// The parsed module arguments.
#[derive(Debug, PartialEq, Eq)]
pub struct Args {
    pub config: Option<PathBuf>,
    pub debug: bool,
    pub mode: Mode,
    /// `single` (on the `preauth` line): the password and the code come in
    /// one answer.
    pub single: bool,
}

/// `config=PATH` (once), `debug`, at most one mode word, and `single` with
/// `preauth`. Anything else is an error: a typo in a PAM line must not
/// silently change what is enforced.
pub fn parse_args(args: &[&[u8]]) -> Result<Args, String> {
    let mut out = Args {
        config: None,
        debug: false,
        mode: Mode::Code,
        single: false,
    };
    let mut mode_seen = false;
    config_arg(args)?;
    for raw in args {
        let arg =
            std::str::from_utf8(raw).map_err(|_| "a module argument is not UTF-8".to_string())?;
        let mut set_mode = |m: Mode| {
            if mode_seen {
                return Err(format!("more than one mode word at {arg:?}"));
            }
            mode_seen = true;
            out.mode = m;
            Ok(())
        };
        match arg {
            "debug" => out.debug = true,
            "single" if out.single => return Err("single is given more than once".into()),
            "single" => out.single = true,
            // Test builds only: proves that a panic inside the module is
            // caught at the PAM boundary (tests/panic.rs). Release builds,
            // which are what is installed, do not have this argument.
            #[cfg(debug_assertions)]
            #[allow(clippy::panic)]
            "panic-probe" => panic!("panic-probe: a deliberate panic for tests/panic.rs"),
            "preauth" => set_mode(Mode::Preauth)?,
            "authfail" => set_mode(Mode::Authfail)?,
            _ => match arg.strip_prefix("config=") {
                Some(path) if path.starts_with('/') => out.config = Some(PathBuf::from(path)),
                Some(_) => return Err(format!("{arg:?}: config= needs an absolute path")),
                None => return Err(format!("unknown module argument {arg:?}")),
            },
        }
    }
    if out.single && out.mode != Mode::Preauth {
        return Err("single goes on the preauth line only".into());
    }
    Ok(out)
}

/// The `config=` argument alone, read before the others are validated. A
/// second one is an error: which of two files applies must not be a guess.
fn config_arg(args: &[&[u8]]) -> Result<Option<PathBuf>, String> {
    let mut found = args
        .iter()
        .filter_map(|a| std::str::from_utf8(a).ok()?.strip_prefix("config="));
    let first = found.next();
    if found.next().is_some() {
        return Err("config= is given more than once".into());
    }
    Ok(first.filter(|p| p.starts_with('/')).map(PathBuf::from))
}

fn item_string(bytes: Option<&CStr>) -> String {
    bytes
        .map(|c| String::from_utf8_lossy(c.to_bytes()).into_owned())
        .unwrap_or_default()
}

fn authenticate(pamh: &mut PamHandle, args: &[&CStr], _flags: PamFlag) -> PamResultCode {
    let raw_args: Vec<&[u8]> = args.iter().map(|a| a.to_bytes()).collect();
    let service = item_string(pamh.get_item::<Service>().ok().flatten().map(|s| s.0));
    let rhost = item_string(pamh.get_item::<RHost>().ok().flatten().map(|s| s.0));
    let tty = item_string(pamh.get_item::<Tty>().ok().flatten().map(|s| s.0));

    // Denies before the flow can start. The user name is not known here.
    let deny_early = |socket: &Path, reason: &str, why: String| {
        Syslog {
            socket,
            tag: "pam_twostep",
        }
        .emit(
            Record::new("auth_fail", Severity::Warning)
                .with("user", "")
                .with("service", &service)
                .with("rhost", &rhost)
                .with("tty", &tty)
                .with("reason", reason)
                .with("failures", 0)
                .with("detail", why),
        );
        PamResultCode::PAM_AUTH_ERR
    };

    // config= comes first: the config says where to log, even the news that
    // the other arguments are wrong.
    let (path, explicit) = match config_arg(&raw_args) {
        Ok(Some(p)) => (p, true),
        Ok(None) => (PathBuf::from(config::DEFAULT_PATH), false),
        Err(why) => return deny_early(&Config::default().log_socket, "config", why),
    };
    let config = match Config::load(&path, explicit) {
        Ok(c) => c,
        Err(e) => {
            // Log where the administrator wants records, if the broken file
            // (one root owns and only root can write) still says where.
            let socket = e
                .log_socket
                .clone()
                .unwrap_or_else(|| Config::default().log_socket);
            return deny_early(&socket, "config", e.to_string());
        }
    };
    let args = match parse_args(&raw_args) {
        Ok(a) => a,
        Err(why) => return deny_early(&config.log_socket, "config", why),
    };

    let user = match pamh.get_user(None) {
        Ok(u) => u.into_bytes(),
        Err(_) => {
            // Typically the person closed the terminal at the login
            // prompt: no name is a bad name, not a broken config.
            return deny_early(
                &config.log_socket,
                "bad_user",
                "PAM could not tell the user name".into(),
            );
        }
    };

    let conv = match pamh.get_item::<Conv>() {
        Ok(Some(conv)) => conv,
        _ => {
            return deny_early(
                &config.log_socket,
                "config",
                "the application gave no PAM conversation".into(),
            );
        }
    };
    let mut prompter = PamConversation { conv: &conv };
    let mut audit = Syslog {
        socket: &config.log_socket,
        tag: "pam_twostep",
    };
    let accounts = SystemAccounts;
    let store = crate::store::open(&config);
    let reservation = reservation::take(pamh);
    let held = reservation.clone();
    let req = Request {
        user,
        service,
        rhost,
        tty,
    };
    // After one answer (`preauth single`), what it kept for this line.
    let kept = match args.mode {
        Mode::Preauth => None,
        Mode::Code | Mode::Authfail => take_kept(pamh),
    };
    let had_kept = kept.is_some();
    let authtok = if args.single {
        pamh.get_item::<AuthTok>()
            .ok()
            .flatten()
            .map(|t| Zeroizing::new(t.as_bytes().to_vec()))
    } else {
        None
    };
    let mut env = Env {
        config: &config,
        now: auth::system_clock(),
        clock: auth::system_clock,
        conv: &mut prompter,
        accounts: &accounts,
        store: store.as_ref(),
        audit: &mut audit,
        debug: args.debug,
        reservation,
        judged: None,
        authtok,
        kept,
    };
    // In a setuid host (su, sudo), the caller must not be able to stop or
    // starve this process while it holds a user's lock or an argon2 slot
    // that other logins wait on (`caller`).
    let shield = crate::caller::Shield::raise();
    let mut outcome = if args.single {
        auth::preauth_single(&mut env, &req)
    } else {
        auth::run(&mut env, args.mode, &req)
    };
    drop(shield);
    let kept = env.reservation.take();
    let handed_on = env.authtok.take();
    let single_kept = env.kept.take();
    drop(env);
    if args.single && outcome == Outcome::Success {
        // The password for the password module, and the code for the code
        // step: without both, this attempt goes no further.
        let stored = match (&handed_on, &single_kept) {
            (Some(password), Some(k)) => {
                put_kept(pamh, Some(k)).is_ok() && set_authtok(pamh, password).is_ok()
            }
            _ => false,
        };
        if !stored {
            Syslog {
                socket: &config.log_socket,
                tag: "pam_twostep",
            }
            .emit(Record::new("debug", Severity::Warning).with(
                "detail",
                "preauth single: could not hand on the password or keep the code: denied",
            ));
            outcome = Outcome::Denied;
        }
    } else if had_kept {
        // The code was judged, or the password failed: it is wiped now,
        // not at pam_end (sshd tries several passwords on one handle).
        let _ = put_kept(pamh, None);
    }
    if kept != held && reservation::put(pamh, kept.as_ref()).is_err() {
        // Without it, the next line counts the attempt again: a second
        // failure where there was one. Safe, and worth a record.
        Syslog {
            socket: &config.log_socket,
            tag: "pam_twostep",
        }
        .emit(Record::new("debug", Severity::Warning).with(
            "detail",
            "pam_set_data failed: the attempt may be counted twice",
        ));
    }
    match outcome {
        Outcome::Success => PamResultCode::PAM_SUCCESS,
        Outcome::Denied => PamResultCode::PAM_AUTH_ERR,
        Outcome::ConversationFailed => PamResultCode::PAM_CONV_ERR,
    }
}

/// Sets PAM_AUTHTOK (libpam keeps its own copy); ours is wiped.
fn set_authtok(pamh: &mut PamHandle, password: &[u8]) -> Result<(), ()> {
    let mut bytes = Zeroizing::new(Vec::with_capacity(password.len() + 1));
    bytes.extend_from_slice(password);
    bytes.push(0);
    let text = CStr::from_bytes_with_nul(&bytes).map_err(|_| ())?;
    // SAFETY: `from_raw` only wraps the pointer it is given, which points
    // at a NUL-terminated string (`text`) that outlives the call below;
    // pam_set_item copies it.
    let item = unsafe { <AuthTok as Item>::from_raw(text.as_ptr()) };
    pamh.set_item_str(item).map_err(|_| ())
}

mod kept;

/// What an earlier `preauth single` line kept, if one did.
fn take_kept(pamh: &PamHandle) -> Option<auth::Kept> {
    // Only this module sets kept::KEY, always to a Box<kept::Data>
    // (`put_kept`), and the key carries the module's version.
    // SAFETY: so the data under the key is a `kept::Data` of this very
    // layout, alive until pam_end or replaced: neither can happen during
    // this borrow.
    let data = unsafe { pamh.get_data::<kept::Data>(kept::KEY) }.ok()?;
    kept::decode(data)
}

/// Keeps `k` for the lines after this one (none: wipes what was kept).
fn put_kept(pamh: &mut PamHandle, k: Option<&auth::Kept>) -> Result<(), ()> {
    let data = kept::encode(k).ok_or(())?;
    pamh.set_data(kept::KEY, Box::new(data)).map_err(|_| ())
}

/// What the PAM_PRELIM_CHECK pass of a `password notify` line saw of the
/// account's password entry, kept with the PAM handle for its
/// PAM_UPDATE_AUTHTOK pass (`password.rs`).
mod before_change {
    use pam::module::PamHandle;

    /// Versioned, as the reservation's key is.
    const KEY: &str = concat!("pam_twostep/password/", env!("CARGO_PKG_VERSION"));

    /// Plain old data with a fixed layout: what pam_get_data hands back is
    /// read as this type.
    #[repr(C)]
    pub struct Data {
        /// 1: the entry was found, 2: the account has no local entry.
        found: u8,
        fingerprint: [u8; 32],
    }

    /// Keeps what the first pass saw (`None`: no local entry).
    pub fn put(pamh: &mut PamHandle, seen: Option<[u8; 32]>) -> Result<(), ()> {
        let data = Data {
            found: if seen.is_some() { 1 } else { 2 },
            fingerprint: seen.unwrap_or([0; 32]),
        };
        pamh.set_data(KEY, Box::new(data)).map_err(|_| ())
    }

    /// What the first pass saw: `None` if it did not run (or kept
    /// nothing); `Some(None)` if the account had no local entry.
    pub fn take(pamh: &PamHandle) -> Option<Option<[u8; 32]>> {
        // Only this module sets KEY, always to a Box<Data> (`put`), and KEY
        // carries the module's version.
        // SAFETY: so the data under KEY is a `Data` of this very layout,
        // alive until pam_end or replaced: neither can happen during this borrow.
        let data = unsafe { pamh.get_data::<Data>(KEY) }.ok()?;
        match data.found {
            1 => Some(Some(data.fingerprint)),
            2 => Some(None),
            _ => None,
        }
    }
}

/// The reservation `preauth` leaves for the lines after it, kept with the
/// PAM handle (pam_set_data) for the rest of this pam_authenticate.
mod reservation {
    use crate::auth::Reservation;
    use crate::base::user::{self, UserName};
    use crate::rules::lockout::NewLock;
    use crate::store::Origin;
    use pam::module::PamHandle;

    /// Versioned: a module of another version in the same stack keeps its
    /// own (the data's layout is ours alone).
    const KEY: &str = concat!("pam_twostep/reservation/", env!("CARGO_PKG_VERSION"));

    /// Plain old data with a fixed layout: what pam_get_data hands back is
    /// read as this type.
    #[repr(C)]
    pub struct Data {
        present: u8,
        has_lock: u8,
        /// 1: counted in this host's state_dir, 2: in the shared store.
        origin: u8,
        user_len: u16,
        user: [u8; user::MAX_LEN],
        epoch: u32,
        failures: u32,
        lock_tier: u32,
        lock_until: u64,
    }

    fn encode(r: Option<&Reservation>) -> Data {
        let mut d = Data {
            present: 0,
            has_lock: 0,
            origin: 0,
            user_len: 0,
            user: [0; user::MAX_LEN],
            epoch: 0,
            failures: 0,
            lock_tier: 0,
            lock_until: 0,
        };
        if let Some(r) = r {
            let name = r.user.as_str().as_bytes();
            d.present = 1;
            d.origin = match r.origin {
                Origin::Local => 1,
                Origin::Shared => 2,
            };
            d.user[..name.len()].copy_from_slice(name);
            d.user_len = u16::try_from(name.len()).unwrap_or(0);
            d.epoch = r.epoch;
            d.failures = r.failures;
            if let Some(lock) = r.new_lock {
                d.has_lock = 1;
                d.lock_tier = lock.tier;
                d.lock_until = lock.until;
            }
        }
        d
    }

    fn decode(d: &Data) -> Option<Reservation> {
        if d.present != 1 {
            return None;
        }
        let name = d.user.get(..usize::from(d.user_len))?;
        let origin = match d.origin {
            1 => Origin::Local,
            2 => Origin::Shared,
            _ => return None,
        };
        Some(Reservation {
            origin,
            user: UserName::parse_bytes(name).ok()?,
            epoch: d.epoch,
            failures: d.failures,
            new_lock: (d.has_lock == 1).then_some(NewLock {
                tier: d.lock_tier,
                until: d.lock_until,
            }),
        })
    }

    /// This attempt's reservation, if an earlier line made one.
    pub fn take(pamh: &PamHandle) -> Option<Reservation> {
        // Only this module sets KEY, always to a Box<Data> (`put`), and KEY
        // carries the module's version.
        // SAFETY: so the data under KEY is a `Data` of this very layout,
        // alive until pam_end or replaced: neither can happen during this borrow.
        let data = unsafe { pamh.get_data::<Data>(KEY) }.ok()?;
        decode(data)
    }

    /// Keeps `r` for the next line (or none: a used reservation is spent).
    pub fn put(pamh: &mut PamHandle, r: Option<&Reservation>) -> Result<(), ()> {
        pamh.set_data(KEY, Box::new(encode(r))).map_err(|_| ())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn round_trip() {
            let longest = UserName::parse(&"a".repeat(user::MAX_LEN)).unwrap();
            for r in [
                None,
                Some(Reservation {
                    user: UserName::parse("alice").unwrap(),
                    epoch: 7,
                    failures: 3,
                    new_lock: None,
                    origin: Origin::Local,
                }),
                Some(Reservation {
                    user: longest,
                    epoch: u32::MAX,
                    failures: 5,
                    new_lock: Some(NewLock {
                        tier: 2,
                        until: u64::MAX,
                    }),
                    origin: Origin::Shared,
                }),
            ] {
                assert_eq!(decode(&encode(r.as_ref())), r);
            }
        }
    }
}

struct PamConversation<'a, 'b> {
    conv: &'a Conv<'b>,
}

impl Conversation for PamConversation<'_, '_> {
    fn ask_hidden(&mut self, prompt: &str) -> Option<Zeroizing<Vec<u8>>> {
        match self.conv.send(PAM_PROMPT_ECHO_OFF, prompt) {
            // SecretBytes wipes its copy on drop; ours is wiped by Zeroizing.
            Ok(Some(reply)) => Some(Zeroizing::new(reply.as_bytes().to_vec())),
            // A NULL reply is an empty answer, not a conversation failure.
            Ok(None) => Some(Zeroizing::new(Vec::new())),
            Err(_) => None,
        }
    }

    fn error(&mut self, text: &str) {
        let _ = self.conv.send(PAM_ERROR_MSG, text);
    }

    fn info(&mut self, text: &str) {
        let _ = self.conv.send(PAM_TEXT_INFO, text);
    }
}

/// getpwnam, getgrouplist and getgrnam through NSS, as the rest of the PAM
/// stack sees accounts and groups.
pub struct SystemAccounts;

impl Accounts for SystemAccounts {
    fn canonical(&self, typed: &UserName) -> Result<Option<UserName>, String> {
        let account = nix::unistd::User::from_name(typed.as_str()).map_err(errno_text)?;
        Ok(account.and_then(|a| UserName::parse(&a.name).ok()))
    }

    fn group_ids(&self, user: &UserName) -> Result<Option<Vec<u32>>, String> {
        let Some(account) = nix::unistd::User::from_name(user.as_str()).map_err(errno_text)? else {
            return Ok(None);
        };
        // A validated user name has no NUL byte.
        let name = std::ffi::CString::new(user.as_str()).map_err(|e| e.to_string())?;
        let gids = nix::unistd::getgrouplist(&name, account.gid).map_err(errno_text)?;
        Ok(Some(gids.into_iter().map(|g| g.as_raw()).collect()))
    }

    fn group_id(&self, name: &str) -> Result<Option<u32>, String> {
        nix::unistd::Group::from_name(name)
            .map(|g| g.map(|g| g.gid.as_raw()))
            .map_err(errno_text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_arguments() {
        let ok: &[(&[&str], Args)] = &[
            (
                &[],
                Args {
                    config: None,
                    debug: false,
                    mode: Mode::Code,
                    single: false,
                },
            ),
            (
                &["preauth"],
                Args {
                    config: None,
                    debug: false,
                    mode: Mode::Preauth,
                    single: false,
                },
            ),
            (
                &["authfail", "debug"],
                Args {
                    config: None,
                    debug: true,
                    mode: Mode::Authfail,
                    single: false,
                },
            ),
            (
                &["config=/etc/x.toml", "preauth"],
                Args {
                    config: Some(PathBuf::from("/etc/x.toml")),
                    debug: false,
                    mode: Mode::Preauth,
                    single: false,
                },
            ),
            (
                &["preauth", "single"],
                Args {
                    config: None,
                    debug: false,
                    mode: Mode::Preauth,
                    single: true,
                },
            ),
            (
                &["single", "debug", "preauth"],
                Args {
                    config: None,
                    debug: true,
                    mode: Mode::Preauth,
                    single: true,
                },
            ),
        ];
        for (args, want) in ok {
            let raw: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
            assert_eq!(&parse_args(&raw).unwrap(), want, "{args:?}");
        }
        let bad: &[&[&str]] = &[
            &["preauth", "authfail"],
            &["nullok"],
            &["config="],
            &["config=relative.toml"],
            &["Preauth"],
            &["secret=/tmp/x"],
            &["single"],
            &["authfail", "single"],
            &["preauth", "single", "single"],
            &["preauth", "Single"],
        ];
        for args in bad {
            let raw: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
            assert!(parse_args(&raw).is_err(), "{args:?}");
        }
        assert!(parse_args(&[b"\xff"]).is_err());
    }
}
