//! One pattern, compiled the way moby's `patternmatcher` compiles it.

use regex::Regex;

use super::go_regex;

/// One `.dockerignore` pattern, cleaned and compiled.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    exclusion: bool,
    kind: Kind,
}

/// moby picks the cheapest test that gives the same answer as the full regex.
#[derive(Debug, Clone)]
enum Kind {
    /// No wildcard: the path must equal the pattern.
    Exact,
    /// `prefix**`: the path must start with the prefix.
    Prefix(String),
    /// `**suffix`: the path must end with the suffix (or equal it without its leading `/`).
    /// Bytes, because moby cuts two bytes off the pattern even when a byte order mark it
    /// skipped makes that the middle of a character.
    Suffix(Vec<u8>),
    Regex(Regex),
}

impl Pattern {
    /// Compiles `text` (already cleaned, `!` removed). Errors say why Go would reject it.
    pub(crate) fn compile(text: String, exclusion: bool) -> Result<Self, String> {
        let kind = compile_kind(&text)?;
        Ok(Self {
            text,
            exclusion,
            kind,
        })
    }

    /// The cleaned pattern, without the `!` of an exception.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether this is an exception (`!pattern`), which re-includes what it matches.
    pub fn is_exclusion(&self) -> bool {
        self.exclusion
    }

    /// Whether `path` (slash-separated, relative to the context) matches this pattern itself;
    /// parent directories are the matcher's business.
    pub fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact => path == self.text,
            Kind::Prefix(prefix) => path.starts_with(prefix.as_str()),
            Kind::Suffix(suffix) => {
                let path = path.as_bytes();
                path.ends_with(suffix) || suffix.strip_prefix(b"/").is_some_and(|rest| path == rest)
            }
            Kind::Regex(re) => re.is_match(path),
        }
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.exclusion {
            f.write_str("!")?;
        }
        f.write_str(&self.text)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Detected {
    Exact,
    Prefix,
    Suffix,
    Regex,
}

/// moby's translation: `*` is `[^/]*`, `?` is `[^/]`, `**` (with an optional `/` after it) is
/// `(.*/)?`, or `.*` at the end; `\x` stays an escape, `[` and `]` pass through, and the Go
/// regex metacharacters that `filepath.Match` does not know (`.+()|{}$`) are escaped.
fn compile_kind(pattern: &str) -> Result<Kind, String> {
    let mut re = String::from("^");
    let mut detected = Detected::Exact;
    // moby reads the pattern with Go's text/scanner, which drops a leading byte order mark.
    let mut chars = pattern
        .strip_prefix('\u{feff}')
        .unwrap_or(pattern)
        .chars()
        .peekable();
    let mut first = true;
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                if chars.peek().is_none() {
                    if detected == Detected::Exact {
                        detected = Detected::Prefix;
                    } else {
                        re.push_str(".*");
                        detected = Detected::Regex;
                    }
                } else {
                    re.push_str("(.*/)?");
                    detected = Detected::Regex;
                }
                if first {
                    detected = Detected::Suffix;
                }
            }
            '*' => {
                re.push_str("[^/]*");
                detected = Detected::Regex;
            }
            '?' => {
                re.push_str("[^/]");
                detected = Detected::Regex;
            }
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                re.push('\\');
                re.push(c);
            }
            '\\' => match chars.next() {
                Some(escaped) => {
                    re.push('\\');
                    re.push(escaped);
                    detected = Detected::Regex;
                }
                None => re.push('\\'),
            },
            '[' | ']' => {
                re.push(c);
                detected = Detected::Regex;
            }
            _ => re.push(c),
        }
        first = false;
    }
    Ok(match detected {
        Detected::Exact => Kind::Exact,
        // The text after `**` or before the trailing `**` is literal for these kinds.
        Detected::Prefix => Kind::Prefix(pattern.strip_suffix("**").unwrap_or(pattern).to_owned()),
        Detected::Suffix => Kind::Suffix(pattern.as_bytes()[2..].to_vec()),
        Detected::Regex => {
            re.push('$');
            let rust = go_regex::to_rust(&re)?;
            Kind::Regex(Regex::new(&rust).map_err(|e| e.to_string())?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(pattern: &str) -> &'static str {
        match compile_kind(pattern).unwrap() {
            Kind::Exact => "exact",
            Kind::Prefix(_) => "prefix",
            Kind::Suffix(_) => "suffix",
            Kind::Regex(_) => "regex",
        }
    }

    #[test]
    fn picks_the_same_kind_as_moby() {
        assert_eq!(kind("a/b.c"), "exact");
        assert_eq!(kind("a/**"), "prefix");
        assert_eq!(kind("**"), "suffix");
        assert_eq!(kind("**/a.go"), "suffix");
        assert_eq!(kind("**/*.go"), "regex");
        assert_eq!(kind("a/*"), "regex");
        assert_eq!(kind("a\\b"), "regex");
    }

    #[test]
    fn moby_quirks_are_kept() {
        let p = |s: &str| Pattern::compile(s.to_owned(), false).unwrap();
        // Only `^` negates a class; `!` is a member.
        assert!(p("[!a]").matches("!") && p("[!a]").matches("a") && !p("[!a]").matches("b"));
        assert!(p("[^a]").matches("b") && !p("[^a]").matches("a"));
        // `^` outside a class is an anchor that the pattern already has.
        assert!(p("^ab*").matches("abc"));
        // A suffix pattern matches any name ending in it.
        assert!(p("**file").matches("dir/myfile"));
        // `[*]` becomes `[[^/]*]` in Go's syntax: a class of `[`, `^`, `/`, repeated, then `]`.
        assert!(p("[*]").matches("[^]") && !p("[*]").matches("*"));
    }
}
