//! Errors as one line with their causes: connection errors (hyper's, rustls', ssh's) carry
//! their reason in their sources, and their own message often names only the kind.

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
