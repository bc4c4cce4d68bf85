//! Timing: a remote client must not tell an unknown user, an unenrolled user
//! and an enrolled user with a wrong code apart, by what it is shown or by
//! how long the module takes.
//!
//! What is timed: real logins through the real module and libpam, in pamdrive
//! processes that
//! - look the name up before PAM, as sshd does (`--lookup`). The first NSS
//!   miss in a process loads the NSS modules listed after `files`
//!   (libnss_systemd with `passwd: files systemd`: 0.4 ms on the 2-core VM);
//!   sshd pays that in its own lookup, before any module runs. A driver
//!   that skipped it charged the host's cost to the module: that was the
//!   unknown user's extra half millisecond (issue 21, item 10);
//! - read the clock themselves (`--clock`): from pam_authenticate to the
//!   prompt, and from the answer to the result, without process start-up or
//!   pipes in between.
//!
//! To the prompt, the module looks up a name that has no secret file (an
//! enrolled user's file names the account, and needs no lookup). For a name
//! that is not an account that lookup is an NSS miss, which costs the host's
//! account database more than a hit: libnss_systemd, when `files` has said
//! no, probes its userdb directories (60 to 140 us here), or with systemd
//! running asks it. That extra, as the driver measures it in the same
//! process just before (a miss's lookup less a hit's, in the same round), is
//! taken off the unknown name's time; the module's own work is what is
//! judged.
//!
//! How it decides: the samples are taken in rounds, each logging every case
//! in once, in an order that rotates from round to round, so that the
//! machine's drift and the login just before weigh on every case alike.
//! Each case's time is paired with the enrolled user's of the same round,
//! and the median of these paired differences is judged through its
//! sign-test confidence interval (99.9 %; distribution-free, so neither the
//! shape of the noise nor a stalled sample matters) against a tolerance
//! below one fdatasync (a skipped or an extra durable write shows as one):
//! - the interval wholly beyond the tolerance: a difference, proven: fail;
//! - wholly within it: the same within the tolerance, proven: pass;
//! - neither: undecided; more rounds, up to a bound, and undecided still at
//!   the bound: fail, saying that the machine was too noisy to tell.
//!
//! Noise widens the interval: it can leave a run undecided, but neither
//! turns a difference into a pass nor an equality into a difference.
//!
//! `TWOSTEP_TIMING_INJECT=CASE:PHASE:US[,...]` (CASE one of unknown,
//! unenrolled, enrolled, nocodes; PHASE prompt or result) makes that case
//! take US microseconds longer (pamdrive's `--delay-prompt` and
//! `--delay-result`), to see the test fail on a known difference.
//! `TWOSTEP_TIMING_COLD_NSS=1` drives the module without the host's lookup,
//! as this test did before: the unknown name then pays glibc's first miss.
//! `TWOSTEP_TIMING_MODULE=PATH` times that build of the module instead of
//! the debug one `cargo build` left (`sh link/release.sh` makes the one
//! that is installed: target/release/libpam_twostep.so). The debug build is
//! the default, and the stricter: its own code runs about ten times slower,
//! so a difference in the module's work shows ten times larger, while what
//! the kernel, NSS and the store take is the same.

mod common;
use common::redis::{Redis, store_section, tcp_url};
use common::*;
use std::io::{BufRead, BufReader, Write};
use std::time::Instant;

/// One of the logins compared.
struct Case {
    label: &'static str,
    user: &'static str,
    /// The `reason` of its auth_fail record.
    reason: &'static str,
    /// Whether the module's lookup of the name is an NSS miss.
    nss_miss: bool,
}

const CASES: [Case; 5] = [
    Case {
        label: "unknown",
        user: "ts-time-nobody",
        reason: "bad_user",
        nss_miss: true,
    },
    Case {
        label: "unenrolled",
        user: "ts-time-unenrolled",
        reason: "no_secret",
        nss_miss: false,
    },
    Case {
        label: "enrolled",
        user: "ts-time-enrolled",
        reason: "bad_code",
        nss_miss: false,
    },
    // Enrolled without recovery codes (enrolled at login, or codes never
    // made): a recovery-shaped answer must cost it the same argon2 work.
    Case {
        label: "nocodes",
        user: "ts-time-nocodes",
        reason: "bad_code",
        nss_miss: false,
    },
    // Eight authenticators (the most a secret file holds) against the
    // reference's one: judging an answer must not tell how many a user
    // has (issue 24).
    Case {
        label: "eight",
        user: "ts-time-eight",
        reason: "bad_code",
        nss_miss: false,
    },
];

/// The case every other is paired with.
const REFERENCE: usize = 2;
/// The case whose lookup is an NSS hit (an account without a secret file).
const NSS_HIT: usize = 1;

