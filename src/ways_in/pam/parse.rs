//! One PAM configuration file, read as libpam reads it: the logical lines
//! (comments, `\` continuations), the words of each line (`[...]` is one
//! word), the control word or bracket list turned into an action for each
//! of the 32 return values.
//!
//! The model is Linux-PAM 1.5 with Debian's patches (Debian 12), whose
//! quirks matter to whoever writes a PAM file, and where later versions
//! read a file differently the line is also reported as a problem:
//! - a logical line is read into a 1024-byte buffer: the end of a longer
//!   one, even the end of a long comment, is read as a line of its own
//!   (libpam 1.6 reads it whole), which can hide a line in a comment;
//! - a `#` anywhere ends the line, continuation or not;
//! - blank and comment lines inside a continuation are skipped (libpam 1.6
//!   ends the line there);
//! - a file that ends inside a continuation is an error that aborts the
//!   whole file;
//! - words are separated by spaces, tabs and newlines only (a `\r` is part
//!   of a word), and a NUL byte ends a physical line as it ends a C string;
//! - type and control words are compared without case; an unknown type
//!   makes the line a forced failure; a control that cannot be parsed makes
//!   every return value `bad` (the module still runs).
//!
//! Pure: bytes in, lines and problems out. Never panics (fuzzed:
//! fuzz/fuzz_targets/pam_conf.rs).
#![forbid(unsafe_code)]

/// libpam 1.5 reads a logical line into a buffer of 1024 bytes.
pub const LINE_MAX: usize = 1023;
/// A PAM file larger than this is not read (none is near it).
pub const FILE_MAX: usize = 1 << 20;

/// The number of PAM return values (`_PAM_RETURN_VALUES`).
pub const RETURN_VALUES: usize = 32;
pub const PAM_SUCCESS: u8 = 0;
pub const PAM_PERM_DENIED: u8 = 6;
pub const PAM_AUTH_ERR: u8 = 7;
pub const PAM_NEW_AUTHTOK_REQD: u8 = 12;
pub const PAM_CONV_ERR: u8 = 19;
pub const PAM_IGNORE: u8 = 25;
pub const PAM_MODULE_UNKNOWN: u8 = 28;
/// Makes libpam return at once, to be called again: never a verdict.
pub const PAM_INCOMPLETE: u8 = 31;

/// The names of the return values in a bracket list, in libpam's order
/// (it takes the first that the text starts with); the 33rd is `default`.
const RETURN_NAMES: [&str; RETURN_VALUES + 1] = [
    "success",
    "open_err",
    "symbol_err",
    "service_err",
    "system_err",
    "buf_err",
    "perm_denied",
    "auth_err",
    "cred_insufficient",
    "authinfo_unavail",
    "user_unknown",
    "maxtries",
    "new_authtok_reqd",
    "acct_expired",
    "session_err",
    "cred_unavail",
    "cred_expired",
    "cred_err",
    "no_module_data",
    "conv_err",
    "authtok_err",
    "authtok_recover_err",
    "authtok_lock_busy",
    "authtok_disable_aging",
    "try_again",
    "ignore",
    "abort",
    "authtok_expired",
    "module_unknown",
    "bad_item",
    "conv_again",
    "incomplete",
    "default",
];

/// What libpam does with a module's return value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Ignore,
    Ok,
    Done,
    Bad,
    Die,
    Reset,
    /// Skip this many lines of the same level (a substack is one).
    Jump(u32),
}

/// In libpam's order (`_pam_token_actions`): a word is matched as a prefix.
const ACTION_NAMES: [(&str, Action); 6] = [
    ("ignore", Action::Ignore),
    ("ok", Action::Ok),
    ("done", Action::Done),
    ("bad", Action::Bad),
    ("die", Action::Die),
    ("reset", Action::Reset),
];

/// The action for each return value.
pub type Actions = [Action; RETURN_VALUES];

/// The first word of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeWord {
    Auth,
    Account,
    Session,
    Password,
    /// Debian's `@include FILE`: the file's lines of the type being read.
    AtInclude,
    /// Not a type: libpam makes the line a forced failure of the type
    /// being read (`auth` at the top of a file).
    Illegal(String),
}

/// The second word of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// `include FILE`: the file's lines of this type, at this level.
    Include,
    /// `substack FILE`: the file's lines of this type, one level deeper.
    Substack,
    /// `required`, `requisite`, `sufficient`, `optional`, or a bracket
    /// list (all `bad` when libpam cannot parse it).
    Table(Box<Actions>),
    /// No control word: a forced failure.
    Missing,
}

