//! Expansion cases beyond BuildKit's tables: which variables a word used, the `${…}` operators,
//! and the lexer options that the Dockerfile parser and converter need.

use std::collections::BTreeMap;

use bud_frontend::shell::{EmptyEnv, Lexer};

/// `(input, env, expected result or None for an error, matched, unmatched)`.
type Case = (
    &'static str,
    &'static [(&'static str, &'static str)],
    Option<&'static str>,
    &'static [&'static str],
    &'static [&'static str],
);

const FOO_BAR: &[(&str, &str)] = &[("FOO", "xxx"), ("BAR", "")];

const CASES: &[Case] = &[
    ("x", &[("DUMMY", "d")], Some("x"), &[], &[]),
    (
        "x ${UNUSED}",
        &[("DUMMY", "d")],
        Some("x "),
        &[],
        &["UNUSED"],
    ),
    ("x ${FOO}", &[("FOO", "y")], Some("x y"), &["FOO"], &[]),
    (
        "${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}",
        FOO_BAR,
        Some("xxx  ccc"),
        &["BAR", "FOO"],
        &["BAZ"],
    ),
    (
        "${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}",
        FOO_BAR,
        Some("xxx bbb ccc"),
        &["BAR", "FOO"],
        &["BAZ"],
    ),
    (
        "${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}",
        FOO_BAR,
        Some("aaa bbb "),
        &["BAR", "FOO"],
        &["BAZ"],
    ),
    (
        "${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}",
        FOO_BAR,
        Some("aaa  "),
        &["BAR", "FOO"],
        &["BAZ"],
    ),
    ("${FOO?aaa}", FOO_BAR, Some("xxx"), &["FOO"], &[]),
    ("${BAR?bbb}", FOO_BAR, Some(""), &["BAR"], &[]),
    ("${BAZ?ccc}", FOO_BAR, None, &[], &[]),
    ("${BAR:?bbb}", FOO_BAR, None, &[], &[]),
    ("${BAZ:?}", FOO_BAR, None, &[], &[]),
    ("${FOO=aaa}", FOO_BAR, None, &[], &[]),
    ("${FOO=}", &[], None, &[], &[]),
    (
        "${FOO#()[]{\\}^$.\\*\\?|\\\\}",
        &[("FOO", "()[]{}^$.*?|\\x")],
        Some("x"),
        &["FOO"],
        &[],
    ),
    (
        "${FOO%%\\**}",
        &[("FOO", "xx**")],
        Some("xx"),
        &["FOO"],
        &[],
    ),
    ("${FOO#*x*y}", &[("FOO", "xxyy")], Some("y"), &["FOO"], &[]),
    ("${FOO#*}", &[("FOO", "xxyy")], Some("xxyy"), &["FOO"], &[]),
    (
        "${FOO#$BAR}",
        &[("FOO", "xxyy"), ("BAR", "x")],
        Some("xyy"),
        &["BAR", "FOO"],
        &[],
    ),
    ("${FOO##*x}", &[("FOO", "xxyy")], Some("yy"), &["FOO"], &[]),
    ("${FOO#?\\?}", &[("FOO", "???y")], Some("?y"), &["FOO"], &[]),
    (
        "${ABC:-.}${FOO%x}${ABC:-.}",
        &[("FOO", "xxyy")],
        Some(".xxyy."),
        &["FOO"],
        &["ABC"],
    ),
    (
        "${FOO%%\\**\\*}",
        &[("FOO", "a***yy*")],
        Some("a"),
        &["FOO"],
        &[],
    ),
    ("${FOO%y}", &[("FOO", "xxyy")], Some("xxy"), &["FOO"], &[]),
    ("${FOO%%y*}", &[("FOO", "xxyy")], Some("xx"), &["FOO"], &[]),
    ("${FOO:#}", &[], None, &[], &[]),
    ("${FOO:%%}", &[], None, &[], &[]),
    ("${FOO#\\x}", &[("FOO", "xy")], None, &[], &[]),
    (
        "${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
        &[("FOO", "/foo*/*/*.txt"), ("NEEDLE", "\\*/")],
        Some("/foo.*/*.txt - /foo..*.txt"),
        &["FOO", "NEEDLE"],
        &[],
    ),
    (
        "${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
        &[("FOO", "/tmp/tmp/bar.txt"), ("NEEDLE", "/tmp")],
        Some("/tmp/bar.txt - /bar.txt"),
        &["FOO", "NEEDLE"],
        &[],
    ),
    (
        "${FOO//\\//\\/}",
        &[("FOO", "/tmp/foo.txt")],
        Some("\\/tmp\\/foo.txt"),
        &["FOO"],
        &[],
    ),
    (
        "${FOO/$BAR/ww}",
        &[("FOO", "xxyy"), ("BAR", "")],
        Some("wwxxyy"),
        &["BAR", "FOO"],
        &[],
    ),
    ("${FOO//ww}", &[("FOO", "xxyy")], None, &[], &[]),
    ("${FOO///}", &[("FOO", "xxyy")], Some("xxyy"), &["FOO"], &[]),
    ("${FOO///}", &[], Some(""), &[], &["FOO"]),
    // Later definitions win, as in a Dockerfile's accumulated ENV.
    ("$A", &[("A", "1"), ("A", "2")], Some("2"), &["A"], &[]),
];

