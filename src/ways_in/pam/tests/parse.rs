//! The parser: every control form, continuation lines, brackets with
//! spaces, comments, the `-` prefix, case, and libpam 1.5's line buffer.
#![forbid(unsafe_code)]

use super::super::parse::{
    Action::{self, *},
    Control, LINE_MAX, Line, RETURN_VALUES, TypeWord, bracket, parse, standard, words,
};

fn table(pairs: &[(usize, Action)], default: Action) -> [Action; RETURN_VALUES] {
    let mut t = [default; RETURN_VALUES];
    for (i, a) in pairs {
        t[*i] = *a;
    }
    t
}

fn one(text: &str) -> Line {
    let p = parse(text.as_bytes());
    assert_eq!(p.lines.len(), 1, "{text:?}: {p:?}");
    p.lines[0].clone()
}

#[test]
fn the_four_control_words_are_libpams() {
    // (word, success/new_authtok_reqd, ignore, default)
    let cases = [
        ("required", Ok, Ignore, Bad),
        ("requisite", Ok, Ignore, Die),
        ("optional", Ok, Ignore, Ignore),
        ("sufficient", Done, Ignore, Ignore),
    ];
    for (word, success, ignore, default) in cases {
        let want = table(&[(0, success), (12, success), (25, ignore)], default);
        assert_eq!(standard(word), Some(want), "{word}");
        for written in [word.to_string(), word.to_uppercase(), capitalised(word)] {
            let line = one(&format!("auth {written} pam_permit.so"));
            assert_eq!(line.control, Control::Table(Box::new(want)), "{written}");
            assert_eq!(line.problem, None, "{written}");
        }
    }
    assert_eq!(standard("require"), None);
}