/// One logical line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The file's line number where it starts (1-based).
    pub number: u32,
    /// A `-` before the type: libpam does not log a module it cannot load
    /// (the module is still a handler that fails; it is not skipped).
    pub silent: bool,
    pub type_word: TypeWord,
    pub control: Control,
    /// The control as written (`sufficient`, `[success=1 default=ignore]`).
    pub control_text: String,
    /// The module path, or the file of an include.
    pub target: Option<String>,
    pub args: Vec<String>,
    /// libpam makes this line a handler that fails whatever the module
    /// would say (`PAM_PERM_DENIED` through the line's actions).
    pub forced_failure: bool,
    /// What is wrong with the line, if it matters (reported when the line
    /// is part of an auth stack).
    pub problem: Option<String>,
}

/// A parsed file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    pub lines: Vec<Line>,
    /// Problems of the file itself: (line, what).
    pub problems: Vec<(u32, String)>,
    /// libpam stops reading the file with an error here (line, why): the
    /// lines before it are kept, and the file counts as unreadable.
    pub aborted: Option<(u32, String)>,
}

fn is_delim(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\t')
}

/// C's isspace in the C locale.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// A logical line as libpam 1.5's `_pam_assemble_line` builds it.
struct Logical {
    number: u32,
    text: Vec<u8>,
    through_blank: bool,
}

/// What [`assemble`] makes of a file.
#[derive(Default)]
struct Assembled {
    lines: Vec<Logical>,
    problems: Vec<(u32, String)>,
    aborted: Option<(u32, String)>,
}

/// Splits `text` into logical lines, reading it as libpam 1.5 does: in
/// pieces of what is left of a 1023-byte buffer (fgets), so that the end of
/// a longer line, a comment included, is read as a line of its own.
fn assemble(text: &[u8]) -> Assembled {
    let mut out = Assembled::default();
    let mut open: Option<Logical> = None;
    let mut newlines: u32 = 0;
    let mut pos = 0;
    let mut cut_line = 0;
    loop {
        let written = open.as_ref().map_or(0, |l| l.text.len());
        let number = newlines.saturating_add(1);
        if written >= LINE_MAX {
            out.aborted = Some((
                open.as_ref().map_or(number, |l| l.number),
                format!(
                    "a continued line fills libpam's {LINE_MAX}-byte buffer: libpam 1.5 never \
                     finishes reading it (the service hangs)"
                ),
            ));
            return out;
        }
        let rest = text.get(pos..).unwrap_or_default();
        if rest.is_empty() {
            break;
        }
        let room = LINE_MAX - written;
        let end = match rest.iter().take(room).position(|&b| b == b'\n') {
            Some(i) => i + 1,
            None => room.min(rest.len()),
        };
        let chunk = &rest[..end];
        pos += end;
        if chunk.last() == Some(&b'\n') {
            newlines = newlines.saturating_add(1);
        } else if pos < text.len() && cut_line != number {
            cut_line = number;
            out.problems.push((
                number,
                format!(
                    "longer than {LINE_MAX} bytes: libpam 1.5 reads its end as a line of its \
                     own (even the end of a comment), libpam 1.6 and later read it whole"
                ),
            ));
        }
        // What fgets wrote, as the C string functions see it.
        let c_string = match chunk.iter().position(|&b| b == 0) {
            Some(i) => &chunk[..i],
            None => chunk,
        };
        let content_at = c_string
            .iter()
            .position(|&b| !is_delim(b))
            .unwrap_or(c_string.len());
        if matches!(c_string.get(content_at), None | Some(b'#')) {
            if let Some(l) = open.as_mut() {
                l.through_blank = true;
            }
            continue;
        }
        let mut line = open.take().unwrap_or(Logical {
            number,
            text: Vec::new(),
            through_blank: false,
        });
        if let Some(hash) = c_string.iter().position(|&b| b == b'#') {
            line.text.extend_from_slice(&c_string[..hash]);
            out.lines.push(line);
            continue;
        }
        let trimmed_len = c_string
            .iter()
            .rposition(|&b| !matches!(b, b' ' | b'\t' | b'\n'))
            .map_or(0, |i| i + 1);
        match c_string[..trimmed_len].split_last() {
            Some((b'\\', body)) => {
                line.text.extend_from_slice(body);
                line.text.push(b' ');
                open = Some(line);
            }
            _ => {
                line.text.extend_from_slice(c_string);
                out.lines.push(line);
            }
        }
    }
    if let Some(l) = open {
        out.aborted = Some((
            l.number,
            "the file ends in the middle of a continued line (a last line ending in \\): \
             libpam refuses the whole file"
                .to_string(),
        ));
    }
    out
}

