//! A layer blob to files in one pass: decompressed, its tar stored and its files extracted
//! while it is read, so that a download, its inflation and the files' creation overlap
//! instead of following one another. Nothing is trusted on the way: the caller commits the
//! extracted files only once the blob's digest and the tar's diff ID have been verified.

use std::io::{self, BufRead, Read, Write};
use std::path::Path;

use anyhow::Context as _;
use bytes::{Buf as _, Bytes};
use tokio::sync::mpsc;

use crate::content::{BlobWriter, ContentStore};

/// The layer in `blob` (gzip, zstd or plain tar, told by its first bytes) extracted into
/// `dir`, and its tar written to `content` on the way, left uncommitted: the caller verifies
/// it against the layer's diff ID. Blocking.
pub(super) fn unpack(
    blob: impl BufRead + Send,
    content: &ContentStore,
    dir: &Path,
) -> anyhow::Result<BlobWriter> {
    let tar = content.writer()?;
    let mut tee = Tee {
        inner: decoder(blob)?,
        copy: tar,
    };
    crate::snapshot::apply::extract_layer(&mut tee, dir)?;
    // The archive ends at its end-of-archive blocks; what follows (padding, a gzip
    // trailer) is part of the tar, and so of its diff ID, all the same.
    io::copy(&mut tee, &mut io::sink()).context("reading the layer to its end")?;
    Ok(tee.copy)
}

/// The tar in `blob`, decompressed when its first bytes say it is gzip or zstd.
pub(super) fn decoder<'a>(
    mut blob: impl BufRead + Send + 'a,
) -> io::Result<Box<dyn Read + Send + 'a>> {
    // Read in full: the first piece of a download can be shorter than a magic number.
    let mut head = Vec::with_capacity(4);
    (&mut blob).take(4).read_to_end(&mut head)?;
    let (gzip, zstd) = (
        head.starts_with(&[0x1f, 0x8b]),
        head == [0x28, 0xb5, 0x2f, 0xfd],
    );
    let blob = Read::chain(io::Cursor::new(head), blob);
    Ok(if gzip {
        Box::new(flate2::bufread::MultiGzDecoder::new(blob))
    } else if zstd {
        Box::new(zstd::Decoder::with_buffer(blob)?)
    } else {
        Box::new(blob)
    })
}

/// Reads through `inner`, writing everything read to `copy`.
struct Tee<R, W> {
    inner: R,
    copy: W,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// The pieces of a download, read as they arrive; the end of the channel is the end of the
/// blob (whether the download completed is for its sender to say). Blocking.
pub(super) struct ChannelReader {
    pieces: mpsc::Receiver<Bytes>,
    piece: Bytes,
}

impl ChannelReader {
    pub(super) fn new(pieces: mpsc::Receiver<Bytes>) -> ChannelReader {
        ChannelReader {
            pieces,
            piece: Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for ChannelReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.piece.is_empty() {
            match self.pieces.blocking_recv() {
                Some(piece) => self.piece = piece,
                None => break,
            }
        }
        Ok(&self.piece)
    }

    fn consume(&mut self, amount: usize) {
        self.piece.advance(amount.min(self.piece.len()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::content::Digest;

    fn layer_tar() -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_mode(0o644);
        header.set_mtime(1_000_000);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, "dir/file", &b"hello"[..])
            .unwrap();
        builder.into_inner().unwrap()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    /// Sends `bytes` in pieces of `size` through a channel, as a download does.
    fn pieces(bytes: Vec<u8>, size: usize) -> ChannelReader {
        let (tx, rx) = mpsc::channel(bytes.len() / size + 1);
        for piece in bytes.chunks(size) {
            tx.try_send(Bytes::copy_from_slice(piece)).unwrap();
        }
        ChannelReader::new(rx)
    }

    #[test]
    fn a_gzip_blob_in_small_pieces_is_extracted_and_its_whole_tar_stored() {
        let (store_dir, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let content = ContentStore::new(store_dir.path()).unwrap();
        let tar = layer_tar();
        // Pieces of 3 bytes: shorter than the gzip magic number and than any tar block.
        let stored = unpack(pieces(gzip(&tar), 3), &content, dir.path()).unwrap();
        assert_eq!(stored.commit(None).unwrap(), Digest::of(&tar));
        assert_eq!(
            std::fs::read(dir.path().join("dir/file")).unwrap(),
            b"hello"
        );
    }

    #[test]
    fn a_plain_tar_is_read_as_it_is() {
        let (store_dir, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let content = ContentStore::new(store_dir.path()).unwrap();
        let tar = layer_tar();
        let stored = unpack(pieces(tar.clone(), 1000), &content, dir.path()).unwrap();
        assert_eq!(stored.commit(None).unwrap(), Digest::of(&tar));
    }

    #[test]
    fn a_blob_cut_short_is_an_error() {
        let (store_dir, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let content = ContentStore::new(store_dir.path()).unwrap();
        let blob = gzip(&layer_tar());
        let cut = blob[..blob.len() / 2].to_vec();
        assert!(unpack(pieces(cut, 64), &content, dir.path()).is_err());
    }
}
