//! Fault injection through the real module and the real libpam: a full and a
//! read-only state file system, missing directories, a state file truncated
//! to every length, a secret file that changes while the user is at the
//! prompt, and kill -9 at random moments in 1,000 logins.
//!
//! Every case must deny (fail closed), send a record that says why, leave no
//! torn state, and leave `twostep status` able to read every user.

mod common;
use common::*;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

const OTHER_SECRET: &str = "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U";

fn user(name: &str) -> &str {
    ensure_user(name, None);
    name
}

/// A mount made for one test, lazily unmounted when dropped (before the
/// Rig's directory is removed: declare it after the Rig).
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn run(cmd: &[&str]) {
    let st = Command::new(cmd[0]).args(&cmd[1..]).status().unwrap();
    assert!(st.success(), "{cmd:?}");
}

fn mount_tmpfs(dir: &Path, size: &str) -> Mounted {
    let d = dir.to_str().unwrap();
    run(&[
        "mount",
        "-t",
        "tmpfs",
        "-o",
        &format!("size={size},mode=0700"),
        "tmpfs",
        d,
    ]);
    Mounted(dir.to_path_buf())
}

fn mount_read_only(dir: &Path) -> Mounted {
    let d = dir.to_str().unwrap();
    run(&["mount", "--bind", d, d]);
    let m = Mounted(dir.to_path_buf());
    run(&["mount", "-o", "remount,bind,ro", d]);
    m
}

/// Fills the file system holding `dir` until it refuses another byte.
fn fill(dir: &Path) {
    let mut f = std::fs::File::create(dir.join(".fill")).unwrap();
    let block = [0u8; 4096];
    while f.write_all(&block).is_ok() {}
    let mut byte = [0u8; 1];
    while f.write_all(&byte).is_ok() {
        byte[0] ^= 1;
    }
}

/// `twostep status --json` for every user; it must succeed and list `users`.
fn status_all(rig: &Rig, users: &[&str]) -> Vec<serde_json::Value> {
    let out = rig.cli(&["status", "--json"]);
    assert!(
        out.status.success(),
        "status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    for u in users {
        assert!(
            list.iter().any(|s| s["user"] == *u),
            "status does not list {u}: {list:?}"
        );
    }
    list
}

fn status_of(rig: &Rig, u: &str) -> serde_json::Value {
    let out = rig.cli(&["status", u, "--json"]);
    assert!(
        out.status.success(),
        "status {u}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The one record of a login, checked to be a denial with `event` and `reason`.
fn only_record<'a>(ev: &'a [Event], event: &str, reason: &str, what: &str) -> &'a Event {
    assert_eq!(ev.len(), 1, "{what}: {ev:#?}");
    assert_eq!(
        (ev[0].event(), ev[0].get("reason")),
        (event, Some(reason)),
        "{what}: {ev:#?}"
    );
    &ev[0]
}

#[test]
fn full_state_file_system() {
    let (a, b) = (user("ts-fault-full-a"), user("ts-fault-full-b"));
    let mut rig = Rig::new("full", "");
    let _fs = mount_tmpfs(&rig.state_dir, "64k");
    rig.enroll(a, SECRET);
    rig.enroll(b, SECRET);
    // a has a state file from before the disk filled up; b has none yet.
    assert_eq!(rig.login(a, "000000").code, PAM_AUTH_ERR);
    let _ = std::fs::remove_file(rig.state_path(b));
    fill(&rig.state_dir);
    rig.events();

    // b's first state file cannot be created: even the right code is refused,
    // as its step could not be recorded (it could be replayed).
    fresh_step(3);
    let l = rig.login(b, &oath_code(SECRET, 0));
    assert_eq!(l.code, PAM_AUTH_ERR, "{}", l.out);
    let ev = rig.events();
    let rec = only_record(&ev, "lock_denied", "bad_state", "full, no state file");
    assert!(rec.get("detail").unwrap().contains("No space"), "{rec:?}");
    // No temporary file was left behind, and no half file at b's path.
    let mut left: Vec<_> = files_under(&rig.state_dir)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, [".fill", a], "{left:?}");

    // a's file already has its blocks: it is updated in place, durably, so
    // failures are still counted and a right code works once.
    let l = rig.login(a, &wrong_code());
    assert_eq!(l.code, PAM_AUTH_ERR);
    let ev = rig.events();
    let rec = only_record(&ev, "auth_fail", "bad_code", "full, wrong code");
    assert_eq!(rec.get("failures"), Some("2"));
    fresh_step(3);
    let code = oath_code(SECRET, 0);
    assert_eq!(rig.login(a, &code).code, PAM_SUCCESS);
    assert_eq!(rig.login(a, &code).code, PAM_AUTH_ERR, "replay");
    let ev = rig.events();
    assert_eq!(ev[1].get("reason"), Some("replay"), "{ev:#?}");

    // Unknown names: denied; the decoy write fails quietly.
    let l = rig.login("ts-fault-nobody-here", "000000");
    assert_eq!(l.code, PAM_AUTH_ERR);
    only_record(&rig.events(), "auth_fail", "bad_user", "full, unknown user");

    for s in status_all(&rig, &[a, b]) {
        assert!(s.get("problem").is_none(), "{s}");
    }
}

