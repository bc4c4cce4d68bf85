//! A tree's sshd_config for sshd to read here: each `Include` path moved
//! into the tree. sshd reads `Include /etc/ssh/sshd_config.d/*.conf` from
//! this machine whatever `-f` says; the copy it is given instead reads
//! `ROOT/etc/ssh/sshd_config.d/*.conf`. Only sshd_config's own lines are
//! moved (the lines keep their numbers, so sshd's errors point at the
//! tree's file); an `Include` in an included file that points out of the
//! tree is caught from sshd's debug log (`ask`).
#![forbid(unsafe_code)]

use crate::ways_in::AuditError;
use std::path::Path;

/// `ROOT/etc/ssh/sshd_config` with each `Include` path moved into the tree:
/// `/etc/ssh/x/*.conf` → `ROOT/etc/ssh/x/*.conf`, a relative `x.conf` (sshd
/// reads it from /etc/ssh) → `ROOT/etc/ssh/x.conf`. Every other line, and
/// the number of lines, as they were.
pub fn rewrite(text: &str, root: &Path) -> Result<String, AuditError> {
    let root_text = root.display().to_string();
    if root_text
        .chars()
        .any(|c| matches!(c, '*' | '?' | '[' | ']' | '\\' | '"' | '\'') || c.is_whitespace())
    {
        return Err(AuditError(format!(
            "--root {root_text}: sshd would read glob or quote characters in its name \
             as such in Include paths; use a plain directory name"
        )));
    }
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.split_inclusive('\n') {
        let (body, end) = match line.strip_suffix('\n') {
            Some(b) => (b, "\n"),
            None => (line, ""),
        };
        match include_args(body) {
            Some((indent, args)) => {
                out.push_str(indent);
                out.push_str("Include");
                for arg in args {
                    let moved = if arg.starts_with('/') {
                        format!("{root_text}{arg}")
                    } else if arg.starts_with('~') {
                        // sshd takes it as it is; the check on sshd's
                        // debug log refuses it.
                        arg
                    } else {
                        format!("{root_text}/etc/ssh/{arg}")
                    };
                    out.push_str(" \"");
                    out.push_str(&moved.replace('\\', "\\\\").replace('"', "\\\""));
                    out.push('"');
                }
                out.push_str(end);
            }
            None => out.push_str(line),
        }
    }
    Ok(out)
}

/// For an `Include` line: its indentation and its arguments, split as sshd
/// splits them (misc.c's `argv_split`: white space, quotes, backslash
/// escapes, `#` starting a comment).
fn include_args(line: &str) -> Option<(&str, Vec<String>)> {
    let trimmed = line.trim_start_matches([' ', '\t']);
    let indent = &line[..line.len() - trimmed.len()];
    let end = trimmed.find([' ', '\t', '=']).unwrap_or(trimmed.len());
    if !trimmed[..end].eq_ignore_ascii_case("include") {
        return None;
    }
    let mut rest = trimmed[end..].trim_start_matches([' ', '\t']);
    if let Some(r) = rest.strip_prefix('=') {
        rest = r;
    }
    let mut args = Vec::new();
    let chars: Vec<char> = rest.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == ' ' || chars[i] == '\t' || chars[i] == '\r' {
            i += 1;
            continue;
        }
        if chars[i] == '#' {
            break;
        }
        let mut arg = String::new();
        let mut quote: Option<char> = None;
        while i < chars.len() {
            let c = chars[i];
            if c == '\\' {
                match chars.get(i + 1) {
                    Some(&n)
                        if n == '\'' || n == '"' || n == '\\' || (quote.is_none() && n == ' ') =>
                    {
                        arg.push(n);
                        i += 2;
                        continue;
                    }
                    _ => arg.push(c),
                }
            } else if quote.is_none() && (c == ' ' || c == '\t' || c == '\r') {
                break;
            } else if quote.is_none() && (c == '"' || c == '\'') {
                quote = Some(c);
            } else if quote == Some(c) {
                quote = None;
            } else {
                arg.push(c);
            }
            i += 1;
        }
        args.push(arg);
    }
    Some((indent, args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_paths_move_into_the_tree_and_nothing_else_changes() {
        let root = Path::new("/mnt/image");
        let table = [
            (
                "Include /etc/ssh/sshd_config.d/*.conf\n",
                "Include \"/mnt/image/etc/ssh/sshd_config.d/*.conf\"\n",
            ),
            (
                "  include=extra.conf other/*.conf # comment\n",
                "  Include \"/mnt/image/etc/ssh/extra.conf\" \"/mnt/image/etc/ssh/other/*.conf\"\n",
            ),
            (
                "\tINCLUDE \"/etc/my dir/a.conf\" '/b'\n",
                "\tInclude \"/mnt/image/etc/my dir/a.conf\" \"/mnt/image/b\"\n",
            ),
            ("Include /x\\\"y\n", "Include \"/mnt/image/x\\\"y\"\n"),
            ("Include ~/x", "Include \"~/x\""),
            ("IncludeX /etc/a\n", "IncludeX /etc/a\n"),
            ("# Include /etc/a\n", "# Include /etc/a\n"),
            ("UsePAM yes\r\n", "UsePAM yes\r\n"),
            (
                "Match User x\n  Include /etc/ssh/m.conf\n",
                "Match User x\n  Include \"/mnt/image/etc/ssh/m.conf\"\n",
            ),
            ("", ""),
        ];
        for (text, want) in table {
            assert_eq!(rewrite(text, root).unwrap(), want, "{text:?}");
            assert_eq!(
                rewrite(text, root).unwrap().lines().count(),
                text.lines().count()
            );
        }
    }

    #[test]
    fn a_root_with_glob_characters_is_refused() {
        for bad in ["/mnt/im*ge", "/mnt/a b", "/mnt/[x]", "/mnt/q\""] {
            let e = rewrite("Include /x\n", Path::new(bad)).unwrap_err();
            assert!(e.0.contains("plain directory name"), "{bad}: {e}");
        }
    }
}
