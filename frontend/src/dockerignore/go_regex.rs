//! Go (RE2) regular expression syntax, rewritten for the `regex` crate.
//!
//! moby matches patterns with Go's `regexp`; `bud` builds the same Go expression and rewrites
//! it here. The engines agree on semantics (leftmost-first, `.` excludes `\n`, `^`/`$` anchor
//! the text), but the syntax differs: Go treats `[`, `&&`, `--` and `~~` inside a class as
//! literal text where `regex` gives them meaning, and Go's `\d`, `\s`, `\w`, `\b` are ASCII.
//! Every literal is therefore re-escaped and every class rebuilt. Go's `\C` and escapes of
//! surrogates are rejected (Go rejects the first and can never match the second).

/// The `regex`-crate spelling of the Go expression `go`, or why Go would reject it.
pub(crate) fn to_rust(go: &str) -> Result<String, String> {
    let mut p = Parser {
        chars: go.chars().collect(),
        pos: 0,
        out: String::with_capacity(go.len() * 2),
    };
    while let Some(c) = p.next() {
        match c {
            '\\' => p.escape_outside_class()?,
            '[' => p.class()?,
            '(' | ')' | '|' | '*' | '+' | '?' | '.' | '^' | '$' => p.out.push(c),
            _ => push_literal(&mut p.out, c),
        }
    }
    Ok(p.out)
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    out: String,
}

/// ASCII `\d`, `\s`, `\w` and their negations, as Go defines them.
fn perl_class(c: char) -> Option<&'static str> {
    Some(match c {
        'd' => "[0-9]",
        'D' => "[^0-9]",
        's' => "[\\t\\n\\x0C\\r ]",
        'S' => "[^\\t\\n\\x0C\\r ]",
        'w' => "[0-9A-Za-z_]",
        'W' => "[^0-9A-Za-z_]",
        _ => return None,
    })
}

