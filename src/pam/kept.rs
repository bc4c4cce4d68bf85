//! What `preauth single` keeps for the code step, with the PAM handle
//! (pam_set_data) for the rest of this pam_authenticate: the code, wiped
//! when it is replaced or at pam_end. The layout and its encoding; `pam.rs`
//! stores and reads it.
#![forbid(unsafe_code)]

use crate::auth::Kept;
use crate::base::user;
use zeroize::{Zeroize, Zeroizing};

/// Versioned, as the reservation's is.
pub(super) const KEY: &str = concat!("pam_twostep/single/", env!("CARGO_PKG_VERSION"));
/// Longer than any code's shape (`auth::single::split`).
const CODE_MAX: usize = 16;

/// Plain old data with a fixed layout, read back as this type.
#[repr(C)]
pub struct Data {
    present: u8,
    password_handed: u8,
    replayed: u8,
    has_code: u8,
    code_len: u8,
    code: [u8; CODE_MAX],
    user_len: u16,
    user: [u8; user::MAX_LEN],
}

impl Drop for Data {
    fn drop(&mut self) {
        self.code.zeroize();
    }
}

pub(super) fn encode(k: Option<&Kept>) -> Option<Data> {
    let mut d = Data {
        present: 0,
        password_handed: 0,
        replayed: 0,
        has_code: 0,
        code_len: 0,
        code: [0; CODE_MAX],
        user_len: 0,
        user: [0; user::MAX_LEN],
    };
    let Some(k) = k else {
        return Some(d);
    };
    d.user.get_mut(..k.user.len())?.copy_from_slice(&k.user);
    d.user_len = u16::try_from(k.user.len()).ok()?;
    if let Some(code) = &k.code {
        d.code.get_mut(..code.len())?.copy_from_slice(code);
        d.code_len = u8::try_from(code.len()).ok()?;
        d.has_code = 1;
    }
    d.password_handed = u8::from(k.password_handed);
    d.replayed = u8::from(k.replayed);
    d.present = 1;
    Some(d)
}

pub(super) fn decode(d: &Data) -> Option<Kept> {
    if d.present != 1 {
        return None;
    }
    let code = (d.has_code == 1)
        .then(|| d.code.get(..usize::from(d.code_len)))
        .map(|c| c.map(|c| Zeroizing::new(c.to_vec())));
    Some(Kept {
        user: d.user.get(..usize::from(d.user_len))?.to_vec(),
        // A length that does not fit is no code: judged as a wrong one.
        code: code.flatten(),
        password_handed: d.password_handed == 1,
        replayed: d.replayed == 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let longest = "a".repeat(user::MAX_LEN).into_bytes();
        for k in [
            Kept {
                user: b"alice".to_vec(),
                code: Some(Zeroizing::new(b"492039".to_vec())),
                password_handed: true,
                replayed: false,
            },
            Kept {
                user: longest,
                code: Some(Zeroizing::new(b"abcde-fghjk".to_vec())),
                password_handed: true,
                replayed: false,
            },
            Kept {
                user: b"bob".to_vec(),
                code: None,
                password_handed: false,
                replayed: true,
            },
        ] {
            let back = decode(&encode(Some(&k)).unwrap()).unwrap();
            assert_eq!(back.user, k.user);
            assert_eq!(back.code, k.code);
            assert_eq!(back.password_handed, k.password_handed);
            assert_eq!(back.replayed, k.replayed);
        }
        assert!(decode(&encode(None).unwrap()).is_none());
        // What does not fit is not kept (the login is then denied).
        let too_long = Kept {
            user: b"alice".to_vec(),
            code: Some(Zeroizing::new(vec![b'1'; CODE_MAX + 1])),
            password_handed: true,
            replayed: false,
        };
        assert!(encode(Some(&too_long)).is_none());
    }
}
