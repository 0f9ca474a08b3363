//! Ownership, permission, timestamp and xattr helpers shared by the actions.
//!
//! All of them act on the path itself, never following a symlink in the last component.

use std::fs::File;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, XattrFlags};

use super::Owner;
use super::error::{Error, Result};
use super::safe::{display, is_absent};

/// The permission and special bits of a `st_mode`.
pub(crate) const MODE_BITS: u32 = 0o7777;

pub(crate) fn io_error(
    op: &'static str,
    root: &Path,
    path: &Path,
) -> impl FnOnce(io::Error) -> Error {
    let path = display(root, path);
    move |source| Error::Io {
        op,
        path,
        error: source,
    }
}

pub(crate) fn lchown(root: &Path, path: &Path, uid: u32, gid: u32) -> Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(io_error("lchown", root, path))
}

pub(crate) fn chmod(root: &Path, path: &Path, mode: u32) -> Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & MODE_BITS))
        .map_err(io_error("chmod", root, path))
}

/// Sets both access and modification time of `path` (not following a final symlink).
pub(crate) fn set_times(root: &Path, path: &Path, atime: Timespec, mtime: Timespec) -> Result<()> {
    let times = Timestamps {
        last_access: atime,
        last_modification: mtime,
    };
    rustix::fs::utimensat(CWD, path, &times, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|errno| io_error("utimes", root, path)(errno.into()))
}

/// Applies a wire timestamp (nanoseconds since the epoch) as access and modification time.
pub(crate) fn set_timestamp(root: &Path, path: &Path, nanos: i64) -> Result<()> {
    let ts = timespec_from_nanos(nanos);
    set_times(root, path, ts, ts)
}

pub(crate) fn timespec_from_nanos(nanos: i64) -> Timespec {
    Timespec {
        tv_sec: nanos.div_euclid(1_000_000_000),
        tv_nsec: nanos.rem_euclid(1_000_000_000),
    }
}

/// Copies the times of `meta` onto `path`.
pub(crate) fn copy_times(root: &Path, path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    let (atime, mtime) = times_of(meta);
    set_times(root, path, atime, mtime)
}

/// Copies extended attributes from `src` to `dst`. Like BuildKit, failures are logged and
/// ignored: the destination filesystem may not support a namespace (e.g. `security.*` in a
/// user namespace, or `user.*` on symlinks).
pub(crate) fn copy_xattrs(src: &Path, dst: &Path) {
    let names = match list_xattrs(src) {
        Ok(names) => names,
        Err(err) => {
            tracing::debug!(path = %src.display(), %err, "cannot list xattrs");
            return;
        }
    };
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let result = read_xattr(src, name)
            .and_then(|value| rustix::fs::lsetxattr(dst, name, &value, XattrFlags::empty()));
        if let Err(err) = result {
            tracing::warn!(
                path = %dst.display(),
                xattr = %String::from_utf8_lossy(name),
                %err,
                "failed to copy xattr"
            );
        }
    }
}

/// [`copy_xattrs`] between two open descriptors of regular files, with the same logging.
pub(crate) fn copy_xattrs_fd(src: &File, dst: &File, dst_path: &Path) {
    let names = match read_sized(|buf| match buf {
        None => rustix::fs::flistxattr_query(src),
        Some(buf) => rustix::fs::flistxattr(src, buf),
    }) {
        Ok(names) => names,
        Err(err) => {
            tracing::debug!(path = %dst_path.display(), %err, "cannot list xattrs of the source");
            return;
        }
    };
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let result = read_sized(|buf| match buf {
            None => rustix::fs::fgetxattr_query(src, name),
            Some(buf) => rustix::fs::fgetxattr(src, name, buf),
        })
        .and_then(|value| rustix::fs::fsetxattr(dst, name, &value, XattrFlags::empty()));
        if let Err(err) = result {
            tracing::warn!(
                path = %dst_path.display(),
                xattr = %String::from_utf8_lossy(name),
                %err,
                "failed to copy xattr"
            );
        }
    }
}

