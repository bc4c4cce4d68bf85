//! The PAM boundary: entry points, module arguments, PAM items, the
//! conversation, and the one place where outcomes become PAM codes.
//!
//! pam-bindings' `pam_hooks!` generates the `extern "C"` entry points (the
//! only unsafe code in the module, reviewed in that crate): it wraps every hook
//! in `catch_unwind`, so a panic becomes PAM_ABORT instead of unwinding into
//! sshd. Everything below is safe Rust.

use crate::audit::{Record, Severity, Sink, Syslog};
use crate::auth::{self, Accounts, Conversation, Env, Mode, Outcome, Request};
use crate::config::{self, Config};
use crate::user::UserName;
use pam::constants::{PAM_ERROR_MSG, PAM_PROMPT_ECHO_OFF, PAM_TEXT_INFO, PamFlag, PamResultCode};
use pam::conv::Conv;
use pam::items::{RHost, Service, Tty};
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
}

/// The parsed module arguments.
#[derive(Debug, PartialEq, Eq)]
pub struct Args {
    pub config: Option<PathBuf>,
    pub debug: bool,
    pub mode: Mode,
}

/// `config=PATH`, `debug`, and at most one mode word. Anything else is an
/// error: a typo in a PAM line must not silently change what is enforced.
pub fn parse_args(args: &[&[u8]]) -> Result<Args, String> {
    let mut out = Args {
        config: None,
        debug: false,
        mode: Mode::Code,
    };
    let mut mode_seen = false;
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
    Ok(out)
}

/// The `config=` argument alone, read before the others are validated.
fn config_arg(args: &[&[u8]]) -> Option<PathBuf> {
    args.iter()
        .filter_map(|a| std::str::from_utf8(a).ok()?.strip_prefix("config="))
        .find(|p| p.starts_with('/'))
        .map(PathBuf::from)
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
        Some(p) => (p, true),
        None => (PathBuf::from(config::DEFAULT_PATH), false),
    };
    let config = match Config::load(&path, explicit) {
        Ok(c) => c,
        Err(e) => {
            // Log where the administrator wants records, if the broken file
            // still says where that is.
            let socket =
                config::log_socket_hint(&path).unwrap_or_else(|| Config::default().log_socket);
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
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let req = Request {
        user,
        service,
        rhost,
        tty,
    };
    let mut env = Env {
        config: &config,
        now,
        conv: &mut prompter,
        accounts: &accounts,
        audit: &mut audit,
        debug: args.debug,
    };
    match auth::run(&mut env, args.mode, &req) {
        Outcome::Success => PamResultCode::PAM_SUCCESS,
        Outcome::Denied => PamResultCode::PAM_AUTH_ERR,
        Outcome::ConversationFailed => PamResultCode::PAM_CONV_ERR,
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
struct SystemAccounts;

impl Accounts for SystemAccounts {
    fn exists(&self, user: &UserName) -> Result<bool, String> {
        nix::unistd::User::from_name(user.as_str())
            .map(|u| u.is_some())
            .map_err(|e| e.to_string())
    }

    fn group_ids(&self, user: &UserName) -> Result<Option<Vec<u32>>, String> {
        let Some(account) =
            nix::unistd::User::from_name(user.as_str()).map_err(|e| e.to_string())?
        else {
            return Ok(None);
        };
        // A validated user name has no NUL byte.
        let name = std::ffi::CString::new(user.as_str()).map_err(|e| e.to_string())?;
        let gids = nix::unistd::getgrouplist(&name, account.gid).map_err(|e| e.to_string())?;
        Ok(Some(gids.into_iter().map(|g| g.as_raw()).collect()))
    }

    fn group_id(&self, name: &str) -> Result<Option<u32>, String> {
        nix::unistd::Group::from_name(name)
            .map(|g| g.map(|g| g.gid.as_raw()))
            .map_err(|e| e.to_string())
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
                },
            ),
            (
                &["preauth"],
                Args {
                    config: None,
                    debug: false,
                    mode: Mode::Preauth,
                },
            ),
            (
                &["authfail", "debug"],
                Args {
                    config: None,
                    debug: true,
                    mode: Mode::Authfail,
                },
            ),
            (
                &["config=/etc/x.toml", "preauth"],
                Args {
                    config: Some(PathBuf::from("/etc/x.toml")),
                    debug: false,
                    mode: Mode::Preauth,
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
        ];
        for args in bad {
            let raw: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
            assert!(parse_args(&raw).is_err(), "{args:?}");
        }
        assert!(parse_args(&[b"\xff"]).is_err());
    }
}
