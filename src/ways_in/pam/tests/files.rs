//! The tree under --root: symbolic links are followed inside it, never out
//! of it; what is not a regular file is not read.
#![forbid(unsafe_code)]

use super::super::files::{Read, Source, Tree, module_present};
use std::os::unix::fs::symlink;
use std::path::PathBuf;

/// A scratch tree, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = PathBuf::from(format!("/tmp/ts-ap-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("etc/pam.d")).unwrap();
        Scratch(dir)
    }
    fn write(&self, path: &str, text: &str) {
        let p = self.0.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    fn link(&self, path: &str, target: &str) {
        symlink(target, self.0.join(path)).unwrap();
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn links_are_followed_inside_the_tree_only() {
    let s = Scratch::new("links");
    s.write("etc/pam.d/real", "auth required pam_permit.so\n");
    s.write("srv/shared/common", "auth required pam_deny.so\n");
    // The host's file with the same name says something else.
    let host_marker = format!("/tmp/ts-ap-files-host-{}", std::process::id());
    std::fs::write(&host_marker, "HOST\n").unwrap();
    s.link("etc/pam.d/relative", "real");
    s.link("etc/pam.d/absolute", "/srv/shared/common");
    s.link("etc/pam.d/escape", &host_marker);
    s.link("etc/pam.d/dotdot", "../../../../../../../srv/shared/common");
    s.link("etc/pam.d/loop", "loop");
    std::fs::create_dir_all(s.0.join("etc/pam.d/dir")).unwrap();
    let tree = Tree::new(&s.0);
    let cases = [
        ("/etc/pam.d/real", Some("auth required pam_permit.so\n")),
        ("/etc/pam.d/relative", Some("auth required pam_permit.so\n")),
        ("/etc/pam.d/absolute", Some("auth required pam_deny.so\n")),
        ("/etc/pam.d/dotdot", Some("auth required pam_deny.so\n")),
        (
            "/etc/pam.d/../pam.d/real",
            Some("auth required pam_permit.so\n"),
        ),
        (
            "/../../etc/pam.d/real",
            Some("auth required pam_permit.so\n"),
        ),
    ];
    for (path, want) in cases {
        let got = tree.read(path);
        assert_eq!(got, Read::File(want.unwrap().as_bytes().to_vec()), "{path}");
    }
    // Inside the tree, the host's file does not exist.
    assert_eq!(tree.read("/etc/pam.d/escape"), Read::Absent);
    assert_eq!(tree.read("/etc/pam.d/none"), Read::Absent);
    let Read::Unreadable(why) = tree.read("/etc/pam.d/loop") else {
        panic!("a link loop was read");
    };
    assert!(why.contains("symbolic links"), "{why}");
    let Read::Unreadable(why) = tree.read("/etc/pam.d/dir") else {
        panic!("a directory was read");
    };
    assert!(why.contains("directory"), "{why}");
    assert_eq!(tree.list("/etc/pam.d").len(), 7);
    std::fs::remove_file(host_marker).unwrap();
}

#[test]
fn fifos_are_not_read() {
    let s = Scratch::new("fifo");
    let fifo = s.0.join("etc/pam.d/fifo");
    let st = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(st.success());
    let Read::Unreadable(why) = Tree::new(&s.0).read("/etc/pam.d/fifo") else {
        panic!("a FIFO was read");
    };
    assert!(why.contains("not a regular file"), "{why}");
}

#[test]
fn modules_are_looked_for_in_the_trees_module_directories() {
    let s = Scratch::new("modules");
    let tree = Tree::new(&s.0);
    // No module directory at all: nothing can be said.
    assert_eq!(module_present(&tree, "pam_permit.so"), None);
    s.write("usr/lib/aarch64-linux-gnu/security/pam_permit.so", "ELF");
    s.link("lib", "usr/lib");
    assert_eq!(module_present(&tree, "pam_permit.so"), Some(true));
    assert_eq!(module_present(&tree, "pam_gone.so"), Some(false));
    s.write("opt/pam/pam_x.so", "ELF");
    assert_eq!(module_present(&tree, "/opt/pam/pam_x.so"), Some(true));
    assert_eq!(module_present(&tree, "/opt/pam/pam_y.so"), Some(false));
}
