//! The commands other than `build`: `du`, `prune` and `debug workers`. Each takes its parsed
//! options and the state root, and writes to the writer it is given.

pub mod du;
pub mod format;
pub mod prune;
pub mod remote;
pub mod workers;

use crate::cache::meta::{MetaError, MetaStore};
use crate::state::StateRoot;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Meta(#[from] MetaError),
    #[error(transparent)]
    Gc(#[from] crate::gc::GcError),
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("{0}")]
    Usage(String),
    #[error("removing {}", path.display())]
    Remove {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
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
