//! Fallback for hosts without overlayfs (some nested containers, old gVisor): the lowers are
//! copied into one plain directory that the step then runs in.
//!
//! Its cost is why it is only a fallback: every step copies every file of every lower (time
//! and disk proportional to the whole image, not to the step's change), hard links between
//! files become separate copies, and the directory holds the full tree rather than the
//! step's change, so the layer must then be found by comparing it with the lowers.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use rustix::fs::{AtFlags, CWD, FileType, Mode, Timespec, Timestamps};

use super::{OPAQUE_XATTRS, Result, SnapshotError, walk};

/// Applies `lowers` (topmost first, each in overlay format) bottom-up onto `dir`, honouring
/// their whiteouts and opaque directories.
pub fn populate(lowers: &[&Path], dir: &Path) -> Result<()> {
    for lower in lowers.iter().rev() {
        merge_dir(lower, dir)?;
    }
    Ok(())
}

fn remove_any(path: &Path) -> Result<()> {
    let result = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
    };
    result.map_err(|e| SnapshotError::io("removing", path, e))
}

fn is_opaque(path: &Path) -> Result<bool> {
    for name in OPAQUE_XATTRS {
        if walk::xattr(path, name)?.as_deref() == Some(b"y") {
            return Ok(true);
        }
    }
    Ok(false)
}

fn merge_dir(src: &Path, dst: &Path) -> Result<()> {
    for (name, path) in walk::sorted_entries(src)? {
        let target = dst.join(&name);
        let meta =
            std::fs::symlink_metadata(&path).map_err(|e| SnapshotError::io("reading", &path, e))?;
        let file_type = meta.file_type();
        if file_type.is_char_device() && meta.rdev() == 0 {
            remove_any(&target)?;
            continue;
        }
        if file_type.is_dir() {
            let keep = std::fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir());
            if !keep || is_opaque(&path)? {
                remove_any(&target)?;
                std::fs::create_dir(&target)
                    .map_err(|e| SnapshotError::io("creating", &target, e))?;
            }
            merge_dir(&path, &target)?;
        } else {
            remove_any(&target)?;
            if file_type.is_symlink() {
                let link = std::fs::read_link(&path)
                    .map_err(|e| SnapshotError::io("reading", &path, e))?;
                std::os::unix::fs::symlink(&link, &target)
                    .map_err(|e| SnapshotError::io("creating", &target, e))?;
            } else if file_type.is_file() {
                std::fs::copy(&path, &target)
                    .map_err(|e| SnapshotError::io("copying", &path, e))?;
            } else if file_type.is_socket() {
                continue;
            } else {
                rustix::fs::mknodat(
                    CWD,
                    &target,
                    FileType::from_raw_mode(meta.mode()),
                    Mode::from_raw_mode(meta.mode() & 0o7777),
                    meta.rdev(),
                )
                .map_err(|e| SnapshotError::io("creating", &target, e))?;
            }
        }
        copy_metadata(&path, &target, &meta)?;
    }
    Ok(())
}

fn copy_metadata(src: &Path, dst: &Path, meta: &std::fs::Metadata) -> Result<()> {
    let io = |e: rustix::io::Errno| SnapshotError::io("setting metadata of", dst, e);
    rustix::fs::chownat(
        CWD,
        dst,
        Some(rustix::fs::Uid::from_raw(meta.uid())),
        Some(rustix::fs::Gid::from_raw(meta.gid())),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(io)?;
    if !meta.file_type().is_symlink() {
        std::fs::set_permissions(dst, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(|e| SnapshotError::io("setting mode of", dst, e))?;
        for (name, value) in walk::xattrs(src)? {
            if name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.") {
                continue;
            }
            rustix::fs::lsetxattr(dst, name.as_str(), &value, rustix::fs::XattrFlags::empty())
                .map_err(io)?;
        }
    }
    let time = |sec, nsec| Timespec {
        tv_sec: sec,
        tv_nsec: nsec as _,
    };
    rustix::fs::utimensat(
        CWD,
        dst,
        &Timestamps {
            last_access: time(meta.atime(), meta.atime_nsec()),
            last_modification: time(meta.mtime(), meta.mtime_nsec()),
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(io)
}
