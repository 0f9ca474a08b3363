//! The ordered list of patterns and the rule that the last match wins.

use super::glob_syntax;
use super::pattern::Pattern;
use crate::gopath;

/// A pattern that Docker would reject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// A lone `!`.
    #[error("illegal exclusion pattern: \"!\"")]
    IllegalExclusion,
    /// A pattern that `filepath.Match` or Go's regexp would reject.
    #[error("syntax error in pattern {pattern:?}: {reason}")]
    BadPattern {
        /// The pattern as written.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Decides which context paths `.dockerignore` patterns exclude (moby's `PatternMatcher`).
///
/// Paths are slash-separated and relative to the context root, without a leading `./`.
///
/// ```
/// use bud_frontend::dockerignore::PatternMatcher;
///
/// let pm = PatternMatcher::new(["docs", "!docs/README.md", "**/*.log"]).unwrap();
/// assert!(pm.matches("docs/guide.md"));
/// assert!(!pm.matches("docs/README.md"));
/// assert!(pm.matches("src/debug.log"));
/// assert!(!pm.matches("src/main.rs"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct PatternMatcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
    only_prefix_exceptions: bool,
}

/// What a directory's patterns matched, handed to its children by a walker
/// ([`PatternMatcher::matches_using_parent`]). The default value means "nothing known".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchInfo {
    parent_matched: Vec<bool>,
}

impl PatternMatcher {
    /// Compiles `patterns` in order. Each is trimmed and cleaned (empty ones are skipped); a
    /// leading `!` makes an exception.
    pub fn new<I, S>(patterns: I) -> Result<Self, PatternError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut pm = Self {
            patterns: Vec::new(),
            exclusions: false,
            only_prefix_exceptions: true,
        };
        for written in patterns {
            let written = written.as_ref();
            let trimmed = written.trim();
            if trimmed.is_empty() {
                continue;
            }
            // moby cleans before looking at `!`, so `!a/../b` is the pattern `b`.
            let cleaned = gopath::clean(trimmed);
            let (text, exclusion) = match cleaned.strip_prefix('!') {
                Some("") => return Err(PatternError::IllegalExclusion),
                Some(rest) => (rest.to_owned(), true),
                None => (cleaned, false),
            };
            let bad = |reason: String| PatternError::BadPattern {
                pattern: written.to_owned(),
                reason,
            };
            glob_syntax::check(&text).map_err(|r| bad(r.to_owned()))?;
            let pattern = Pattern::compile(text, exclusion).map_err(bad)?;
            if exclusion {
                pm.exclusions = true;
                const GLOB_CHARS: &[char] = &['*', '[', ']', '?', '^', '\\'];
                if without_trailing_glob(pattern.as_str()).contains(GLOB_CHARS) {
                    pm.only_prefix_exceptions = false;
                }
            }
            pm.patterns.push(pattern);
        }
        Ok(pm)
    }

    /// The patterns, in order.
    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Whether any pattern is an exception (`!…`).
    pub fn exclusions(&self) -> bool {
        self.exclusions
    }

    /// Whether `path` is excluded: the last pattern that matches it or one of its parent
    /// directories decides (moby's `MatchesOrParentMatches`).
    pub fn matches(&self, path: &str) -> bool {
        let parent = gopath::dir(path);
        let parent_dirs: Vec<&str> = parent.split('/').collect();
        let mut matched = false;
        for pattern in &self.patterns {
            // An inclusion cannot change an excluded path, nor an exception an included one.
            if pattern.is_exclusion() != matched {
                continue;
            }
            let hit = pattern.matches(path)
                || (parent != "."
                    && (1..=parent_dirs.len())
                        .any(|n| pattern.matches(&parent_dirs[..n].join("/"))));
            if hit {
                matched = !pattern.is_exclusion();
            }
        }
        matched
    }

    /// Same as [`matches`](Self::matches); named after moby's function for readers of both.
    pub fn matches_or_parent_matches(&self, path: &str) -> bool {
        self.matches(path)
    }

    /// [`matches`](Self::matches) for a walker that visits directories before their contents
    /// and passes each directory's [`MatchInfo`] to its children (moby's
    /// `MatchesUsingParentResults`); with `MatchInfo::default()` the parents are checked here.
    /// A `MatchInfo` from a different matcher counts as unknown.
    pub fn matches_using_parent(&self, path: &str, parent: &MatchInfo) -> (bool, MatchInfo) {
        let known = parent.parent_matched.len() == self.patterns.len() && !self.patterns.is_empty();
        let mut info = MatchInfo {
            parent_matched: vec![false; self.patterns.len()],
        };
        let mut matched = false;
        for (i, pattern) in self.patterns.iter().enumerate() {
            let mut hit = known && parent.parent_matched[i];
            if !hit {
                if pattern.is_exclusion() != matched {
                    continue;
                }
                hit = pattern.matches(path);
                if !hit && !known {
                    let parent_path = gopath::dir(path);
                    if parent_path != "." {
                        let dirs: Vec<&str> = parent_path.split('/').collect();
                        hit = (1..=dirs.len()).any(|n| pattern.matches(&dirs[..n].join("/")));
                    }
                }
            }
            info.parent_matched[i] = hit;
            if hit {
                matched = !pattern.is_exclusion();
            }
        }
        (matched, info)
    }

    /// For a directory that [`matches`](Self::matches) excluded: whether a walker may skip
    /// everything under it because no exception can re-include anything there.
    ///
    /// This is BuildKit's (fsutil's) rule: pruning is only attempted when every exception is a
    /// plain path (wildcards allowed only as a trailing `/*` or `/**`), and then a directory
    /// is kept only if some exception lies inside it.
    pub fn can_skip_excluded_dir(&self, dir: &str) -> bool {
        if !self.exclusions {
            return true;
        }
        if !self.only_prefix_exceptions {
            return false;
        }
        let dir_slash = format!("{dir}/");
        !self
            .patterns
            .iter()
            .filter(|p| p.is_exclusion())
            .any(|p| format!("{}/", without_trailing_glob(p.as_str())).starts_with(&dir_slash))
    }
}

fn without_trailing_glob(pattern: &str) -> &str {
    let pattern = pattern.strip_suffix("/**").unwrap_or(pattern);
    pattern.strip_suffix("/*").unwrap_or(pattern)
}
