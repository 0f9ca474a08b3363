//! Go's `unicode.IsLetter` and `unicode.IsDigit`, which decide where a variable name ends.
//!
//! Rust's `char::is_alphabetic` and `char::is_numeric` use different Unicode properties
//! (Alphabetic, and every numeric category), so `$Ⅻ` would be a variable for them and not
//! for BuildKit.

use unicode_general_category::{GeneralCategory, get_general_category};

/// A letter in Go's sense: general category L (Lu, Ll, Lt, Lm, Lo).
pub(crate) fn is_letter(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphabetic();
    }
    matches!(
        get_general_category(c),
        GeneralCategory::UppercaseLetter
            | GeneralCategory::LowercaseLetter
            | GeneralCategory::TitlecaseLetter
            | GeneralCategory::ModifierLetter
            | GeneralCategory::OtherLetter
    )
}

/// A digit in Go's sense: general category Nd.
pub(crate) fn is_digit(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_digit();
    }
    get_general_category(c) == GeneralCategory::DecimalNumber
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_and_digits_follow_general_category() {
        assert!(is_letter('a') && is_letter('Z') && is_letter('한') && is_letter('ß'));
        assert!(!is_letter('_') && !is_letter('1') && !is_letter('Ⅻ'));
        assert!(is_digit('7') && is_digit('٣'));
        assert!(!is_digit('Ⅻ') && !is_digit('½') && !is_digit('a'));
    }
}