/// Compared to the prompt. The user without recovery codes is compared
/// after the answer only: its smaller secret file is read sooner (telling
/// "has recovery codes" from "has none", not whether a user exists or is
/// enrolled), and what it must not do is answer sooner.
const TO_PROMPT: [usize; 2] = [0, 1];
/// Compared from the answer to the result. The user with eight
/// authenticators only here: its larger file is read sooner before the
/// prompt (by a few microseconds), telling that it is larger, not what it
/// holds; what must not differ is the time to judge an answer.
const TO_RESULT: [usize; 4] = [0, 1, 3, 4];

/// An answer of each shape the module treats differently, and how many
/// rounds to take of it: first, and at most. Each undecided look doubles
/// the rounds taken (a noisier machine needs about four times the rounds
/// for an interval half as wide), so that a quiet machine decides in one
/// look and a busy one in a few.
struct Shape {
    name: &'static str,
    answer: fn() -> String,
    first: usize,
    max: usize,
    /// The tolerance after the answer as a fraction of the reference's
    /// median there, when that is more than the write-based one.
    relative: f64,
}

const SHAPES: [Shape; 3] = [
    Shape {
        name: "junk",
        answer: junk,
        first: 120,
        max: 1920,
        relative: 0.0,
    },
    // A code of the right length: the window of codes is computed.
    Shape {
        name: "6 digits",
        answer: wrong_code,
        first: 120,
        max: 1920,
        relative: 0.0,
    },
    // Shaped like a recovery code: an argon2 hash is computed, tens of
    // milliseconds whose spread on a busy machine is milliseconds, far above
    // a write's cost. What this shape shows is that every case computes one
    // (a missing or an extra hash is a whole computation), so its tolerance
    // after the answer is a quarter of one.
    Shape {
        name: "recovery-shaped",
        answer: recovery_shaped,
        first: 30,
        max: 240,
        relative: 0.25,
    },
];

fn junk() -> String {
    "00000x".into()
}

fn recovery_shaped() -> String {
    "abcde-fghjk".into()
}

/// The confidence level of each interval is 1 - ALPHA.
const ALPHA: f64 = 0.001;

/// The tolerance is half a fdatasync as measured during the run (a path
/// that skips or adds a durable write differs by a whole one), within these
/// bounds, in microseconds: the floor for disks where a flush costs next to
/// nothing (tmpfs), where no write can be seen and what is left to judge is
/// the module's own work, about 1 ms here (a debug build); the ceiling so
/// that a difference of 300 us or more is never within it, however slow the
/// disk is under load.
const TOLERANCE_FLOOR: f64 = 100.0;
const TOLERANCE_CEILING: f64 = 200.0;

/// One login's intervals, in microseconds, and what the client saw.
struct Sample {
    to_prompt: f64,
    to_result: f64,
    /// What a lookup of the name took in the same process, just before.
    lookup: f64,
    out: String,
}

/// One round: every case once, and what the disk took then.
struct Round {
    samples: Vec<Sample>,
    fsync: f64,
}

/// Run alone (tests/run-all.sh runs it after the other tests): timing
/// beside parallel tests measures the neighbours.
/// The timing tests of this file, one at a time: the test harness runs
/// them in parallel threads, and each would measure the other (under load,
/// the first failed 4 runs of 4 beside the second).
static ALONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn alone() -> std::sync::MutexGuard<'static, ()> {
    ALONE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
#[ignore]
fn unknown_unenrolled_and_wrong_code_are_indistinguishable() {
    let _alone = alone();
    let [unknown, unenrolled, enrolled, no_codes, eight] = CASES.each_ref().map(|c| c.user);
    ensure_user(unenrolled, None);
    ensure_user(enrolled, None);
    ensure_user(no_codes, None);
    ensure_user(eight, None);
    let _ = std::process::Command::new("userdel").arg(unknown).status();
    let driver = Driver::from_env();
    // The state in state_dir (the default), then in a store shared by a
    // fleet, over TCP with an ACL user and its password, as a fleet has it:
    // there an account's state, read before the prompt, costs a connection
    // and round trips.
    let redis = Redis::start("timing", &[]);
    let stores = [
        ("state_dir", String::new()),
        (
            "shared store",
            store_section(&redis, &tcp_url(&redis), "timing", ""),
        ),
    ];
    let mut complaints = Vec::new();
    for (name, section) in &stores {
        complaints.extend(judge_store(&driver, name, section));
    }
    assert!(complaints.is_empty(), "{}", complaints.join("\n"));
}

