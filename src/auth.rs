//! The login flow as plain Rust: what each module mode does, over small traits
//! for the conversation, the account database and the audit log. No PAM types
//! here; `pam.rs` maps [`Outcome`] to PAM codes in one place.
#![forbid(unsafe_code)]

use crate::audit::{Record, Severity, Sink};
use crate::config::{Config, Unenrolled};
use crate::enrollment;
use crate::lockout::{self, Standing};
use crate::policy::{self, Decision};
use crate::qr::{self, Qr};
use crate::recovery;
use crate::secret::{self, SecretError, UserSecret};
use crate::state::{self, Remembered, StateError, UserState};
use crate::totp::{self, Code};
use crate::user::UserName;
use zeroize::Zeroizing;

/// The module's mode word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Ask for and check the code.
    Code,
    /// Before the password: deny at once if the user is locked.
    Preauth,
    /// After a failed password: count one failure, deny.
    Authfail,
}

/// What the module answers. Mapped to PAM codes in `pam.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Let the login through (a good code, a skipped challenge, preauth passed).
    Success,
    /// Deny. Everything that is not a proven success ends here.
    Denied,
    /// The conversation failed (client went away): deny, nothing evaluated.
    ConversationFailed,
}

/// The PAM items of this attempt. `user` is the raw PAM_USER: not validated.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub user: Vec<u8>,
    pub service: String,
    pub rhost: String,
    pub tty: String,
}

/// Talking to the person logging in.
pub trait Conversation {
    /// Asks with echo off. `None` if the conversation failed.
    fn ask_hidden(&mut self, prompt: &str) -> Option<Zeroizing<Vec<u8>>>;
    fn error(&mut self, text: &str);
    fn info(&mut self, text: &str);
}

/// The system's account and group databases.
pub trait Accounts {
    /// Whether the user exists. An error is a lookup failure (fail closed).
    fn exists(&self, user: &UserName) -> Result<bool, String>;
    /// The IDs of the user's groups, the primary one and the supplementary
    /// ones (getgrouplist). `None`: there is no such user.
    fn group_ids(&self, user: &UserName) -> Result<Option<Vec<u32>>, String>;
    /// A group's ID; `None`: there is no such group.
    fn group_id(&self, name: &str) -> Result<Option<u32>, String>;
}

/// The policy's view of a user's groups: the user's group IDs are looked up
/// once, on the first question, and each configured group name is resolved
/// to its ID, so that no group of the user needs a lookup by name.
struct UserGroups<'a> {
    accounts: &'a dyn Accounts,
    user: &'a UserName,
    gids: Option<Result<Option<Vec<u32>>, String>>,
}

impl<'a> UserGroups<'a> {
    fn new(accounts: &'a dyn Accounts, user: &'a UserName) -> Self {
        UserGroups {
            accounts,
            user,
            gids: None,
        }
    }

    /// Whether the user exists, if the group lookup has found out.
    fn exists(&self) -> Option<bool> {
        match &self.gids {
            Some(Ok(gids)) => Some(gids.is_some()),
            _ => None,
        }
    }
}

impl policy::Groups for UserGroups<'_> {
    fn in_any(&mut self, names: &[String]) -> Result<bool, String> {
        let (accounts, user) = (self.accounts, self.user);
        let gids = match self.gids.get_or_insert_with(|| accounts.group_ids(user)) {
            Ok(Some(gids)) => gids,
            // A user that does not exist is in no group.
            Ok(None) => return Ok(false),
            Err(e) => return Err(e.clone()),
        };
        let mut failed = None;
        for name in names {
            match accounts.group_id(name) {
                Ok(Some(gid)) if gids.contains(&gid) => return Ok(true),
                Ok(_) => {}
                Err(e) => failed = Some(format!("group {name}: {e}")),
            }
        }
        failed.map_or(Ok(false), Err)
    }
}

