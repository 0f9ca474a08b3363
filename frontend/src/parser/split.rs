//! Splitting a logical line into keyword, `--flags` and the rest.

/// BuildKit's `[\t\v\f\r ]+`: the separators between keyword and arguments and
/// between whitespace-delimited arguments.
pub(crate) fn is_separator(c: char) -> bool {
    matches!(c, '\t' | '\x0b' | '\x0c' | '\r' | ' ')
}

/// Splits on runs of [`is_separator`] characters, dropping empty pieces at the ends.
pub(crate) fn split_separated(s: &str) -> Vec<String> {
    s.split(is_separator)
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// Splits `line` into its keyword (as written), its flags and its trimmed arguments.
pub(crate) fn split_command(line: &str, escape: char) -> (String, Vec<String>, String) {
    let line = line.trim();
    let Some(at) = line.find(is_separator) else {
        return (line.to_string(), Vec::new(), String::new());
    };
    let keyword = line[..at].to_string();
    let rest = line[at..].trim_start_matches(is_separator);
    let (args, flags) = extract_flags(rest, escape);
    (keyword, flags, args.trim().to_string())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Spaces,
    Word,
    Quote(char),
}

/// Takes the leading `--flag[=value]` words off `line`. Quotes inside a flag are removed
/// and the escape character escapes the next character; a lone `--` ends the flags.
///
/// BuildKit walks bytes here, which mangles non-ASCII flag values; this walks characters.
fn extract_flags(line: &str, escape: char) -> (&str, Vec<String>) {
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut flags = Vec::new();
    let mut word = String::new();
    let mut blank_ok = false;
    let mut phase = Phase::Spaces;
    let mut pos = 0;
    loop {
        let Some(&(byte, ch)) = chars.get(pos) else {
            if phase != Phase::Spaces && word != "--" && (blank_ok || !word.is_empty()) {
                flags.push(word);
            }
            return ("", flags);
        };
        pos += 1;
        match phase {
            Phase::Spaces => {
                if ch.is_whitespace() {
                    continue;
                }
                if ch != '-' || chars.get(pos).map(|&(_, c)| c) != Some('-') {
                    return (&line[byte..], flags);
                }
                phase = Phase::Word;
                word.push(ch);
            }
            Phase::Word => {
                if ch.is_whitespace() {
                    if word == "--" {
                        return (&line[byte..], flags);
                    }
                    if blank_ok || !word.is_empty() {
                        flags.push(std::mem::take(&mut word));
                    }
                    blank_ok = false;
                    phase = Phase::Spaces;
                } else if ch == '\'' || ch == '"' {
                    blank_ok = true;
                    phase = Phase::Quote(ch);
                } else if ch == escape {
                    if let Some(&(_, next)) = chars.get(pos) {
                        word.push(next);
                        pos += 1;
                    }
                } else {
                    word.push(ch);
                }
            }
            Phase::Quote(quote) => {
                if ch == quote {
                    phase = Phase::Word;
                } else if ch == escape {
                    match chars.get(pos) {
                        Some(&(_, next)) => {
                            word.push(next);
                            pos += 1;
                        }
                        None => phase = Phase::Word,
                    }
                } else {
                    word.push(ch);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(line: &str) -> (String, Vec<String>, String) {
        split_command(line, '\\')
    }

    #[test]
    fn keyword_flags_and_args() {
        let (k, f, a) = split("COPY --from=build --chown=a:b  src dst ");
        assert_eq!(k, "COPY");
        assert_eq!(f, ["--from=build", "--chown=a:b"]);
        assert_eq!(a, "src dst");
    }

    #[test]
    fn double_dash_ends_flags() {
        let (_, f, a) = split("COPY --link -- --not-a-flag /d");
        assert_eq!(f, ["--link"]);
        assert_eq!(a, "--not-a-flag /d");
        let (_, f, a) = split("CMD --x --");
        assert_eq!(f, ["--x"]);
        assert_eq!(a, "");
    }

    #[test]
    fn quotes_and_escapes_in_flags() {
        let (_, f, a) = split(r#"RUN --mount="type=cache,target=/a b" --x=c\ d echo"#);
        assert_eq!(f, ["--mount=type=cache,target=/a b", "--x=c d"]);
        assert_eq!(a, "echo");
    }

    #[test]
    fn single_dash_is_an_argument() {
        let (_, f, a) = split("RUN -x --y");
        assert!(f.is_empty());
        assert_eq!(a, "-x --y");
    }

    #[test]
    fn keyword_alone() {
        assert_eq!(
            split("  HEALTHCHECK  "),
            ("HEALTHCHECK".into(), vec![], "".into())
        );
    }

    #[test]
    fn non_ascii_flag_values_survive() {
        let (_, f, _) = split("COPY --chown=żółw a b");
        assert_eq!(f, ["--chown=żółw"]);
    }
}
