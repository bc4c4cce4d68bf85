//! `store.password_file`: the ACL password, from a file only root can read.
#![forbid(unsafe_code)]

use super::error::StoreError;
use crate::files::fsutil;
use std::io::Read;
use std::path::Path;
use zeroize::Zeroizing;

/// Longer than any password an administrator would set.
const MAX_PASSWORD: usize = 4096;

/// Reads the password: the file must be a regular file (not a link), owned
/// by root, with no access for group or others. One trailing newline (LF or
/// CRLF), as an editor or `echo` leaves it, is not part of the password. The
/// bytes are wiped when the returned value is dropped.
pub fn read(path: &Path) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    read_for("store.password_file", path)
}

/// [`read`], for the key `key` (named in errors): `store.password_file`
/// or `store.sentinel_password_file`.
pub fn read_for(key: &str, path: &Path) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    read_owned_by(key, path, fsutil::expected_owner())
}

pub(super) fn read_owned_by(
    key: &str,
    path: &Path,
    owner: u32,
) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    let bad = |why: String| StoreError::Config(format!("{key} {}: {why}", path.display()));
    let file = fsutil::open_nofollow(path, false)
        .map_err(|e| fsutil::classify_open_error(e, bad, |e| bad(e.to_string())))?;
    let meta = file.metadata().map_err(|e| bad(e.to_string()))?;
    fsutil::check_private_file(&meta, owner).map_err(&bad)?;
    // Sized once, so that reading never moves the bytes and leaves a copy.
    let mut bytes = Zeroizing::new(Vec::with_capacity(MAX_PASSWORD + 1));
    (&file)
        .take(MAX_PASSWORD as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| bad(e.to_string()))?;
    if bytes.len() > MAX_PASSWORD {
        return Err(bad(format!("is longer than {MAX_PASSWORD} bytes")));
    }
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    if bytes.is_empty() {
        return Err(bad("is empty".into()));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn the_file_must_be_private_and_is_trimmed() {
        let dir = std::env::temp_dir().join(format!("twostep-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let me = std::fs::metadata(&dir).unwrap().uid();
        let file = |name: &str, text: &[u8], mode: u32| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            p
        };
        let ok = |p: &Path| read_owned_by("store.password_file", p, me).map(|b| b.to_vec());
        assert_eq!(ok(&file("lf", b"s3cret\n", 0o600)).unwrap(), b"s3cret");
        assert_eq!(ok(&file("crlf", b"s3cret\r\n", 0o400)).unwrap(), b"s3cret");
        assert_eq!(
            ok(&file("bare", b" s3 cret ", 0o600)).unwrap(),
            b" s3 cret "
        );
        assert_eq!(ok(&file("two", b"s3cret\n\n", 0o600)).unwrap(), b"s3cret\n");
        for (name, text, mode, why) in [
            ("group", &b"pw"[..], 0o640, "group or others"),
            ("others", b"pw", 0o604, "group or others"),
            ("empty", b"\n", 0o600, "is empty"),
            ("long", &[b'a'; MAX_PASSWORD + 1], 0o600, "longer than"),
        ] {
            let err = ok(&file(name, text, mode)).unwrap_err();
            assert_eq!(err.reason(), "config");
            assert!(err.to_string().contains(why), "{name}: {err}");
        }
        let link = dir.join("link");
        std::os::unix::fs::symlink(dir.join("lf"), &link).unwrap();
        assert!(ok(&link).unwrap_err().to_string().contains("symbolic link"));
        let not_mine =
            read_owned_by("store.sentinel_password_file", &dir.join("lf"), me + 1).unwrap_err();
        assert!(
            not_mine
                .to_string()
                .contains("store.sentinel_password_file"),
            "{not_mine}"
        );
        assert!(not_mine.to_string().contains("owned by"), "{not_mine}");
        assert!(
            ok(&dir)
                .unwrap_err()
                .to_string()
                .contains("not a regular file")
        );
        assert_eq!(ok(&dir.join("missing")).unwrap_err().reason(), "config");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
