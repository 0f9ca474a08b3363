//! Directories in the state root that nothing owns any more: snapshot and cache-mount
//! directories without a record (a build killed between creating and committing them), and
//! `tmp/<pid>-…` work directories of processes that are gone, and content-store files a
//! killed writer left under `ingest/`.

use std::path::{Path, PathBuf};

use super::GcError;
use crate::cache::meta::{MetaStore, SnapshotKind, SnapshotRecord};
use crate::content::ContentStore;
use crate::state::StateRoot;

/// An orphan found, with its disk usage measured before removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    /// The directory or file, under the state root.
    pub path: PathBuf,
    /// Bytes allocated on disk, measured when found.
    pub size: u64,
}

/// Finds the orphans under `state`. A snapshot directory counts only if the database has
/// neither a record nor a live lease for its name, checked in one transaction.
pub fn find(
    state: &StateRoot,
    meta: &MetaStore,
    store: &ContentStore,
) -> Result<Vec<PathBuf>, GcError> {
    let mut found = Vec::new();
    for dir in [state.snapshots_dir(), state.cache_mounts_dir()] {
        for (name, path) in entries(&dir)? {
            if meta.is_orphan(&name)? {
                found.push(path);
            }
        }
    }
    for (name, path) in entries(&state.tmp_dir())? {
        if let Some(pid) = owner_pid(&name)
            && !process_exists(pid)
        {
            found.push(path);
        }
    }
    found.extend(store.abandoned_ingests()?);
    Ok(found)
}

/// An orphan as `bud du` lists it: its path under the state root as its id, what it is,
/// its size, and its modification time as its last use.
pub fn record(state: &StateRoot, path: &Path) -> std::io::Result<SnapshotRecord> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path)?;
    let size = super::size::disk_usage(path)?;
    let id = path.strip_prefix(state.path()).unwrap_or(path);
    let description = if path.starts_with(state.tmp_dir()) {
        "work of a bud process that is gone"
    } else if path.starts_with(state.content_dir()) {
        "an unfinished content-store write"
    } else {
        "a directory without a cache record"
    };
    Ok(SnapshotRecord {
        id: id.display().to_string(),
        parent: None,
        kind: SnapshotKind::Orphan,
        size,
        diff_id: None,
        description: description.to_owned(),
        created: meta.mtime(),
        last_used: meta.mtime(),
        usage_count: 0,
        tar_format: 0,
    })
}

fn entries(dir: &Path) -> Result<Vec<(String, PathBuf)>, GcError> {
    let read = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(GcError::io("listing", dir, e)),
    };
    let mut out = Vec::new();
    for entry in read {
        let entry = entry.map_err(|e| GcError::io("listing", dir, e))?;
        // Names that are not UTF-8 were not made by bud: leave them to the user.
        if let Ok(name) = entry.file_name().into_string() {
            out.push((name, entry.path()));
        }
    }
    Ok(out)
}

/// `tmp/` entries are named `<pid>-<anything>` by the process that owns them.
fn owner_pid(name: &str) -> Option<u32> {
    let (pid, rest) = name.split_once('-')?;
    if rest.is_empty() {
        return None;
    }
    pid.parse().ok().filter(|p| *p > 0)
}

fn process_exists(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tmp_names() {
        assert_eq!(owner_pid("123-build"), Some(123));
        assert_eq!(owner_pid("123-"), None);
        assert_eq!(owner_pid("abc-x"), None);
        assert_eq!(owner_pid("0-x"), None);
        assert_eq!(owner_pid("lost+found"), None);
        assert!(process_exists(std::process::id()));
    }
}
