//! An image's root filesystem made from its layer tars, for a scan of an image bud did not
//! solve itself (one a daemon built and bud read back from Docker): the layers applied in
//! order into an empty directory, as `docker export` flattens them, with whiteouts
//! (`.wh.NAME`) deleting what lower layers hold and opaque markers (`.wh..wh..opq`) hiding a
//! directory's lower contents.
//!
//! Only what a scan reads is made: directories, regular files with their contents,
//! symlinks and hard links. Owners, modes, times, xattrs and device nodes are left out (a
//! device or fifo only replaces what a lower layer had at its path), so an unprivileged
//! user can unpack any image.
//!
//! The tars are untrusted. Every entry is created relative to a directory opened with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`: nothing is written outside the
//! directory and no symlink an earlier layer planted is followed.

use std::collections::HashSet;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use tar::EntryType;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

const BENEATH: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("reading layer {}", .layer.display())]
    Read {
        layer: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{action} {path} (layer {})", .layer.display())]
    Write {
        action: &'static str,
        path: String,
        layer: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("layer {}: entry {path}: {reason}", .layer.display())]
    Unsafe {
        layer: PathBuf,
        path: String,
        reason: &'static str,
    },
    #[error("unpacking the image's layers was cancelled")]
    Cancelled,
}

/// Applies the uncompressed layer tars `layers`, lowest first, to the empty directory
/// `dest`. `cancelled` is asked between entries, so that a signal stops a large image.
pub fn unpack_layers(
    layers: &[PathBuf],
    dest: &Path,
    cancelled: &dyn Fn() -> bool,
) -> Result<(), UnpackError> {
    let root = rustix::fs::open(
        dest,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| UnpackError::Write {
        action: "opening",
        path: dest.display().to_string(),
        layer: PathBuf::new(),
        source: e.into(),
    })?;
    for layer in layers {
        let file = std::fs::File::open(layer).map_err(|source| UnpackError::Read {
            layer: layer.clone(),
            source,
        })?;
        Layer {
            root: &root,
            dest,
            path: layer,
            made: HashSet::new(),
        }
        .apply(std::io::BufReader::new(file), cancelled)?;
    }
    Ok(())
}

/// One layer being applied.
struct Layer<'a> {
    root: &'a OwnedFd,
    dest: &'a Path,
    path: &'a Path,
    /// The paths this layer has written so far: an opaque marker keeps them.
    made: HashSet<String>,
}

