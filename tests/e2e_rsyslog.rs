//! The records through Debian's real rsyslogd: a private instance (its own
//! imuxsock socket, config and files, in the foreground) receives what the
//! module and the CLI send, and files them by facility like a stock
//! /etc/rsyslog.conf does: authpriv.* to the auth log, nothing of it elsewhere.

mod common;
#[path = "common/sshd.rs"]
mod sshd;

use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A private rsyslogd, stopped on drop.
struct Rsyslogd {
    dir: PathBuf,
    socket: PathBuf,
    auth_log: PathBuf,
    other_log: PathBuf,
    child: Child,
}

impl Rsyslogd {
    fn start(dir: &Path) -> Rsyslogd {
        let rsyslogd = Path::new("/usr/sbin/rsyslogd");
        assert!(
            rsyslogd.exists(),
            "/usr/sbin/rsyslogd is missing: apt-get install rsyslog"
        );
        std::fs::create_dir_all(dir).unwrap();
        let socket = dir.join("log.sock");
        let auth_log = dir.join("auth.log");
        let other_log = dir.join("other.log");
        let conf = dir.join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{dir}")
# Never the system's /dev/log: only our own socket.
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{socket}" CreatePath="on")
template(name="facility" type="string"
         string="%syslogfacility-text%.%syslogseverity-text% %syslogtag%%msg%\n")
authpriv.*                action(type="omfile" file="{auth}" template="facility")
*.*;authpriv.none         action(type="omfile" file="{other}" template="facility")
"#,
                dir = dir.display(),
                socket = socket.display(),
                auth = auth_log.display(),
                other = other_log.display(),
            ),
        )
        .unwrap();
        let check = Command::new(rsyslogd)
            .args(["-N1", "-f"])
            .arg(&conf)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "rsyslogd -N1: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let child = Command::new(rsyslogd)
            .arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("rsyslogd.err")).unwrap())
            .spawn()
            .unwrap();
        let mut r = Rsyslogd {
            dir: dir.to_path_buf(),
            socket,
            auth_log,
            other_log,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !r.socket.exists() {
            assert!(
                r.child.try_wait().unwrap().is_none(),
                "rsyslogd exited: {}",
                std::fs::read_to_string(r.dir.join("rsyslogd.err")).unwrap_or_default()
            );
            assert!(Instant::now() < deadline, "rsyslogd made no socket");
            std::thread::sleep(Duration::from_millis(50));
        }
        r
    }

    /// Waits until the auth log has a line containing every one of `parts`.
    fn wait_for(&self, parts: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let log = std::fs::read_to_string(&self.auth_log).unwrap_or_default();
            if let Some(line) = log.lines().find(|l| parts.iter().all(|p| l.contains(p))) {
                return line.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no line with {parts:?} in the auth log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Rsyslogd {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        if sshd::wait_bounded(&mut self.child, Duration::from_secs(5)).is_none() {
            let _ = self.child.kill();
        }
    }
}

#[test]
fn records_reach_rsyslogs_auth_log_as_authpriv() {
    let user = "ts-rsyslog";
    ensure_user(user, Some("rsyslog pass-W0rd"));
    let rig = Rig::new("rsyslog", "");
    let syslog = Rsyslogd::start(&rig.root.join("rsyslog"));
    // The rig's config, with log.socket pointing at rsyslogd.
    std::fs::write(
        &rig.config,
        format!(
            "secret_dir = \"{}\"\nstate_dir = \"{}\"\n[log]\nsocket = \"{}\"\n",
            rig.secret_dir.display(),
            rig.state_dir.display(),
            syslog.socket.display()
        ),
    )
    .unwrap();

    // The CLI's admin record (tag twostep).
    rig.enroll(user, SECRET);
    let line = syslog.wait_for(&["twostep[", "event=enrolled", &format!("user={user}")]);
    assert!(line.starts_with("authpriv.notice twostep["), "{line}");

    // The module's, from a login through the canonical stack.
    fresh_step(5);
    let code = oath_code(SECRET, 0);
    let login = rig.login_with(
        "stack",
        user,
        &["rsyslog pass-W0rd", &code],
        &[("rhost", "192.0.2.77"), ("tty", "ssh")],
    );
    assert_eq!(login.code, PAM_SUCCESS, "{}", login.out);
    let line = syslog.wait_for(&["pam_twostep[", "event=auth_ok", &format!("user={user}")]);
    assert!(line.starts_with("authpriv.info pam_twostep["), "{line}");
    assert!(line.contains("service=stack rhost=192.0.2.77 tty=ssh method=totp"));
    assert!(!line.contains(&code));

    let wrong = if code == "000000" { "000001" } else { "000000" };
    let login = rig.login_with(
        "stack",
        user,
        &["rsyslog pass-W0rd", wrong],
        &[("rhost", "192.0.2.77"), ("tty", "ssh")],
    );
    assert_eq!(login.code, PAM_AUTH_ERR, "{}", login.out);
    let line = syslog.wait_for(&["event=auth_fail", "reason="]);
    assert!(line.starts_with("authpriv.notice pam_twostep["), "{line}");

    // authpriv only: nothing of ours went to the other file.
    let other = std::fs::read_to_string(&syslog.other_log).unwrap_or_default();
    assert!(!other.contains("twostep"), "{other}");
}
