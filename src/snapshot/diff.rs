//! Writes an overlay upper directory as an OCI layer tar.
//!
//! Overlay's own markers become OCI whiteouts: a 0/0 character device `NAME` is written as an
//! empty `.wh.NAME`, an opaque directory gets a `DIR/.wh..wh..opq` entry after its own; the
//! OCI files that stand in for them where they could not be made are written the same way.
//! Entries come in name order within each directory (a whiteout at the name it deletes, as
//! Docker's differs write it) so that the same tree always gives the same bytes, and so the
//! same diff_id; each header is written as Go writes it for Docker's
//! differs ([`super::go_tar`]), with the same fields (a directory's name ends in `/`, mtimes
//! are truncated to the second, only `security.capability` of the xattrs is kept), so that a
//! tree gives bud the diff ID it gives Docker.

use std::collections::HashMap;
use std::fs::Metadata;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::content::DigestWriter;

use super::go_tar::{self, GoHeader};
use super::{OPAQUE_WHITEOUT, OPAQUE_XATTRS, Result, SnapshotError, WHITEOUT_PREFIX, walk};

/// The one xattr Docker's differs (moby's `pkg/archive`, containerd's `archive`) put in a
/// layer: a step's other xattrs are not in Docker's image, so they are not in bud's.
const LAYER_XATTR: &str = "security.capability";

/// Type flags of the entries a layer holds.
mod kind {
    pub(super) const REGULAR: u8 = b'0';
    pub(super) const HARDLINK: u8 = b'1';
    pub(super) const SYMLINK: u8 = b'2';
    pub(super) const CHAR: u8 = b'3';
    pub(super) const BLOCK: u8 = b'4';
    pub(super) const DIRECTORY: u8 = b'5';
    pub(super) const FIFO: u8 = b'6';
}

/// The version of the bytes [`write_layer`] writes for a tree, raised whenever they change:
/// a diff ID recorded by an earlier version is not what the directory tars to now.
/// 1: Go's headers, as Docker's differs write them.
pub const TAR_FORMAT: u32 = 1;

/// What [`write_layer`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerStats {
    /// `sha256:<hex>` of the uncompressed tar: the layer's diff_id in the image config.
    pub diff_id: String,
    /// Bytes of uncompressed tar.
    pub size: u64,
    /// Tar entries written, whiteouts included.
    pub entries: u64,
}

/// Tars `upper` (an overlay upper directory, not mounted) into `out` as an OCI layer.
pub fn write_layer(upper: &Path, out: impl Write) -> Result<LayerStats> {
    write_layer_clamped(upper, out, None)
}

/// [`write_layer`], with every mtime later than `mtime_limit` (seconds) written as
/// `mtime_limit`: BuildKit's `rewrite-timestamp=true` with SOURCE_DATE_EPOCH.
pub fn write_layer_clamped(
    upper: &Path,
    out: impl Write,
    mtime_limit: Option<u64>,
) -> Result<LayerStats> {
    let mut writer = LayerWriter::new(DigestWriter::new(out), Contents::Read);
    writer.mtime_limit = mtime_limit;
    writer.write_dir(upper, "")?;
    let entries = writer.entries;
    let (digest, size, _) = writer.finish(upper)?.finish();
    Ok(LayerStats {
        diff_id: digest.to_string(),
        size,
        entries,
    })
}

/// The exact size of the tar [`write_layer`] would write for `upper`, from metadata alone:
/// an archive that embeds the layer must state its size before the layer's bytes.
pub fn layer_size(upper: &Path) -> Result<u64> {
    let mut writer = LayerWriter::new(ByteCounter(0), Contents::Skip);
    writer.write_dir(upper, "")?;
    Ok(writer.finish(upper)?.0)
}

/// Whether file contents are read, or stood in for by zeros of the same length.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Contents {
    Read,
    Skip,
}

/// A sink that only counts.
struct ByteCounter(u64);

impl Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct LayerWriter<W: Write> {
    out: W,
    contents: Contents,
    /// First path seen of each multiply-linked inode: later ones become hardlink entries.
    hardlinks: HashMap<(u64, u64), String>,
    entries: u64,
    /// Later mtimes are written as this one (`rewrite-timestamp`).
    mtime_limit: Option<u64>,
}

