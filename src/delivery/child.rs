//! What sendmail and the SMS command are given, whoever started twostep:
//! the account they run as ([`Identity`]) and their resource limits
//! ([`LIMITS`]). Plain data and the account lookup; `spawn` applies both
//! between fork and exec, where nothing may allocate or take a lock, so
//! everything here is worked out before the fork.
#![forbid(unsafe_code)]

use crate::base::user::UserName;
use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit};
use nix::unistd::{Gid, Uid, User, getgrouplist};
use std::ffi::CString;
use std::io;

/// Who the program runs as: its real, effective and saved uid, the same
/// three gids, and exactly these supplementary groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub uid: Uid,
    pub gid: Gid,
    pub groups: Vec<Gid>,
}

impl Identity {
    /// uid and gid 0, no supplementary groups: the default.
    pub fn root() -> Identity {
        Identity {
            uid: Uid::from_raw(0),
            gid: Gid::from_raw(0),
            groups: Vec::new(),
        }
    }

    /// `name` as the account databases have it now: its uid, its primary
    /// gid, and every group that lists it (getgrouplist, the primary one
    /// included), as login(1) would give it. Looked up at each run, so that
    /// a changed membership counts at once; an account that does not exist
    /// is an error, never root.
    pub fn account(name: &UserName) -> Result<Identity, String> {
        let user = match User::from_name(name.as_str()) {
            Ok(Some(user)) => user,
            Ok(None) => return Err(format!("there is no account {name}")),
            Err(e) => return Err(format!("the account {name} could not be looked up: {e}")),
        };
        // A UserName holds no NUL byte.
        let c_name = CString::new(name.as_str())
            .map_err(|_| format!("the account name {name} holds a NUL byte"))?;
        let groups = getgrouplist(&c_name, user.gid)
            .map_err(|e| format!("the groups of the account {name} could not be read: {e}"))?;
        Ok(Identity {
            uid: user.uid,
            gid: user.gid,
            groups,
        })
    }
}

/// One resource limit the program gets, soft and hard.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub resource: Resource,
    /// As `prlimit(1)` and the manual pages name it.
    pub name: &'static str,
    pub soft: u64,
    pub hard: u64,
    /// Why this value, for a reviewer and the manual.
    pub why: &'static str,
}

const MIB: u64 = 1024 * 1024;
const UNLIMITED: u64 = RLIM_INFINITY;