#[test]
fn read_only_state_file_system() {
    let (a, b) = (user("ts-fault-ro-a"), user("ts-fault-ro-b"));
    let mut rig = Rig::new("ro", "");
    rig.enroll(a, SECRET);
    rig.enroll(b, SECRET);
    assert_eq!(rig.login(a, "000000").code, PAM_AUTH_ERR);
    let _ = std::fs::remove_file(rig.state_path(b));
    let before = std::fs::read(rig.state_path(a)).unwrap();
    let _ro = mount_read_only(&rig.state_dir);
    rig.events();

    for (u, what) in [(a, "existing state"), (b, "no state file")] {
        fresh_step(3);
        let l = rig.login(u, &oath_code(SECRET, 0));
        assert_eq!(l.code, PAM_AUTH_ERR, "{what}: {}", l.out);
        let ev = rig.events();
        let rec = only_record(&ev, "lock_denied", "bad_state", what);
        assert!(
            rec.get("detail").unwrap().contains("Read-only"),
            "{what}: {rec:?}"
        );
    }
    assert_eq!(std::fs::read(rig.state_path(a)).unwrap(), before);
    // Reading still works: preauth lets a through to the password, and
    // status reads both.
    let l = rig.login_with("stack", a, &["not the password"], &[]);
    assert_eq!(l.code, PAM_AUTH_ERR);
    let st = status_all(&rig, &[a, b]);
    assert!(st.iter().all(|s| s.get("problem").is_none()), "{st:?}");
    assert_eq!(status_of(&rig, a)["failures"], 1);
}

#[test]
fn missing_state_dir() {
    let a = user("ts-fault-nostate");
    let mut rig = Rig::new("nostate", "");
    rig.enroll(a, SECRET);
    std::fs::remove_dir_all(&rig.state_dir).unwrap();
    rig.events();
    fresh_step(3);
    let l = rig.login(a, &oath_code(SECRET, 0));
    assert_eq!(l.code, PAM_AUTH_ERR, "{}", l.out);
    let ev = rig.events();
    let rec = only_record(&ev, "lock_denied", "bad_state", "missing state_dir");
    assert!(
        rec.get("detail").unwrap().contains("No such file"),
        "{rec:?}"
    );
    assert!(
        !rig.state_dir.exists(),
        "the module does not create state_dir"
    );
    let st = status_all(&rig, &[a]);
    assert_eq!(st[0]["enrolled"], true);
}

