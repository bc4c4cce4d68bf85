//! A service's `auth` stack, flattened as libpam builds it
//! (`_pam_init_handlers`, `_pam_parse_conf_file`): the service's file, its
//! includes inlined, each substack behind a marker one level deeper, and
//! the `other` stack when the service has no `auth` line of its own.
//!
//! How files are found (Debian's libpam, verified against it):
//! - the service's file is /etc/pam.d/SERVICE, else /usr/lib/pam.d/SERVICE;
//!   with neither, the service is `other`'s;
//! - `include`, `substack` and `@include` take an absolute path as it is and
//!   a relative name from /etc/pam.d only (Debian's patch; upstream libpam
//!   also looks in /usr/lib/pam.d): a file found only there is reported;
//! - a file that cannot be included makes the line a forced failure
//!   (`bad`), except an `@include` at the top of a service's file, whose
//!   failure makes libpam refuse the service altogether; an include with no
//!   file name crashes Debian's libpam (the login is refused);
//! - substacks deeper than 16 levels fail (libpam's PAM_SUBSTACK_MAX_LEVEL);
//!   includes nested deeper than 16 and include loops, which libpam 1.5
//!   follows until it runs out of file descriptors or stack, are made
//!   forced failures here and reported.
#![forbid(unsafe_code)]

use super::files::{Read, Source};
use super::parse::{self, Action, Actions, Control, RETURN_VALUES, TypeWord};
use std::collections::BTreeSet;

/// libpam's PAM_SUBSTACK_MAX_LEVEL; also the bound on include nesting.
pub const MAX_DEPTH: usize = 16;
/// The most handlers one stack may have here.
pub const MAX_HANDLERS: usize = 4096;

/// Where a handler comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct At {
    pub file: String,
    pub line: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A module to run.
    Module { path: String, args: Vec<String> },
    /// A line libpam makes fail (`PAM_PERM_DENIED`, through its actions).
    MustFail,
    /// Where a substack starts; its lines follow, one level deeper.
    Marker,
}

/// One handler of the flattened stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handler {
    /// 0 for the service's own stack, +1 in each substack.
    pub level: u8,
    pub kind: Kind,
    pub actions: Actions,
    pub at: At,
    /// The control as written, for reports.
    pub control: String,
}

/// Something wrong in a file: reported, and the audit exits 2.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Problem {
    pub file: String,
    pub line: Option<u32>,
    pub what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: {}", self.file, self.what),
            None => write!(f, "{}: {}", self.file, self.what),
        }
    }
}

/// A service's auth stack.
#[derive(Debug, Clone, Default)]
pub struct Stack {
    pub handlers: Vec<Handler>,
    /// Every file read to build it.
    pub files: BTreeSet<String>,
    /// libpam cannot set the service up: every login is refused. Why.
    pub refused: Option<String>,
    /// The service's own file (`None`: it has none and is `other`'s).
    pub own_file: Option<String>,
    /// The stack is `other`'s (the service has no auth line of its own).
    pub from_other: bool,
}

/// Where a service's file is: /etc/pam.d, else /usr/lib/pam.d.
pub fn service_file(src: &dyn Source, service: &str) -> Option<String> {
    ["/etc/pam.d", "/usr/lib/pam.d"]
        .iter()
        .map(|d| format!("{d}/{service}"))
        .find(|p| src.read(p) != Read::Absent)
}

/// The type of lines being read: any (a service's file) or auth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Any,
    Auth,
}

/// Building one list of handlers (the service's, or `other`'s).
struct Builder<'a> {
    src: &'a dyn Source,
    handlers: Vec<Handler>,
    files: BTreeSet<String>,
    problems: Vec<Problem>,
    /// The files being read, outermost first: a loop comes back to one.
    reading: Vec<String>,
    overflow: bool,
}

/// Why libpam refuses the file being read (and so the line that
/// includes it, or the whole service).
type Abort = String;

