//! A layer compressed while it is uploaded: the first push of a layer costs about the longer
//! of compression and upload instead of their sum.
//!
//! A blocking task compresses the tar into the content store's writer and hands the same
//! bytes, in pieces, through a bounded channel to a chunked upload, which learns the digest
//! as it sends. The stored blob is committed only once the registry accepted the upload, and
//! only under the digest the registry verified; on any failure the writer is dropped, which
//! removes the partial file.

use std::io::{self, Write};

use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, stream};
use oci_client::errors::OciDistributionError;
use tokio::sync::mpsc;

use super::Destination;
use crate::content::{BlobWriter, ContentStore, Digest};
use crate::exporter::Layer;
use crate::registry::compress::{LayerCompression, compress_file};
use crate::registry::metadata::{Metadata, log_cache_error};
use crate::registry::{ByteProgress, RegistryError};
use crate::timeouts::Upload;

/// Bytes per upload request. oci-client sends every stream item as its own PATCH (split at
/// its 4 MiB maximum, never merged), so pieces of exactly that size keep the requests few.
const UPLOAD_PIECE: usize = 4 << 20;
/// Pieces waiting between the compressor and the upload: what a layer holds in memory.
const QUEUED_PIECES: usize = 2;

/// What the compressor sends to the upload. The stream ends cleanly only on `End`: a
/// compressor that stopped early (failed or panicked) must fail the upload rather than let
/// the registry commit a truncated blob.
enum Piece {
    Data(Bytes),
    End,
}

/// Why the compressor stopped.
enum Stopped {
    /// Reading or compressing the layer failed: the error to report.
    Failed(RegistryError),
    /// The upload stopped taking data; its own error is the one to report.
    UploadGone,
}

/// Compresses `layer` with `opts.compression` while uploading it to `destination`; returns
/// the stored blob's digest and size.
pub(super) async fn compress_and_upload(
    destination: &Destination,
    layer: &Layer,
    opts: &super::PushOptions,
) -> Result<(Digest, u64), RegistryError> {
    let (sender, receiver) = mpsc::channel(QUEUED_PIECES);
    let store = opts.store.clone();
    let tar = layer.tar.clone();
    let compression = opts.compression;
    let compressing =
        tokio::task::spawn_blocking(move || compress(&store, &tar, compression, sender));

    // Reported under the diff ID: the blob's digest is known only once it is all sent.
    let id = layer.diff_id.to_string();
    let mut progress = ByteProgress::new(opts.progress.as_ref(), id.clone(), None);
    let body = stream::unfold(Some(receiver), |receiver| async move {
        let mut receiver = receiver?;
        match receiver.recv().await {
            Some(Piece::Data(bytes)) => Some((Ok(bytes), Some(receiver))),
            Some(Piece::End) => None,
            None => Some((
                Err(OciDistributionError::GenericError(Some(
                    "the layer's compression stopped".to_owned(),
                ))),
                None,
            )),
        }
    })
    .inspect(move |piece| {
        if let Ok(bytes) = piece {
            progress.advance(bytes.len() as u64);
        }
    });
    let host = &destination.host;
    let upload = Upload::new(host.timeouts);
    let uploaded = match upload
        .run(
            host.client
                .push_blob_stream_chunked(&destination.target, upload.body(Box::pin(body))),
        )
        .await
    {
        Ok(uploaded) => uploaded,
        Err(expired) => {
            // Dropping the upload closes the channel: the compressor stops and its writer,
            // dropped, removes the partial blob.
            let _ = compressing.await;
            return Err(host.timed_out(expired, "pushing a blob of", &destination.target.whole()));
        }
    };
    // The upload has dropped its end of the channel by now, so the compressor cannot block.
    let compressed = compressing
        .await
        .map_err(|e| RegistryError::Task(e.to_string()))?;
    let (response, writer) = match (uploaded, compressed) {
        (_, Err(Stopped::Failed(e))) => return Err(e),
        (Err(e), _) => {
            return Err(host.error(e, "pushing a blob of", &destination.target.whole()));
        }
        (Ok(_), Err(Stopped::UploadGone)) => {
            return Err(RegistryError::Task(
                "the upload ended before the layer's compression".to_owned(),
            ));
        }
        (Ok(response), Ok(writer)) => (response, writer),
    };

    let uploaded = Digest::parse(&response.blob_digest)?;
    let size = writer.size();
    // Committed under the digest the registry verified: a mismatch is an error, and the
    // partial file goes with the writer.
    let digest = tokio::task::spawn_blocking(move || writer.commit(Some(&uploaded)))
        .await
        .map_err(|e| RegistryError::Task(e.to_string()))??;
    let metadata = Metadata::new(&opts.store);
    log_cache_error(metadata.set_compressed(&layer.diff_id, compression, &digest));
    log_cache_error(metadata.add_source(&digest, &destination.repository));
    if let Some(progress) = &opts.progress {
        progress.status(&id, size, Some(size), true);
    }
    Ok((digest, size))
}

/// The blocking half: compresses the tar into a store writer and the channel. Returns the
/// writer uncommitted, for the upload's digest to settle.
fn compress(
    store: &ContentStore,
    tar: &std::path::Path,
    compression: LayerCompression,
    upload: mpsc::Sender<Piece>,
) -> Result<BlobWriter, Stopped> {
    let blob = store.writer().map_err(|e| Stopped::Failed(e.into()))?;
    let mut tee = Tee {
        blob,
        upload,
        pending: BytesMut::with_capacity(UPLOAD_PIECE),
        upload_gone: false,
    };
    if let Err(e) = compress_file(tar, compression, &mut tee) {
        return Err(if tee.upload_gone {
            Stopped::UploadGone
        } else {
            Stopped::Failed(e)
        });
    }
    let rest = tee.pending.split().freeze();
    if (!rest.is_empty() && tee.upload.blocking_send(Piece::Data(rest)).is_err())
        || tee.upload.blocking_send(Piece::End).is_err()
    {
        return Err(Stopped::UploadGone);
    }
    Ok(tee.blob)
}

/// Writes to the store's writer and, in `UPLOAD_PIECE` pieces, to the upload.
struct Tee {
    blob: BlobWriter,
    upload: mpsc::Sender<Piece>,
    pending: BytesMut,
    upload_gone: bool,
}

impl Write for Tee {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.blob.write(buf)?;
        self.pending.extend_from_slice(&buf[..n]);
        while self.pending.len() >= UPLOAD_PIECE {
            let piece = self.pending.split_to(UPLOAD_PIECE).freeze();
            if self.upload.blocking_send(Piece::Data(piece)).is_err() {
                self.upload_gone = true;
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the upload stopped",
                ));
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.blob.flush()
    }
}
