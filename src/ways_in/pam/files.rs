//! The files of the audited system: PAM files, module files and twostep
//! configs, read under the tree's root (`--root`), with symbolic links
//! followed inside the tree and never out of it (an absolute link target
//! is taken from the tree's root, `..` stops at it), as a chroot would.
//!
//! [`Source`] is what the rest of the audit reads through: [`Tree`] is the
//! real file system, [`Memory`] a tree held in memory (unit tests, fuzzing).
#![forbid(unsafe_code)]

use crate::config::Config;
use std::collections::BTreeMap;
use std::io::Read as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// What reading a file gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    Absent,
    File(Vec<u8>),
    /// It exists but cannot be read as a file (a directory, a FIFO, a
    /// link that leaves the tree, an I/O error): why.
    Unreadable(String),
}

/// The audited system's files, named as that system names them
/// (`/etc/pam.d/sshd`).
pub trait Source {
    fn read(&self, path: &str) -> Read;
    /// The names in a directory (none if it is absent).
    fn list(&self, dir: &str) -> Vec<String>;
    /// Whether a file exists at `path` (a module).
    fn exists(&self, path: &str) -> bool;
    /// A twostep config named by a module line's `config=`.
    fn config(&self, path: &str) -> Result<Config, String>;
}

/// The directories libpam may load modules from, relative module names
/// being taken from its build's DEFAULT_MODULE_PATH: Debian's multiarch
/// directories, or the plain ones of other builds.
const MODULE_BASES: [&str; 4] = ["/lib", "/usr/lib", "/lib64", "/usr/lib64"];

/// Whether the module `name` of a PAM line is present: an absolute path as
/// it is, a relative one in any module directory of the tree. `None`: the
/// tree has no module directory at all (then nothing can be said).
pub fn module_present(src: &dyn Source, name: &str) -> Option<bool> {
    if name.starts_with('/') {
        return Some(src.exists(name));
    }
    let mut any_dir = false;
    for base in MODULE_BASES {
        let mut dirs = vec![format!("{base}/security")];
        dirs.extend(
            src.list(base)
                .into_iter()
                .filter(|d| d.contains("-linux-"))
                .map(|d| format!("{base}/{d}/security")),
        );
        for dir in dirs {
            if src.list(&dir).is_empty() {
                continue;
            }
            any_dir = true;
            if src.exists(&format!("{dir}/{name}")) {
                return Some(true);
            }
        }
    }
    any_dir.then_some(false)
}

/// The real file system under `root`.
pub struct Tree {
    root: PathBuf,
}

/// How many symbolic links one path may go through (as the kernel's 40).
const MAX_LINKS: u32 = 40;

impl Tree {
    pub fn new(root: &Path) -> Tree {
        Tree {
            root: root.to_path_buf(),
        }
    }

    /// The host path of `path` in the tree, every symbolic link on the way
    /// resolved inside the tree. `Err`: a link loop.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, String> {
        let mut todo: Vec<std::ffi::OsString> = Vec::new();
        push_components(&mut todo, Path::new(path));
        let mut done: Vec<std::ffi::OsString> = Vec::new();
        let mut links = 0;
        while let Some(part) = todo.pop() {
            if part == ".." {
                done.pop();
                continue;
            }
            let mut here = self.root.clone();
            here.extend(&done);
            here.push(&part);
            match std::fs::symlink_metadata(&here) {
                Ok(md) if md.file_type().is_symlink() => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(format!("{path}: too many levels of symbolic links"));
                    }
                    let target = std::fs::read_link(&here)
                        .map_err(|e| format!("{path}: cannot read a link on the way: {e}"))?;
                    if target.is_absolute() {
                        done.clear();
                    }
                    push_components(&mut todo, &target);
                }
                _ => done.push(part),
            }
        }
        let mut host = self.root.clone();
        host.extend(&done);
        Ok(host)
    }
}

/// Pushes `path`'s components onto `todo` so that the first pops first.
fn push_components(todo: &mut Vec<std::ffi::OsString>, path: &Path) {
    let parts: Vec<std::ffi::OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect();
    todo.extend(parts.into_iter().rev());
}

