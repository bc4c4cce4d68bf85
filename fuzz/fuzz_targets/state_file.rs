//! The state file: any bytes must decode to a state only through a valid
//! checksummed slot of a whole file; everything else is corruption (which the
//! module treats as locked), never a panic and never a fresh state.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_twostep::files::state::{self, FILE_SIZE, MAX_REMEMBERED, MAX_SENDS, StateError};

/// Recomputes each slot's checksum, so that the fields behind it (counters,
/// remembered addresses, sent codes) are explored too, not only the
/// checksum's refusal. Images of this format and of the earlier one (two
/// 512-byte slots) are both explored.
fn with_valid_checksums(data: &[u8]) -> Vec<u8> {
    let mut image = data.to_vec();
    let slot_len = image.len() / 2;
    for slot in image.chunks_exact_mut(slot_len) {
        // Slots of no known format keep whatever checksum they carry:
        // decode refuses them before it looks.
        let Some(summed) = state::checksummed_len(slot) else {
            continue;
        };
        let sum = state::checksum(&slot[..summed]);
        slot[slot_len - 32..].copy_from_slice(&sum);
    }
    image
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if data.len() as u64 == FILE_SIZE || data.len() as u64 == FILE_SIZE / 2 {
        check(&with_valid_checksums(data));
    }
});

fn check(data: &[u8]) {
    match state::decode_image(data) {
        Ok(s) => {
            assert!(data.len() as u64 == FILE_SIZE || data.len() as u64 == FILE_SIZE / 2);
            assert!(s.remembered.len() <= MAX_REMEMBERED);
            assert!(s.sends.len() <= MAX_SENDS);
            // A state read back is the state written.
            let image = state::encode_image(&s);
            assert_eq!(state::decode_image(&image).expect("re-encoded state"), s);
        }
        Err(StateError::Corrupt(why)) => assert!(!why.is_empty()),
        Err(e) => panic!("decoding bytes is not I/O: {e}"),
    }
}
