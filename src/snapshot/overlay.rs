//! Overlay mounts of read-only layer directories.
//!
//! Lowers are passed one by one with `lowerdir+` through the new mount API (Linux 6.8+), which
//! has no limit on their number; older kernels reject that key and get the classic single
//! `lowerdir=a:b:c` option string instead, limited to one page (about 4000 bytes of paths).

use std::path::{Path, PathBuf};

use rustix::fs::CWD;
use rustix::io::Errno;
use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags, UnmountFlags,
    fsconfig_create, fsconfig_set_flag, fsconfig_set_string, fsmount, fsopen, move_mount,
};

use super::{Result, SnapshotError};

/// The option every writable overlay gets: no `syncfs` of the whole upper filesystem when it
/// is unmounted, and `fsync` inside a step a no-op, as buildah mounts its build containers.
/// An upper directory is either a step's layer, which bud writes without syncing like every
/// other layer it makes (an unpacked one, a copy's), or a throwaway one under a read-only
/// view; without the option each unmount flushed every dirty page of the disk, other
/// programs' too. The work directory it marks (`work/incompat/volatile`) is deleted with its
/// workspace, never mounted again.
const VOLATILE: &str = "volatile";

/// The writable part of an overlay: changes land in `upper`; `work` is overlayfs' scratch
/// directory and must be on the same filesystem, empty and not shared with another mount.
#[derive(Debug, Clone, Copy)]
pub struct Writable<'a> {
    /// Receives the mount's changes: the step's layer once unmounted.
    pub upper: &'a Path,
    /// overlayfs' scratch directory; its contents mean nothing after the unmount.
    pub work: &'a Path,
}

/// A mounted overlay (or bind); unmounted when dropped.
#[derive(Debug)]
#[must_use = "the mount is removed when the guard is dropped"]
pub struct MountGuard {
    target: PathBuf,
    mounted: bool,
}

impl MountGuard {
    /// The mount point.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Unmounts now, reporting failure (a busy mount is detached lazily all the same).
    pub fn unmount(mut self) -> Result<()> {
        self.mounted = false;
        unmount(&self.target)
    }
}

impl Drop for MountGuard {
    fn drop(&mut self) {
        if self.mounted {
            if let Err(e) = unmount(&self.target) {
                tracing::warn!("{}", crate::error_chain::error_chain(&e));
            }
        }
    }
}

fn unmount(target: &Path) -> Result<()> {
    match rustix::mount::unmount(target, UnmountFlags::empty()) {
        Ok(()) => Ok(()),
        Err(e) => {
            // Still in use (a process left behind, an open file): detach it from the tree so
            // it goes away with its last user, and report the first error.
            let _ = rustix::mount::unmount(target, UnmountFlags::DETACH);
            Err(SnapshotError::io("unmounting", target, e))
        }
    }
}

/// Mounts `lowers` (topmost first) with the optional `writable` layer on `target`.
///
/// Without lowers the upper directory is bind-mounted; without `writable` the mount is
/// read-only.
pub fn mount(
    lowers: &[&Path],
    writable: Option<Writable<'_>>,
    target: &Path,
) -> Result<MountGuard> {
    mount_with_options(lowers, writable, target, &[])
}

/// [`mount`] with extra overlay options: flags (`userxattr`) or `key=value` pairs.
pub(crate) fn mount_with_options(
    lowers: &[&Path],
    writable: Option<Writable<'_>>,
    target: &Path,
    options: &[&str],
) -> Result<MountGuard> {
    match (lowers, writable) {
        ([], None) => Err(SnapshotError::InvalidLayers(
            "an overlay needs a lower or an upper directory".to_owned(),
        )),
        ([], Some(w)) => {
            rustix::mount::mount_bind(w.upper, target).map_err(|e| SnapshotError::Mount {
                target: target.to_owned(),
                hint: "",
                source: e.into(),
            })?;
            Ok(MountGuard {
                target: target.to_owned(),
                mounted: true,
            })
        }
        (lowers, writable) => {
            match mount_with_fsconfig(lowers, writable, target, options) {
                Ok(()) => {}
                Err(NewApiError::Unsupported) => mount_classic(lowers, writable, target, options)?,
                Err(NewApiError::Failed(e)) => {
                    return Err(SnapshotError::Mount {
                        target: target.to_owned(),
                        hint: overlay_hint(e),
                        source: e.into(),
                    });
                }
            }
            Ok(MountGuard {
                target: target.to_owned(),
                mounted: true,
            })
        }
    }
}

/// Why the new mount API did not mount: `Unsupported` sends the caller to `mount(2)`.
enum NewApiError {
    Unsupported,
    Failed(Errno),
}

impl From<Errno> for NewApiError {
    fn from(e: Errno) -> Self {
        Self::Failed(e)
    }
}

