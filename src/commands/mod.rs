//! The commands other than `build`: `du`, `prune` and `debug workers`. Each takes its parsed
//! options and the state root, and writes to the writer it is given; with `--addr`,
//! `remote` asks the daemon instead and prints its answer the same way.

pub mod du;
pub mod format;
pub mod prune;
pub mod remote;
pub mod workers;

use crate::cache::meta::{MetaError, MetaStore};
use crate::state::StateRoot;

/// Why a local `du`, `prune` or `debug workers` failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The cache's metadata could not be opened or read.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// Measuring or collecting the cache failed.
    #[error(transparent)]
    Gc(#[from] crate::gc::GcError),
    /// The state root could not be found or created.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// bud.toml could not be read.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A `--filter` value is wrong; the message says how.
    #[error(transparent)]
    Usage(#[from] crate::gc::FilterError),
    /// `bud prune` could not remove the failed steps' logs.
    #[error("removing {}", path.display())]
    Remove {
        /// The logs directory.
        path: std::path::PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The answer could not be written to the output (a closed pipe).
    #[error("writing the output")]
    Output(#[from] std::io::Error),
}

fn open_meta(state: &StateRoot) -> Result<MetaStore, MetaError> {
    MetaStore::open(&state.db_path())
}

/// The state root from `--root`/`BUD_ROOT`, or the default for this user.
pub fn state_root(root: Option<&std::path::Path>) -> Result<StateRoot, CommandError> {
    let path = match root {
        Some(p) => p.to_owned(),
        None => StateRoot::default_path()?,
    };
    Ok(StateRoot::open(path)?)
}