/// Everything one attempt works with.
pub struct Env<'a> {
    pub config: &'a Config,
    /// Unix seconds, read once per attempt.
    pub now: u64,
    pub conv: &'a mut dyn Conversation,
    pub accounts: &'a dyn Accounts,
    pub audit: &'a mut dyn Sink,
    /// The `debug` module argument: also log `event=debug` records that say
    /// how the decision was reached (never an answer, code or secret).
    pub debug: bool,
}

/// Why a code attempt failed, as the `reason` of `auth_fail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reason {
    BadCode,
    Replay,
    NoSecret,
    BadSecretFile,
    BadUser,
}

impl Reason {
    fn as_str(self) -> &'static str {
        match self {
            Reason::BadCode => "bad_code",
            Reason::Replay => "replay",
            Reason::NoSecret => "no_secret",
            Reason::BadSecretFile => "bad_secret_file",
            Reason::BadUser => "bad_user",
        }
    }
}

/// The name as it may appear in a record: validated names as they are,
/// anything else escaped by the record formatter.
fn display_name(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).into_owned()
}

impl Env<'_> {
    fn record(&mut self, event: &str, severity: Severity, req: &Request) -> Record {
        let _ = self;
        Record::new(event, severity)
            .with("user", display_name(&req.user))
            .with("service", &req.service)
            .with("rhost", &req.rhost)
    }

    fn emit(&mut self, record: Record) {
        self.audit.emit(record);
    }

    /// With `debug`: one `event=debug` record (authpriv.debug).
    fn trace(&mut self, req: &Request, detail: impl FnOnce() -> String) {
        if self.debug {
            let rec = Record::new("debug", Severity::Debug)
                .with("user", display_name(&req.user))
                .with("service", &req.service)
                .with("detail", detail());
            self.emit(rec);
        }
    }

    /// Tells a locked user until when, and records the refusal.
    fn refuse_locked(&mut self, req: &Request, until: u64) -> Outcome {
        self.conv.error(&lock_message(until, self.now));
        let rec = self
            .record("lock_denied", Severity::Notice, req)
            .with("until", crate::audit::rfc3339(until));
        self.emit(rec);
        Outcome::Denied
    }

    /// A state file that cannot be trusted counts as a lock of unknown end.
    fn refuse_bad_state(&mut self, req: &Request, err: &StateError) -> Outcome {
        self.conv
            .error("Login is temporarily blocked for this account. Contact your administrator.");
        let rec = self
            .record("lock_denied", Severity::Warning, req)
            .with("until", "unknown")
            .with("reason", "bad_state")
            .with("detail", err);
        self.emit(rec);
        Outcome::Denied
    }
}

/// "Too many failed attempts. Try again after 07:05:00 UTC (in 5 minutes)."
pub fn lock_message(until: u64, now: u64) -> String {
    let left = until.saturating_sub(now);
    let stamp = crate::audit::rfc3339(until);
    let when = stamp.replace('T', " ").replace('Z', " UTC");
    let wait = match left {
        0..=59 => format!("{left} seconds"),
        60..=5399 => format!("{} minutes", left.div_ceil(60)),
        _ => format!("{} hours", left.div_ceil(3600)),
    };
    format!("Too many failed attempts: this account is locked until {when} (in {wait}).")
}

/// Runs one module call.
pub fn run(env: &mut Env<'_>, mode: Mode, req: &Request) -> Outcome {
    match mode {
        Mode::Code => code_step(env, req),
        Mode::Preauth => preauth(env, req),
        Mode::Authfail => authfail(env, req),
    }
}

/// Who the attempt is about, once the name is checked.
enum Who {
    /// Not a plausible login name: nothing may touch the disk for it.
    Invalid,
    /// A plausible name that is not an account here (or whose lookup failed).
    Unknown,
    Account(UserName),
}

fn identify(env: &Env<'_>, req: &Request) -> Who {
    match UserName::parse_bytes(&req.user) {
        Err(_) => Who::Invalid,
        Ok(user) => match env.accounts.exists(&user) {
            Ok(true) => Who::Account(user),
            // A failed lookup is treated as "no such user": deny.
            Ok(false) | Err(_) => Who::Unknown,
        },
    }
}

