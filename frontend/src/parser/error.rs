//! The parser's error type.

use thiserror::Error;

/// A Dockerfile that cannot be turned into a node list.
///
/// `line` and `column` are 1-based and point into the original text; `text` is the
/// offending source (the directive, the logical instruction line or the heredoc opener).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("dockerfile parse error on line {line}, column {column}: {kind}")]
pub struct ParseError {
    /// 1-based line of the offending text.
    pub line: usize,
    /// 1-based column (in characters) of the offending text on `line`.
    pub column: usize,
    /// The offending source text.
    pub text: String,
    /// What is wrong.
    pub kind: ParseErrorKind,
}

/// The reasons a Dockerfile fails to parse, worded as BuildKit words them.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseErrorKind {
    /// A parser directive (`# escape=`…) appears twice.
    #[error("only one {0} parser directive can be used")]
    RepeatedDirective(String),
    /// `# escape=` names something other than a backslash or a backtick.
    #[error("invalid escape token '{0}' does not match ` or \\")]
    InvalidEscapeToken(String),
    /// The file holds no instruction at all (empty, or only comments).
    #[error("file with no instructions")]
    NoInstructions,
    /// The keyword is not a Dockerfile instruction.
    #[error("unknown instruction: {0}")]
    UnknownInstruction(String),
    /// A JSON array whose elements are not all strings (`CMD ["a", 1]`).
    #[error("when using JSON array syntax, arrays must be comprised of strings only")]
    NotStringArray,
    /// `ENV name` / `LABEL name` without a value.
    #[error("{0} must have two arguments")]
    MissingValue(&'static str),
    /// `ENV a=b c`: a word without `=` after the first `name=value`.
    #[error("Syntax error - can't find = in {0:?}. Must be of the form: name=value")]
    MissingEquals(String),
    /// A heredoc whose terminator line never comes.
    #[error("unterminated heredoc {0:?}")]
    UnterminatedHeredoc(String),
    /// A heredoc word that the shell lexer cannot read.
    #[error("invalid heredoc {0:?}")]
    InvalidHeredoc(String),
    /// A line longer than BuildKit's line scanner reads.
    #[error(
        "dockerfile line greater than max allowed size of {}",
        super::MAX_LINE_LEN
    )]
    LineTooLong,
    /// `ONBUILD ONBUILD …` nested past any sensible depth.
    #[error("ONBUILD nested too deeply")]
    NestingTooDeep,
}

impl ParseError {
    /// Builds an error located at the first occurrence of `needle` in `line_text`
    /// (column 1 when it does not occur there).
    pub(crate) fn at(line: usize, line_text: &str, needle: &str, kind: ParseErrorKind) -> Self {
        let column = if needle.is_empty() {
            1
        } else {
            line_text
                .find(needle)
                .map_or(1, |byte| line_text[..byte].chars().count() + 1)
        };
        ParseError {
            line,
            column,
            text: needle.to_string(),
            kind,
        }
    }
}
