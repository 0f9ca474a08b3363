//! Errors as one line with their causes, the one printer for every error a user sees (the
//! final `error:` line, a step's failure, progress and warnings). bud's own messages name
//! their own layer only and leave the cause to this walk (`convention.rs` checks it);
//! connection errors (hyper's, rustls', ssh's) carry their reason in their sources, and
//! their own message often names only the kind. Some foreign errors print their source
//! too: a cause already in the text is not repeated.
//!
//! The convention around it: one `thiserror` type per library module, with the context a
//! user needs to act; `anyhow` only at the edge (`build`, `main.rs`). A trait whose
//! implementers' errors its caller cannot know (the frontend's `ImageResolver`, the solver's
//! `ImageProvider`) returns them boxed and whole, never turned into text, so this walk still
//! reaches their causes.

/// `e` and each of its sources not already part of the text, joined with `: `.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod convention;
