//! ADD's archive extraction (`attempt_unpack_docker_compatibility`).
//!
//! A local source that is a tar archive, plain or compressed with gzip, bzip2 or xz
//! (recognised by content, as Docker does), is extracted into the destination directory.
//! Docker extracts inside a chroot at the destination; here every entry is resolved with
//! [`safe`](super::safe) confined to the destination, which has the same effect: entries
//! climbing out of it, absolute names and symlinks are re-rooted there, and a
//! symlink extracted earlier can never be written through to the outside. Names with `..`
//! are confined rather than refused, as Docker's chroot does.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use tar::EntryType;

use super::Owner;
use super::error::{Error, Result};
use super::meta::{self, MODE_BITS, io_error, timespec_from_nanos};
use super::safe::{self, display, is_absent};

/// Mode of directories implied by an archive entry without an entry of their own.
const IMPLIED_DIR_MODE: u32 = 0o755;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
}

fn detect(magic: &[u8]) -> Compression {
    if magic.starts_with(b"BZh") {
        Compression::Bzip2
    } else if magic.starts_with(&[0x1f, 0x8b, 0x08]) {
        Compression::Gzip
    } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Compression::Xz
    } else {
        Compression::None
    }
}

fn decompressed(file: File) -> io::Result<Box<dyn Read>> {
    let mut reader = BufReader::new(file);
    let kind = detect(reader.fill_buf()?);
    Ok(match kind {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(reader)),
        Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(reader)),
        Compression::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(reader)),
    })
}

/// Whether `path` is a regular file whose (decompressed) content starts with a valid tar
/// header. Anything unreadable is simply not an archive.
pub fn is_archive(path: &Path) -> bool {
    let is_file = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file());
    if !is_file {
        return false;
    }
    let Ok(file) = File::open(path) else {
        return false;
    };
    let Ok(reader) = decompressed(file) else {
        return false;
    };
    let mut archive = tar::Archive::new(reader);
    let Ok(mut entries) = archive.entries() else {
        return false;
    };
    matches!(entries.next(), Some(Ok(_)))
}

/// Extracts `src` (a path in `src_root`) into directory `dest` of `dest_root` when it is an
/// archive; returns false, doing nothing, when it is not.
pub(crate) fn unpack_if_archive(
    src_root: &Path,
    src: &str,
    dest_root: &Path,
    dest: &str,
    owner: Option<Owner>,
    timestamp: Option<i64>,
) -> Result<bool> {
    let src_path = safe::resolve(src_root, src)?;
    if !is_archive(&src_path) {
        return Ok(false);
    }
    let dest_dir = safe::resolve(dest_root, dest)?;
    meta::mkdir_all(dest_root, &dest_dir, IMPLIED_DIR_MODE, owner, timestamp)?;

    let file = File::open(&src_path).map_err(io_error("open", src_root, &src_path))?;
    let archive_error = |source| Error::Archive {
        path: display(src_root, &src_path),
        source,
    };
    let reader = decompressed(file).map_err(archive_error)?;
    let mut extractor = Extractor {
        dest: &dest_dir,
        owner,
        dirs: Vec::new(),
    };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(archive_error)? {
        let mut entry = entry.map_err(archive_error)?;
        extractor.extract(&mut entry, &archive_error)?;
    }
    // Directory times are set last: extracting into a directory changes its mtime.
    for (dir, mtime) in extractor.dirs.iter().rev() {
        let ts = timespec_from_nanos(*mtime);
        meta::set_times(&dest_dir, dir, ts, ts)?;
    }
    Ok(true)
}

struct Extractor<'a> {
    /// The extraction directory, acting as `/` for the entries.
    dest: &'a Path,
    owner: Option<Owner>,
    dirs: Vec<(PathBuf, i64)>,
}

