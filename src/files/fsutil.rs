//! The file-system edges shared by secrets and state: opening without
//! following links, checking the opened descriptor, and writing files so that
//! a reader never sees a partial one.
#![forbid(unsafe_code)]

use nix::fcntl::{AT_FDCWD, AtFlags};
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use zeroize::Zeroize;

/// Secrets and state belong to root.
pub fn expected_owner() -> u32 {
    0
}

/// Reads the text of an open file that fstat said holds `len` bytes, bounded by
/// `max` even if it grows meanwhile. The buffer is sized once, up front, for
/// `len + 1` bytes, and one read fills it: a read that returns less than was
/// asked has met the end of a regular file, so the usual second read that
/// sees the end is not needed. Only a file that grew after the fstat is read
/// further (its buffer grows then, and may leave a copy behind in freed
/// memory: a race with a writer, not the normal case). A file that grew past
/// `max` is `FileTooLarge`; text that is not UTF-8 is `InvalidData`, its bytes
/// wiped.
pub fn read_text(file: &File, len: u64, max: u64) -> io::Result<String> {
    let want = usize::try_from(len.min(max)).unwrap_or(0) + 1;
    let mut bytes = vec![0u8; want];
    let got = loop {
        match (&*file).read(&mut bytes) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                bytes.zeroize();
                return Err(e);
            }
            Ok(n) => break n,
        }
    };
    bytes.truncate(got);
    if got == want {
        // Grew since the fstat: the rest, up to one byte past max.
        let rest = (max + 1).saturating_sub(got as u64);
        if let Err(e) = file.take(rest).read_to_end(&mut bytes) {
            bytes.zeroize();
            return Err(e);
        }
    }
    if bytes.len() as u64 > max {
        bytes.zeroize();
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("grew past {max} bytes while being read"),
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        e.into_bytes().zeroize();
        io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text")
    })
}

/// Runs `write` with the file-size limit (RLIMIT_FSIZE) lifted to its hard
/// limit, and puts the caller's limit back after. A PAM module runs inside
/// the process of whoever logs in: a local user who runs `su victim` under
/// `ulimit -S -f 0` must not make the module's own writes fail. A hard limit
/// cannot be lifted: a write past it fails (EFBIG), and the attempt is then
/// denied unjudged (the callers treat any failed write so). Reading the
/// limit is one cheap syscall; it is changed only when it is set.
pub fn with_file_size_limit_lifted<T>(write: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_FSIZE) else {
        return write();
    };
    if soft >= hard {
        return write();
    }
    let lifted = setrlimit(Resource::RLIMIT_FSIZE, hard, hard).is_ok();
    let result = write();
    if lifted {
        let _ = setrlimit(Resource::RLIMIT_FSIZE, soft, hard);
    }
    result
}

/// Opens `path` without following a symlink at its last component and without
/// blocking on a FIFO. The caller checks the descriptor with [`check_private_file`].
pub fn open_nofollow(path: &Path, write: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
        .open(path)
}

/// Maps an open error: a symlink (ELOOP under O_NOFOLLOW) or a FIFO/socket
/// (ENXIO) is a file that must not be trusted; anything else is plain I/O.
pub fn classify_open_error<E>(
    e: io::Error,
    untrusted: impl FnOnce(String) -> E,
    io_err: impl FnOnce(io::Error) -> E,
) -> E {
    match e.raw_os_error() {
        Some(libc::ELOOP) => untrusted("is a symbolic link".into()),
        Some(libc::ENXIO) => untrusted("is not a regular file".into()),
        _ => io_err(e),
    }
}

