//! The matcher as a context walker uses it: exceptions, errors and directory pruning.

use bud_frontend::dockerignore::{MatchInfo, PatternError, PatternMatcher, parse_dockerignore};

fn pm(patterns: &[&str]) -> PatternMatcher {
    PatternMatcher::new(patterns).unwrap_or_else(|e| panic!("{patterns:?}: {e}"))
}

#[test]
fn last_matching_pattern_wins() {
    let m = pm(&["*.md", "!README.md", "README*"]);
    assert!(m.matches("CHANGES.md"));
    assert!(m.matches("README.md"));
    let m = pm(&["*.md", "!README.md"]);
    assert!(!m.matches("README.md"));
    assert!(!m.matches("src/a.md"), "`*` does not cross `/`");
}

#[test]
fn a_path_is_excluded_with_its_parent_directory() {
    let m = pm(&["build"]);
    assert!(m.matches("build"));
    assert!(m.matches("build/out/app"));
    assert!(!m.matches("src/build"));
    assert!(!m.matches("builder"));
}

#[test]
fn patterns_are_cleaned_and_trimmed() {
    let m = pm(&["  ./a//b/  ", "", "   "]);
    assert_eq!(m.patterns().len(), 1);
    assert_eq!(m.patterns()[0].as_str(), "a/b");
    assert!(m.matches("a/b/c"));
    // moby cleans before it looks at `!`.
    let m = pm(&["*", "!x/../keep"]);
    assert_eq!(m.patterns()[1].as_str(), "keep");
    assert!(!m.patterns()[1].is_exclusion());
}

#[test]
fn bad_patterns_are_errors() {
    assert_eq!(
        PatternMatcher::new(["!"]).unwrap_err(),
        PatternError::IllegalExclusion
    );
    for bad in ["[", "a[b", "[]", "x\\", "[z-a]", "a\\y"] {
        match PatternMatcher::new([bad]) {
            Err(PatternError::BadPattern { pattern, .. }) => assert_eq!(pattern, bad),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}

#[test]
fn classes_and_escapes() {
    let m = pm(&["file[0-9].txt", "x\\*y", "[^a]b"]);
    assert!(m.matches("file7.txt") && !m.matches("filex.txt"));
    assert!(m.matches("x*y") && !m.matches("xzy"));
    assert!(m.matches("cb") && !m.matches("ab"));
    // Unlike `*` and `?`, a class can match `/` (moby compiles it to a plain regex class).
    assert!(m.matches("/b"));
}

#[test]
fn double_star_crosses_directories() {
    let m = pm(&["**/node_modules", "src/**/*.o"]);
    assert!(m.matches("node_modules/x"));
    assert!(m.matches("a/b/node_modules"));
    assert!(m.matches("src/a.o"));
    assert!(m.matches("src/a/b/c.o"));
    assert!(!m.matches("lib/a.o"));
}

#[test]
fn walker_results_agree_with_direct_matching() {
    let m = pm(&["docs", "!docs/keep/**", "**/*.tmp", "!important.tmp"]);
    let paths = [
        "docs",
        "docs/a",
        "docs/keep",
        "docs/keep/x",
        "x.tmp",
        "important.tmp",
        "a/b.tmp",
        "a",
    ];
    for path in paths {
        let mut info = MatchInfo::default();
        let dirs: Vec<&str> = path.split('/').collect();
        for n in 1..dirs.len() {
            info = m.matches_using_parent(&dirs[..n].join("/"), &info).1;
        }
        assert_eq!(
            m.matches_using_parent(path, &info).0,
            m.matches(path),
            "{path}"
        );
    }
}

#[test]
fn excluded_dirs_are_skipped_when_no_exception_reaches_inside() {
    let m = pm(&["node_modules", "target"]);
    assert!(!m.exclusions());
    assert!(m.can_skip_excluded_dir("node_modules"));

    let m = pm(&["docs", "!docs/README.md", "target"]);
    assert!(m.exclusions());
    assert!(!m.can_skip_excluded_dir("docs"));
    assert!(m.can_skip_excluded_dir("target"));
    assert!(m.can_skip_excluded_dir("doc"));

    // A trailing `/*` or `/**` still names a directory.
    let m = pm(&["*", "!src/**"]);
    assert!(!m.can_skip_excluded_dir("src"));
    assert!(m.can_skip_excluded_dir("tests"));
}

#[test]
fn wildcard_exceptions_disable_pruning() {
    let m = pm(&["vendor", "!**/*.go"]);
    assert!(!m.can_skip_excluded_dir("vendor"));
    assert!(!m.matches("vendor/a/b.go"));
}

#[test]
fn parsed_file_feeds_the_matcher() {
    let text = "# comment\n/build/\n*.swp\n!/build/keep.txt\n";
    let m = PatternMatcher::new(parse_dockerignore(text)).unwrap();
    assert!(m.matches("build/app"));
    assert!(!m.matches("build/keep.txt"));
    assert!(m.matches("x.swp"));
    assert!(!m.can_skip_excluded_dir("build"));
}