impl Extractor<'_> {
    fn extract<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        archive_error: &dyn Fn(io::Error) -> Error,
    ) -> Result<()> {
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::XGlobalHeader) {
            return Ok(());
        }
        let raw_name = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw_name).into_owned();
        let rel = confined_name(&raw_name);
        if rel.is_empty() {
            // The archive's `.`: the destination already exists and keeps its metadata.
            return Ok(());
        }

        let target = self.prepare_target(&rel, kind.is_dir())?;
        let header = entry.header().clone();
        let mode =
            go_numeric(header.mode(), &header.as_old().mode).map_err(archive_error)? & MODE_BITS;
        let mtime = mtime_nanos(entry, &header).map_err(archive_error)?;

        match kind {
            EntryType::Directory => {
                if std::fs::symlink_metadata(&target).is_err() {
                    std::fs::DirBuilder::new()
                        .mode(mode)
                        .create(&target)
                        .map_err(io_error("mkdir", self.dest, &target))?;
                }
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let mut output = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(mode)
                    .open(&target)
                    .map_err(io_error("open", self.dest, &target))?;
                io::copy(entry, &mut output).map_err(archive_error)?;
            }
            EntryType::Link => {
                let link = entry
                    .link_name_bytes()
                    .map(|l| l.into_owned())
                    .unwrap_or_default();
                let link_rel = confined_name(&link);
                let source = safe::resolve_parent(self.dest, &link_rel)?;
                std::fs::hard_link(&source, &target)
                    .map_err(io_error("link", self.dest, &target))?;
            }
            EntryType::Symlink => {
                // Stored verbatim: where it points is only interpreted later, confined.
                let link = entry
                    .link_name_bytes()
                    .map(|l| l.into_owned())
                    .unwrap_or_default();
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&link), &target)
                    .map_err(io_error("symlink", self.dest, &target))?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let file_type = match kind {
                    EntryType::Char => rustix::fs::FileType::CharacterDevice,
                    EntryType::Block => rustix::fs::FileType::BlockDevice,
                    _ => rustix::fs::FileType::Fifo,
                };
                let major = header.device_major().map_err(archive_error)?.unwrap_or(0);
                let minor = header.device_minor().map_err(archive_error)?.unwrap_or(0);
                rustix::fs::mknodat(
                    rustix::fs::CWD,
                    &target,
                    file_type,
                    rustix::fs::Mode::from_raw_mode(mode),
                    rustix::fs::makedev(major, minor),
                )
                .map_err(|errno| io_error("mknod", self.dest, &target)(errno.into()))?;
            }
            _ => {
                return Err(Error::ArchiveEntryType {
                    name,
                    kind: kind.as_byte(),
                });
            }
        }

        let (uid, gid) = match self.owner {
            Some(owner) => (owner.uid, owner.gid),
            None => (
                id_from(go_numeric(header.uid(), &header.as_old().uid).map_err(archive_error)?),
                id_from(go_numeric(header.gid(), &header.as_old().gid).map_err(archive_error)?),
            ),
        };
        meta::lchown(self.dest, &target, uid, gid)?;
        if let Ok(Some(extensions)) = entry.pax_extensions() {
            for ext in extensions.flatten() {
                if let Some(xattr) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") {
                    meta::set_xattr_best_effort(&target, xattr, ext.value_bytes());
                }
            }
        }
        if !matches!(kind, EntryType::Symlink) {
            // After chown, which clears set-id bits.
            meta::chmod(self.dest, &target, mode)?;
        }
        if kind.is_dir() {
            self.dirs.push((target, mtime));
        } else {
            let ts = timespec_from_nanos(mtime);
            meta::set_times(self.dest, &target, ts, ts)?;
        }
        Ok(())
    }

    /// Resolves where entry `rel` goes and clears the way: missing parents are created and an
    /// existing entry is removed unless both are directories (then they merge).
    fn prepare_target(&self, rel: &str, is_dir: bool) -> Result<PathBuf> {
        let target = safe::resolve_parent(self.dest, rel)?;
        let parent = target.parent().unwrap_or(self.dest);
        if parent.starts_with(self.dest) {
            meta::mkdir_all(self.dest, parent, IMPLIED_DIR_MODE, None, None)?;
        }
        match std::fs::symlink_metadata(&target) {
            Ok(existing) if existing.is_dir() && is_dir => {}
            Ok(existing) if existing.is_dir() => {
                std::fs::remove_dir_all(&target).map_err(io_error("remove", self.dest, &target))?;
            }
            Ok(_) => {
                std::fs::remove_file(&target).map_err(io_error("remove", self.dest, &target))?
            }
            Err(err) if is_absent(&err) => {}
            Err(source) => return Err(io_error("lstat", self.dest, &target)(source)),
        }
        Ok(target)
    }
}