#[test]
fn expansion_cases() {
    let lexer = Lexer::new('\\');
    for &(input, env, expected, matched, unmatched) in CASES {
        let got = lexer.process_word(input, &env);
        match (expected, got) {
            (None, Err(_)) => {}
            (None, Ok(word)) => panic!("{input:?}: expected an error, got {word:?}"),
            (Some(_), Err(err)) => panic!("{input:?}: {err}"),
            (Some(expected), Ok(word)) => {
                assert_eq!(word.result, expected, "{input:?}");
                assert!(
                    word.matched.iter().eq(matched.iter()),
                    "{input:?}: {word:?}"
                );
                assert!(
                    word.unmatched.iter().eq(unmatched.iter()),
                    "{input:?}: {word:?}"
                );
            }
        }
    }
}

#[test]
fn mandatory_variables_report_their_message() {
    let lexer = Lexer::new('\\');
    let set = [("VAR", "plain"), ("ARG", "x")];
    let empty = [("VAR", ""), ("ARG", "x")];
    let unset = [("ARG", "x")];
    let no_empty = "${VAR:?message here$ARG}";
    let no_unset = "${VAR?message here$ARG}";

    assert_eq!(lexer.process_word(no_empty, &set).unwrap().result, "plain");
    for env in [&empty[..], &unset[..]] {
        let err = lexer.process_word(no_empty, &env).unwrap_err();
        assert_eq!(err.message(), "VAR: message herex");
        assert_eq!(err.word(), no_empty);
    }
    assert_eq!(lexer.process_word(no_unset, &empty).unwrap().result, "");
    let err = lexer.process_word(no_unset, &unset).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("failed to process {no_unset:?}: VAR: message herex")
    );
    let err = lexer.process_word("${VAR:?}", &empty).unwrap_err();
    assert_eq!(err.message(), "VAR: is not allowed to be empty");
    let err = lexer.process_word("${VAR?}", &unset).unwrap_err();
    assert_eq!(err.message(), "VAR: is not allowed to be unset");
}

#[test]
fn backtick_is_the_escape_when_configured() {
    let lexer = Lexer::new('`');
    let env = [("X", "1")];
    assert_eq!(
        lexer.process_word("c:\\dir `$X $X", &env).unwrap().result,
        "c:\\dir $X 1"
    );
    assert_eq!(
        lexer.process_word("\"a`\"b\"", &env).unwrap().result,
        "a\"b"
    );
    assert_eq!(lexer.process_words("a` b c", &env).unwrap(), ["a b", "c"]);
}