/// Without its secret directory (an unmounted file system, a typo) the
/// module cannot tell an enrolled user from an unenrolled one: it must not
/// treat everyone as unenrolled, which under "allow" would let everyone in
/// without a code.
#[test]
fn missing_secret_dir_fails_closed_under_every_unenrolled_setting() {
    let a = user("ts-fault-nosecret");
    let mut rig = Rig::new("nosecret", "");
    rig.enroll(a, SECRET);
    std::fs::rename(&rig.secret_dir, rig.root.join("secrets.moved")).unwrap();
    for setting in ["deny", "allow", "enroll"] {
        rig.write_config(&format!("unenrolled = \"{setting}\""));
        rig.events();
        fresh_step(3);
        let l = rig.login(a, &oath_code(SECRET, 0));
        assert_eq!(l.code, PAM_AUTH_ERR, "{setting}: {}", l.out);
        assert_eq!(
            l.prompts(),
            1,
            "{setting}: asked like anyone else: {}",
            l.out
        );
        assert!(
            !l.out.contains("INFO:"),
            "{setting}: no enrollment: {}",
            l.out
        );
        let ev = rig.events();
        let rec = only_record(&ev, "auth_fail", "bad_secret_file", setting);
        assert!(
            rec.get("detail").unwrap().contains("secret_dir"),
            "{setting}: {rec:?}"
        );
        // Unknown names still create no state.
        let l = rig.login("ts-fault-nobody-here", "000000");
        assert_eq!(l.code, PAM_AUTH_ERR, "{setting}");
        rig.events();
        assert!(
            !rig.state_path("ts-fault-nobody-here").exists(),
            "{setting}"
        );
    }
    assert!(
        !rig.secret_dir.exists(),
        "the module does not create secret_dir"
    );
    let st = status_of(&rig, a);
    assert_eq!(st["user"], a, "{st}");
}

#[test]
fn state_file_truncated_to_every_length() {
    const WORKERS: usize = 4;
    let users: Vec<String> = (0..WORKERS)
        .map(|i| user(&format!("ts-fault-trunc-{i}")).to_string())
        .collect();
    let mut rig = Rig::new("trunc", "");
    let mut full = Vec::new();
    for u in &users {
        rig.enroll(u, SECRET);
        assert_eq!(rig.login(u, "000000").code, PAM_AUTH_ERR);
        full = std::fs::read(rig.state_path(u)).unwrap();
    }
    assert_eq!(full.len(), 2048);
    rig.events();
    std::thread::scope(|s| {
        for (w, u) in users.iter().enumerate() {
            let (rig, full) = (&rig, &full);
            s.spawn(move || {
                for len in (w..full.len()).step_by(WORKERS) {
                    let path = rig.state_path(u);
                    std::fs::write(&path, &full[..len]).unwrap();
                    // The right code: a truncated file is never a fresh start.
                    let l = rig.login(u, &oath_code(SECRET, 0));
                    assert_eq!(
                        (l.code, l.prompts()),
                        (PAM_AUTH_ERR, 0),
                        "truncated to {len}: {}",
                        l.out
                    );
                    assert!(
                        l.errors().iter().any(|e| e.contains("blocked")),
                        "told why, at once: {}",
                        l.out
                    );
                    assert_eq!(
                        std::fs::metadata(&path).unwrap().len(),
                        len as u64,
                        "the module leaves a damaged file for the administrator"
                    );
                }
            });
        }
    });
    let ev = rig.events();
    assert_eq!(ev.len(), 2048, "one record per attempt");
    for e in &ev {
        assert_eq!(
            (e.event(), e.get("reason")),
            ("lock_denied", Some("bad_state")),
            "{e:?}"
        );
    }
    // The last lengths are still in place: status reads each user as locked
    // with the problem named.
    for s in status_all(&rig, &users.iter().map(String::as_str).collect::<Vec<_>>()) {
        assert_eq!(s["locked"], true, "{s}");
        assert!(s["problem"].as_str().unwrap().contains("integrity"), "{s}");
    }
}

/// pamdrive, stopped at the code prompt.
struct AtPrompt {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
    seen: String,
}

impl AtPrompt {
    fn start(rig: &Rig, user: &str) -> AtPrompt {
        let mut child = rig.spawn_login("twostep", user, &[]);
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            assert!(out.read_line(&mut line).unwrap() > 0, "no prompt: {seen}");
            seen.push_str(&line);
            if line.starts_with("PROMPT_OFF") {
                break;
            }
        }
        AtPrompt { child, out, seen }
    }

    fn answer(mut self, answer: &str) -> Login {
        writeln!(self.child.stdin.take().unwrap(), "{answer}").unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.out, &mut rest).unwrap();
        let st = self.child.wait().unwrap();
        Login {
            code: st.code().unwrap_or(-1),
            out: self.seen + &rest,
        }
    }
}

