//! The password and the code in one answer through OpenSSH's `password`
//! method: a private sshd with `PasswordAuthentication yes`,
//! keyboard-interactive off, and the stack with `preauth single`; the real
//! `ssh` client types the answer at its own password prompt. Right
//! password and code, a wrong code, a wrong password, a replay, and a
//! recovery code.

mod common;
#[path = "common/sshd.rs"]
mod sshd;

use common::*;
use sshd::{Answers, Sshd};

const PASSWORD: &str = "e2e pass-W0rd";

fn setup(test: &str, user: &str) -> (Rig, Sshd, Vec<String>) {
    ensure_user(user, Some(PASSWORD));
    let mut rig = Rig::new(
        &format!("ssh-sg-{test}"),
        "[lockout]\ntiers = [{failures = 50, lock = \"1m\"}]",
    );
    let codes = rig.enroll_with_recovery_codes(user, SECRET);
    // sshd keeps the first value of a setting: these win.
    let sshd = Sshd::start_full(
        &format!("sg-{test}"),
        "PasswordAuthentication yes\nKbdInteractiveAuthentication no\n",
        "",
        &sshd::single_stack(&rig.config),
    );
    rig.events();
    (rig, sshd, codes)
}

/// `ssh` with the password method only, `answer` typed at its prompt.
fn ssh(sshd: &Sshd, user: &str, answer: &str, marker: &str) -> sshd::SshLogin {
    sshd.ssh_with(
        user,
        &Answers {
            password: Some(answer),
            code: None,
        },
        marker,
        &["-o", "PreferredAuthentications=password"],
    )
}

#[test]
fn one_answer_over_sshs_password_method() {
    let user = "ts-sg-ssh";
    let (mut rig, sshd, recovery) = setup("pw", user);
    fresh_step(10);
    let code = oath_code(SECRET, 0);

    let ok = ssh(&sshd, user, &format!("{PASSWORD}{code}"), "twostep-sg-ok");
    assert!(ok.logged_in("twostep-sg-ok"), "{ok:#?}\n{}", sshd.log());
    assert_eq!(ok.prompts.len(), 1, "{ok:#?}");
    assert!(ok.prompts[0].ends_with("'s password: "), "{ok:#?}");
    assert!(sshd.log().contains("Accepted password"), "{}", sshd.log());
    let ev = rig.module_events();
    let ok_ev: Vec<_> = ev.iter().filter(|e| e.event() == "auth_ok").collect();
    assert_eq!(ok_ev.len(), 1, "{ev:#?}");
    assert_eq!(ok_ev[0].get("rhost"), Some("127.0.0.1"));
    assert_eq!(ok_ev[0].get("service"), Some(sshd.service.as_str()));

    // The same answer again: the code is spent.
    let replay = ssh(
        &sshd,
        user,
        &format!("{PASSWORD}{code}"),
        "twostep-sg-replay",
    );
    assert!(!replay.logged_in("twostep-sg-replay"), "{replay:#?}");

    // A wrong code, and a wrong password with a good code: both refused,
    // and the client is shown the same.
    let next = oath_code(SECRET, 1);
    let wrong = format!(
        "{:06}",
        (next.parse::<u32>().unwrap() + 500_000) % 1_000_000
    );
    let wrong_code = ssh(&sshd, user, &format!("{PASSWORD}{wrong}"), "twostep-sg-wc");
    let wrong_password = ssh(&sshd, user, &format!("not it{next}"), "twostep-sg-wp");
    for l in [&wrong_code, &wrong_password] {
        assert!(
            !l.logged_in("twostep-sg-wc") && !l.logged_in("twostep-sg-wp"),
            "{l:#?}"
        );
        assert_ne!(l.code, Some(0));
    }
    assert_eq!(wrong_code.stderr, wrong_password.stderr);
    let ev = rig.module_events();
    assert_eq!(count(&ev, "auth_ok"), 0, "{ev:#?}");
    assert_eq!(rig.status_json(user)["failures"], 3, "{ev:#?}");

    // A recovery code in place of the code.
    let rec = ssh(
        &sshd,
        user,
        &format!("{PASSWORD}{}", recovery[0]),
        "twostep-sg-rec",
    );
    assert!(rec.logged_in("twostep-sg-rec"), "{rec:#?}\n{}", sshd.log());
    let ev = rig.module_events();
    let ok_ev: Vec<_> = ev.iter().filter(|e| e.event() == "auth_ok").collect();
    assert_eq!(ok_ev.len(), 1, "{ev:#?}");
    assert_eq!(ok_ev[0].get("method"), Some("recovery"));
    // The good code that came with the wrong password still works once.
    let late = ssh(&sshd, user, &format!("{PASSWORD}{next}"), "twostep-sg-next");
    assert!(
        late.logged_in("twostep-sg-next"),
        "{late:#?}\n{}",
        sshd.log()
    );
}
