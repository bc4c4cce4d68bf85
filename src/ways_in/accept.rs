//! `audit.accept`: the ways in a site means to allow, each named as the
//! audit names it (`Finding::key`), so that they are listed as accepted
//! rather than silently dropped:
//!
//! - `pam:SERVICE:MODULE`: in the PAM service SERVICE, the module MODULE
//!   (`pam_rootok`, without `.so` or a directory) lets someone in without
//!   the code: `"pam:su:pam_rootok"`;
//! - `sshd:METHOD:USER`: sshd logs USER in by METHOD (`publickey`,
//!   `hostbased`, `gssapi-with-mic`, `password`, `keyboard-interactive`, or
//!   `nopam` for `UsePAM no`) without the code: `"sshd:publickey:deploy"`.
//!
//! The last part may be `*`: any module of that service, any user.
#![forbid(unsafe_code)]

use std::fmt;

/// One `audit.accept` entry, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accept {
    /// `pam` or `sshd`.
    kind: Kind,
    /// The service (pam) or the method (sshd).
    what: String,
    /// The module (pam) or the user (sshd); `*` for any.
    whom: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Pam,
    Sshd,
}

/// The sshd methods an entry may name: the first method of a list that
/// logs a user in without the code (`keyboard-interactive` and `password`
/// only when the sshd PAM stack does not ask for it, or Kerberos checks
/// the password), or `nopam` for `UsePAM no`.
pub const SSHD_METHODS: [&str; 6] = [
    "publickey",
    "hostbased",
    "gssapi-with-mic",
    "password",
    "keyboard-interactive",
    "nopam",
];

impl Accept {
    /// Parses `pam:SERVICE:MODULE` or `sshd:METHOD:USER`.
    pub fn parse(text: &str) -> Result<Accept, String> {
        let usage = || {
            format!(
                "{text:?} is not \"pam:SERVICE:MODULE\" (\"pam:su:pam_rootok\") or \
                 \"sshd:METHOD:USER\" (\"sshd:publickey:deploy\")"
            )
        };
        let mut parts = text.splitn(3, ':');
        let (Some(kind), Some(what), Some(whom)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(usage());
        };
        let kind = match kind {
            "pam" => Kind::Pam,
            "sshd" => Kind::Sshd,
            _ => return Err(usage()),
        };
        let plain = |s: &str| {
            !s.is_empty()
                && s.len() <= 256
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@'))
        };
        if !plain(what) || !(whom == "*" || plain(whom)) {
            return Err(usage());
        }
        if kind == Kind::Sshd && !SSHD_METHODS.contains(&what) {
            return Err(format!(
                "{text:?}: the sshd method is one of {}",
                SSHD_METHODS.join(", ")
            ));
        }
        if kind == Kind::Pam && whom.ends_with(".so") {
            return Err(format!(
                "{text:?}: name the module without \".so\" (\"{}\")",
                whom.trim_end_matches(".so")
            ));
        }
        Ok(Accept {
            kind,
            what: what.to_string(),
            whom: whom.to_string(),
        })
    }

    /// Whether this entry accepts a finding whose key is `key`.
    pub fn matches(&self, key: &str) -> bool {
        let mut parts = key.splitn(3, ':');
        let (Some(kind), Some(what), Some(whom)) = (parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let kind_ok = match self.kind {
            Kind::Pam => kind == "pam",
            Kind::Sshd => kind == "sshd",
        };
        kind_ok && what == self.what && (self.whom == "*" || whom == self.whom)
    }
}

impl fmt::Display for Accept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Pam => "pam",
            Kind::Sshd => "sshd",
        };
        write!(f, "{kind}:{}:{}", self.what, self.whom)
    }
}

/// Marks each finding that an entry accepts.
pub fn apply(entries: &[Accept], findings: &mut [super::Finding]) {
    for f in findings {
        if entries.iter().any(|a| a.matches(&f.key)) {
            f.accepted = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_parsed_or_refused_saying_why() {
        let good = [
            "pam:su:pam_rootok",
            "pam:sshd:*",
            "sshd:publickey:deploy",
            "sshd:nopam:*",
            "sshd:gssapi-with-mic:alice@EXAMPLE.COM",
            "sshd:keyboard-interactive:*",
            "sshd:password:root",
            "sshd:hostbased:ci-runner",
        ];
        for text in good {
            let a = Accept::parse(text).unwrap();
            assert_eq!(a.to_string(), text);
        }
        let bad = [
            ("", "is not"),
            ("pam:su", "is not"),
            ("pam::pam_rootok", "is not"),
            ("pam:su:", "is not"),
            ("pam:su:pam_rootok.so", "without \".so\""),
            ("ssh:publickey:deploy", "is not"),
            ("sshd:pubkey:deploy", "the sshd method is one of"),
            ("sshd:publickey:de ploy", "is not"),
            ("pam:s/u:pam_rootok", "is not"),
            ("pam:su:**", "is not"),
        ];
        for (text, want) in bad {
            let e = Accept::parse(text).unwrap_err();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }

    #[test]
    fn entries_match_keys() {
        // (entry, key, matches)
        let table = [
            ("pam:su:pam_rootok", "pam:su:pam_rootok", true),
            ("pam:su:pam_rootok", "pam:su-l:pam_rootok", false),
            ("pam:su:pam_rootok", "pam:su:pam_permit", false),
            ("pam:su:*", "pam:su:pam_permit", true),
            ("pam:su:*", "sshd:su:x", false),
            ("sshd:publickey:deploy", "sshd:publickey:deploy", true),
            ("sshd:publickey:deploy", "sshd:publickey:root", false),
            ("sshd:publickey:*", "sshd:publickey:root", true),
            ("sshd:publickey:*", "sshd:hostbased:root", false),
            ("sshd:publickey:*", "garbage", false),
            ("sshd:publickey:*", "sshd:publickey:*", true),
            ("sshd:publickey:deploy", "sshd:publickey:*", false),
            (
                "sshd:keyboard-interactive:alice",
                "sshd:keyboard-interactive:alice",
                true,
            ),
        ];
        for (entry, key, want) in table {
            assert_eq!(
                Accept::parse(entry).unwrap().matches(key),
                want,
                "{entry} {key}"
            );
        }
    }
}