/// Every resource limit Linux has (16), each set, soft and hard, in the
/// program before it runs: what the host or the caller of a setuid host
/// set (`ulimit -f 1; su victim`) never reaches it. Modelled on what the
/// kernel gives init (include/asm-generic/resource.h, INIT_RLIMITS), with
/// the reasons below where they differ. Kept in step with
/// twostep.toml(5) ("What the programs get").
pub const LIMITS: [Limit; 16] = [
    Limit {
        resource: Resource::RLIMIT_CPU,
        name: "CPU",
        soft: UNLIMITED,
        hard: UNLIMITED,
        why: "codes.timeout already kills the program's process group; a CPU limit would \
              only add a second, arbitrary cut",
    },
    Limit {
        resource: Resource::RLIMIT_FSIZE,
        name: "FSIZE",
        soft: UNLIMITED,
        hard: UNLIMITED,
        why: "MTAs append to spool files and logs of any size: a limit would lose mail \
              at random",
    },
    Limit {
        resource: Resource::RLIMIT_DATA,
        name: "DATA",
        soft: UNLIMITED,
        hard: UNLIMITED,
        why: "as the kernel gives init; Go or JVM based gateways reserve a large heap",
    },
    Limit {
        resource: Resource::RLIMIT_STACK,
        name: "STACK",
        soft: 8 * MIB,
        hard: UNLIMITED,
        why: "as the kernel gives init (_STK_LIM)",
    },
    Limit {
        resource: Resource::RLIMIT_CORE,
        name: "CORE",
        soft: 0,
        hard: 0,
        why: "the program holds a code in memory: no core file, and it cannot raise the \
              limit to write one",
    },
    Limit {
        resource: Resource::RLIMIT_RSS,
        name: "RSS",
        soft: UNLIMITED,
        hard: UNLIMITED,
        why: "as the kernel gives init (Linux ignores it)",
    },
    Limit {
        resource: Resource::RLIMIT_NPROC,
        name: "NPROC",
        soft: 4096,
        hard: 4096,
        why: "counts only a named account's processes (root's are exempt); the kernel \
              gives init half its thread limit, which varies with memory, and a fixed \
              value above a host's would need CAP_SYS_RESOURCE, which containers often \
              lack; 4,096 is below that on any host with 1 GiB",
    },
    Limit {
        resource: Resource::RLIMIT_NOFILE,
        name: "NOFILE",
        soft: 1024,
        hard: 4096,
        why: "as the kernel gives init (INR_OPEN_CUR, INR_OPEN_MAX); a host's million \
              would make some programs close a million descriptors at start",
    },
    Limit {
        resource: Resource::RLIMIT_MEMLOCK,
        name: "MEMLOCK",
        soft: 8 * MIB,
        hard: 8 * MIB,
        why: "as the kernel gives init since Linux 5.16 (MLOCK_LIMIT)",
    },
    Limit {
        resource: Resource::RLIMIT_AS,
        name: "AS",
        soft: UNLIMITED,
        hard: UNLIMITED,
        why: "as the kernel gives init; Go or JVM based gateways reserve large address \
              space",
    },
    Limit {
        resource: Resource::RLIMIT_LOCKS,
        name: "LOCKS",
        soft: UNLIMITED,
        hard: UNLIMITED,
        why: "as the kernel gives init; MTAs lock their spool files",
    },
    Limit {
        resource: Resource::RLIMIT_SIGPENDING,
        name: "SIGPENDING",
        soft: 4096,
        hard: 4096,
        why: "the kernel gives init half its thread limit, as for NPROC: fixed at 4,096 \
              for the same reason",
    },
    Limit {
        resource: Resource::RLIMIT_MSGQUEUE,
        name: "MSGQUEUE",
        soft: 819_200,
        hard: 819_200,
        why: "as the kernel gives init (MQ_BYTES_MAX)",
    },
    Limit {
        resource: Resource::RLIMIT_NICE,
        name: "NICE",
        soft: 0,
        hard: 0,
        why: "as the kernel gives init: a named account cannot raise its priority",
    },
    Limit {
        resource: Resource::RLIMIT_RTPRIO,
        name: "RTPRIO",
        soft: 0,
        hard: 0,
        why: "as the kernel gives init: a named account gets no real-time priority",
    },
    Limit {
        resource: Resource::RLIMIT_RTTIME,
        name: "RTTIME",
        soft: UNLIMITED,
        hard: UNLIMITED,
        why: "as the kernel gives init",
    },
];

/// `SCHED_OTHER`, the policy the program gets.
const SCHED_OTHER: i64 = 0;

/// `e`, the reason the program could not be started, with what this
/// process had to undo when that reason is a denied privilege (EPERM,
/// EACCES): a hard limit below [`LIMITS`] (raising it needs
/// CAP_SYS_RESOURCE) or a lowered priority (CAP_SYS_NICE), which some
/// containers withhold. The child can report only an errno; this process
/// still has the very values it handed down, so it reads them here, after
/// the failure.
pub(super) fn explain_refusal(e: io::Error) -> io::Error {
    if !matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES)) {
        return e;
    }
    let hard: Vec<u64> = LIMITS
        .iter()
        .map(|l| getrlimit(l.resource).map_or(l.hard, |(_, hard)| hard))
        .collect();
    let (nice, policy) = own_scheduling().unwrap_or((0, SCHED_OTHER));
    let needs = to_undo(&hard, nice, policy);
    if needs.is_empty() {
        return e;
    }
    io::Error::new(
        e.kind(),
        format!(
            "{e}; to start it this process must {}, which a container may not allow \
             (CAP_SYS_RESOURCE, CAP_SYS_NICE)",
            needs.join(" and ")
        ),
    )
}

