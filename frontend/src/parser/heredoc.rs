//! Heredocs (`<<EOF … EOF`) attached to RUN, COPY and ADD.

use super::words::{self, Mode};

/// A heredoc body attached to an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The terminator word, unquoted (`EOF` for `<<"EOF"`).
    pub name: String,
    /// File descriptor written before `<<` (`2<<EOF`), 0 when absent.
    pub fd: u32,
    /// The body exactly as written: every line with its line ending, tabs untouched.
    pub content: String,
    /// False when any part of the delimiter is quoted: the body is then taken literally.
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from the body lines and the terminator.
    pub chomp: bool,
}

impl Heredoc {
    /// The body with leading tabs removed from every line when `chomp` is set.
    pub fn body(&self) -> String {
        if self.chomp {
            chomp(&self.content)
        } else {
            self.content.clone()
        }
    }
}

/// Removes leading tabs from every line.
pub fn chomp(content: &str) -> String {
    content
        .split_inclusive('\n')
        .map(|line| line.trim_start_matches('\t'))
        .collect()
}

/// A heredoc opener found on an instruction line: everything but the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeredocWord {
    /// The unquoted terminator.
    pub name: String,
    /// File descriptor before `<<`.
    pub fd: u32,
    /// See [`Heredoc::expand`].
    pub expand: bool,
    /// See [`Heredoc::chomp`].
    pub chomp: bool,
}

/// The heredoc word cannot be read (BuildKit's lexer rejects it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadHeredocWord(pub String);

/// Reads one shell word as a heredoc opener: `[fd]<<[-][space]WORD`.
///
/// `Ok(None)` when the word is not a heredoc (no `<<`, no terminator, or a terminator
/// that splits into several words). This is BuildKit's `ParseHeredoc`, used both on
/// instruction lines and on COPY/ADD sources.
pub fn parse_heredoc_word(word: &str) -> Result<Option<HeredocWord>, BadHeredocWord> {
    let digits = word.len() - word.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let Some(after) = word[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, after) = match after.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, after),
    };
    let rest = after.trim_start_matches([' ', '\t', '\n', '\r', '\x0c']);
    if rest.contains('<') || rest.is_empty() {
        return Ok(None);
    }
    // Unrepresentable descriptors wrap in BuildKit; keeping 0 is as meaningless and safe.
    let fd = word[..digits].parse().unwrap_or(0);
    let bad = || BadHeredocWord(word.to_string());
    let cooked = words::split(
        rest,
        Mode {
            raw_quotes: false,
            raw_escapes: false,
        },
    )
    .map_err(|_| bad())?;
    let [name] = cooked.as_slice() else {
        return Ok(None);
    };
    let raw = words::split(
        rest,
        Mode {
            raw_quotes: true,
            raw_escapes: false,
        },
    )
    .map_err(|_| bad())?;
    let [raw_name] = raw.as_slice() else {
        return Err(bad());
    };
    let quotes = |s: &str| s.chars().filter(|c| matches!(c, '\'' | '"')).count();
    Ok(Some(HeredocWord {
        name: name.clone(),
        fd,
        expand: quotes(name) == quotes(raw_name),
        chomp,
    }))
}

/// All heredoc openers on an instruction line, in order.
///
/// A line the shell lexer cannot split (an unterminated quote) has no heredocs, as in
/// BuildKit.
pub(crate) fn heredocs_in_line(line: &str) -> Result<Vec<HeredocWord>, BadHeredocWord> {
    let Ok(words) = words::split(
        line,
        Mode {
            raw_quotes: true,
            raw_escapes: true,
        },
    ) else {
        return Ok(Vec::new());
    };
    let mut found = Vec::new();
    for word in words {
        if let Some(h) = parse_heredoc_word(&word)? {
            found.push(h);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(s: &str) -> HeredocWord {
        parse_heredoc_word(s).unwrap().unwrap()
    }

    #[test]
    fn plain_heredoc_expands() {
        let h = word("<<EOF");
        assert_eq!(
            (h.name.as_str(), h.expand, h.chomp, h.fd),
            ("EOF", true, false, 0)
        );
    }

    #[test]
    fn quoted_delimiters_do_not_expand() {
        for w in ["<<'EOF'", "<<\"EOF\"", "<<E'O'F", "<<-\"EOF\""] {
            let h = word(w);
            assert_eq!(h.name, "EOF", "{w}");
            assert!(!h.expand, "{w}");
        }
    }

    #[test]
    fn chomp_and_fd() {
        let h = word("2<<-END");
        assert_eq!((h.name.as_str(), h.chomp, h.fd), ("END", true, 2));
    }

    #[test]
    fn space_after_operator() {
        assert_eq!(word("<< EOF").name, "EOF");
    }

    #[test]
    fn not_heredocs() {
        for w in ["<<", "<", "a<<EOF", "<<a<b", "<<'a b' c", "EOF"] {
            assert_eq!(parse_heredoc_word(w), Ok(None), "{w}");
        }
    }

    #[test]
    fn finds_every_heredoc_in_a_line() {
        let names: Vec<_> = heredocs_in_line("cat <<A && cat <<-'B' > /f && python3 <<\"C\"")
            .unwrap()
            .into_iter()
            .map(|h| (h.name, h.expand, h.chomp))
            .collect();
        assert_eq!(
            names,
            [
                ("A".to_string(), true, false),
                ("B".to_string(), false, true),
                ("C".to_string(), false, false)
            ]
        );
    }

    #[test]
    fn unlexable_line_has_no_heredocs() {
        assert_eq!(heredocs_in_line("echo it's <<EOF"), Ok(Vec::new()));
    }

    #[test]
    fn chomp_strips_leading_tabs_only() {
        assert_eq!(chomp("\t\ta\n \tb\n\tc"), "a\n \tb\nc");
    }
}