fn capitalised(w: &str) -> String {
    let mut c = w.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

#[test]
fn bracket_lists_are_read_as_libpam_reads_them() {
    // (list, Ok(expected entries, default) | Err(part of the reason))
    type Want = Result<(&'static [(usize, Action)], Action), &'static str>;
    let cases: &[(&str, Want)] = &[
        ("success=ok", Result::Ok((&[(0, Ok)], Bad))),
        (
            "success=1 default=ignore",
            Result::Ok((&[(0, Jump(1))], Ignore)),
        ),
        ("success=end default=ignore", Err("is not an action")),
        (
            "  success = done   default = die ",
            Result::Ok((&[(0, Done)], Die)),
        ),
        ("success=okdefault=bad", Result::Ok((&[(0, Ok)], Bad))),
        (
            "success=1default=ignore",
            Result::Ok((&[(0, Jump(1))], Ignore)),
        ),
        (
            "success=ok new_authtok_reqd=done default=ignore",
            Result::Ok((&[(0, Ok), (12, Done)], Ignore)),
        ),
        (
            "default=ignore success=reset",
            Result::Ok((&[(0, Reset)], Ignore)),
        ),
        // A second default only sets what is still unset.
        ("default=ignore default=bad", Result::Ok((&[], Ignore))),
        ("success=ok success=bad", Result::Ok((&[(0, Bad)], Bad))),
        (
            "ignore=ignore auth_err=die",
            Result::Ok((&[(25, Ignore), (7, Die)], Bad)),
        ),
        (
            "authtok_err=1 cred_err=2",
            Result::Ok((&[(20, Jump(1)), (17, Jump(2))], Bad)),
        ),
        ("module_unknown=ok", Result::Ok((&[(28, Ok)], Bad))),
        ("incomplete=ok", Result::Ok((&[(31, Ok)], Bad))),
        ("", Result::Ok((&[], Bad))),
        (
            "success=2147483647",
            Result::Ok((&[(0, Jump(2_147_483_647))], Bad)),
        ),
        ("success=2147483648", Err("too large")),
        ("success=99999999999999999999", Err("too large")),
        ("success=0", Err("jump of 0")),
        ("sucess=ok", Err("expecting a return value")),
        ("successful=ok", Err("expecting \"=\"")),
        ("success", Err("expecting \"=\"")),
        ("success=", Err("expecting an action")),
        ("success=okay", Err("expecting a return value")),
        ("success=-1", Err("is not an action")),
        ("success:ok", Err("expecting \"=\"")),
        ("required", Err("expecting a return value")),
    ];
    for (list, want) in cases {
        match (bracket(list.as_bytes()), want) {
            (Result::Ok(got), Result::Ok((pairs, default))) => {
                assert_eq!(got, table(pairs, *default), "[{list}]")
            }
            (Err(got), Err(part)) => assert!(got.contains(part), "[{list}]: {got}"),
            (got, want) => panic!("[{list}]: {got:?}, expected {want:?}"),
        }
    }
}

#[test]
fn a_control_libpam_cannot_parse_makes_every_result_bad() {
    for control in [
        "requird",
        "[sucess=ok]",
        "[success=0]",
        "sufficent",
        "[success=end]",
    ] {
        let line = one(&format!("auth {control} pam_permit.so"));
        assert_eq!(
            line.control,
            Control::Table(Box::new([Bad; RETURN_VALUES])),
            "{control}"
        );
        let problem = line.problem.unwrap();
        assert!(problem.contains("cannot be parsed"), "{control}: {problem}");
        assert!(!line.forced_failure, "{control}: the module still runs");
    }
    // Without brackets a list is still a list (libpam parses any word).
    assert_eq!(
        one("auth success=done pam_permit.so").control,
        Control::Table(Box::new(table(&[(0, Done)], Bad)))
    );
}

#[test]
fn words_and_brackets() {
    // (line, words)
    let cases: &[(&str, &[&str])] = &[
        ("auth required pam_x.so", &["auth", "required", "pam_x.so"]),
        (
            "  auth\trequired  \t pam_x.so  ",
            &["auth", "required", "pam_x.so"],
        ),
        (
            "auth [success=1 default=ignore] pam_x.so",
            &["auth", "success=1 default=ignore", "pam_x.so"],
        ),
        ("auth [a]b", &["auth", "a", "b"]),
        ("auth [a\\]b] c", &["auth", "a]b", "c"]),
        ("auth [a [b] c", &["auth", "a [b", "c"]),
        ("auth [unclosed x y", &["auth", "unclosed x y"]),
        ("auth []  x", &["auth", "", "x"]),
        ("x pam_y.so [a b] c", &["x", "pam_y.so", "a b", "c"]),
        ("a\rb c\r", &["a\rb", "c\r"]),
        ("", &[]),
        ("   ", &[]),
    ];
    for (line, want) in cases {
        let got: Vec<String> = words(line.as_bytes())
            .iter()
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect();
        assert_eq!(got, *want, "{line:?}");
    }
}

#[test]
fn lines_types_prefix_and_arguments() {
    let l = one("-auth optional pam_x.so a [b c] d");
    assert!(l.silent);
    assert_eq!(l.type_word, TypeWord::Auth);
    assert_eq!(l.target.as_deref(), Some("pam_x.so"));
    assert_eq!(l.args, ["a", "b c", "d"]);
    assert_eq!(l.control_text, "optional");

    for (text, want) in [
        ("AUTH required x", TypeWord::Auth),
        ("Account required x", TypeWord::Account),
        ("session required x", TypeWord::Session),
        ("PASSWORD required x", TypeWord::Password),
        ("@include common-auth", TypeWord::AtInclude),
        ("@INCLUDE common-auth", TypeWord::AtInclude),
        ("-@include common-auth", TypeWord::AtInclude),
        ("auht required x", TypeWord::Illegal("auht".into())),
        ("--auth required x", TypeWord::Illegal("-auth".into())),
    ] {
        assert_eq!(one(text).type_word, want, "{text}");
    }
    let inc = one("@include common-auth trailing words");
    assert_eq!(inc.control, Control::Include);
    assert_eq!(inc.target.as_deref(), Some("common-auth"));
    assert!(inc.args.is_empty());
    assert_eq!(one("auth INCLUDE x").control, Control::Include);
    assert_eq!(one("auth substack x").control, Control::Substack);

    let bad = one("auht required pam_permit.so");
    assert!(bad.forced_failure);
    assert!(bad.problem.unwrap().contains("not a type"));
    let no_control = one("auth");
    assert_eq!(no_control.control, Control::Missing);
    assert!(no_control.forced_failure);
    let no_module = one("auth required");
    assert!(no_module.forced_failure);
    assert!(no_module.problem.unwrap().contains("no module"));
    assert_eq!(one("auth [success=ok] x").control_text, "[success=ok]");
}

#[test]
fn comments_continuations_and_numbers() {
    // (file, [(line number, words of the line)], problem in the file)
    type Case = (
        &'static str,
        &'static [(u32, &'static str)],
        Option<&'static str>,
    );
    let cases: &[Case] = &[
        ("# c\n\nauth required x\n", &[(3, "auth required x")], None),
        ("auth required x # c\n", &[(1, "auth required x")], None),
        ("auth [success=ok#x] y\n", &[(1, "auth success=ok")], None),
        (
            "auth required \\\n  x a\n",
            &[(1, "auth required x a")],
            None,
        ),
        ("auth required \\   \n x\n", &[(1, "auth required x")], None),
        (
            "auth \\\nrequired \\\nx\nauth optional y\n",
            &[(1, "auth required x"), (4, "auth optional y")],
            None,
        ),
        // A '#' ends the line: the backslash after it continues nothing.
        (
            "auth required x # \\\nauth optional y\n",
            &[(1, "auth required x"), (2, "auth optional y")],
            None,
        ),
        (
            "auth required \\\n# between\n\nx\n",
            &[(1, "auth required x")],
            Some("runs into a blank or comment line"),
        ),
        (
            "auth required x\0 sufficient y\n",
            &[(1, "auth required x")],
            None,
        ),
        ("auth required x", &[(1, "auth required x")], None),
        ("auth required x\r\n", &[(1, "auth required x\r")], None),
        ("\n\n  \t\n", &[], None),
    ];
    for (file, want, problem) in cases {
        let p = parse(file.as_bytes());
        let got: Vec<(u32, String)> = p
            .lines
            .iter()
            .map(|l| {
                let mut w = vec![type_text(&l.type_word), l.control_text.clone()];
                w.extend(l.target.clone());
                w.extend(l.args.clone());
                let w: Vec<String> = w.into_iter().filter(|s| !s.is_empty()).collect();
                (l.number, w.join(" ").replace(['[', ']'], ""))
            })
            .collect();
        let want: Vec<(u32, String)> = want.iter().map(|(n, s)| (*n, s.to_string())).collect();
        assert_eq!(got, want, "{file:?}");
        match problem {
            Some(part) => assert!(
                p.problems.iter().any(|(_, w)| w.contains(part)),
                "{file:?}: {:?}",
                p.problems
            ),
            None => assert!(p.problems.is_empty(), "{file:?}: {:?}", p.problems),
        }
        assert_eq!(p.aborted, None, "{file:?}");
    }
}

