//! What each module can return, and for whom a success lets someone in.
//!
//! - `pam_permit`: success only. `pam_deny`: failure only.
//! - `pam_rootok`: success only for a caller whose real uid is 0.
//! - `pam_succeed_if`: success when its conditions all hold: `user ingroup
//!   G` is members of G, `user = NAME` and `user in A:B` those accounts,
//!   `service` conditions are decided for the service being audited; any
//!   other condition (uid, shell, a negation such as `notingroup`) may hold
//!   for anyone. An incomplete or unknown condition never succeeds.
//! - `pam_wheel`: success for members of its group (`group=`, else the
//!   group of gid 0), or for anyone with `deny`.
//! - `pam_twostep`: `preauth` succeeds or fails (locked; with `single` it
//!   also splits the one answer, hands the password on and keeps the code
//!   for the code step, which then judges it instead of prompting);
//!   `authfail` always fails; the code step succeeds with the code, or
//!   without it by twostep's own policy ([`Skip`]), or fails; arguments the
//!   module refuses make it fail always.
//! - A module file that does not exist: libpam returns PAM_MODULE_UNKNOWN
//!   for it, with or without a `-` before the type (the `-` only keeps
//!   libpam from logging it).
//! - The password modules pam_unix, pam_sss, pam_ldap and pam_krb5 succeed
//!   (the password was right) or fail; PAM_IGNORE only where they are known
//!   to return it (pam_krb5; pam_sss and pam_ldap with the options that
//!   make them ignore some users).
//! - Any other module may return anything: success, PAM_IGNORE, or any
//!   failure.
#![forbid(unsafe_code)]

use super::Users;
use super::parse::{
    PAM_AUTH_ERR, PAM_CONV_ERR, PAM_IGNORE, PAM_INCOMPLETE, PAM_MODULE_UNKNOWN, PAM_PERM_DENIED,
    PAM_SUCCESS,
};
use crate::auth::Mode;
use crate::config::{Config, Console, Unenrolled};

/// What a successful module call means for the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// Nothing about the code.
    None,
    /// The code step let the user through by twostep's own policy: the
    /// index of the [`Skip`].
    Policy(u8),
    /// The code step checked the code.
    Code,
}

/// One thing a module can return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub retval: u8,
    /// Whom a success is for.
    pub users: Users,
    pub step: Step,
}

/// A pam_twostep line's part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    NotOurs,
    CodeStep,
    /// `single`: the line takes the password and the code in one answer.
    Preauth {
        single: bool,
    },
    Authfail,
    /// Arguments the module refuses: it denies every login.
    Broken,
}

/// A way twostep's own policy lets a user through the code step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// The config key (`policy.exempt_groups`).
    pub key: &'static str,
    pub users: Users,
    /// Who, in words: "members of group admins are not asked".
    pub what: String,
}

/// The skips a config allows.
pub fn skips(config: &Config, now: u64) -> Vec<Skip> {
    let p = &config.policy;
    let mut out: Vec<Skip> = p
        .exempt_groups
        .iter()
        .map(|g| Skip {
            key: "policy.exempt_groups",
            users: Users::Group(g.clone()),
            what: format!("members of group {g} are not asked for the code"),
        })
        .collect();
    let mut all = |key, what: String| {
        out.push(Skip {
            key,
            users: Users::All,
            what,
        })
    };
    if !p.require_groups.is_empty() {
        all(
            "policy.require_groups",
            format!(
                "users in none of the groups {} are not asked for the code",
                p.require_groups.join(", ")
            ),
        );
    }
    if !p.trusted_networks.is_empty() {
        let nets: Vec<String> = p.trusted_networks.iter().map(|n| n.to_string()).collect();
        all(
            "policy.trusted_networks",
            format!("logins from {} are not asked for the code", nets.join(", ")),
        );
    }
    if !p.remember.is_zero() {
        all(
            "policy.remember",
            format!(
                "a login from an address the user logged in from with the code within {} is \
                 not asked again",
                humantime::format_duration(p.remember)
            ),
        );
    }
    if p.console == Console::Skip {
        all(
            "policy.console",
            "logins on a terminal of this machine (no remote host) are not asked for the code"
                .into(),
        );
    }
    let enrolling = p.enroll_until.is_none_or(|until| {
        until
            .duration_since(std::time::UNIX_EPOCH)
            .is_ok_and(|d| now < d.as_secs())
    });
    match config.unenrolled {
        Unenrolled::Allow => all(
            "unenrolled",
            "users without a secret file (\"allow\") are let through without a code".into(),
        ),
        Unenrolled::Enroll if enrolling => all(
            "unenrolled",
            "users without a secret file (\"enroll\") set one up at this login with their \
             password alone"
                .into(),
        ),
        Unenrolled::Enroll | Unenrolled::Deny => {}
    }
    out.truncate(usize::from(u8::MAX));
    out
}

