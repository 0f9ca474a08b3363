//! `.dockerignore`: which files of a build context are left out, with Docker's exact rules.
//!
//! [`parse_dockerignore`] turns the file into patterns as moby's `ignorefile` reader does, and
//! [`PatternMatcher`] decides, as moby's `patternmatcher` does, whether a context path is
//! excluded: the last pattern that matches the path or one of its parent directories wins, and
//! patterns starting with `!` re-include. A context walker uses
//! [`PatternMatcher::matches_using_parent`] to reuse its parent directory's results and
//! [`PatternMatcher::can_skip_excluded_dir`] to prune excluded directories.
//!
//! Pattern syntax is Go's `filepath.Match` (`*`, `?`, `[a-z]`, `[^a-z]`, `\` escapes) plus `**`
//! for any number of directories. Like moby, a pattern is compiled to a regular expression, and
//! its quirks are kept: `[!a]` is a class of `!` and `a` (only `^` negates), a `^` outside a
//! class anchors, and `\d`, `\s`, `\w` are character classes.
//!
//! Deviation: moby validates a pattern's regular expression only when the pattern is first
//! used, so a broken pattern that no path reaches goes unnoticed; here every pattern is
//! compiled by [`PatternMatcher::new`], and a broken one is an error there.

mod glob_syntax;
mod go_regex;
mod matcher;
mod pattern;

pub use matcher::{MatchInfo, PatternError, PatternMatcher};
pub use pattern::Pattern;

/// The patterns of a `.dockerignore` file, in order, as moby's `ignorefile.ReadAll` reads them.
///
/// A leading UTF-8 byte order mark is dropped; lines starting with `#` are comments (a `#`
/// after leading spaces is not); each line is trimmed and empty ones skipped; a pattern is
/// cleaned like a path (`./a//b/` becomes `a/b`) and a leading `/` is dropped, so patterns are
/// relative to the context root. `!` stays in front of exceptions.
///
/// ```
/// use bud_frontend::dockerignore::parse_dockerignore;
///
/// let text = "# build output\n/target\n\n*.log  \n! target/keep.log\n";
/// assert_eq!(parse_dockerignore(text), ["target", "*.log", "!target/keep.log"]);
/// ```
pub fn parse_dockerignore(text: &str) -> Vec<String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut patterns = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let exception = pattern.starts_with('!');
        if exception {
            pattern = pattern[1..].trim();
        }
        let mut cleaned = String::new();
        if !pattern.is_empty() {
            cleaned = crate::gopath::clean(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
        }
        patterns.push(if exception {
            format!("!{cleaned}")
        } else {
            cleaned
        });
    }
    patterns
}

#[cfg(test)]
mod tests {
    use super::parse_dockerignore;

    #[test]
    fn comments_are_lines_starting_with_hash() {
        assert_eq!(parse_dockerignore("#a\n  # b\nc#d"), ["# b", "c#d"]);
    }

    #[test]
    fn patterns_are_trimmed_and_cleaned() {
        let text = "  ./a//b/  \r\n\t\n/c\n/\nx/../y\n../z\n.\n";
        assert_eq!(
            parse_dockerignore(text),
            ["a/b", "c", "/", "y", "../z", "."]
        );
    }

    #[test]
    fn exceptions_are_cleaned_after_the_bang() {
        let text = "!/a/./b\n! c \n!\n!!d\n";
        assert_eq!(parse_dockerignore(text), ["!a/b", "!c", "!", "!!d"]);
    }

    #[test]
    fn byte_order_mark_is_dropped_and_last_line_needs_no_newline() {
        assert_eq!(parse_dockerignore("\u{feff}#c\nlast"), ["last"]);
        assert!(parse_dockerignore("").is_empty());
    }
}