#[test]
fn raw_quotes_keep_quote_characters() {
    let lexer = Lexer::new('\\').raw_quotes(true);
    let env = [("X", "1")];
    assert_eq!(
        lexer.process_word("'a $X' \"b $X\"", &env).unwrap().result,
        "'a $X' \"b 1\""
    );
    assert_eq!(
        lexer.process_words("'a b' c", &env).unwrap(),
        ["'a b'", "c"]
    );
}

#[test]
fn raw_escapes_keep_escape_characters() {
    let lexer = Lexer::new('\\').raw_escapes(true);
    assert_eq!(
        lexer.process_word("a\\ b\\$c", &EmptyEnv).unwrap().result,
        "a\\ b\\$c"
    );
    // Inside double quotes an escape that escapes nothing is written twice, as in BuildKit.
    assert_eq!(
        lexer.process_word("\"\\t\\\"\"", &EmptyEnv).unwrap().result,
        "\\\\t\\\""
    );
}

#[test]
fn skip_unset_env_leaves_unset_references_as_written() {
    let lexer = Lexer::new('\\').skip_unset_env(true);
    let env = [("SET", "v")];
    let cases = [
        ("$SET $UNSET", "v $UNSET"),
        ("${UNSET}", "${UNSET}"),
        ("${UNSET:-x}", "${UNSET:-x}"),
        ("${UNSET##*/}", "${UNSET##*/}"),
        ("${UNSET:YY}", "${UNSET:YY}"),
        ("${UNSET//a/b}", "${UNSET/a/b}"),
        ("${SET:-x}", "v"),
    ];
    for (input, expected) in cases {
        assert_eq!(
            lexer.process_word(input, &env).unwrap().result,
            expected,
            "{input:?}"
        );
    }
}

#[test]
fn skip_process_quotes_treats_quotes_as_text() {
    let lexer = Lexer::new('\\').skip_process_quotes(true);
    let env = [("X", "1")];
    assert_eq!(
        lexer.process_word("'$X' \"$X\"", &env).unwrap().result,
        "'1' \"1\""
    );
    assert_eq!(lexer.process_word("it's", &env).unwrap().result, "it's");
}

#[test]
fn heredoc_markers_keep_their_white_space() {
    let lexer = Lexer::new('\\');
    assert_eq!(
        lexer.process_words("cat << \tEOF a<b", &EmptyEnv).unwrap(),
        ["cat", "<< \tEOF", "a<b"]
    );
}

#[test]
fn words_split_on_expanded_white_space_only_outside_quotes() {
    let lexer = Lexer::new('\\');
    let env: BTreeMap<&str, &str> = [("V", " a  b "), ("E", "")].into();
    assert_eq!(
        lexer.process_words("x$V\"$V\"", &env).unwrap(),
        ["x", "a", "b", " a  b "]
    );
    assert_eq!(
        lexer.process_words("\"\" $E ''", &env).unwrap(),
        Vec::<String>::new()
    );
    // BuildKit drops "a" here (its nested expansion reuses the word buffer); bud keeps it.
    assert_eq!(
        lexer.process_words("a${E:-b} c", &env).unwrap(),
        ["ab", "c"]
    );
}

#[test]
fn replace_all_expands_go_template_references() {
    let lexer = Lexer::new('\\');
    let env = [("V", "a-b")];
    // The replacement keeps its escapes, so `\$0` reaches Go's template expansion as `\` + `$0`.
    assert_eq!(
        lexer.process_word("${V//-/[\\$0]}", &env).unwrap().result,
        "a[\\-]b"
    );
    assert_eq!(
        lexer.process_word("${V/-/[\\$0]}", &env).unwrap().result,
        "a[\\$0]b"
    );
}

#[test]
fn leading_byte_order_mark_is_dropped() {
    let lexer = Lexer::new('\\');
    assert_eq!(
        lexer
            .process_word("\u{feff}a\u{feff}", &EmptyEnv)
            .unwrap()
            .result,
        "a\u{feff}"
    );
}