/// A module's name as reports and `audit.accept` give it: the file's base
/// name without `.so` (`pam_rootok`).
pub fn name(path: &str) -> &str {
    let base = path.rsplit('/').next().unwrap_or(path);
    base.strip_suffix(".so").unwrap_or(base)
}

/// Every failure a module may return (not PAM_INCOMPLETE, which is never
/// a verdict).
fn any_failure() -> impl Iterator<Item = Outcome> {
    (1..PAM_INCOMPLETE).map(|retval| Outcome {
        retval,
        users: Users::All,
        step: Step::None,
    })
}

fn fails(retval: u8) -> Outcome {
    Outcome {
        retval,
        users: Users::All,
        step: Step::None,
    }
}

fn succeeds(users: Users, step: Step) -> Outcome {
    Outcome {
        retval: PAM_SUCCESS,
        users,
        step,
    }
}

/// What a module line can return, and what the audit knows of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    pub outcomes: Vec<Outcome>,
    pub role: Role,
    /// What is wrong with the line (reported).
    pub problem: Option<String>,
    /// The policy skips its `Step::Policy(i)` outcomes stand for.
    pub skips: Vec<Skip>,
}

impl Model {
    fn plain(outcomes: Vec<Outcome>) -> Model {
        Model {
            outcomes,
            role: Role::NotOurs,
            problem: None,
            skips: Vec::new(),
        }
    }
}

/// A twostep config with the skips it allows, or why it cannot be read.
pub type Loaded = Result<(Config, Vec<Skip>), String>;

/// The twostep config a pam_twostep line uses, given its `config=` (none:
/// the system's).
pub type ConfigOf<'a> = dyn Fn(Option<&std::path::Path>) -> Loaded + 'a;

/// What a module line can return. `present`: whether its file exists
/// (`None`: unknown, taken as present).
pub fn model(
    path: &str,
    args: &[String],
    present: Option<bool>,
    service: &str,
    config: &ConfigOf<'_>,
) -> Model {
    if present == Some(false) {
        return Model {
            role: role_of(path, args),
            ..Model::plain(vec![fails(PAM_MODULE_UNKNOWN)])
        };
    }
    let any = |users: Users| {
        let mut v = vec![succeeds(users, Step::None)];
        v.extend(any_failure());
        v
    };
    match name(path) {
        "pam_permit" => Model::plain(vec![succeeds(Users::All, Step::None)]),
        "pam_deny" => Model::plain(vec![fails(PAM_AUTH_ERR)]),
        "pam_rootok" => Model::plain(vec![succeeds(Users::Root, Step::None), fails(PAM_AUTH_ERR)]),
        "pam_succeed_if" => {
            let mut v: Vec<Outcome> = succeed_if(args, service)
                .into_iter()
                .map(|u| succeeds(u, Step::None))
                .collect();
            v.extend(any_failure());
            Model::plain(v)
        }
        "pam_wheel" => {
            let users = if args.iter().any(|a| a == "deny") {
                Users::All
            } else {
                let group = args
                    .iter()
                    .find_map(|a| a.strip_prefix("group="))
                    .unwrap_or("root");
                Users::Group(group.to_string())
            };
            Model::plain(any(users))
        }
        "pam_twostep" => twostep(args, config),
        m if password_ignores(m, args) == Some(false) => Model::plain(
            any(Users::All)
                .into_iter()
                .filter(|o| o.retval != PAM_IGNORE)
                .collect(),
        ),
        _ => Model::plain(any(Users::All)),
    }
}

