//! Dockerfile word expansion, as BuildKit's `frontend/dockerfile/shell` package does it.
//!
//! A [`Lexer`] takes one word of a Dockerfile instruction (after line continuations are joined)
//! and expands `$VAR`, `${VAR}` and the `${VAR<op>word}` forms against an [`Env`], removes quotes
//! and escapes, and optionally splits the result into words.
//!
//! This is not a POSIX shell: there is no command substitution, no arithmetic, no globbing and
//! no field splitting on `IFS`; the rules are BuildKit's, quirks included, because a Dockerfile
//! must mean the same thing to `bud` as to `docker build`. The one known difference: BuildKit's
//! `ProcessWords` loses the text of a word that precedes a `${VAR:-…}`-style expansion inside
//! that same word (`a${X:-b}` splits to `["b"]`), because nested expansions reuse its word
//! buffer; `bud` keeps it (`["ab"]`).

mod env;
mod lexer;
mod pattern;
mod unicode;
pub(crate) mod words;

pub use env::{EmptyEnv, Env};
pub use lexer::{Lexer, MAX_NESTING, ProcessedWord, ShellError};
