//! The shell patterns of `${V#p}`, `${V%p}` and `${V/p/r}`.
//!
//! BuildKit supports `*` (any string), `?` (any character) and `\` escaping `*`, `?` or `\`;
//! there are no bracket expressions. `\}` and `\/` stand for `}` and `/`, which would otherwise
//! end the pattern. Matching follows Go's leftmost-first regular expressions, which the `regex`
//! crate shares, so the pattern is translated to one.

use regex::{Regex, RegexBuilder};

use super::unicode::{is_digit, is_letter};

/// Compiles `pattern`; `greedy` picks the longest match for `*` instead of the shortest, and
/// `anchored` requires the match to start at the beginning of the value.
fn compile(pattern: &str, greedy: bool, anchored: bool) -> Result<Regex, String> {
    let invalid = |why: String| format!("invalid pattern ({pattern}) in substitution: {why}");
    let mut out = String::with_capacity(pattern.len() + 4);
    if anchored {
        out.push('^');
    }
    let star = if greedy { ".*" } else { ".*?" };
    // Go's text/scanner drops a byte order mark at the start of its input.
    let mut chars = pattern
        .strip_prefix('\u{feff}')
        .unwrap_or(pattern)
        .chars()
        .peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push_str(star),
            '?' => out.push('.'),
            '\\' => {
                if matches!(chars.peek(), Some('}' | '/')) {
                    continue;
                }
                match chars.next() {
                    Some(e @ ('*' | '?' | '\\')) => out.push_str(&regex::escape(&e.to_string())),
                    Some(e) => return Err(invalid(format!("invalid escape '\\{e}'"))),
                    None => return Err(invalid("invalid escape '\\'".to_owned())),
                }
            }
            _ => out.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
        }
    }
    RegexBuilder::new(&out)
        .build()
        .map_err(|e| invalid(e.to_string()))
}

/// `${V#p}` (shortest) or `${V##p}` (`greedy`): `value` without the prefix matching `pattern`.
pub(crate) fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    let re = compile(pattern, greedy, true)?;
    Ok(match re.find(value) {
        Some(m) => value[m.end()..].to_owned(),
        None => value.to_owned(),
    })
}

/// `${V%p}` (shortest) or `${V%%p}` (`greedy`): `value` without the suffix matching `pattern`.
///
/// A leftmost regex search cannot find the shortest rightmost match, so both the pattern and
/// the value are reversed and the prefix is trimmed instead.
pub(crate) fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    let reversed_value: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&reverse_pattern(pattern), &reversed_value, greedy)?;
    Ok(trimmed.chars().rev().collect())
}

/// Reverses a pattern while keeping each `\x` escape in front of the character it escapes.
fn reverse_pattern(pattern: &str) -> String {
    let mut units: Vec<&str> = Vec::new();
    let mut rest = pattern;
    while let Some(c) = rest.chars().next() {
        let mut len = c.len_utf8();
        if c == '\\' {
            len += rest[len..].chars().next().map_or(0, char::len_utf8);
        }
        units.push(&rest[..len]);
        rest = &rest[len..];
    }
    units.into_iter().rev().collect()
}

/// `${V/p/r}` (first match) or `${V//p/r}` (`all` matches). `*` is greedy here.
///
/// Replacing all matches expands `$0`/`${0}` in `replacement` to the matched text, `$$` to `$`
/// and any other `$name` to nothing, because BuildKit hands the replacement to Go's
/// `Regexp.ReplaceAllString`; a single replacement is inserted literally.
pub(crate) fn replace(
    pattern: &str,
    value: &str,
    replacement: &str,
    all: bool,
) -> Result<String, String> {
    let re = compile(pattern, true, false)?;
    if !all {
        return Ok(match re.find(value) {
            Some(m) => format!("{}{replacement}{}", &value[..m.start()], &value[m.end()..]),
            None => value.to_owned(),
        });
    }
    let mut out = String::with_capacity(value.len());
    let mut last_end = 0;
    let mut search = 0;
    while search <= value.len() {
        let Some(m) = re.find_at(value, search) else {
            break;
        };
        out.push_str(&value[last_end..m.start()]);
        // An empty match right after the previous match is not replaced again.
        if m.end() > last_end || m.start() == 0 {
            expand(&mut out, replacement, m.as_str());
        }
        last_end = m.end();
        let width = value[search..].chars().next().map_or(0, char::len_utf8);
        search = if search + width > m.end() {
            search + width
        } else if search + 1 > m.end() {
            search + 1
        } else {
            m.end()
        };
    }
    out.push_str(&value[last_end..]);
    Ok(out)
}