/// Whether a password module may return PAM_IGNORE, which lets a stack
/// that something else made positive through without a password. `None`:
/// not a module known here (then it may return anything).
fn password_ignores(module: &str, args: &[String]) -> Option<bool> {
    let has = |a: &str| {
        args.iter()
            .any(|x| x == a || x.starts_with(&format!("{a}=")))
    };
    match module {
        // pam_unix's auth never does.
        "pam_unix" => Some(false),
        // pam_sss only when told to, for unknown users or no server.
        "pam_sss" => Some(has("ignore_unknown_user") || has("ignore_authinfo_unavail")),
        // nss-pam-ldapd's: below minimum_uid, or when told to.
        "pam_ldap" => {
            Some(has("minimum_uid") || has("ignore_unknown_user") || has("ignore_authinfo_unavail"))
        }
        // pam_krb5 ignores root and users below minimum_uid, among others.
        "pam_krb5" => Some(true),
        _ => None,
    }
}

/// Modules whose success is what lets someone in: a password or another
/// credential, or a pass such as pam_permit's. Reports name the first that
/// succeeded on a path without the code.
pub fn grants(path: &str) -> bool {
    const GRANTS: [&str; 24] = [
        "pam_permit",
        "pam_rootok",
        "pam_succeed_if",
        "pam_wheel",
        "pam_unix",
        "pam_unix2",
        "pam_sss",
        "pam_sss_gss",
        "pam_krb5",
        "pam_ldap",
        "pam_winbind",
        "pam_radius_auth",
        "pam_tacplus",
        "pam_userdb",
        "pam_pwdfile",
        "pam_yubico",
        "pam_u2f",
        "pam_oath",
        "pam_google_authenticator",
        "pam_fprintd",
        "pam_p11",
        "pam_pkcs11",
        "pam_ssh_agent_auth",
        "pam_mysql",
    ];
    GRANTS.contains(&name(path))
}

/// A pam_twostep line's role, from its arguments alone.
pub fn role_of(path: &str, args: &[String]) -> Role {
    if name(path) != "pam_twostep" {
        return Role::NotOurs;
    }
    let raw: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    match crate::pam::parse_args(&raw) {
        Ok(a) => match a.mode {
            Mode::Code => Role::CodeStep,
            Mode::Preauth => Role::Preauth { single: a.single },
            Mode::Authfail => Role::Authfail,
        },
        Err(_) => Role::Broken,
    }
}

fn twostep(args: &[String], config: &ConfigOf<'_>) -> Model {
    let raw: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    let broken = |why: String| Model {
        outcomes: vec![fails(PAM_AUTH_ERR)],
        role: Role::Broken,
        problem: Some(why),
        skips: Vec::new(),
    };
    let parsed = match crate::pam::parse_args(&raw) {
        Ok(a) => a,
        Err(why) => {
            return broken(format!(
                "pam_twostep.so refuses its arguments ({why}): it denies every login"
            ));
        }
    };
    let skips = match config(parsed.config.as_deref()) {
        Ok((_, skips)) => skips,
        Err(why) => {
            return broken(format!(
                "pam_twostep.so cannot read its config ({why}): it denies every login"
            ));
        }
    };
    match parsed.mode {
        Mode::Preauth => Model {
            role: Role::Preauth {
                single: parsed.single,
            },
            ..Model::plain(vec![succeeds(Users::All, Step::None), fails(PAM_AUTH_ERR)])
        },
        Mode::Authfail => Model {
            role: Role::Authfail,
            ..Model::plain(vec![fails(PAM_AUTH_ERR)])
        },
        Mode::Code => {
            let mut outcomes = vec![
                succeeds(Users::All, Step::Code),
                fails(PAM_AUTH_ERR),
                fails(PAM_CONV_ERR),
            ];
            for (i, s) in skips.iter().enumerate() {
                let i = u8::try_from(i).unwrap_or(u8::MAX);
                outcomes.push(succeeds(s.users.clone(), Step::Policy(i)));
            }
            Model {
                outcomes,
                role: Role::CodeStep,
                problem: None,
                skips,
            }
        }
    }
}