fn preauth(env: &mut Env<'_>, req: &Request) -> Outcome {
    let user = match UserName::parse_bytes(&req.user) {
        Ok(user) => user,
        Err(_) => {
            let rec = env
                .record("auth_fail", Severity::Notice, req)
                .with("tty", &req.tty)
                .with("reason", Reason::BadUser.as_str())
                .with("failures", 0);
            env.emit(rec);
            return Outcome::Denied;
        }
    };
    // Unknown users have no state; the password module will refuse them.
    match state::read(&env.config.state_dir, &user) {
        Ok(None) => Outcome::Success,
        Ok(Some(s)) => match lockout::standing(&s.counters, env.now) {
            Standing::Open => Outcome::Success,
            Standing::Locked { until } => env.refuse_locked(req, until),
        },
        Err(e) => env.refuse_bad_state(req, &e),
    }
}

fn authfail(env: &mut Env<'_>, req: &Request) -> Outcome {
    // A user with a state file has been counted before; only a first failure
    // needs the account database.
    let known = UserName::parse_bytes(&req.user)
        .ok()
        .filter(|u| state::exists(&env.config.state_dir, u));
    let who = match known {
        Some(user) => Who::Account(user),
        None => identify(env, req),
    };
    let user = match who {
        Who::Account(user) => user,
        Who::Invalid | Who::Unknown => {
            // No state for names that are not accounts: a flood of made-up
            // names must not fill the disk.
            let rec = env
                .record("password_fail", Severity::Notice, req)
                .with("tty", &req.tty)
                .with("failures", 0);
            env.emit(rec);
            return Outcome::Denied;
        }
    };
    let locked = match lock_open(env, req, &user) {
        Ok(l) => l,
        Err(refused) => return refused,
    };
    let (failures, new_lock) = match commit_failure(env, req, locked) {
        Ok(counted) => counted,
        Err(refused) => return refused,
    };
    let rec = env
        .record("password_fail", Severity::Notice, req)
        .with("tty", &req.tty)
        .with("failures", failures);
    env.emit(rec);
    announce_lock(env, &user, req, new_lock);
    Outcome::Denied
}

fn announce_lock(
    env: &mut Env<'_>,
    user: &UserName,
    req: &Request,
    new_lock: Option<lockout::NewLock>,
) {
    let _ = req;
    if let Some(lock) = new_lock {
        env.emit(
            Record::new("locked", Severity::Warning)
                .with("user", user)
                .with("tier", lock.tier)
                .with("until", crate::audit::rfc3339(lock.until)),
        );
        env.conv.error(&lock_message(lock.until, env.now));
    }
}

