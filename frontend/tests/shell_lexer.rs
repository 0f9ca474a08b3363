//! BuildKit's own expansion tables (`envVarTest`, `wordsTest`), run against `bud`'s lexer.
//!
//! Deliberate deviations: none. `W` rows are for BuildKit on Windows, where variable names are
//! case-insensitive; `bud` expands as on Linux, so they are skipped.
#![allow(
    clippy::print_stderr,
    reason = "a test's notes (what it skipped or measured) go to its captured output"
)]

use std::path::PathBuf;

use bud_frontend::shell::{Lexer, MAX_NESTING};

fn reference(name: &str) -> Option<String> {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/reference"
    ))
    .join("shell-lexer")
    .join(name);
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

#[test]
fn env_var_test_rows() {
    let Some(text) = reference("envVarTest") else {
        return;
    };
    let env = [
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
    ];
    let lexer = Lexer::new('\\');
    let mut failures = Vec::new();
    let mut checked = 0;
    for (number, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l)) {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.trim().split('|').collect();
        assert_eq!(fields.len(), 3, "line {number}: {line:?}");
        let (platform, input, expected) = (fields[0].trim(), fields[1].trim(), fields[2].trim());
        match platform {
            "A" | "U" => {}
            "W" => continue,
            other => panic!("line {number}: unknown platform {other:?}"),
        }
        checked += 1;
        let got = lexer.process_word(input, &env);
        let ok = match (&got, expected) {
            (Err(_), "error") => true,
            (Ok(word), expected) => word.result == expected && expected != "error",
            (Err(_), _) => false,
        };
        if !ok {
            failures.push(format!(
                "line {number}: {input:?} gave {got:?}, want {expected:?}"
            ));
        }
    }
    assert!(checked > 200, "only {checked} rows read");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn words_test_rows() {
    let Some(text) = reference("wordsTest") else {
        return;
    };
    let lexer = Lexer::new('\\');
    let mut env: Vec<(String, String)> = Vec::new();
    let mut failures = Vec::new();
    let mut checked = 0;
    for (number, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l)) {
        if line.starts_with('#') {
            continue;
        }
        if let Some(definition) = line.strip_prefix("ENV ") {
            let definition = definition.trim_start_matches(' ');
            let (key, value) = definition.split_once('=').unwrap_or((definition, ""));
            env.push((key.to_owned(), value.to_owned()));
            continue;
        }
        let (input, expected) = line
            .split_once('|')
            .unwrap_or_else(|| panic!("line {number}: no `|` in {line:?}"));
        let input = input.trim();
        let expected: Vec<&str> = expected.trim_start_matches(' ').split(',').collect();
        checked += 1;
        let got = lexer
            .process_words(input, &env)
            .unwrap_or_else(|_| vec!["error".to_owned()]);
        if got != expected {
            failures.push(format!(
                "line {number}: {input:?} gave {got:?}, want {expected:?}"
            ));
        }
    }
    assert!(checked > 20, "only {checked} rows read");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `${a:-…}` nested `depth` deep around `x`, with each level's word quoted if `quoted`.
fn nested_default(depth: usize, quoted: bool) -> String {
    let (open, close) = if quoted {
        ("${a:-\"", "\"}")
    } else {
        ("${a:-", "}")
    };
    format!("{}x{}", open.repeat(depth), close.repeat(depth))
}

#[test]
fn nesting_expands_up_to_the_limit_and_is_an_error_beyond_it() {
    let lexer = Lexer::new('\\');
    let env: [(&str, &str); 0] = [];
    // At the limit, on a test thread's stack: the limit fits the stacks bud runs on.
    for quoted in [false, true] {
        let word = nested_default(MAX_NESTING, quoted);
        assert_eq!(lexer.process_word(&word, &env).unwrap().result, "x");
        assert_eq!(lexer.process_words(&word, &env).unwrap(), ["x"]);
    }
    // Beyond it, however deep, an error rather than a stack overflow.
    for depth in [MAX_NESTING + 1, 100_000] {
        for quoted in [false, true] {
            let err = lexer
                .process_word(&nested_default(depth, quoted), &env)
                .unwrap_err();
            assert_eq!(
                err.message(),
                format!("expansions nested more than {MAX_NESTING} levels deep")
            );
        }
    }
    // Nesting one after another is not nesting.
    let side_by_side = nested_default(2, false).repeat(10_000);
    assert_eq!(
        lexer.process_word(&side_by_side, &env).unwrap().result,
        "x".repeat(10_000)
    );
}
