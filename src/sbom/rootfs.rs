//! An unpacked root filesystem read as the image would see it, never the host's: symlinks are
//! followed inside the root (an absolute target starts again at the root, as in a chroot),
//! a `..` that would climb above the root is refused, and every read is bounded.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// Linux's own limit on the symlinks one lookup follows (`MAXSYMLINKS`).
const MAX_SYMLINK_HOPS: usize = 40;

/// Why a path of the image was not read; `path` is always the path in the image.
#[derive(Debug, thiserror::Error)]
pub(super) enum RootFsError {
    /// A `..`, in the path or a symlink's target, above the root.
    #[error("{path}: a `..` leaves the root filesystem")]
    Escapes { path: String },
    /// A symlink loop, or a chain longer than the kernel would follow.
    #[error("{path}: more than {MAX_SYMLINK_HOPS} symbolic links")]
    TooManyLinks { path: String },
    /// A directory, device or FIFO where a file is read (a FIFO would block the scan).
    #[error("{path}: not a regular file")]
    NotAFile { path: String },
    /// Larger than its reader takes.
    #[error("{path}: {size} bytes, more than the {limit} read at most")]
    TooLarge { path: String, size: u64, limit: u64 },
    /// The host's error reading it.
    #[error("{path}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// The root filesystem being scanned: every read of the image goes through it.
pub(super) struct RootFs {
    /// The host directory holding the image's root.
    root: PathBuf,
}

impl RootFs {
    /// The image whose root is the host directory `root`.
    pub(super) fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    /// The host directory, for the walk, which reads directories itself (following no
    /// symlink, it needs no resolving).
    pub(super) fn root(&self) -> &Path {
        &self.root
    }

    /// The host path of `path` (a path in the image), its symlinks resolved inside the root;
    /// `None` if it does not exist.
    pub(super) fn resolve(&self, path: &str) -> Result<Option<PathBuf>, RootFsError> {
        let mut pending: Vec<OsString> = Vec::new();
        push_components(&mut pending, Path::new(path));
        let mut resolved: Vec<OsString> = Vec::new();
        let mut hops = 0;
        // `pending` is a stack: its last element is the next component to walk.
        while let Some(name) = pending.pop() {
            if name == ".." {
                if resolved.pop().is_none() {
                    return Err(RootFsError::Escapes { path: path.into() });
                }
                continue;
            }
            let mut host = self.host_path(&resolved);
            host.push(&name);
            let meta = match std::fs::symlink_metadata(&host) {
                Ok(meta) => meta,
                Err(e) if missing(&e) => return Ok(None),
                Err(source) => {
                    return Err(RootFsError::Io {
                        path: path.into(),
                        source,
                    });
                }
            };
            if !meta.file_type().is_symlink() {
                resolved.push(name);
                continue;
            }
            hops += 1;
            if hops > MAX_SYMLINK_HOPS {
                return Err(RootFsError::TooManyLinks { path: path.into() });
            }
            let target = std::fs::read_link(&host).map_err(|source| RootFsError::Io {
                path: path.into(),
                source,
            })?;
            if target.is_absolute() {
                resolved.clear();
            }
            push_components(&mut pending, &target);
        }
        Ok(Some(self.host_path(&resolved)))
    }

    /// The host path of components already resolved inside the root.
    fn host_path(&self, components: &[OsString]) -> PathBuf {
        let mut host = self.root.clone();
        host.extend(components);
        host
    }

    /// The whole of the regular file at `path`, `None` if it does not exist, an error if it
    /// is larger than `limit` bytes (checked before reading, so a sparse or lying file costs
    /// nothing) or is not a regular file (a FIFO would block, a device would never end).
    pub(super) fn read(&self, path: &str, limit: u64) -> Result<Option<Vec<u8>>, RootFsError> {
        let Some((file, len)) = self.open(path, limit)? else {
            return Ok(None);
        };
        let mut data = Vec::with_capacity(len as usize);
        file.take(limit + 1)
            .read_to_end(&mut data)
            .map_err(|source| RootFsError::Io {
                path: path.into(),
                source,
            })?;
        if data.len() as u64 > limit {
            return Err(RootFsError::TooLarge {
                path: path.into(),
                size: data.len() as u64,
                limit,
            });
        }
        Ok(Some(data))
    }

