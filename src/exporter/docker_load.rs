//! Loading a built image into the Docker daemon (`POST /images/load`).
//!
//! The docker archive is generated while it is uploaded: a blocking task writes the tar into
//! a bounded channel that feeds the request body, so nothing is staged on disk and memory
//! stays at a few chunks. A layer built by this run goes in straight from its snapshot
//! directory: its tar is never written to bud's store for Docker's sake (dockerd stages
//! and extracts the archive anyway, so a stored copy would be a third write of the layer).
//!
//! Layers the daemon already holds are left out of the archive. Docker's API cannot be asked
//! for a chain ID directly, so the held chains are collected from the `RootFS.Layers` of
//! the images that most likely share them (the build's base images and the image a tag
//! names now) and, only when those do not hold every layer below the new ones, of every
//! local image (intermediate ones included): holding an image means holding each prefix of
//! its layer chain. A layer is left out only when its own chain ID, i.e. the layer
//! with the same layers below it, is held, which is exactly the check `docker load` makes
//! before reading a layer from the archive. Should the daemon still refuse the slim archive
//! (an image removed meanwhile, or a containerd image store that wants every blob), the
//! load is retried with every layer included.

use std::collections::HashSet;
use std::io::{self, Write};
use std::mem;
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bollard::query_parameters::{
    ImportImageOptionsBuilder, ListImagesOptionsBuilder, TagImageOptionsBuilder,
};
use bytes::Bytes;
use futures_util::{StreamExt, stream};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::docker_archive::{ArchiveLayer, ArchiveTar};
use super::{ExportError, Image, ImageName, LayerTar, LoadLayer, chain_ids, docker_archive};
use crate::content::Digest;

/// What a load did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The image ID as the daemon reports it (`sha256:…`).
    pub image_id: String,
    /// Layers whose contents were left out because the daemon held them.
    pub layers_skipped: usize,
    /// Bytes of archive uploaded (by the attempt that succeeded).
    pub archive_size: u64,
    /// The image's layers, as its config lists them.
    pub diff_ids: Vec<Digest>,
    /// The sha256 of the image config sent (Docker's image ID with its own image store).
    pub config_digest: Digest,
}

/// Upload chunk size: large enough to keep syscalls and channel hops rare.
const CHUNK: usize = 256 * 1024;
/// Concurrent image inspections while collecting held layers.
const INSPECT_CONCURRENCY: usize = 8;

/// Loads `image` into the daemon under every name in `tags`. The image's
/// `rootfs.diff_ids` are those of `layers`, filled in here for layers never tarred before.
/// `base_images` (names or IDs) are where the daemon most likely holds the layers below.
/// `pending`, a load the build opened early, carries the archive when one is needed.
pub async fn load(
    docker: &Docker,
    image: &Image,
    layers: &[LoadLayer],
    tags: &[String],
    base_images: &[String],
    pending: Option<PendingLoad>,
) -> Result<Loaded, ExportError> {
    let known: Option<Vec<Digest>> = layers.iter().map(|l| l.diff_id.clone()).collect();
    if let Some(diff_ids) = known {
        // A rebuild from cache gives an image Docker already holds (its ID is the config's
        // digest): naming it is all there is to do.
        let mut image = image.clone();
        image.rootfs.diff_ids = diff_ids.iter().map(Digest::to_string).collect();
        let config_digest = Digest::of(&image.to_json());
        let image_id = config_digest.to_string();
        if docker.inspect_image(&image_id).await.is_ok() {
            if let Some(pending) = pending
                && let Err(e) = pending.close().await
            {
                tracing::debug!(
                    "closing the unused docker load: {e}",
                    e = crate::error_chain::error_chain(&e)
                );
            }
            tag_all(docker, &image_id, tags).await?;
            return Ok(Loaded {
                image_id,
                layers_skipped: layers.len(),
                archive_size: 0,
                diff_ids,
                config_digest,
            });
        }
    }
    // Held chains can only be looked up below the first layer of unknown digest.
    let known_below: Vec<Digest> = layers.iter().map_while(|l| l.diff_id.clone()).collect();
    let related: Vec<String> = base_images.iter().chain(tags).cloned().collect();
    let skip = match layers_held(docker, &known_below, &related).await {
        Ok(skip) => skip,
        Err(e) => {
            // Skipping is an optimisation: without it the load still works.
            tracing::warn!(
                "cannot list the daemon's layers, sending all of them: {}",
                crate::error_chain::error_chain(&e)
            );
            HashSet::new()
        }
    };
    let mut pending = pending;
    if !skip.is_empty() {
        match upload(docker, image, layers, tags, &skip, pending.take()).await {
            Ok(loaded) => return Ok(loaded),
            // Only the daemon's refusal can be due to the missing layers.
            Err(e @ (ExportError::LoadRejected(_) | ExportError::Docker { .. })) => {
                tracing::info!(
                    "docker refused the archive without held layers ({}); retrying with all layers",
                    crate::error_chain::error_chain(&e)
                );
            }
            Err(e) => return Err(e),
        }
    }
    upload(docker, image, layers, tags, &HashSet::new(), pending).await
}