fn code_step(env: &mut Env<'_>, req: &Request) -> Outcome {
    let Ok(user) = UserName::parse_bytes(&req.user) else {
        return deny_after_prompt(env, req, Target::Invalid, Reason::BadUser, None);
    };

    // A locked user is told at once and not asked, and never waved through
    // by the policy either.
    let state = match state::read(&env.config.state_dir, &user) {
        Ok(state) => state,
        Err(e) => return env.refuse_bad_state(req, &e),
    };
    if let Some(s) = &state
        && let Standing::Locked { until } = lockout::standing(&s.counters, env.now)
    {
        return env.refuse_locked(req, until);
    }

    // Who is asked. The default policy asks everyone, and then this costs
    // nothing: no group lookup, no file read.
    let mut always = false;
    if env.config.policy.is_active() {
        let remembered: &[Remembered] = state.as_ref().map_or(&[], |s| &s.remembered);
        let mut groups = UserGroups::new(env.accounts, &user);
        match policy::decide(
            &env.config.policy,
            &mut groups,
            &req.rhost,
            remembered,
            env.now,
        ) {
            Decision::Skip(reason) => {
                let exists = groups.exists();
                return skip(env, req, &user, exists, reason.as_str());
            }
            Decision::Challenge { always: a } => {
                env.trace(req, || {
                    format!("policy: ask (always_challenge_groups member: {a})")
                });
                always = a;
            }
        }
    }

    // Read here to decide whether and how to ask; the answer is judged
    // against the file as it is after the prompt (check_answer).
    let read_before = match secret::load_versioned(&env.config.secret_dir, &user, &env.config.totp)
    {
        Ok(read) => {
            let (s, _) = &read;
            let (p, codes) = (s.params, s.file.recovery_codes.len());
            env.trace(req, || {
                format!(
                    "secret file read: {} digits, {} s, {}, skew {}, {codes} recovery codes",
                    p.digits,
                    p.period,
                    p.algorithm.as_str(),
                    p.skew
                )
            });
            read
        }
        // Only without a secret file does it matter whether the account
        // exists: a secret file is the administrator's word that it does. So
        // the account database (linear in its size with NSS files) is not
        // read on an enrolled user's login. A user that does not exist is
        // asked, then denied (the contract).
        Err(SecretError::Missing) if !matches!(identify(env, req), Who::Account(_)) => {
            return deny_after_prompt(env, req, Target::Unknown, Reason::BadUser, None);
        }
        Err(SecretError::Missing) => match env.config.unenrolled {
            // An always_challenge_groups member is not let through without
            // a code: "optional for everyone, required for admins".
            Unenrolled::Allow if !always => {
                return skip(env, req, &user, Some(true), "unenrolled");
            }
            Unenrolled::Enroll if enrollment_open(env.config, env.now) => {
                return enroll_at_login(env, req, &user);
            }
            Unenrolled::Allow | Unenrolled::Deny | Unenrolled::Enroll => {
                return deny_after_prompt(env, req, Target::Account(&user), Reason::NoSecret, None);
            }
        },
        Err(e) => {
            // An error that is not about this user's file (secret_dir is
            // missing) must not make made-up names create state files.
            let target = match e {
                SecretError::Io(_) if !matches!(identify(env, req), Who::Account(_)) => {
                    Target::Unknown
                }
                _ => Target::Account(&user),
            };
            return deny_after_prompt(env, req, target, Reason::BadSecretFile, Some(e.to_string()));
        }
    };

    let Some(answer) = env.conv.ask_hidden(&env.config.prompt) else {
        return Outcome::ConversationFailed;
    };
    check_answer(env, req, &user, read_before, &answer)
}

/// Lets an existing account through without a code, and records why.
/// `exists`: whether the account exists, if already known.
///
/// A name that is not an account is asked for a code and denied, as the
/// contract says of every user that does not exist (INTERFACE.md, "The
/// module"). In a stack where the password comes first, an unknown name
/// never gets this far.
fn skip(
    env: &mut Env<'_>,
    req: &Request,
    user: &UserName,
    exists: Option<bool>,
    reason: &str,
) -> Outcome {
    let exists = exists.unwrap_or_else(|| {
        // A secret file is the administrator's word that the account
        // exists; a stat is cheaper than a walk of the account database.
        secret::path_for(&env.config.secret_dir, user)
            .symlink_metadata()
            .is_ok()
            || matches!(identify(env, req), Who::Account(_))
    });
    if !exists {
        return deny_after_prompt(env, req, Target::Unknown, Reason::BadUser, None);
    }
    let rec = env
        .record("skipped", Severity::Info, req)
        .with("reason", reason);
    env.emit(rec);
    Outcome::Success
}

/// Whether `unenrolled = "enroll"` still enrolls: before `policy.enroll_until`.
fn enrollment_open(config: &Config, now: u64) -> bool {
    config.policy.enroll_until.is_none_or(|until| {
        let until = until
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        now < until
    })
}

/// The remembered sources after a successful code login: this source added
/// or refreshed when `policy.remember` is on and the source is an address.
fn remembered_after_success(
    env: &Env<'_>,
    req: &Request,
    current: &[Remembered],
) -> Vec<Remembered> {
    let remember = env.config.policy.remember.as_secs();
    if remember == 0 {
        return current.to_vec();
    }
    match policy::source_address(&req.rhost) {
        Some(addr) => policy::remember(current, addr, env.now, remember),
        None => current.to_vec(),
    }
}

