//! Enrollment at login (`unenrolled = "enroll"`), and the new app of a lost
//! device: a new secret is shown as a QR code, a key and a URI; a right code
//! from the app writes it, exactly as `twostep enroll` would, and lets the
//! login through. A wrong code writes nothing and counts as a failure. No
//! recovery codes: a login conversation is no place to show them
//! (`twostep recovery-codes` is).
#![forbid(unsafe_code)]

use super::attempt::{Failure, Judging};
use super::{Env, Outcome, Reason, Request, notify};
use crate::base::address::EmailAddress;
use crate::base::records::{Record, Severity};
use crate::base::user::UserName;
use crate::delivery::Event;
use crate::files::enrollment;
use crate::files::secret::{self, SecretFile};
use crate::ondemand::NoQr;
use crate::qr;
use crate::rules::totp::{self, Code};
use crate::store::Success;
use zeroize::Zeroizing;

/// Which set-up this is.
pub(super) enum SetUp {
    /// A user without a secret file (`unenrolled = "enroll"`).
    First,
    /// A user who proved a lost-device code: the new secret replaces the
    /// old file, keeping its `email` and `phone` (its recovery codes go).
    Replace(SecretFile),
}

pub(super) fn at_login(env: &mut Env<'_>, req: &Request, user: &UserName) -> Outcome {
    set_up(env, req, user, SetUp::First)
}

pub(super) fn set_up(env: &mut Env<'_>, req: &Request, user: &UserName, how: SetUp) -> Outcome {
    let params = env.config.totp;
    let key = match enrollment::new_key() {
        Ok(key) => key,
        Err(why) => {
            let rec = env
                .record("auth_fail", Severity::Notice, req)
                .with("tty", &req.tty)
                .with("reason", Reason::NoSecret.as_str())
                .with("failures", 0)
                .with("detail", why);
            env.emit(rec);
            return Outcome::Denied;
        }
    };
    let b32 = secret::encode_base32(&key);
    let issuer = enrollment::issuer(env.config);
    let uri = qr::otpauth_uri(&issuer, user.as_str(), &b32, &params);
    let intro = match how {
        SetUp::First => format!("Two-step login is now required for {user}."),
        SetUp::Replace(_) => format!("Set up a new authenticator app for {user}."),
    };
    env.conv.info(&format!(
        "{intro} Set it up with an authenticator app (Google Authenticator, Microsoft \
         Authenticator, FreeOTP, Aegis...): scan this QR code, or add the account by hand \
         with the key below."
    ));
    // Drawn by the on-demand part (src/ondemand/ says why). Without it the
    // account is added by hand: nothing of the login depends on the drawing.
    match crate::ondemand::qr_drawing(&uri) {
        Ok(drawing) => env.conv.info(drawing.trim_end_matches('\n')),
        Err(NoQr::DoesNotFit) => env
            .conv
            .info("(The QR code does not fit this screen: add the account by hand.)"),
        Err(NoQr::Part(why)) => {
            env.trace(req, || why);
            env.conv
                .info("(No QR code here: add the account by hand with the key below.)");
        }
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
    let Some(answer) = env.ask_code() else {
        return Outcome::ConversationFailed;
    };

    // Under the user's lock, as every writer of a secret file: of two first
    // logins racing, the second sees the first one's file and writes nothing.
    let judging = match Judging::begin(env, req, user) {
        Ok(j) => j,
        Err(refused) => return refused,
    };
    let step_time = Code::parse(&answer, params.digits)
        .and_then(|code| totp::matching_step(&key, &params, &code, env.now))
        .map(|step| step.saturating_mul(u64::from(params.period)));
    let path = secret::path_for(&env.config.secret_dir, user);
    let meanwhile = || {
        let why = "another login enrolled this user meanwhile";
        (Reason::BadCode, Some(why.to_string()))
    };
    let written = match (step_time, &how) {
        (None, _) => Err((Reason::BadCode, None)),
        (Some(_), SetUp::First) if path.symlink_metadata().is_ok() => Err(meanwhile()),
        (Some(step_time), _) => {
            let mut file = enrollment::secret_file(&b32, &params, Vec::new());
            let written = match &how {
                SetUp::First => enrollment::write_new(&env.config.secret_dir, user, &file),
                SetUp::Replace(old) => {
                    file.email = old.email.clone();
                    file.phone = old.phone.clone();
                    secret::store(&env.config.secret_dir, user, &file, true).map(drop)
                }
            };
            match written {
                Ok(()) => Ok(step_time),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(meanwhile()),
                // Not the user's fault, but the attempt stays counted: it
                // was counted before the code was judged.
                Err(e) => Err((
                    Reason::BadSecretFile,
                    Some(format!("cannot write {}: {e}", path.display())),
                )),
            }
        }
    };
    let step_time = match written {
        Ok(step_time) => step_time,
        Err((reason, detail)) => {
            return judging.fail(env, req, user, Failure::Code(reason, detail));
        }
    };
    // The code that confirmed the enrollment is used up; addresses
    // remembered for an earlier secret are forgotten.
    let success = Success {
        step_time: Some(step_time),
        remember: super::judge::remember(env, req),
        new_secret: true,
        ..Success::default()
    };
    let committed = judging.succeed(env, req, user, &success);
    if let Err(refused) = committed {
        // Without the used step on disk a first enrollment is undone: the
        // login is refused and, as after a wrong code, no secret file is
        // left. A replaced secret stays replaced: the old phone is lost,
        // and the new app's next code (a later step) will work.
        if let SetUp::First = how {
            let _ = crate::files::fsutil::remove_durably(&env.config.secret_dir, &path);
        }
        return refused;
    }
    let (by, email) = match &how {
        SetUp::First => ("login", None),
        SetUp::Replace(old) => (
            "lost_device",
            old.email
                .as_deref()
                .and_then(|e| EmailAddress::parse(e).ok()),
        ),
    };
    env.emit(
        Record::new("enrolled", Severity::Notice)
            .with("user", user)
            .with("by", by),
    );
    env.conv
        .info("Two-step login is set up. From now on, each login asks for a code.");
    let rec = env
        .record("auth_ok", Severity::Info, req)
        .with("tty", &req.tty)
        .with("method", "totp");
    env.emit(rec);
    notify::event(
        env,
        Event::Enrolled,
        user,
        email.as_ref(),
        req,
        Some(by),
        None,
    );
    Outcome::Success
}
