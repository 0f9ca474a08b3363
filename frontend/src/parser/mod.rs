//! Dockerfile text to a flat list of instruction nodes.
//!
//! This is the first stage of the frontend, BuildKit's `frontend/dockerfile/parser`:
//! parser directives, line continuations, comments, heredoc bodies and the per-instruction
//! argument rules. It knows nothing of what instructions mean; `crate::instructions`
//! turns the nodes into typed commands. Values are kept exactly as written (quotes,
//! escapes and `$variables` included): word expansion comes later.

mod directives;
mod error;
mod heredoc;
mod line_parsers;
mod split;
mod text;
mod words;

pub use directives::{DEFAULT_ESCAPE, DIRECTIVES, Directives, directive_in_comment};
pub use error::{ParseError, ParseErrorKind};
pub use heredoc::{BadHeredocWord, Heredoc, HeredocWord, chomp, parse_heredoc_word};
pub use text::{Decoded, decode};

use directives::DirectiveScanner;
use line_parsers::{is_instruction, parse_args};
use split::split_command;

/// One instruction of a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The instruction keyword, lower case (`run`, `copy`…).
    pub keyword: String,
    /// The logical line: continuation lines joined, comments inside it dropped.
    pub original: String,
    /// 1-based line where the instruction starts.
    pub start_line: usize,
    /// 1-based line where it ends, heredoc bodies included.
    pub end_line: usize,
    /// The leading `--name[=value]` words, quotes removed, in order.
    pub flags: Vec<String>,
    /// The arguments, unexpanded. ENV and LABEL hold triples `name, value, separator`
    /// (separator `""` for the old `ENV name value` form, `"="` otherwise).
    pub values: Vec<String>,
    /// The arguments were a JSON array (exec form).
    pub json: bool,
    /// Heredoc bodies, in the order their openers appear on the line.
    pub heredocs: Vec<Heredoc>,
    /// For ONBUILD: the trigger instruction.
    pub sub_command: Option<Box<Node>>,
    /// The comments right above the instruction, `#` and blanks trimmed (BuildKit's
    /// `PrevComment`: a bare `#` starts them over); descriptions and `# check=` overrides.
    pub comments: Vec<String>,
}

impl Node {
    /// Whether heredocs on this instruction's line are read (RUN, COPY, ADD in shell
    /// form, directly or as an ONBUILD trigger).
    fn can_contain_heredoc(&self) -> bool {
        let node = match &self.sub_command {
            Some(sub) if self.keyword == "onbuild" => sub,
            _ => self,
        };
        matches!(node.keyword.as_str(), "run" | "copy" | "add") && !node.json
    }
}

/// A problem that does not stop the parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// One-line description.
    pub message: String,
    /// 1-based line it refers to.
    pub line: usize,
    /// Documentation URL of the rule.
    pub url: &'static str,
}

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The parser directives at the top.
    pub directives: Directives,
    /// The instructions, in order.
    pub nodes: Vec<Node>,
    /// Non-fatal findings (empty continuation lines).
    pub warnings: Vec<Warning>,
}

/// ONBUILD can nest only one level meaningfully; this bounds recursion on hostile input.
const MAX_NESTING: usize = 8;

/// The longest line BuildKit reads (its line scanner's buffer, newline excluded): a longer
/// one is an error there too, which also bounds how long a step's name can be.
pub const MAX_LINE_LEN: usize = 65535;

