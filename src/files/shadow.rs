//! An account's password entry as this host stores it (`/etc/shadow`, and
//! `/etc/passwd`, where pam_unix keeps a hash when there is no shadow
//! entry), reduced to a fingerprint: whether a password change happened is
//! whether the fingerprint changed. Nothing of the entry is kept or logged.
//!
//! Read from the files, not through NSS: they are what pam_unix writes, and
//! accounts whose passwords live elsewhere (LDAP, Kerberos, SSSD) have no
//! hash this host could see change.
#![forbid(unsafe_code)]

use crate::base::user::UserName;
use blake2::{Blake2b256, Digest};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// The longest line read: an entry is a few hundred bytes; this bounds
/// what a damaged file can make the module hold.
const MAX_LINE: u64 = 64 * 1024;

/// A digest of `user`'s lines in `etc`/shadow and `etc`/passwd; `None` if
/// neither has one (no local password) or they cannot be read.
pub fn fingerprint(etc: &Path, user: &UserName) -> Option<[u8; 32]> {
    let shadow = entry(&etc.join("shadow"), user);
    let passwd = entry(&etc.join("passwd"), user);
    if shadow.is_none() && passwd.is_none() {
        return None;
    }
    let mut digest = Blake2b256::new().chain_update(b"twostep password entry v1\0");
    for line in [shadow, passwd] {
        match line {
            Some(l) => {
                digest.update([1u8]);
                digest.update(&l);
                digest.update([0u8]);
            }
            None => digest.update([0u8]),
        }
    }
    Some(digest.finalize().into())
}

/// The line of `file` whose first field is `user`, without its line end.
fn entry(file: &Path, user: &UserName) -> Option<Vec<u8>> {
    let f = std::fs::File::open(file).ok()?;
    let mut reader = BufReader::new(f);
    let mut prefix = user.as_str().as_bytes().to_vec();
    prefix.push(b':');
    loop {
        let mut line = Vec::new();
        let n = (&mut reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut line)
            .ok()?;
        if n == 0 {
            return None;
        }
        if line.starts_with(&prefix) {
            while line.last() == Some(&b'\n') {
                line.pop();
            }
            return Some(line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn etc(shadow: Option<&str>, passwd: Option<&str>) -> tempdir::Dir {
        let d = tempdir::Dir::new();
        if let Some(s) = shadow {
            std::fs::write(d.0.join("shadow"), s).unwrap();
        }
        if let Some(p) = passwd {
            std::fs::write(d.0.join("passwd"), p).unwrap();
        }
        d
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Dir {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "twostep-shadow-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    const PASSWD: &str = "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n";

    #[test]
    fn a_change_of_the_entry_changes_the_fingerprint_and_nothing_else_does() {
        let alice = UserName::parse("alice").unwrap();
        let fp = |shadow: &str, passwd: &str| {
            let d = etc(Some(shadow), Some(passwd));
            fingerprint(&d.0, &alice)
        };
        let before = fp(
            "root:*:1::::::\nalice:$y$j9T$a$b:20000:0:99999:7:::\n",
            PASSWD,
        );
        assert!(before.is_some());
        // Same entry, other users changed, no final newline: the same.
        assert_eq!(
            before,
            fp(
                "root:$y$new:20001::::::\nalice:$y$j9T$a$b:20000:0:99999:7:::",
                PASSWD
            )
        );
        // A new hash, the same password set again (a new salt), or only the
        // day of the last change: a change.
        for changed in [
            "alice:$y$j9T$c$d:20000:0:99999:7:::\n",
            "alice:$y$j9T$a$b:20001:0:99999:7:::\n",
            "alice:!$y$j9T$a$b:20000:0:99999:7:::\n",
        ] {
            assert_ne!(before, fp(changed, PASSWD), "{changed}");
        }
        // A name that only starts like alice's is not hers.
        let d = etc(
            Some("alice2:$y$x:1::::::\n"),
            Some("alicex:x:1:1::/:/bin/sh\n"),
        );
        assert_eq!(fingerprint(&d.0, &alice), None);
        // No shadow file: the passwd line (a hash kept there) still counts.
        let d = etc(None, Some("alice:$6$salt$hash:1000:1000::/:/bin/sh\n"));
        let only_passwd = fingerprint(&d.0, &alice);
        assert!(only_passwd.is_some());
        let d = etc(None, Some("alice:$6$salt$other:1000:1000::/:/bin/sh\n"));
        assert_ne!(only_passwd, fingerprint(&d.0, &alice));
        // Neither file: nothing to compare.
        let d = etc(None, None);
        assert_eq!(fingerprint(&d.0, &alice), None);
    }
}
