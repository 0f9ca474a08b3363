//! Property tests: the parser and the instruction layer never panic, whatever the input,
//! and what they return is consistent with the text.

use bud_frontend::{instructions, parser};
use proptest::prelude::*;

/// Dockerfiles touching every instruction, flag style and heredoc form.
const CORPUS: &[&str] = &[
    "# syntax=docker/dockerfile:1\n# escape=`\nFROM alpine AS base\nRUN echo a `\n  b\n",
    "ARG V=1\nFROM --platform=$P img:${V}\nRUN --mount=type=cache,target=/c,sharing=locked make\n",
    "FROM a\nRUN <<EOF\necho hi\nEOF\nRUN python3 <<'PY' > /out\nprint(1)\nPY\n",
    "FROM a\nRUN cat <<A && cat <<-\"B\"\na\nA\n\tb\n\tB\nCOPY <<EOF /dest\nx\nEOF\n",
    "FROM a\nENV a=b c=\"d e\" \\\n  f=g\nLABEL x y z\nEXPOSE 80 443/udp\nVOLUME [\"/v\"]\n",
    "FROM a\nHEALTHCHECK --interval=5s --retries=3 CMD curl -f x || exit 1\nHEALTHCHECK NONE\n",
    "FROM a\nONBUILD RUN echo hi\nONBUILD COPY <<E /x\nbody\nE\nSTOPSIGNAL SIGTERM\nUSER a:b\n",
    "FROM a\nCOPY --from=b --chown=1:1 --chmod=755 --link --exclude=*.md src/ /dst/\nADD --checksum=sha256:0 --keep-git-dir=true --unpack http://x /y\n",
    "FROM a\nSHELL [\"/bin/bash\", \"-c\"]\nCMD [\"a\", \"b\"]\nENTRYPOINT /bin/e\nWORKDIR /w\nMAINTAINER me\n",
    "\u{feff}FROM a\r\nRUN a \\\r\n\r\n  # c\r\n  b\r\n",
];

/// Characters that matter to the parser, plus a few ordinary and non-ASCII ones.
const ALPHABET: &[char] = &[
    '\n', '\r', '\t', ' ', '\\', '`', '#', '=', '"', '\'', '<', '-', '[', ']', ',', '$', '{', '}',
    ':', '/', 'a', 'E', 'O', 'F', '0', '1', 'é', '\u{a0}', '\u{feff}',
];

fn check(text: &str) {
    let line_count = text.split_inclusive('\n').count().max(1);
    match parser::parse(text) {
        Ok(parsed) => {
            assert!(!parsed.nodes.is_empty());
            let mut previous_end = 0;
            for node in &parsed.nodes {
                assert!(node.start_line > previous_end, "{node:?}");
                assert!(node.start_line <= node.end_line, "{node:?}");
                assert!(node.end_line <= line_count, "{node:?}");
                previous_end = node.end_line;
            }
            if let Err(e) = instructions::parse(&parsed) {
                assert!(e.line >= 1 && e.line <= e.end_line && e.end_line <= line_count);
                assert!(!e.to_string().is_empty());
            }
        }
        Err(e) => {
            assert!(e.line >= 1 && e.line <= line_count.max(1), "{e:?}");
            assert!(e.column >= 1, "{e:?}");
            assert!(!e.to_string().is_empty());
        }
    }
}

#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, char),
    Delete(usize),
    Replace(usize, char),
    DuplicateLine(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let ch = proptest::sample::select(ALPHABET);
    prop_oneof![
        (any::<usize>(), ch.clone()).prop_map(|(i, c)| Edit::Insert(i, c)),
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), ch).prop_map(|(i, c)| Edit::Replace(i, c)),
        any::<usize>().prop_map(Edit::DuplicateLine),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for e in edits {
        match *e {
            Edit::Insert(i, c) => chars.insert(i % (chars.len() + 1), c),
            Edit::Delete(i) if !chars.is_empty() => {
                chars.remove(i % chars.len());
            }
            Edit::Replace(i, c) if !chars.is_empty() => {
                let n = chars.len();
                chars[i % n] = c;
            }
            Edit::DuplicateLine(i) => {
                let s: String = chars.iter().collect();
                let mut lines: Vec<&str> = s.split_inclusive('\n').collect();
                if !lines.is_empty() {
                    let at = i % lines.len();
                    lines.insert(at, lines[at]);
                }
                chars = lines.concat().chars().collect();
            }
            _ => {}
        }
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_do_not_panic(text in any::<String>()) {
        check(&text);
    }

    #[test]
    fn parser_alphabet_strings_do_not_panic(
        chars in proptest::collection::vec(proptest::sample::select(ALPHABET), 0..300)
    ) {
        let text: String = chars.into_iter().collect();
        check(&text);
    }

    #[test]
    fn mutated_dockerfiles_do_not_panic(
        base in proptest::sample::select(CORPUS),
        edits in proptest::collection::vec(edit(), 1..8),
    ) {
        check(&apply(base, &edits));
    }
}

#[test]
fn corpus_is_valid() {
    for text in CORPUS {
        let parsed = parser::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        instructions::parse(&parsed).unwrap_or_else(|e| panic!("{e}\n{text}"));
    }
}
