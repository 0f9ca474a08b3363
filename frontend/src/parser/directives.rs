//! Parser directives: `# syntax=`, `# escape=` and `# check=` at the top of a Dockerfile.
//!
//! Directives are only recognised before anything else: the first line that is not a
//! directive (an instruction, an empty line, any other comment) ends them for good.

use super::error::ParseErrorKind;

/// The escape character a Dockerfile uses unless `# escape=` says otherwise.
pub const DEFAULT_ESCAPE: char = '\\';

/// The parser directives found at the top of a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives {
    /// `# syntax=` value (the frontend image reference), if any.
    pub syntax: Option<String>,
    /// The 1-based line of `# syntax=`.
    pub syntax_line: Option<usize>,
    /// The escape and line-continuation character: `\` (default) or `` ` ``.
    pub escape: char,
    /// `# check=` value (linter configuration), if any.
    pub check: Option<String>,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            syntax: None,
            syntax_line: None,
            escape: DEFAULT_ESCAPE,
            check: None,
        }
    }
}

/// The parser directives: any other `# key=value` line ends the directives, a comment.
pub const DIRECTIVES: &[&str] = &["syntax", "escape", "check"];

/// Reads directives line by line until the first line that is not one.
#[derive(Debug, Default)]
pub(crate) struct DirectiveScanner {
    done: bool,
    seen_syntax: bool,
    seen_escape: bool,
    seen_check: bool,
}

impl DirectiveScanner {
    /// Looks at one line (newline already trimmed). Returns `Ok(true)` when the line was a
    /// directive and has been recorded in `directives`.
    pub(crate) fn scan(
        &mut self,
        line: &str,
        directives: &mut Directives,
    ) -> Result<bool, ParseErrorKind> {
        if self.done {
            return Ok(false);
        }
        let Some((key, value)) = split_directive(line) else {
            self.done = true;
            return Ok(false);
        };
        let key = key.to_ascii_lowercase();
        if !DIRECTIVES.contains(&key.as_str()) {
            self.done = true;
            return Ok(false);
        }
        let seen = match key.as_str() {
            "syntax" => &mut self.seen_syntax,
            "escape" => &mut self.seen_escape,
            "check" => &mut self.seen_check,
            _ => {
                self.done = true;
                return Ok(false);
            }
        };
        if std::mem::replace(seen, true) {
            return Err(ParseErrorKind::RepeatedDirective(key));
        }
        match key.as_str() {
            "syntax" => directives.syntax = Some(value.to_string()),
            "check" => directives.check = Some(value.to_string()),
            _ => {
                directives.escape = match value {
                    "\\" => '\\',
                    "`" => '`',
                    other => return Err(ParseErrorKind::InvalidEscapeToken(other.to_string())),
                }
            }
        }
        Ok(true)
    }
}

/// The directive a comment's text (`#` already removed) spells, key lower-cased: how
/// BuildKit reads `# check=` comments above an instruction.
pub fn directive_in_comment(comment: &str) -> Option<(String, String)> {
    let line = format!("#{comment}");
    let (key, value) = split_directive(&line)?;
    Some((key.to_ascii_lowercase(), value.to_string()))
}

/// Go's `\s` in RE2: ASCII whitespace without the vertical tab.
fn is_re_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c')
}

/// Splits `#key=value` as BuildKit's `^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$` does
/// (after the `#` and leading whitespace).
fn split_directive(line: &str) -> Option<(&str, &str)> {
    let body = line.strip_prefix('#')?.trim_start();
    let key_len = body
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(body.len(), |(i, _)| i);
    if key_len == 0 {
        return None;
    }
    let (key, rest) = body.split_at(key_len);
    let rest = rest.trim_start_matches(is_re_space).strip_prefix('=')?;
    let value = rest.trim_matches(is_re_space);
    if !value.is_empty() {
        return Some((key, value));
    }
    // `.+?` needs one character: with nothing but whitespace after `=`, the regex gives
    // the last whitespace character as the value.
    let last = rest.char_indices().last()?.0;
    Some((key, &rest[last..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(lines: &[&str]) -> Result<Directives, ParseErrorKind> {
        let mut scanner = DirectiveScanner::default();
        let mut d = Directives::default();
        for line in lines {
            scanner.scan(line, &mut d)?;
        }
        Ok(d)
    }

    #[test]
    fn reads_all_three_directives_case_insensitively() {
        let d = scan_all(&[
            "# SYNTAX = docker/dockerfile:1",
            "#escape=`",
            "# Check=skip=all",
        ])
        .unwrap();
        assert_eq!(d.syntax.as_deref(), Some("docker/dockerfile:1"));
        assert_eq!(d.escape, '`');
        assert_eq!(d.check.as_deref(), Some("skip=all"));
    }

    #[test]
    fn stops_at_first_non_directive() {
        let d = scan_all(&["# a comment", "# escape=`"]).unwrap();
        assert_eq!(d.escape, '\\');
        let d = scan_all(&["# unknown=1", "# escape=`"]).unwrap();
        assert_eq!(d.escape, '\\');
        let d = scan_all(&["", "# escape=`"]).unwrap();
        assert_eq!(d.escape, '\\');
    }

    #[test]
    fn repeated_directive_is_an_error() {
        assert_eq!(
            scan_all(&["# escape=`", "# ESCAPE=\\"]),
            Err(ParseErrorKind::RepeatedDirective("escape".into()))
        );
    }

    #[test]
    fn invalid_escape_is_an_error() {
        assert_eq!(
            scan_all(&["# escape=x"]),
            Err(ParseErrorKind::InvalidEscapeToken("x".into()))
        );
        assert_eq!(
            scan_all(&["# escape=  "]),
            Err(ParseErrorKind::InvalidEscapeToken(" ".into()))
        );
    }

    #[test]
    fn directive_needs_a_value() {
        let d = scan_all(&["# syntax=", "# escape=`"]).unwrap();
        assert_eq!(d.syntax, None);
        assert_eq!(d.escape, '\\');
    }
}
