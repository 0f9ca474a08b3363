//! The expansion of one word: quotes, escapes and `$` forms.

use std::collections::BTreeSet;

use super::env::Env;
use super::pattern;
use super::unicode::{is_digit, is_letter};
use super::words::Words;

/// A word that could not be expanded (an unterminated quote, a bad `${…}` form, a `${V?msg}`
/// whose variable is unset, an invalid pattern).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to process {word:?}: {message}")]
pub struct ShellError {
    word: String,
    message: String,
}

impl ShellError {
    /// The word as it was given to the lexer.
    pub fn word(&self) -> &str {
        &self.word
    }

    /// What is wrong with it, as BuildKit words it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// The result of [`Lexer::process_word`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessedWord {
    /// The expanded word, quotes and escapes removed.
    pub result: String,
    /// Variables the word referred to that were set.
    pub matched: BTreeSet<String>,
    /// Variables the word referred to that were not set (for lint warnings).
    pub unmatched: BTreeSet<String>,
}

/// Expands Dockerfile words the way BuildKit's `shell.Lex` does.
///
/// ```
/// use bud_frontend::shell::Lexer;
///
/// let env = [("NAME", "bud"), ("DIR", "/src/app")];
/// let lexer = Lexer::new('\\');
/// assert_eq!(lexer.process_word("'$NAME': ${DIR##*/}", &env).unwrap().result, "$NAME: app");
/// assert_eq!(lexer.process_words("a \"b c\" $NAME", &env).unwrap(), ["a", "b c", "bud"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lexer {
    escape: char,
    raw_quotes: bool,
    raw_escapes: bool,
    skip_process_quotes: bool,
    skip_unset_env: bool,
}

impl Lexer {
    /// A lexer whose escape character is `escape` (`\`, or `` ` `` after an
    /// `# escape=`` ` `` directive).
    pub fn new(escape: char) -> Self {
        Self {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_process_quotes: false,
            skip_unset_env: false,
        }
    }

    /// Keeps quote characters in the output (BuildKit's `RawQuotes`), for instructions whose
    /// arguments are expanded again later, such as `RUN` heredoc detection.
    pub fn raw_quotes(mut self, on: bool) -> Self {
        self.raw_quotes = on;
        self
    }

    /// Keeps escape characters in the output (BuildKit's `RawEscapes`).
    pub fn raw_escapes(mut self, on: bool) -> Self {
        self.raw_escapes = on;
        self
    }

    /// Treats quotes as ordinary characters (BuildKit's `SkipProcessQuotes`), as for
    /// heredoc bodies.
    pub fn skip_process_quotes(mut self, on: bool) -> Self {
        self.skip_process_quotes = on;
        self
    }

    /// Leaves references to unset variables as they were written (BuildKit's `SkipUnsetEnv`),
    /// so that a later expansion with more variables can still see them.
    pub fn skip_unset_env(mut self, on: bool) -> Self {
        self.skip_unset_env = on;
        self
    }

    /// The escape character.
    pub fn escape(&self) -> char {
        self.escape
    }

    /// Expands `word` into a single string, spaces kept.
    pub fn process_word(&self, word: &str, env: &dyn Env) -> Result<ProcessedWord, ShellError> {
        let mut scan = Scanner::new(self, word, env);
        let (result, _) = scan.process(word)?;
        Ok(ProcessedWord {
            result,
            matched: scan.matched,
            unmatched: scan.unmatched,
        })
    }

    /// Expands `word` and splits it into words at unquoted, unescaped white space, which
    /// includes white space that comes from expanded variables.
    pub fn process_words(&self, word: &str, env: &dyn Env) -> Result<Vec<String>, ShellError> {
        let mut scan = Scanner::new(self, word, env);
        let (_, words) = scan.process(word)?;
        Ok(words)
    }
}

type Step<T> = Result<T, String>;

/// How deep `${…}` expansions may nest inside each other. BuildKit has no limit (its lexer
/// recurses on Go's growable stacks); bud's recursion uses a fixed stack, so a word nested
/// deeper gets an error instead of a stack overflow. Real Dockerfiles nest a few levels.
pub const MAX_NESTING: usize = 100;

/// One expansion in progress.
struct Scanner<'a> {
    lexer: &'a Lexer,
    env: &'a dyn Env,
    chars: Vec<char>,
    pos: usize,
    /// How many `${…}` words are being expanded around the current position.
    depth: usize,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
}

