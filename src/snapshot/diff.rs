//! Writes an overlay upper directory as an OCI layer tar.
//!
//! Overlay's own markers become OCI whiteouts: a 0/0 character device `NAME` is written as an
//! empty `.wh.NAME`, an opaque directory gets a `DIR/.wh..wh..opq` entry after its own.
//! Entries come in name order within each directory so that the same tree always gives the
//! same bytes, and so the same diff_id.

use std::collections::HashMap;
use std::fs::Metadata;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::content::DigestWriter;
use tar::{Builder, EntryType, Header};

use super::{OPAQUE_WHITEOUT, OPAQUE_XATTRS, Result, SnapshotError, WHITEOUT_PREFIX, walk};

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
    builder: Builder<W>,
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

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}/{name}")
    }
}

/// Header fields common to every entry, from the file's metadata.
fn header_from(meta: &Metadata, kind: EntryType) -> Header {
    let mut header = Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(meta.mode() & 0o7777);
    header.set_uid(u64::from(meta.uid()));
    header.set_gid(u64::from(meta.gid()));
    header.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
    header.set_size(0);
    header
}

impl<W: Write> LayerWriter<W> {
    fn new(out: W, contents: Contents) -> Self {
        LayerWriter {
            builder: Builder::new(out),
            contents,
            hardlinks: HashMap::new(),
            entries: 0,
            mtime_limit: None,
        }
    }

    /// Writes the end-of-archive blocks and returns the output.
    fn finish(self, upper: &Path) -> Result<W> {
        self.builder
            .into_inner()
            .map_err(|e| SnapshotError::io("writing layer of", upper, e))
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
            // Sorted by the name in the archive, where a whiteout is `.wh.NAME`.
            let key = if is_whiteout(&meta) {
                format!("{WHITEOUT_PREFIX}{name}")
            } else {
                name.to_owned()
            };
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
        let (_, base_name) = walk::split_parent(rel);
        if super::oci_whiteout(std::ffi::OsStr::new(base_name), meta).is_some() {
            // Already in the archive's form; its header as for overlayfs' whiteouts.
            let mut header = header_from(meta, EntryType::Regular);
            header.set_mode(0);
            return self.append(header, rel, None, &[], io::empty()).map_err(io);
        }
        if is_whiteout(meta) {
            let (parent, name) = walk::split_parent(rel);
            let mut header = header_from(meta, EntryType::Regular);
            header.set_mode(0);
            return self
                .append(
                    header,
                    &join(parent, &format!("{WHITEOUT_PREFIX}{name}")),
                    None,
                    &[],
                    io::empty(),
                )
                .map_err(io);
        }
        let xattrs = super::file_xattrs(path)?;
        if file_type.is_dir() {
            self.append(
                header_from(meta, EntryType::Directory),
                rel,
                None,
                &xattrs,
                io::empty(),
            )
            .map_err(io)?;
            for name in OPAQUE_XATTRS {
                if walk::xattr(path, name)?.as_deref() == Some(b"y") {
                    let mut header = header_from(meta, EntryType::Regular);
                    header.set_mode(0);
                    self.append(header, &join(rel, OPAQUE_WHITEOUT), None, &[], io::empty())
                        .map_err(io)?;
                    break;
                }
            }
            return Ok(());
        }
        if file_type.is_symlink() {
            let target =
                std::fs::read_link(path).map_err(|e| SnapshotError::io("reading", path, e))?;
            let header = header_from(meta, EntryType::Symlink);
            return self
                .append(
                    header,
                    rel,
                    Some(target.as_os_str().as_bytes()),
                    &xattrs,
                    io::empty(),
                )
                .map_err(io);
        }
        if file_type.is_file() {
            if meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                if let Some(first) = self.hardlinks.get(&key) {
                    let first = first.clone();
                    let header = header_from(meta, EntryType::Link);
                    return self
                        .append(header, rel, Some(first.as_bytes()), &xattrs, io::empty())
                        .map_err(io);
                }
                self.hardlinks.insert(key, rel.to_owned());
            }
            let mut header = header_from(meta, EntryType::Regular);
            header.set_size(meta.len());
            if self.contents == Contents::Skip {
                let mut zeros = io::Read::take(io::repeat(0), meta.len());
                return self
                    .append(header, rel, None, &xattrs, &mut zeros)
                    .map_err(io);
            }
            let file =
                std::fs::File::open(path).map_err(|e| SnapshotError::io("opening", path, e))?;
            // A file that changed size since lstat would corrupt the tar: read exactly `len`.
            let mut data = io::Read::take(file, meta.len());
            return self
                .append(header, rel, None, &xattrs, &mut data)
                .map_err(io);
        }
        let kind = if file_type.is_char_device() {
            EntryType::Char
        } else if file_type.is_block_device() {
            EntryType::Block
        } else if file_type.is_fifo() {
            EntryType::Fifo
        } else {
            // Sockets cannot be recreated from an archive; Docker leaves them out too.
            return Ok(());
        };
        let mut header = header_from(meta, kind);
        let dev = meta.rdev();
        header
            .set_device_major(rustix::fs::major(dev))
            .and_then(|()| header.set_device_minor(rustix::fs::minor(dev)))
            .map_err(io)?;
        self.append(header, rel, None, &xattrs, io::empty())
            .map_err(io)
    }

    /// Writes one entry, with a PAX header first for xattrs and names too long for ustar.
    fn append(
        &mut self,
        mut header: Header,
        rel: &str,
        link: Option<&[u8]>,
        xattrs: &[(String, Vec<u8>)],
        data: impl io::Read,
    ) -> io::Result<()> {
        let mut pax: Vec<(String, Vec<u8>)> = xattrs
            .iter()
            .map(|(name, value)| (format!("SCHILY.xattr.{name}"), value.clone()))
            .collect();
        if header.set_path(rel).is_err() {
            pax.push(("path".to_owned(), rel.as_bytes().to_vec()));
            header.set_path(truncated_name(rel))?;
        }
        if let Some(link) = link {
            if header.set_link_name_literal(link).is_err() {
                pax.push(("linkpath".to_owned(), link.to_vec()));
                header.set_link_name_literal(&link[..link.len().min(100)])?;
            }
        }
        if !pax.is_empty() {
            self.builder
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
        }
        if let Some(limit) = self.mtime_limit
            && header.mtime()? > limit
        {
            header.set_mtime(limit);
        }
        header.set_cksum();
        self.builder.append(&header, data)?;
        self.entries += 1;
        Ok(())
    }
}

/// The ustar name of an entry whose real name is in its PAX header (readers that ignore PAX
/// see this prefix of it).
fn truncated_name(rel: &str) -> &str {
    let mut end = rel.len().min(99);
    while !rel.is_char_boundary(end) {
        end -= 1;
    }
    &rel[..end]
}
