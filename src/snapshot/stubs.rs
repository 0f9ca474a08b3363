//! Mount points the runtime created only to mount over them.
//!
//! runc creates the mount targets missing from the root filesystem (/proc, /etc/hosts, a
//! `RUN --mount` target...) and, with an overlay root, they land in the step's upper
//! directory. Like BuildKit's mount stubs cleaner, bud records before the step which targets
//! (and missing parents) do not exist, and afterwards removes those that are still empty,
//! so that they do not end up in the layer.

use std::path::Path;

use rustix::fs::{AtFlags, FileType, Timestamps};
use rustix::io::Errno;

use super::{Result, SnapshotError, walk};

/// Targets every step has, besides its own mounts.
pub const DEFAULT_TARGETS: [&str; 5] = ["/proc", "/sys", "/dev", "/etc/hosts", "/etc/resolv.conf"];

/// Paths (relative to the root) that did not exist before a step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MountStubs {
    /// Deepest first, so that parents are empty by the time they are looked at.
    missing: Vec<String>,
}

impl MountStubs {
    /// Looks up `targets` (absolute paths in the container) and their parents in `root`, the
    /// step's root filesystem as it is before the step runs (the merged view of its lowers).
    pub fn record<'a>(root: &Path, targets: impl IntoIterator<Item = &'a str>) -> Result<Self> {
        let root_fd = walk::open_root(root)?;
        let mut missing: Vec<String> = Vec::new();
        for target in targets {
            let mut rel = normalize(target);
            while !rel.is_empty() {
                let (parent, name) = walk::split_parent(&rel);
                let exists = match walk::open_dir_beneath(&root_fd, parent) {
                    Ok(parent_fd) => {
                        match rustix::fs::statat(&parent_fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                            Ok(_) => true,
                            Err(Errno::NOENT) | Err(Errno::NOTDIR) => false,
                            Err(e) => {
                                return Err(SnapshotError::io("looking up", root.join(&rel), e));
                            }
                        }
                    }
                    Err(Errno::NOENT) | Err(Errno::NOTDIR) => false,
                    // A symlink on the way: the runtime resolves it in the container, so
                    // whatever it creates is not at this path. Leave it alone.
                    Err(Errno::LOOP) | Err(Errno::XDEV) => true,
                    Err(e) => return Err(SnapshotError::io("looking up", root.join(&rel), e)),
                };
                if exists {
                    break;
                }
                if !missing.contains(&rel) {
                    missing.push(rel.clone());
                }
                rel = parent.to_owned();
            }
        }
        missing.sort_by(|a, b| depth(b).cmp(&depth(a)).then_with(|| a.cmp(b)));
        Ok(Self { missing })
    }

    /// The recorded paths, relative to the root, deepest first.
    pub fn paths(&self) -> &[String] {
        &self.missing
    }

    /// Removes from `dir` (the upper directory after the step, or the still-mounted root) the
    /// recorded paths that are empty files or empty directories, keeping their parent's
    /// mtime. Returns the paths removed.
    pub fn remove_from(&self, dir: &Path) -> Result<Vec<String>> {
        let root_fd = walk::open_root(dir)?;
        let mut removed = Vec::new();
        for rel in &self.missing {
            let (parent, name) = walk::split_parent(rel);
            let Ok(parent_fd) = walk::open_dir_beneath(&root_fd, parent) else {
                continue;
            };
            let Ok(st) = rustix::fs::statat(&parent_fd, name, AtFlags::SYMLINK_NOFOLLOW) else {
                continue;
            };
            let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
            let empty = if is_dir {
                std::fs::read_dir(dir.join(rel))
                    .map(|mut d| d.next().is_none())
                    .unwrap_or(false)
            } else {
                FileType::from_raw_mode(st.st_mode) == FileType::RegularFile && st.st_size == 0
            };
            if !empty {
                continue;
            }
            let parent_times = rustix::fs::statat(&parent_fd, ".", AtFlags::empty()).ok();
            let flags = if is_dir {
                AtFlags::REMOVEDIR
            } else {
                AtFlags::empty()
            };
            match rustix::fs::unlinkat(&parent_fd, name, flags) {
                Ok(()) => removed.push(rel.clone()),
                // Filled in the meantime: not a stub after all.
                Err(Errno::NOTEMPTY) => continue,
                Err(e) => return Err(SnapshotError::io("removing mount stub", dir.join(rel), e)),
            }
            // Keep the parent's mtime for reproducible layers (BuildKit issue 3148).
            if let Some(st) = parent_times {
                let times = Timestamps {
                    last_access: rustix::fs::Timespec {
                        tv_sec: st.st_atime,
                        tv_nsec: st.st_atime_nsec as _,
                    },
                    last_modification: rustix::fs::Timespec {
                        tv_sec: st.st_mtime,
                        tv_nsec: st.st_mtime_nsec as _,
                    },
                };
                rustix::fs::utimensat(&parent_fd, ".", &times, AtFlags::empty())
                    .map_err(|e| SnapshotError::io("restoring times of", dir.join(parent), e))?;
            }
        }
        Ok(removed)
    }
}

fn normalize(target: &str) -> String {
    target
        .split('/')
        .filter(|p| !p.is_empty() && *p != "." && *p != "..")
        .collect::<Vec<_>>()
        .join("/")
}

fn depth(rel: &str) -> usize {
    rel.matches('/').count()
}
