//! moby/patternmatcher's `TestMatches` table, run against `bud`'s matcher, both directly and
//! the way a context walker asks (parent directories first, passing their results down).
//!
//! Deliberate deviations: none.
#![allow(
    clippy::print_stderr,
    reason = "a test's notes (what it skipped or measured) go to its captured output"
)]

use std::path::PathBuf;

use bud_frontend::dockerignore::{MatchInfo, PatternMatcher};

fn reference() -> Option<String> {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/reference"
    ))
    .join("dockerignore/patternmatcher-matches.tsv");
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(err) if std::env::var_os("CI").is_some() => {
            panic!("reference data {} is required in CI: {err}", path.display())
        }
        Err(err) => {
            eprintln!("skipping: no reference data at {} ({err})", path.display());
            None
        }
    }
}

/// What a walker gets for `path` after visiting each of its parent directories in turn.
fn walk_to(pm: &PatternMatcher, path: &str) -> bool {
    let parent = match path.rfind('/') {
        Some(i) => path[..i].trim_end_matches('/'),
        None => "",
    };
    let mut info = MatchInfo::default();
    if !parent.is_empty() {
        let dirs: Vec<&str> = parent.split('/').collect();
        for n in 1..=dirs.len() {
            info = pm.matches_using_parent(&dirs[..n].join("/"), &info).1;
        }
    }
    pm.matches_using_parent(path, &info).0
}

#[test]
fn patternmatcher_matches_rows() {
    let Some(text) = reference() else { return };
    let mut failures = Vec::new();
    let mut checked = 0;
    for (number, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l)) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        assert_eq!(fields.len(), 3, "line {number}: {line:?}");
        let patterns: Vec<&str> = fields[0].split(" ;; ").collect();
        let path = fields[1];
        let want: bool = fields[2].parse().expect("true or false");
        checked += 1;
        let pm = match PatternMatcher::new(&patterns) {
            Ok(pm) => pm,
            Err(err) => {
                failures.push(format!("line {number}: {patterns:?}: {err}"));
                continue;
            }
        };
        let direct = pm.matches(path);
        let walked = walk_to(&pm, path);
        if direct != want || walked != want {
            failures.push(format!(
                "line {number}: {patterns:?} on {path:?}: matches={direct} walked={walked}, want {want}"
            ));
        }
    }
    assert!(checked > 60, "only {checked} rows read");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
