//! Real mail for the tests: Debian's exim4-daemon-light, whose sendmail
//! delivers locally to /var/mail/<user> with no daemon running, and the
//! mailbox read back with Python's email package (an independent parser).
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A real account with a home directory, as exim's local delivery wants.
pub fn ensure_mail_user(name: &str) {
    super::with_account_lock(|| match nix::unistd::User::from_name(name).unwrap() {
        None => {
            let status = std::process::Command::new("useradd")
                .args(["-m", "-s", "/bin/sh", name])
                .status()
                .unwrap();
            assert!(status.success(), "useradd {name}");
        }
        // An account made earlier without a home (by another test) gets one.
        Some(u) if !u.dir.exists() => {
            std::fs::create_dir_all(&u.dir).unwrap();
            std::os::unix::fs::chown(&u.dir, Some(u.uid.as_raw()), Some(u.gid.as_raw())).unwrap();
        }
        Some(_) => {}
    });
}

pub fn mailbox(user: &str) -> PathBuf {
    PathBuf::from(format!("/var/mail/{user}"))
}

/// Prints one JSON object per message whose decoded subject has `token`.
const PARSE_MBOX: &str = r#"
import email.header, email.utils, json, mailbox, sys
for m in mailbox.mbox(sys.argv[1]):
    subject = str(email.header.make_header(email.header.decode_header(m["Subject"])))
    if sys.argv[2] not in subject:
        continue
    print(json.dumps({
        "from": m["From"], "to": m["To"], "subject": subject,
        "date": email.utils.parsedate_to_datetime(m["Date"]).timestamp(),
        "message_id": m["Message-ID"], "mime": m["MIME-Version"],
        "type": m.get_content_type(), "charset": m.get_content_charset(),
        "cte": m["Content-Transfer-Encoding"], "auto": m["Auto-Submitted"],
        "body": m.get_payload(decode=True).decode(m.get_content_charset()),
        "defects": [str(d) for d in m.defects],
    }))
"#;

/// The messages in `mbox` whose subject has `token`, parsed.
pub fn parsed_messages(mbox: &Path, token: &str) -> Vec<serde_json::Value> {
    if !mbox.exists() {
        return Vec::new();
    }
    let out = std::process::Command::new("python3")
        .args(["-c", PARSE_MBOX])
        .arg(mbox)
        .arg(token)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Waits (exim delivers in the background) until `mbox` holds `n` messages
/// whose subject has `token`, and returns them; fails after 30 s.
pub fn wait_for_messages(mbox: &Path, token: &str, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = parsed_messages(mbox, token);
        if found.len() >= n || Instant::now() > deadline {
            assert!(
                found.len() >= n,
                "{} message(s) with {token:?} in {}, wanted {n}",
                found.len(),
                mbox.display()
            );
            return found;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The code in a code message's body: the first run of digits on a line of
/// its own.
pub fn code_in(message: &serde_json::Value) -> String {
    let body = message["body"].as_str().unwrap();
    body.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_digit()))
        .unwrap_or_else(|| panic!("no code in {body}"))
        .to_string()
}

/// A token unique to this run, for the issuer (and so the subjects).
pub fn token(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{name}-{}", nanos % 1_000_000_000)
}

/// A rig whose `user` gets codes by email at `user@localhost`.
pub fn email_rig(name: &str, user: &str, extra: &str) -> (super::Rig, String) {
    ensure_mail_user(user);
    let _ = std::fs::remove_file(mailbox(user));
    let issuer = token(name);
    let rig = super::Rig::new(
        name,
        &format!("issuer = \"{issuer}\"\n{extra}\n[email]\nfrom = \"twostep@localhost\"\n"),
    );
    write_secret(
        &rig,
        user,
        &format!(
            "secret = \"{}\"\nmethod = \"email\"\nemail = \"{user}@localhost\"\n",
            super::SECRET
        ),
    );
    (rig, issuer)
}

/// A secret file as an administrator (or `twostep enroll`) writes it.
pub fn write_secret(rig: &super::Rig, user: &str, text: &str) {
    let path = rig.secret_path(user);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A rig whose lost-device path is on (`lost_device.method = "email"`, mail
/// from twostep@localhost), `extra` appended to its config, and `user` a
/// mail user whose mailbox is empty; with the issuer its mail's subjects
/// carry. The user's secret file is the test's to write.
pub fn lost_device_rig(name: &str, user: &str, extra: &str) -> (super::Rig, String) {
    ensure_mail_user(user);
    let _ = std::fs::remove_file(mailbox(user));
    let issuer = token(name);
    let rig = super::Rig::new(
        name,
        &format!(
            "issuer = \"{issuer}\"\n[lost_device]\nmethod = \"email\"\n[email]\nfrom = \"twostep@localhost\"\n{extra}"
        ),
    );
    (rig, issuer)
}

/// A login through the lost-device path to its end: `lost`, the code from
/// the lost-device mail, then the current code of the new app the login set
/// up. Returns the login and the new app's secret.
pub fn replace_lost_device(rig: &super::Rig, user: &str, issuer: &str) -> (super::Login, String) {
    let mut s = rig.live_login("twostep", user, &[("rhost", "192.0.2.31"), ("tty", "ssh")]);
    s.until_prompt();
    s.answer("lost");
    let shown = s.until_prompt();
    assert!(shown.contains("Code from the email"), "{shown}");
    let lost_code = code_in(
        &wait_for_messages(&mailbox(user), issuer, 1)
            .into_iter()
            .find(|m| m["subject"].as_str().unwrap().contains("lost-device"))
            .unwrap(),
    );
    s.answer(&lost_code);
    let new_secret = secret_in(&s.until_prompt());
    super::fresh_step(5);
    s.answer(&super::oath_code(&new_secret, 0));
    (s.finish(), new_secret)
}

/// The secret of the otpauth URI in what a set-up at login showed.
fn secret_in(shown: &str) -> String {
    shown
        .split("secret=")
        .nth(1)
        .and_then(|rest| rest.split('&').next())
        .unwrap_or_else(|| panic!("no otpauth URI in {shown}"))
        .to_string()
}
