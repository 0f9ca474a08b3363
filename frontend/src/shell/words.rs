//! Word accumulation shared by the expanding lexer (`shell::lexer`) and the parser's
//! heredoc finder (`parser::words`), which split lines the same way.

/// Accumulates the words of a line as a shell splits them.
#[derive(Default)]
pub(crate) struct Words {
    words: Vec<String>,
    buf: String,
    in_word: bool,
}

impl Words {
    /// An unquoted character: white space ends the current word.
    pub(crate) fn add_char(&mut self, c: char) {
        if c.is_whitespace() {
            if self.in_word && !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }

    pub(crate) fn add_raw_char(&mut self, c: char) {
        self.buf.push(c);
        self.in_word = true;
    }

    pub(crate) fn add_string(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }

    /// Quoted text: part of the current word whatever it holds. An empty string still marks a
    /// word as started, but a word is only emitted if it has text.
    pub(crate) fn add_raw_string(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }

    pub(crate) fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(self.buf);
        }
        self.words
    }
}
