//! Source wildcards: Go's `filepath.Match` rules, applied the way fsutil's copy resolves
//! `COPY *.txt` sources.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::error::Result;
use super::meta::io_error;
use super::safe::{self, is_absent};

/// A pattern that `filepath.Match` rejects (unterminated class, dangling escape...). Such a
/// pattern matches nothing, as in fsutil which ignores the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadPattern;

/// Go's `filepath.Match` on Unix: `*` and `?` never match `/`, `[...]` classes with `^`
/// negation and ranges, `\` escapes.
pub fn matches(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = name.chars().collect();
    let (mut pi, mut si) = (0usize, 0usize);
    // Where to resume after the last `*`: the pattern index after it and the name index it
    // has consumed up to. Since every `*` matches the same set (non-`/` characters), only the
    // most recent one ever needs to grow.
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < p.len() {
            let step = match p[pi] {
                '*' => {
                    star = Some((pi + 1, si));
                    pi += 1;
                    continue;
                }
                '?' => (si < s.len() && s[si] != '/').then_some(pi + 1),
                '[' => {
                    let (hit, next) = match_class(&p, pi + 1, s.get(si).copied())?;
                    hit.then_some(next)
                }
                '\\' => {
                    let c = *p.get(pi + 1).ok_or(BadPattern)?;
                    (s.get(si) == Some(&c)).then_some(pi + 2)
                }
                c => (s.get(si) == Some(&c)).then_some(pi + 1),
            };
            if let Some(next) = step {
                pi = next;
                si += 1;
                continue;
            }
        } else if si == s.len() {
            return Ok(true);
        }
        match star {
            Some((resume, consumed)) if consumed < s.len() && s[consumed] != '/' => {
                star = Some((resume, consumed + 1));
                pi = resume;
                si = consumed + 1;
            }
            _ => {
                // Go reports a malformed remainder even on mismatch; scanning it keeps
                // `[` without `]` an error rather than a silent non-match.
                validate(&p[pi.min(p.len())..])?;
                return Ok(false);
            }
        }
    }
}

/// Matches one character against the class starting after `[` at `start`. Returns whether
/// it matched and the index after the closing `]`.
fn match_class(p: &[char], start: usize, c: Option<char>) -> Result<(bool, usize), BadPattern> {
    let mut i = start;
    let negated = p.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut hit = false;
    let mut ranges = 0;
    loop {
        if p.get(i) == Some(&']') && ranges > 0 {
            i += 1;
            break;
        }
        let (lo, next) = class_char(p, i)?;
        i = next;
        let mut hi = lo;
        if p.get(i) == Some(&'-') {
            let (h, next) = class_char(p, i + 1)?;
            hi = h;
            i = next;
        }
        if let Some(c) = c
            && lo <= c
            && c <= hi
        {
            hit = true;
        }
        ranges += 1;
    }
    Ok((c.is_some() && hit != negated, i))
}

fn class_char(p: &[char], i: usize) -> Result<(char, usize), BadPattern> {
    match p.get(i) {
        None | Some('-') | Some(']') => Err(BadPattern),
        Some('\\') => p.get(i + 1).map(|c| (*c, i + 2)).ok_or(BadPattern),
        Some(c) => Ok((*c, i + 1)),
    }
}