/// Go's `Regexp.Expand` for a regex whose only group is the whole match.
fn expand(out: &mut String, template: &str, matched: &str) {
    let mut rest = template;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        rest = &rest[dollar + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        match group_reference(rest) {
            Some((name, after)) => {
                if name == "0" {
                    out.push_str(matched);
                }
                rest = after;
            }
            None => out.push('$'),
        }
    }
    out.push_str(rest);
}

/// The group name after a `$` (`name` or `{name}`) and the text after it.
fn group_reference(s: &str) -> Option<(&str, &str)> {
    let (braced, body) = match s.strip_prefix('{') {
        Some(b) => (true, b),
        None => (false, s),
    };
    let len = body
        .char_indices()
        .find(|&(_, c)| !(is_letter(c) || is_digit(c) || c == '_'))
        .map_or(body.len(), |(i, _)| i);
    if len == 0 {
        return None;
    }
    let name = &body[..len];
    if braced {
        let after = body[len..].strip_prefix('}')?;
        return Some((name, after));
    }
    Some((name, &body[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_translate_like_buildkit() {
        assert_eq!(compile("*", true, true).unwrap().as_str(), "^.*");
        assert_eq!(compile("?", true, true).unwrap().as_str(), "^.");
        assert_eq!(compile("\\*", true, true).unwrap().as_str(), "^\\*");
        assert_eq!(compile("*", false, false).unwrap().as_str(), ".*?");
        let re = compile("(()[]{\\}^$.\\*\\?|\\\\", true, true).unwrap();
        assert!(re.is_match("(()[]{}^$.*?|\\"));
        for bad in ["\\", "\\x", "\\\\\\"] {
            assert!(compile(bad, true, true).is_err(), "{bad}");
        }
    }

    #[test]
    fn reversing_keeps_escapes_in_front() {
        assert_eq!(reverse_pattern("a\\*c"), "c\\*a");
        assert_eq!(reverse_pattern("\\\\\\ab"), "b\\a\\\\");
        assert_eq!(reverse_pattern("ab\\"), "\\ba");
        assert_eq!(reverse_pattern("👽\\🚀🖖"), "🖖\\🚀👽");
        assert_eq!(reverse_pattern("\\\\b"), "b\\\\");
    }

    #[test]
    fn trims_shortest_and_longest() {
        assert_eq!(trim_prefix("*/", "a/b/c", false).unwrap(), "b/c");
        assert_eq!(trim_prefix("*/", "a/b/c", true).unwrap(), "c");
        assert_eq!(trim_suffix("/*", "a/b/c", false).unwrap(), "a/b");
        assert_eq!(trim_suffix("/*", "a/b/c", true).unwrap(), "a");
        assert_eq!(trim_suffix("x", "a/b/c", true).unwrap(), "a/b/c");
    }

    #[test]
    fn replaces_first_or_all() {
        assert_eq!(replace("o", "foo", "0", false).unwrap(), "f0o");
        assert_eq!(replace("o", "foo", "0", true).unwrap(), "f00");
        assert_eq!(
            replace("o", "foo", "<$0$$ $1${0}$>", true).unwrap(),
            "f<o$ o$><o$ o$>"
        );
        assert_eq!(replace("o", "foo", "$0", false).unwrap(), "f$0o");
        // An empty match after a match is skipped, as in Go.
        assert_eq!(replace("*", "abc", "x", true).unwrap(), "x");
        assert_eq!(replace("", "ab", "-", true).unwrap(), "-a-b-");
    }
}
