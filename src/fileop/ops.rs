//! `FileActionMkDir`, `FileActionMkFile`, `FileActionRm` and `FileActionSymlink`.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use super::error::{Error, Result};
use super::meta::{self, io_error};
use super::safe::{self, clean_abs, display, is_absent};
use super::{MkdirAction, MkfileAction, Owner, RmAction, SymlinkAction, wildcard};

/// Creates a directory. An existing directory is not an error and is left as it is.
pub fn mkdir(root: &Path, action: &MkdirAction) -> Result<()> {
    let path = safe::resolve(root, &action.path)?;
    let mode = action.mode & 0o777;
    if action.make_parents {
        meta::mkdir_all(root, &path, mode, action.owner, action.timestamp)?;
        return Ok(());
    }
    match std::fs::DirBuilder::new().mode(mode).create(&path) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(source) => return Err(io_error("mkdir", root, &path)(source)),
    }
    // The umask must not decide the mode of a directory in an image.
    meta::chmod(root, &path, mode)?;
    finish(root, &path, action.owner, action.timestamp)
}

/// Writes a file with `data`. An existing file is truncated and keeps its mode, like Go's
/// `os.WriteFile`.
pub fn mkfile(root: &Path, action: &MkfileAction) -> Result<()> {
    let path = safe::resolve(root, &action.path)?;
    let mode = action.mode & 0o777;
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&path);
    let (mut file, is_new) = match created {
        Ok(file) => (file, true),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&path)
                .map_err(io_error("open", root, &path))?;
            (file, false)
        }
        Err(source) => return Err(io_error("open", root, &path)(source)),
    };
    file.write_all(&action.data)
        .map_err(io_error("write", root, &path))?;
    drop(file);
    if is_new {
        meta::chmod(root, &path, mode)?;
    }
    finish(root, &path, action.owner, action.timestamp)
}

/// Removes a path (recursively). With `allow_wildcard`, every match is removed and no match
/// is not an error.
pub fn rm(root: &Path, action: &RmAction) -> Result<()> {
    if action.allow_wildcard {
        for found in wildcard::resolve(root, &action.path, false)? {
            rm_path(root, &found, action.allow_not_found)?;
        }
        return Ok(());
    }
    rm_path(root, &action.path, action.allow_not_found)
}

fn rm_path(root: &Path, path: &str, allow_not_found: bool) -> Result<()> {
    let clean = clean_abs(path);
    let (dir, base) = clean.rsplit_once('/').unwrap_or(("", &clean));
    if base.is_empty() {
        return Err(Error::EmptyPath);
    }
    // The last component is removed, never followed.
    let target = safe::resolve(root, dir)?.join(base);
    if !allow_not_found && let Err(source) = std::fs::metadata(&target) {
        return Err(io_error("stat", root, &target)(source));
    }
    match std::fs::symlink_metadata(&target) {
        Ok(meta) if meta.is_dir() => {
            std::fs::remove_dir_all(&target).map_err(io_error("remove", root, &target))
        }
        Ok(_) => std::fs::remove_file(&target).map_err(io_error("remove", root, &target)),
        Err(err) if is_absent(&err) => Ok(()),
        Err(source) => Err(io_error("lstat", root, &target)(source)),
    }
}

/// Creates symlink `newpath` -> `oldpath`; the target text is stored as given. An existing
/// `newpath` is an error, even a dangling symlink (BuildKit would create the link where that
/// one points).
pub fn symlink(root: &Path, action: &SymlinkAction) -> Result<()> {
    let path = safe::resolve_parent(root, &action.newpath)?;
    if let Err(source) = std::os::unix::fs::symlink(&action.oldpath, &path) {
        return Err(Error::Io {
            op: "symlink",
            path: format!("{} {}", action.oldpath, display(root, &path)),
            error: source,
        });
    }
    finish(root, &path, action.owner, action.timestamp)
}

fn finish(root: &Path, path: &Path, owner: Option<Owner>, timestamp: Option<i64>) -> Result<()> {
    if let Some(owner) = owner {
        meta::lchown(root, path, owner.uid, owner.gid)?;
    }
    if let Some(ts) = timestamp {
        meta::set_timestamp(root, path, ts)?;
    }
    Ok(())
}