fn validate(p: &[char]) -> Result<(), BadPattern> {
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' => {
                if i + 1 >= p.len() {
                    return Err(BadPattern);
                }
                i += 2;
            }
            '[' => {
                let (_, next) = match_class(p, i + 1, None)?;
                i = next;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Whether a path component holds a wildcard (`\` escapes the next character).
pub fn contains_wildcards(name: &str) -> bool {
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// Splits a clean absolute path into the literal directory before the first component with a
/// wildcard and the pattern made of the remaining components.
fn split_wildcards(path: &str) -> (String, String) {
    let mut literal = Vec::new();
    let mut pattern = Vec::new();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        if pattern.is_empty() && !contains_wildcards(part) {
            literal.push(part);
        } else {
            pattern.push(part);
        }
    }
    (format!("/{}", literal.join("/")), pattern.join("/"))
}

/// Expands a source path with wildcards inside `root`. A path without wildcards is returned
/// unchanged; matches are returned as root-relative slash paths in lexical walk order. A
/// matched directory is not searched further.
pub fn resolve(root: &Path, src: &str, follow_links: bool) -> Result<Vec<String>> {
    let (literal, pattern) = split_wildcards(&safe::clean_abs(src));
    if pattern.is_empty() {
        return Ok(vec![literal]);
    }
    let base = if follow_links {
        safe::resolve(root, &literal)?
    } else {
        safe::resolve_parent(root, &literal)?
    };
    let meta = match std::fs::symlink_metadata(&base) {
        Ok(meta) => meta,
        Err(err) if is_absent(&err) => return Ok(Vec::new()),
        Err(source) => return Err(io_error("lstat", root, &base)(source)),
    };
    let mut found = Vec::new();
    if meta.is_dir() {
        let depth = pattern.split('/').count();
        walk(root, &base, "", depth, &pattern, &mut found)?;
    }
    Ok(found)
}

fn walk(
    root: &Path,
    dir: &Path,
    rel: &str,
    depth_left: usize,
    pattern: &str,
    found: &mut Vec<String>,
) -> Result<()> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error("open", root, dir))? {
        let entry = entry.map_err(io_error("readdirent", root, dir))?;
        entries.push(entry.file_name());
    }
    entries.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in entries {
        let Some(name) = name.to_str() else {
            // Not valid UTF-8: no Dockerfile pattern can name it.
            continue;
        };
        let child_rel = if rel.is_empty() {
            name.to_owned()
        } else {
            format!("{rel}/{name}")
        };
        let child: PathBuf = dir.join(name);
        if matches(pattern, &child_rel).unwrap_or(false) {
            found.push(
                safe::display(root, &child)
                    .trim_start_matches('/')
                    .to_owned(),
            );
            continue;
        }
        if depth_left > 1 {
            let is_dir = std::fs::symlink_metadata(&child)
                .map(|m| m.is_dir())
                .unwrap_or(false);
            if is_dir {
                walk(root, &child, &child_rel, depth_left - 1, pattern, found)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_match_rules() {
        let cases: &[(&str, &str, Result<bool, BadPattern>)] = &[
            ("abc", "abc", Ok(true)),
            ("*", "abc", Ok(true)),
            ("*c", "abc", Ok(true)),
            ("a*", "a", Ok(true)),
            ("a*/b", "abc/b", Ok(true)),
            ("a*/b", "a/c/b", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Ok(false)),
            ("a*b?c*x", "abxbbxdbxebxczzx", Ok(true)),
            ("ab[c]", "abc", Ok(true)),
            ("ab[b-d]", "abc", Ok(true)),
            ("ab[^c]", "abc", Ok(false)),
            ("ab[^e-g]", "abc", Ok(true)),
            ("a\\*b", "a*b", Ok(true)),
            ("a\\*b", "ab", Ok(false)),
            ("a?b", "a/b", Ok(false)),
            ("a*b", "a/b", Ok(false)),
            ("[\\]a]", "]", Ok(true)),
            ("[x\\-]", "-", Ok(true)),
            ("[", "a", Err(BadPattern)),
            ("[^", "a", Err(BadPattern)),
            ("[]a]", "]", Err(BadPattern)),
            ("a[", "x", Err(BadPattern)),
            ("*x", "xxx", Ok(true)),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(matches(pattern, name), *want, "{pattern} vs {name}");
        }
    }

    #[test]
    fn split_at_first_wildcard_component() {
        assert_eq!(
            split_wildcards("/a/b*/c"),
            ("/a".to_owned(), "b*/c".to_owned())
        );
        assert_eq!(split_wildcards("/a/b"), ("/a/b".to_owned(), String::new()));
        assert_eq!(
            split_wildcards("/a\\*"),
            ("/a\\*".to_owned(), String::new())
        );
    }
}
