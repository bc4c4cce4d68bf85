//! The slots: round trips, every bit flip and truncation detected, the newer
//! valid slot current, the earlier formats read.
#![forbid(unsafe_code)]
use super::*;

fn sample() -> UserState {
    UserState {
        counters: Counters {
            failures: 7,
            tier_failures: 2,
            tier: 1,
            locked_until: 1_900_000_000,
        },
        last_step_time: 1_800_000_000,
        last_success: 1_799_999_999,
        remembered: vec![
            Remembered {
                addr: "192.0.2.1".parse().unwrap(),
                until: 5,
                seen: 0,
            },
            Remembered {
                addr: "2001:db8::1".parse().unwrap(),
                until: 6,
                seen: 1_799_999_900,
            },
        ],
        epoch: 0x0102_0304,
        sent: Some(SentCode {
            purpose: Purpose::LostDevice,
            hash: [0xab; 32],
            expires: 1_800_000_900,
            sent_at: 1_800_000_000,
        }),
        sends: vec![1_799_999_000, 1_800_000_000],
        lock_notice_at: 1_799_999_500,
        lock_notices_held: 3,
        device_steps: Vec::new(),
    }
}

fn named(i: u8) -> DeviceStep {
    DeviceStep {
        id: DeviceId([i; 8]),
        step_time: 1_800_000_000 + u64::from(i),
    }
}

#[test]
fn named_steps_make_a_twostep6_slot_and_only_they_do() {
    // (state) -> magic written, decodes to itself
    let full = UserState {
        remembered: sample()
            .remembered
            .iter()
            .cycle()
            .take(MAX_REMEMBERED)
            .copied()
            .collect(),
        sends: (0..MAX_SENDS as u64).collect(),
        ..sample()
    };
    let table = [
        (sample(), MAGIC),
        (
            UserState {
                device_steps: vec![named(1)],
                ..sample()
            },
            MAGIC_V6,
        ),
        (
            UserState {
                device_steps: (1..=8).map(named).collect(),
                ..UserState::default()
            },
            MAGIC_V6,
        ),
        // Every list at its longest still fits a slot.
        (
            UserState {
                device_steps: (1..=8).map(named).collect(),
                ..full
            },
            MAGIC_V6,
        ),
    ];
    for (state, magic) in table {
        let b = encode(&state, 9);
        assert_eq!(&b[0..8], magic);
        assert_eq!(decode(&b), Some((9, state)));
    }
    // A step past u32 saturates: it is refused for good, never reopened.
    let far = UserState {
        device_steps: vec![DeviceStep {
            id: DeviceId([7; 8]),
            step_time: u64::MAX,
        }],
        ..UserState::default()
    };
    let (_, back) = decode(&encode(&far, 1)).unwrap();
    assert_eq!(back.device_steps[0].step_time, u64::from(u32::MAX));
}

#[test]
fn a_twostep6_slot_with_a_bad_count_is_refused() {
    let state = UserState {
        device_steps: vec![named(1), named(2)],
        ..UserState::default()
    };
    let good = encode(&state, 1);
    let at = in_use(0, REMEMBERED_SIZE, false, 0);
    for count in [0u32, 9, u32::MAX] {
        let mut b = good;
        b[at..at + 4].copy_from_slice(&count.to_le_bytes());
        assert!(
            checksummed_len(&b).is_none() || decode(&b).is_none(),
            "{count}"
        );
    }
}

#[test]
fn slot_round_trip() {
    // (state) -> decodes to itself, with each part present or not
    let full = sample();
    let cases = [
        UserState::default(),
        full.clone(),
        UserState {
            sent: None,
            ..full.clone()
        },
        UserState {
            sends: vec![],
            remembered: vec![],
            ..full.clone()
        },
        UserState {
            remembered: full
                .remembered
                .iter()
                .cycle()
                .take(MAX_REMEMBERED)
                .copied()
                .collect(),
            sends: (0..MAX_SENDS as u64).collect(),
            ..full.clone()
        },
    ];
    for s in cases {
        let (seq, back) = decode(&encode(&s, 42)).unwrap();
        assert_eq!((seq, &back), (42, &s));
    }
}

#[test]
fn an_app_users_slot_is_one_checksum_block() {
    // The header only: BLAKE2b's block is 128 bytes.
    assert_eq!(checksummed_len(&encode(&UserState::default(), 1)), Some(64));
    assert_eq!(
        checksummed_len(&encode(&sample(), 1)),
        Some(64 + 64 + 48 + 16)
    );
}

#[test]
fn every_single_bit_flip_is_detected() {
    let good = encode(&sample(), 3);
    for byte in 0..SLOT {
        for bit in 0..8 {
            let mut b = good;
            b[byte] ^= 1 << bit;
            assert!(decode(&b).is_none(), "flip at byte {byte} bit {bit}");
        }
    }
}

