//! What a store server sends back: any bytes must parse to a reply within
//! the bounds, or be refused, never a panic, and never more than the bound
//! looked at. Fed in pieces, as reads deliver them, the answer must be the
//! one the whole gives.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pam_twostep::store::valkey::resp::{self, MAX_DEPTH, MAX_ELEMENTS, MAX_REPLY, Reply};

fn depth_and_count(reply: &Reply) -> (usize, usize) {
    match reply {
        Reply::Array(items) => items.iter().fold((1, items.len()), |(d, n), item| {
            let (id, inn) = depth_and_count(item);
            (d.max(id + 1), n + inn)
        }),
        _ => (0, 0),
    }
}

fuzz_target!(|data: &[u8]| {
    let whole = resp::parse(data);
    if let Ok(Some((reply, used))) = &whole {
        assert!(*used <= data.len() && *used <= MAX_REPLY);
        let (depth, count) = depth_and_count(reply);
        assert!(depth <= MAX_DEPTH && count <= MAX_ELEMENTS);
        // The reply again from its own bytes: a prefix is enough.
        assert_eq!(resp::parse(&data[..*used]), whole);
        // Every shorter prefix is incomplete or already wrong, never a
        // different reply.
        for end in [0, used / 2, used.saturating_sub(1)] {
            if end < *used {
                assert!(matches!(resp::parse(&data[..end]), Ok(None) | Err(_)));
            }
        }
    }
    // A command made of the input's pieces reads back as bulk strings.
    let args: Vec<&[u8]> = data.split(|&b| b == 0).take(16).collect();
    let mut out = Vec::new();
    resp::encode(&args, &mut out);
    if out.len() <= MAX_REPLY && args.len() <= MAX_ELEMENTS {
        let want = Reply::Array(args.iter().map(|a| Reply::Bulk(a.to_vec())).collect());
        assert_eq!(resp::parse(&out), Ok(Some((want, out.len()))));
    }
});
