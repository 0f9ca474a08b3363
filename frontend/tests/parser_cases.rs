//! Conformance with BuildKit's parser test files: every
//! `shared/reference/dockerfile-parser-cases/NAME/Dockerfile` must parse to the
//! s-expressions of its `result` file, and every `negative-NAME` must fail.
//!
//! Deliberate deviations from BuildKit's parser (none shows in these cases):
//! - unknown instructions are rejected by the parser, where BuildKit keeps them and lets
//!   its instruction layer reject them: the outcome for a build is the same error;
//! - `--flag` values are read character by character, where BuildKit reads bytes and
//!   turns non-ASCII flag values into mojibake;
//! - JSON arrays are read by serde_json, which rejects lone UTF-16 surrogate escapes
//!   (`"\ud800"`) that Go replaces with U+FFFD, and nests at most 128 levels: such
//!   arrays fall back to shell form instead.
#![allow(
    clippy::print_stderr,
    reason = "a test's notes (what it skipped or measured) go to its captured output"
)]

use std::fmt::Write;
use std::fs;
use std::path::{Path, PathBuf};

use bud_frontend::parser::{Node, parse};

fn cases_dir() -> Option<PathBuf> {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/reference"
    ))
    .join("dockerfile-parser-cases");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "reference data missing at {}",
        dir.display()
    );
    eprintln!("skipping: no reference data at {}", dir.display());
    None
}

/// Go's `strconv.Quote`.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() || (c.is_whitespace() && c != ' ') => {
                if (c as u32) < 0x10000 {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                } else {
                    let _ = write!(out, "\\U{:08x}", c as u32);
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// BuildKit's `Node.Dump` for one instruction.
fn dump(node: &Node) -> String {
    let mut out = node.keyword.clone();
    if !node.flags.is_empty() {
        let flags: Vec<String> = node.flags.iter().map(|f| go_quote(f)).collect();
        let _ = write!(out, " [{}]", flags.join(" "));
    }
    if let Some(sub) = &node.sub_command {
        let _ = write!(out, " ({})", dump(sub));
    }
    for value in &node.values {
        out.push(' ');
        out.push_str(&go_quote(value));
    }
    out
}

fn case_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn parser_cases_match_buildkit() {
    let Some(dir) = cases_dir() else { return };
    let mut checked = 0;
    let mut failures = Vec::new();
    for name in case_names(&dir) {
        let text = fs::read_to_string(dir.join(&name).join("Dockerfile")).unwrap();
        let parsed = parse(&text);
        if name.starts_with("negative-") {
            if let Ok(p) = parsed {
                failures.push(format!("{name}: parsed, expected an error: {:?}", p.nodes));
            }
            checked += 1;
            continue;
        }
        let expected = fs::read_to_string(dir.join(&name).join("result")).unwrap();
        match parsed {
            Ok(p) => {
                let got: String = p.nodes.iter().map(|n| format!("({})\n", dump(n))).collect();
                if got != expected {
                    failures.push(format!("{name}:\n--- expected\n{expected}--- got\n{got}"));
                }
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
        checked += 1;
    }
    assert!(checked > 30, "only {checked} cases found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn go_quote_matches_go() {
    assert_eq!(go_quote("a\"b\\c\u{0}\u{7f}♥\t"), r#""a\"b\\c\x00\x7f♥\t""#);
}