impl<'a> Scanner<'a> {
    fn new(lexer: &'a Lexer, word: &str, env: &'a dyn Env) -> Self {
        // BuildKit reads words with Go's text/scanner, which drops a leading byte order mark.
        let word = word.strip_prefix('\u{feff}').unwrap_or(word);
        Self {
            lexer,
            env,
            chars: word.chars().collect(),
            pos: 0,
            depth: 0,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn process(&mut self, word: &str) -> Result<(String, Vec<String>), ShellError> {
        self.process_until(None, self.lexer.raw_escapes)
            .map_err(|message| ShellError {
                word: word.to_owned(),
                message,
            })
    }

    /// Expands up to `stop` (consumed) or the end of the input when `stop` is `None`.
    fn process_until(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Step<(String, Vec<String>)> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.pos += 1;
                return Ok((result, words.finish()));
            }
            let quotes = !self.lexer.skip_process_quotes;
            let special = match c {
                '$' => Some(self.process_dollar()?),
                '<' => Some(self.process_possible_heredoc()),
                '\'' if quotes => Some(self.process_single_quote()?),
                '"' if quotes => Some(self.process_double_quote(raw_escapes)?),
                _ => None,
            };
            if let Some(text) = special {
                result.push_str(&text);
                // Expanded variables are split into words; quoted text is not.
                if c == '$' {
                    words.add_string(&text);
                } else {
                    words.add_raw_string(&text);
                }
                continue;
            }
            self.pos += 1;
            if c != self.lexer.escape {
                words.add_char(c);
                result.push(c);
                continue;
            }
            if raw_escapes {
                words.add_raw_char(c);
                result.push(c);
            }
            // An escape at the very end escapes nothing and disappears.
            let Some(escaped) = self.next() else { break };
            words.add_raw_char(escaped);
            result.push(escaped);
        }
        match stop {
            Some(stop) => Err(format!(
                "unexpected end of statement while looking for matching {stop}"
            )),
            None => Ok((result, words.finish())),
        }
    }

