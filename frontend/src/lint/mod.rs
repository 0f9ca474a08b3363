//! Build checks: the rules BuildKit (≥ 0.15) runs over every Dockerfile it builds, with its
//! names, messages, documentation URLs and firing conditions (`frontend/dockerfile/linter`
//! and the checks spread through `dockerfile2llb`).
//!
//! A pure pass beside the conversion: it reads the parsed Dockerfile, the build args and
//! the base images' configs (for the variables and SHELL they bring), and returns findings
//! with their lines. `syntax` holds the rules that need only the text, `flow` those that
//! follow ARG, ENV and stages as the conversion does.

mod config;
pub(crate) mod flow;
pub mod rules;
mod suggest;
mod syntax;

use std::collections::HashMap;

pub use config::{CheckConfig, CheckConfigError};
pub use flow::looks_secret;
pub use rules::Rule;

use crate::convert::{ConvertOptions, ImageResolver};
use crate::parser::Node;

/// One rule firing on one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The rule.
    pub rule: &'static Rule,
    /// What is wrong, here.
    pub message: String,
    /// 1-based first line.
    pub start_line: usize,
    /// 1-based last line.
    pub end_line: usize,
}

impl Finding {
    /// The one-line form docker build prints: `Rule: message (line N)`.
    pub fn short(&self) -> String {
        format!(
            "{}: {} (line {})",
            self.rule.name, self.message, self.start_line
        )
    }
}

/// What the checks see besides the Dockerfile.
#[derive(Debug, Clone, Copy)]
pub struct LintOptions<'a> {
    /// The conversion's options: build args, target, platforms, `.dockerignore` patterns,
    /// named contexts.
    pub convert: &'a ConvertOptions,
    /// Check every stage (`--check`), not only those the target needs (a build).
    pub all_stages: bool,
}

/// The findings of a check, in the order BuildKit reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Every finding.
    pub findings: Vec<Finding>,
    /// `error=true` was set: findings fail the build.
    pub fail_on_findings: bool,
}

impl Report {
    /// The build error BuildKit returns when findings fail the build.
    pub fn error(&self) -> Option<String> {
        if !self.fail_on_findings || self.findings.is_empty() {
            return None;
        }
        let mut names: Vec<&str> = Vec::new();
        for f in &self.findings {
            if !names.contains(&f.rule.name) {
                names.push(f.rule.name);
            }
        }
        Some(format!(
            "lint violation found for rules: {}",
            names.join(", ")
        ))
    }
}

/// Why a Dockerfile could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum LintError {
    /// The Dockerfile does not parse.
    #[error(transparent)]
    Parse(#[from] crate::parser::ParseError),
    /// An instruction is malformed.
    #[error(transparent)]
    Instructions(#[from] crate::instructions::InstructionError),
    /// The `# check=` directive is malformed.
    #[error("failed to parse check options")]
    Directive(#[source] CheckConfigError),
    /// The `BUILDKIT_DOCKERFILE_CHECK` build arg is malformed.
    #[error("failed to parse BUILDKIT_DOCKERFILE_CHECK")]
    BuildArg(#[source] CheckConfigError),
}

/// The build arg that replaces the `# check=` directive.
pub const CHECK_BUILD_ARG: &str = "BUILDKIT_DOCKERFILE_CHECK";

/// Runs the checks over `dockerfile`.
pub fn lint(
    dockerfile: &str,
    opts: &LintOptions<'_>,
    resolver: &dyn ImageResolver,
) -> Result<Report, LintError> {
    let parsed = crate::parser::parse(dockerfile)?;
    let config = match opts.convert.build_args.get(CHECK_BUILD_ARG) {
        Some(value) => CheckConfig::parse(value).map_err(LintError::BuildArg)?,
        None => CheckConfig::parse(parsed.directives.check.as_deref().unwrap_or(""))
            .map_err(LintError::Directive)?,
    };
    let file = crate::instructions::parse(&parsed)?;
    let mut linter = Linter {
        config,
        findings: Vec::new(),
    };
    let nodes: HashMap<usize, &Node> = parsed.nodes.iter().map(|n| (n.start_line, n)).collect();
    let escape = parsed.directives.escape;
    syntax::check(&mut linter, &parsed, &file);
    flow::check(&mut linter, &file, &nodes, escape, opts, resolver);
    Ok(Report {
        fail_on_findings: linter.config.error,
        findings: linter.findings,
    })
}

/// Collects findings under a configuration.
pub(crate) struct Linter {
    config: CheckConfig,
    findings: Vec<Finding>,
}

impl Linter {
    /// Records a finding unless `config` (the file's, or an instruction's) turns it off.
    fn report(
        &mut self,
        config: &CheckConfig,
        rule: &'static Rule,
        message: String,
        lines: (usize, usize),
    ) {
        if config.enabled(rule) {
            self.findings.push(Finding {
                rule,
                message,
                start_line: lines.0,
                end_line: lines.1,
            });
        }
    }
}

/// The keyword as written (`run`, `RUN`, `Run`).
fn keyword_as_written(node: &Node) -> &str {
    node.original
        .split(|c: char| c.is_whitespace())
        .next()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