/// Whose failure [`deny_after_prompt`] records.
enum Target<'a> {
    Invalid,
    Unknown,
    Account(&'a UserName),
}

/// Asks like any other attempt, then denies: a remote client cannot tell an
/// unknown or unenrolled user from a wrong code. Accounts count the failure;
/// unknown names do an equivalent durable write to a decoy, so that the
/// response time does not tell them apart either. Invalid names touch nothing.
fn deny_after_prompt(
    env: &mut Env<'_>,
    req: &Request,
    target: Target<'_>,
    reason: Reason,
    detail: Option<String>,
) -> Outcome {
    // An enrolled user's secret file is parsed before the prompt and judged
    // after it: the decoy's too.
    let decoy = secret::parse(DECOY_SECRET_FILE, &env.config.totp).ok();
    let Some(answer) = env.conv.ask_hidden(&env.config.prompt) else {
        return Outcome::ConversationFailed;
    };
    if let Some(decoy) = &decoy {
        decoy_check(decoy, env.now, &answer);
    }
    let failures = match target {
        Target::Account(user) => {
            return match lock_open(env, req, user) {
                Ok(locked) => deny_counted(env, req, user, locked, reason, detail),
                Err(refused) => refused,
            };
        }
        Target::Unknown => {
            state::decoy_write(&env.config.state_dir);
            0
        }
        Target::Invalid => 0,
    };
    emit_auth_fail(env, req, reason, failures, detail);
    Outcome::Denied
}

/// A secret file of the usual shape (a 160-bit secret, ten recovery-code
/// hashes under one salt) that belongs to no one: its secret and codes were
/// thrown away when it was made.
const DECOY_SECRET_FILE: &str = include_str!("decoy_secret.toml");

/// An enrolled user's wrong answer costs a secret file parsed (before the
/// prompt), the window of codes computed for a code-shaped answer, and one
/// argon2 hash for a recovery-shaped one. Unknown and unenrolled users pay
/// the same on the decoy, so that the time to the result does not tell them
/// apart (tests/timing.rs). The result is ignored: they are denied anyway.
fn decoy_check(decoy: &secret::UserSecret, now: u64, answer: &[u8]) {
    let in_window = Code::parse(answer, decoy.params.digits)
        .and_then(|code| totp::matching_step(&decoy.key, &decoy.params, &code, now));
    if in_window.is_none() {
        let _ = recovery::find(&decoy.file.recovery_codes, answer);
    }
}

fn emit_auth_fail(
    env: &mut Env<'_>,
    req: &Request,
    reason: Reason,
    failures: u32,
    detail: Option<String>,
) {
    let mut rec = env
        .record("auth_fail", Severity::Notice, req)
        .with("tty", &req.tty)
        .with("reason", reason.as_str())
        .with("failures", failures);
    if let Some(detail) = detail {
        rec = rec.with("detail", detail);
    }
    env.emit(rec);
}

/// Takes the user's state lock for an attempt. A user locked meanwhile is
/// refused (not evaluated, not counted), and so is a damaged state file.
fn lock_open(env: &mut Env<'_>, req: &Request, user: &UserName) -> Result<state::Locked, Outcome> {
    let locked = match state::lock(&env.config.state_dir, user) {
        Ok(l) => l,
        Err(e) => return Err(env.refuse_bad_state(req, &e)),
    };
    if let Standing::Locked { until } = lockout::standing(&locked.state.counters, env.now) {
        drop(locked);
        return Err(env.refuse_locked(req, until));
    }
    Ok(locked)
}

/// Counts one failure in the user's locked state, durably, and releases the
/// lock: the failures so far and the lock this one caused, or the refusal if
/// the state could not be written.
fn commit_failure(
    env: &mut Env<'_>,
    req: &Request,
    mut locked: state::Locked,
) -> Result<(u32, Option<lockout::NewLock>), Outcome> {
    let (counters, new_lock) =
        lockout::record_failure(&locked.state.counters, env.now, &env.config.lockout.tiers);
    let next = UserState {
        counters,
        ..locked.state.clone()
    };
    let written = locked.commit(next);
    drop(locked);
    match written {
        Ok(()) => Ok((counters.failures, new_lock)),
        Err(e) => Err(env.refuse_bad_state(req, &e)),
    }
}