/// The module reads the secret before it asks. Whatever happens to the file
/// while the user is at the prompt, the answer is judged against the file as
/// it is once the answer is in: a reset or re-enrollment (a stolen phone)
/// takes effect at once, even for a login already waiting at the prompt.
#[test]
fn secret_file_changing_during_the_login() {
    let u = user("ts-fault-swap");
    let mut rig = Rig::new("swap", "");
    let old_code = || {
        fresh_step(5);
        oath_code(SECRET, 0)
    };

    // Re-enrolled with a new secret: the old secret's code is refused.
    rig.enroll(u, SECRET);
    rig.events();
    let code = old_code();
    let at = AtPrompt::start(&rig, u);
    rig.enroll(u, OTHER_SECRET);
    let l = at.answer(&code);
    assert_eq!(l.code, PAM_AUTH_ERR, "re-enrolled: {}", l.out);
    let ev = rig.module_events();
    only_record(&ev, "auth_fail", "bad_code", "re-enrolled");

    // Reset (enrollment removed): refused as not enrolled.
    rig.enroll(u, SECRET);
    rig.events();
    let code = old_code();
    let at = AtPrompt::start(&rig, u);
    assert!(rig.cli(&["reset", u]).status.success());
    let l = at.answer(&code);
    assert_eq!(l.code, PAM_AUTH_ERR, "reset: {}", l.out);
    let ev = rig.module_events();
    only_record(&ev, "auth_fail", "no_secret", "reset");

    // Replaced by a file others can read: refused as untrustworthy.
    rig.enroll(u, SECRET);
    rig.events();
    let code = old_code();
    let at = AtPrompt::start(&rig, u);
    let path = rig.secret_path(u);
    let text = std::fs::read(&path).unwrap();
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, &text).unwrap();
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let l = at.answer(&code);
    assert_eq!(l.code, PAM_AUTH_ERR, "mode 0644: {}", l.out);
    let ev = rig.events();
    let rec = only_record(&ev, "auth_fail", "bad_secret_file", "mode 0644");
    assert!(rec.get("detail").unwrap().contains("mode"), "{rec:?}");

    // Rewritten with the same secret (recovery codes regenerated): the code
    // still works, exactly once.
    rig.enroll(u, SECRET);
    rig.events();
    let code = old_code();
    let at = AtPrompt::start(&rig, u);
    assert!(rig.cli(&["recovery-codes", u]).status.success());
    assert_eq!(at.answer(&code).code, PAM_SUCCESS);
    assert_eq!(rig.login(u, &code).code, PAM_AUTH_ERR, "replay");

    let st = status_of(&rig, u);
    assert!(st.get("problem").is_none(), "{st}");
}