/// Times the cases with the state where `section` says, prints the table,
/// and returns what is wrong.
fn judge_store(driver: &Driver, name: &str, section: &str) -> Vec<String> {
    let began = Instant::now();
    let [_, unenrolled, enrolled, no_codes, eight] = CASES.each_ref().map(|c| c.user);
    let mut rig = Rig::new(
        &format!("timing-{}", name.replace(' ', "-")),
        &format!("[lockout]\ntiers = [{{failures = 1000, lock = \"1s\"}}]\n{section}"),
    );
    let module = timed_module();
    rig.service(
        "timed",
        &format!(
            "auth required {} config={}\n",
            module.display(),
            rig.config.display()
        ),
    );
    rig.enroll(enrolled, SECRET);
    std::fs::write(
        rig.secret_path(no_codes),
        format!("secret = \"{SECRET}\"\n"),
    )
    .unwrap();
    std::fs::set_permissions(
        rig.secret_path(no_codes),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    // The reference's file with its secret as the last of eight
    // authenticators, the same recovery codes (the code parameters, which
    // enroll writes at the top, go in each authenticator of a list).
    let reference = std::fs::read_to_string(rig.secret_path(enrolled)).unwrap();
    let mut text: String = reference
        .lines()
        .filter(|l| {
            !["secret", "digits", "period", "algorithm"]
                .iter()
                .any(|key| l.starts_with(key))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    for i in 0..8u8 {
        let key = match i {
            7 => SECRET.to_string(),
            _ => char::from(b'A' + i).to_string().repeat(32),
        };
        text.push_str(&format!(
            "[[authenticator]]\nname = \"d{i}\"\nsecret = \"{key}\"\n"
        ));
    }
    std::fs::write(rig.secret_path(eight), text).unwrap();
    std::fs::set_permissions(
        rig.secret_path(eight),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();

    // Warm up the page cache, the state files and the decoy.
    for _ in 0..3 {
        for case in 0..CASES.len() {
            driver.login(&rig, case, "00000x");
        }
    }
    rig.events();
    let probe = rig.state_dir.join(".timing-probe");
    let probe = std::fs::File::create(&probe).unwrap();

    let mut rounds: Vec<Vec<Round>> = SHAPES.iter().map(|_| Vec::new()).collect();
    let mut next: Vec<usize> = SHAPES.iter().map(|s| s.first).collect();
    let judged = loop {
        for (s, shape) in SHAPES.iter().enumerate().filter(|&(s, _)| next[s] > 0) {
            for _ in 0..next[s] {
                let r = rounds[s].len();
                rounds[s].push(driver.round(&rig, &probe, r, &(shape.answer)()));
            }
            check_batch(&mut rig, shape.name, &rounds[s], next[s]);
            // Every login fails, and a batch is at most 960 of them: the
            // count is cleared before the 1,000 of the tier lock the account.
            for user in [unenrolled, enrolled, no_codes, eight] {
                assert!(rig.cli(&["unlock", user]).status.success());
            }
            rig.events();
        }
        let judged = Judgement::of(&rounds);
        next = judged.more_rounds(&rounds);
        if next.iter().all(|&n| n == 0) {
            break judged;
        }
    };
    drop(probe);
    let _ = std::fs::remove_file(rig.state_dir.join(".timing-probe"));

    let table = judged.table(&rounds, began.elapsed().as_secs());
    eprintln!("== {}, the state in {name}\n{table}", module.display());
    judged
        .all()
        .filter(|j| j.verdict != Verdict::Same)
        .map(|j| format!("{name}: {}", j.complaint()))
        .collect()
}

// ---- one answer (`preauth single`) ------------------------------------------

/// The user of the one-answer cases.
const SINGLE_USER: &str = "ts-sg-time";
const SINGLE_PASSWORD: &str = "timing pass 7";

/// One answer's cases: what is typed, given the code of the moment, and
/// the case it is paired with: one of the same shape (an answer without a
/// code is not judged as a code, and its sender knows that it has none).
const SINGLE_CASES: [SingleCase; 5] = [
    SingleCase(
        "wrong code",
        |c| format!("{SINGLE_PASSWORD}{}", other_code(c)),
        0,
    ),
    SingleCase("wrong password", |c| format!("timing pass 8{c}"), 0),
    SingleCase(
        "both wrong",
        |c| format!("timing pass 8{}", other_code(c)),
        0,
    ),
    SingleCase("wrong password alone", |_| "timing pass 8".to_string(), 3),
    SingleCase("password alone", |_| SINGLE_PASSWORD.to_string(), 3),
];

/// A name, the answer typed given the code of the moment, and the case it
/// is paired with.
struct SingleCase(&'static str, fn(&str) -> String, usize);

/// A code of the right length that is not `code`.
fn other_code(code: &str) -> String {
    format!(
        "{:06}",
        (code.parse::<u32>().unwrap() + 500_000) % 1_000_000
    )
}

/// One answer, the password and the code together (`preauth single`, then
/// the real pam_unix): a wrong code, a wrong password (with the right
/// code), both wrong, and the right password without its code must show
/// the client the same and take the same time, from pam_authenticate to
/// its result (less the time the client took to type). Judged as above:
/// rounds of every case in a rotating order, each paired with its
/// reference in the same round (the wrong code; for an answer without a
/// code, a wrong password without one), the median difference's interval
/// against the tolerance. The user's password is hashed with 1,000 rounds of
/// sha512crypt instead of yescrypt: pam_unix does the same work either
/// way, and a cheap hash keeps its spread from hiding the module's.
/// `TWOSTEP_TIMING_INJECT_SINGLE=US` makes the wrong password take US
/// microseconds longer, to see the test fail on a known difference.
#[test]
#[ignore]
fn one_answer_wrong_code_and_wrong_password_are_indistinguishable() {
    let _alone = alone();
    ensure_user(SINGLE_USER, None);
    let mut chpasswd = std::process::Command::new("chpasswd")
        .args(["-c", "SHA512", "-s", "1000"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(
        chpasswd.stdin.take().unwrap(),
        "{SINGLE_USER}:{SINGLE_PASSWORD}"
    )
    .unwrap();
    assert!(chpasswd.wait().unwrap().success());
    let began = Instant::now();
    let mut rig = Rig::new(
        "timing-single",
        "[lockout]\ntiers = [{failures = 1000, lock = \"1s\"}]\n",
    );
    rig.service("timed", &single_stack(&timed_module(), &rig.config));
    rig.enroll(SINGLE_USER, SECRET);
    let inject = std::env::var("TWOSTEP_TIMING_INJECT_SINGLE").ok();
    let login = |case: usize| -> (f64, String) {
        let code = oath_code(SECRET, 0);
        let items = [("rhost", "203.0.113.9"), ("tty", "ssh")];
        let mut cmd = rig.login_command(&[], "timed", SINGLE_USER, &items);
        cmd.args(["--clock", "--lookup"]);
        if let (1, Some(us)) = (case, &inject) {
            cmd.args(["--delay-result", us]);
        }
        let (clock, seen) = drive(cmd, &(SINGLE_CASES[case].1)(&code));
        let at = |what: &str| reading(&clock, what, &seen) as f64 / 1000.0;
        let module_time = (at("prompt") - at("start")) + (at("result") - at("answered"));
        (module_time, seen)
    };
    // Warm up the page cache and the state file.
    for _ in 0..3 {
        for case in 0..SINGLE_CASES.len() {
            login(case);
        }
    }
    let probe_path = rig.state_dir.join(".timing-probe");
    let probe = std::fs::File::create(&probe_path).unwrap();
    let mut rounds: Vec<(Vec<f64>, f64)> = Vec::new();
    let (first, max) = (120, 1920);
    let mut next = first;
    let judged = loop {
        for _ in 0..next {
            let r = rounds.len();
            // Every login fails: the count is cleared before it locks.
            if r.is_multiple_of(100) {
                assert!(rig.cli(&["unlock", SINGLE_USER]).status.success());
            }
            let fsync = fdatasync_cost(&probe);
            let mut times = vec![0.0; SINGLE_CASES.len()];
            let mut shown = vec![String::new(); SINGLE_CASES.len()];
            for k in 0..SINGLE_CASES.len() {
                let i = (r + k) % SINGLE_CASES.len();
                (times[i], shown[i]) = login(i);
            }
            for (i, out) in shown.iter().enumerate() {
                assert_eq!(
                    out, &shown[0],
                    "{} shows the client something else",
                    SINGLE_CASES[i].0
                );
                assert!(out.contains("RESULT: 7 "), "{out}");
            }
            rounds.push((times, fsync));
        }
        let fsync = paired::median(&rounds.iter().map(|r| r.1).collect::<Vec<_>>());
        let tolerance = (fsync / 2.0).clamp(TOLERANCE_FLOOR, TOLERANCE_CEILING);
        let judged: Vec<Judged> = (0..SINGLE_CASES.len())
            .filter(|&c| SINGLE_CASES[c].2 != c)
            .map(|c| {
                let reference = SINGLE_CASES[c].2;
                let d = rounds.iter().map(|(t, _)| t[c] - t[reference]).collect();
                let what = format!(
                    "one answer, pam_authenticate less typing: {} - {}",
                    SINGLE_CASES[c].0, SINGLE_CASES[reference].0
                );
                Judged::of(what, d, tolerance)
            })
            .collect();
        let undecided = judged.iter().any(|j| j.verdict == Verdict::Undecided);
        if !undecided || rounds.len() >= max {
            break judged;
        }
        next = rounds.len().min(max - rounds.len());
    };
    drop(probe);
    let _ = std::fs::remove_file(&probe_path);
    for (c, SingleCase(name, _, _)) in SINGLE_CASES.iter().enumerate() {
        let t: Vec<f64> = rounds.iter().map(|(t, _)| t[c]).collect();
        eprintln!(
            "{name:15} {} rounds, median {:.0} us",
            rounds.len(),
            paired::median(&t)
        );
    }
    for j in &judged {
        eprintln!("{}", j.line());
    }
    eprintln!("{} s", began.elapsed().as_secs());
    let ev = rig.events();
    assert_eq!(count(&ev, "auth_ok"), 0, "{ev:#?}");
    let complaints: Vec<String> = judged
        .iter()
        .filter(|j| j.verdict != Verdict::Same)
        .map(Judged::complaint)
        .collect();
    assert!(complaints.is_empty(), "{}", complaints.join("\n"));
}

/// The build of the module timed: `TWOSTEP_TIMING_MODULE`, or the debug one.
fn timed_module() -> std::path::PathBuf {
    std::env::var_os("TWOSTEP_TIMING_MODULE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(module)
}

/// How the logins are driven: pamdrive's flags per case.
struct Driver {
    flags: Vec<Vec<String>>,
}

impl Driver {
    fn from_env() -> Driver {
        let mut flags: Vec<Vec<String>> =
            CASES.iter().map(|_| vec!["--clock".to_string()]).collect();
        if std::env::var_os("TWOSTEP_TIMING_COLD_NSS").is_none() {
            for f in &mut flags {
                f.push("--lookup".into());
            }
        }
        let inject = std::env::var("TWOSTEP_TIMING_INJECT").unwrap_or_default();
        for item in inject.split(',').filter(|i| !i.is_empty()) {
            let parts: Vec<&str> = item.split(':').collect();
            let (case, flag, us) = match parts.as_slice() {
                [case, "prompt", us] => (case, "--delay-prompt", us),
                [case, "result", us] => (case, "--delay-result", us),
                _ => panic!("TWOSTEP_TIMING_INJECT: {item:?} is not CASE:prompt|result:US"),
            };
            let i = CASES
                .iter()
                .position(|c| c.label == *case)
                .unwrap_or_else(|| panic!("TWOSTEP_TIMING_INJECT: no case {case:?}"));
            flags[i].extend([flag.to_string(), us.to_string()]);
            eprintln!("injected: {case} {flag} {us}");
        }
        Driver { flags }
    }

    /// One round: fdatasync measured, then every case once, the
    /// first of them rotating with `r`. The login before leaves the machine
    /// busy (an exiting process, 19 MiB of argon2 memory freed), which must
    /// not weigh on one case only.
    fn round(&self, rig: &Rig, probe: &std::fs::File, r: usize, answer: &str) -> Round {
        let fsync = fdatasync_cost(probe);
        let mut samples: Vec<Option<Sample>> = CASES.iter().map(|_| None).collect();
        for k in 0..CASES.len() {
            let i = (r + k) % CASES.len();
            samples[i] = Some(self.login(rig, i, answer));
        }
        Round {
            samples: samples.into_iter().map(Option::unwrap).collect(),
            fsync,
        }
    }

    fn login(&self, rig: &Rig, case: usize, answer: &str) -> Sample {
        let items = [("rhost", "203.0.113.9"), ("tty", "ssh")];
        let mut cmd = rig.login_command(&[], "timed", CASES[case].user, &items);
        cmd.args(&self.flags[case]);
        let (clock, seen) = drive(cmd, answer);
        let at = |what: &str| reading(&clock, what, &seen);
        let us = |ns: i64| ns as f64 / 1000.0;
        let lookup = if clock.contains_key("lookup-start") {
            us(at("lookup-end") - at("lookup-start"))
        } else {
            0.0
        };
        Sample {
            to_prompt: us(at("prompt") - at("start")),
            to_result: us(at("result") - at("answered")),
            lookup,
            out: seen,
        }
    }
}

/// Runs a pamdrive login with `--clock`, typing `answer` at every prompt:
/// its clock readings (by name, in nanoseconds) and what it printed.
fn drive(
    mut cmd: std::process::Command,
    answer: &str,
) -> (std::collections::HashMap<String, i64>, String) {
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    let mut clock = std::collections::HashMap::new();
    for line in out.lines() {
        let line = line.unwrap();
        if let Some(reading) = line.strip_prefix("CLOCK: ") {
            let (what, ns) = reading.split_once(' ').unwrap();
            clock.insert(what.to_string(), ns.parse::<i64>().unwrap());
            continue;
        }
        seen.push_str(&line);
        seen.push('\n');
        if line.starts_with("PROMPT_") {
            writeln!(stdin, "{answer}").unwrap();
        }
    }
    drop(stdin);
    child.wait().unwrap();
    (clock, seen)
}

/// A clock reading, which must be there.
fn reading(clock: &std::collections::HashMap<String, i64>, what: &str, seen: &str) -> i64 {
    *clock
        .get(what)
        .unwrap_or_else(|| panic!("no {what} reading: {seen}"))
}

/// What the client sees is the same, byte for byte, and the records differ
/// only in the user, the reason and the count.
fn check_batch(rig: &mut Rig, shape: &str, rounds: &[Round], batch: usize) {
    let first = &rounds[0].samples[0].out;
    for (case, c) in CASES.iter().enumerate() {
        for r in &rounds[rounds.len() - batch..] {
            assert_eq!(
                &r.samples[case].out, first,
                "{shape}: {} sees something else",
                c.user
            );
        }
    }
    let ev = rig.events();
    assert_eq!(ev.len(), CASES.len() * batch, "{ev:#?}");
    let keys = |e: &Event| e.keys().iter().map(|k| k.to_string()).collect::<Vec<_>>();
    let mut seen_keys = None;
    for c in &CASES {
        let e = ev
            .iter()
            .find(|e| e.get("user") == Some(c.user))
            .unwrap_or_else(|| panic!("{shape}: no record of {}: {ev:#?}", c.user));
        assert_eq!(e.get("reason"), Some(c.reason), "{shape}: {}", c.user);
        let k = keys(e);
        assert_eq!(seen_keys.get_or_insert_with(|| k.clone()), &k, "{shape}");
    }
}

/// One fdatasync of a small write, in microseconds.
fn fdatasync_cost(probe: &std::fs::File) -> f64 {
    use std::os::unix::fs::FileExt;
    probe.write_all_at(&[7; 512], 0).unwrap();
    let t = Instant::now();
    probe.sync_data().unwrap();
    t.elapsed().as_secs_f64() * 1e6
}

/// Every comparison, judged on the rounds so far.
struct Judgement {
    tolerance: f64,
    fsync: f64,
    to_prompt: Vec<Judged>,
    to_result: Vec<Vec<Judged>>,
}

impl Judgement {
    fn of(rounds: &[Vec<Round>]) -> Judgement {
        let all = || rounds.iter().flatten();
        let fsync = paired::median(&all().map(|r| r.fsync).collect::<Vec<_>>());
        let tolerance = (fsync / 2.0).clamp(TOLERANCE_FLOOR, TOLERANCE_CEILING);
        let to_prompt = TO_PROMPT
            .iter()
            .map(|&c| {
                let nss = |r: &Round| {
                    if CASES[c].nss_miss {
                        r.samples[c].lookup - r.samples[NSS_HIT].lookup
                    } else {
                        0.0
                    }
                };
                let d: Vec<f64> = all()
                    .map(|r| r.samples[c].to_prompt - nss(r) - r.samples[REFERENCE].to_prompt)
                    .collect();
                let nss = paired::median(&all().map(nss).collect::<Vec<_>>());
                let what = format!(
                    "to prompt, all shapes: {} - {} (less an NSS miss's cost over a hit's, {nss:.0} us)",
                    CASES[c].label, CASES[REFERENCE].label
                );
                Judged::of(what, d, tolerance)
            })
            .collect();
        let to_result = SHAPES
            .iter()
            .zip(rounds)
            .map(|(shape, rounds)| {
                let reference: Vec<f64> = rounds
                    .iter()
                    .map(|r| r.samples[REFERENCE].to_result)
                    .collect();
                let tolerance = tolerance.max(shape.relative * paired::median(&reference));
                TO_RESULT
                    .iter()
                    .map(|&c| {
                        let d: Vec<f64> = rounds
                            .iter()
                            .map(|r| r.samples[c].to_result - r.samples[REFERENCE].to_result)
                            .collect();
                        let what = format!(
                            "answer to result, {}: {} - {}",
                            shape.name, CASES[c].label, CASES[REFERENCE].label
                        );
                        Judged::of(what, d, tolerance)
                    })
                    .collect()
            })
            .collect();
        Judgement {
            tolerance,
            fsync,
            to_prompt,
            to_result,
        }
    }

    fn all(&self) -> impl Iterator<Item = &Judged> {
        self.to_prompt.iter().chain(self.to_result.iter().flatten())
    }

    /// Rounds to take next, per shape: as many again (up to its bound) for
    /// each shape with an undecided comparison after the answer, and for the
    /// cheapest shape left when one to the prompt (which pools every shape)
    /// is undecided. None when all is decided or nothing may grow.
    fn more_rounds(&self, rounds: &[Vec<Round>]) -> Vec<usize> {
        let more = |s: usize| rounds[s].len().min(SHAPES[s].max - rounds[s].len());
        let undecided = |v: &[Judged]| v.iter().any(|j| j.verdict == Verdict::Undecided);
        let mut next: Vec<usize> = (0..SHAPES.len())
            .map(|s| {
                if undecided(&self.to_result[s]) {
                    more(s)
                } else {
                    0
                }
            })
            .collect();
        if undecided(&self.to_prompt)
            && next.iter().all(|&n| n == 0)
            && let Some(s) = (0..SHAPES.len()).find(|&s| more(s) > 0)
        {
            next[s] = more(s);
        }
        next
    }

    fn table(&self, rounds: &[Vec<Round>], secs: u64) -> String {
        let mut t = format!(
            "fdatasync here: median {:.0} us; tolerance +-{:.0} us (half of it, within {TOLERANCE_FLOOR:.0}..{TOLERANCE_CEILING:.0}); {:.1} % intervals; {secs} s\n",
            self.fsync,
            self.tolerance,
            (1.0 - ALPHA) * 100.0
        );
        for (shape, rounds) in SHAPES.iter().zip(rounds) {
            for (c, case) in CASES.iter().enumerate() {
                let p: Vec<f64> = rounds.iter().map(|r| r.samples[c].to_prompt).collect();
                let q: Vec<f64> = rounds.iter().map(|r| r.samples[c].to_result).collect();
                t.push_str(&format!(
                    "{:16} {:11} {:4} rounds  to prompt {:7.0} us  answer to result {:8.0} us (medians)\n",
                    shape.name,
                    case.label,
                    rounds.len(),
                    paired::median(&p),
                    paired::median(&q)
                ));
            }
        }
        for j in self.all() {
            t.push_str(&j.line());
            t.push('\n');
        }
        t
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Same,
    Differ,
    Undecided,
}

/// One comparison: the paired differences' median, its interval, the verdict.
struct Judged {
    what: String,
    n: usize,
    median: f64,
    interval: Option<(f64, f64)>,
    tolerance: f64,
    verdict: Verdict,
}

impl Judged {
    fn of(what: String, d: Vec<f64>, tolerance: f64) -> Judged {
        let interval = paired::median_interval(&d, ALPHA);
        Judged {
            what,
            n: d.len(),
            median: paired::median(&d),
            interval,
            tolerance,
            verdict: paired::verdict(interval, tolerance),
        }
    }

    fn interval_text(&self) -> String {
        match self.interval {
            Some((lo, hi)) => format!("[{lo:+.0}, {hi:+.0}] us"),
            None => "none (too few rounds)".into(),
        }
    }

    fn line(&self) -> String {
        format!(
            "{}: {} pairs, median {:+.0} us, interval {}, tolerance +-{:.0} us: {:?}",
            self.what,
            self.n,
            self.median,
            self.interval_text(),
            self.tolerance,
            self.verdict
        )
    }

    fn complaint(&self) -> String {
        match self.verdict {
            Verdict::Differ => format!(
                "{}: differ by {:+.0} us, interval {} wholly beyond the tolerance of +-{:.0} us",
                self.what,
                self.median,
                self.interval_text(),
                self.tolerance
            ),
            _ => format!(
                "{}: undecided after {} pairs (median {:+.0} us, interval {} against a tolerance of +-{:.0} us): the machine was too noisy to tell; run it again when it is quieter",
                self.what,
                self.n,
                self.median,
                self.interval_text(),
                self.tolerance
            ),
        }
    }
}

/// The statistics of paired differences, pure.
mod paired {
    use super::Verdict;

    pub fn median(v: &[f64]) -> f64 {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        match s.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => s[n / 2],
            n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
        }
    }

    /// The sign test's confidence interval for the median of `d`, at a
    /// level of at least 1 - `alpha`: the k-th smallest and the k-th largest
    /// difference, k the largest with P(B < k) <= alpha / 2 for B ~
    /// Binomial(n, 1/2). It holds whatever the distribution (each
    /// difference falls on either side of the median with probability one
    /// half); None when there are too few differences for that level.
    pub fn median_interval(d: &[f64], alpha: f64) -> Option<(f64, f64)> {
        let k = sign_rank(d.len(), alpha)?;
        let mut s = d.to_vec();
        s.sort_by(f64::total_cmp);
        Some((s[k - 1], s[d.len() - k]))
    }

    /// That k, 1-based.
    pub fn sign_rank(n: usize, alpha: f64) -> Option<usize> {
        let n_f = n as f64;
        let mut ln_choose = 0.0;
        let mut below = 0.0;
        let mut k = 0;
        for j in 0..=n / 2 {
            if j > 0 {
                ln_choose += (n_f - j as f64 + 1.0).ln() - (j as f64).ln();
            }
            below += (ln_choose - n_f * std::f64::consts::LN_2).exp();
            if below > alpha / 2.0 {
                break;
            }
            k = j + 1;
        }
        (k >= 1).then_some(k)
    }

    /// A difference proven beyond the tolerance, equality within it proven,
    /// or neither.
    pub fn verdict(interval: Option<(f64, f64)>, tolerance: f64) -> Verdict {
        match interval {
            Some((lo, hi)) if lo > tolerance || hi < -tolerance => Verdict::Differ,
            Some((lo, hi)) if lo >= -tolerance && hi <= tolerance => Verdict::Same,
            _ => Verdict::Undecided,
        }
    }
}

mod statistics {
    //! The decision rule on its own, against known answers and synthetic
    //! noise: these run with the ordinary tests.
    use super::Verdict::{self, Differ, Same, Undecided};
    use super::paired::*;

    #[test]
    fn sign_ranks_match_the_binomial_tables() {
        // (n, alpha, k): exact binomial tail sums.
        let table = [
            (5, 0.05, None),
            (6, 0.05, Some(1)),
            (10, 0.05, Some(2)),
            (20, 0.05, Some(6)),
            (11, 0.001, Some(1)),
            (30, 0.001, Some(6)),
            (100, 0.001, Some(34)),
            (120, 0.001, Some(42)),
            (480, 0.001, Some(204)),
        ];
        for (n, alpha, k) in table {
            assert_eq!(sign_rank(n, alpha), k, "n={n} alpha={alpha}");
        }
        assert_eq!(sign_rank(10, 0.001), None);
    }

    #[test]
    fn verdicts() {
        let table: [(Option<(f64, f64)>, Verdict); 9] = [
            (Some((-10.0, 10.0)), Same),
            (Some((-50.0, 50.0)), Same),
            (Some((50.1, 300.0)), Differ),
            (Some((-300.0, -50.1)), Differ),
            (Some((40.0, 60.0)), Undecided),
            (Some((-60.0, -40.0)), Undecided),
            (Some((-60.0, 60.0)), Undecided),
            (Some((-600.0, 700.0)), Undecided),
            (None, Undecided),
        ];
        for (interval, want) in table {
            assert_eq!(verdict(interval, 50.0), want, "{interval:?}");
        }
    }

    /// A deterministic noise source: xorshift64*.
    struct Noise(u64);

    impl Noise {
        fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
        }

        /// A login's time on a busy machine: a spread of +-150 us, and one
        /// time in ten a stall of up to 5 ms.
        fn login(&mut self) -> f64 {
            let spread = 300.0 * (self.uniform() - 0.5);
            let stall = if self.uniform() < 0.1 {
                5000.0 * self.uniform()
            } else {
                0.0
            };
            1000.0 + spread + stall
        }
    }

    fn pairs(noise: &mut Noise, n: usize, shift: f64) -> Vec<f64> {
        (0..n)
            .map(|_| noise.login() + shift - noise.login())
            .collect()
    }

    #[test]
    fn the_interval_covers_the_true_median() {
        // At 95 %, out of 2,000 runs of 60 pairs with no difference, the
        // interval must miss 0 in about 5 % at most.
        let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
        let missed = (0..2000)
            .filter(|_| {
                let (lo, hi) = median_interval(&pairs(&mut noise, 60, 0.0), 0.05).unwrap();
                lo > 0.0 || hi < 0.0
            })
            .count();
        assert!(missed <= 130, "{missed} of 2000 missed");
    }

    #[test]
    fn noise_neither_passes_a_difference_nor_fails_an_equality() {
        let mut noise = Noise(42);
        let judge = |d: Vec<f64>| verdict(median_interval(&d, 0.001), 190.0);
        for _ in 0..50 {
            // Enough pairs: the truth.
            assert_eq!(judge(pairs(&mut noise, 480, 0.0)), Same);
            assert_eq!(judge(pairs(&mut noise, 480, 400.0)), Differ);
            assert_eq!(judge(pairs(&mut noise, 480, -400.0)), Differ);
            // Too few for this noise: undecided, never the wrong answer.
            for shift in [0.0, 400.0] {
                let v = judge(pairs(&mut noise, 12, shift));
                assert!(
                    v == Undecided || (v == Same) == (shift == 0.0),
                    "{shift}: {v:?}"
                );
            }
            // A difference at the tolerance itself is never called the same.
            assert_ne!(judge(pairs(&mut noise, 480, 190.0)), Same);
        }
    }
}