/// A code attempt that failed under the lock: counted, recorded, denied.
fn deny_counted(
    env: &mut Env<'_>,
    req: &Request,
    user: &UserName,
    locked: state::Locked,
    reason: Reason,
    detail: Option<String>,
) -> Outcome {
    match commit_failure(env, req, locked) {
        Ok((failures, new_lock)) => {
            emit_auth_fail(env, req, reason, failures, detail);
            announce_lock(env, user, req, new_lock);
            Outcome::Denied
        }
        Err(refused) => refused,
    }
}

/// Evaluates the answer under the user's exclusive state lock, so that
/// parallel attempts are serialized: each sees the failures of the ones
/// before it, and none is evaluated once the tier's allowance is used up.
fn check_answer(
    env: &mut Env<'_>,
    req: &Request,
    user: &UserName,
    read_before: (UserSecret, secret::Version),
    answer: &[u8],
) -> Outcome {
    let mut locked = match lock_open(env, req, user) {
        Ok(l) => l,
        Err(refused) => return refused,
    };
    // The answer is judged against the secret file as it is now, under the
    // lock, not as it was before the prompt: a reset or a re-enrollment (a
    // lost phone) made while someone sat at the prompt applies to their
    // answer too (tests/faults.rs).
    // An unchanged file (one lstat tells) is not read and parsed again.
    let (before, version) = read_before;
    let current = if secret::unchanged(&env.config.secret_dir, user, &version) {
        Ok(before)
    } else {
        drop(before);
        secret::load(&env.config.secret_dir, user, &env.config.totp).map_err(|e| match e {
            SecretError::Missing => (Reason::NoSecret, "removed during the attempt".to_string()),
            e => (Reason::BadSecretFile, e.to_string()),
        })
    };
    let mut detail = None;
    let verdict = match &current {
        Err((reason, why)) => {
            detail = Some(why.clone());
            Err(*reason)
        }
        Ok(secret) => match Code::parse(answer, secret.params.digits) {
            None => Err(Reason::BadCode),
            Some(code) => match totp::matching_step(&secret.key, &secret.params, &code, env.now) {
                None => Err(Reason::BadCode),
                Some(step) => {
                    let step_time = step.saturating_mul(u64::from(secret.params.period));
                    if step_time <= locked.state.last_step_time {
                        Err(Reason::Replay)
                    } else {
                        Ok(Accepted::Totp { step_time })
                    }
                }
            },
        },
    };
    // The message is built only under `debug`: this line runs on every attempt.
    let now = env.now;
    env.trace(req, || match (&verdict, &current) {
        (Ok(Accepted::Totp { step_time }), Ok(s)) => {
            let offset = (step_time / u64::from(s.params.period)) as i128
                - totp::step_of(now, s.params.period) as i128;
            format!(
                "answer: the code of step offset {offset} (skew window), later than the last accepted"
            )
        }
        (Err(Reason::Replay), _) => {
            "answer: a code of the window, but not later than the last accepted step".into()
        }
        (Err(Reason::BadCode), Ok(s)) if Code::parse(answer, s.params.digits).is_none() => {
            format!("answer: not {} digits", s.params.digits)
        }
        (Err(Reason::BadCode), _) => "answer: no step of the window has this code".into(),
        (Err(reason), _) => format!("answer: not judged ({})", reason.as_str()),
        (Ok(_), _) => "answer: accepted".into(),
    });
    // Not a code of the window: perhaps a recovery code. TOTP goes first, as
    // an 8-digit scratch code looks like an 8-digit TOTP code. Still under
    // the lock, so that parallel uses of one recovery code succeed once.
    let verdict = match (verdict, current) {
        (Err(Reason::BadCode), Ok(secret)) if !secret.file.recovery_codes.is_empty() => {
            match use_recovery_code(env.config, user, secret, answer) {
                Ok(Some(left)) => Ok(Accepted::Recovery { left }),
                Ok(None) => Err(Reason::BadCode),
                Err((reason, why)) => {
                    detail = Some(why);
                    Err(reason)
                }
            }
        }
        (other, _) => other,
    };
    match verdict {
        Ok(accepted) => {
            let (last_step_time, method) = match accepted {
                Accepted::Totp { step_time } => (step_time, "totp"),
                Accepted::Recovery { .. } => (locked.state.last_step_time, "recovery"),
            };
            let next = UserState {
                counters: lockout::reset(),
                last_step_time,
                last_success: env.now,
                remembered: remembered_after_success(env, req, &locked.state.remembered),
            };
            // The step must be on disk before we answer, or the code could be
            // replayed after a crash.
            if let Err(e) = locked.commit(next) {
                drop(locked);
                return env.refuse_bad_state(req, &e);
            }
            drop(locked);
            if let Accepted::Recovery { left } = accepted {
                env.conv.info(&recovery_message(left));
            }
            let rec = env
                .record("auth_ok", Severity::Info, req)
                .with("tty", &req.tty)
                .with("method", method);
            env.emit(rec);
            Outcome::Success
        }
        Err(reason) => deny_counted(env, req, user, locked, reason, detail),
    }
}