/// The entry name as a clean path relative to the extraction directory. Names are
/// interpreted as inside Docker's chroot at the destination: a leading `/` and any `..` that
/// would climb above the destination stop at it.
fn confined_name(raw: &[u8]) -> String {
    safe::clean_abs(&String::from_utf8_lossy(raw))
        .trim_start_matches('/')
        .to_owned()
}

/// Modification time in nanoseconds, with the sub-second part of a PAX `mtime` when present.
fn mtime_nanos<R: Read>(entry: &mut tar::Entry<'_, R>, header: &tar::Header) -> io::Result<i64> {
    if let Ok(Some(extensions)) = entry.pax_extensions() {
        for ext in extensions.flatten() {
            if ext.key_bytes() == b"mtime"
                && let Some((secs, nanos)) = ext.value().ok().and_then(crate::timefmt::pax_time)
            {
                return Ok(nanos_of(secs, nanos));
            }
        }
    }
    let secs = go_numeric(header.mtime(), &header.as_old().mtime)?;
    Ok(nanos_of(i64::try_from(secs).unwrap_or(i64::MAX), 0))
}

/// Nanoseconds since the epoch of a time bounded as Docker bounds it: they always fit.
fn nanos_of(secs: i64, nanos: u32) -> i64 {
    let (secs, nanos) = crate::timefmt::bound_time(secs, nanos);
    secs * 1_000_000_000 + i64::from(nanos)
}

/// A numeric header field as Go's archive/tar reads it (and so Docker and BuildKit): a field
/// of only NULs and spaces is 0, where the tar crate refuses it.
fn go_numeric<T: Default>(parsed: io::Result<T>, raw: &[u8]) -> io::Result<T> {
    if raw.iter().all(|b| *b == 0 || *b == b' ') {
        return Ok(T::default());
    }
    parsed
}

fn id_from(id: u64) -> u32 {
    u32::try_from(id).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_confined() {
        assert_eq!(confined_name(b"./a/b/"), "a/b");
        assert_eq!(confined_name(b"/etc/passwd"), "etc/passwd");
        assert_eq!(confined_name(b"/../etc"), "etc");
        assert_eq!(confined_name(b"a/../b"), "b");
        assert_eq!(confined_name(b"../x"), "x");
        assert_eq!(confined_name(b"a/../../x"), "x");
        assert_eq!(confined_name(b"./"), "");
    }

    #[test]
    fn blank_numeric_fields_are_zero_as_in_go() {
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().uid = [0; 8];
        assert!(header.uid().is_err(), "the tar crate refuses it");
        assert_eq!(go_numeric(header.uid(), &header.as_old().uid).unwrap(), 0);
        header.as_old_mut().uid = *b"0000017\0";
        assert_eq!(go_numeric(header.uid(), &header.as_old().uid).unwrap(), 15);
        header.as_old_mut().uid = *b"zz\0\0\0\0\0\0";
        assert!(go_numeric(header.uid(), &header.as_old().uid).is_err());
    }

    #[test]
    fn compression_by_magic() {
        assert_eq!(detect(b"BZh91AY"), Compression::Bzip2);
        assert_eq!(detect(&[0x1f, 0x8b, 0x08, 0]), Compression::Gzip);
        assert_eq!(
            detect(&[0xfd, b'7', b'z', b'X', b'Z', 0, 0]),
            Compression::Xz
        );
        assert_eq!(detect(b"ustar"), Compression::None);
    }
}
