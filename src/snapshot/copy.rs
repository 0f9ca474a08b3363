//! Fallback for hosts without overlayfs (some nested containers, old gVisor): the lowers are
//! copied into one plain directory that the step then runs in.
//!
//! Its cost is why it is only a fallback: every step copies every file of every lower (time
//! and disk proportional to the whole image, not to the step's change), hard links between
//! files become separate copies, and the directory holds the full tree rather than the
//! step's change, so the layer must then be found by comparing it with the lowers.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, Timespec, Timestamps};

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
    if std::fs::symlink_metadata(path.join(super::OPAQUE_WHITEOUT)).is_ok_and(|m| m.is_file()) {
        return Ok(true);
    }
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
        match super::oci_whiteout(&name, &meta) {
            // The opaque marker: `is_opaque` read it.
            Some("") => continue,
            Some(hidden) => {
                remove_any(&dst.join(hidden))?;
                continue;
            }
            None => {}
        }
        if file_type.is_dir() {
            let keep = std::fs::symlink_metadata(&target).is_ok_and(|m| m.is_dir());
            if !keep || is_opaque(&path)? {
                remove_any(&target)?;
                std::fs::create_dir(&target)
                    .map_err(|e| SnapshotError::io("creating", &target, e))?;
            }
            merge_dir(&path, &target)?;
            copy_metadata(&path, &target, &meta)?;
        } else {
            copy_entry(&path, &target, &meta)?;
        }
    }
    Ok(())
}

/// Writes into `upper`, in overlay format, what turned `base` into `full`: new and changed
/// entries, and whiteouts for removed ones. Unchanged entries (same type, mode, owner,
/// size, mtime, device and link target) are left out; a file rewritten with the same size
/// and mtime is the one change this comparison misses, a cost accepted for a fallback.
pub fn diff(base: &Path, full: &Path, upper: &Path) -> Result<()> {
    diff_dir(base, full, upper)?;
    Ok(())
}

/// Returns whether anything was written below `upper`.
fn diff_dir(base: &Path, full: &Path, upper: &Path) -> Result<bool> {
    let mut wrote = false;
    let mut seen = std::collections::HashSet::new();
    for (name, path) in walk::sorted_entries(full)? {
        seen.insert(name.clone());
        let target = upper.join(&name);
        let old = base.join(&name);
        let new_meta =
            std::fs::symlink_metadata(&path).map_err(|e| SnapshotError::io("reading", &path, e))?;
        let old_meta = std::fs::symlink_metadata(&old).ok();
        if new_meta.is_dir() {
            match &old_meta {
                Some(m) if m.is_dir() => {
                    ensure_dir(upper)?;
                    let created = !target.exists();
                    if created {
                        std::fs::create_dir(&target)
                            .map_err(|e| SnapshotError::io("creating", &target, e))?;
                    }
                    let inner = diff_dir(&old, &path, &target)?;
                    if inner || !same(m, &new_meta, &old, &path)? {
                        copy_metadata(&path, &target, &new_meta)?;
                        wrote = true;
                    } else if created {
                        std::fs::remove_dir(&target)
                            .map_err(|e| SnapshotError::io("removing", &target, e))?;
                    }
                }
                _ => {
                    ensure_dir(upper)?;
                    std::fs::create_dir(&target)
                        .map_err(|e| SnapshotError::io("creating", &target, e))?;
                    merge_dir(&path, &target)?;
                    copy_metadata(&path, &target, &new_meta)?;
                    wrote = true;
                }
            }
            continue;
        }
        if let Some(m) = &old_meta
            && same(m, &new_meta, &old, &path)?
        {
            continue;
        }
        ensure_dir(upper)?;
        copy_entry(&path, &target, &new_meta)?;
        wrote = true;
    }
    for (name, _) in walk::sorted_entries(base)? {
        if seen.contains(&name) {
            continue;
        }
        ensure_dir(upper)?;
        let whiteout = upper.join(&name);
        let dir = rustix::fs::open(upper, OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| SnapshotError::io("opening", upper, e))?;
        // Made at the time of the diff, as overlayfs makes its own whiteouts.
        super::make_whiteout(&dir, &name)
            .map_err(|e| SnapshotError::io("creating a whiteout at", &whiteout, e))?;
        wrote = true;
    }
    Ok(wrote)
}

fn ensure_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| SnapshotError::io("creating", dir, e))
}

fn same(
    a: &std::fs::Metadata,
    b: &std::fs::Metadata,
    a_path: &Path,
    b_path: &Path,
) -> Result<bool> {
    let basic = a.file_type() == b.file_type()
        && a.mode() == b.mode()
        && a.uid() == b.uid()
        && a.gid() == b.gid()
        && a.rdev() == b.rdev()
        && (a.is_dir()
            || (a.size() == b.size()
                && a.mtime() == b.mtime()
                && a.mtime_nsec() == b.mtime_nsec()));
    if !basic {
        return Ok(false);
    }
    if a.file_type().is_symlink() {
        let read = |p: &Path| std::fs::read_link(p).map_err(|e| SnapshotError::io("reading", p, e));
        return Ok(read(a_path)? == read(b_path)?);
    }
    Ok(true)
}

/// Copies one non-directory entry with its metadata.
fn copy_entry(path: &Path, target: &Path, meta: &std::fs::Metadata) -> Result<()> {
    let file_type = meta.file_type();
    remove_any(target)?;
    if file_type.is_symlink() {
        let link = std::fs::read_link(path).map_err(|e| SnapshotError::io("reading", path, e))?;
        std::os::unix::fs::symlink(&link, target)
            .map_err(|e| SnapshotError::io("creating", target, e))?;
    } else if file_type.is_file() {
        std::fs::copy(path, target).map_err(|e| SnapshotError::io("copying", path, e))?;
    } else if file_type.is_socket() {
        return Ok(());
    } else {
        rustix::fs::mknodat(
            CWD,
            target,
            FileType::from_raw_mode(meta.mode()),
            Mode::from_raw_mode(meta.mode() & 0o7777),
            meta.rdev(),
        )
        .map_err(|e| SnapshotError::io("creating", target, e))?;
    }
    copy_metadata(path, target, meta)
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
