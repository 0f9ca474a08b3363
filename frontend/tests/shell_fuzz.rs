//! Arbitrary words never make the lexer panic, whatever its options.

use bud_frontend::shell::Lexer;
use proptest::prelude::*;

/// Text biased towards the characters that mean something to the lexer.
fn word() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec![
        '$', '{', '}', ':', '-', '+', '?', '#', '%', '/', '*', '\\', '`', '\'', '"', '<', ' ',
        '\t', 'A', 'B', 'x', '0', '1', '@', '!', '\u{feff}', '한',
    ]);
    let c = prop_oneof![4 => special, 1 => any::<char>()];
    prop::collection::vec(c, 0..32).prop_map(|cs| cs.into_iter().collect())
}

proptest! {
    #[test]
    fn expansion_never_panics(
        input in word(),
        value in word(),
        escape in prop::sample::select(vec!['\\', '`']),
        flags in any::<[bool; 4]>(),
    ) {
        let env = [("A", value.as_str()), ("B", ""), ("x", "*")];
        let lexer = Lexer::new(escape)
            .raw_quotes(flags[0])
            .raw_escapes(flags[1])
            .skip_process_quotes(flags[2])
            .skip_unset_env(flags[3]);
        let word = lexer.process_word(&input, &env);
        let words = lexer.process_words(&input, &env);
        // Both read the same syntax, so they fail on the same inputs.
        prop_assert_eq!(word.is_ok(), words.is_ok());
    }
}
