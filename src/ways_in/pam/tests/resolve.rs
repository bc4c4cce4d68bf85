//! Stacks as libpam builds them: includes, substacks, `@include`, `other`,
//! and the failures libpam makes of what it cannot read.
#![forbid(unsafe_code)]

use super::super::resolve::{Kind, Problem, Stack, stack};
use super::tree;

/// A stack as "LEVEL:FILE:LINE:what" strings.
fn shape(s: &Stack) -> Vec<String> {
    s.handlers
        .iter()
        .map(|h| {
            let what = match &h.kind {
                Kind::Module { path, .. } => path.clone(),
                Kind::MustFail => "FAIL".into(),
                Kind::Marker => "SUB".into(),
            };
            let file = h.at.file.trim_start_matches("/etc/pam.d/");
            format!("{}:{file}:{}:{what}", h.level, h.at.line)
        })
        .collect()
}

fn has(problems: &[Problem], part: &str) -> bool {
    problems.iter().any(|p| p.to_string().contains(part))
}

#[test]
fn includes_and_substacks_are_inlined_as_libpam_inlines_them() {
    // (files, service, expected shape, a problem expected)
    type Case = (
        &'static [(&'static str, &'static str)],
        &'static str,
        &'static [&'static str],
        Option<&'static str>,
    );
    let cases: &[Case] = &[
        (
            &[(
                "/etc/pam.d/s",
                "auth required a.so\naccount required b.so\nauth optional c.so\n",
            )],
            "s",
            &["0:s:1:a.so", "0:s:3:c.so"],
            None,
        ),
        (
            &[
                (
                    "/etc/pam.d/s",
                    "auth required a.so\nauth include inc\nauth required d.so\n",
                ),
                (
                    "/etc/pam.d/inc",
                    "session required x.so\nauth sufficient b.so\nauth optional c.so\n",
                ),
            ],
            "s",
            &["0:s:1:a.so", "0:inc:2:b.so", "0:inc:3:c.so", "0:s:3:d.so"],
            None,
        ),
        (
            &[
                ("/etc/pam.d/s", "auth substack sub\nauth required d.so\n"),
                (
                    "/etc/pam.d/sub",
                    "auth sufficient b.so\nauth substack sub2\n",
                ),
                ("/etc/pam.d/sub2", "auth required c.so\n"),
            ],
            "s",
            &[
                "0:s:1:SUB",
                "1:sub:1:b.so",
                "1:sub:2:SUB",
                "2:sub2:1:c.so",
                "0:s:2:d.so",
            ],
            None,
        ),
        (
            // Debian's @include: the file's lines of the type being read;
            // at the top, every type (only auth lines are kept here).
            &[
                (
                    "/etc/pam.d/s",
                    "@include common-auth\n@include common-account\n",
                ),
                (
                    "/etc/pam.d/common-auth",
                    "auth required a.so\n@include more\n",
                ),
                (
                    "/etc/pam.d/more",
                    "auth optional m.so\nsession optional n.so\n",
                ),
                ("/etc/pam.d/common-account", "account required b.so\n"),
            ],
            "s",
            &["0:common-auth:1:a.so", "0:more:1:m.so"],
            None,
        ),
        (
            &[
                ("/etc/pam.d/s", "auth include /opt/pam/x\n"),
                ("/opt/pam/x", "auth required a.so\n"),
            ],
            "s",
            &["0:/opt/pam/x:1:a.so"],
            None,
        ),
        (
            // An include of another type is not read for auth.
            &[(
                "/etc/pam.d/s",
                "session include missing\nauth required a.so\n",
            )],
            "s",
            &["0:s:2:a.so"],
            None,
        ),
        (
            &[(
                "/etc/pam.d/s",
                "auth include missing\nauth sufficient a.so\n",
            )],
            "s",
            &["0:s:1:FAIL", "0:s:2:a.so"],
            Some("/etc/pam.d/missing does not exist: libpam makes this line fail"),
        ),
        (
            &[("/etc/pam.d/s", "auth substack missing\n")],
            "s",
            &["0:s:1:SUB", "0:s:1:FAIL"],
            Some("does not exist"),
        ),
        (
            &[
                ("/etc/pam.d/s", "auth include vendor\n"),
                ("/usr/lib/pam.d/vendor", "auth required a.so\n"),
            ],
            "s",
            &["0:s:1:FAIL"],
            Some("Debian's libpam looks for included files in /etc/pam.d only"),
        ),
        (
            &[
                ("/etc/pam.d/s", "auth include loop\n"),
                ("/etc/pam.d/loop", "auth required a.so\nauth include loop\n"),
            ],
            "s",
            &["0:loop:1:a.so", "0:loop:2:FAIL"],
            Some("an include loop (/etc/pam.d/s -> /etc/pam.d/loop -> /etc/pam.d/loop)"),
        ),
        (
            // The lines before an aborted file's end stay.
            &[
                ("/etc/pam.d/s", "auth include broken\nauth required z.so\n"),
                (
                    "/etc/pam.d/broken",
                    "auth required a.so\nauth optional b.so \\",
                ),
            ],
            "s",
            &["0:broken:1:a.so", "0:s:1:FAIL", "0:s:2:z.so"],
            Some("continued line"),
        ),
        (
            &[("/etc/pam.d/s", "auht required a.so\nfoo\n")],
            "s",
            &["0:s:1:FAIL", "0:s:2:FAIL"],
            Some("\"auht\" is not a type"),
        ),
        (
            // A service without auth lines gets other's; so does one
            // without a file.
            &[
                ("/etc/pam.d/s", "session required a.so\n"),
                ("/etc/pam.d/other", "auth required o.so\n"),
            ],
            "s",
            &["0:other:1:o.so"],
            None,
        ),
        (
            &[("/etc/pam.d/other", "auth required o.so\n")],
            "nofile",
            &["0:other:1:o.so"],
            None,
        ),
        (
            &[
                ("/usr/lib/pam.d/v", "auth required a.so\n"),
                ("/etc/pam.d/other", "auth required o.so\n"),
            ],
            "v",
            &["0:/usr/lib/pam.d/v:1:a.so"],
            None,
        ),
        (
            // /etc/pam.d wins over the vendor directory.
            &[
                ("/usr/lib/pam.d/v", "auth required a.so\n"),
                ("/etc/pam.d/v", "auth required b.so\n"),
            ],
            "v",
            &["0:v:1:b.so"],
            None,
        ),
    ];
    for (files, service, want, problem) in cases {
        let src = tree(files);
        let (s, problems) = stack(&src, service);
        assert_eq!(s.refused, None, "{files:?}");
        assert_eq!(shape(&s), *want, "{files:?}");
        match problem {
            Some(part) => assert!(has(&problems, part), "{files:?}: {problems:?}"),
            None => assert!(problems.is_empty(), "{files:?}: {problems:?}"),
        }
    }
}

