//! A layer directory cloned with hard links: what a MergeOp needs to stack a layer on another
//! parent without copying its contents. Directories are new (same mode, owner, xattrs and
//! times); everything else is the same inode, so the clone's layer tar is byte-identical.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, XattrFlags};

use super::{Result, SnapshotError};

/// Clones the layer directory `src` into `dst` (created if missing): new directories, hard
/// links for everything else. Fails when `src` is not a directory, or a file of `src` is
/// already in `dst` (link(2) does not replace).
pub fn hardlink_tree(src: &Path, dst: &Path) -> Result<()> {
    let md = std::fs::symlink_metadata(src).map_err(|e| SnapshotError::io("reading", src, e))?;
    if !md.is_dir() {
        return Err(SnapshotError::InvalidLayers(format!(
            "{} is not a layer directory",
            src.display()
        )));
    }
    clone_dir(src, dst, &md)
}

fn clone_dir(src: &Path, dst: &Path, md: &std::fs::Metadata) -> Result<()> {
    if !dst.exists() {
        std::fs::create_dir(dst).map_err(|e| SnapshotError::io("creating", dst, e))?;
    }
    let mut entries: Vec<_> = std::fs::read_dir(src)
        .map_err(|e| SnapshotError::io("reading", src, e))?
        .collect::<std::io::Result<_>>()
        .map_err(|e| SnapshotError::io("reading", src, e))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let from = entry.path();
        let to = dst.join(entry.file_name());
        let child =
            std::fs::symlink_metadata(&from).map_err(|e| SnapshotError::io("reading", &from, e))?;
        if child.is_dir() {
            clone_dir(&from, &to, &child)?;
        } else {
            // link(2) does not follow a symlink: the link itself is shared.
            std::fs::hard_link(&from, &to).map_err(|e| SnapshotError::io("linking", &to, e))?;
        }
    }
    copy_dir_metadata(src, dst, md)
}

/// Owner, mode, xattrs (overlay's opaque marker among them) and times, the times last so
/// that creating the children does not change them.
fn copy_dir_metadata(src: &Path, dst: &Path, md: &std::fs::Metadata) -> Result<()> {
    std::os::unix::fs::lchown(dst, Some(md.uid()), Some(md.gid()))
        .map_err(|e| SnapshotError::io("chowning", dst, e))?;
    std::fs::set_permissions(
        dst,
        std::os::unix::fs::PermissionsExt::from_mode(md.mode() & 0o7777),
    )
    .map_err(|e| SnapshotError::io("setting the mode of", dst, e))?;
    let mut names = vec![0u8; 64 * 1024];
    let len = rustix::fs::llistxattr(src, &mut names[..])
        .map_err(|e| SnapshotError::io("listing xattrs of", src, e))?;
    for name in names[..len].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = std::ffi::OsStr::new(std::str::from_utf8(name).unwrap_or_default());
        if name.is_empty() {
            continue;
        }
        let mut value = vec![0u8; 64 * 1024];
        let n = rustix::fs::lgetxattr(src, name, &mut value[..])
            .map_err(|e| SnapshotError::io("reading an xattr of", src, e))?;
        rustix::fs::lsetxattr(dst, name, &value[..n], XattrFlags::empty())
            .map_err(|e| SnapshotError::io("setting an xattr of", dst, e))?;
    }
    let times = Timestamps {
        last_access: Timespec {
            tv_sec: md.atime(),
            tv_nsec: md.atime_nsec() as _,
        },
        last_modification: Timespec {
            tv_sec: md.mtime(),
            tv_nsec: md.mtime_nsec() as _,
        },
    };
    rustix::fs::utimensat(CWD, dst, &times, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| SnapshotError::io("setting the times of", dst, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn clones_share_inodes_and_keep_directory_metadata() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("d/e")).unwrap();
        std::fs::write(src.join("d/f"), "x").unwrap();
        std::os::unix::fs::symlink("/nowhere", src.join("link")).unwrap();
        std::fs::set_permissions(src.join("d"), std::fs::Permissions::from_mode(0o710)).unwrap();
        let dst = tmp.path().join("dst");
        hardlink_tree(&src, &dst).unwrap();
        let ino = |p: &Path| std::fs::symlink_metadata(p).unwrap().ino();
        assert_eq!(ino(&src.join("d/f")), ino(&dst.join("d/f")));
        assert_eq!(ino(&src.join("link")), ino(&dst.join("link")));
        assert_ne!(ino(&src.join("d")), ino(&dst.join("d")));
        let md = |p: &Path| std::fs::symlink_metadata(p).unwrap();
        assert_eq!(md(&dst.join("d")).mode() & 0o7777, 0o710);
        assert_eq!(md(&dst.join("d")).mtime(), md(&src.join("d")).mtime());
        assert_eq!(
            std::fs::read_link(dst.join("link")).unwrap(),
            Path::new("/nowhere")
        );
    }
}
