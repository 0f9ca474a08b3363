//! The tar stream both archive formats are written into.
//!
//! Headers are deterministic (mtime 0, root-owned, fixed modes) so that the same image
//! always gives the same archive bytes.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest as _, Sha256};

use super::ExportError;
use crate::content::Digest;

pub(super) struct Tarball<W: Write> {
    builder: tar::Builder<W>,
}

impl<W: Write> Tarball<W> {
    pub(super) fn new(out: W) -> Self {
        Tarball {
            builder: tar::Builder::new(out),
        }
    }

    pub(super) fn dir(&mut self, path: &str) -> Result<(), ExportError> {
        let mut header = header(tar::EntryType::Directory, 0o755, 0);
        self.builder
            .append_data(&mut header, path, io::empty())
            .map_err(ExportError::Write)
    }

    pub(super) fn bytes(&mut self, path: &str, data: &[u8]) -> Result<(), ExportError> {
        let mut header = header(tar::EntryType::Regular, 0o644, data.len() as u64);
        self.builder
            .append_data(&mut header, path, data)
            .map_err(ExportError::Write)
    }

    /// Copies the file at `source` in as `path`, checking on the way that its sha256 is
    /// `expected`. Returns the size copied.
    pub(super) fn file(
        &mut self,
        path: &str,
        source: &Path,
        expected: &Digest,
    ) -> Result<u64, ExportError> {
        let io_err = |action| {
            let path = source.to_owned();
            move |source| ExportError::Io {
                action,
                path,
                source,
            }
        };
        let file = File::open(source).map_err(io_err("opening"))?;
        let size = file
            .metadata()
            .map_err(io_err("reading metadata of"))?
            .len();
        let mut reader = HashingReader {
            inner: file.take(size),
            hasher: Sha256::new(),
            read: 0,
            error: None,
        };
        let mut header = header(tar::EntryType::Regular, 0o644, size);
        let appended = self.builder.append_data(&mut header, path, &mut reader);
        // A read error surfaces from the tar writer as an io::Error; report it as a read of
        // the layer file rather than a write of the archive.
        if let Some(e) = reader.error.take() {
            return Err(io_err("reading")(e));
        }
        appended.map_err(ExportError::Write)?;
        if reader.read != size {
            return Err(io_err("reading")(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "file shrank from {size} to {} bytes while archived",
                    reader.read
                ),
            )));
        }
        let actual = Digest::from_hasher(reader.hasher);
        if actual != *expected {
            return Err(ExportError::LayerDigest {
                path: source.to_owned(),
                expected: expected.clone(),
                actual,
            });
        }
        Ok(size)
    }

    /// Tars the snapshot directory `upper` in as `path`, without staging the layer tar
    /// anywhere: its size is worked out from metadata first, since the entry's header comes
    /// before its bytes. Returns the layer's diff ID.
    pub(super) fn layer_dir(&mut self, path: &str, upper: &Path) -> Result<Digest, ExportError> {
        let layer_err = |source| ExportError::Layer {
            path: upper.to_owned(),
            source,
        };
        let size = crate::snapshot::diff::layer_size(upper).map_err(layer_err)?;
        let mut header = header(tar::EntryType::Regular, 0o644, size);
        // The header alone: `append_data` pads by what it copied, here nothing.
        self.builder
            .append_data(&mut header, path, io::empty())
            .map_err(ExportError::Write)?;
        let mut body = Bounded {
            inner: self.builder.get_mut(),
            left: size,
        };
        let stats = crate::snapshot::diff::write_layer(upper, &mut body).map_err(layer_err)?;
        if body.left != 0 {
            return Err(layer_err(crate::snapshot::SnapshotError::io(
                "archiving",
                upper,
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the layer shrank from {size} to {} bytes", stats.size),
                ),
            )));
        }
        let padding = (512 - size % 512) % 512;
        self.builder
            .get_mut()
            .write_all(&[0u8; 512][..padding as usize])
            .map_err(ExportError::Write)?;
        Digest::parse(&stats.diff_id).map_err(ExportError::InvalidDiffId)
    }

    pub(super) fn finish(self) -> Result<W, ExportError> {
        self.builder.into_inner().map_err(ExportError::Write)
    }
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_size(size);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header
}

/// Passes through at most `left` bytes: a layer that grew after it was measured must not
/// overrun its entry and corrupt the archive.
struct Bounded<W> {
    inner: W,
    left: u64,
}

impl<W: Write> Write for Bounded<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() as u64 > self.left {
            return Err(io::Error::other(
                "the layer grew while it was archived (its directory changed)",
            ));
        }
        let n = self.inner.write(buf)?;
        self.left -= n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
    error: Option<io::Error>,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.hasher.update(&buf[..n]);
                self.read += n as u64;
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let kind = e.kind();
                self.error = Some(e);
                Err(io::Error::new(kind, "reading a layer file"))
            }
        }
    }
}