const POSIX_CLASSES: &[&str] = &[
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

fn push_literal(out: &mut String, c: char) {
    if c.is_ascii_alphanumeric() || c == '_' || c == '/' || !c.is_ascii() && !c.is_control() {
        out.push(c);
    } else {
        out.push_str(&format!("\\x{{{:X}}}", u32::from(c)));
    }
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// After a `\` outside a class.
    fn escape_outside_class(&mut self) -> Result<(), String> {
        let Some(c) = self.peek() else {
            return Err("trailing backslash at end of expression".to_owned());
        };
        match c {
            'A' | 'z' => self.out.push_str(if c == 'A' { "\\A" } else { "\\z" }),
            'b' => self.out.push_str("(?-u:\\b)"),
            'B' => self.out.push_str("(?-u:\\B)"),
            'C' => return Err("invalid escape sequence: `\\C`".to_owned()),
            'Q' => {
                self.pos += 1;
                while self.pos < self.chars.len() {
                    if self.peek() == Some('\\') && self.peek_at(1) == Some('E') {
                        self.pos += 2;
                        return Ok(());
                    }
                    let c = self.chars[self.pos];
                    push_literal(&mut self.out, c);
                    self.pos += 1;
                }
                return Ok(());
            }
            'p' | 'P' => {
                let class = self.unicode_class()?;
                self.out.push_str(&class);
                return Ok(());
            }
            _ => {
                if let Some(class) = perl_class(c) {
                    self.out.push_str(class);
                } else {
                    let literal = self.escaped_char()?;
                    push_literal(&mut self.out, literal);
                    return Ok(());
                }
            }
        }
        self.pos += 1;
        Ok(())
    }

    /// `\pL`, `\p{Greek}`, `\p{^Greek}` or `\P…`, positioned at the `p`.
    fn unicode_class(&mut self) -> Result<String, String> {
        let mut negated = self.next() == Some('P');
        let name: String = match self.next() {
            None => return Err("invalid character class range: `\\p`".to_owned()),
            Some('{') => {
                let mut name = String::new();
                loop {
                    match self.next() {
                        None => return Err("invalid character class range".to_owned()),
                        Some('}') => break,
                        Some(c) => name.push(c),
                    }
                }
                name
            }
            Some(c) => c.to_string(),
        };
        let name = match name.strip_prefix('^') {
            Some(rest) => {
                negated = !negated;
                rest.to_owned()
            }
            None => name,
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("invalid character class range: `{name}`"));
        }
        Ok(format!("\\{}{{{name}}}", if negated { 'P' } else { 'p' }))
    }

    /// The character a `\` escape stands for, positioned after the `\` (Go's `parseEscape`).
    fn escaped_char(&mut self) -> Result<char, String> {
        let Some(c) = self.next() else {
            return Err("trailing backslash at end of expression".to_owned());
        };
        let invalid = || format!("invalid escape sequence: `\\{c}`");
        if c.is_ascii() && !c.is_ascii_alphanumeric() {
            return Ok(c);
        }
        let value = match c {
            '1'..='7' if !matches!(self.peek(), Some('0'..='7')) => return Err(invalid()),
            '0'..='7' => {
                let mut value = c as u32 - '0' as u32;
                for _ in 0..2 {
                    match self.peek() {
                        Some(d @ '0'..='7') => {
                            value = value * 8 + (d as u32 - '0' as u32);
                            self.pos += 1;
                        }
                        _ => break,
                    }
                }
                value
            }
            'x' => self.hex_escape().ok_or_else(invalid)?,
            'a' => 0x07,
            'f' => 0x0C,
            'n' => 0x0A,
            'r' => 0x0D,
            't' => 0x09,
            'v' => 0x0B,
            _ => return Err(invalid()),
        };
        char::from_u32(value).ok_or_else(invalid)
    }

    /// `\x41` or `\x{10FFFF}`, positioned after the `x`.
    fn hex_escape(&mut self) -> Option<u32> {
        if self.peek() == Some('{') {
            self.pos += 1;
            let mut value: u32 = 0;
            let mut digits = 0;
            loop {
                let c = self.next()?;
                if c == '}' {
                    break;
                }
                value = value * 16 + c.to_digit(16)?;
                if value > 0x10FFFF {
                    return None;
                }
                digits += 1;
            }
            return (digits > 0).then_some(value);
        }
        let high = self.next()?.to_digit(16);
        let low = self.next()?.to_digit(16);
        Some(high? * 16 + low?)
    }

    /// A bracket expression, positioned after the `[`, with Go's rules: `]` first is literal,
    /// `[` is literal unless it starts `[:name:]`, and `-` makes a range only between two
    /// characters.
    fn class(&mut self) -> Result<(), String> {
        let mut class = String::from("[");
        if self.peek() == Some('^') {
            self.pos += 1;
            class.push('^');
        }
        let mut first = true;
        loop {
            match self.peek() {
                None => return Err("missing closing ]".to_owned()),
                Some(']') if !first => {
                    self.pos += 1;
                    break;
                }
                _ => {}
            }
            first = false;
            if self.peek() == Some('[') && self.peek_at(1) == Some(':') {
                if let Some(named) = self.posix_class()? {
                    class.push_str(&named);
                    continue;
                }
            }
            if self.peek() == Some('\\') {
                match self.peek_at(1) {
                    Some('p' | 'P') => {
                        self.pos += 1;
                        let unicode = self.unicode_class()?;
                        class.push_str(&unicode);
                        continue;
                    }
                    Some(c) if perl_class(c).is_some() => {
                        self.pos += 2;
                        class.extend(perl_class(c));
                        continue;
                    }
                    _ => {}
                }
            }
            let low = self.class_char()?;
            let mut high = low;
            if self.peek() == Some('-') && self.peek_at(1).is_some_and(|c| c != ']') {
                self.pos += 1;
                high = self.class_char()?;
                if high < low {
                    return Err(format!("invalid character class range: `{low}-{high}`"));
                }
            }
            push_literal(&mut class, low);
            if high != low {
                class.push('-');
                push_literal(&mut class, high);
            }
        }
        class.push(']');
        self.out.push_str(&class);
        Ok(())
    }

    /// `[:alpha:]` or `[:^alpha:]` at `[:`; `None` if no `:]` follows, when `[` is literal.
    fn posix_class(&mut self) -> Result<Option<String>, String> {
        let rest: String = self.chars[self.pos + 2..].iter().collect();
        let Some(end) = rest.find(":]") else {
            return Ok(None);
        };
        let body = &rest[..end];
        let name = body.strip_prefix('^').unwrap_or(body);
        if !POSIX_CLASSES.contains(&name) {
            return Err(format!("invalid character class range: `[:{body}:]`"));
        }
        self.pos += 2 + body.chars().count() + 2;
        Ok(Some(format!("[:{body}:]")))
    }

    fn class_char(&mut self) -> Result<char, String> {
        match self.next() {
            None => Err("missing closing ]".to_owned()),
            Some('\\') => self.escaped_char(),
            Some(c) => Ok(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::to_rust;
    use regex::Regex;

    fn go_match(go: &str, text: &str) -> bool {
        let rust = to_rust(go).unwrap_or_else(|e| panic!("{go:?}: {e}"));
        Regex::new(&rust)
            .unwrap_or_else(|e| panic!("{go:?} -> {rust:?}: {e}"))
            .is_match(text)
    }

    #[test]
    fn classes_follow_go() {
        assert!(go_match("^[a[^/]*]$", "a[]"));
        assert!(go_match("^[a[^/]*]$", "]"));
        assert!(!go_match("^[a[^/]*]$", "b]"));
        assert!(go_match("^[a&&b]$", "&"));
        assert!(go_match("^[%--]$", ","));
        assert!(to_rust("[a--b]").is_err());
        assert!(go_match("^[[:alpha:]]$", "q"));
        assert!(!go_match("^[[:^alpha:]]$", "q"));
        assert!(go_match("^[[:a]$", ":"));
        assert!(go_match("^[\\d-z]$", "-"));
        assert!(go_match("^[^\\d]$", "x"));
        assert!(!go_match("^[^\\d]$", "5"));
        assert!(go_match("^[]a]$", "]"));
    }

    #[test]
    fn escapes_follow_go() {
        assert!(go_match("^a\\d$", "a7"));
        assert!(!go_match("^a\\d$", "a٣"));
        assert!(go_match("^\\x41\\x{42}\\101$", "ABA"));
        assert!(go_match("^\\Q.*\\E$", ".*"));
        assert!(go_match("^\\pL$", "é"));
        assert!(go_match("^a\\bb|a\\b$", "a"));
    }

    #[test]
    fn go_rejects_are_errors() {
        for bad in [
            "\\y",
            "\\1",
            "\\é",
            "[z-a]",
            "[[:foo:]]",
            "[a",
            "\\",
            "\\C",
            "\\x{D800}",
        ] {
            assert!(to_rust(bad).is_err(), "{bad:?}");
        }
    }
}