/// Enrollment at login (`unenrolled = "enroll"`): a new secret is shown as a
/// QR code, a key and a URI; a right code from the app writes it, exactly
/// as `twostep enroll` would, and lets the login through. A wrong code
/// writes nothing and counts as a failure. No recovery codes: a login
/// conversation is no place to show them (`twostep recovery-codes` is).
fn enroll_at_login(env: &mut Env<'_>, req: &Request, user: &UserName) -> Outcome {
    let params = env.config.totp;
    let key = match enrollment::new_key() {
        Ok(key) => key,
        Err(why) => {
            emit_auth_fail(env, req, Reason::NoSecret, 0, Some(why));
            return Outcome::Denied;
        }
    };
    let b32 = secret::encode_base32(&key);
    let issuer = enrollment::issuer(env.config);
    let uri = qr::otpauth_uri(&issuer, user.as_str(), &b32, &params);
    env.conv.info(&format!(
        "Two-step login is now required for {user}. Set it up with an authenticator \
         app (Google Authenticator, Microsoft Authenticator, FreeOTP, Aegis...): \
         scan this QR code, or add the account by hand with the key below."
    ));
    match Qr::encode(uri.as_bytes()).and_then(|code| code.terminal(qr::Style::Utf8)) {
        Ok(drawing) => env.conv.info(drawing.trim_end_matches('\n')),
        Err(_) => env
            .conv
            .info("(The QR code does not fit this screen: add the account by hand.)"),
    }
    let details = Zeroizing::new(format!(
        "Key: {}\nAccount: {issuer}:{user}\nType: time-based, {}, {} digits, every {} seconds\n\
         URI: {}\nThen type the code the app shows.",
        enrollment::grouped(&b32).as_str(),
        params.algorithm.as_str(),
        params.digits,
        params.period,
        uri.as_str(),
    ));
    env.conv.info(&details);
    let Some(answer) = env.conv.ask_hidden(&env.config.prompt) else {
        return Outcome::ConversationFailed;
    };

    // Under the user's lock, as every writer of a secret file: of two first
    // logins racing, the second sees the first one's file and writes nothing.
    let mut locked = match lock_open(env, req, user) {
        Ok(l) => l,
        Err(refused) => return refused,
    };
    let step_time = Code::parse(&answer, params.digits)
        .and_then(|code| totp::matching_step(&key, &params, &code, env.now))
        .map(|step| step.saturating_mul(u64::from(params.period)));
    let path = secret::path_for(&env.config.secret_dir, user);
    let written = match step_time {
        None => Err((Reason::BadCode, None)),
        Some(_) if path.symlink_metadata().is_ok() => Err((
            Reason::BadCode,
            Some("another login enrolled this user meanwhile".to_string()),
        )),
        Some(step_time) => {
            let file = enrollment::secret_file(&b32, &params, Vec::new());
            match enrollment::write_new(&env.config.secret_dir, user, &file) {
                Ok(()) => Ok(step_time),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err((
                    Reason::BadCode,
                    Some("another login enrolled this user meanwhile".to_string()),
                )),
                Err(e) => {
                    // Not the user's fault: not counted.
                    drop(locked);
                    let why = format!("cannot write {}: {e}", path.display());
                    emit_auth_fail(env, req, Reason::BadSecretFile, 0, Some(why));
                    return Outcome::Denied;
                }
            }
        }
    };
    match written {
        Ok(step_time) => {
            let next = UserState {
                counters: lockout::reset(),
                // The code that confirmed the enrollment is used up.
                last_step_time: locked.state.last_step_time.max(step_time),
                last_success: env.now,
                // Addresses remembered for an earlier secret are forgotten.
                remembered: remembered_after_success(env, req, &[]),
            };
            if let Err(e) = locked.commit(next) {
                // Without the used step on disk the enrollment is undone:
                // the login is refused and, as after a wrong code, no
                // secret file is left behind.
                let _ = crate::fsutil::remove_durably(&env.config.secret_dir, &path);
                drop(locked);
                return env.refuse_bad_state(req, &e);
            }
            drop(locked);
            env.emit(
                Record::new("enrolled", Severity::Notice)
                    .with("user", user)
                    .with("by", "login"),
            );
            env.conv
                .info("Two-step login is set up. From now on, each login asks for a code.");
            let rec = env
                .record("auth_ok", Severity::Info, req)
                .with("tty", &req.tty)
                .with("method", "totp");
            env.emit(rec);
            Outcome::Success
        }
        Err((reason, detail)) => deny_counted(env, req, user, locked, reason, detail),
    }
}

