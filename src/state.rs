//! bud's state root (`--root`, `BUD_ROOT`): where the cache, its snapshots and the content
//! store live. Several bud processes may share one root at the same time.

use std::path::{Path, PathBuf};

/// Why the state root cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A directory of the layout could not be created (or, for a relative root, the
    /// working directory it is relative to could not be read).
    #[error("cannot create the state directory {path}")]
    Create {
        /// The directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A user other than root has neither `XDG_DATA_HOME` nor `HOME` to put the default
    /// root under.
    #[error("no state directory: $HOME is not set; pass --root or set BUD_ROOT")]
    NoHome,
}

/// The layout of a state root:
/// `meta.db` (the cache's metadata), `snapshots/<id>` (committed read-only layer
/// directories), `content/` (blobs by digest), `cache-mounts/<id>` (RUN --mount=type=cache),
/// `tmp/<pid>-…` (work in flight, removed when its process is gone).
#[derive(Debug, Clone)]
pub struct StateRoot {
    root: PathBuf,
}

impl StateRoot {
    /// `/var/lib/bud` for root, `$XDG_DATA_HOME/bud` or `~/.local/share/bud` otherwise.
    pub fn default_path() -> Result<PathBuf, StateError> {
        if crate::privilege::invoked_as_root() {
            return Ok(PathBuf::from("/var/lib/bud"));
        }
        if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
            return Ok(PathBuf::from(data).join("bud"));
        }
        let home = std::env::var_os("HOME").ok_or(StateError::NoHome)?;
        Ok(PathBuf::from(home).join(".local/share/bud"))
    }

    /// Opens the root at `root` (made absolute against the working directory), creating
    /// its directories when missing.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StateError> {
        let root = root.into();
        // runc resolves bundle paths from its own working directory: keep every path absolute.
        let root = if root.is_absolute() {
            root
        } else {
            std::env::current_dir()
                .map_err(|source| StateError::Create {
                    path: root.clone(),
                    source,
                })?
                .join(root)
        };
        let state = Self { root };
        for dir in [
            state.root.clone(),
            state.snapshots_dir(),
            state.content_dir(),
            state.cache_mounts_dir(),
            state.tmp_dir(),
        ] {
            std::fs::create_dir_all(&dir).map_err(|source| StateError::Create {
                path: dir.clone(),
                source,
            })?;
        }
        Ok(state)
    }

    /// The root itself, always absolute.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The metadata database ([`crate::cache::meta::MetaStore`]).
    pub fn db_path(&self) -> PathBuf {
        self.root.join("meta.db")
    }

    /// Committed layer directories, one per snapshot id, never written after the commit.
    pub fn snapshots_dir(&self) -> PathBuf {
        self.root.join("snapshots")
    }

    /// The content store ([`crate::content`]).
    pub fn content_dir(&self) -> PathBuf {
        self.root.join("content")
    }

    /// The directories of `RUN --mount=type=cache`, shared by the steps that name them.
    pub fn cache_mounts_dir(&self) -> PathBuf {
        self.root.join("cache-mounts")
    }

    /// Work in flight (workspaces, bundles, downloads), each under its process's name so
    /// that a dead process's leftovers can be told and removed.
    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// Failed steps' whole output, one directory per build (`progress::step_logs`).
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }
}
