//! Go's `path.Clean` and `path.Dir` (the same as `path/filepath`'s on Unix): BuildKit, fsutil
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
}