impl Source for Tree {
    fn read(&self, path: &str) -> Read {
        let host = match self.resolve(path) {
            Ok(h) => h,
            Err(why) => return Read::Unreadable(why),
        };
        // Not following a link here: resolve() left none at the end, and
        // one put there since is not read. Non-blocking: a FIFO put in a
        // PAM file's place must not hang the audit.
        let file = match std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY)
            .open(&host)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Read::Absent,
            Err(e) => return Read::Unreadable(format!("cannot open it: {e}")),
        };
        match file.metadata() {
            Ok(md) if md.is_file() => {}
            Ok(md) if md.is_dir() => return Read::Unreadable("a directory, not a file".into()),
            Ok(_) => return Read::Unreadable("not a regular file".into()),
            Err(e) => return Read::Unreadable(format!("cannot stat it: {e}")),
        }
        let mut bytes = Vec::new();
        let limit = super::parse::FILE_MAX as u64 + 1;
        match file.take(limit).read_to_end(&mut bytes) {
            Ok(_) => Read::File(bytes),
            Err(e) => Read::Unreadable(format!("cannot read it: {e}")),
        }
    }

    fn list(&self, dir: &str) -> Vec<String> {
        let Ok(host) = self.resolve(dir) else {
            return Vec::new();
        };
        let Ok(entries) = std::fs::read_dir(host) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        names.sort();
        names
    }

    fn exists(&self, path: &str) -> bool {
        self.resolve(path)
            .is_ok_and(|host| std::fs::metadata(host).is_ok_and(|m| m.is_file()))
    }

    fn config(&self, path: &str) -> Result<Config, String> {
        let host = self.resolve(path)?;
        Config::load(&host, true).map_err(|e| e.to_string())
    }
}

/// A tree held in memory: path -> contents (`None`: a directory).
#[derive(Debug, Clone, Default)]
pub struct Memory {
    pub files: BTreeMap<String, Option<Vec<u8>>>,
    pub configs: BTreeMap<String, Config>,
}

impl Memory {
    pub fn with(mut self, path: &str, text: &str) -> Memory {
        self.files
            .insert(path.to_string(), Some(text.as_bytes().to_vec()));
        self
    }
}

impl Source for Memory {
    fn read(&self, path: &str) -> Read {
        match self.files.get(path) {
            None => Read::Absent,
            Some(None) => Read::Unreadable("a directory, not a file".into()),
            Some(Some(bytes)) => Read::File(bytes.clone()),
        }
    }

    fn list(&self, dir: &str) -> Vec<String> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        let mut names: Vec<String> = self
            .files
            .keys()
            .filter_map(|p| p.strip_prefix(&prefix))
            .filter_map(|rest| rest.split('/').next())
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect();
        names.dedup();
        names
    }

    fn exists(&self, path: &str) -> bool {
        matches!(self.files.get(path), Some(Some(_)))
    }

    fn config(&self, path: &str) -> Result<Config, String> {
        self.configs
            .get(path)
            .cloned()
            .ok_or_else(|| format!("{path}: no such file"))
    }
}

/// A [`Source`] whose directory listings are read once: module lookups
/// list /usr/lib and its multiarch directories for every module line.
pub struct Listed<'a> {
    inner: &'a dyn Source,
    lists: std::cell::RefCell<BTreeMap<String, Vec<String>>>,
}

impl<'a> Listed<'a> {
    pub fn new(inner: &'a dyn Source) -> Listed<'a> {
        Listed {
            inner,
            lists: std::cell::RefCell::default(),
        }
    }
}

impl Source for Listed<'_> {
    fn read(&self, path: &str) -> Read {
        self.inner.read(path)
    }

    fn list(&self, dir: &str) -> Vec<String> {
        if let Some(names) = self.lists.borrow().get(dir) {
            return names.clone();
        }
        let names = self.inner.list(dir);
        self.lists
            .borrow_mut()
            .insert(dir.to_string(), names.clone());
        names
    }

    fn exists(&self, path: &str) -> bool {
        self.inner.exists(path)
    }

    fn config(&self, path: &str) -> Result<Config, String> {
        self.inner.config(path)
    }
}