/// How an answer was accepted.
#[derive(Debug, Clone, Copy)]
enum Accepted {
    Totp {
        step_time: u64,
    },
    /// `left`: the user's recovery codes that remain.
    Recovery {
        left: usize,
    },
}

/// Checks `answer` against the user's recovery codes and, if it is one,
/// removes its hash from the secret file before returning: a used code never
/// works again, even after a crash. Called with the user's state lock held,
/// with `current` as check_answer read (or re-checked) under that lock, so a
/// code a parallel attempt used is already gone from it.
/// `Ok(None)`: not a recovery code.
fn use_recovery_code(
    config: &Config,
    user: &UserName,
    mut current: UserSecret,
    answer: &[u8],
) -> Result<Option<usize>, (Reason, String)> {
    if recovery::normalize(answer).is_none() {
        return Ok(None);
    }
    let Some(index) = recovery::find(&current.file.recovery_codes, answer) else {
        return Ok(None);
    };
    current.file.recovery_codes.remove(index);
    // If the code cannot be struck off, it must not be accepted.
    secret::store(&config.secret_dir, user, &current.file, true).map_err(|e| {
        (
            Reason::BadSecretFile,
            format!("cannot remove the used recovery code: {e}"),
        )
    })?;
    Ok(Some(current.file.recovery_codes.len()))
}

/// Told to the user after a recovery code let them in.
pub fn recovery_message(left: usize) -> String {
    match left {
        0 => {
            "Recovery code accepted. That was your last one: ask your administrator for new codes."
                .into()
        }
        1 => "Recovery code accepted. 1 recovery code is left.".into(),
        n => format!("Recovery code accepted. {n} recovery codes are left."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_messages_say_until_when() {
        let cases = [
            (
                1_000_300,
                1_000_000,
                "locked until 1970-01-12 13:51:40 UTC (in 5 minutes).",
            ),
            (1_000_030, 1_000_000, "(in 30 seconds)."),
            (1_003_600, 1_000_000, "(in 60 minutes)."),
            (1_007_200, 1_000_000, "(in 2 hours)."),
        ];
        for (until, now, want) in cases {
            let msg = lock_message(until, now);
            assert!(msg.contains(want), "{msg}");
        }
    }
}
