//! Filesystem helpers shared by the snapshot modules: sorted listings, xattrs, and opening
//! paths beneath a root without ever following a symlink.

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};

use super::{Result, SnapshotError};

/// Entries of `dir` sorted by name bytes, so that tars and copies are reproducible.
pub(crate) fn sorted_entries(dir: &Path) -> Result<Vec<(OsString, PathBuf)>> {
    let read = std::fs::read_dir(dir).map_err(|e| SnapshotError::io("reading", dir, e))?;
    let mut entries = Vec::new();
    for entry in read {
        let entry = entry.map_err(|e| SnapshotError::io("reading", dir, e))?;
        entries.push((entry.file_name(), entry.path()));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}

/// All xattrs of `path` (not following a symlink), sorted by name.
pub(crate) fn xattrs(path: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let io = |e: rustix::io::Errno| SnapshotError::io("reading xattrs of", path, e);
    let len = match rustix::fs::llistxattr_query(path) {
        Ok(len) => len,
        // Filesystems without xattr support have none.
        Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
        Err(e) => return Err(io(e)),
    };
    let mut names = vec![0u8; len];
    let len = rustix::fs::llistxattr(path, names.as_mut_slice()).map_err(io)?;
    names.truncate(len);
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        if let Some(value) = xattr(path, name)? {
            out.push((name.to_owned(), value));
        }
    }
    out.sort();
    Ok(out)
}

/// One xattr of `path` (not following a symlink); `None` when absent.
pub(crate) fn xattr(path: &Path, name: &str) -> Result<Option<Vec<u8>>> {
    let io = |e: rustix::io::Errno| SnapshotError::io("reading xattrs of", path, e);
    let len = match rustix::fs::lgetxattr_query(path, name) {
        Ok(len) => len,
        Err(rustix::io::Errno::NODATA) | Err(rustix::io::Errno::NOTSUP) => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let mut value = vec![0u8; len];
    let len = rustix::fs::lgetxattr(path, name, value.as_mut_slice()).map_err(io)?;
    value.truncate(len);
    Ok(Some(value))
}

/// Resolution that stays under the starting directory and refuses any symlink on the way.
pub(crate) const STRICT_RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

/// Opens the directory `rel` (relative, "" for `root` itself) beneath `root`, failing with
/// ELOOP/EXDEV instead of following a symlink or leaving `root`.
pub(crate) fn open_dir_beneath(root: &OwnedFd, rel: &str) -> rustix::io::Result<OwnedFd> {
    let rel = if rel.is_empty() { "." } else { rel };
    rustix::fs::openat2(
        root,
        rel,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        STRICT_RESOLVE,
    )
}

pub(crate) fn open_root(dir: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SnapshotError::io("opening", dir, e))
}

/// Splits a relative path into its parent ("" at the top) and last component.
pub(crate) fn split_parent(rel: &str) -> (&str, &str) {
    match rel.rsplit_once('/') {
        Some((parent, name)) => (parent, name),
        None => ("", rel),
    }
}