impl Layer<'_> {
    fn apply(&mut self, tar: impl Read, cancelled: &dyn Fn() -> bool) -> Result<(), UnpackError> {
        let read = |source| UnpackError::Read {
            layer: self.path.to_path_buf(),
            source,
        };
        let mut archive = tar::Archive::new(tar);
        for entry in archive.entries().map_err(read)? {
            if cancelled() {
                return Err(UnpackError::Cancelled);
            }
            let mut entry = entry.map_err(|source| UnpackError::Read {
                layer: self.path.to_path_buf(),
                source,
            })?;
            let raw = entry.path_bytes().into_owned();
            let rel = self.clean(&raw)?;
            if rel.is_empty() {
                continue;
            }
            let (parent, name) = split_parent(&rel);
            let parent_fd = self.ensure_dir(parent, &rel)?;
            if name == OPAQUE_WHITEOUT {
                self.hide_lower(parent)?;
                continue;
            }
            if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
                // `.wh..wh.*` names are aufs bookkeeping with no meaning in a layer.
                if !hidden.is_empty() && !hidden.starts_with(WHITEOUT_PREFIX) {
                    let gone = join(parent, hidden);
                    self.remove(&gone)?;
                }
                continue;
            }
            let kind = entry.header().entry_type();
            let layer = self.path;
            let write = |action: &'static str| {
                let rel = rel.clone();
                move |e: Errno| UnpackError::Write {
                    action,
                    path: rel,
                    layer: layer.to_path_buf(),
                    source: e.into(),
                }
            };
            match kind {
                EntryType::Directory => {
                    match rustix::fs::statat(&parent_fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
                        Ok(_) => {
                            self.remove(&rel)?;
                            mkdir(&parent_fd, name).map_err(write("creating"))?;
                        }
                        Err(Errno::NOENT) => mkdir(&parent_fd, name).map_err(write("creating"))?,
                        Err(e) => return Err(write("reading")(e)),
                    }
                }
                EntryType::Regular | EntryType::Continuous => {
                    self.remove(&rel)?;
                    let fd = rustix::fs::openat(
                        &parent_fd,
                        name,
                        OFlags::WRONLY
                            | OFlags::CREATE
                            | OFlags::EXCL
                            | OFlags::NOFOLLOW
                            | OFlags::CLOEXEC,
                        Mode::from_raw_mode(0o644),
                    )
                    .map_err(write("creating"))?;
                    let mut file = std::fs::File::from(fd);
                    std::io::copy(&mut entry, &mut file).map_err(|source| UnpackError::Write {
                        action: "writing",
                        path: rel.clone(),
                        layer: self.path.to_path_buf(),
                        source,
                    })?;
                }
                EntryType::Symlink => {
                    let target = self.link_name(&entry, &rel)?;
                    self.remove(&rel)?;
                    rustix::fs::symlinkat(target.as_slice(), &parent_fd, name)
                        .map_err(write("creating"))?;
                }
                EntryType::Link => {
                    let target = self.link_name(&entry, &rel)?;
                    let target = self.clean(&target)?;
                    let (target_parent, target_name) = split_parent(&target);
                    let target_parent_fd =
                        open_beneath(self.root, target_parent).map_err(|_| {
                            UnpackError::Unsafe {
                                layer: self.path.to_path_buf(),
                                path: rel.clone(),
                                reason: "hard link to a path that is not in the image",
                            }
                        })?;
                    self.remove(&rel)?;
                    rustix::fs::linkat(
                        &target_parent_fd,
                        target_name,
                        &parent_fd,
                        name,
                        AtFlags::empty(),
                    )
                    .map_err(write("linking"))?;
                }
                // Nothing a scan reads, but it replaces what was at its path.
                EntryType::Char | EntryType::Block | EntryType::Fifo => self.remove(&rel)?,
                _ => continue,
            }
            self.made.insert(rel);
        }
        Ok(())
    }

    /// The entry's path relative to the root, `.` and empty components dropped; `..` is
    /// refused.
    fn clean(&self, raw: &[u8]) -> Result<String, UnpackError> {
        let text = String::from_utf8_lossy(raw);
        let unsafe_entry = |reason| UnpackError::Unsafe {
            layer: self.path.to_path_buf(),
            path: text.to_string(),
            reason,
        };
        let mut parts = Vec::new();
        for part in text.split('/') {
            match part {
                "" | "." => {}
                ".." => return Err(unsafe_entry("a `..` component")),
                p if p.contains('\0') => return Err(unsafe_entry("NUL in the path")),
                p => parts.push(p),
            }
        }
        Ok(parts.join("/"))
    }

    fn link_name<R: Read>(
        &self,
        entry: &tar::Entry<'_, R>,
        rel: &str,
    ) -> Result<Vec<u8>, UnpackError> {
        match entry.link_name_bytes() {
            Some(name) if !name.is_empty() => Ok(name.into_owned()),
            _ => Err(UnpackError::Unsafe {
                layer: self.path.to_path_buf(),
                path: rel.to_owned(),
                reason: "a link without a target",
            }),
        }
    }

    /// Opens `rel` beneath the root, creating missing directories. A component that is a
    /// symlink or not a directory is refused: the layer would be writing through it.
    fn ensure_dir(&mut self, rel: &str, entry: &str) -> Result<OwnedFd, UnpackError> {
        let mut current = open_beneath(self.root, "").map_err(|e| UnpackError::Write {
            action: "opening",
            path: String::new(),
            layer: self.path.to_path_buf(),
            source: e.into(),
        })?;
        if rel.is_empty() {
            return Ok(current);
        }
        let mut so_far = String::new();
        for part in rel.split('/') {
            so_far = join(&so_far, part);
            match mkdir(&current, part) {
                Ok(()) => {
                    self.made.insert(so_far.clone());
                }
                Err(Errno::EXIST) => {}
                Err(e) => {
                    return Err(UnpackError::Write {
                        action: "creating",
                        path: so_far,
                        layer: self.path.to_path_buf(),
                        source: e.into(),
                    });
                }
            }
            current = open_beneath(&current, part).map_err(|e| match e {
                Errno::LOOP | Errno::NOTDIR | Errno::XDEV => UnpackError::Unsafe {
                    layer: self.path.to_path_buf(),
                    path: entry.to_owned(),
                    reason: "a parent directory is a symlink or not a directory",
                },
                e => UnpackError::Write {
                    action: "opening",
                    path: so_far.clone(),
                    layer: self.path.to_path_buf(),
                    source: e.into(),
                },
            })?;
        }
        Ok(current)
    }

    /// Removes whatever is at `rel` (a directory with its contents). Its parent was opened
    /// with [`Layer::ensure_dir`], so no component of the path is a symlink.
    fn remove(&self, rel: &str) -> Result<(), UnpackError> {
        let path = self.dest.join(rel);
        let removed = match std::fs::symlink_metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
            // Does not follow a symlink (std's remove_dir_all opens each level without it).
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&path),
            Ok(_) => std::fs::remove_file(&path),
        };
        removed.map_err(|source| UnpackError::Write {
            action: "removing",
            path: rel.to_owned(),
            layer: self.path.to_path_buf(),
            source,
        })
    }

    /// An opaque marker in `dir`: everything beneath it that lower layers gave goes; what
    /// this layer wrote there stays.
    fn hide_lower(&self, dir: &str) -> Result<(), UnpackError> {
        let path = self.dest.join(dir);
        let entries = std::fs::read_dir(&path).map_err(|source| UnpackError::Write {
            action: "reading",
            path: dir.to_owned(),
            layer: self.path.to_path_buf(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| UnpackError::Write {
                action: "reading",
                path: dir.to_owned(),
                layer: self.path.to_path_buf(),
                source,
            })?;
            let rel = join(dir, &entry.file_name().to_string_lossy());
            if !self.made.contains(&rel) {
                self.remove(&rel)?;
            } else if entry.file_type().is_ok_and(|t| t.is_dir()) {
                self.hide_lower(&rel)?;
            }
        }
        Ok(())
    }
}

