//! RFC 822-style fields, as dpkg's status file (deb822 paragraphs) and Python's core
//! metadata (a header block) write them: `Name: value`, continued on lines that start with
//! a space or a tab.

/// One paragraph's fields in order; names compare case-insensitively, as in both formats.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Fields(Vec<(String, String)>);

impl Fields {
    /// The first field named `name`, its continuation lines joined with newlines; `None`
    /// for an empty one too.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// Takes one line of the paragraph: a new field, or the continuation of the last one.
    /// False for a line that is neither (a continuation with no field before it, a line
    /// without a `:`), which the caller reports.
    fn push_line(&mut self, line: &str) -> bool {
        if let Some(rest) = line.strip_prefix([' ', '\t']) {
            return match self.0.last_mut() {
                Some((_, value)) => {
                    value.push('\n');
                    value.push_str(rest.trim());
                    true
                }
                None => false,
            };
        }
        match line.split_once(':') {
            Some((name, value)) if !name.is_empty() && !name.contains(char::is_whitespace) => {
                self.0.push((name.to_string(), value.trim().to_string()));
                true
            }
            _ => false,
        }
    }

    /// No field yet: blank lines before a paragraph make none.
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A line that ends the reading of a file: dpkg refuses such a file too.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: neither a field nor the continuation of one")]
pub(super) struct MalformedLine {
    /// Counted from 1, as an editor shows it.
    pub line: usize,
}

/// The paragraphs of a deb822 file, one at a time (a status file holds thousands); blank
/// lines separate them. A line that is neither a field nor a continuation is an error, as
/// it is for dpkg, and ends the iteration.
pub(super) fn paragraphs(text: &str) -> Paragraphs<'_> {
    Paragraphs {
        lines: text.lines().enumerate(),
        failed: false,
    }
}

/// The iterator [`paragraphs`] returns.
pub(super) struct Paragraphs<'a> {
    /// The lines not read yet, with their 0-based numbers.
    lines: std::iter::Enumerate<std::str::Lines<'a>>,
    /// A malformed line was reported: nothing more is read.
    failed: bool,
}

impl Iterator for Paragraphs<'_> {
    type Item = Result<Fields, MalformedLine>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let mut current = Fields::default();
        for (index, line) in self.lines.by_ref() {
            if line.trim().is_empty() {
                if current.is_empty() {
                    continue;
                }
                return Some(Ok(current));
            }
            if !current.push_line(line) {
                self.failed = true;
                return Some(Err(MalformedLine { line: index + 1 }));
            }
        }
        (!current.is_empty()).then_some(Ok(current))
    }
}

/// The header block of a message (Python's `METADATA`/`PKG-INFO`): it ends at the first
/// blank line, where the body (the long description) starts, or at a line that is not a
/// header, as Python's `email` parser decides.
pub(super) fn headers(text: &str) -> Fields {
    let mut fields = Fields::default();
    for line in text.lines() {
        if line.trim().is_empty() || !fields.push_line(line) {
            break;
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_and_continuations() {
        let text = "Package: a\nDescription: short\n long\n .\n\tmore\n\n\n\
                    package: b\nVersion: 1:2.0-1\n";
        let p: Vec<Fields> = paragraphs(text).collect::<Result<_, _>>().unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].get("package"), Some("a"));
        assert_eq!(p[0].get("Description"), Some("short\nlong\n.\nmore"));
        assert_eq!(p[1].get("Package"), Some("b"));
        assert_eq!(p[1].get("Version"), Some("1:2.0-1"));
        let mut p = paragraphs("Package: a\nnot a field\nPackage: b\n");
        assert_eq!(p.next(), Some(Err(MalformedLine { line: 2 })));
        assert_eq!(p.next(), None);
        let mut p = paragraphs(" continuation first\n");
        assert_eq!(p.next(), Some(Err(MalformedLine { line: 1 })));
    }

    #[test]
    fn headers_stop_at_the_body() {
        let h = headers("Name: x\nClassifier: a\nClassifier: b\n\nLicense: not a header\n");
        assert_eq!(h.get("name"), Some("x"));
        assert_eq!(h.get("classifier"), Some("a"));
        assert_eq!(h.get("License"), None);
    }
}
