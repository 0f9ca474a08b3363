use thiserror::Error;

/// A build step that cannot be expressed in LLB.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LlbError {
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidImageRef {
        reference: String,
        reason: &'static str,
    },
    #[error("exec needs a command: args are empty")]
    EmptyArgs,
    #[error("exec needs a working directory")]
    EmptyCwd,
    #[error("two mounts target {0:?}")]
    DuplicateMount(String),
    #[error("a file op needs at least one action")]
    NoFileActions,
}