fn is_whiteout(meta: &Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

/// Whether the directory `path` is opaque, and the metadata its marker's header takes:
/// the directory's own where overlayfs' xattr marks it, the OCI marker file's (which
/// extraction gave the marker's owner and time) where that could not be set.
fn opaque_marker(path: &Path, meta: &Metadata) -> Result<Option<Metadata>> {
    for name in OPAQUE_XATTRS {
        if walk::xattr(path, name)?.as_deref() == Some(b"y") {
            return Ok(Some(meta.clone()));
        }
    }
    let file = path.join(OPAQUE_WHITEOUT);
    match std::fs::symlink_metadata(&file) {
        Ok(marker)
            if super::oci_whiteout(std::ffi::OsStr::new(OPAQUE_WHITEOUT), &marker) == Some("") =>
        {
            Ok(Some(marker))
        }
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SnapshotError::io("reading", file, e)),
    }
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}/{name}")
    }
}

/// Header fields common to every entry, from the file's metadata: no size, no link.
fn header_from<'a>(meta: &Metadata, kind: u8, name: &'a str) -> GoHeader<'a> {
    GoHeader {
        name: name.as_bytes(),
        kind,
        mode: meta.mode() & 0o7777,
        uid: u64::from(meta.uid()),
        gid: u64::from(meta.gid()),
        size: 0,
        // Truncated to the second, as both Docker differs do (st_mtime is the floor).
        mtime: meta.mtime(),
        link: b"",
        device: (0, 0),
        records: &[],
    }
}

impl<W: Write> LayerWriter<W> {
    fn new(out: W, contents: Contents) -> Self {
        LayerWriter {
            out,
            contents,
            hardlinks: HashMap::new(),
            entries: 0,
            mtime_limit: None,
        }
    }

    /// Writes the end-of-archive blocks and returns the output.
    fn finish(mut self, upper: &Path) -> Result<W> {
        self.out
            .write_all(&[0; 2 * go_tar::BLOCK])
            .map_err(|e| SnapshotError::io("writing layer of", upper, e))?;
        Ok(self.out)
    }

    fn write_dir(&mut self, dir: &Path, rel: &str) -> Result<()> {
        let mut entries = Vec::new();
        for (name, path) in walk::sorted_entries(dir)? {
            let Some(name) = name.to_str() else {
                return Err(SnapshotError::Unsupported {
                    path: String::from_utf8_lossy(name.as_bytes()).into_owned(),
                    what: "non-UTF-8 file name".to_owned(),
                });
            };
            let meta = std::fs::symlink_metadata(&path)
                .map_err(|e| SnapshotError::io("reading", &path, e))?;
            let oci_marker = super::oci_whiteout(std::ffi::OsStr::new(name), &meta);
            if oci_marker == Some("") {
                // The opaque marker follows its directory's entry, in either form.
                continue;
            }
            // Docker's differs turn a deleted name into its whiteout as they walk the tree
            // in name order: a whiteout sorts by the name it deletes.
            let key = oci_marker.unwrap_or(name).to_owned();
            entries.push((key, join(rel, name), path, meta));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, rel, path, meta) in entries {
            self.write_entry(&path, &rel, &meta)?;
            if meta.is_dir() {
                self.write_dir(&path, &rel)?;
            }
        }
        Ok(())
    }