/// A regular file, owned by `owner`, with no access for group or others.
pub fn check_private_file(meta: &Metadata, owner: u32) -> Result<(), String> {
    if !meta.file_type().is_file() {
        return Err("is not a regular file".into());
    }
    if meta.uid() != owner {
        return Err(format!("is owned by uid {}, not {owner}", meta.uid()));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(format!(
            "has mode {:04o}: group or others have access (want 0600)",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// Whether someone other than root could change what a directory holds:
/// it is not root's, or group or others can write it without the sticky
/// bit (a sticky world-writable directory such as /tmp does not let others
/// rename root's entries).
pub fn others_can_change_dir(meta: &Metadata) -> bool {
    meta.uid() != 0 || (meta.mode() & 0o022 != 0 && meta.mode() & 0o1000 == 0)
}

/// Whether `path` still names the open file whose metadata is `held` (it was
/// not removed or replaced between our open and our lock).
pub fn still_at(held: &fs::Metadata, path: &Path) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(now) => Ok(now.dev() == held.dev() && now.ino() == held.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn temp_path(dir: &Path, final_path: &Path) -> PathBuf {
    let mut rand = [0u8; 8];
    // A name collision only makes create_new fail; it never overwrites.
    let _ = getrandom::fill(&mut rand);
    let stem = final_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let suffix: String = rand.iter().map(|b| format!("{b:02x}")).collect();
    // The name's start, for whoever finds a leftover: a whole user name
    // (up to 255 bytes) plus the suffix would pass NAME_MAX, and that user
    // could then never get a file.
    let stem: String = stem.chars().take(64).collect();
    dir.join(format!(".{stem}.tmp.{suffix}"))
}

/// Writes `bytes` to a new, synced, 0600 temporary file in `dir`, returned
/// open for writing with its name.
fn write_temp(dir: &Path, final_path: &Path, bytes: &[u8]) -> io::Result<(PathBuf, File)> {
    let tmp = temp_path(dir, final_path);
    let result = (|| {
        // Read too: replace_complete_locked's caller reads and writes it.
        let mut f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)?;
        // Whatever the umask, the file is 0600.
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        Ok(f)
    })();
    match result {
        Ok(f) => Ok((tmp, f)),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Writes `bytes` to a new, synced, 0600 file in `dir` that has no name yet
/// (O_TMPFILE). A writer killed before it names the file leaves nothing
/// behind, where a named temporary file would stay: a copy of a secret, and
/// one more at each kill of a `twostep-self` its caller may kill. None if
/// the file system cannot make such a file.
fn write_unnamed(dir: &Path, bytes: &[u8]) -> io::Result<Option<File>> {
    let opened = OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
        .open(dir);
    let mut f = match opened {
        Ok(f) => f,
        // EOPNOTSUPP: the file system has no unnamed files; EISDIR or
        // EINVAL: a kernel older than O_TMPFILE took it for O_DIRECTORY.
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    f.set_permissions(fs::Permissions::from_mode(0o600))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(Some(f))
}

/// Puts `bytes`, whole and synced, at `at`, which must not exist
/// (`AlreadyExists` if it does), and returns the file open for writing. A
/// reader of `at` sees no file or the whole file, and a writer killed on the
/// way leaves nothing but, on a file system without unnamed files, a
/// `.NAME.tmp.*` file.
fn put_new(dir: &Path, at: &Path, bytes: &[u8]) -> io::Result<File> {
    if let Some(file) = write_unnamed(dir, bytes)? {
        // An unnamed file is named through its /proc link (linkat with
        // AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH).
        let fd = format!("/proc/self/fd/{}", file.as_raw_fd());
        match nix::unistd::linkat(
            AT_FDCWD,
            fd.as_str(),
            AT_FDCWD,
            at,
            AtFlags::AT_SYMLINK_FOLLOW,
        ) {
            Ok(()) => return Ok(file),
            // No /proc here (a chroot): written again under a name below.
            Err(nix::errno::Errno::ENOENT) if fs::symlink_metadata("/proc/self/fd").is_err() => {}
            Err(e) => return Err(e.into()),
        }
    }
    let (tmp, file) = write_temp(dir, at, bytes)?;
    let linked = fs::hard_link(&tmp, at);
    let _ = fs::remove_file(&tmp);
    linked.map(|()| file)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `path` with exactly `bytes`, or fails with `AlreadyExists` if it
/// exists. A reader sees no file or the whole file, never part of it.
pub fn create_complete(dir: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    put_new(dir, path, bytes)?;
    sync_dir(dir)
}

/// Replaces (or creates) `path` with exactly `bytes`, atomically and durably.
pub fn replace_complete(dir: &Path, path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace_with(dir, path, bytes, |_| Ok(())).map(drop)
}

/// [`replace_complete`], returning the new file open for writing and
/// exclusively locked (`flock`) from before it took the path: no one who
/// opens the path after the rename can lock it first.
pub fn replace_complete_locked(dir: &Path, path: &Path, bytes: &[u8]) -> io::Result<File> {
    replace_with(dir, path, bytes, |file| {
        file.try_lock().map_err(|e| match e {
            std::fs::TryLockError::Error(e) => e,
            std::fs::TryLockError::WouldBlock => io::Error::other("a new temporary file is locked"),
        })
    })
}

/// The new file is named with a temporary name only for the moment between
/// its link and the rename over `path` (no call links over an existing
/// name); `before_rename` runs on it then.
fn replace_with(
    dir: &Path,
    path: &Path,
    bytes: &[u8],
    before_rename: impl FnOnce(&File) -> io::Result<()>,
) -> io::Result<File> {
    let tmp = temp_path(dir, path);
    let file = put_new(dir, &tmp, bytes)?;
    if let Err(e) = before_rename(&file).and_then(|()| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(dir).map(|()| file)
}

/// Removes `path` durably. `Ok(false)` if there was nothing to remove.
pub fn remove_durably(dir: &Path, path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(dir).map(|()| true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("twostep-fsutil-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn read_text_sizes_its_buffer_once_and_refuses_growth_past_max() {
        let d = scratch("read-text");
        // (contents, the length fstat said, max) -> Ok(text) or the error kind
        type Case<'a> = (&'a [u8], u64, u64, Result<&'a str, io::ErrorKind>);
        let table: &[Case] = &[
            (b"secret = \"ABC\"\n", 15, 64, Ok("secret = \"ABC\"\n")),
            (b"", 0, 64, Ok("")),
            (b"exactly8", 8, 8, Ok("exactly8")),
            // grew after the fstat, still within max: read whole
            (b"0123456789", 4, 64, Ok("0123456789")),
            // grew past max after the fstat
            (b"0123456789", 4, 8, Err(io::ErrorKind::FileTooLarge)),
            (b"\xff\xfe", 2, 64, Err(io::ErrorKind::InvalidData)),
        ];
        for (i, &(contents, len, max, ref want)) in table.iter().enumerate() {
            let path = d.join(format!("f{i}"));
            fs::write(&path, contents).unwrap();
            let got = read_text(&File::open(&path).unwrap(), len, max);
            match (got, want) {
                (Ok(text), Ok(w)) => {
                    assert_eq!(text, *w, "case {i}");
                    if contents.len() as u64 == len {
                        // One allocation, never grown (so never copied).
                        assert_eq!(text.capacity(), len as usize + 1, "case {i}");
                    }
                }
                (Err(e), Err(kind)) => assert_eq!(e.kind(), *kind, "case {i}: {e}"),
                (got, want) => panic!("case {i}: got {got:?}, want {want:?}"),
            }
        }
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn create_complete_never_overwrites() {
        let d = scratch("create");
        let p = d.join("alice");
        create_complete(&d, &p, b"one").unwrap();
        let e = create_complete(&d, &p, b"two").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&p).unwrap(), b"one");
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        // No temporary files are left behind.
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
        replace_complete(&d, &p, b"three").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"three");
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
        assert!(remove_durably(&d, &p).unwrap());
        assert!(!remove_durably(&d, &p).unwrap());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_longest_names_get_files_too() {
        // A user name is up to 256 bytes; a file name up to 255 (NAME_MAX).
        // The temporary name must fit whatever the final one is.
        let d = scratch("long");
        for len in [1, 64, 233, 234, 250, 255] {
            let p = d.join("a".repeat(len));
            create_complete(&d, &p, b"x").unwrap_or_else(|e| panic!("{len} bytes: {e}"));
            replace_complete(&d, &p, b"y").unwrap_or_else(|e| panic!("{len} bytes: {e}"));
            assert_eq!(fs::read(&p).unwrap(), b"y");
        }
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn open_nofollow_refuses_links_and_fifos() {
        let d = scratch("nofollow");
        let target = d.join("target");
        fs::write(&target, b"x").unwrap();
        let link = d.join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = open_nofollow(&link, false).unwrap_err();
        let what = classify_open_error(e, |s| s, |e| e.to_string());
        assert_eq!(what, "is a symbolic link");
        let fifo = d.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // Opening for reading without O_NONBLOCK would hang here.
        let f = open_nofollow(&fifo, false).unwrap();
        let err =
            check_private_file(&f.metadata().unwrap(), f.metadata().unwrap().uid()).unwrap_err();
        assert_eq!(err, "is not a regular file");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn directories_others_can_change() {
        let d = scratch("dirs");
        let root_owned = fs::metadata(&d).unwrap().uid() == 0;
        for (mode, changeable) in [
            (0o700, false),
            (0o755, false),
            (0o775, true),
            (0o757, true),
            (0o777, true),
            (0o1777, false),
            (0o1775, false),
        ] {
            fs::set_permissions(&d, fs::Permissions::from_mode(mode)).unwrap();
            let meta = fs::metadata(&d).unwrap();
            // Not root's: changeable whatever the mode.
            assert_eq!(
                others_can_change_dir(&meta),
                changeable || !root_owned,
                "mode {mode:o}"
            );
        }
        if root_owned {
            std::os::unix::fs::chown(&d, Some(65534), None).unwrap();
            fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).unwrap();
            assert!(others_can_change_dir(&fs::metadata(&d).unwrap()));
        }
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn private_file_checks() {
        let d = scratch("private");
        let p = d.join("f");
        fs::write(&p, b"x").unwrap();
        let me = fs::metadata(&p).unwrap().uid();
        for (mode, ok) in [
            (0o600, true),
            (0o400, true),
            (0o640, false),
            (0o604, false),
            (0o660, false),
            (0o700, true),
            (0o601, false),
        ] {
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            let r = check_private_file(&fs::metadata(&p).unwrap(), me);
            assert_eq!(r.is_ok(), ok, "mode {mode:o}: {r:?}");
        }
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(
            check_private_file(&fs::metadata(&p).unwrap(), me + 1)
                .unwrap_err()
                .contains("owned by")
        );
        fs::remove_dir_all(&d).unwrap();
    }
}