/// A must-fail line's only result.
pub fn must_fail() -> Vec<Outcome> {
    vec![fails(PAM_PERM_DENIED)]
}

/// Whom a pam_succeed_if success is for: each alternative (its conditions
/// are all needed; a list such as `user in a:b` gives one per name). Empty:
/// it never succeeds.
pub fn succeed_if(args: &[String], service: &str) -> Vec<Users> {
    const FLAGS: [&str; 6] = [
        "debug",
        "use_uid",
        "quiet",
        "quiet_fail",
        "quiet_success",
        "audit",
    ];
    const ATTRIBUTES: [&str; 13] = [
        "login", "name", "user", "uid", "gid", "shell", "home", "dir", "homedir", "service",
        "ruser", "rhost", "tty",
    ];
    const QUALIFIERS: [&str; 22] = [
        "<",
        "lt",
        "<=",
        "le",
        ">",
        "gt",
        ">=",
        "ge",
        "eq",
        "=",
        "ne",
        "!=",
        "=~",
        "glob",
        "!~",
        "noglob",
        "in",
        "notin",
        "ingroup",
        "notingroup",
        "innetgr",
        "notinnetgr",
    ];
    let words: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !FLAGS.contains(a))
        .collect();
    if !words.len().is_multiple_of(3) {
        return Vec::new();
    }
    let mut alternatives = vec![Users::All];
    for triple in words.chunks(3) {
        let [left, qual, right] = triple else {
            return Vec::new();
        };
        let (left, qual) = (left.to_ascii_lowercase(), qual.to_ascii_lowercase());
        if !ATTRIBUTES.contains(&left.as_str()) || !QUALIFIERS.contains(&qual.as_str()) {
            return Vec::new();
        }
        let list = || right.split(':').filter(|s| !s.is_empty());
        let here: Vec<Users> = match (left.as_str(), qual.as_str()) {
            ("user" | "login" | "name", "=") => vec![Users::User(right.to_string())],
            ("user" | "login" | "name", "in") => list().map(|u| Users::User(u.into())).collect(),
            ("user" | "login" | "name", "ingroup") => {
                list().map(|g| Users::Group(g.into())).collect()
            }
            ("service", "=") if *right != service => Vec::new(),
            ("service", "!=") if *right == service => Vec::new(),
            ("service", "in") if !list().any(|s| s == service) => Vec::new(),
            ("service", "notin") if list().any(|s| s == service) => Vec::new(),
            _ => vec![Users::All],
        };
        let mut next = Vec::new();
        for a in &alternatives {
            for h in &here {
                let n = narrower(a, h);
                if !next.contains(&n) {
                    next.push(n);
                }
            }
        }
        next.truncate(64);
        alternatives = next;
    }
    alternatives
}

/// How narrow a set of users is: root callers, then one account, then a
/// group, then everyone.
fn rank(u: &Users) -> u8 {
    match u {
        Users::Root => 0,
        Users::User(_) => 1,
        Users::Group(_) => 2,
        Users::All => 3,
    }
}

/// Who passes both of two conditions, as a report can say it: the
/// narrower; of two of the same kind (two groups), the first.
pub fn narrower(a: &Users, b: &Users) -> Users {
    if rank(b) < rank(a) {
        b.clone()
    } else {
        a.clone()
    }
}
