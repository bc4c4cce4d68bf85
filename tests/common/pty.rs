//! A program on a pseudo-terminal, driven like a person at a console: wait
//! for a prompt, type a line. util-linux `script` owns the pty; we talk to it
//! through pipes, so no unsafe code and no extra crate.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Pty {
    child: Child,
    stdin: Option<ChildStdin>,
    output: Arc<Mutex<Vec<u8>>>,
    /// How much of the output `expect` has consumed.
    seen: usize,
}

fn shell_quote(arg: &str) -> String {
    format!("'{}'", arg.replace('\'', r"'\''"))
}

impl Pty {
    /// Runs `argv` with a pty as its controlling terminal and stdio.
    pub fn spawn(argv: &[&str]) -> Pty {
        let line = argv
            .iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ");
        let mut child = Command::new("script")
            // quiet, flush at once, pass on the exit code, run this command
            .args(["-q", "-f", "-e", "-c", &line, "/dev/null"])
            .env("TERM", "dumb")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("script (util-linux)");
        let mut stdout = child.stdout.take().unwrap();
        let output = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&output);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        Pty {
            stdin: child.stdin.take(),
            child,
            output,
            seen: 0,
        }
    }

    /// Everything the program wrote so far.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// Waits until one of `patterns` appears after what was already
    /// matched; returns its index, or None at the deadline or when the
    /// program has ended without printing any of them.
    pub fn expect(&mut self, patterns: &[&str], limit: Duration) -> Option<usize> {
        let deadline = Instant::now() + limit;
        loop {
            let exited = self.child.try_wait().ok().flatten().is_some();
            {
                let out = self.output.lock().unwrap();
                let text = String::from_utf8_lossy(&out[self.seen.min(out.len())..]).into_owned();
                let hit = patterns
                    .iter()
                    .enumerate()
                    .filter_map(|(i, p)| text.find(p).map(|at| (at, i, p.len())))
                    .min();
                if let Some((at, i, len)) = hit {
                    // `at` is in the lossily decoded text; prompts are ASCII.
                    self.seen += text[..at + len].len();
                    return Some(i);
                }
            }
            if Instant::now() > deadline {
                return None;
            }
            if exited {
                // Let the reader catch the last bytes once more.
                std::thread::sleep(Duration::from_millis(100));
                let out = self.output.lock().unwrap();
                let text = String::from_utf8_lossy(&out[self.seen.min(out.len())..]).into_owned();
                return patterns.iter().position(|p| text.contains(p));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `what` appears, or fails the test with what was shown.
    pub fn expect_or_fail(&mut self, what: &str, limit: Duration) {
        assert_eq!(
            self.expect(&[what], limit),
            Some(0),
            "waiting for {what:?}:\n{}",
            self.output()
        );
    }

    /// Types `text` and Enter.
    pub fn send_line(&mut self, text: &str) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = stdin.write_all(text.as_bytes());
            let _ = stdin.write_all(b"\r");
            let _ = stdin.flush();
        }
    }

    /// Waits for the program to end; kills it at the deadline.
    pub fn wait(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return Some(st.code().unwrap_or(-1));
            }
            if Instant::now() > deadline {
                self.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        // script puts the program in a session of its own, so killing
        // script's group misses it, and closing the pty would hand it an
        // EOF to act on (login(1) would ask PAM again, with no name).
        // SIGKILL every descendant first: nothing runs after that.
        let mut pids = descendants(self.child.id());
        pids.push(self.child.id());
        let _ = Command::new("kill")
            .arg("-KILL")
            .args(pids.iter().map(u32::to_string))
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every process below `root`, from /proc.
fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            // The field after the ")" that ends the command name.
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(
            parent_of
                .iter()
                .filter(|&&(_, pp)| pp == p)
                .map(|&(c, _)| c),
        );
        i += 1;
    }
    found.remove(0);
    found
}

impl Drop for Pty {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.kill();
        }
        self.stdin = None;
    }
}