fn type_text(t: &TypeWord) -> String {
    match t {
        TypeWord::Auth => "auth".into(),
        TypeWord::Account => "account".into(),
        TypeWord::Session => "session".into(),
        TypeWord::Password => "password".into(),
        TypeWord::AtInclude => "@include".into(),
        TypeWord::Illegal(w) => w.clone(),
    }
}

#[test]
fn a_file_that_ends_in_a_continuation_is_refused() {
    for file in [
        "auth required x \\",
        "auth required x\nauth optional y \\\n",
        "a \\\n\n\n",
    ] {
        let p = parse(file.as_bytes());
        let (_, why) = p.aborted.unwrap_or_else(|| panic!("{file:?}"));
        assert!(why.contains("continued line"), "{why}");
    }
    // What came before is kept.
    assert_eq!(parse(b"auth required x\nauth optional y \\").lines.len(), 1);
}

#[test]
fn the_end_of_a_long_line_is_a_line_of_its_own_as_libpam_1_5_reads_it() {
    // libpam 1.5 reads 1023 bytes at a time: the rest of a comment that
    // long is a line (tests/audit_pam.rs shows the real libpam doing it).
    let comment = format!(
        "#{}auth sufficient pam_permit.so\n",
        "x".repeat(LINE_MAX - 1)
    );
    let p = parse(comment.as_bytes());
    assert_eq!(p.lines.len(), 1, "{p:?}");
    assert_eq!(p.lines[0].target.as_deref(), Some("pam_permit.so"));
    assert_eq!(p.lines[0].number, 1);
    assert!(
        p.problems[0].1.contains("longer than 1023"),
        "{:?}",
        p.problems
    );

    // A line of exactly 1023 bytes with its newline fits.
    let fits = format!("auth required x {}\n", "a".repeat(LINE_MAX - 17));
    assert_eq!(fits.len(), LINE_MAX);
    let p = parse(fits.as_bytes());
    assert_eq!((p.lines.len(), p.problems.len()), (1, 0), "{p:?}");
    // One more byte, and the newline is read as a (blank) line of its own.
    let over = format!("auth required x {}\n", "a".repeat(LINE_MAX - 16));
    let p = parse(over.as_bytes());
    assert_eq!((p.lines.len(), p.problems.len()), (1, 1), "{p:?}");

    // A continuation counts what came before: the second piece is cut.
    let cont = format!("auth required \\\n{} y\n", "x".repeat(LINE_MAX - 16));
    let p = parse(cont.as_bytes());
    assert_eq!(p.lines.len(), 2, "{p:?}");

    // A continued line that fills the buffer: libpam 1.5 never ends it.
    let full = format!("auth {}\\\nx\n", "a".repeat(LINE_MAX - 6));
    assert!(parse(full.as_bytes()).aborted.is_some());
}

#[test]
fn junk_never_panics() {
    let junk: &[&[u8]] = &[
        b"\xff\xfe auth [\xff=ok] \xff",
        b"[[[[",
        b"]]]]",
        b"\\",
        b"\\\n\\\n\\",
        b"auth [success=1 default=",
        b"auth [ ] [ ] [",
        b"-",
        b"@include",
        b"#\\\n",
        &[0u8; 4000],
        &[b'\\'; 3000],
        &[b'['; 5000],
    ];
    for j in junk {
        let _ = parse(j);
    }
}