    /// `'…'`: everything up to the next `'` is literal; there is no way to escape a `'`.
    fn process_single_quote(&mut self) -> Step<String> {
        let mut result = String::new();
        let open = self.next();
        if self.lexer.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .to_owned(),
                    );
                }
                Some('\'') => {
                    if self.lexer.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    /// `"…"`: `$` expands, and the escape character escapes only `"`, `$` and itself.
    fn process_double_quote(&mut self, raw_escapes: bool) -> Step<String> {
        let mut result = String::new();
        let open = self.next();
        if self.lexer.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .to_owned(),
                    );
                }
                Some('"') => {
                    self.pos += 1;
                    if self.lexer.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => result.push_str(&self.process_dollar()?),
                Some(mut c) => {
                    self.pos += 1;
                    if c == self.lexer.escape {
                        if raw_escapes {
                            result.push(c);
                        }
                        match self.peek() {
                            // The closing quote is missing; the next turn reports it.
                            None => continue,
                            Some(e) if e == '"' || e == '$' || e == self.lexer.escape => {
                                self.pos += 1;
                                c = e;
                            }
                            // Any other escape is literal (and, with raw escapes, doubled,
                            // as in BuildKit).
                            Some(_) => {}
                        }
                    }
                    result.push(c);
                }
            }
        }
    }

    /// `$NAME`, `${NAME}` or `${NAME<op>word}`, with the `$` not yet consumed.
    fn process_dollar(&mut self) -> Step<String> {
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".to_owned());
            }
            return Ok(match self.lookup(&name) {
                Some(value) => value,
                None if self.lexer.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.pos += 1;
        match self.peek() {
            None => return Err(missing_brace()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".to_owned()),
            Some(_) => {}
        }
        let name = self.process_name();
        let Some(op) = self.next() else {
            return Err(missing_brace());
        };
        match op {
            '}' => Ok(match self.lookup(&name) {
                Some(value) => value,
                None if self.lexer.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            '/' => self.process_replacement(&name),
            ':' => {
                // `:` makes an empty value count as unset; BuildKit reads the next character
                // as the operator whatever it is, and rejects unknown ones only after reading
                // the word.
                let op = self.next();
                let spelled = format!(":{}", op.map_or(String::new(), String::from));
                self.process_modifier(&name, op, true, &spelled)
            }
            '+' | '-' | '?' | '#' | '%' => {
                self.process_modifier(&name, Some(op), false, &op.to_string())
            }
            _ => Err(unsupported_modifier(&op.to_string())),
        }
    }

    /// `${NAME<op>word}` after `<op>`, for `-`, `+`, `?`, `#` and `%` (optionally after `:`).
    fn process_modifier(
        &mut self,
        name: &str,
        op: Option<char>,
        null_is_unset: bool,
        spelled: &str,
    ) -> Step<String> {
        // Patterns keep their escapes so that `\*` still means a literal `*` when matching.
        let is_pattern = matches!(op, Some('#' | '%'));
        if null_is_unset && is_pattern {
            return Err(unsupported_modifier(spelled));
        }
        let (word, _) = self.nested(Some('}'), is_pattern, missing_brace)?;
        let value = self.lookup(name);
        if value.is_none() && self.lexer.skip_unset_env {
            return Ok(format!("${{{name}{spelled}{word}}}"));
        }
        let unset = match &value {
            None => true,
            Some(v) => null_is_unset && v.is_empty(),
        };
        match op {
            Some('-') => Ok(if unset {
                word
            } else {
                value.unwrap_or_default()
            }),
            Some('+') => Ok(if unset { String::new() } else { word }),
            Some('?') => match value {
                Some(v) if !unset => Ok(v),
                _ => {
                    let message = if !word.is_empty() {
                        word
                    } else if value.is_none() {
                        "is not allowed to be unset".to_owned()
                    } else {
                        "is not allowed to be empty".to_owned()
                    };
                    Err(format!("{name}: {message}"))
                }
            },
            Some(op @ ('#' | '%')) => {
                let value = value.unwrap_or_default();
                // `##` and `%%` take the longest match, `#` and `%` the shortest.
                let (pattern, greedy) = match word.strip_prefix(op) {
                    Some(rest) => (rest, true),
                    None => (word.as_str(), false),
                };
                if op == '%' {
                    pattern::trim_suffix(pattern, &value, greedy)
                } else {
                    pattern::trim_prefix(pattern, &value, greedy)
                }
            }
            _ => Err(unsupported_modifier(spelled)),
        }
    }

    /// `${NAME/pattern/replacement}` or `${NAME//pattern/replacement}` after the first `/`.
    fn process_replacement(&mut self, name: &str) -> Step<String> {
        let all = self.peek() == Some('/');
        if all {
            self.pos += 1;
        }
        let (pattern, _) = self.nested(Some('/'), true, || {
            "syntax error: missing '/' in ${}".to_owned()
        })?;
        let (replacement, _) = self.nested(Some('}'), true, missing_brace)?;
        let value = self.lookup(name);
        if value.is_none() && self.lexer.skip_unset_env {
            // BuildKit writes a single `/` back even for `//`.
            return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
        }
        pattern::replace(&pattern, value.as_deref().unwrap_or(""), &replacement, all)
    }

    /// Expands a word nested in `${…}`; an error at the end of the input becomes `at_end()`.
    fn nested(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
        at_end: fn() -> String,
    ) -> Step<(String, Vec<String>)> {
        if self.depth == MAX_NESTING {
            return Err(format!(
                "expansions nested more than {MAX_NESTING} levels deep"
            ));
        }
        self.depth += 1;
        let result = self
            .process_until(stop, raw_escapes)
            .map_err(|err| if self.peek().is_none() { at_end() } else { err });
        self.depth -= 1;
        result
    }

    /// A variable name: letters, digits and `_`; or all the digits of a positional parameter;
    /// or one special parameter character. Empty if none is there.
    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && is_digit(c) {
                while let Some(d) = self.peek().filter(|&d| is_digit(d)) {
                    name.push(d);
                    self.pos += 1;
                }
                return name;
            }
            if name.is_empty() && is_special_param(c) {
                self.pos += 1;
                return c.to_string();
            }
            if !is_letter(c) && !is_digit(c) && c != '_' {
                break;
            }
            name.push(c);
            self.pos += 1;
        }
        name
    }

    /// `<<` keeps the white space after it, so that `<< EOF` stays one word.
    fn process_possible_heredoc(&mut self) -> String {
        self.pos += 1;
        if self.peek() != Some('<') {
            return "<".to_owned();
        }
        self.pos += 1;
        let mut result = "<<".to_owned();
        while let Some(c) = self.peek().filter(|c| matches!(c, '\t' | '\r' | ' ')) {
            result.push(c);
            self.pos += 1;
        }
        result
    }

    fn lookup(&mut self, name: &str) -> Option<String> {
        let value = self.env.get(name);
        let set = if value.is_some() {
            &mut self.matched
        } else {
            &mut self.unmatched
        };
        set.insert(name.to_owned());
        value
    }
}

/// POSIX special parameters; a Dockerfile never sets them, but they end a name.
fn is_special_param(c: char) -> bool {
    matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0')
}

fn missing_brace() -> String {
    "syntax error: missing '}'".to_owned()
}

fn unsupported_modifier(spelled: &str) -> String {
    format!("unsupported modifier ({spelled}) in substitution")
}
