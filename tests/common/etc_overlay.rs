//! Running a program as a real non-root user, on a real pty, with this
//! test's files in /etc: for the setuid programs (twostep-self, su) that
//! read fixed paths there and nothing else.
//!
//! Each run happens in a private mount namespace (`unshare --mount`) whose
//! /etc is an overlay: the system's /etc below, and above it the files this
//! test puts there. The system's own files are never touched, and the
//! overlay goes with the process. Inside, the command runs as the user
//! (`setpriv --reuid --regid --init-groups`: their uid, gid and groups).
//!
//! Included with `#[path = "common/etc_overlay.rs"] mod etc_overlay;` by a
//! test crate that also has `mod common;` and `mod pty;`.
#![allow(dead_code)]

use crate::common::{PRIVATE_MOUNTS, mode_of};
use crate::pty::Pty;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Runs as root in the private namespace: the overlay over /etc, then the
/// command as the user.
const ENTER: &str = r#"set -e
up=$1 work=$2 user=$3 gid=$4
shift 4
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$up,workdir=$work" /etc
exec setpriv --reuid="$user" --regid="$gid" --init-groups -- "$@""#;

/// The upper layer of a test's /etc, and the overlay's work directory.
pub struct EtcOverlay {
    pub upper: PathBuf,
    work: PathBuf,
}

impl EtcOverlay {
    /// Under `root`, a root-owned directory of the test's.
    pub fn new(root: &Path) -> EtcOverlay {
        let upper = root.join("etc-upper");
        let work = root.join("etc-work");
        for d in [upper.join("twostep"), upper.join("pam.d"), work.clone()] {
            std::fs::create_dir_all(&d).unwrap();
        }
        // The merged /etc takes its mode from the upper layer's root.
        for d in [&upper, &upper.join("twostep"), &upper.join("pam.d")] {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        EtcOverlay { upper, work }
    }

    /// Puts `contents` at /etc/`relative` (e.g. "pam.d/su").
    pub fn put(&self, relative: &str, contents: &[u8]) {
        std::fs::write(self.upper.join(relative), contents).unwrap();
    }

    /// The command line that runs `command` as `user` with this /etc.
    pub fn argv(&self, user: &str, command: &[&str]) -> Vec<String> {
        let gid = nix::unistd::User::from_name(user)
            .unwrap()
            .unwrap()
            .gid
            .to_string();
        let mut v: Vec<String> = PRIVATE_MOUNTS
            .iter()
            .chain(&["sh", "-c", ENTER, "sh"])
            .map(|s| s.to_string())
            .collect();
        v.push(self.upper.display().to_string());
        v.push(self.work.display().to_string());
        v.push(user.into());
        v.push(gid);
        v.extend(command.iter().map(|s| s.to_string()));
        v
    }

    /// On a pty, to be answered.
    pub fn spawn(&self, user: &str, command: &[&str]) -> Pty {
        let argv = self.argv(user, command);
        let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
        Pty::spawn(&refs)
    }

    /// Without a terminal (stdin /dev/null), for what asks nothing.
    pub fn command(&self, user: &str, command: &[&str]) -> Command {
        let argv = self.argv(user, command);
        let mut c = Command::new(&argv[0]);
        c.args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }
}

/// A root-owned 0755 directory on a mount that honours setuid bits: /tmp
/// unless it is mounted nosuid, else /usr/local/libexec. For a program
/// installed as the package would (setuid root), or one that twostep
/// checks is root's alone. The caller removes it.
pub fn root_dir(leaf: &str) -> PathBuf {
    let tmp = Path::new("/tmp");
    let nosuid = nix::sys::statvfs::statvfs(tmp)
        .unwrap()
        .flags()
        .contains(nix::sys::statvfs::FsFlags::ST_NOSUID);
    let dir = if nosuid {
        Path::new("/usr/local/libexec").join(leaf)
    } else {
        tmp.join(leaf)
    };
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// Copies the built twostep-self to a fresh [`root_dir`] as root, mode
/// 4755 (as the package installs it); returns the directory.
pub fn install_twostep_self(name: &str) -> PathBuf {
    let dir = root_dir(&format!("twostep-self-test-{name}-{}", std::process::id()));
    let bin = dir.join("twostep-self");
    std::fs::copy(env!("CARGO_BIN_EXE_twostep-self"), &bin).unwrap();
    std::os::unix::fs::chown(&bin, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o4755)).unwrap();
    assert_eq!(mode_of(&bin), 0o4755);
    dir
}