/// Parses a Dockerfile.
pub fn parse(text: &str) -> Result<Parsed, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if let Some(at) = text.split('\n').position(|line| line.len() > MAX_LINE_LEN) {
        return Err(ParseError::at(at + 1, "", "", ParseErrorKind::LineTooLong));
    }
    let mut lines = Lines {
        iter: text.split_inclusive('\n'),
        current: 0,
    };
    let mut directives = Directives::default();
    let mut scanner = DirectiveScanner::default();
    let mut nodes = Vec::new();
    let mut warnings = Vec::new();
    let mut comments = Vec::new();

    while let Some(raw) = lines.next() {
        let start_line = lines.current;
        let first = trim_newline(raw).trim_start();
        match scanner.scan(first, &mut directives) {
            Ok(true) => {
                if directives.syntax.is_some() && directives.syntax_line.is_none() {
                    directives.syntax_line = Some(start_line);
                }
                continue;
            }
            Ok(false) => {}
            Err(kind) => return Err(ParseError::at(start_line, raw, first, kind)),
        }
        let escape = directives.escape;
        if is_comment(first) {
            match first[1..].trim() {
                "" => comments.clear(),
                comment => comments.push(comment.to_string()),
            }
            continue;
        }
        let (text, mut end_of_line) = trim_continuation(first, escape);
        if end_of_line && text.is_empty() {
            continue;
        }
        let mut line = text.to_string();
        let mut empty_continuation = false;
        while !end_of_line {
            let Some(raw) = lines.next() else { break };
            if is_comment(raw) {
                continue;
            }
            let next = trim_newline(raw);
            if next.trim_start().is_empty() {
                empty_continuation = true;
                continue;
            }
            let (text, eol) = trim_continuation(next, escape);
            line.push_str(text);
            end_of_line = eol;
        }
        if empty_continuation {
            warnings.push(Warning {
                message: format!("Empty continuation line found in: {line}"),
                line: lines.current,
                url: "https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/",
            });
        }

        let located = |kind| ParseError::at(start_line, raw, first, kind);
        let mut node = node_from_line(&line, escape, 0).map_err(located)?;
        if node.can_contain_heredoc() && line.contains("<<") {
            let openers = heredoc::heredocs_in_line(&line).map_err(|bad| {
                ParseError::at(
                    start_line,
                    raw,
                    &bad.0,
                    ParseErrorKind::InvalidHeredoc(bad.0.clone()),
                )
            })?;
            for opener in openers {
                node.heredocs
                    .push(read_heredoc_body(&mut lines, opener, start_line, raw)?);
            }
        }
        node.start_line = start_line;
        node.end_line = lines.current;
        node.comments = std::mem::take(&mut comments);
        if let Some(sub) = node.sub_command.as_deref_mut() {
            sub.start_line = start_line;
            sub.end_line = lines.current;
        }
        nodes.push(node);
    }

    if nodes.is_empty() {
        return Err(ParseError {
            line: lines.current.max(1),
            column: 1,
            text: String::new(),
            kind: ParseErrorKind::NoInstructions,
        });
    }
    Ok(Parsed {
        directives,
        nodes,
        warnings,
    })
}

/// Physical lines with their endings, counted.
struct Lines<'a> {
    iter: std::str::SplitInclusive<'a, char>,
    /// 1-based number of the last line returned.
    current: usize,
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let line = self.iter.next()?;
        self.current += 1;
        Some(line)
    }
}

fn read_heredoc_body(
    lines: &mut Lines<'_>,
    opener: HeredocWord,
    start_line: usize,
    first_raw: &str,
) -> Result<Heredoc, ParseError> {
    let mut content = String::new();
    for raw in lines.by_ref() {
        let mut candidate = trim_newline(raw);
        if opener.chomp {
            candidate = candidate.trim_start_matches('\t');
        }
        if candidate == opener.name {
            return Ok(Heredoc {
                name: opener.name,
                fd: opener.fd,
                content,
                expand: opener.expand,
                chomp: opener.chomp,
            });
        }
        content.push_str(raw);
    }
    let mut err = ParseError::at(
        start_line,
        first_raw,
        &opener.name,
        ParseErrorKind::UnterminatedHeredoc(opener.name.clone()),
    );
    err.text = first_raw.trim_end().to_string();
    Err(err)
}

fn node_from_line(line: &str, escape: char, depth: usize) -> Result<Node, ParseErrorKind> {
    if depth > MAX_NESTING {
        return Err(ParseErrorKind::NestingTooDeep);
    }
    let (keyword, flags, rest) = split_command(line, escape);
    let lower = keyword.to_lowercase();
    if !is_instruction(&lower) {
        return Err(ParseErrorKind::UnknownInstruction(keyword));
    }
    let args = parse_args(&lower, &rest, escape)?;
    let sub_command = match args.sub_command {
        Some(sub) => Some(Box::new(node_from_line(&sub, escape, depth + 1)?)),
        None => None,
    };
    Ok(Node {
        keyword: lower,
        original: line.to_string(),
        start_line: 0,
        end_line: 0,
        flags,
        values: args.values,
        json: args.json,
        heredocs: Vec::new(),
        sub_command,
        comments: Vec::new(),
    })
}

fn trim_newline(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Removes a trailing line-continuation escape (and the blanks after it). Returns the
/// line and whether the logical line ends here.
///
/// The escape continues the line when it is the last non-blank character and is not
/// itself escaped, or when it stands alone on the line. As in BuildKit, an escape
/// preceded by an escaped escape (`a\\\`) does not continue.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let body = line.trim_end_matches([' ', '\t']);
    let Some(before) = body.strip_suffix(escape) else {
        return (line, true);
    };
    match before.chars().next_back() {
        None => ("", false),
        Some(c) if c != escape => (before, false),
        Some(_) => (line, true),
    }
}

#[cfg(test)]
mod tests;
