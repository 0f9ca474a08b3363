//! BuildKit FileOp actions (copy, mkdir, mkfile, rm, symlink) run on plain directories.
//!
//! Each action works on a root directory that stands for `/` of a snapshot: every path is
//! resolved with [`safe`], so `..`, absolute symlinks and symlinked parents can never reach
//! outside of it. The semantics follow BuildKit's file backend and fsutil's copy package
//! (what Docker's COPY/ADD/WORKDIR do), including their error messages where a user sees
//! them.

mod copy;
mod error;
mod meta;
mod ops;
pub mod safe;
pub mod symbolic_mode;
mod unpack;
pub mod wildcard;

pub use copy::copy;
pub use error::{Error, Result};
pub use ops::{mkdir, mkfile, rm, symlink};
pub use unpack::is_archive;

/// The uid/gid given to everything an action creates (`--chown`), already resolved to ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// User id, as numbers in the image's user namespace.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// A decision on a source-relative path (`dir/file.txt`, without leading `/`), made by the
/// Dockerfile pattern matcher which lives elsewhere.
pub type PathPredicate<'a> = &'a dyn Fn(&str) -> bool;

/// Which paths below a copied directory are copied (COPY `--exclude`, and include
/// patterns). The copied source itself is always included.
#[derive(Clone, Copy, Default)]
pub struct CopyFilter<'a> {
    /// When set, only paths it accepts are copied (with the directories leading to them).
    pub include: Option<PathPredicate<'a>>,
    /// Paths it accepts are not copied, even when included.
    pub exclude: Option<PathPredicate<'a>>,
    /// Whether an excluded directory must still be searched because a negated pattern
    /// (`!dir/keep`) may bring back something below it. When false, excluded directories
    /// are skipped whole, as fsutil does when the patterns hold no exclusion.
    pub descend_excluded_dirs: bool,
}

impl std::fmt::Debug for CopyFilter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CopyFilter")
            .field("include", &self.include.is_some())
            .field("exclude", &self.exclude.is_some())
            .field("descend_excluded_dirs", &self.descend_excluded_dirs)
            .finish()
    }
}

/// `FileActionCopy`: copy `src` of the source root to `dest` of the destination root.
#[derive(Debug, Clone, Default)]
pub struct CopyAction<'a> {
    /// The source path in the source root (absolute; may hold wildcards with
    /// `allow_wildcard`).
    pub src: String,
    /// The destination in the destination root; a trailing `/` means "into this directory".
    pub dest: String,
    /// Owner of everything copied and of the destination parents created; `None` keeps the
    /// source ownership.
    pub owner: Option<Owner>,
    /// Without `owner`, who the copied files belong to instead of their owner on disk: a
    /// context's files are root's, as the docker CLI sends them. An unpacked archive's
    /// entries keep the owners the archive gives them.
    pub source_owner: Option<Owner>,
    /// Numeric mode for everything copied (and created parents); `None` keeps source modes.
    pub mode: Option<u32>,
    /// A symbolic mode (`u+x,g-w`) applied to each copied entry's own mode; it overrides
    /// `mode`, as BuildKit's `modeStr` does, and leaves created parents at 0755.
    pub symbolic_mode: Option<symbolic_mode::SymbolicMode>,
    /// Follow a symlink named by `src` itself (symlinks inside a copied tree stay symlinks).
    pub follow_symlinks: bool,
    /// Copying a directory copies its contents rather than the directory itself.
    pub dir_copy_contents: bool,
    /// ADD: a local tar archive (plain, gzip, bzip2 or xz) is unpacked into `dest`.
    pub attempt_unpack_docker_compatibility: bool,
    /// Create the missing parents of `dest`; otherwise they must exist.
    pub create_dest_path: bool,
    /// `src` may hold wildcards.
    pub allow_wildcard: bool,
    /// A wildcard matching nothing is not an error.
    pub allow_empty_wildcard: bool,
    /// Access and modification time of everything copied, in nanoseconds since the epoch.
    pub timestamp: Option<i64>,
    /// Replace existing destination paths even when their type differs from the source's.
    pub always_replace_existing_dest_paths: bool,
    /// Which paths below a copied directory are copied.
    pub filter: CopyFilter<'a>,
}

/// `FileActionMkDir`.
#[derive(Debug, Clone, Default)]
pub struct MkdirAction {
    /// The directory, absolute in the root. An existing directory is left as it is.
    pub path: String,
    /// Permission bits (higher bits dropped), set exactly: no umask.
    pub mode: u32,
    /// Create the missing parents too, with the same mode, owner and time.
    pub make_parents: bool,
    /// Owner of what is created; `None` is the caller's (root).
    pub owner: Option<Owner>,
    /// Access and modification time, in nanoseconds since the epoch; `None` is now.
    pub timestamp: Option<i64>,
}

/// `FileActionMkFile`.
#[derive(Debug, Clone, Default)]
pub struct MkfileAction {
    /// The file, absolute in the root; an existing file is truncated and keeps its mode.
    pub path: String,
    /// Permission bits of a new file (higher bits dropped), set exactly: no umask.
    pub mode: u32,
    /// The whole content.
    pub data: Vec<u8>,
    /// Owner of the file; `None` is the caller's (root).
    pub owner: Option<Owner>,
    /// Access and modification time, in nanoseconds since the epoch; `None` is now.
    pub timestamp: Option<i64>,
}

/// `FileActionRm`.
#[derive(Debug, Clone, Default)]
pub struct RmAction {
    /// What to remove (recursively), absolute in the root.
    pub path: String,
    /// A missing path is not an error.
    pub allow_not_found: bool,
    /// `path` may hold wildcards; every match is removed.
    pub allow_wildcard: bool,
}

/// `FileActionSymlink`: create `newpath` pointing to `oldpath` (stored verbatim).
#[derive(Debug, Clone, Default)]
pub struct SymlinkAction {
    /// The link's target, written as it is (not resolved, may point anywhere).
    pub oldpath: String,
    /// Where the link is made, absolute in the root.
    pub newpath: String,
    /// Owner of the link itself; `None` is the caller's (root).
    pub owner: Option<Owner>,
    /// The link's own access and modification time, in nanoseconds since the epoch.
    pub timestamp: Option<i64>,
}
