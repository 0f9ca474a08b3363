//! Source wildcards: Go's `filepath.Match` rules, applied the way fsutil's copy resolves
//! `COPY *.txt` sources.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::error::Result;
use super::meta::io_error;
use super::safe::{self, is_absent};

pub use bud_frontend::gopath::{BadPattern, matches};

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
