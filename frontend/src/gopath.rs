//! Go's `path.Clean`, `path.Dir` and `path.Match` (the same as `path/filepath`'s on Unix): BuildKit, fsutil
//! and moby clean every path and pattern with them, so bud has exactly one copy, tested
//! against Go's own cases.

/// The shortest path equivalent to `path` by lexical processing: repeated and trailing `/`
/// and `.` elements go, `x/..` pairs cancel, `..` at the root is dropped, and an empty result
/// is `.`.
pub fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            _ => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// Go's `path.Clean("/" + path)`: absolute, and `..` cannot climb above `/`.
pub fn clean_abs(path: &str) -> String {
    clean(&format!("/{path}"))
}

/// Go's `filepath.Dir`: everything before the last `/`, cleaned.
pub fn dir(path: &str) -> String {
    match path.rfind('/') {
        Some(i) => clean(&path[..=i]),
        None => ".".to_owned(),
    }
}

/// A pattern that `filepath.Match` rejects (unterminated class, dangling escape...). Such a
/// pattern matches nothing, as in fsutil which ignores the error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadPattern;

/// Go's `path.Match` (`filepath.Match` on Unix): `*` and `?` never match `/`, `[...]` classes with `^`
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_like_go() {
        // Go's own table (src/path/path_test.go), plus moby's pattern case.
        let cases = [
            ("abc", "abc"),
            ("abc/def", "abc/def"),
            ("a/b/c", "a/b/c"),
            (".", "."),
            ("..", ".."),
            ("../..", "../.."),
            ("../../abc", "../../abc"),
            ("/abc", "/abc"),
            ("/", "/"),
            ("", "."),
            ("abc/", "abc"),
            ("abc/def/", "abc/def"),
            ("a/b/c/", "a/b/c"),
            ("./", "."),
            ("../", ".."),
            ("../../", "../.."),
            ("/abc/", "/abc"),
            ("abc//def//ghi", "abc/def/ghi"),
            ("//abc", "/abc"),
            ("///abc", "/abc"),
            ("//abc//", "/abc"),
            ("abc//", "abc"),
            ("abc/./def", "abc/def"),
            ("/./abc/def", "/abc/def"),
            ("abc/.", "abc"),
            ("abc/def/ghi/../jkl", "abc/def/jkl"),
            ("abc/def/../ghi/../jkl", "abc/jkl"),
            ("abc/def/..", "abc"),
            ("abc/def/../..", "."),
            ("/abc/def/../..", "/"),
            ("abc/def/../../..", ".."),
            ("/abc/def/../../..", "/"),
            ("abc/def/../../../ghi/jkl/../../../mno", "../../mno"),
            ("abc/./../def", "def"),
            ("abc//./../def", "def"),
            ("abc/../../././../def", "../../def"),
            ("!a/../b", "b"),
        ];
        for (input, want) in cases {
            assert_eq!(clean(input), want, "{input:?}");
            // Clean is idempotent.
            assert_eq!(clean(want), want, "{want:?}");
        }
    }

    #[test]
    fn clean_abs_clamps_at_root() {
        assert_eq!(clean_abs("../../etc//passwd/."), "/etc/passwd");
        assert_eq!(clean_abs(""), "/");
        assert_eq!(clean_abs("a/b/../c/"), "/a/c");
        assert_eq!(clean_abs("/x/../../y"), "/y");
    }

    #[test]
    fn dir_like_go() {
        let cases = [
            ("file", "."),
            ("a/b", "a"),
            ("a/b/", "a/b"),
            ("/", "/"),
            ("/a", "/"),
        ];
        for (input, want) in cases {
            assert_eq!(dir(input), want, "{input:?}");
        }
    }

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
    fn star_runs_do_not_backtrack_exponentially() {
        // A pattern from a hostile Dockerfile: with backtracking over every `*`, this takes
        // on the order of 60^30 steps.
        let pattern = format!("{}b", "*a".repeat(30));
        assert_eq!(matches(&pattern, &"a".repeat(60)), Ok(false));
        assert_eq!(matches(&pattern, &format!("{}b", "a".repeat(60))), Ok(true));
    }
}
