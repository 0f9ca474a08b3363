use thiserror::Error;

/// A build step that cannot be expressed in LLB.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LlbError {
    /// An image source's reference cannot be parsed.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidImageRef {
        /// The reference as given.
        reference: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An exec without a command.
    #[error("exec needs a command: args are empty")]
    EmptyArgs,
    /// An exec without a working directory (the frontend always sets one, `/` at least).
    #[error("exec needs a working directory")]
    EmptyCwd,
    /// Two mounts of one exec at the same path (or one at `/`, the root's place).
    #[error("two mounts target {0:?}")]
    DuplicateMount(String),
    /// A file op with no action, which BuildKit refuses.
    #[error("a file op needs at least one action")]
    NoFileActions,
}
