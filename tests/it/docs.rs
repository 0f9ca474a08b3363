//! ARCHITECTURE.md is the map of the code, and a map is only worth reading while it is true:
//! every repository path it writes in backticks (`src/solver/key.rs`, `tests/it/`) must
//! exist, and every item path (`build::run`, `bud_frontend::convert`) must name a module and
//! an item defined in it. A rename that leaves the map behind fails here. No daemons.

use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The crates of the workspace by the name code uses for them, with their source roots.
const CRATES: [(&str, &str); 3] = [
    ("bud", "src"),
    ("bud_frontend", "frontend/src"),
    ("bud_proto", "proto/src"),
];

/// Past this, the page has stopped being a map: detail belongs in the module's `//!`.
const MAX_LINES: usize = 200;

/// What a backticked span of the map refers to.
#[derive(Debug, PartialEq)]
enum Mention {
    /// A file or (ending in `/`) directory, relative to the repository root.
    Path(String),
    /// `module::item` or `crate::module::item`.
    Item(Vec<String>),
}

/// The inline code spans of a Markdown text, outside fenced blocks; a span may run over a
/// line break, which counts as a space.
fn code_spans(markdown: &str) -> Vec<String> {
    let mut prose = String::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            prose.push_str(line);
            prose.push('\n');
        }
    }
    prose
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|span| span.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A span names a path when it is made of path characters and either has a `/` or ends in
/// a source or document extension (so `pb.Definition` and `bud.toml` are not paths, and a
/// placeholder such as `<root>/tmp/` or a URL such as `docker://` is not either).
fn mention(span: &str) -> Option<Mention> {
    if span.contains("::") {
        let segments: Vec<String> = span.split("::").map(str::to_owned).collect();
        return segments
            .iter()
            .all(|s| is_ident(s))
            .then_some(Mention::Item(segments));
    }
    let path_chars = span
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c));
    let starts_well = span
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_');
    let has_extension = [".rs", ".md", ".c", ".proto"]
        .iter()
        .any(|ext| span.ends_with(ext));
    (path_chars && starts_well && (span.contains('/') || has_extension))
        .then(|| Mention::Path(span.to_owned()))
}

fn path_exists(root: &Path, path: &str) -> bool {
    let full = root.join(path);
    if path.ends_with('/') {
        full.is_dir()
    } else {
        full.exists()
    }
}

/// The file of module `name` directly inside `dir`: `dir/name.rs` or `dir/name/mod.rs`.
fn module_in(dir: &Path, name: &str) -> Option<PathBuf> {
    [
        dir.join(format!("{name}.rs")),
        dir.join(name).join("mod.rs"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// Where the submodules of the module in `file` live.
fn children_dir(file: &Path) -> PathBuf {
    let parent = file.parent().unwrap_or(Path::new(""));
    match file.file_stem().and_then(|s| s.to_str()) {
        Some("mod" | "lib" | "main") => parent.to_path_buf(),
        Some(stem) => parent.join(stem),
        None => parent.to_path_buf(),
    }
}

/// Every module named `name` anywhere under `dir`.
fn modules_named(dir: &Path, name: &str, found: &mut Vec<PathBuf>) {
    found.extend(module_in(dir, name));
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            modules_named(&path, name, found);
        }
    }
}

/// Whether `source` defines (or re-exports, `pub use a::{b, name}`) an item called `name`.
fn defines(source: &str, name: &str) -> bool {
    const KEYWORDS: [&str; 9] = [
        "fn ",
        "struct ",
        "enum ",
        "trait ",
        "type ",
        "const ",
        "static ",
        "mod ",
        "macro_rules! ",
    ];
    let after_keyword = |kw: &'static str| {
        source.match_indices(kw).filter_map(move |(at, _)| {
            let starts_word = source[..at]
                .chars()
                .next_back()
                .is_none_or(char::is_whitespace);
            starts_word.then(|| &source[at + kw.len()..])
        })
    };
    let defined = KEYWORDS.iter().any(|kw| {
        after_keyword(kw).any(|rest| {
            rest.strip_prefix(name).is_some_and(|after| {
                !after.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            })
        })
    });
    let reexported = after_keyword("use ").any(|rest| {
        let statement = rest.split(';').next().unwrap_or_default();
        statement
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .any(|word| word == name)
    });
    defined || reexported
}

