//! A private redis-server for the fleet tests (Debian 12 ships Redis 7.0;
//! Valkey speaks the same protocol): on a unix socket and a loopback port,
//! with the ACL users a fleet uses, never the system's own server.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "fleet store pass-W0rd";

/// The commands a host's ACL user needs: the scripts and the read, and what
/// the scripts call (Redis checks those against the caller's ACL too).
pub const HOST_COMMANDS: &[&str] = &[
    "+evalsha", "+eval", "+hmget", "+hget", "+hset", "+hdel", "+sadd", "+time",
];
/// What `twostep status` and `twostep reset` need besides.
pub const ADMIN_COMMANDS: &[&str] = &["+scan", "+del"];

pub struct Redis {
    child: Child,
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub port: u16,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One `--user` rule list for redis-server: the name, `on`, the password,
/// the key pattern, then `rules` (commands).
pub fn acl_user(name: &str, password: &str, rules: &[&str]) -> Vec<String> {
    [name, "on", &format!(">{password}"), "~twostep:*"]
        .iter()
        .chain(rules)
        .map(|r| r.to_string())
        .collect()
}

impl Redis {
    /// Users: `twostep-host` (HOST_COMMANDS and ADMIN_COMMANDS on
    /// `~twostep:*`) and `twostep-noeval` (no scripts), both with PASSWORD.
    pub fn start(name: &str, extra: &[&str]) -> Redis {
        let mut host = vec!["resetchannels", "-@all"];
        host.extend(HOST_COMMANDS.iter().chain(ADMIN_COMMANDS));
        Redis::start_with_users(
            name,
            &[
                acl_user("twostep-host", PASSWORD, &host),
                acl_user("twostep-noeval", PASSWORD, &["+hmget"]),
            ],
            extra,
        )
    }

    /// On a unix socket and a free loopback port, with these ACL users
    /// (each from [`acl_user`]); `default` stays open for the tests' own
    /// housekeeping. `extra` comes last, so it may override (`--bind`) or
    /// add (TLS) settings.
    pub fn start_with_users(name: &str, users: &[Vec<String>], extra: &[&str]) -> Redis {
        let dir = PathBuf::from(format!("/tmp/twostep-redis-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let socket = dir.join("redis.sock");
        let port = free_port();
        let mut server = Command::new("redis-server");
        server
            .arg("--unixsocket")
            .arg(&socket)
            .args([
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .arg("--dir")
            .arg(&dir);
        for user in users {
            server.arg("--user").args(user);
        }
        let child = server
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server (packages.sh test installs it)");
        let redis = Redis {
            child,
            dir,
            socket,
            port,
        };
        let ready = Instant::now() + Duration::from_secs(10);
        while !redis.socket.exists() {
            assert!(Instant::now() < ready, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        redis
    }

    /// Kills the server and reaps it: gone when this returns.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(ok.success(), "kill {sig}");
    }

    /// A password file of root's with this mode (the module wants 0600).
    pub fn password_file(&self, text: &str, mode: u32) -> PathBuf {
        let path = self.dir.join(format!("password-{mode:o}"));
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    /// redis-cli on the unix socket as the default user (housekeeping).
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .arg("-s")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `[store]` section for this server: `url` (unix or tcp), the host's
/// ACL user and its password file, a prefix unique to `name`.
pub fn store_section(redis: &Redis, url: &str, name: &str, extra: &str) -> String {
    let password = redis.password_file(PASSWORD, 0o600);
    format!(
        "[store]\nurl = \"{url}\"\nuser = \"twostep-host\"\npassword_file = \"{}\"\nprefix = \"twostep:{name}:\"\n{extra}\n",
        password.display()
    )
}

pub fn unix_url(redis: &Redis) -> String {
    format!("unix://{}", redis.socket.display())
}

pub fn tcp_url(redis: &Redis) -> String {
    format!("redis://127.0.0.1:{}", redis.port)
}

/// Whether `path` exists (for state files that must not be made).
pub fn exists(path: &Path) -> bool {
    path.symlink_metadata().is_ok()
}

/// redis-server's arguments for TLS on `tls_port` with the certificates
/// [`make_certs`] left in `certs` (clients need no certificate).
pub fn tls_args(certs: &Path, tls_port: u16) -> Vec<String> {
    let c = |f: &str| certs.join(f).display().to_string();
    [
        "--tls-port".to_string(),
        tls_port.to_string(),
        "--tls-cert-file".into(),
        c("server.crt"),
        "--tls-key-file".into(),
        c("server.key"),
        "--tls-ca-cert-file".into(),
        c("ca.crt"),
        "--tls-auth-clients".into(),
        "no".into(),
    ]
    .to_vec()
}

/// A test CA (`ca.crt`), another CA (`other-ca.crt`), and a server
/// certificate and key (`server.crt`, `server.key`) for localhost and
/// 127.0.0.1 signed by the first, made with openssl(1) in `dir`.
pub fn make_certs(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    for ca in ["ca", "other-ca"] {
        let key = format!("{ca}.key");
        let crt = format!("{ca}.crt");
        let subj = format!("/CN=twostep test {ca}");
        let mut args = vec![
            "req", "-x509", "-days", "2", "-subj", &subj, "-keyout", &key, "-out", &crt,
        ];
        args.extend(ec);
        run(&args);
    }
    let mut args = vec![
        "req",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ];
    args.extend(ec);
    run(&args);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.crt",
    ]);
    for f in ["ca.key", "other-ca.key", "server.key"] {
        std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}
