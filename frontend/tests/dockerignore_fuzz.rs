//! Arbitrary patterns and paths never make the matcher panic.

use bud_frontend::dockerignore::{MatchInfo, PatternMatcher, parse_dockerignore};
use proptest::prelude::*;

/// Text biased towards the characters that mean something in patterns.
fn pattern_text() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec![
        '*', '?', '[', ']', '^', '!', '-', '\\', '/', '.', ':', '{', '}', '(', ')', '|', '$', '+',
        'a', 'b', 'd', 'p', 'x', 'Q', 'E', '0', '7', ' ', '\n', '#', '\u{feff}', 'é',
    ]);
    let c = prop_oneof![4 => special, 1 => any::<char>()];
    prop::collection::vec(c, 0..24).prop_map(|cs| cs.into_iter().collect())
}

proptest! {
    #[test]
    fn matching_never_panics(
        patterns in prop::collection::vec(pattern_text(), 0..4),
        path in pattern_text(),
    ) {
        if let Ok(pm) = PatternMatcher::new(&patterns) {
            let direct = pm.matches(&path);
            let (walked, _) = pm.matches_using_parent(&path, &MatchInfo::default());
            prop_assert_eq!(direct, walked);
            let _ = pm.can_skip_excluded_dir(&path);
        }
    }

    #[test]
    fn parsing_never_panics(text in pattern_text()) {
        for pattern in parse_dockerignore(&text) {
            prop_assert!(!pattern.is_empty());
            let _ = PatternMatcher::new([pattern]);
        }
    }
}
