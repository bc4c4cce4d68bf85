//! PAM stacks, followed as libpam follows them.
//!
//! For each service that is a way in ([`services`]), the `auth` stack is
//! built as libpam builds it ([`resolve`], reading files through [`files`]
//! and [`parse`]), each module is given what it can return ([`modules`]),
//! every path is followed as libpam's dispatcher follows it ([`walk`]),
//! and the paths that end in success without a successful pam_twostep code
//! step become findings ([`verdict`]).
//!
//! The model is Debian 12's libpam (Linux-PAM 1.5 with Debian's patches),
//! checked against it by tests/audit_pam.rs: each stack there is audited,
//! then logged into through the real libpam with wrong codes. Where other
//! versions read a file differently, the line is reported as a problem.
//!
//! Problems (a missing include, an include loop, a line libpam cannot
//! parse, a file that is not a regular file) are reported with their file
//! and line, and the command then exits 2; where libpam makes such a line
//! fail, the audit makes it fail too, and follows the rest.
#![forbid(unsafe_code)]

pub mod files;
pub mod modules;
pub mod parse;
pub mod resolve;
pub mod services;
pub mod verdict;
pub mod walk;

#[cfg(test)]
mod tests;

use super::{AuditError, CodeAsked, Finding, Users};
use crate::config::Config;
use files::{Source, Tree};
use modules::{Role, Skip, Step};
use resolve::{Kind, Problem, Stack};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What the PAM side of the audit found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PamAudit {
    pub findings: Vec<Finding>,
    /// Problems in the configuration, `FILE:LINE: what` (exit 2).
    pub errors: Vec<AuditError>,
}

/// The findings of every PAM service of the system under `root` (`/`: this
/// machine): every path through a service's `auth` stack that ends in
/// success without a successful pam_twostep code step; and the problems in
/// the files read. `config` is the system's twostep config (for lines
/// without `config=`). `Err`: `root` cannot be read at all.
pub fn audit(root: &Path, config: &Config) -> Result<PamAudit, AuditError> {
    check_root(root)?;
    Ok(audit_source(
        &Tree::new(root),
        config,
        crate::auth::system_clock(),
    ))
}

/// Whether `service`'s `auth` stack under `root` asks every user for the
/// code (or skips it only by twostep's own policy, or in a way
/// `audit.accept` accepts), and whether at a prompt of its own or in the
/// password's answer: what sshd's keyboard-interactive and password
/// methods go through. Problems in its files are left to [`audit`].
pub fn asks_for_the_code(
    root: &Path,
    config: &Config,
    service: &str,
) -> Result<CodeAsked, AuditError> {
    check_root(root)?;
    let now = crate::auth::system_clock();
    Ok(asks_for_the_code_in(&Tree::new(root), config, now, service))
}

/// [`asks_for_the_code`] of any [`Source`], at the time `now`.
pub fn asks_for_the_code_in(
    src: &dyn Source,
    config: &Config,
    now: u64,
    service: &str,
) -> CodeAsked {
    let (mut found, _) = service_findings(src, config, now, service);
    let accepted = |f: &Finding| config.audit.accept.iter().any(|a| a.matches(&f.key));
    found.retain(|f| f.way_in && !accepted(&f.finding));
    if !found.is_empty() {
        CodeAsked::NotOfEveryone
    } else if code_with_the_password(src, service) {
        CodeAsked::WithThePassword
    } else {
        CodeAsked::AtItsOwnPrompt
    }
}

/// Whether every pam_twostep code step of `service`'s stack has a
/// `preauth single` line before it: each then judges the code typed after
/// the password instead of prompting for it. Read from the lines' order,
/// not from the paths: a stack that jumps over its `preauth single` line
/// to a code step would make that step prompt, which refuses sshd's
/// password method (never a way in, only a note missed).
fn code_with_the_password(src: &dyn Source, service: &str) -> bool {
    let (stack, _) = resolve::stack(src, service);
    let mut single_before = false;
    let mut code_steps = 0usize;
    for h in &stack.handlers {
        let Kind::Module { path, args } = &h.kind else {
            continue;
        };
        match modules::role_of(path, args) {
            Role::Preauth { single: true } => single_before = true,
            Role::CodeStep if !single_before => return false,
            Role::CodeStep => code_steps += 1,
            _ => {}
        }
    }
    code_steps > 0
}

fn check_root(root: &Path) -> Result<(), AuditError> {
    match std::fs::metadata(root) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(AuditError(format!("{}: not a directory", root.display()))),
        Err(e) => Err(AuditError(format!("{}: {e}", root.display()))),
    }
}

/// [`audit`] of any [`Source`], at the time `now`.
pub fn audit_source(src: &dyn Source, config: &Config, now: u64) -> PamAudit {
    let src = &files::Listed::new(src);
    let mut out = PamAudit::default();
    let mut problems: Vec<Problem> = Vec::new();
    for service in services::names(src) {
        let (found, mut p) = service_findings(src, config, now, &service);
        out.findings.extend(found.into_iter().map(|f| f.finding));
        problems.append(&mut p);
    }
    problems.sort();
    problems.dedup();
    out.errors = problems
        .into_iter()
        .map(|p| AuditError(p.to_string()))
        .collect();
    out
}