/// This process's nice value and scheduling policy, from /proc/self/stat
/// (fields 19 and 41; the command name before them may hold anything but
/// ends at the last `)`).
fn own_scheduling() -> Option<(i64, i64)> {
    scheduling_in(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// Nice value and policy from the text of a /proc/PID/stat.
fn scheduling_in(stat: &str) -> Option<(i64, i64)> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse().ok();
    Some((field(19)?, field(41)?))
}

/// What the program's start has to undo, from what this process has: its
/// hard limit of each of [`LIMITS`] (in order), its nice value, its
/// scheduling policy.
fn to_undo(hard: &[u64], nice: i64, policy: i64) -> Vec<String> {
    let shown = |v: u64| {
        if v == UNLIMITED {
            "unlimited".to_string()
        } else {
            v.to_string()
        }
    };
    let mut needs: Vec<String> = LIMITS
        .iter()
        .zip(hard)
        .filter(|(limit, hard)| **hard < limit.hard)
        .map(|(limit, &hard)| {
            format!(
                "raise the hard limit {} from {} to {}",
                limit.name,
                shown(hard),
                shown(limit.hard)
            )
        })
        .collect();
    if nice > 0 {
        needs.push(format!("lower its nice value from {nice} to 0"));
    }
    if policy != SCHED_OTHER {
        needs.push(format!("leave scheduling policy {policy} for SCHED_OTHER"));
    }
    needs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::spawn::{RunError, run};
    use std::ffi::OsStr;
    use std::path::Path;
    use std::time::Duration;

    #[test]
    fn every_resource_is_set_once_soft_within_hard() {
        // Linux numbers its resources 0 to 15 (RLIM_NLIMITS is 16).
        let mut seen = [0u32; 16];
        for l in &LIMITS {
            let n = usize::try_from(l.resource as i64).unwrap();
            seen[n] += 1;
            assert!(l.soft <= l.hard, "{}: soft above hard", l.name);
            assert!(!l.why.is_empty(), "{}: no reason", l.name);
            let kernel_name = format!("{:?}", l.resource);
            assert_eq!(kernel_name, format!("RLIMIT_{}", l.name));
        }
        assert_eq!(seen, [1; 16], "each of the 16 resources exactly once");
    }

    #[test]
    fn the_limits_a_caller_could_use_against_the_program_are_lifted() {
        let of = |r: Resource| LIMITS.iter().find(|l| l.resource == r).unwrap();
        for r in [
            Resource::RLIMIT_CPU,
            Resource::RLIMIT_FSIZE,
            Resource::RLIMIT_DATA,
            Resource::RLIMIT_AS,
            Resource::RLIMIT_LOCKS,
        ] {
            assert_eq!((of(r).soft, of(r).hard), (UNLIMITED, UNLIMITED), "{r:?}");
        }
        assert_eq!(
            (
                of(Resource::RLIMIT_CORE).soft,
                of(Resource::RLIMIT_CORE).hard
            ),
            (0, 0)
        );
        assert!(of(Resource::RLIMIT_NOFILE).soft >= 1024);
    }

    #[test]
    fn a_refused_start_names_what_had_to_be_undone() {
        let as_table: Vec<u64> = LIMITS.iter().map(|l| l.hard).collect();
        assert!(to_undo(&as_table, 0, SCHED_OTHER).is_empty());
        // Higher hard limits are lowered, which needs no privilege.
        let higher = vec![nix::sys::resource::RLIM_INFINITY; LIMITS.len()];
        assert!(to_undo(&higher, -5, SCHED_OTHER).is_empty());

        let mut lowered = as_table.clone();
        let at = |name: &str| LIMITS.iter().position(|l| l.name == name).unwrap();
        lowered[at("NOFILE")] = 256;
        lowered[at("FSIZE")] = 0;
        assert_eq!(
            to_undo(&lowered, 19, i64::from(libc::SCHED_IDLE)),
            [
                "raise the hard limit FSIZE from 0 to unlimited",
                "raise the hard limit NOFILE from 256 to 4096",
                "lower its nice value from 19 to 0",
                "leave scheduling policy 5 for SCHED_OTHER",
            ]
        );
    }

    /// `sh -c SCRIPT` as `identity`, whose stderr (it exits 1) is returned.
    fn seen_by(identity: &Identity, script: &str) -> String {
        let args: [&OsStr; 2] = ["-c".as_ref(), script.as_ref()];
        match run(
            Path::new("/bin/sh"),
            &args,
            b"",
            Duration::from_secs(10),
            identity,
        ) {
            Err(RunError::Exit(1, stderr)) => stderr,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_program_is_wholly_the_identity_in_a_clean_place() {
        assert!(
            nix::unistd::Uid::effective().is_root(),
            "needs root, as the module runs"
        );
        // What the kernel says, not the shell (dash sets PWD at start).
        let script = r#"printf '%s|' "$(id -u) $(id -g) $(id -G)" "$(id -ru) $(id -rg)" \
            "$(umask)" "$(readlink /proc/$$/cwd)" "$(tr '\0' , < /proc/$$/environ)" \
            "$(ulimit -Sn) $(ulimit -Hn) $(ulimit -c) $(ulimit -Hc) $(ulimit -f)" >&2; exit 1"#;
        let nobody = Identity {
            uid: nix::unistd::Uid::from_raw(65534),
            gid: nix::unistd::Gid::from_raw(65534),
            groups: vec![nix::unistd::Gid::from_raw(65534)],
        };
        let clean = "022|/|HOME=/,PATH=/usr/sbin:/usr/bin:/sbin:/bin,|1024 4096 0 0 unlimited|";
        assert_eq!(
            seen_by(&nobody, script),
            format!("65534 65534 65534|65534 65534|0{clean}")
        );
        // Root: no supplementary groups (id -G then lists the gid alone).
        assert_eq!(
            seen_by(&Identity::root(), script),
            format!("0 0 0|0 0|0{clean}")
        );
    }

    #[test]
    fn nice_and_policy_are_read_from_proc_stat() {
        // A real process's, at nice 7 under SCHED_BATCH (3).
        let out = std::process::Command::new("nice")
            .args(["-n", "7", "chrt", "-b", "0", "cat", "/proc/self/stat"])
            .output()
            .unwrap();
        let real = String::from_utf8(out.stdout).unwrap();
        assert_eq!(scheduling_in(&real), Some((7, 3)), "{real}");
        // A command name may hold spaces and parentheses.
        let odd = real.replacen("(cat)", "(a) 1 2 (b)", 1);
        assert_eq!(scheduling_in(&odd), Some((7, 3)), "{odd}");
        assert_eq!(scheduling_in("1 (x) S 1"), None);
        assert!(own_scheduling().is_some());
    }

    #[test]
    fn root_has_no_groups_and_an_account_its_own() {
        assert_eq!(
            Identity::root(),
            Identity {
                uid: Uid::from_raw(0),
                gid: Gid::from_raw(0),
                groups: vec![]
            }
        );
        let root = Identity::account(&UserName::parse("root").unwrap()).unwrap();
        assert_eq!((root.uid.as_raw(), root.gid.as_raw()), (0, 0));
        assert!(root.groups.contains(&Gid::from_raw(0)), "{root:?}");
        let err = Identity::account(&UserName::parse("ts-kid-no-such-account").unwrap());
        assert_eq!(
            err.unwrap_err(),
            "there is no account ts-kid-no-such-account"
        );
    }
}
