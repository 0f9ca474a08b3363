//! Booleans as Go's `strconv.ParseBool` reads them: how BuildKit, Docker and buildx read
//! every boolean a user or a daemon gives them, so bud reads them alike.

/// `1 t T TRUE true True` and `0 f F FALSE false False`; anything else is no boolean.
pub fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn go_s_spellings_and_no_others() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(super::parse_go_bool(t), Some(true), "{t}");
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(super::parse_go_bool(f), Some(false), "{f}");
        }
        for neither in ["", "yes", "on", "tRUE", " true", "2"] {
            assert_eq!(super::parse_go_bool(neither), None, "{neither:?}");
        }
    }
}
