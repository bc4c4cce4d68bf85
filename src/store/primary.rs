//! With a Sentinel `store.url`: where the primary was found last, so that a
//! login whose primary has not moved costs what it costs with a plain
//! `redis://` URL (no sentinel round trip).
//!
//! Kept in two places: this process's memory (a module call after another
//! in the same sshd, a command), and `state_dir/.store-primary`, since
//! every ssh connection is a new process. The file is only a hint:
//! - only root can write it: `state_dir` is root's (0700, `twostep check`
//!   says so), and the file is read only if it is a regular file, owned by
//!   root, with no access for others, as the state files are;
//! - it only decides which address is tried first: whatever answers there
//!   must accept the store's credentials and say `ROLE` master before
//!   anything is written (`valkey::sentinel`), as an address a sentinel
//!   names must;
//! - a wrong or stale one costs one failed try, bounded to half the budget,
//!   then the sentinels are asked; it is removed when the try fails and
//!   rewritten when the sentinels name another primary. It names the URL
//!   it was found for: another URL ignores it.
#![forbid(unsafe_code)]

use super::valkey::sentinel::Addr;
use crate::files::fsutil;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The file, in `state_dir` (a user name never starts with '.').
pub const FILE: &str = ".store-primary";
/// Longer than any file this module writes.
const MAX_FILE: u64 = 1024;

/// The primary found last in this process: (the URL, where).
static LAST: Mutex<Option<(String, Addr)>> = Mutex::new(None);

/// The hint for one Sentinel URL.
pub struct Hint {
    /// `store.url` as written again from its parts: what the hint is for.
    url: String,
    /// `state_dir`, if the file is used.
    dir: Option<PathBuf>,
}

impl Hint {
    pub fn new(url: String, state_dir: Option<&Path>) -> Hint {
        Hint {
            url,
            dir: state_dir.map(Path::to_path_buf),
        }
    }

    fn file(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(FILE))
    }

    /// The primary found last, if any: this process's, else the file's.
    pub fn get(&self) -> Option<Addr> {
        if let Ok(last) = LAST.lock()
            && let Some((url, addr)) = &*last
            && *url == self.url
        {
            return Some(addr.clone());
        }
        let text = read_private(&self.file()?)?;
        let addr = parse(&text, &self.url)?;
        if let Ok(mut last) = LAST.lock() {
            *last = Some((self.url.clone(), addr.clone()));
        }
        Some(addr)
    }

    /// The primary is `addr` (confirmed by ROLE). `was`: what `get` gave.
    pub fn set(&self, addr: &Addr, was: Option<&Addr>) {
        if let Ok(mut last) = LAST.lock() {
            *last = Some((self.url.clone(), addr.clone()));
        }
        if was == Some(addr) {
            return;
        }
        if let (Some(dir), Some(file)) = (&self.dir, self.file()) {
            // A hint not written is only a sentinel round trip next time.
            let _ = fsutil::replace_complete(dir, &file, format(&self.url, addr).as_bytes());
        }
    }

    /// The primary found last did not answer as one: forget it.
    pub fn forget(&self) {
        if let Ok(mut last) = LAST.lock()
            && last.as_ref().is_some_and(|(url, _)| *url == self.url)
        {
            *last = None;
        }
        if let (Some(dir), Some(file)) = (&self.dir, self.file())
            && file.exists()
        {
            let _ = fsutil::remove_durably(dir, &file);
        }
    }
}

/// The file's text: the URL, then `HOST PORT`.
fn format(url: &str, addr: &Addr) -> String {
    format!("{url}\n{} {}\n", addr.host, addr.port)
}

/// The address in a file's text, if it is for `url` and well formed.
fn parse(text: &str, url: &str) -> Option<Addr> {
    let mut lines = text.lines();
    if lines.next()? != url {
        return None;
    }
    let (host, port) = lines.next()?.split_once(' ')?;
    if lines.next().is_some() {
        return None;
    }
    Addr::parse(host.as_bytes(), port.as_bytes())
}

/// The file's text if it is root's own: a regular file, not a link, no
/// access for group or others.
fn read_private(path: &Path) -> Option<String> {
    let file = fsutil::open_nofollow(path, false).ok()?;
    let meta = file.metadata().ok()?;
    fsutil::check_private_file(&meta, fsutil::expected_owner()).ok()?;
    fsutil::read_text(&file, meta.len(), MAX_FILE).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_names_its_url_and_one_address() {
        let url = "redis+sentinel://10.0.0.1:26379/twostep";
        let a = Addr {
            host: "10.0.0.7".into(),
            port: 6380,
        };
        assert_eq!(parse(&format(url, &a), url), Some(a.clone()));
        let v6 = Addr {
            host: "2001:db8::7".into(),
            port: 1,
        };
        assert_eq!(parse(&format(url, &v6), url), Some(v6));
        for text in [
            "",
            "redis+sentinel://10.0.0.1:26379/other\n10.0.0.7 6380\n",
            &format!("{url}\n"),
            &format!("{url}\n10.0.0.7\n"),
            &format!("{url}\n10.0.0.7 0\n"),
            &format!("{url}\n10.0.0.7 6380 x\n"),
            &format!("{url}\n10.0.0.7 6380\n10.0.0.8 6380\n"),
            &format!("{url}\nx/y 6380\n"),
        ] {
            assert_eq!(parse(text, url), None, "{text:?}");
        }
    }
}
