//! The configuration, table by table.
#![forbid(unsafe_code)]
use super::*;
use std::net::IpAddr;

fn parse(text: &str) -> Result<Config, (Option<usize>, String)> {
    Config::parse(text)
}

#[test]
fn empty_file_is_all_defaults() {
    assert_eq!(parse("").unwrap(), Config::default());
}

#[test]
fn shipped_sample_is_exactly_the_defaults() {
    // conf/twostep.toml documents every key with its default value; if the
    // two drift apart, this fails.
    let sample = include_str!("../../conf/twostep.toml");
    assert_eq!(parse(sample).unwrap(), Config::default());
    let uncommented: String = sample
        .lines()
        .map(|l| {
            l.strip_prefix("# ")
                .filter(|r| {
                    r.split_once(" = ")
                        .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
                })
                .unwrap_or(l)
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let want = Config {
        issuer: Some("host.example.com".into()),
        policy: Policy {
            enroll_until: Some(parse_rfc3339("2027-01-31T00:00:00Z").unwrap()),
            ..Policy::default()
        },
        ..Config::default()
    };
    assert_eq!(parse(&uncommented).unwrap(), want, "{uncommented}");
}

#[test]
fn every_key_is_read() {
    let cfg = parse(
        r#"
secret_dir = "/s"
state_dir = "/t"
issuer = "ACME"
prompt = "Code: "
prompt_single = "Password+code: "
unenrolled = "enroll"
[totp]
digits = 8
period = 60
algorithm = "SHA512"
skew = 2
[lockout]
tiers = [{failures = 3, lock = "30s"}, {failures = 2, lock = "2d"}]
[log]
socket = "/run/x.sock"
[policy]
enroll_until = 2027-01-31T00:00:00+01:00
require_groups = ["staff"]
exempt_groups = ["svc"]
trusted_networks = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7"]
remember = "12h"
always_challenge_groups = ["sudo"]
console = "skip"
"#,
    )
    .unwrap();
    assert_eq!(cfg.secret_dir, PathBuf::from("/s"));
    assert_eq!(cfg.state_dir, PathBuf::from("/t"));
    assert_eq!(cfg.issuer.as_deref(), Some("ACME"));
    assert_eq!(cfg.prompt, "Code: ");
    assert_eq!(cfg.prompt_single, "Password+code: ");
    assert_eq!(cfg.unenrolled, Unenrolled::Enroll);
    assert_eq!(
        cfg.totp,
        TotpParams {
            digits: 8,
            period: 60,
            algorithm: Algorithm::SHA512,
            skew: 2
        }
    );
    assert_eq!(
        cfg.lockout.tiers,
        vec![
            Tier {
                failures: 3,
                lock: Duration::from_secs(30)
            },
            Tier {
                failures: 2,
                lock: Duration::from_secs(2 * DAY)
            }
        ]
    );
    assert_eq!(cfg.log_socket, PathBuf::from("/run/x.sock"));
    assert_eq!(
        cfg.policy.enroll_until,
        Some(parse_rfc3339("2027-01-30T23:00:00Z").unwrap())
    );
    assert_eq!(cfg.policy.require_groups, vec!["staff"]);
    assert_eq!(cfg.policy.exempt_groups, vec!["svc"]);
    assert_eq!(cfg.policy.trusted_networks.len(), 3);
    assert_eq!(cfg.policy.remember, Duration::from_secs(12 * 3600));
    assert_eq!(cfg.policy.always_challenge_groups, vec!["sudo"]);
    assert_eq!(cfg.policy.console, Console::Skip);
}

#[test]
fn errors_name_the_key_and_line() {
    // (document, line, words the message must contain)
    let cases: &[(&str, usize, &[&str])] = &[
        ("\n[totp]\ndigits = 9\n", 3, &["totp.digits", "6, 7 or 8"]),
        (
            "[totp]\ndigits = \"6\"\n",
            2,
            &["totp.digits", "invalid type"],
        ),
        ("[totp]\nperiod = 10\n", 2, &["totp.period", "15 to 300"]),
        ("[totp]\nskew = 11\n", 2, &["totp.skew", "0 to 10"]),
        ("[totp]\nskew = -1\n", 2, &["totp.skew"]),
        (
            "[totp]\nalgorithm = \"MD5\"\n",
            2,
            &["totp.algorithm", "SHA1"],
        ),
        ("\n\nfrobnicate = 1\n", 3, &["frobnicate"]),
        ("[totp]\ndigit = 6\n", 2, &["digit"]),
        ("unenrolled = \"maybe\"\n", 1, &["unenrolled", "deny"]),
        (
            "secret_dir = \"relative\"\n",
            1,
            &["secret_dir", "absolute"],
        ),
        (
            "[lockout]\ntiers = []\n",
            2,
            &["lockout.tiers", "at least one"],
        ),
        (
            "[lockout]\ntiers = [{failures = 5, lock = \"5\"}]\n",
            2,
            &["lock", "unit"],
        ),
        (
            "[lockout]\ntiers = [{failures = 0, lock = \"5m\"}]\n",
            2,
            &["failures", "1 to 1000"],
        ),
        ("[lockout]\ntiers = [{failures = 5}]\n", 2, &["lock"]),
        (
            "[policy]\nremember = \"forever\"\n",
            2,
            &["policy.remember", "duration"],
        ),
        (
            "[policy]\ntrusted_networks = [\"10.0.0.1/8\"]\n",
            2,
            &["policy.trusted_networks", "host bits"],
        ),
        (
            "[policy]\ntrusted_networks = [\"example.com\"]\n",
            2,
            &["policy.trusted_networks"],
        ),
        (
            "[policy]\nenroll_until = \"next week\"\n",
            2,
            &["policy.enroll_until", "RFC 3339"],
        ),
        ("[policy]\nconsole = \"maybe\"\n", 2, &["policy.console"]),
        ("issuer = \"a:b\"\n", 1, &["issuer", "':'"]),
        ("[totp\n", 1, &[]),
    ];
    for (doc, line, words) in cases {
        let (got_line, msg) = parse(doc).expect_err(doc);
        assert_eq!(got_line, Some(*line), "{doc:?}: {msg}");
        for w in *words {
            assert!(msg.contains(w), "{doc:?}: {msg:?} lacks {w:?}");
        }
        assert!(!msg.contains('\n'), "one line: {msg:?}");
    }
}

#[test]
fn missing_default_file_is_defaults_but_missing_named_file_is_an_error() {
    let p = Path::new("/nonexistent/twostep.toml");
    assert_eq!(Config::load(p, false).unwrap(), Config::default());
    let e = Config::load(p, true).unwrap_err();
    assert!(e.to_string().contains("cannot read"), "{e}");
}

#[test]
fn what_is_not_a_regular_file_is_refused_without_hanging() {
    let dir = std::env::temp_dir().join(format!("twostep-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("fifo.toml");
    let _ = std::fs::remove_file(&fifo);
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // Opening a FIFO for reading blocks until a writer comes, unless
    // O_NONBLOCK: run it where a hang shows as a timeout, not a stuck test.
    let (tx, rx) = std::sync::mpsc::channel();
    let (f, d) = (fifo.clone(), dir.clone());
    std::thread::spawn(move || {
        let _ = tx.send((Config::load(&f, true), Config::load(&d, true)));
    });
    let (from_fifo, from_dir) = rx
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("Config::load hung on a FIFO");
    for e in [from_fifo.unwrap_err(), from_dir.unwrap_err()] {
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn durations() {
    let ok = [
        ("30s", 30),
        ("5m", 300),
        ("1h", 3600),
        ("2d", 2 * DAY),
        ("1h30m", 5400),
        ("0s", 0),
    ];
    for (s, secs) in ok {
        assert_eq!(parse_duration(s), Ok(Duration::from_secs(secs)), "{s}");
    }
    for s in [
        "",
        "5",
        "m",
        "-5m",
        "5 parsecs",
        "1.5s",
        "500ms",
        " 5m",
        "5m ",
    ] {
        assert!(parse_duration(s).is_err(), "{s:?}");
    }
}

#[test]
fn rfc3339() {
    let base = parse_rfc3339("2027-01-31T00:00:00Z").unwrap();
    assert_eq!(
        base,
        humantime::parse_rfc3339("2027-01-31T00:00:00Z").unwrap()
    );
    assert_eq!(parse_rfc3339("2027-01-31T01:00:00+01:00").unwrap(), base);
    assert_eq!(parse_rfc3339("2027-01-30T23:30:00-00:30").unwrap(), base);
    for bad in [
        "2027-01-31",
        "2027-01-31T00:00:00",
        "tomorrow",
        "2027-01-31T00:00:00+25:00",
        "+01:00",
    ] {
        assert!(parse_rfc3339(bad).is_err(), "{bad}");
    }
}

#[test]
fn cidr_matching() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    // (network, address, inside?)
    let cases = [
        ("10.0.0.0/8", "10.1.2.3", true),
        ("10.0.0.0/8", "11.0.0.0", false),
        ("10.0.0.0/8", "::ffff:10.9.9.9", true),
        ("10.0.0.0/8", "::ffff:11.9.9.9", false),
        ("192.0.2.7", "192.0.2.7", true),
        ("192.0.2.7", "192.0.2.8", false),
        ("0.0.0.0/0", "203.0.113.9", true),
        ("0.0.0.0/0", "2001:db8::1", false),
        ("2001:db8::/32", "2001:db8:ffff::1", true),
        ("2001:db8::/32", "2001:db9::1", false),
        ("2001:db8::/32", "10.0.0.1", false),
        ("::/0", "2001:db8::1", true),
        ("::/0", "::ffff:10.0.0.1", false),
        ("::ffff:0:0/96", "10.0.0.1", false),
    ];
    for (net, addr, want) in cases {
        assert_eq!(
            Cidr::parse(net).unwrap().contains(ip(addr)),
            want,
            "{net} {addr}"
        );
    }
    for bad in [
        "10.0.0.0/33",
        "::/129",
        "10.0.0.0/",
        "10.0.0.0/+8",
        "10.0.0/8",
        "host",
        "10.0.0.1/24",
    ] {
        assert!(Cidr::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn the_outbound_fleet_and_self_service_keys_are_read() {
    let cfg = parse(
        r#"
[email]
sendmail = "/usr/lib/sendmail"
from = "mfa@example.com"
address = "{user}@example.com"
user = "mail-relay"
[sms]
command = "/usr/local/sbin/send-sms"
user = "sms-gateway"
[codes]
length = 8
valid = "10m"
resend_after = "2m"
max_per_hour = 3
timeout = "5s"
[lost_device]
method = "email"
valid = "30m"
[notify]
events = ["locked", "enrolled", "locked"]
copy_to = "security@example.com"
[store]
url = "rediss://valkey.example.com:6380"
user = "twostep-host"
password_file = "/etc/twostep/store.password"
ca_file = "/etc/twostep/ca.pem"
timeout = "250ms"
on_unavailable = "local"
prefix = "mfa:"
sentinel_user = "twostep-sentinel"
sentinel_password_file = "/etc/twostep/sentinel.password"
wait_replicas = 1
[self_service]
enabled = true
allow_disable = true
"#,
    )
    .unwrap();
    assert_eq!(cfg.email.sendmail, PathBuf::from("/usr/lib/sendmail"));
    assert_eq!(
        cfg.email.from.as_ref().map(|a| a.as_str()),
        Some("mfa@example.com")
    );
    assert_eq!(cfg.email.address, "{user}@example.com");
    assert_eq!(
        cfg.email.user.as_ref().map(|u| u.as_str()),
        Some("mail-relay")
    );
    assert_eq!(
        cfg.sms.command,
        Some(PathBuf::from("/usr/local/sbin/send-sms"))
    );
    assert_eq!(
        cfg.sms.user.as_ref().map(|u| u.as_str()),
        Some("sms-gateway")
    );
    let program = cfg.sms.program().unwrap();
    assert_eq!(
        (program.path, program.user.map(|u| u.as_str())),
        (Path::new("/usr/local/sbin/send-sms"), Some("sms-gateway"))
    );
    assert_eq!(
        cfg.codes,
        Codes {
            length: 8,
            valid: Duration::from_secs(600),
            resend_after: Duration::from_secs(120),
            max_per_hour: 3,
            timeout: Duration::from_secs(5),
        }
    );
    assert_eq!(cfg.lost_device.method, LostDeviceMethod::Email);
    assert_eq!(cfg.lost_device.valid, Duration::from_secs(1800));
    assert_eq!(
        cfg.notify.events,
        [NotifyEvent::Locked, NotifyEvent::Enrolled],
        "once each"
    );
    assert_eq!(
        cfg.notify.copy_to.as_ref().map(|a| a.as_str()),
        Some("security@example.com")
    );
    assert_eq!(
        cfg.store.url,
        StoreUrl::Tcp {
            host: "valkey.example.com".into(),
            port: 6380,
            tls: true
        }
    );
    assert_eq!(cfg.store.user, "twostep-host");
    assert_eq!(
        cfg.store.password_file,
        Some(PathBuf::from("/etc/twostep/store.password"))
    );
    assert_eq!(
        cfg.store.ca_file,
        Some(PathBuf::from("/etc/twostep/ca.pem"))
    );
    assert_eq!(cfg.store.timeout, Duration::from_millis(250));
    assert_eq!(cfg.store.on_unavailable, OnUnavailable::Local);
    assert_eq!(cfg.store.prefix, "mfa:");
    assert_eq!(cfg.store.sentinel_user, "twostep-sentinel");
    assert_eq!(
        cfg.store.sentinel_password_file,
        Some(PathBuf::from("/etc/twostep/sentinel.password"))
    );
    assert_eq!(cfg.store.wait_replicas, 1);
    assert_eq!(
        cfg.self_service,
        SelfService {
            enabled: true,
            allow_disable: true
        }
    );
}

#[test]
fn bad_outbound_and_fleet_values_name_their_key() {
    // (document, words the message must contain)
    let cases: &[(&str, &[&str])] = &[
        ("[email]\nfrom = \"a@b.com, c@d.com\"\n", &["email.from"]),
        (
            "[email]\nfrom = \"a@b.com\\nBcc: x@y.com\"\n",
            &["email.from"],
        ),
        ("[email]\nfrom = \"<a@b.com>\"\n", &["email.from"]),
        ("[email]\nfrom = \"-oQ@b.com\"\n", &["email.from"]),
        (
            "[email]\nsendmail = \"sendmail\"\n",
            &["email.sendmail", "absolute"],
        ),
        (
            "[email]\naddress = \"@example.com\"\n",
            &["email.address", "{user}"],
        ),
        (
            "[email]\naddress = \"{user}@exa mple.com\"\n",
            &["email.address"],
        ),
        (
            "[sms]\ncommand = \"send-sms\"\n",
            &["sms.command", "absolute"],
        ),
        ("[email]\nuser = \"-oQ\"\n", &["email.user", "'-'"]),
        ("[email]\nuser = \"../root\"\n", &["email.user", "root"]),
        ("[sms]\nuser = \"a b\"\n", &["sms.user", "letters, digits"]),
        ("[sms]\nuser = 0\n", &["sms.user", "string"]),
        ("[sms]\nusers = \"x\"\n", &["users"]),
        ("[codes]\nlength = 5\n", &["codes.length", "6 to 10"]),
        ("[codes]\nlength = 11\n", &["codes.length"]),
        ("[codes]\nvalid = \"10s\"\n", &["codes.valid"]),
        ("[codes]\nvalid = \"2h\"\n", &["codes.valid"]),
        ("[codes]\nmax_per_hour = 0\n", &["codes.max_per_hour"]),
        (
            "[codes]\nmax_per_hour = 31\n",
            &["codes.max_per_hour", "1 to 30"],
        ),
        ("[codes]\ntimeout = \"0s\"\n", &["codes.timeout"]),
        (
            "[codes]\nvalid = \"1m\"\nresend_after = \"2m\"\n",
            &["codes.resend_after", "codes.valid"],
        ),
        ("[lost_device]\nmethod = \"sms\"\n", &["lost_device.method"]),
        ("[lost_device]\nvalid = \"30s\"\n", &["lost_device.valid"]),
        (
            "[notify]\nevents = [\"login\"]\n",
            &["notify.events", "login"],
        ),
        (
            "[notify]\ncopy_to = \"not an address\"\n",
            &["notify.copy_to"],
        ),
        ("[store]\nurl = \"valkey:6379\"\n", &["store.url"]),
        (
            "[store]\nurl = \"redis://u:pw@h:1\"\n",
            &["store.url", "credentials"],
        ),
        ("[store]\ntimeout = \"1ms\"\n", &["store.timeout"]),
        ("[store]\ntimeout = \"500\"\n", &["store.timeout"]),
        (
            "[store]\non_unavailable = \"allow\"\n",
            &["store.on_unavailable"],
        ),
        ("[store]\nprefix = \"{x}\"\n", &["store.prefix"]),
        (
            "[store]\npassword_file = \"pw\"\n",
            &["store.password_file"],
        ),
        (
            "[store]\nsentinel_password_file = \"pw\"\n",
            &["store.sentinel_password_file"],
        ),
        (
            "[store]\nsentinel_user = \"a b\"\n",
            &["store.sentinel_user"],
        ),
        (
            "[store]\nwait_replicas = 17\n",
            &["store.wait_replicas", "0 (do not wait) to 16"],
        ),
        ("[store]\nwait_replicas = -1\n", &["store.wait_replicas"]),
        (
            "[store]\nurl = \"redis+sentinel://s1:26379\"\n",
            &["store.url", "SERVICE"],
        ),
        (
            "[self_service]\nenabled = \"yes\"\n",
            &["self_service.enabled"],
        ),
        ("[self_service]\nallow = true\n", &["allow"]),
    ];
    for (doc, words) in cases {
        let (_, message) = parse(doc).unwrap_err();
        for w in *words {
            assert!(message.contains(w), "{doc:?}: {message:?} lacks {w:?}");
        }
    }
}

#[test]
fn the_key_of_an_error_is_found_from_its_line() {
    // (document, line of the error) -> the key named
    let table: &[(&str, usize, Option<&str>)] = &[
        ("digits = 9\n", 1, Some("digits")),
        ("[totp]\ndigits = 9\n", 2, Some("totp.digits")),
        (
            "[totp]\n\n  digits   = 9 # comment\n",
            3,
            Some("totp.digits"),
        ),
        ("totp.digits = 9\n", 1, Some("totp.digits")),
        (
            "[policy]\ntrusted_networks = [\n  \"10.0.0.1/8\",\n]\n",
            3,
            Some("policy.trusted_networks"),
        ),
        (
            "[policy]\nexempt_groups = [\"a=b\",\n \"c\"]\n",
            3,
            Some("policy.exempt_groups"),
        ),
        ("[[weird]]\nkey = 1\n", 2, Some("weird.key")),
        ("[ store ]\nurl = \"x\"\n", 2, Some("store.url")),
        ("[totp]\n", 1, None),
        ("", 1, None),
    ];
    for (doc, line, want) in table {
        assert_eq!(key_at(doc, *line).as_deref(), *want, "{doc:?}");
    }
}
