//! A reduced shell lexer, only to find heredoc words on an instruction line.
//!
//! BuildKit finds heredocs by splitting the line with its shell lexer (unset variables
//! kept verbatim, quotes and escapes optionally kept raw) and matching each word against
//! `<<[-]WORD`. Full word expansion lives in `crate::shell`; this module only reproduces
//! the splitting, with an empty environment, so that `cat <<"EOF" | sh` yields the
//! same words as BuildKit. The escape character here is always `\`, whatever the
//! Dockerfile's `# escape=` says, as in BuildKit.

use crate::shell::words::Words;

const ESCAPE: char = '\\';

/// How quotes and escapes are treated while splitting.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mode {
    /// Keep quote characters in the words.
    pub raw_quotes: bool,
    /// Keep escape characters in the words.
    pub raw_escapes: bool,
}

/// The line cannot be lexed (unterminated quote, bad `${…}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LexError;

/// Splits `line` into shell words without expanding anything.
pub(crate) fn split(line: &str, mode: Mode) -> Result<Vec<String>, LexError> {
    let mut lexer = Lexer {
        chars: line.chars().collect(),
        pos: 0,
        raw_quotes: mode.raw_quotes,
        raw_escapes: mode.raw_escapes,
    };
    let mut words = Words::default();
    lexer.process(None, Some(&mut words))?;
    Ok(words.finish())
}

struct Lexer {
    chars: Vec<char>,
    pos: usize,
    raw_quotes: bool,
    raw_escapes: bool,
}

impl Lexer {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    /// Reads until `stop` (consumed) or the end of input; words are collected only at
    /// the top level.
    fn process(
        &mut self,
        stop: Option<char>,
        mut words: Option<&mut Words>,
    ) -> Result<String, LexError> {
        let mut result = String::new();
        while let Some(c) = self.peek() {
            if stop == Some(c) {
                self.pos += 1;
                return Ok(result);
            }
            let special = match c {
                '$' => Some(self.dollar()?),
                '<' => Some(self.possible_heredoc()),
                '\'' => Some(self.single_quote()?),
                '"' => Some(self.double_quote()?),
                _ => None,
            };
            if let Some(text) = special {
                result.push_str(&text);
                if let Some(w) = words.as_deref_mut() {
                    if c == '$' {
                        w.add_string(&text);
                    } else {
                        w.add_raw_string(&text);
                    }
                }
                continue;
            }
            self.pos += 1;
            if c == ESCAPE {
                if self.raw_escapes {
                    result.push(c);
                    if let Some(w) = words.as_deref_mut() {
                        w.add_raw_char(c);
                    }
                }
                let Some(escaped) = self.next() else { break };
                result.push(escaped);
                if let Some(w) = words.as_deref_mut() {
                    w.add_raw_char(escaped);
                }
            } else {
                result.push(c);
                if let Some(w) = words.as_deref_mut() {
                    w.add_char(c);
                }
            }
        }
        if stop.is_some() {
            return Err(LexError);
        }
        Ok(result)
    }

    fn with_raw_escapes(
        &mut self,
        raw: bool,
        f: impl FnOnce(&mut Self) -> Result<String, LexError>,
    ) -> Result<String, LexError> {
        let saved = std::mem::replace(&mut self.raw_escapes, raw);
        let out = f(self);
        self.raw_escapes = saved;
        out
    }