    fn write_entry(&mut self, path: &Path, rel: &str, meta: &Metadata) -> Result<()> {
        let io = |e: io::Error| SnapshotError::io("writing layer entry for", path, e);
        let file_type = meta.file_type();
        let (parent, base_name) = walk::split_parent(rel);
        if super::oci_whiteout(std::ffi::OsStr::new(base_name), meta).is_some() {
            // Already in the archive's form; its header as for overlayfs' whiteouts.
            let header = GoHeader {
                mode: 0,
                ..header_from(meta, kind::REGULAR, rel)
            };
            return self.append(&header, io::empty()).map_err(io);
        }
        if is_whiteout(meta) {
            let name = join(parent, &format!("{WHITEOUT_PREFIX}{base_name}"));
            let header = GoHeader {
                mode: 0,
                ..header_from(meta, kind::REGULAR, &name)
            };
            return self.append(&header, io::empty()).map_err(io);
        }
        let xattrs: Vec<(String, Vec<u8>)> = match walk::xattr(path, LAYER_XATTR)? {
            Some(value) => vec![(format!("SCHILY.xattr.{LAYER_XATTR}"), value)],
            None => Vec::new(),
        };
        if file_type.is_dir() {
            let name = format!("{rel}/");
            let header = GoHeader {
                records: &xattrs,
                ..header_from(meta, kind::DIRECTORY, &name)
            };
            self.append(&header, io::empty()).map_err(io)?;
            if let Some(marker_meta) = opaque_marker(path, meta)? {
                let marker = join(rel, OPAQUE_WHITEOUT);
                let header = GoHeader {
                    mode: 0,
                    ..header_from(&marker_meta, kind::REGULAR, &marker)
                };
                self.append(&header, io::empty()).map_err(io)?;
            }
            return Ok(());
        }
        if file_type.is_symlink() {
            let target =
                std::fs::read_link(path).map_err(|e| SnapshotError::io("reading", path, e))?;
            let header = GoHeader {
                link: target.as_os_str().as_bytes(),
                records: &xattrs,
                ..header_from(meta, kind::SYMLINK, rel)
            };
            return self.append(&header, io::empty()).map_err(io);
        }
        if file_type.is_file() {
            if meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                if let Some(first) = self.hardlinks.get(&key) {
                    let first = first.clone();
                    let header = GoHeader {
                        link: first.as_bytes(),
                        records: &xattrs,
                        ..header_from(meta, kind::HARDLINK, rel)
                    };
                    return self.append(&header, io::empty()).map_err(io);
                }
                self.hardlinks.insert(key, rel.to_owned());
            }
            let header = GoHeader {
                size: meta.len(),
                records: &xattrs,
                ..header_from(meta, kind::REGULAR, rel)
            };
            if self.contents == Contents::Skip {
                let zeros = io::Read::take(io::repeat(0), meta.len());
                return self.append(&header, zeros).map_err(io);
            }
            let file =
                std::fs::File::open(path).map_err(|e| SnapshotError::io("opening", path, e))?;
            // A file that changed size since lstat would corrupt the tar: read exactly `len`.
            let data = io::Read::take(file, meta.len());
            return self.append(&header, data).map_err(io);
        }
        let kind = if file_type.is_char_device() {
            kind::CHAR
        } else if file_type.is_block_device() {
            kind::BLOCK
        } else if file_type.is_fifo() {
            kind::FIFO
        } else {
            // Sockets cannot be recreated from an archive; Docker leaves them out too.
            return Ok(());
        };
        let dev = meta.rdev();
        let header = GoHeader {
            device: (
                u64::from(rustix::fs::major(dev)),
                u64::from(rustix::fs::minor(dev)),
            ),
            records: &xattrs,
            ..header_from(meta, kind, rel)
        };
        self.append(&header, io::empty()).map_err(io)
    }

    /// Writes one entry: its header blocks, then its data padded to a whole block.
    fn append(&mut self, header: &GoHeader<'_>, mut data: impl io::Read) -> io::Result<()> {
        let limit = self
            .mtime_limit
            .map(|limit| i64::try_from(limit).unwrap_or(i64::MAX));
        let clamped;
        let header = match limit {
            Some(limit) if header.mtime > limit => {
                clamped = GoHeader {
                    mtime: limit,
                    ..*header
                };
                &clamped
            }
            _ => header,
        };
        self.out.write_all(&go_tar::header_blocks(header))?;
        let written = io::copy(&mut data, &mut self.out)?;
        if written != header.size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while it was being written",
            ));
        }
        let padding = written.next_multiple_of(go_tar::BLOCK as u64) - written;
        self.out
            .write_all(&[0; go_tar::BLOCK][..padding as usize])?;
        self.entries += 1;
        Ok(())
    }
}
