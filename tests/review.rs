//! The security review's findings about the module (issue 17), each through
//! the real module and libpam, with real users and real pam_unix: one
//! identity per account under a case-insensitive NSS source, attempts
//! counted before their password is checked (also under a caller's
//! file-size limit), the clock read when the answer arrives, a config that
//! is a FIFO or that others can write, an unmounted secret volume, the
//! argon2 memory bound, a second `config=`, and `console = "skip"` without
//! a terminal.

mod common;
use common::*;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PASSWORD: &str = "review pass-W0rd 17";

fn user(name: &str) -> &str {
    ensure_user(name, Some(PASSWORD));
    name
}

fn status(rig: &Rig, user: &str) -> serde_json::Value {
    rig.status_json(user)
}

// ---- 1. one account, one identity ---------------------------------------------

/// Installs tests/c/nss_tscase.c as a case-insensitive NSS source for names
/// starting with "ts-rev-", and restores nsswitch.conf when dropped.
struct CaseInsensitiveNss {
    saved: String,
    module: PathBuf,
}

const NSSWITCH: &str = "/etc/nsswitch.conf";

impl CaseInsensitiveNss {
    fn install() -> CaseInsensitiveNss {
        let module = PathBuf::from("/lib/x86_64-linux-gnu/libnss_tscase.so.2");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/nss_tscase.c");
        let st = Command::new("cc")
            .args([
                "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-o",
            ])
            .arg(&module)
            .arg(&src)
            .status()
            .unwrap();
        assert!(st.success(), "compiling nss_tscase.c");
        let saved = std::fs::read_to_string(NSSWITCH).unwrap();
        let patched: String = saved
            .lines()
            .map(|l| {
                if l.starts_with("passwd:") || l.starts_with("shadow:") {
                    format!("{l} tscase\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        std::fs::write(NSSWITCH, patched).unwrap();
        CaseInsensitiveNss { saved, module }
    }
}

impl Drop for CaseInsensitiveNss {
    fn drop(&mut self) {
        std::fs::write(NSSWITCH, &self.saved).unwrap();
        let _ = std::fs::remove_file(&self.module);
    }
}

#[test]
fn every_spelling_of_an_account_is_that_account() {
    let u = user("ts-rev-alias");
    let admin = user("ts-rev-admin");
    ensure_group("ts-rev-admins", &[admin]);
    let mut rig = Rig::new(
        "rev-alias",
        "unenrolled = \"allow\"\n\
         [lockout]\ntiers = [{failures = 3, lock = \"1h\"}]\n\
         [policy]\nalways_challenge_groups = [\"ts-rev-admins\"]",
    );
    rig.enroll(u, SECRET);
    let _nss = CaseInsensitiveNss::install();
    let getent = Command::new("getent")
        .args(["passwd", "TS-REV-ALIAS"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&getent.stdout).starts_with("ts-rev-alias:"),
        "the test NSS source is not in use"
    );
    rig.events();

    // Under unenrolled = "allow", the password of alias as "TS-REV-ALIAS"
    // is asked for alias's code: the spelling has no secret of its own.
    fresh_step(5);
    let login = rig.login_with(
        "stack",
        "TS-REV-ALIAS",
        &[PASSWORD, &oath_code(SECRET, 0)],
        &[("rhost", "192.0.2.17")],
    );
    assert_eq!(login.code, PAM_SUCCESS, "{}", login.out);
    assert_eq!(login.prompts(), 2, "password and code: {}", login.out);
    let ev = rig.module_events();
    let ok: Vec<_> = ev.iter().filter(|e| e.event() == "auth_ok").collect();
    assert_eq!(ok.len(), 1, "{ev:#?}");
    assert_eq!(ok[0].get("user"), Some(u), "records name the account");
    assert_eq!(count(&ev, "skipped"), 0, "{ev:#?}");

    // Failures under three spellings count toward one lock.
    for spelling in ["TS-REV-ALIAS", "Ts-Rev-Alias", "ts-rev-ALIAS"] {
        let l = rig.login_with(
            "stack",
            spelling,
            &[PASSWORD, "000000"],
            &[("rhost", "192.0.2.17")],
        );
        assert_eq!(l.code, PAM_AUTH_ERR, "{spelling}: {}", l.out);
    }
    let st = status(&rig, u);
    assert_eq!(st["locked"], true, "{st}");
    assert_eq!(st["failures"], 3, "{st}");
    // And the lock holds for every spelling, even with the right code.
    fresh_step(5);
    let l = rig.login_with(
        "stack",
        "TS-REV-alias",
        &[PASSWORD, &oath_code(SECRET, 0)],
        &[("rhost", "192.0.2.17")],
    );
    assert_eq!(l.code, PAM_AUTH_ERR, "{}", l.out);
    assert!(
        l.errors().iter().any(|e| e.contains("locked until")),
        "{}",
        l.out
    );
    // One state file, one secret file: the account's own.
    assert_eq!(
        rig.files(),
        [".twostep-secret-dir", u, u],
        "no file for another spelling"
    );

    // Under "enroll", neither a spelling of an enrolled account nor an
    // always_challenge_groups member is offered a new secret.
    rig.write_config(
        "unenrolled = \"enroll\"\n[policy]\nalways_challenge_groups = [\"ts-rev-admins\"]",
    );
    // The command resolves names the same way.
    assert!(rig.cli(&["unlock", "TS-REV-ALIAS"]).status.success());
    assert_eq!(status(&rig, u)["locked"], false);
    rig.events();
    for (name, what) in [
        ("TS-REV-ALIAS", "a spelling of an enrolled user"),
        ("TS-REV-ADMIN", "an admin"),
    ] {
        let l = rig.login_with(
            "stack",
            name,
            &[PASSWORD, "000000"],
            &[("rhost", "192.0.2.17")],
        );
        assert_eq!(l.code, PAM_AUTH_ERR, "{what}: {}", l.out);
        assert!(
            !l.out.contains("otpauth://"),
            "{what} was offered enrollment: {}",
            l.out
        );
    }
    assert!(!rig.secret_path(admin).exists());
    let ev = rig.module_events();
    let admin_fail = ev
        .iter()
        .find(|e| e.event() == "auth_fail" && e.get("user") == Some(admin))
        .unwrap_or_else(|| panic!("{ev:#?}"));
    assert_eq!(admin_fail.get("reason"), Some("no_secret"));
}

// ---- 2. counted before checked ------------------------------------------------

/// The canonical stack with a pam_exec line in front of pam_unix that
/// appends one line to `log` for every password pam_unix checks.
fn counting_stack(rig: &Rig, log: &Path) {
    let script = rig.password_counter(log);
    let m = module();
    let c = rig.config.display();
    rig.service(
        "counted",
        &format!(
            "auth requisite {m} config={c} preauth\n\
             auth optional pam_exec.so quiet {script}\n\
             auth [success=1 default=ignore] pam_unix.so nodelay\n\
             auth [default=die] {m} config={c} authfail\n\
             auth required {m} config={c}\n",
            m = m.display(),
            script = script.display()
        ),
    );
}

#[test]
fn parallel_wrong_passwords_get_only_the_allowance_checked() {
    let u = user("ts-rev-parpw");
    let mut rig = Rig::new(
        "rev-parpw",
        "[lockout]\ntiers = [{failures = 5, lock = \"1h\"}]",
    );
    rig.enroll(u, SECRET);
    let checked = rig.root.join("checked");
    counting_stack(&rig, &checked);
    rig.events();
    let children: Vec<_> = (0..20)
        .map(|_| {
            let mut c = rig.spawn_login("counted", u, &[("rhost", "192.0.2.18")]);
            // A refused login may be gone before its password is written.
            let _ = writeln!(c.stdin.take().unwrap(), "wrong password");
            c
        })
        .collect();
    for c in children {
        assert_eq!(
            c.wait_with_output().unwrap().status.code(),
            Some(PAM_AUTH_ERR)
        );
    }
    assert_eq!(
        lines_in(&checked),
        5,
        "passwords checked by pam_unix: exactly the tier's allowance"
    );
    let ev = rig.module_events();
    assert_eq!(count(&ev, "password_fail"), 5, "{ev:#?}");
    assert_eq!(count(&ev, "lock_denied"), 15, "{ev:#?}");
    assert_eq!(count(&ev, "locked"), 1, "{ev:#?}");
    assert_eq!(status(&rig, u)["failures"], 5);
}

/// A login through `service` run under `sh -c "ulimit -S -f 0; exec ..."`.
fn login_under_fsize_zero(rig: &Rig, service: &str, user: &str, answers: &[&str]) -> Login {
    let wrapper = ["sh", "-c", "ulimit -S -f 0; exec \"$@\"", "sh"].map(std::ffi::OsStr::new);
    let cmd = rig.login_command(&wrapper, service, user, &[("rhost", "192.0.2.19")]);
    run_login(cmd, answers)
}

#[test]
fn a_file_size_limit_cannot_stop_the_count() {
    let u = user("ts-rev-fsize");
    let mut rig = Rig::new(
        "rev-fsize",
        "[lockout]\ntiers = [{failures = 3, lock = \"1h\"}]",
    );
    rig.enroll(u, SECRET);
    let checked = rig.root.join("checked");
    counting_stack(&rig, &checked);
    rig.events();
    // A local user's `su victim` under `ulimit -S -f 0`: every wrong
    // password is still counted, so guessing stops at the tier.
    for i in 0..6 {
        let l = login_under_fsize_zero(&rig, "counted", u, &["wrong password", "000000"]);
        assert_eq!(l.code, PAM_AUTH_ERR, "attempt {i}: {}", l.out);
    }
    assert_eq!(lines_in(&checked), 3, "passwords checked under the limit");
    let st = status(&rig, u);
    assert_eq!(
        (st["failures"].as_u64(), st["locked"].as_bool()),
        (Some(3), Some(true)),
        "{st}"
    );
    // The right password and code, once unlocked, still log in under it:
    // the module lifted the limit for its own writes only.
    assert!(rig.cli(&["unlock", u]).status.success());
    fresh_step(5);
    let l = login_under_fsize_zero(&rig, "counted", u, &[PASSWORD, &oath_code(SECRET, 0)]);
    assert_eq!(l.code, PAM_SUCCESS, "{}", l.out);
    assert_eq!(status(&rig, u)["failures"], 0);
}

// ---- 3. the clock at answer time ------------------------------------------------

/// A code-step login whose clock libfaketime moves between the prompt and
/// the answer: `offset_at_answer` seconds ahead once the prompt is shown.
fn login_answering_later(
    rig: &Rig,
    user: &str,
    offset_at_answer: u64,
    answer: impl FnOnce() -> String,
) -> Login {
    let offset_file = rig.root.join("faketime-offset");
    let mut live = login_with_moving_clock(rig, user, &offset_file, &[("rhost", "192.0.2.20")]);
    let seen = live.until_prompt();
    assert!(seen.contains("PROMPT_OFF"), "{seen}");
    std::fs::write(&offset_file, format!("+{offset_at_answer}\n")).unwrap();
    live.answer(&answer());
    live.finish()
}

#[test]
fn a_code_is_judged_by_the_time_it_was_typed() {
    let u = user("ts-rev-clock");
    let v = user("ts-rev-clock2");
    let mut rig = Rig::new("rev-clock", "");
    rig.enroll(u, SECRET);
    rig.enroll(v, SECRET);
    rig.events();
    // Typed 65 s after the prompt: the code of that moment is accepted.
    fresh_step(5);
    let l = login_answering_later(&rig, u, 65, || {
        oath_code_at(SECRET, now() + 65, "SHA1", 6, 30)
    });
    assert_eq!(l.code, PAM_SUCCESS, "{}", l.out);
    // The code of the prompt's moment, typed 95 s later, is refused.
    fresh_step(5);
    let at_prompt = oath_code(SECRET, 0);
    let l = login_answering_later(&rig, v, 95, || at_prompt.clone());
    assert_eq!(l.code, PAM_AUTH_ERR, "{}", l.out);
    let ev = rig.module_events();
    let fail = ev.iter().find(|e| e.event() == "auth_fail").unwrap();
    assert_eq!(fail.get("reason"), Some("bad_code"), "{ev:#?}");
}

// ---- 6. the config file ------------------------------------------------------------

#[test]
fn a_config_that_is_a_fifo_or_not_only_roots_is_refused() {
    let u = user("ts-rev-config");
    let rig = Rig::new("rev-config", "");
    rig.enroll(u, SECRET);
    let good = std::fs::read_to_string(&rig.config).unwrap();

    // A FIFO: denied at once, not hung in a read.
    std::fs::remove_file(&rig.config).unwrap();
    nix::unistd::mkfifo(&rig.config, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    let start = Instant::now();
    let mut child = rig.spawn_login("twostep", u, &[("rhost", "192.0.2.24")]);
    let _ = writeln!(child.stdin.take().unwrap(), "000000");
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("a FIFO in place of the config hung the login");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(code, Some(PAM_AUTH_ERR));
    std::fs::remove_file(&rig.config).unwrap();

    // Writable by group or others, or owned by another user: refused.
    let cases: [(u32, Option<u32>, &str); 4] = [
        (0o666, None, "writable by others"),
        (0o664, None, "writable by the group"),
        (0o644, Some(65534), "owned by nobody"),
        (0o644, None, "as it should be"),
    ];
    for (mode, owner, what) in cases {
        std::fs::write(&rig.config, &good).unwrap();
        std::fs::set_permissions(&rig.config, std::fs::Permissions::from_mode(mode)).unwrap();
        if let Some(uid) = owner {
            std::os::unix::fs::chown(&rig.config, Some(uid), None).unwrap();
        }
        fresh_step(5);
        let l = rig.login(u, &oath_code(SECRET, 0));
        let check = rig.cli(&["check"]);
        if what == "as it should be" {
            assert_eq!(l.code, PAM_SUCCESS, "{what}: {}", l.out);
        } else {
            assert_eq!(l.code, PAM_AUTH_ERR, "{what}: {}", l.out);
            assert_eq!(l.prompts(), 0, "{what}: {}", l.out);
            assert_eq!(check.status.code(), Some(2), "twostep check, {what}");
        }
        std::fs::remove_file(&rig.config).unwrap();
    }
}

#[test]
fn config_may_be_given_once() {
    let u = user("ts-rev-twocfg");
    let mut rig = Rig::new("rev-twocfg", "");
    rig.enroll(u, SECRET);
    let other = rig.root.join("other.toml");
    std::fs::write(&other, "unenrolled = \"allow\"\n").unwrap();
    let c = rig.config.display();
    rig.service(
        "twice",
        &format!(
            "auth required {} config={c} config={}\n",
            module().display(),
            other.display()
        ),
    );
    rig.events();
    fresh_step(5);
    let l = rig.login_with(
        "twice",
        u,
        &[&oath_code(SECRET, 0)],
        &[("rhost", "192.0.2.21")],
    );
    assert_eq!(l.code, PAM_AUTH_ERR, "{}", l.out);
    assert_eq!(l.prompts(), 0, "{}", l.out);
}

// ---- 7. an unmounted secret volume -------------------------------------------------

#[test]
fn an_empty_volume_over_secret_dir_denies_everyone() {
    let u = user("ts-rev-mount");
    let unenrolled = user("ts-rev-mount2");
    let mut rig = Rig::new("rev-mount", "unenrolled = \"allow\"");
    rig.enroll(u, SECRET);
    let empty = rig.root.join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o700)).unwrap();
    rig.events();
    // In a private mount namespace: an empty directory mounted over
    // secret_dir, as after a volume failed to mount under its mount point.
    let over = |user: &str, answer: &str| {
        let script = "mount --bind \"$1\" \"$2\" && shift 2 && exec \"$@\"";
        let wrapper = [
            "unshare".as_ref(),
            "--mount".as_ref(),
            "--propagation".as_ref(),
            "private".as_ref(),
            "sh".as_ref(),
            "-c".as_ref(),
            script.as_ref(),
            "sh".as_ref(),
            empty.as_os_str(),
            rig.secret_dir.as_os_str(),
        ];
        let cmd = rig.login_command(&wrapper, "twostep", user, &[("rhost", "192.0.2.22")]);
        run_login(cmd, &[answer])
    };
    for who in [u, unenrolled] {
        fresh_step(5);
        let l = over(who, &oath_code(SECRET, 0));
        assert_eq!(l.code, PAM_AUTH_ERR, "{who}: {}", l.out);
    }
    let ev = rig.module_events();
    assert_eq!(count(&ev, "skipped"), 0, "{ev:#?}");
    assert_eq!(count(&ev, "auth_fail"), 2, "{ev:#?}");
    assert!(
        ev.iter().all(|e| e.get("reason") == Some("bad_secret_file")
            && e.get("detail")
                .is_some_and(|d| d.contains(".twostep-secret-dir"))),
        "{ev:#?}"
    );
    // Mounted again, both log in (one with a code, one without).
    fresh_step(5);
    assert_eq!(rig.login(u, &oath_code(SECRET, 0)).code, PAM_SUCCESS);
    assert_eq!(rig.login(unenrolled, "").code, PAM_SUCCESS);
}

// ---- 10. the argon2 bound ------------------------------------------------------------

/// A memory cgroup (v1) that the logins are started in; its
/// `max_usage_in_bytes` is the peak of all of them together.
struct MemoryGroup {
    dir: PathBuf,
}

impl MemoryGroup {
    fn new(name: &str) -> MemoryGroup {
        let dir = PathBuf::from(format!(
            "/sys/fs/cgroup/memory/twostep-{name}-{}",
            std::process::id()
        ));
        std::fs::create_dir(&dir).expect("a memory cgroup (cgroup v1 at /sys/fs/cgroup/memory)");
        MemoryGroup { dir }
    }

    fn peak(&self) -> u64 {
        std::fs::read_to_string(self.dir.join("memory.max_usage_in_bytes"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    fn reset_peak(&self) {
        std::fs::write(self.dir.join("memory.max_usage_in_bytes"), "0").unwrap();
    }

    /// `n` logins of unknown names started at once in this group, each
    /// answering `answer`.
    fn parallel_logins(&self, rig: &Rig, n: usize, answer: &str) -> Vec<i32> {
        let procs = self.dir.join("cgroup.procs");
        let children: Vec<_> = (0..n)
            .map(|i| {
                let wrapper = [
                    "sh".as_ref(),
                    "-c".as_ref(),
                    "echo $$ > \"$1\" && shift && exec \"$@\"".as_ref(),
                    "sh".as_ref(),
                    procs.as_os_str(),
                ];
                let name = format!("ts-rev-nobody-{i}");
                let mut cmd =
                    rig.login_command(&wrapper, "twostep", &name, &[("rhost", "192.0.2.23")]);
                let mut c = cmd.stdout(Stdio::null()).spawn().unwrap();
                let _ = writeln!(c.stdin.take().unwrap(), "{answer}");
                c
            })
            .collect();
        children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap().status.code().unwrap_or(-1))
            .collect()
    }
}

impl Drop for MemoryGroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[test]
fn parallel_recovery_shaped_answers_hold_bounded_memory() {
    let rig = Rig::new("rev-argon", "");
    let group = MemoryGroup::new("argon");
    // The same 100 logins with an answer that costs no argon2 (the
    // processes, libpam, the module), then with a recovery-shaped one.
    let codes = group.parallel_logins(&rig, 100, "00000x");
    assert!(codes.iter().all(|&c| c == PAM_AUTH_ERR), "{codes:?}");
    let baseline = group.peak();
    group.reset_peak();
    let start = Instant::now();
    let codes = group.parallel_logins(&rig, 100, "abcde-fghjk");
    let took = start.elapsed();
    assert!(codes.iter().all(|&c| c == PAM_AUTH_ERR), "{codes:?}");
    let peak = group.peak();
    let argon = 19 * 1024 * 1024;
    let extra = peak.saturating_sub(baseline);
    eprintln!(
        "100 parallel logins: peak {} MiB with argon2, {} MiB without ({} MiB more, {:?})",
        peak >> 20,
        baseline >> 20,
        extra >> 20,
        took
    );
    // Unbounded, all 100 would hold their 19 MiB at once (1.9 GiB); the
    // gate lets 4 run. Allow twice that for the allocator and timing.
    assert!(
        extra < 8 * argon,
        "argon2 memory is not bounded: {} MiB over the baseline",
        extra >> 20
    );
}

// ---- 11. console = "skip" needs a terminal ------------------------------------------

#[test]
fn console_skip_applies_to_terminals_only() {
    let u = user("ts-rev-console");
    let mut rig = Rig::new("rev-console", "[policy]\nconsole = \"skip\"");
    rig.enroll(u, SECRET);
    rig.events();
    // No remote host and no terminal: a daemon or cron checking a
    // password through PAM is asked, not waved through.
    let l = rig.login_with("twostep", u, &[], &[]);
    assert_eq!(l.prompts(), 1, "{}", l.out);
    let l = rig.login_with("twostep", u, &[], &[("tty", "cron")]);
    assert_eq!(l.prompts(), 1, "{}", l.out);
    // On a terminal of this machine: skipped.
    let l = rig.login_with("twostep", u, &[], &[("tty", "/dev/tty1")]);
    assert_eq!((l.code, l.prompts()), (PAM_SUCCESS, 0), "{}", l.out);
    let ev = rig.module_events();
    assert_eq!(
        ev.iter()
            .filter(|e| e.event() == "skipped")
            .map(|e| e.get("reason").unwrap())
            .collect::<Vec<_>>(),
        ["console"]
    );
}

// ---- 12. a full copy-on-write file system -------------------------------------------

/// A small btrfs (copy-on-write: even an in-place overwrite needs free
/// space) mounted over a directory, unmounted when dropped.
struct Btrfs {
    image: PathBuf,
    at: PathBuf,
}

impl Btrfs {
    fn mount_over(dir: &Path) -> Btrfs {
        let image = PathBuf::from(format!("/var/tmp/twostep-btrfs-{}.img", std::process::id()));
        let f = std::fs::File::create(&image).unwrap();
        f.set_len(128 << 20).unwrap();
        let ok = |c: &mut Command| c.status().unwrap().success();
        assert!(
            ok(Command::new("mkfs.btrfs")
                .args(["-q", "--mixed"])
                .arg(&image)),
            "mkfs.btrfs (apt-get install btrfs-progs)"
        );
        assert!(ok(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(dir)));
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        Btrfs {
            image,
            at: dir.to_path_buf(),
        }
    }

    /// Fills it until writes fail with ENOSPC.
    fn fill(&self) {
        for name in ["fill", "fill-small"] {
            let _ = Command::new("dd")
                .arg("if=/dev/zero")
                .arg(format!("of={}", self.at.join(name).display()))
                .arg(if name == "fill" { "bs=1M" } else { "bs=4k" })
                .stderr(Stdio::null())
                .status();
        }
        let _ = Command::new("sync").status();
    }
}

impl Drop for Btrfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.at).status();
        let _ = std::fs::remove_file(&self.image);
    }
}

#[test]
fn a_full_copy_on_write_disk_checks_no_password() {
    let u = user("ts-rev-btrfs");
    let mut rig = Rig::new("rev-btrfs", "");
    rig.enroll(u, SECRET);
    let checked = rig.root.join("checked");
    counting_stack(&rig, &checked);
    let disk = Btrfs::mount_over(&rig.state_dir);
    let l = rig.login_with(
        "counted",
        u,
        &["wrong password"],
        &[("rhost", "192.0.2.25")],
    );
    assert_eq!(l.code, PAM_AUTH_ERR, "{}", l.out);
    assert_eq!(status(&rig, u)["failures"], 1);
    disk.fill();
    rig.events();
    // On a full btrfs an in-place write of the state fails (ENOSPC): the
    // attempt cannot be counted, so its password is not checked at all,
    // and the right one does not show itself by reaching the code prompt.
    for password in ["wrong password", "another wrong one", PASSWORD] {
        let l = rig.login_with(
            "counted",
            u,
            &[password, "000000"],
            &[("rhost", "192.0.2.25")],
        );
        assert_eq!(l.code, PAM_AUTH_ERR, "{}", l.out);
        assert!(!l.out.contains("Verification code"), "{}", l.out);
    }
    assert_eq!(lines_in(&checked), 1, "passwords checked on the full disk");
    let ev = rig.module_events();
    assert_eq!(count(&ev, "lock_denied"), 3, "{ev:#?}");
    assert!(
        ev.iter().all(|e| e.get("reason") == Some("bad_state")),
        "{ev:#?}"
    );
}