#[test]
fn lengths_out_of_bounds_are_refused() {
    for (at, value) in [(56, MAX_REMEMBERED + 1), (57, MAX_SENDS + 1), (58, 4)] {
        let mut b = encode(&sample(), 1);
        b[at] = value as u8;
        assert!(decode(&b).is_none(), "byte {at} = {value}");
    }
}

#[test]
fn files_of_the_earlier_formats_are_read() {
    // TWOSTEP4: all but the time a source was last noted (never).
    let never_noted = UserState {
        remembered: sample()
            .remembered
            .iter()
            .map(|r| Remembered { seen: 0, ..*r })
            .collect(),
        ..sample()
    };
    assert_eq!(
        decode(&encode_v4(&sample(), 9)),
        Some((9, never_noted.clone()))
    );
    let image = [encode_v4(&sample(), 1), encode(&UserState::default(), 0)].concat();
    assert_eq!(current(&image).unwrap().2, never_noted);
    let s = UserState {
        sent: None,
        sends: vec![],
        lock_notice_at: 0,
        lock_notices_held: 0,
        ..never_noted
    };
    // TWOSTEP3: the checksum covers the bytes in use.
    let v3 = encode_v3(&s, 7);
    assert_eq!(decode(&v3), Some((7, s.clone())));
    let image = [encode_v3(&s, 1), encode_v3(&UserState::default(), 0)].concat();
    assert_eq!(current(&image).unwrap().2, s);
    // TWOSTEP2: the checksum covers all 480 bytes before it.
    let mut v2 = v3.clone();
    v2[0..8].copy_from_slice(MAGIC_V2);
    let sum = checksum(&v2[..checksum_at(SLOT_V3)]);
    let at = checksum_at(SLOT_V3);
    v2[at..].copy_from_slice(&sum);
    assert_eq!(decode(&v2), Some((7, s)));
    // A magic read with the other slot size is no slot.
    assert!(decode(&encode(&UserState::default(), 1)[..SLOT_V3]).is_none());
}

#[test]
fn newest_valid_slot_wins_and_a_torn_slot_falls_back() {
    let old = UserState::default();
    let new = sample();
    let image = [encode(&old, 1), encode(&new, 2)].concat();
    assert_eq!(current(&image).unwrap().2, new);
    // The write of the newer slot was torn at every possible length.
    let newer = encode(
        &UserState {
            last_success: 9,
            ..new.clone()
        },
        3,
    );
    for cut in 0..SLOT {
        let mut torn = [encode(&old, 1), encode(&new, 2)].concat();
        torn[..cut].copy_from_slice(&newer[..cut]);
        let (_, seq, got) = current(&torn).unwrap();
        assert_eq!((seq, got), (2, new.clone()), "torn at {cut}");
    }
}

#[test]
fn the_valid_slot_with_the_higher_number_is_current() {
    // (slot 0, slot 1) as (valid, sequence number it claims) -> the slot
    // read, or None for corruption.
    type Slot = (bool, u64);
    let table: &[(Slot, Slot, Option<usize>)] = &[
        ((true, 5), (true, 6), Some(1)),
        ((true, 7), (true, 6), Some(0)),
        ((true, 5), (false, 9), Some(0)),
        ((false, 9), (true, 5), Some(1)),
        ((false, u64::MAX), (true, 0), Some(1)),
        ((true, 0), (false, u64::MAX), Some(0)),
        ((true, 4), (true, 4), Some(0)),
        ((false, 1), (false, 2), None),
    ];
    let slot = |(valid, seq): Slot, marker: u64| {
        let mut b = encode(
            &UserState {
                last_success: marker,
                ..UserState::default()
            },
            seq,
        );
        if !valid {
            b[SLOT - 1] ^= 1; // a damaged checksum; the number still reads
        }
        b
    };
    for &(a, b, want) in table {
        let image = [slot(a, 100), slot(b, 101)].concat();
        match (current(&image), want) {
            (Ok((got, seq, s)), Some(want)) => {
                let claimed = if want == 0 { a.1 } else { b.1 };
                assert_eq!(
                    (got, seq, s.last_success),
                    (want, claimed, 100 + want as u64)
                );
            }
            (Err(StateError::Corrupt(_)), None) => {}
            (got, want) => panic!("{a:?} {b:?}: got {got:?}, want slot {want:?}"),
        }
    }
}

#[test]
fn truncation_to_any_length_is_corruption() {
    let image = [encode(&sample(), 1), encode(&sample(), 2)].concat();
    for len in 0..image.len() {
        if len as u64 == FILE_SIZE_V3 {
            continue;
        }
        assert!(
            matches!(current(&image[..len]), Err(StateError::Corrupt(_))),
            "len {len}"
        );
    }
    // The earlier format's length holds no valid slot of this one.
    assert!(matches!(
        current(&image[..FILE_SIZE_V3 as usize]),
        Err(StateError::Corrupt(_))
    ));
    assert!(matches!(current(&[0u8; 2048]), Err(StateError::Corrupt(_))));
}
