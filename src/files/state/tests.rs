//! The state file as a whole: named authenticators' steps, the decoy, and
//! files of the earlier format rewritten when locked. The slots are
//! slot.rs's tests.
#![forbid(unsafe_code)]
use super::*;

#[test]
fn each_authenticator_has_its_own_step_and_a_ninth_pushes_out_the_oldest() {
    let name = |n: &str| crate::files::secret::DeviceName::parse(n).unwrap();
    let (a, b) = (StepKey::of(&name("phone")), StepKey::of(&name("tablet")));
    assert_eq!(StepKey::of(&name("default")), StepKey::Default);
    assert_ne!(a, b);
    let mut s = UserState::default();
    s.accept_step(a, 100);
    s.accept_step(StepKey::Default, 50);
    // (key, step) -> step_of after
    let table = [
        (a, 90, 100),
        (a, 130, 130),
        (b, 10, 10),
        (StepKey::Default, 40, 50),
    ];
    for (key, t, want) in table {
        s.accept_step(key, t);
        assert_eq!(s.step_of(key), want);
    }
    assert_eq!(s.last_step_time, 50);
    assert_eq!(s.device_steps.len(), 2);
    s.forget_step(a);
    assert_eq!((s.step_of(a), s.step_of(b)), (0, 10));
    for i in 0..MAX_DEVICE_STEPS as u64 {
        s.accept_step(StepKey::Named(DeviceId::of(&format!("d{i}"))), 1000 + i);
    }
    // b (step 10) was the oldest.
    assert_eq!(s.device_steps.len(), MAX_DEVICE_STEPS);
    assert_eq!(s.step_of(b), 0);
    assert_eq!(s.step_of(StepKey::Named(DeviceId::of("d0"))), 1000);
    let id = DeviceId::of("phone");
    assert_eq!(DeviceId::from_hex(&id.hex()), Some(id));
    for bad in [
        "",
        "00",
        "zz00000000000000",
        "00000000000000000",
        "ü0000000000000",
    ] {
        assert_eq!(DeviceId::from_hex(bad), None, "{bad}");
    }
}
use std::os::unix::fs::PermissionsExt;

#[test]
fn the_decoy_is_read_and_written_as_an_account_is_and_nothing_else_appears() {
    let dir = std::env::temp_dir().join(format!("twostep-state-decoy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Before any unknown name was refused: nothing to read, nothing made.
    decoy_read(&dir).unwrap();
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    // After: a state file like an account's, read by the same code.
    decoy_write(&dir, false);
    decoy_write(&dir, true);
    decoy_read(&dir).unwrap();
    assert_eq!(
        read_at(&decoy_path(&dir)).unwrap(),
        Some(UserState::default())
    );
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [".decoy"]);
    // Damaged, it is an error as an account's would be (the caller
    // ignores it).
    std::fs::write(decoy_path(&dir), b"not a state file").unwrap();
    assert!(decoy_read(&dir).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_first_named_step_leaves_no_slot_of_the_earlier_format() {
    let dir = std::env::temp_dir().join(format!("twostep-state-v6-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let user = UserName::parse("alice").unwrap();
    let magics = || -> Vec<String> {
        let image = std::fs::read(path_for(&dir, &user)).unwrap();
        image
            .chunks(slot::SLOT)
            .map(|s| String::from_utf8_lossy(&s[..8]).into_owned())
            .collect()
    };
    let tablet = StepKey::Named(DeviceId::of("tablet"));
    let mut locked = lock(&dir, &user).unwrap();
    let mut state = locked.state.clone();
    // (the step accepted, or a new secret) -> the slots' magics after
    let table = [
        (
            Some((StepKey::Default, 1_800_000_000)),
            ["TWOSTEP5", "TWOSTEP5"],
        ),
        (Some((tablet, 1_800_000_030)), ["TWOSTEP6", "TWOSTEP6"]),
        (
            Some((StepKey::Default, 1_800_000_060)),
            ["TWOSTEP6", "TWOSTEP6"],
        ),
        // A new secret forgets the named steps: the newer slot is the
        // earlier format again, which the previous release reads.
        (None, ["TWOSTEP5", "TWOSTEP6"]),
    ];
    for (step, want) in table {
        match step {
            Some((key, t)) => state.accept_step(key, t),
            None => state.device_steps.clear(),
        }
        locked.commit(state.clone()).unwrap();
        let mut got = magics();
        got.sort();
        let mut want = want.map(String::from);
        want.sort();
        assert_eq!(got, want, "{step:?}");
        let image = std::fs::read(path_for(&dir, &user)).unwrap();
        assert_eq!(decode_image(&image).unwrap(), state);
    }
    drop(locked);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_file_of_the_earlier_format_is_read_then_rewritten_when_locked() {
    let dir = std::env::temp_dir().join(format!("twostep-state-v3-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let user = UserName::parse("alice").unwrap();
    let path = path_for(&dir, &user);
    let old = UserState {
        counters: Counters {
            failures: 3,
            tier_failures: 3,
            tier: 0,
            locked_until: 0,
        },
        last_step_time: 1_800_000_000,
        ..UserState::default()
    };
    let image = [
        slot::encode_v3(&old, 5),
        slot::encode_v3(&UserState::default(), 4),
    ]
    .concat();
    std::fs::write(&path, &image).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    // Read as it is.
    assert_eq!(read(&dir, &user).unwrap(), Some(old.clone()));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), FILE_SIZE / 2);
    // Locked for an update: rewritten in this format, state kept.
    let mut locked = lock(&dir, &user).unwrap();
    assert_eq!(locked.state, old);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), FILE_SIZE);
    let next = UserState {
        sends: vec![1_800_000_001],
        ..old.reset()
    };
    locked.commit(next.clone()).unwrap();
    drop(locked);
    assert_eq!(read(&dir, &user).unwrap(), Some(next));
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["alice"]);
    std::fs::remove_dir_all(&dir).unwrap();
}
