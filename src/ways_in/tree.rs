//! Reading a file of the audited system tree as that system would: under
//! `--root DIR`, `etc/passwd` is `DIR/etc/passwd`, and a symbolic link in
//! the tree (`etc/ssh/sshd_config -> /etc/shadow`) resolves inside the
//! tree, never to this machine's file (openat2 with `RESOLVE_IN_ROOT`).
//! A file that is not a regular file (a FIFO, a directory) is an error,
//! opened without blocking; so is one larger than [`MAX_FILE`].
#![forbid(unsafe_code)]

use super::AuditError;
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, open, openat2};
use nix::sys::stat::Mode;
use std::io::Read;
use std::path::Path;

/// The largest file read (a passwd file of a million accounts fits).
pub const MAX_FILE: u64 = 128 * 1024 * 1024;

/// The text of `path` (absolute, as the tree sees it: `/etc/passwd`) in
/// the tree under `root`; `None` if it does not exist.
pub fn read(root: &Path, path: &str) -> Result<Option<String>, AuditError> {
    let shown = root.join(path.trim_start_matches('/'));
    let err = |e: &dyn std::fmt::Display| AuditError(format!("{}: {e}", shown.display()));
    let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
    let dir = open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| err(&e))?;
    let how = OpenHow::new()
        .flags(flags)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = match openat2(&dir, path.trim_start_matches('/'), how) {
        Ok(fd) => fd,
        Err(Errno::ENOENT) => return Ok(None),
        Err(Errno::ENOSYS) => {
            return Err(err(
                &"this kernel has no openat2 (Linux 5.6), which reading a tree safely needs",
            ));
        }
        Err(e) => return Err(err(&e)),
    };
    let file = std::fs::File::from(fd);
    let meta = file.metadata().map_err(|e| err(&e))?;
    if !meta.is_file() {
        return Err(err(&"not a regular file"));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| err(&e))?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(err(&format!("larger than {} MiB", MAX_FILE / 1024 / 1024)));
    }
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_resolve_inside_the_tree_and_odd_files_are_refused() {
        let dir = std::env::temp_dir().join(format!("ts-as-tree-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("etc/ssh")).unwrap();
        std::fs::write(dir.join("etc/hosts"), "in the tree\n").unwrap();
        // Absolute and climbing links: both stay in the tree.
        symlink("/etc/hosts", dir.join("etc/ssh/abs")).unwrap();
        symlink("../../../../../../etc/hosts", dir.join("etc/ssh/up")).unwrap();
        symlink("/etc", dir.join("etc2")).unwrap();
        assert_eq!(
            read(&dir, "/etc/ssh/abs").unwrap().as_deref(),
            Some("in the tree\n")
        );
        assert_eq!(
            read(&dir, "/etc/ssh/up").unwrap().as_deref(),
            Some("in the tree\n")
        );
        assert_eq!(
            read(&dir, "etc2/hosts").unwrap().as_deref(),
            Some("in the tree\n")
        );
        assert_eq!(read(&dir, "/etc/nothing").unwrap(), None);
        let e = read(&dir, "/etc/ssh").unwrap_err();
        assert!(e.0.ends_with("etc/ssh: not a regular file"), "{e}");
        nix::unistd::mkfifo(&dir.join("etc/fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        let e = read(&dir, "/etc/fifo").unwrap_err();
        assert!(e.0.contains("not a regular file"), "{e}");
        let e = read(&dir.join("etc/hosts"), "/x").unwrap_err();
        assert!(
            e.0.contains("Not a directory") || e.0.contains("ENOTDIR"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