async fn tag_all(docker: &Docker, image_id: &str, tags: &[String]) -> Result<(), ExportError> {
    for tag in tags {
        let name = ImageName::parse(tag)?;
        let familiar = name.familiar();
        let repo = familiar
            .strip_suffix(&format!(":{}", name.tag))
            .unwrap_or(&familiar);
        let options = TagImageOptionsBuilder::default()
            .repo(repo)
            .tag(&name.tag)
            .build();
        docker
            .tag_image(image_id, Some(options))
            .await
            .map_err(|source| ExportError::Docker {
                action: "tagging the image",
                source,
            })?;
    }
    Ok(())
}

/// Of the bottom layers `diff_ids`, those whose files the daemon does not need: every
/// occurrence of the layer sits on a chain the daemon holds. The images named in `related`
/// (the build's base images, the image a tag names now) are asked first; every image in the
/// daemon only when they do not hold all of `diff_ids`.
pub async fn layers_held(
    docker: &Docker,
    diff_ids: &[Digest],
    related: &[String],
) -> Result<HashSet<Digest>, ExportError> {
    if diff_ids.is_empty() {
        return Ok(HashSet::new());
    }
    let wanted: HashSet<&Digest> = diff_ids.iter().collect();
    if !related.is_empty() {
        let ids: Vec<&str> = related.iter().map(String::as_str).collect();
        let skip = skippable(diff_ids, &held_chain_ids(docker, ids).await?);
        if skip.len() == wanted.len() {
            return Ok(skip);
        }
    }
    let options = ListImagesOptionsBuilder::new().all(true).build();
    let images = docker
        .list_images(Some(options))
        .await
        .map_err(|source| ExportError::Docker {
            action: "listing images",
            source,
        })?;
    let ids = images.iter().map(|summary| summary.id.as_str()).collect();
    Ok(skippable(diff_ids, &held_chain_ids(docker, ids).await?))
}

fn skippable(diff_ids: &[Digest], held: &HashSet<Digest>) -> HashSet<Digest> {
    let mut needed = HashSet::new();
    let mut skippable = HashSet::new();
    for (diff_id, chain_id) in diff_ids.iter().zip(chain_ids(diff_ids)) {
        if held.contains(&chain_id) {
            skippable.insert(diff_id.clone());
        } else {
            needed.insert(diff_id.clone());
        }
    }
    skippable.retain(|d| !needed.contains(d));
    skippable
}

/// Chain IDs of every layer stack the images `ids` (IDs or names) use; images the daemon
/// does not have are passed over.
async fn held_chain_ids(docker: &Docker, ids: Vec<&str>) -> Result<HashSet<Digest>, ExportError> {
    let inspections: Vec<_> = stream::iter(ids)
        .map(|id| async move { docker.inspect_image(id).await })
        .buffer_unordered(INSPECT_CONCURRENCY)
        .collect()
        .await;
    let mut held = HashSet::new();
    for inspection in inspections {
        let inspect = match inspection {
            Ok(inspect) => inspect,
            // Not there, removed since it was listed, or a name Docker cannot parse.
            Err(BollardError::DockerResponseServerError {
                status_code: 400 | 404,
                ..
            }) => continue,
            Err(source) => {
                return Err(ExportError::Docker {
                    action: "inspecting an image",
                    source,
                });
            }
        };
        let layers = inspect.root_fs.and_then(|r| r.layers).unwrap_or_default();
        // An unparsable diff ID ends what can be trusted of that chain.
        let diff_ids: Vec<Digest> = layers.iter().map_while(|l| Digest::parse(l).ok()).collect();
        held.extend(chain_ids(&diff_ids));
    }
    Ok(held)
}