    /// The regular file at `path` open for reading and its size, checked as [`Self::read`]
    /// checks it; the caller reads at most `limit` bytes of it.
    pub(super) fn open(&self, path: &str, limit: u64) -> Result<Option<(File, u64)>, RootFsError> {
        let Some(host) = self.resolve(path)? else {
            return Ok(None);
        };
        let io_err = |source| RootFsError::Io {
            path: path.into(),
            source,
        };
        let meta = std::fs::symlink_metadata(&host).map_err(io_err)?;
        if !meta.is_file() {
            return Err(RootFsError::NotAFile { path: path.into() });
        }
        if meta.len() > limit {
            return Err(RootFsError::TooLarge {
                path: path.into(),
                size: meta.len(),
                limit,
            });
        }
        // NOFOLLOW and NONBLOCK: whatever replaced the checked file since, no symlink is
        // followed out of the root and no FIFO blocks the scan.
        let flags = (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits();
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(flags as i32)
            .open(&host)
            .map_err(io_err)?;
        Ok(Some((file, meta.len())))
    }

    /// The names in the directory at `path`, sorted; empty if it does not exist.
    pub(super) fn list_dir(&self, path: &str) -> Result<Vec<OsString>, RootFsError> {
        let Some(host) = self.resolve(path)? else {
            return Ok(Vec::new());
        };
        let entries = match std::fs::read_dir(&host) {
            Ok(entries) => entries,
            Err(e) if missing(&e) => return Ok(Vec::new()),
            Err(source) => {
                return Err(RootFsError::Io {
                    path: path.into(),
                    source,
                });
            }
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| RootFsError::Io {
                path: path.into(),
                source,
            })?;
            names.push(entry.file_name());
        }
        names.sort();
        Ok(names)
    }
}

/// Pushes the components of `path` so that the first is popped first; the root and `.`
/// vanish (an absolute path is taken from the root by the caller).
fn push_components(stack: &mut Vec<OsString>, path: &Path) {
    let start = stack.len();
    for component in path.components() {
        match component {
            Component::Normal(name) => stack.push(name.to_os_string()),
            Component::ParentDir => stack.push("..".into()),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    stack[start..].reverse();
}

/// A component that is missing or sits under something that is not a directory.
fn missing(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn absolute_symlinks_resolve_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::fs::write(root.join("usr/lib/os-release"), "ID=inside\n").unwrap();
        std::fs::create_dir(root.join("etc")).unwrap();
        symlink("/usr/lib/os-release", root.join("etc/os-release")).unwrap();
        symlink("../usr/lib/os-release", root.join("etc/relative")).unwrap();
        let fs = RootFs::new(root);
        assert_eq!(
            fs.read("/etc/os-release", 100).unwrap().unwrap(),
            b"ID=inside\n"
        );
        assert_eq!(
            fs.read("etc/relative", 100).unwrap().unwrap(),
            b"ID=inside\n"
        );
        assert_eq!(fs.read("/etc/missing", 100).unwrap(), None);
        assert_eq!(fs.read("/etc/os-release/below-a-file", 100).unwrap(), None);
    }

    #[test]
    fn dot_dot_above_the_root_is_refused() {
        let outer = tempfile::tempdir().unwrap();
        std::fs::write(outer.path().join("secret"), "host").unwrap();
        let root = outer.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        symlink("../../secret", root.join("etc/os-release")).unwrap();
        let fs = RootFs::new(&root);
        let err = fs.read("/etc/os-release", 100).unwrap_err();
        assert!(matches!(err, RootFsError::Escapes { .. }), "{err}");
        let err = fs.read("/../secret", 100).unwrap_err();
        assert!(matches!(err, RootFsError::Escapes { .. }), "{err}");
    }

    #[test]
    fn symlink_loops_and_large_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        symlink("/b", root.join("a")).unwrap();
        symlink("/a", root.join("b")).unwrap();
        let fs = RootFs::new(root);
        let err = fs.read("/a", 100).unwrap_err();
        assert!(matches!(err, RootFsError::TooManyLinks { .. }), "{err}");

        // A sparse file claiming a gigabyte: refused from its size, nothing read.
        let big = File::create(root.join("big")).unwrap();
        big.set_len(1 << 30).unwrap();
        let err = fs.read("/big", 1 << 20).unwrap_err();
        assert!(
            matches!(err, RootFsError::TooLarge { size, .. } if size == 1 << 30),
            "{err}"
        );

        std::fs::create_dir(root.join("dir")).unwrap();
        let err = fs.read("/dir", 100).unwrap_err();
        assert!(matches!(err, RootFsError::NotAFile { .. }), "{err}");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
            0,
        )
        .unwrap();
        let err = fs.read("/fifo", 100).unwrap_err();
        assert!(matches!(err, RootFsError::NotAFile { .. }), "{err}");
    }
}