/// The words of a line, as libpam's `_pam_StrTok` cuts them: `[...]` is one
/// word without its brackets, up to the first `]` (`\]` stands for `]`).
pub fn words(line: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < line.len() {
        while line.get(i).is_some_and(|&b| is_delim(b)) {
            i += 1;
        }
        if i >= line.len() {
            break;
        }
        let mut word = Vec::new();
        if line.get(i) == Some(&b'[') {
            i += 1;
            while let Some(&b) = line.get(i) {
                if b == b']' {
                    break;
                }
                if b == b'\\' && line.get(i + 1) == Some(&b']') {
                    i += 1;
                    word.push(b']');
                } else {
                    word.push(b);
                }
                i += 1;
            }
        } else {
            while let Some(&b) = line.get(i) {
                if is_delim(b) {
                    break;
                }
                word.push(b);
                i += 1;
            }
        }
        // The byte that ended the word (a delimiter or the `]`) is consumed.
        i += 1;
        out.push(word);
    }
    out
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The actions of the four control words.
pub fn standard(word: &str) -> Option<Actions> {
    use Action::*;
    let (success, ignore, default) = match word {
        "required" => (Ok, Some(Ignore), Bad),
        "requisite" => (Ok, Some(Ignore), Die),
        "optional" => (Ok, None, Ignore),
        "sufficient" => (Done, None, Ignore),
        _ => return None,
    };
    let mut t = [default; RETURN_VALUES];
    t[usize::from(PAM_SUCCESS)] = success;
    t[usize::from(PAM_NEW_AUTHTOK_REQD)] = success;
    if let Some(a) = ignore {
        t[usize::from(PAM_IGNORE)] = a;
    }
    Some(t)
}

/// A bracket list, as libpam's `_pam_parse_control`: `value=action` pairs
/// (spaces allowed around `=`, none needed between pairs), values not named
/// get `default=` or else `bad`. `Err`: libpam cannot parse it, and makes
/// every value `bad`.
pub fn bracket(list: &[u8]) -> Result<Actions, String> {
    let mut set: [Option<Action>; RETURN_VALUES] = [None; RETURN_VALUES];
    let mut i = 0;
    let skip_space = |i: &mut usize| {
        while list.get(*i).is_some_and(|&b| is_space(b)) {
            *i += 1;
        }
    };
    loop {
        skip_space(&mut i);
        let Some(rest) = list.get(i..).filter(|r| !r.is_empty()) else {
            break;
        };
        let Some((value, name)) = RETURN_NAMES
            .iter()
            .enumerate()
            .find(|(_, n)| rest.starts_with(n.as_bytes()))
        else {
            return Err(format!("expecting a return value at \"{}\"", text(rest)));
        };
        i += name.len();
        if i >= list.len() {
            return Err(format!("expecting \"=\" after \"{name}\""));
        }
        skip_space(&mut i);
        if list.get(i) != Some(&b'=') {
            return Err(format!("expecting \"=\" after \"{name}\""));
        }
        i += 1;
        skip_space(&mut i);
        let rest = list.get(i..).unwrap_or_default();
        if rest.is_empty() {
            return Err(format!("expecting an action after \"{name}=\""));
        }
        let action = match ACTION_NAMES
            .iter()
            .find(|(n, _)| rest.starts_with(n.as_bytes()))
        {
            Some((n, a)) => {
                i += n.len();
                *a
            }
            None => {
                let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
                if digits == 0 {
                    return Err(format!(
                        "\"{}\" is not an action (ignore, ok, done, bad, die, reset or a number)",
                        text(rest)
                    ));
                }
                let n = std::str::from_utf8(&rest[..digits])
                    .ok()
                    .and_then(|s| s.parse::<u32>().ok())
                    .filter(|&n| n <= i32::MAX as u32)
                    .ok_or_else(|| {
                        format!("the jump \"{}\" is too large", text(&rest[..digits]))
                    })?;
                if n == 0 {
                    return Err("a jump of 0 (use ignore)".into());
                }
                i += digits;
                Action::Jump(n)
            }
        };
        if value == RETURN_VALUES {
            for slot in set.iter_mut().filter(|s| s.is_none()) {
                *slot = Some(action);
            }
        } else if let Some(slot) = set.get_mut(value) {
            *slot = Some(action);
        }
    }
    Ok(set.map(|a| a.unwrap_or(Action::Bad)))
}

/// One logical line's words turned into a [`Line`]; `None` for a line
/// without words.
fn line_of(number: u32, raw: &[u8]) -> Option<Line> {
    let words = words(raw);
    let mut words = words.iter();
    let first = words.next()?;
    let (silent, type_bytes) = match first.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, first.as_slice()),
    };
    let is = |w: &[u8], name: &str| w.eq_ignore_ascii_case(name.as_bytes());
    let type_word = if is(type_bytes, "auth") {
        TypeWord::Auth
    } else if is(type_bytes, "account") {
        TypeWord::Account
    } else if is(type_bytes, "session") {
        TypeWord::Session
    } else if is(type_bytes, "password") {
        TypeWord::Password
    } else if is(type_bytes, "@include") {
        TypeWord::AtInclude
    } else {
        TypeWord::Illegal(text(type_bytes))
    };
    let mut problem = None;
    let mut forced_failure = false;
    if let TypeWord::Illegal(t) = &type_word {
        forced_failure = true;
        problem.get_or_insert_with(|| {
            format!(
                "\"{t}\" is not a type (auth, account, session, password): libpam makes the \
                 line fail, as an auth line"
            )
        });
    }
    if type_word == TypeWord::AtInclude {
        return Some(Line {
            number,
            silent,
            type_word,
            control: Control::Include,
            control_text: "@include".into(),
            target: words.next().map(|w| text(w)),
            args: Vec::new(),
            forced_failure,
            problem,
        });
    }
    let (control, control_text) = match words.next() {
        None => {
            forced_failure = true;
            problem.get_or_insert_with(|| "no control word: libpam makes the line fail".into());
            (Control::Missing, String::new())
        }
        Some(w) => {
            let lower = text(w).to_ascii_lowercase();
            let shown = if lower.contains(['=', ' ']) || w.is_empty() {
                format!("[{}]", text(w))
            } else {
                text(w)
            };
            let control = match lower.as_str() {
                "include" => Control::Include,
                "substack" => Control::Substack,
                word => match standard(word) {
                    Some(t) => Control::Table(Box::new(t)),
                    None => match bracket(w) {
                        Ok(t) => Control::Table(Box::new(t)),
                        Err(why) => {
                            problem.get_or_insert_with(|| {
                                format!(
                                    "the control {shown} cannot be parsed ({why}): libpam \
                                     treats every result of the module as a failure"
                                )
                            });
                            Control::Table(Box::new([Action::Bad; RETURN_VALUES]))
                        }
                    },
                },
            };
            (control, shown)
        }
    };
    let target = words.next().map(|w| text(w));
    if target.is_none() && control != Control::Missing {
        forced_failure = true;
        problem.get_or_insert_with(|| "no module or file named: libpam makes the line fail".into());
    }
    Some(Line {
        number,
        silent,
        type_word,
        control,
        control_text,
        target,
        args: words.map(|w| text(w)).collect(),
        forced_failure,
        problem,
    })
}

/// Reads a whole file.
pub fn parse(file: &[u8]) -> Parsed {
    let mut parsed = Parsed::default();
    let file = match file.get(..FILE_MAX) {
        Some(head) if file.len() > FILE_MAX => {
            parsed.problems.push((
                0,
                format!("larger than {FILE_MAX} bytes: only the start was read"),
            ));
            head
        }
        _ => file,
    };
    let assembled = assemble(file);
    parsed.problems.extend(assembled.problems);
    for l in assembled.lines {
        if l.through_blank {
            parsed.problems.push((
                l.number,
                "a continued line (ending in \\) runs into a blank or comment line: libpam 1.5 \
                 skips it and goes on, libpam 1.6 and later end the line there"
                    .into(),
            ));
        }
        if let Some(line) = line_of(l.number, &l.text) {
            parsed.lines.push(line);
        }
    }
    parsed.aborted = assembled.aborted;
    parsed
}