/// One `POST /images/load` of an archive generated on the fly, on `pending` when the build
/// opened one.
async fn upload(
    docker: &Docker,
    image: &Image,
    layers: &[LoadLayer],
    tags: &[String],
    skip: &HashSet<Digest>,
    pending: Option<PendingLoad>,
) -> Result<Loaded, ExportError> {
    let request = match pending.and_then(PendingLoad::take) {
        Some(request) => request,
        None => LoadRequest::start(docker),
    };
    let stop = CancellationToken::new();
    let writer = {
        let (image, layers, tags, skip) =
            (image.clone(), layers.to_vec(), tags.to_vec(), skip.clone());
        let mut out = ChannelWriter::new(request.tx, Handle::current(), stop.clone());
        tokio::task::spawn_blocking(move || {
            let archived: Vec<ArchiveLayer<'_>> = layers
                .iter()
                .map(|l| ArchiveLayer {
                    diff_id: l.diff_id.as_ref(),
                    tar: match &l.tar {
                        _ if l.diff_id.as_ref().is_some_and(|d| skip.contains(d)) => {
                            ArchiveTar::Held
                        }
                        LayerTar::Stored(path) => ArchiveTar::Stored(path),
                        LayerTar::Directory(dir) => ArchiveTar::Directory(dir),
                    },
                })
                .collect();
            let written = docker_archive::write_layers(&mut out, &image, &archived, &tags);
            match written {
                Ok(written) => Ok((out.sent, written)),
                Err(e) => {
                    // Abort the request body so that the daemon does not load a cut archive.
                    let _ = out.send(Err(io::Error::other(crate::error_chain::error_chain(&e))));
                    Err(e)
                }
            }
        })
    };
    let answer = request.answer.await;
    // The daemon has answered: a writer still sending (the daemon gave up early) must stop
    // rather than wait for a reader that may never come.
    stop.cancel();
    let written = writer
        .await
        .map_err(|e| ExportError::Write(io::Error::other(e)))?;
    let answer = answer.map_err(|e| ExportError::Write(io::Error::other(e)))?;
    let ((archive_size, written), report) = match (written, answer) {
        // The daemon stopped reading because it failed: its answer says why.
        (Err(ExportError::Write(e)), Err(refused)) if e.kind() == io::ErrorKind::BrokenPipe => {
            return Err(refused);
        }
        // Otherwise the writer's error is the cause when both failed: it cut the archive.
        (written, answer) => (written?, answer?),
    };
    let image_id = match (report.image_id, report.names.first()) {
        (Some(id), _) => id,
        (None, Some(name)) => docker
            .inspect_image(name)
            .await
            .map_err(|source| ExportError::Docker {
                action: "inspecting the loaded image",
                source,
            })?
            .id
            .ok_or(ExportError::NoImageReported)?,
        (None, None) => return Err(ExportError::NoImageReported),
    };
    Ok(Loaded {
        image_id,
        layers_skipped: written.diff_ids.iter().filter(|d| skip.contains(d)).count(),
        archive_size,
        diff_ids: written.diff_ids,
        config_digest: written.image_id,
    })
}

/// What loading a whole archive did: the names it tagged, and the image ID Docker reported
/// when it tagged none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadedArchive {
    /// The image names Docker reported tagging (`Loaded image: NAME`), in its order.
    pub names: Vec<String>,
    /// The ID Docker reported for an archive whose image it tagged with no name.
    pub image_id: Option<String>,
}