/// Owner, mode and times of a regular file through its open descriptor: the same changes
/// as [`lchown`], [`chmod`] and [`set_times`] in the same order (the owner first, since a
/// chown clears the set-id bits), without resolving the path three times.
pub(crate) fn set_file_info(
    root: &Path,
    path: &Path,
    file: &File,
    (uid, gid): (u32, u32),
    mode: u32,
    (atime, mtime): (Timespec, Timespec),
) -> Result<()> {
    let errno = |op| move |e: rustix::io::Errno| io_error(op, root, path)(e.into());
    rustix::fs::fchown(
        file,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    )
    .map_err(errno("lchown"))?;
    rustix::fs::fchmod(file, rustix::fs::Mode::from_raw_mode(mode & MODE_BITS))
        .map_err(errno("chmod"))?;
    let times = Timestamps {
        last_access: atime,
        last_modification: mtime,
    };
    rustix::fs::futimens(file, &times).map_err(errno("utimes"))
}

/// The access and modification time of `meta`.
pub(crate) fn times_of(meta: &std::fs::Metadata) -> (Timespec, Timespec) {
    (
        Timespec {
            tv_sec: meta.atime(),
            tv_nsec: meta.atime_nsec(),
        },
        Timespec {
            tv_sec: meta.mtime(),
            tv_nsec: meta.mtime_nsec(),
        },
    )
}

/// Runs a size query (`None`) then a read into a buffer of that size, again when the value
/// grew in between: the xattr calls' protocol.
fn read_sized(
    mut call: impl FnMut(Option<&mut [u8]>) -> rustix::io::Result<usize>,
) -> rustix::io::Result<Vec<u8>> {
    loop {
        let size = call(None)?;
        if size == 0 {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; size];
        match call(Some(&mut buf[..])) {
            Ok(len) => {
                buf.truncate(len);
                return Ok(buf);
            }
            Err(rustix::io::Errno::RANGE) => continue,
            Err(err) => return Err(err),
        }
    }
}

/// Sets one xattr, logging failures (archives carry xattrs on a best-effort basis).
pub(crate) fn set_xattr_best_effort(path: &Path, name: &[u8], value: &[u8]) {
    if let Err(err) = rustix::fs::lsetxattr(path, name, value, XattrFlags::empty()) {
        tracing::warn!(
            path = %path.display(),
            xattr = %String::from_utf8_lossy(name),
            %err,
            "failed to set xattr"
        );
    }
}

fn list_xattrs(path: &Path) -> rustix::io::Result<Vec<u8>> {
    read_sized(|buf| match buf {
        None => rustix::fs::llistxattr_query(path),
        Some(buf) => rustix::fs::llistxattr(path, buf),
    })
}

fn read_xattr(path: &Path, name: &[u8]) -> rustix::io::Result<Vec<u8>> {
    read_sized(|buf| match buf {
        None => rustix::fs::lgetxattr_query(path, name),
        Some(buf) => rustix::fs::lgetxattr(path, name, buf),
    })
}

/// Creates `path` (already resolved inside `root`) and its missing parents with mode `perm`,
/// chowning each created directory to `owner` and stamping it with `timestamp`. Returns the
/// directories created, outermost first. Existing directories are left untouched, as in
/// BuildKit's `MkdirAll`.
pub(crate) fn mkdir_all(
    root: &Path,
    path: &Path,
    perm: u32,
    owner: Option<Owner>,
    timestamp: Option<i64>,
) -> Result<Vec<PathBuf>> {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let mut current = root.to_path_buf();
    let mut created = Vec::new();
    for part in rel.components() {
        current.push(part);
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.is_dir() => continue,
            Ok(_) => {
                return Err(Error::Io {
                    op: "mkdir",
                    path: display(root, &current),
                    error: io::Error::from_raw_os_error(rustix::io::Errno::NOTDIR.raw_os_error()),
                });
            }
            Err(err) if is_absent(&err) => {}
            Err(source) => {
                return Err(Error::Io {
                    op: "lstat",
                    path: display(root, &current),
                    error: source,
                });
            }
        }
        std::fs::DirBuilder::new()
            .mode(perm & MODE_BITS)
            .create(&current)
            .map_err(io_error("mkdir", root, &current))?;
        // The umask must not decide the mode of directories in an image.
        chmod(root, &current, perm)?;
        if let Some(owner) = owner {
            lchown(root, &current, owner.uid, owner.gid)?;
        }
        if let Some(ts) = timestamp {
            set_timestamp(root, &current, ts)?;
        }
        created.push(current.clone());
    }
    // Creating each child changed its parent's mtime after it was stamped.
    if let Some(ts) = timestamp {
        for dir in created.iter().rev().skip(1) {
            set_timestamp(root, dir, ts)?;
        }
    }
    Ok(created)
}
