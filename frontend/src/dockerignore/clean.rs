//! Go's `path/filepath.Clean` on Unix, which moby applies to every pattern.

/// The shortest path equivalent to `path` by lexical processing: repeated and trailing `/`
/// and `.` elements go, `x/..` pairs cancel, `..` at the root is dropped, and an empty result
/// is `.`.
pub(crate) fn clean(path: &str) -> String {
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

/// Go's `filepath.Dir`: everything before the last `/`, cleaned.
pub(crate) fn dir(path: &str) -> String {
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
        let cases = [
            ("", "."),
            ("abc", "abc"),
            ("abc/def/", "abc/def"),
            ("a/b/c/..", "a/b"),
            ("abc/./def", "abc/def"),
            ("//abc//def//", "/abc/def"),
            ("/../abc", "/abc"),
            ("../../abc", "../../abc"),
            ("abc/../../x", "../x"),
            ("abc/..", "."),
            ("/", "/"),
            ("/..", "/"),
            ("!a/../b", "b"),
        ];
        for (input, want) in cases {
            assert_eq!(clean(input), want, "{input:?}");
        }
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