fn overlay_hint(e: Errno) -> &'static str {
    match e {
        Errno::NODEV => {
            " (overlayfs is not available: load the `overlay` module, or use the copy fallback)"
        }
        Errno::PERM => " (mounting needs root or CAP_SYS_ADMIN)",
        _ => "",
    }
}

fn mount_with_fsconfig(
    lowers: &[&Path],
    writable: Option<Writable<'_>>,
    target: &Path,
    options: &[&str],
) -> Result<(), NewApiError> {
    let fs = match fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC) {
        // Before Linux 5.2.
        Err(Errno::NOSYS) => return Err(NewApiError::Unsupported),
        other => other?,
    };
    fsconfig_set_string(&fs, "source", "bud")?;
    if crate::privilege::is_rootless() {
        fsconfig_set_flag(&fs, "userxattr")?;
    }
    for lower in lowers {
        match fsconfig_set_string(&fs, "lowerdir+", *lower) {
            // Before Linux 6.8 the key is unknown.
            Err(Errno::INVAL) => return Err(NewApiError::Unsupported),
            other => other?,
        }
    }
    let mut attrs = MountAttrFlags::empty();
    match writable {
        Some(w) => {
            fsconfig_set_string(&fs, "upperdir", w.upper)?;
            fsconfig_set_string(&fs, "workdir", w.work)?;
            // Every kernel with `lowerdir+` (6.8) knows `volatile` (5.10).
            fsconfig_set_flag(&fs, VOLATILE)?;
        }
        None => attrs |= MountAttrFlags::MOUNT_ATTR_RDONLY,
    }
    for option in options {
        match option.split_once('=') {
            Some((key, value)) => fsconfig_set_string(&fs, key, value)?,
            None => rustix::mount::fsconfig_set_flag(&fs, *option)?,
        }
    }
    fsconfig_create(&fs)?;
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)?;
    move_mount(
        &mnt,
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )?;
    Ok(())
}

/// The `mount(2)` path for kernels without `lowerdir+`. Its option string cannot escape `:`
/// or `,` in paths, so such paths are refused rather than misparsed.
fn mount_classic(
    lowers: &[&Path],
    writable: Option<Writable<'_>>,
    target: &Path,
    extra: &[&str],
) -> Result<()> {
    let mut dirs: Vec<&Path> = lowers.to_vec();
    if let Some(w) = writable {
        dirs.extend([w.upper, w.work]);
    }
    for dir in &dirs {
        let s = dir.to_string_lossy();
        if s.contains([':', ',']) || dir.to_str().is_none() {
            return Err(SnapshotError::InvalidLayers(format!(
                "overlay directory {} contains ':' or ',' or is not UTF-8, \
                 which this kernel's overlay options cannot express",
                dir.display()
            )));
        }
    }
    let join = |ps: &[&Path]| -> String {
        ps.iter()
            .map(|p| p.to_string_lossy())
            .collect::<Vec<_>>()
            .join(":")
    };
    let mut options = format!("lowerdir={}", join(lowers));
    if crate::privilege::is_rootless() {
        options.push_str(",userxattr");
    }
    let mut flags = MountFlags::empty();
    match writable {
        Some(w) => {
            options.push_str(&format!(
                ",upperdir={},workdir={}",
                join(&[w.upper]),
                join(&[w.work])
            ));
        }
        None => flags |= MountFlags::RDONLY,
    }
    for option in extra {
        options.push(',');
        options.push_str(option);
    }
    let c_string = |options: &str| {
        std::ffi::CString::new(options).map_err(|_| {
            SnapshotError::InvalidLayers("overlay directory path contains NUL".to_owned())
        })
    };
    let data = c_string(&options)?;
    let mounted = match writable {
        // Kernels before 5.10 refuse `volatile`: mounted without it there.
        Some(_) => match rustix::mount::mount(
            "bud",
            target,
            "overlay",
            flags,
            c_string(&format!("{options},{VOLATILE}"))?.as_c_str(),
        ) {
            Err(Errno::INVAL) => {
                rustix::mount::mount("bud", target, "overlay", flags, data.as_c_str())
            }
            other => other,
        },
        None => rustix::mount::mount("bud", target, "overlay", flags, data.as_c_str()),
    };
    mounted.map_err(|e| SnapshotError::Mount {
        target: target.to_owned(),
        hint: if e == Errno::INVAL && options.len() >= 4096 {
            " (too many layers for this kernel's one-page mount options; Linux 6.8 lifts this)"
        } else {
            overlay_hint(e)
        },
        source: e.into(),
    })
}

/// Whether overlayfs is usable here: compiled in or loadable, and mountable by this process.
pub fn is_supported() -> bool {
    fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).is_ok()
}