#[test]
fn what_makes_libpam_refuse_the_whole_service() {
    // (files, service, part of the reason)
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: &[Case] = &[
        (
            &[("/etc/pam.d/s", "@include missing\n")],
            "s",
            "does not exist",
        ),
        (&[("/etc/pam.d/s", "@include\n")], "s", "crashes"),
        (&[("/etc/pam.d/s", "auth include\n")], "s", "crashes"),
        (
            &[("/etc/pam.d/s", "auth required a.so \\")],
            "s",
            "continued line",
        ),
        (
            &[
                ("/etc/pam.d/s", "auth required a.so\n"),
                ("/etc/pam.d/other", "@include gone\n"),
            ],
            "s",
            "a broken `other` refuses them all",
        ),
        (
            &[("/etc/pam.d/x", "auth required a.so\n")],
            "nofile",
            "no file of its own",
        ),
    ];
    for (files, service, part) in cases {
        let (s, _) = stack(&tree(files), service);
        let why = s
            .refused
            .unwrap_or_else(|| panic!("{files:?}: not refused"));
        assert!(why.contains(part), "{files:?}: {why}");
        assert!(s.handlers.is_empty());
    }
}

#[test]
fn nesting_is_bounded() {
    // Substacks 16 deep: libpam refuses the deepest.
    let mut files = vec![];
    for i in 0..20 {
        files.push((
            format!("/etc/pam.d/n{i}"),
            format!("auth substack n{}\n", i + 1),
        ));
    }
    files.push(("/etc/pam.d/n20".into(), "auth required a.so\n".into()));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let (s, problems) = stack(&tree(&refs), "n0");
    assert!(has(&problems, "nested 16 deep"), "{problems:?}");
    assert!(s.handlers.iter().all(|h| h.level < 16));
    assert!(s.handlers.iter().any(|h| h.kind == Kind::MustFail));
}

#[test]
fn a_directory_in_a_files_place_is_reported() {
    let mut src = tree(&[("/etc/pam.d/s", "auth include d\nauth required a.so\n")]);
    src.files.insert("/etc/pam.d/d".into(), None);
    let (s, problems) = stack(&src, "s");
    assert!(has(&problems, "a directory, not a file"), "{problems:?}");
    // fopen reads a directory as an empty file: the include adds nothing.
    assert_eq!(shape(&s), ["0:s:2:a.so"]);
}