/// Loads the archive at `path` as it is (an OCI layout with an image index, for Docker's
/// containerd image store, which keeps every platform of it under one tag), streamed into
/// `POST /images/load`.
pub async fn load_archive(
    docker: &Docker,
    path: &std::path::Path,
) -> Result<LoadedArchive, ExportError> {
    let request = LoadRequest::start(docker);
    let stop = CancellationToken::new();
    let writer = {
        let mut out = ChannelWriter::new(request.tx, Handle::current(), stop.clone());
        let path = path.to_path_buf();
        tokio::task::spawn_blocking(move || {
            let copied = std::fs::File::open(&path)
                .and_then(|mut file| io::copy(&mut file, &mut out))
                .and_then(|_| out.flush());
            if let Err(e) = &copied {
                // Abort the request body so that the daemon does not load a cut archive.
                let _ = out.send(Err(io::Error::new(e.kind(), e.to_string())));
            }
            copied
        })
    };
    let answer = request.answer.await;
    stop.cancel();
    let copied = writer
        .await
        .map_err(|e| ExportError::Write(io::Error::other(e)))?;
    let answer = answer.map_err(|e| ExportError::Write(io::Error::other(e)))?;
    let report = match (copied, answer) {
        (Err(e), Err(refused)) if e.kind() == io::ErrorKind::BrokenPipe => return Err(refused),
        (copied, answer) => {
            copied.map_err(ExportError::Write)?;
            answer?
        }
    };
    if report.names.is_empty() && report.image_id.is_none() {
        return Err(ExportError::NoImageReported);
    }
    Ok(LoadedArchive {
        names: report.names,
        image_id: report.image_id,
    })
}

type BodyChunk = Result<Bytes, io::Error>;

/// A `POST /images/load` in flight: the sender of its body, and the task that reads the
/// daemon's answer.
struct LoadRequest {
    tx: mpsc::Sender<BodyChunk>,
    answer: JoinHandle<Result<LoadReport, ExportError>>,
}

impl LoadRequest {
    fn start(docker: &Docker) -> Self {
        let (tx, rx) = mpsc::channel::<BodyChunk>(4);
        let body = stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (chunk, rx))
        });
        let docker = docker.clone();
        let answer = tokio::spawn(async move {
            let options = ImportImageOptionsBuilder::new().quiet(true).build();
            let mut responses = docker.import_image_stream(options, body, None);
            let mut report = LoadReport::default();
            while let Some(response) = responses.next().await {
                match response {
                    Ok(info) => {
                        if let Some(text) = info.stream.as_deref() {
                            report.read(text);
                        }
                    }
                    Err(BollardError::DockerStreamError { error }) => {
                        return Err(ExportError::LoadRejected(error));
                    }
                    Err(source) => {
                        return Err(ExportError::Docker {
                            action: "loading the image",
                            source,
                        });
                    }
                }
            }
            Ok(report)
        });
        LoadRequest { tx, answer }
    }
}

/// A load opened while the image is still being built.
///
/// dockerd unpacks an uploaded archive in a helper process it starts once the first bytes
/// have come (it reads them to tell whether the archive is compressed), and only then.
/// Opening the request as soon as a build step runs, with a first block every tar reader
/// skips (a pax global header without records), has that start-up done while bud builds:
/// about 30 ms of every load here. A request that ends up unused is closed with an archive
/// that lists no image, which dockerd answers with success, not an error in its log.
pub struct PendingLoad {
    request: Option<LoadRequest>,
}

/// How long closing an unused request waits for the daemon's answer.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

impl PendingLoad {
    /// Starts the `POST /images/load` request and sends its first (skipped) block; failures
    /// surface when the request is used or closed, not here.
    pub fn open(docker: &Docker) -> Self {
        let request = LoadRequest::start(docker);
        // The channel is empty: the block goes in without waiting.
        let _ = request.tx.try_send(Ok(skipped_block()));
        PendingLoad {
            request: Some(request),
        }
    }

    fn take(mut self) -> Option<LoadRequest> {
        self.request.take()
    }

