//! Layers as read-only directories, overlay mounts over them, and layer tars.
//!
//! A layer is unpacked once ([`apply::extract_layer`]) into a directory kept in overlayfs'
//! own format (whiteouts are 0/0 character devices, opaque directories carry the
//! `trusted.overlay.opaque` xattr), so that it can be used directly as an overlay lower.
//! A step runs on an overlay of its parent layers with a fresh upper directory
//! ([`overlay::mount`]); the upper directory, minus the mount points the runtime created
//! ([`stubs::MountStubs`]), is the step's change, written as an OCI layer by
//! [`diff::write_layer`].

pub mod apply;
pub mod clone;
pub mod copy;
pub mod diff;
pub(crate) mod go_tar;
pub mod overlay;
pub mod overlay_check;
pub mod stubs;
mod walk;

use std::path::PathBuf;

/// The xattrs overlayfs marks opaque directories with (`user.` when mounted with userxattr).
pub(crate) const OPAQUE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];

/// The xattr this process marks opaque directories with: overlayfs in a user namespace
/// reads only `user.` xattrs (it is mounted with `userxattr` there).
pub(crate) fn opaque_xattr() -> &'static str {
    if crate::privilege::is_rootless() {
        OPAQUE_XATTRS[1]
    } else {
        OPAQUE_XATTRS[0]
    }
}

/// The xattrs of `path` (not following a symlink) that belong to the file, sorted by name:
/// all but overlayfs's bookkeeping, which describes a mount, not the file.
pub(crate) fn file_xattrs(path: &std::path::Path) -> Result<Vec<(String, Vec<u8>)>> {
    Ok(walk::xattrs(path)?
        .into_iter()
        .filter(|(name, _)| {
            !name.starts_with("trusted.overlay.") && !name.starts_with("user.overlay.")
        })
        .collect())
}

/// OCI whiteout markers in layer tars.
pub(crate) const WHITEOUT_PREFIX: &str = ".wh.";
pub(crate) const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

/// Errors of layer directories, mounts and layer tars.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A file operation on a layer or mount directory failed.
    #[error("{action} {path}")]
    Io {
        /// What was being done, as a verb phrase (`"reading"`, `"creating"`…).
        action: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The kernel refused an overlay (or bind) mount.
    #[error("mounting overlay on {target}{hint}")]
    Mount {
        /// The mount point.
        target: PathBuf,
        /// A parenthesised note, with its leading space, saying what usually causes this
        /// errno (no overlayfs, no privilege), or empty.
        hint: &'static str,
        /// The mount system call's error.
        #[source]
        source: std::io::Error,
    },
    /// A layer tar entry could reach outside the layer (a `..` component, a NUL, a symlinked
    /// parent, a hard link to the root or to an entry not yet extracted).
    #[error("layer entry {path:?}: {reason}")]
    UnsafeEntry {
        /// The entry's path as the tar names it.
        path: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A layer tar entry or a file in a layer directory is something bud cannot carry (a
    /// non-UTF-8 name, an unknown entry type, a malformed header field).
    #[error("layer entry {path:?}: unsupported {what}")]
    Unsupported {
        /// The entry's path in the layer.
        path: String,
        /// The type found.
        what: String,
    },
    /// The layers given cannot be mounted or cloned as asked (none at all, not a
    /// directory, a path the mount options cannot hold); the message says which.
    #[error("{0}")]
    InvalidLayers(String),
}

impl SnapshotError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: impl Into<std::io::Error>,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source: source.into(),
        }
    }
}

/// The snapshot module's result, [`SnapshotError`] by default.
pub(crate) type Result<T, E = SnapshotError> = std::result::Result<T, E>;

/// Marks `name` in the directory `dir` as deleted: with overlayfs' 0/0 character device or,
/// where the filesystem refuses to create one (overlayfs itself, bud's state root on a
/// container's root filesystem, where only the copy snapshotter runs), with the OCI form,
/// an empty `.wh.NAME` file, which the copy snapshotter and layer tars read as well.
/// Returns the name of what it made in `dir`, whose owner and times are the caller's.
pub(crate) fn make_whiteout(
    dir: impl std::os::fd::AsFd,
    name: &std::ffi::OsStr,
) -> rustix::io::Result<std::ffi::OsString> {
    use rustix::fs::{FileType, Mode, OFlags};
    match rustix::fs::mknodat(&dir, name, FileType::CharacterDevice, Mode::empty(), 0) {
        Ok(()) => Ok(name.to_owned()),
        Err(rustix::io::Errno::PERM) => {
            let mut oci = std::ffi::OsString::from(WHITEOUT_PREFIX);
            oci.push(name);
            rustix::fs::openat(
                &dir,
                oci.as_os_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            Ok(oci)
        }
        Err(e) => Err(e),
    }
}

/// Marks the directory `dir` opaque: overlayfs' xattr or, where it cannot be set, the OCI
/// `.wh..wh..opq` file. Returns the file's name when it made one (its owner and times are
/// the caller's), `None` for the xattr.
pub(crate) fn make_opaque(dir: impl std::os::fd::AsFd) -> rustix::io::Result<Option<&'static str>> {
    use rustix::fs::{Mode, OFlags, XattrFlags};
    match rustix::fs::fsetxattr(&dir, opaque_xattr(), b"y", XattrFlags::empty()) {
        Ok(()) => Ok(None),
        Err(rustix::io::Errno::PERM | rustix::io::Errno::NOTSUP) => {
            rustix::fs::openat(
                &dir,
                OPAQUE_WHITEOUT,
                OFlags::WRONLY | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            Ok(Some(OPAQUE_WHITEOUT))
        }
        Err(e) => Err(e),
    }
}

/// An OCI whiteout file a layer directory holds where overlayfs' form could not be made:
/// `Some(name)` of what it deletes, `Some("")` for the opaque marker.
pub(crate) fn oci_whiteout<'a>(
    name: &'a std::ffi::OsStr,
    meta: &std::fs::Metadata,
) -> Option<&'a str> {
    if !meta.is_file() || meta.len() != 0 {
        return None;
    }
    let hidden = name.to_str()?.strip_prefix(WHITEOUT_PREFIX)?;
    if name == OPAQUE_WHITEOUT {
        return Some("");
    }
    (!hidden.is_empty() && !hidden.starts_with(WHITEOUT_PREFIX)).then_some(hidden)
}
