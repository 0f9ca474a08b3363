//! Which rules run and whether a finding fails the build: the `# check=` directive, the
//! `BUILDKIT_DOCKERFILE_CHECK` build arg (which replaces it) and `# check=` comments above
//! one instruction (which add to it there), as BuildKit's `linter.ParseLintOptions` reads them.

use std::collections::BTreeSet;

use super::rules::Rule;

/// A linter configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckConfig {
    /// `skip=all`.
    pub skip_all: bool,
    /// `skip=A,B`.
    pub skip: BTreeSet<String>,
    /// `experimental=all`.
    pub experimental_all: bool,
    /// `experimental=A,B`.
    pub experimental: BTreeSet<String>,
    /// `error=true`: a finding fails the build.
    pub error: bool,
}

/// A `check` value that BuildKit refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckConfigError {
    /// An option that is not `skip=`, `error=` or `experimental=`.
    #[error("invalid check option {0:?}")]
    Invalid(String),
    /// `error=` with a value that is not a boolean.
    #[error("failed to parse check option {0:?}: invalid syntax")]
    Bool(String),
}

impl CheckConfig {
    /// Parses `skip=…;experimental=…;error=…` (at most three parts, as BuildKit splits).
    pub fn parse(text: &str) -> Result<Self, CheckConfigError> {
        let mut config = CheckConfig::default();
        let text = text.trim();
        if text.is_empty() {
            return Ok(config);
        }
        for part in text.splitn(3, ';') {
            let Some((key, value)) = part.split_once('=') else {
                return Err(CheckConfigError::Invalid(part.to_string()));
            };
            let value = value.trim();
            match key.trim() {
                "skip" if value == "all" => config.skip_all = true,
                "skip" => config.skip = names(value),
                "experimental" if value == "all" => config.experimental_all = true,
                "experimental" => config.experimental = names(value),
                "error" => {
                    config.error = crate::gobool::parse_go_bool(value)
                        .ok_or_else(|| CheckConfigError::Bool(part.into()))?
                }
                other => return Err(CheckConfigError::Invalid(other.to_string())),
            }
        }
        Ok(config)
    }

    /// This configuration with `other`'s added (BuildKit's `WithMergedConfig`).
    pub fn merged(&self, other: &CheckConfig) -> CheckConfig {
        let mut merged = self.clone();
        merged.skip_all |= other.skip_all;
        merged.experimental_all |= other.experimental_all;
        merged.skip.extend(other.skip.iter().cloned());
        merged
            .experimental
            .extend(other.experimental.iter().cloned());
        merged
    }

    /// The configuration in force under an instruction's comments: the first `check=`
    /// among them adds to this one; one that does not parse changes nothing.
    pub fn under_comments(&self, comments: &[String]) -> CheckConfig {
        let found = comments
            .iter()
            .find_map(|c| crate::parser::directive_in_comment(c).filter(|(k, _)| k == "check"));
        let Some((_, value)) = found else {
            return self.clone();
        };
        let value = value.split(' ').next().unwrap_or_default();
        match CheckConfig::parse(value) {
            Ok(other) => self.merged(&other),
            Err(_) => self.clone(),
        }
    }

    /// Whether `rule` runs.
    pub fn enabled(&self, rule: &Rule) -> bool {
        if rule.experimental {
            self.experimental_all || self.experimental.contains(rule.name)
        } else {
            !self.skip_all && !self.skip.contains(rule.name)
        }
    }
}

fn names(value: &str) -> BTreeSet<String> {
    value.split(',').map(|n| n.trim().to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lint::rules;

    #[test]
    fn reads_skip_error_and_experimental() {
        let c = CheckConfig::parse("skip=JSONArgsRecommended, StageNameCasing;error=true").unwrap();
        assert!(c.error);
        assert!(!c.enabled(&rules::JSON_ARGS_RECOMMENDED));
        assert!(!c.enabled(&rules::STAGE_NAME_CASING));
        assert!(c.enabled(&rules::FROM_AS_CASING));
        assert!(!c.enabled(&rules::INVALID_DEFINITION_DESCRIPTION));
        let c = CheckConfig::parse("experimental=all").unwrap();
        assert!(c.enabled(&rules::INVALID_DEFINITION_DESCRIPTION));
        let c = CheckConfig::parse("skip=all").unwrap();
        assert!(!c.enabled(&rules::UNDEFINED_VAR));
    }

    #[test]
    fn refuses_what_buildkit_refuses() {
        assert_eq!(
            CheckConfig::parse("skip"),
            Err(CheckConfigError::Invalid("skip".into()))
        );
        assert_eq!(
            CheckConfig::parse("nope=1"),
            Err(CheckConfigError::Invalid("nope".into()))
        );
        assert_eq!(
            CheckConfig::parse("error=yes"),
            Err(CheckConfigError::Bool("error=yes".into()))
        );
    }

    #[test]
    fn comments_add_to_the_configuration() {
        let base = CheckConfig::parse("skip=UndefinedVar").unwrap();
        let under = base.under_comments(&["a comment".into(), "check=skip=StageNameCasing".into()]);
        assert!(!under.enabled(&rules::UNDEFINED_VAR));
        assert!(!under.enabled(&rules::STAGE_NAME_CASING));
        assert_eq!(base.under_comments(&["check=bad".into()]), base);
    }
}