impl<'a> Builder<'a> {
    fn new(src: &'a dyn Source) -> Builder<'a> {
        Builder {
            src,
            handlers: Vec::new(),
            files: BTreeSet::new(),
            problems: Vec::new(),
            reading: Vec::new(),
            overflow: false,
        }
    }

    fn problem(&mut self, file: &str, line: Option<u32>, what: impl Into<String>) {
        let p = Problem {
            file: file.to_string(),
            line,
            what: what.into(),
        };
        if !self.problems.contains(&p) {
            self.problems.push(p);
        }
    }

    fn push(&mut self, h: Handler) {
        if self.handlers.len() >= MAX_HANDLERS {
            self.overflow = true;
            return;
        }
        self.handlers.push(h);
    }

    /// Reads `path` into the list: its lines of type `want`, at `level`.
    /// `depth` counts the includes and substacks around it.
    fn file(&mut self, path: &str, want: Want, level: u8, depth: usize) -> Result<(), Abort> {
        let bytes = match self.src.read(path) {
            Read::Absent => return Err(format!("{path} does not exist")),
            Read::Unreadable(why) => {
                // fopen succeeds on a directory, which then reads as empty.
                self.problem(path, None, format!("not read as a PAM file: {why}"));
                return Ok(());
            }
            Read::File(b) => b,
        };
        self.files.insert(path.to_string());
        let parsed = parse::parse(&bytes);
        for (line, what) in &parsed.problems {
            self.problem(path, (*line > 0).then_some(*line), what.clone());
        }
        self.reading.push(path.to_string());
        let result = self.lines(path, &parsed.lines, want, level, depth);
        self.reading.pop();
        result?;
        if let Some((line, why)) = parsed.aborted {
            self.problem(path, Some(line), why.clone());
            return Err(format!("{path}:{line}: {why}"));
        }
        Ok(())
    }

    fn lines(
        &mut self,
        path: &str,
        lines: &[parse::Line],
        want: Want,
        level: u8,
        depth: usize,
    ) -> Result<(), Abort> {
        for line in lines {
            // The type this line is read as (libpam's module_type).
            let ty = match &line.type_word {
                TypeWord::Auth => Want::Auth,
                TypeWord::AtInclude => want,
                TypeWord::Illegal(_) => Want::Auth,
                TypeWord::Account | TypeWord::Session | TypeWord::Password => continue,
            };
            if want == Want::Auth && ty != Want::Auth {
                continue;
            }
            let at = At {
                file: path.to_string(),
                line: line.number,
            };
            if let Some(p) = &line.problem {
                self.problem(path, Some(line.number), p.clone());
            }
            match &line.control {
                Control::Include | Control::Substack => {
                    let sub = line.control == Control::Substack;
                    self.include(line, at, ty, level, depth, sub)?;
                }
                Control::Table(actions) => {
                    let kind = match (&line.target, line.forced_failure) {
                        (Some(m), false) => Kind::Module {
                            path: m.clone(),
                            args: line.args.clone(),
                        },
                        _ => Kind::MustFail,
                    };
                    self.push(Handler {
                        level,
                        kind,
                        actions: **actions,
                        at,
                        control: line.control_text.clone(),
                    });
                }
                Control::Missing => self.push(Handler {
                    level,
                    kind: Kind::MustFail,
                    actions: [Action::Bad; RETURN_VALUES],
                    at,
                    control: String::new(),
                }),
            }
        }
        Ok(())
    }

    /// An `include`, `@include` or `substack` line.
    fn include(
        &mut self,
        line: &parse::Line,
        at: At,
        ty: Want,
        level: u8,
        depth: usize,
        sub: bool,
    ) -> Result<(), Abort> {
        let Some(target) = line.target.as_deref() else {
            // Debian's patch reads the missing name (a NULL pointer).
            let why = "an include without a file name: Debian's libpam crashes on it, \
                       and every login of the service is refused";
            self.problem(&at.file, Some(at.line), why);
            return Err(why.into());
        };
        if sub {
            self.push(Handler {
                level,
                kind: Kind::Marker,
                actions: [Action::Bad; RETURN_VALUES],
                at: at.clone(),
                control: "substack".into(),
            });
        }
        let file = if target.starts_with('/') {
            target.to_string()
        } else {
            format!("/etc/pam.d/{target}")
        };
        let inner_level = level.saturating_add(u8::from(sub));
        let outcome = if usize::from(inner_level) >= MAX_DEPTH || depth + 1 >= MAX_DEPTH {
            Err(format!(
                "includes and substacks nested {MAX_DEPTH} deep: libpam refuses the deepest \
                 (substacks) or runs out of file descriptors or stack (includes)"
            ))
        } else if self.reading.contains(&file) {
            let chain = self.reading.join(" -> ");
            Err(format!(
                "an include loop ({chain} -> {file}): libpam follows it until it crashes \
                 or runs out of file descriptors"
            ))
        } else if self.src.read(&file) == Read::Absent {
            let vendor = format!("/usr/lib/pam.d/{target}");
            if !target.starts_with('/') && self.src.read(&vendor) != Read::Absent {
                Err(format!(
                    "{file} does not exist ({vendor} does, but Debian's libpam looks for \
                     included files in /etc/pam.d only)"
                ))
            } else {
                Err(format!("{file} does not exist"))
            }
        } else {
            self.file(&file, ty, inner_level, depth + 1)
        };
        let Err(why) = outcome else {
            return Ok(());
        };
        if ty == Want::Any {
            // libpam adds the failing line with no type, which it refuses:
            // the whole service cannot be set up.
            let what = format!("{why}: libpam refuses every login of the service");
            self.problem(&at.file, Some(at.line), what.clone());
            return Err(what);
        }
        self.problem(
            &at.file,
            Some(at.line),
            format!("{why}: libpam makes this line fail"),
        );
        self.push(Handler {
            level,
            kind: Kind::MustFail,
            actions: [Action::Bad; RETURN_VALUES],
            at,
            control: line.control_text.clone(),
        });
        Ok(())
    }
}

/// The auth stack of `service` (for `other`: the stack that services
/// without a file of their own get), and the problems met building it.
pub fn stack(src: &dyn Source, service: &str) -> (Stack, Vec<Problem>) {
    let mut out = Stack::default();
    let mut problems = Vec::new();
    let other_file = service_file(src, "other");
    let own_file = if service == "other" {
        None
    } else {
        service_file(src, service)
    };
    let mut conf = Builder::new(src);
    if let Some(file) = &own_file
        && let Err(why) = conf.file(file, Want::Any, 0, 0)
    {
        out.refused = Some(why);
    }
    let mut other = Builder::new(src);
    if out.refused.is_none() {
        match &other_file {
            Some(file) => {
                if let Err(why) = other.file(file, Want::Any, 0, 0) {
                    out.refused = Some(format!(
                        "{why} (libpam reads `other` for every service: a broken `other` \
                         refuses them all)"
                    ));
                }
            }
            None if own_file.is_none() => {
                out.refused = Some("no file of its own and no `other`".into());
            }
            None => {}
        }
    }
    for b in [&mut conf, &mut other] {
        if b.overflow {
            let why = format!("more than {MAX_HANDLERS} auth lines: not followed");
            b.problems.push(Problem {
                file: own_file.clone().unwrap_or_else(|| "other".into()),
                line: None,
                what: why.clone(),
            });
            out.refused.get_or_insert(why);
        }
        problems.append(&mut b.problems);
        out.files.append(&mut b.files);
    }
    out.from_other = conf.handlers.is_empty();
    out.handlers = if out.from_other {
        other.handlers
    } else {
        conf.handlers
    };
    out.own_file = own_file;
    if out.refused.is_some() {
        out.handlers.clear();
    }
    problems.sort();
    problems.dedup();
    (out, problems)
}