/// One service's findings and problems; nothing if it is not a way in.
fn service_findings(
    src: &dyn Source,
    config: &Config,
    now: u64,
    service: &str,
) -> (Vec<verdict::Found>, Vec<Problem>) {
    let (stack, mut problems) = resolve::stack(src, service);
    let files: Vec<&str> = stack.files.iter().map(String::as_str).collect();
    let has_twostep = stack.handlers.iter().any(
        |h| matches!(&h.kind, Kind::Module { path, .. } if modules::name(path) == "pam_twostep"),
    );
    if services::audited(service, &files, has_twostep).is_none() {
        return (Vec::new(), Vec::new());
    }
    if let Some(why) = &stack.refused {
        problems.push(Problem {
            file: stack
                .own_file
                .clone()
                .unwrap_or_else(|| "/etc/pam.d/other".into()),
            line: None,
            what: format!("libpam cannot set up the service `{service}`: {why}"),
        });
        return (Vec::new(), problems);
    }
    let modelled = model_stack(src, config, now, service, &stack, &mut problems);
    let walked = walk::walk(&stack.handlers, &modelled.moves, &modelled.facts);
    if walked.truncated {
        problems.push(Problem {
            file: stack.own_file.clone().unwrap_or_else(|| "other".into()),
            line: None,
            what: format!(
                "the auth stack of `{service}` has too many paths to follow (more than {} \
                 states): the findings are incomplete",
                walk::MAX_STATES
            ),
        });
    }
    let lines = verdict::Lines {
        service,
        stack: &stack,
        roles: &modelled.roles,
        skips: &modelled.skips,
    };
    (verdict::findings(&lines, &walked), problems)
}

/// The modules of a stack, modelled.
struct Modelled {
    moves: Vec<Vec<walk::Move>>,
    facts: walk::Facts,
    roles: Vec<Role>,
    skips: Vec<(usize, Skip)>,
}

fn model_stack(
    src: &dyn Source,
    config: &Config,
    now: u64,
    service: &str,
    stack: &Stack,
    problems: &mut Vec<Problem>,
) -> Modelled {
    let mut out = Modelled {
        moves: Vec::new(),
        facts: walk::Facts {
            code_step: Vec::new(),
            grants: Vec::new(),
        },
        roles: Vec::new(),
        skips: Vec::new(),
    };
    let cache: RefCell<HashMap<Option<PathBuf>, modules::Loaded>> = RefCell::default();
    let config_of = |path: Option<&Path>| {
        // config= naming the default file is the system's config.
        let key = path
            .filter(|p| *p != Path::new(crate::config::DEFAULT_PATH))
            .map(Path::to_path_buf);
        if let Some(hit) = cache.borrow().get(&key) {
            return hit.clone();
        }
        let loaded = match &key {
            None => Ok(config.clone()),
            Some(p) => src.config(&p.display().to_string()),
        }
        .map(|c| {
            let skips = modules::skips(&c, now);
            (c, skips)
        });
        cache.borrow_mut().insert(key, loaded.clone());
        loaded
    };
    let mut presence: HashMap<String, Option<bool>> = HashMap::new();
    for h in &stack.handlers {
        let (model, grants) = match &h.kind {
            Kind::Module { path, args } => {
                let present = *presence
                    .entry(path.clone())
                    .or_insert_with(|| files::module_present(src, path));
                let m = modules::model(path, args, present, service, &config_of);
                (m, modules::grants(path))
            }
            Kind::MustFail => (
                modules::Model {
                    outcomes: modules::must_fail(),
                    role: Role::NotOurs,
                    problem: None,
                    skips: Vec::new(),
                },
                false,
            ),
            Kind::Marker => (
                modules::Model {
                    outcomes: Vec::new(),
                    role: Role::NotOurs,
                    problem: None,
                    skips: Vec::new(),
                },
                false,
            ),
        };
        if let Some(what) = model.problem {
            problems.push(Problem {
                file: h.at.file.clone(),
                line: Some(h.at.line),
                what,
            });
        }
        // The skips are numbered across the stack.
        let base = out.skips.len();
        let index = out.moves.len();
        out.skips
            .extend(model.skips.into_iter().map(|s| (index, s)));
        let outcomes: Vec<modules::Outcome> = model
            .outcomes
            .into_iter()
            .map(|mut o| {
                if let Step::Policy(i) = o.step {
                    let global = base.saturating_add(usize::from(i));
                    o.step = Step::Policy(u8::try_from(global).unwrap_or(u8::MAX));
                }
                o
            })
            .collect();
        out.moves.push(walk::moves(h, &outcomes));
        out.facts.code_step.push(model.role == Role::CodeStep);
        out.facts.grants.push(grants);
        out.roles.push(model.role);
    }
    out
}
