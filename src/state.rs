//! bud's state root (`--root`, `BUD_ROOT`): where the cache, its snapshots and the content
//! store live. Several bud processes may share one root at the same time.

use std::path::{Path, PathBuf};

/// Why the state root cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A directory of the layout could not be created.
    #[error("cannot create the state directory {path}")]
    Create {
        /// The directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A relative root was given, and the working directory it is relative to could not be
    /// read (removed, or a parent not searchable).
    #[error(
        "cannot resolve the relative state directory {path}: the working directory cannot be read"
    )]
    WorkingDir {
        /// The root as given.
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
        let root = absolute(root.into(), std::env::current_dir)?;
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

/// `root` joined to the working directory `cwd` reads, unless already absolute: runc resolves
/// bundle paths from its own working directory, so every state path is kept absolute.
fn absolute(
    root: PathBuf,
    cwd: impl FnOnce() -> std::io::Result<PathBuf>,
) -> Result<PathBuf, StateError> {
    if root.is_absolute() {
        return Ok(root);
    }
    match cwd() {
        Ok(dir) => Ok(dir.join(root)),
        Err(source) => Err(StateError::WorkingDir { path: root, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_root_with_unreadable_working_dir_names_the_working_dir() {
        let gone = || Err(std::io::Error::from(std::io::ErrorKind::NotFound));
        let err = absolute(PathBuf::from("state"), gone).expect_err("no working directory");
        assert!(
            matches!(&err, StateError::WorkingDir { path, .. } if path == Path::new("state")),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "cannot resolve the relative state directory state: the working directory cannot be read"
        );
    }

    #[test]
    fn absolute_root_does_not_read_the_working_dir() {
        let unread = || -> std::io::Result<PathBuf> { panic!("working directory read") };
        let root = absolute(PathBuf::from("/var/lib/bud"), unread).expect("absolute root");
        assert_eq!(root, Path::new("/var/lib/bud"));
    }

    #[test]
    fn relative_root_is_joined_to_the_working_dir() {
        let cwd = || Ok(PathBuf::from("/home/alice"));
        let root = absolute(PathBuf::from("state"), cwd).expect("relative root");
        assert_eq!(root, Path::new("/home/alice/state"));
    }
}