/// Whether `segments` resolve: modules from a crate root (when the first segment names a
/// crate) or from any module of that name in the workspace, then an item of the last module,
/// or a type of it and one of its associated items (or a module itself).
fn item_exists(root: &Path, segments: &[String]) -> bool {
    let (starts, rest): (Vec<PathBuf>, &[String]) =
        match CRATES.iter().find(|(name, _)| segments[0] == *name) {
            Some((_, src)) => {
                let lib = root.join(src).join("lib.rs");
                (vec![lib], &segments[1..])
            }
            None => {
                let mut found = Vec::new();
                for (_, src) in CRATES {
                    modules_named(&root.join(src), &segments[0], &mut found);
                }
                (found, &segments[1..])
            }
        };
    starts.iter().any(|start| {
        let mut file = start.clone();
        for (i, segment) in rest.iter().enumerate() {
            if let Some(module) = module_in(&children_dir(&file), segment) {
                file = module;
                continue;
            }
            // An item, or a type and one of its associated items (`Type::method`), both
            // defined in this module's file.
            let items = &rest[i..];
            return items.len() <= 2
                && std::fs::read_to_string(&file)
                    .is_ok_and(|source| items.iter().all(|item| defines(&source, item)));
        }
        true
    })
}

/// The mentions of `markdown` that name nothing in the repository at `root`.
fn dangling(root: &Path, markdown: &str) -> (usize, Vec<String>) {
    let mentions: Vec<(String, Mention)> = code_spans(markdown)
        .into_iter()
        .filter_map(|span| mention(&span).map(|m| (span, m)))
        .collect();
    let missing = mentions
        .iter()
        .filter(|(_, m)| match m {
            Mention::Path(path) => !path_exists(root, path),
            Mention::Item(segments) => !item_exists(root, segments),
        })
        .map(|(span, _)| span.clone())
        .collect();
    (mentions.len(), missing)
}

#[test]
fn architecture_names_only_paths_and_items_that_exist() {
    let root = Path::new(ROOT);
    let text = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let (checked, missing) = dangling(root, &text);
    // The map is mostly paths: finding few means the extraction broke, not that all is well.
    assert!(checked > 50, "only {checked} paths and items found");
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names what does not exist (a path from the repository root, or \
         module::item): {missing:?}"
    );
}

#[test]
fn architecture_stays_one_page() {
    let text =
        std::fs::read_to_string(Path::new(ROOT).join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let lines = text.lines().count();
    assert!(
        lines <= MAX_LINES,
        "ARCHITECTURE.md has {lines} lines (at most {MAX_LINES}): it is the map; move \
         detail into the `//!` of the module it describes"
    );
}

#[test]
fn the_check_finds_what_is_missing() {
    let root = Path::new(ROOT);
    let text = "`src/solver/key.rs`, `src/solver/`, `src/solver/nothing.rs`, `src/nowhere/`,\n\
                `build::run`, `build::nothing`, `bud_frontend::convert`, `nowhere::run`,\n\
                `signals::GRACE`, `src/main.rs/`, `<root>/tmp/`, `docker://`, `bud.toml`,\n\
                `progress::renderer_for`, `progress::nothing_reexported`,\n\
                `snapshots::Snapshots::workspace`, `snapshots::Snapshots::nothing`,\n\
                ```\n`src/fenced.rs`\n```\n";
    let (checked, missing) = dangling(root, text);
    assert_eq!(checked, 14);
    assert_eq!(
        missing,
        [
            "src/solver/nothing.rs",
            "src/nowhere/",
            "build::nothing",
            "nowhere::run",
            "src/main.rs/",
            "progress::nothing_reexported",
            "snapshots::Snapshots::nothing",
        ]
    );
}

#[test]
fn a_code_span_may_run_over_a_line_break() {
    assert_eq!(
        code_spans("the `src/a\n  b` and `c`"),
        ["src/a b".to_owned(), "c".to_owned()]
    );
}