fn open_beneath(root: &OwnedFd, rel: &str) -> rustix::io::Result<OwnedFd> {
    let rel = if rel.is_empty() { "." } else { rel };
    rustix::fs::openat2(
        root,
        rel,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        BENEATH,
    )
}

fn mkdir(parent: &OwnedFd, name: &str) -> rustix::io::Result<()> {
    rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o755))
}

fn split_parent(rel: &str) -> (&str, &str) {
    rel.rsplit_once('/').unwrap_or(("", rel))
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(dir: &Path, name: &str, entries: &[(&str, Option<&str>)]) -> PathBuf {
        let path = dir.join(name);
        let mut builder = tar::Builder::new(std::fs::File::create(&path).unwrap());
        for (entry, content) in entries {
            let mut header = tar::Header::new_gnu();
            match content {
                Some(text) if text.starts_with("->") => {
                    header.set_entry_type(EntryType::Symlink);
                    header.set_size(0);
                    builder.append_link(&mut header, entry, &text[2..]).unwrap();
                    continue;
                }
                Some(text) => {
                    header.set_entry_type(EntryType::Regular);
                    header.set_size(text.len() as u64);
                    header.set_mode(0o600);
                    builder
                        .append_data(&mut header, entry, text.as_bytes())
                        .unwrap();
                }
                None => {
                    header.set_entry_type(EntryType::Directory);
                    header.set_size(0);
                    header.set_mode(0o700);
                    builder
                        .append_data(&mut header, entry, std::io::empty())
                        .unwrap();
                }
            }
        }
        builder.finish().unwrap();
        path
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
                let meta = std::fs::symlink_metadata(e.path()).unwrap();
                if meta.is_dir() {
                    out.push(format!("{rel}/"));
                    stack.push(e.path());
                } else if meta.file_type().is_symlink() {
                    let target = std::fs::read_link(e.path()).unwrap();
                    out.push(format!("{rel} -> {}", target.display()));
                } else {
                    out.push(format!(
                        "{rel}={}",
                        std::fs::read_to_string(e.path()).unwrap()
                    ));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn layers_are_flattened_with_their_whiteouts() {
        let work = tempfile::tempdir().unwrap();
        let base = layer(
            work.path(),
            "base.tar",
            &[
                ("etc/", None),
                ("etc/os-release", Some("ID=base\n")),
                ("var/lib/dpkg/status", Some("old")),
                ("opt/", None),
                ("opt/a", Some("a")),
                ("opt/sub/b", Some("b")),
                ("gone", Some("x")),
                ("lib", Some("->usr/lib")),
            ],
        );
        let top = layer(
            work.path(),
            "top.tar",
            &[
                ("var/lib/dpkg/status", Some("new")),
                ("opt/", None),
                ("opt/.wh..wh..opq", Some("")),
                ("opt/c", Some("c")),
                (".wh.gone", Some("")),
                ("usr/lib/x", Some("x")),
            ],
        );
        let dest = tempfile::tempdir().unwrap();
        unpack_layers(&[base, top], dest.path(), &|| false).unwrap();
        assert_eq!(
            listing(dest.path()),
            [
                "etc/",
                "etc/os-release=ID=base\n",
                "lib -> usr/lib",
                "opt/",
                "opt/c=c",
                "usr/",
                "usr/lib/",
                "usr/lib/x=x",
                "var/",
                "var/lib/",
                "var/lib/dpkg/",
                "var/lib/dpkg/status=new",
            ]
        );
    }

    #[test]
    fn a_layer_cannot_write_through_a_symlink_or_leave_the_root() {
        let work = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let link = format!("->{}", outside.path().display());
        let base = layer(work.path(), "base.tar", &[("escape", Some(&link))]);
        let top = layer(work.path(), "top.tar", &[("escape/planted", Some("x"))]);
        let dest = tempfile::tempdir().unwrap();
        let err = unpack_layers(&[base, top], dest.path(), &|| false).unwrap_err();
        assert!(matches!(err, UnpackError::Unsafe { .. }), "{err:?}");
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);

        let dotdot = work.path().join("dotdot.tar");
        let mut raw = tar::Header::new_old();
        raw.as_old_mut().name[..9].copy_from_slice(b"../planted"[..9].as_ref());
        raw.set_entry_type(EntryType::Regular);
        raw.set_size(0);
        raw.set_cksum();
        let mut bytes = raw.as_bytes().to_vec();
        bytes.extend([0u8; 1024]);
        std::fs::write(&dotdot, bytes).unwrap();
        let err = unpack_layers(&[dotdot], dest.path(), &|| false).unwrap_err();
        assert!(matches!(err, UnpackError::Unsafe { .. }), "{err:?}");
    }

    #[test]
    fn a_cancelled_unpack_stops() {
        let work = tempfile::tempdir().unwrap();
        let base = layer(work.path(), "base.tar", &[("a", Some("a"))]);
        let dest = tempfile::tempdir().unwrap();
        let err = unpack_layers(&[base], dest.path(), &|| true).unwrap_err();
        assert!(matches!(err, UnpackError::Cancelled), "{err:?}");
    }
}