    fn single_quote(&mut self) -> Result<String, LexError> {
        let mut out = String::new();
        self.pos += 1;
        if self.raw_quotes {
            out.push('\'');
        }
        loop {
            match self.next() {
                None => return Err(LexError),
                Some('\'') => {
                    if self.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Result<String, LexError> {
        let mut out = String::new();
        self.pos += 1;
        if self.raw_quotes {
            out.push('"');
        }
        loop {
            match self.peek() {
                None => return Err(LexError),
                Some('"') => {
                    self.pos += 1;
                    if self.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => out.push_str(&self.dollar()?),
                Some(mut c) => {
                    self.pos += 1;
                    if c == ESCAPE {
                        if self.raw_escapes {
                            out.push(c);
                        }
                        match self.peek() {
                            None => continue,
                            Some(n @ ('"' | '$' | ESCAPE)) => {
                                self.pos += 1;
                                c = n;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(c);
                }
            }
        }
    }

    /// `$name` and `${…}` are kept verbatim: with an empty environment and unset
    /// variables skipped, BuildKit rebuilds them from their parts.
    fn dollar(&mut self) -> Result<String, LexError> {
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.name();
            return Ok(format!("${name}"));
        }
        self.pos += 1;
        match self.peek() {
            None | Some('{' | '}' | ':') => return Err(LexError),
            Some(_) => {}
        }
        let name = self.name();
        match self.next() {
            Some('}') => Ok(format!("${{{name}}}")),
            Some(c @ (':' | '+' | '-' | '?' | '#' | '%')) => {
                let mut modifier = c.to_string();
                let mut op = c;
                if c == ':' {
                    op = self.next().ok_or(LexError)?;
                    modifier.push(op);
                }
                let raw = op == '#' || op == '%';
                if c == ':' && raw {
                    return Err(LexError);
                }
                let word = self.with_raw_escapes(raw, |l| l.process(Some('}'), None))?;
                Ok(format!("${{{name}{modifier}{word}}}"))
            }
            Some('/') => {
                if self.peek() == Some('/') {
                    self.pos += 1;
                }
                let pattern = self.with_raw_escapes(true, |l| l.process(Some('/'), None))?;
                let replacement = self.with_raw_escapes(true, |l| l.process(Some('}'), None))?;
                Ok(format!("${{{name}/{pattern}/{replacement}}}"))
            }
            _ => Err(LexError),
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && c.is_numeric() {
                while let Some(d) = self.peek().filter(|d| d.is_numeric()) {
                    name.push(d);
                    self.pos += 1;
                }
                return name;
            }
            if name.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.pos += 1;
                return c.to_string();
            }
            if !(c.is_alphanumeric() || c == '_') {
                break;
            }
            name.push(c);
            self.pos += 1;
        }
        name
    }

    /// `<<` swallows the whitespace after it, so `<< EOF` stays one word.
    fn possible_heredoc(&mut self) -> String {
        self.pos += 1;
        if self.peek() != Some('<') {
            return "<".to_string();
        }
        self.pos += 1;
        let mut out = "<<".to_string();
        while let Some(c) = self.peek().filter(|c| matches!(c, ' ' | '\t' | '\r')) {
            out.push(c);
            self.pos += 1;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: Mode = Mode {
        raw_quotes: true,
        raw_escapes: true,
    };
    const COOKED: Mode = Mode {
        raw_quotes: false,
        raw_escapes: false,
    };

    fn words(line: &str, mode: Mode) -> Vec<String> {
        split(line, mode).unwrap()
    }

    #[test]
    fn raw_mode_keeps_quotes_and_escapes() {
        assert_eq!(
            words(r#"cat <<"EOF" 'a b' c\ d"#, RAW),
            ["cat", r#"<<"EOF""#, "'a b'", r"c\ d"]
        );
    }

    #[test]
    fn heredoc_operator_swallows_spaces() {
        assert_eq!(words("cat <<  EOF > x", RAW), ["cat", "<<  EOF", ">", "x"]);
    }

    #[test]
    fn cooked_mode_strips_quotes() {
        assert_eq!(words(r#""E"'O'F"#, COOKED), ["EOF"]);
        assert_eq!(words(r"\EOF", COOKED), ["EOF"]);
    }

    #[test]
    fn variables_are_kept() {
        assert_eq!(
            words("echo $A ${B} ${C:-x y} ${D/a/b}", RAW),
            ["echo", "$A", "${B}", "${C:-x", "y}", "${D/a/b}"]
        );
    }

    #[test]
    fn lex_errors() {
        assert_eq!(split("echo 'abc", RAW), Err(LexError));
        assert_eq!(split("echo \"abc", RAW), Err(LexError));
        assert_eq!(split("echo ${", RAW), Err(LexError));
        assert_eq!(split("echo ${}", RAW), Err(LexError));
        assert_eq!(split("echo ${a", RAW), Err(LexError));
        assert_eq!(split("echo ${a:#b}", RAW), Err(LexError));
    }
}