    /// Ends the request without loading anything, and waits for the daemon to answer.
    pub async fn close(mut self) -> Result<(), ExportError> {
        let Some(request) = self.request.take() else {
            return Ok(());
        };
        let LoadRequest { tx, answer } = request;
        if tx.send(Ok(nothing_to_load())).await.is_err() {
            // The request already failed; its answer says why.
            tracing::debug!("the unused docker load ended before it was closed");
        }
        drop(tx);
        match tokio::time::timeout(CLOSE_WAIT, answer).await {
            Ok(Ok(report)) => report.map(drop),
            Ok(Err(e)) => Err(ExportError::Write(io::Error::other(e))),
            Err(_) => Err(ExportError::Write(io::Error::new(
                io::ErrorKind::TimedOut,
                "the docker daemon did not answer the closing of an unused load",
            ))),
        }
    }
}

impl Drop for PendingLoad {
    fn drop(&mut self) {
        // Not used, not closed (an error path): end it as an archive that loads nothing all
        // the same, rather than as a cut one. Only the skipped block was sent, so there is
        // room in the channel.
        if let Some(request) = self.request.take() {
            let _ = request.tx.try_send(Ok(nothing_to_load()));
        }
    }
}

/// A tar block every reader passes over: a pax global header with no records.
fn skipped_block() -> Bytes {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::XGlobalHeader);
    // Set through the path setter so that the checksum below covers it.
    let _ = header.set_path("pax_global_header");
    header.set_mode(0o644);
    header.set_size(0);
    header.set_mtime(0);
    header.set_cksum();
    Bytes::copy_from_slice(header.as_bytes())
}

/// The rest of an archive that loads nothing: a `manifest.json` listing no image.
fn nothing_to_load() -> Bytes {
    let mut tar = super::tarball::Tarball::new(Vec::new());
    let archive = tar
        .bytes("manifest.json", b"[]")
        .and_then(|()| tar.finish());
    // Writing to memory cannot fail.
    Bytes::from(archive.unwrap_or_default())
}

/// What the daemon said it loaded.
#[derive(Debug, Default)]
struct LoadReport {
    image_id: Option<String>,
    names: Vec<String>,
}

impl LoadReport {
    /// Reads `Loaded image: NAME` (one per tag) and `Loaded image ID: ID` (untagged) lines.
    fn read(&mut self, text: &str) {
        for line in text.lines() {
            if let Some(id) = line.strip_prefix("Loaded image ID: ") {
                self.image_id = Some(id.trim().to_owned());
            } else if let Some(name) = line.strip_prefix("Loaded image: ") {
                self.names.push(name.trim().to_owned());
            }
        }
    }
}

/// A `Write`, used from a blocking thread, that hands fixed-size chunks to the upload's body
/// stream.
struct ChannelWriter {
    tx: mpsc::Sender<BodyChunk>,
    runtime: Handle,
    stop: CancellationToken,
    buf: Vec<u8>,
    sent: u64,
}

impl ChannelWriter {
    fn new(tx: mpsc::Sender<BodyChunk>, runtime: Handle, stop: CancellationToken) -> Self {
        ChannelWriter {
            tx,
            runtime,
            stop,
            buf: Vec::with_capacity(CHUNK),
            sent: 0,
        }
    }

    /// Sends one item, unless the receiver is gone or the upload was stopped.
    fn send(&self, item: BodyChunk) -> io::Result<()> {
        let sent = self.runtime.block_on(async {
            tokio::select! {
                sent = self.tx.send(item) => sent.is_ok(),
                () = self.stop.cancelled() => false,
            }
        });
        if sent {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the docker daemon stopped reading the archive",
            ))
        }
    }

    fn send_buffer(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        let len = chunk.len() as u64;
        self.send(Ok(Bytes::from(chunk)))?;
        self.sent += len;
        Ok(())
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send_buffer()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buffer()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_load_messages() {
        let mut report = LoadReport::default();
        report.read("Loaded image: app:latest\n");
        report.read("Loaded image: registry:5000/app:v1\n");
        assert_eq!(report.names, ["app:latest", "registry:5000/app:v1"]);
        assert_eq!(report.image_id, None);
        report.read("Loaded image ID: sha256:abc\n");
        assert_eq!(report.image_id.as_deref(), Some("sha256:abc"));
    }
}
