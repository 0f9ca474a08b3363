//! The one error type of the file operations.
//!
//! Paths in messages are shown relative to the root they live in (`/etc/passwd`, not the
//! host path of a snapshot), as BuildKit does, so a user can relate them to the Dockerfile.

use std::io;

/// The result of a file operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong while running a FileOp action.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A COPY/ADD source (or a wildcard with no match) does not exist in the source root.
    #[error("failed to compute cache key: \"{path}\" not found: not found")]
    SourceNotFound {
        /// The source path as the step names it, in its root.
        path: String,
    },

    /// The parent of a COPY destination does not exist and `create_dest_path` is off.
    /// (The system error is part of the message, in Go's words as BuildKit prints it, and
    /// so not a source.)
    #[error("failed to stat {path}: {}", go_message(error))]
    DestParentMissing {
        /// The destination's parent, in the destination root.
        path: String,
        /// The stat failure.
        error: io::Error,
    },

    /// A system call failed on a path; the system error in Go's words, as above.
    #[error("{op} {path}: {}", go_message(error))]
    Io {
        /// The operation as Go's `os` package names it (`"mkdir"`, `"lchown"`, `"open"`…).
        op: &'static str,
        /// The path, in its root.
        path: String,
        /// The system error.
        error: io::Error,
    },

    /// A directory would have to be replaced by a file.
    #[error("cannot replace to directory {path} with file")]
    ReplaceDirWithFile {
        /// The directory in the way, in the destination root.
        path: String,
    },

    /// A directory would have to be copied onto an existing non-directory.
    #[error("cannot copy to non-directory: {path}")]
    CopyToNonDir {
        /// The non-directory in the way, in the destination root.
        path: String,
    },

    /// Path resolution met more symlinks than the kernel would follow.
    #[error("failed to resolve {path}: too many links")]
    TooManyLinks {
        /// The path being resolved, in its root.
        path: String,
    },

    /// A removal target resolved to the root itself or had no final component.
    #[error("rmPath: invalid empty path")]
    EmptyPath,

    /// An archive entry of a type that cannot be extracted.
    #[error("unhandled tar header type {kind} for {name:?}")]
    ArchiveEntryType {
        /// The entry's name in the archive.
        name: String,
        /// The tar typeflag byte.
        kind: u8,
    },

    /// The archive could not be read (corrupt, truncated or bad compression).
    #[error("failed to read archive {path}")]
    Archive {
        /// The archive, in the source root.
        path: String,
        /// The read or decompression error.
        source: io::Error,
    },
}

/// The text Go's `os` package would print for this error ("no such file or directory"),
/// so that messages read like BuildKit's.
pub(crate) fn go_message(err: &io::Error) -> String {
    let text = err.to_string();
    let text = match text.find(" (os error ") {
        Some(cut) => &text[..cut],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}
