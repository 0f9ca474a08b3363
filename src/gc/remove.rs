//! Deleting a directory from the state root without ever leaving half of it in place.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::state::StateRoot;

/// Moves `dir` into `tmp/<pid>-gc-…` (one atomic rename), then deletes it there. A crash
/// part way through leaves the rest under `tmp/`, which the next collection removes once
/// this process is gone. Returns false when `dir` did not exist.
pub fn remove_dir(state: &StateRoot, dir: &Path) -> io::Result<bool> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let trash = state.tmp_dir().join(format!(
        "{}-gc-{}-{name}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    match std::fs::rename(dir, &trash) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    remove_tree(&trash)?;
    Ok(true)
}

/// `remove_dir_all`, also when the tree has read-only directories (committed layers are
/// read-only, and a non-root user cannot unlink from a directory without write permission),
/// or a single file.
pub(crate) fn remove_tree(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.is_dir() => return std::fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        _ => {}
    }
    match std::fs::remove_dir_all(path) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) if e.kind() != io::ErrorKind::PermissionDenied => return Err(e),
        Err(_) => {}
    }
    make_writable(path)?;
    std::fs::remove_dir_all(path)
}

fn make_writable(root: &Path) -> io::Result<()> {
    let mut stack: Vec<PathBuf> = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let meta = std::fs::symlink_metadata(&dir)?;
        if !meta.is_dir() {
            continue;
        }
        let mode = meta.permissions().mode();
        if mode & 0o700 != 0o700 {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode | 0o700))?;
        }
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    Ok(())
}