/// 1,000 logins, eight at a time over four users, about half of them killed
/// with SIGKILL at a random moment: wrong codes, right codes, replays.
#[test]
fn kill_9_at_random_points_in_1000_logins() {
    const USERS: usize = 4;
    const ROUNDS: usize = 125;
    const PER_ROUND: usize = 8;
    let users: Vec<String> = (0..USERS)
        .map(|i| user(&format!("ts-fault-kill-{i}")).to_string())
        .collect();
    let names: Vec<&str> = users.iter().map(String::as_str).collect();
    let mut rig = Rig::new(
        "kill1000",
        "[lockout]\ntiers = [{failures = 1000, lock = \"1s\"}]",
    );
    for u in &users {
        rig.enroll(u, SECRET);
    }
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut killed, mut logins) = (0, 0);
    for round in 0..ROUNDS {
        let right = oath_code(SECRET, 0);
        let mut children: Vec<Child> = (0..PER_ROUND)
            .map(|i| {
                let u = &users[i % USERS];
                let answer = if i < USERS && round % 5 == 0 {
                    right.as_str()
                } else {
                    "000000"
                };
                let mut c = rig.spawn_login("twostep", u, &[]);
                let _ = writeln!(c.stdin.take().unwrap(), "{answer}");
                c
            })
            .collect();
        logins += children.len();
        std::thread::sleep(Duration::from_micros(next() % 4000));
        for c in children.iter_mut() {
            if next() % 2 == 0 && c.kill().is_ok() {
                killed += 1;
            }
        }
        for c in children.iter_mut() {
            c.wait().unwrap();
        }
        if round % 25 == 24 {
            for s in status_all(&rig, &names) {
                assert!(s.get("problem").is_none(), "torn after a kill: {s}");
            }
        }
    }
    assert_eq!(logins, 1000);
    assert!(killed > 300, "only {killed} kills landed");
    rig.events();
    for s in status_all(&rig, &names) {
        assert!(s.get("problem").is_none(), "torn after a kill: {s}");
        assert!(s["failures"].as_u64().unwrap() <= 1000, "{s}");
    }
    // The counters still count exactly, one per failure.
    for u in &names {
        let before = status_of(&rig, u)["failures"].as_u64().unwrap();
        for _ in 0..3 {
            assert_eq!(rig.login(u, "000000").code, PAM_AUTH_ERR);
        }
        assert_eq!(status_of(&rig, u)["failures"], before + 3, "{u}");
    }
    // Every user still logs in, and the state works on. The rounds may have
    // accepted this step's code already (a replay now): use the next step.
    let step = now() / 30;
    while now() / 30 == step {
        std::thread::sleep(Duration::from_millis(200));
    }
    fresh_step(3);
    for u in &names {
        assert_eq!(rig.login(u, &oath_code(SECRET, 0)).code, PAM_SUCCESS, "{u}");
        assert_eq!(status_of(&rig, u)["failures"], 0, "{u}");
    }
}

/// A writer killed after it has written a secret but before the file has
/// its name leaves no copy of the secret under another name. `twostep
/// enroll --force` replaces a secret file; strace's fault injection kills
/// it (SIGKILL) at its Nth fsync, for each N until one run ends by itself.
/// The first of them comes after the new secret is written and before the
/// rename. Whatever N, the secret directory then holds the user's file
/// alone, whole (the old secret or the new): a root-only `.USER.tmp.*` copy
/// left at each kill would let a user who can kill their own setuid
/// `twostep-self` fill the directory, one copy per try.
#[test]
fn a_writer_killed_at_each_flush_leaves_no_copy_of_the_secret() {
    const NEW_SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    let u = user("ts-fault-tmpcopy");
    let rig = Rig::new("fault-tmpcopy", "");
    rig.enroll(u, OTHER_SECRET);
    let mut killed = 0;
    for n in 1..=12 {
        let mut child = Command::new("strace")
            .args(["-f", "-qq", "-o", "/dev/null", "-e"])
            .arg(format!("inject=fsync:signal=KILL:when={n}"))
            .arg(twostep_bin())
            .arg("--config")
            .arg(&rig.config)
            .args(["enroll", u, "--no-confirm", "--qr", "none", "--json"])
            .args(["--secret-file", "-", "--force"])
            .env_remove("TWOSTEP_CONFIG")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("strace (packages.sh test installs it)");
        let _ = child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{NEW_SECRET}\n").as_bytes());
        let out = child.wait_with_output().unwrap();
        let files = rig.secret_files();
        assert_eq!(
            files,
            vec![rig.secret_path(u)],
            "after a kill at fsync {n}: the secret directory holds {files:?}"
        );
        let text = std::fs::read_to_string(rig.secret_path(u)).unwrap();
        assert!(
            text.contains(OTHER_SECRET) || text.contains(NEW_SECRET),
            "after a kill at fsync {n}: the user's file is neither secret"
        );
        if out.status.success() {
            assert!(
                text.contains(NEW_SECRET),
                "enroll succeeded, old secret kept"
            );
            break;
        }
        killed += 1;
    }
    eprintln!("enroll killed at each of its first {killed} fsyncs");
    // The marker's rewrite and the secret's own write at least.
    assert!(
        killed >= 2,
        "only {killed} fsyncs reached: too little injected"
    );
}
