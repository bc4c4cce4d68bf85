//! What `twostep check` asks of a shared store: that it answers, takes the
//! credentials, and lets this host run every script and command the module
//! and the commands use.
#![forbid(unsafe_code)]

use super::super::StoreError;
use super::super::valkey::{Script, scripts};
use super::SharedStore;

impl SharedStore {
    /// What `twostep check` reports about the store: it answers, accepts
    /// the credentials, and lets this host run every script and command the
    /// module and the commands use (on a key no user can have, removed
    /// after). Empty when all is well.
    pub fn problems(&self) -> Vec<String> {
        let key = self.key(".check");
        let rkey = self.recovery_key(".check");
        let s = scripts::all();
        // (what it is for, the script, its keys, its arguments)
        type Check<'a> = (&'a str, &'a Script, Vec<&'a [u8]>, Vec<&'a [u8]>);
        let checks: [Check; 9] = [
            (
                "counting an attempt",
                &s.begin,
                vec![&key],
                vec![b"1000000:1", b""],
            ),
            (
                "recording a success",
                &s.succeed,
                vec![&key, &rkey],
                vec![
                    b"",
                    b"",
                    b"",
                    b"check",
                    b"192.0.2.1",
                    b"1",
                    b"0",
                    b"16",
                    b"",
                    b"",
                ],
            ),
            (
                "giving an attempt back",
                &s.give_back,
                vec![&key],
                vec![b"0"],
            ),
            (
                "sending a code",
                &s.issue,
                vec![&key],
                vec![b"3", b"00", b"1", b"0", b"30", b""],
            ),
            ("withdrawing a code", &s.withdraw, vec![&key], vec![b"00"]),
            (
                "counting a confirmation code",
                &s.count_send,
                vec![&key],
                vec![b"30", b"0"],
            ),
            ("spending a code", &s.spend, vec![&key], vec![b"3", b"00"]),
            (
                "holding back lock notices",
                &s.lock_notice,
                vec![&key],
                vec![b"600"],
            ),
            ("unlocking", &s.unlock, vec![&key], vec![b"0"]),
        ];
        let mut problems = Vec::new();
        for (what, script, keys, args) in &checks {
            if let Err(e) = self.run(script, keys, args) {
                problems.push(format!("store: {what}: {e}"));
                if problems.len() == 1
                    && !matches!(
                        e,
                        StoreError::Unavailable {
                            reason: "refused",
                            ..
                        }
                    )
                {
                    // Not reachable, or not these credentials: nothing more to learn.
                    return problems;
                }
            }
        }
        let mut read: Vec<&[u8]> = vec![b"HMGET", &key];
        read.extend(scripts::FIELDS.iter().map(|f| f.as_bytes()));
        let commands: [(&str, Vec<&[u8]>); 3] = [
            ("reading a state (HMGET)", read),
            (
                "listing the users (SCAN, for twostep status)",
                vec![b"SCAN", b"0", b"MATCH", &key, b"COUNT", b"1"],
            ),
            (
                "removing a state (DEL, for twostep reset)",
                vec![b"DEL", &key, &rkey],
            ),
        ];
        for (what, args) in &commands {
            if let Err(e) = self.with(|c, deadline| c.call(args, deadline)) {
                problems.push(format!("store: {what}: {e}"));
            }
        }
        // The check's writes, acknowledged as a login's success must be.
        if let Err(e) = self.wait_for_replicas() {
            problems.push(format!(
                "store: waiting for replicas (WAIT, for store.wait_replicas): {e}; \
                 every successful login would be denied"
            ));
        }
        problems
    }
}
