//! Resolving a reference to a platform's manifest and fetching its config and layers into
//! the content store.
//!
//! Blobs are written through the content store's ingest, which verifies each against its
//! digest before it becomes visible: an interrupted or corrupted download leaves nothing
//! behind to be used. Layers download concurrently. A resolved tag is remembered
//! (in `registry::metadata`) and reused, without asking the registry, until a pull is forced.

use bud_frontend::image::Image;
use bud_frontend::reference::Reference;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};
use oci_client::RegistryOperation;
use oci_client::client::LayerDescriptor;
use tokio::sync::mpsc;

use super::client::{RegistryConfig, RegistryHost, TRANSFER_CONCURRENCY, oci_reference};
use super::manifest::{self, Descriptor, Document, Manifest, Platform};
use super::metadata::{Metadata, log_cache_error};
use super::{ByteProgress, ProgressTarget, RegistryError, retry};
use crate::content::{BlobWriter, ContentStore, Digest};

/// How to resolve a reference.
#[derive(Clone, Default)]
pub struct PullOptions {
    /// The platform whose manifest an index is narrowed to (the build's target platform).
    pub platform: Platform,
    /// Ask the registry even when the reference was resolved before (`--pull`).
    pub pull: bool,
    /// Where the bytes of each layer download are reported; `None` reports nothing.
    pub progress: Option<ProgressTarget>,
}

/// An image whose manifest, config and layer blobs are all in the content store.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The normalised reference, with `latest` when it named no tag or digest.
    pub reference: Reference,
    /// The platform's manifest (not the index a tag may point to).
    pub manifest_digest: Digest,
    /// That manifest, parsed.
    pub manifest: Manifest,
    /// The image config, parsed (unknown fields kept).
    pub config: Image,
    /// The config blob's digest: the image ID Docker would give the image.
    pub config_digest: Digest,
}

/// Pulls images from registries into a content store.
#[derive(Debug, Clone)]
pub struct Puller {
    store: ContentStore,
    config: RegistryConfig,
}

impl Puller {
    /// A puller storing into `store`, reaching registries as `config` says.
    pub fn new(store: ContentStore, config: RegistryConfig) -> Puller {
        Puller { store, config }
    }

    /// The content store the blobs are pulled into.
    pub fn store(&self) -> &ContentStore {
        &self.store
    }

    /// The image `reference` names for the platform: the remembered resolution when every
    /// blob is still stored (unless `opts.pull`), else the registry's.
    pub async fn pull(
        &self,
        reference: &Reference,
        opts: &PullOptions,
    ) -> Result<Pulled, RegistryError> {
        let reference = reference.clone().with_default_tag();
        if !opts.pull
            && let Some(pulled) = self.cached(&reference, &opts.platform)
        {
            return Ok(pulled);
        }
        self.fetch(&reference, opts).await
    }

    /// The remembered resolution of `reference`, when everything it needs is stored.
    pub fn cached(&self, reference: &Reference, platform: &Platform) -> Option<Pulled> {
        let reference = reference.clone().with_default_tag();
        let digest = Metadata::new(&self.store).resolved(&reference.to_string(), platform)?;
        let manifest_bytes = std::fs::read(self.store.path(&digest)).ok()?;
        let Ok(Document::Manifest(manifest)) = Document::parse(&manifest_bytes, None) else {
            return None;
        };
        let config_digest = Digest::parse(&manifest.config.digest).ok()?;
        let config =
            Image::from_json(&std::fs::read(self.store.path(&config_digest)).ok()?).ok()?;
        let all_stored = manifest
            .layers
            .iter()
            .all(|l| Digest::parse(&l.digest).is_ok_and(|d| self.store.exists(&d)));
        all_stored.then_some(Pulled {
            reference,
            manifest_digest: digest,
            manifest: *manifest,
            config,
            config_digest,
        })
    }

    async fn fetch(
        &self,
        reference: &Reference,
        opts: &PullOptions,
    ) -> Result<Pulled, RegistryError> {
        let name = reference.to_string();
        let host = self.config.connect(&reference.domain).await?;
        let oref = oci_reference(reference);
        host.authorize(&oref, RegistryOperation::Pull).await?;

        let (mut bytes, mut digest) = fetch_manifest(&host, &oref, &name).await?;
        let manifest = match parse(&bytes, &name)? {
            Document::Manifest(manifest) => *manifest,
            Document::Index(index) => {
                let Some(entry) = manifest::select(&index, &opts.platform) else {
                    return Err(RegistryError::NoMatchingPlatform {
                        reference: name,
                        platform: opts.platform.to_string(),
                        available: offered_platforms(&index.manifests),
                    });
                };
                let entry_ref = oref.clone_with_digest(entry.digest.clone());
                (bytes, digest) = fetch_manifest(&host, &entry_ref, &name).await?;
                match parse(&bytes, &name)? {
                    Document::Manifest(manifest) => *manifest,
                    Document::Index(_) => {
                        return Err(RegistryError::InvalidManifest {
                            reference: name,
                            message: format!("index entry {} is another index", entry.digest),
                        });
                    }
                }
            }
        };
        let manifest_digest = self.store.import(&bytes[..], Some(&digest))?;

        let config_digest = Digest::parse(&manifest.config.digest)?;
        fetch_blob(&host, &oref, &manifest.config, &self.store, None).await?;
        let config_bytes = std::fs::read(self.store.path(&config_digest)).map_err(
            RegistryError::io("reading", self.store.path(&config_digest)),
        )?;
        let config =
            Image::from_json(&config_bytes).map_err(|source| RegistryError::InvalidConfig {
                reference: name.clone(),
                source,
            })?;
        check_layers(&manifest, &config, &name)?;
        if !opts.platform.matches(&Platform::new(
            &config.os,
            &config.architecture,
            &config.variant,
        )) {
            tracing::warn!(
                "{name}: the image's platform ({}/{}) does not match the requested {}",
                config.os,
                config.architecture,
                opts.platform
            );
        }

        // The futures are made before they enter the stream: a `map` closure over borrowed
        // descriptors makes the future not general enough to be boxed as Send (rust#102211).
        let fetches: Vec<_> = manifest
            .layers
            .iter()
            .map(|layer| fetch_blob(&host, &oref, layer, &self.store, opts.progress.as_ref()))
            .collect();
        stream::iter(fetches)
            .buffer_unordered(TRANSFER_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;

        let metadata = Metadata::new(&self.store);
        let repository = reference.name();
        for (layer, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
            let (Ok(blob), Ok(diff_id)) = (Digest::parse(&layer.digest), Digest::parse(diff_id))
            else {
                continue;
            };
            log_cache_error(metadata.add_source(&blob, &repository));
            // A pushed image reuses the pulled blob instead of compressing the layer again.
            if let Some(compression) = compression_of(&layer.media_type) {
                log_cache_error(metadata.set_compressed(&diff_id, compression.into(), &blob));
                log_cache_error(metadata.set_origin(&diff_id, compression, &blob));
            }
        }
        log_cache_error(metadata.add_source(&config_digest, &repository));
        log_cache_error(metadata.set_resolved(&name, &opts.platform, &manifest_digest));

        Ok(Pulled {
            reference: reference.clone(),
            manifest_digest,
            manifest,
            config,
            config_digest,
        })
    }
}

/// The compression a layer blob of `media_type` is in, when it is one bud writes too.
pub(crate) fn compression_of(media_type: &str) -> Option<super::Compression> {
    match media_type {
        manifest::DOCKER_LAYER_GZIP | manifest::OCI_LAYER_GZIP => Some(super::Compression::Gzip),
        manifest::OCI_LAYER_ZSTD => Some(super::Compression::Zstd),
        _ => None,
    }
}

fn parse(bytes: &[u8], name: &str) -> Result<Document, RegistryError> {
    Document::parse(bytes, None).map_err(|source| RegistryError::ManifestDocument {
        reference: name.to_owned(),
        source,
    })
}

/// The manifest's layers must be the config's diff IDs, one for one, of known types.
fn check_layers(manifest: &Manifest, config: &Image, name: &str) -> Result<(), RegistryError> {
    if manifest.layers.len() != config.rootfs.diff_ids.len() {
        return Err(RegistryError::InvalidManifest {
            reference: name.to_owned(),
            message: format!(
                "{} layers but the config lists {} diff IDs",
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            ),
        });
    }
    if let Some(layer) = manifest
        .layers
        .iter()
        .find(|l| !manifest::is_layer(&l.media_type))
    {
        return Err(RegistryError::UnsupportedMediaType {
            reference: name.to_owned(),
            media_type: layer.media_type.clone(),
        });
    }
    Ok(())
}

fn offered_platforms(entries: &[Descriptor]) -> String {
    let offered: Vec<String> = entries
        .iter()
        .filter_map(|d| d.platform.as_ref().map(Platform::to_string))
        .collect();
    if offered.is_empty() {
        "none".to_owned()
    } else {
        offered.join(", ")
    }
}

pub(crate) async fn fetch_manifest(
    host: &RegistryHost,
    oref: &oci_client::Reference,
    name: &str,
) -> Result<(Bytes, Digest), RegistryError> {
    let (bytes, digest) = host
        .exchange(
            "pulling the manifest of",
            name,
            host.client
                .pull_manifest_raw(oref, host.auth(), manifest::ACCEPTED),
        )
        .await?;
    Ok((bytes, Digest::parse(&digest)?))
}

/// Downloads the blob `desc` names into the store unless it is there already, retrying a
/// download that failed on the way.
pub(crate) async fn fetch_blob(
    host: &RegistryHost,
    oref: &oci_client::Reference,
    desc: &Descriptor,
    store: &ContentStore,
    progress: Option<&ProgressTarget>,
) -> Result<(), RegistryError> {
    let digest = Digest::parse(&desc.digest)?;
    if store.exists(&digest) {
        return Ok(());
    }
    let what = format!("pulling {} of {}", desc.digest, oref.whole());
    retry::transfer(&what, || {
        download(host, oref, desc, &digest, store, progress, None)
    })
    .await
}

/// Downloads the blob `desc` names into the store as [`fetch_blob`] does, handing each piece
/// to `tee` as it arrives so that a reader can unpack the blob on the way. Tried once: a
/// reader cannot be handed the same pieces twice, so a failed download is the caller's to
/// start over (with [`fetch_blob`], which retries).
pub(crate) async fn stream_blob(
    host: &RegistryHost,
    oref: &oci_client::Reference,
    desc: &Descriptor,
    store: &ContentStore,
    tee: mpsc::Sender<Bytes>,
) -> Result<(), RegistryError> {
    let digest = Digest::parse(&desc.digest)?;
    download(host, oref, desc, &digest, store, None, Some(tee)).await
}

async fn download(
    host: &RegistryHost,
    oref: &oci_client::Reference,
    desc: &Descriptor,
    digest: &Digest,
    store: &ContentStore,
    progress: Option<&ProgressTarget>,
    mut tee: Option<mpsc::Sender<Bytes>>,
) -> Result<(), RegistryError> {
    let name = oref.whole();
    let urls = (!desc.urls.is_empty()).then(|| desc.urls.clone());
    let layer = LayerDescriptor {
        digest: &desc.digest,
        urls: &urls,
    };
    let mut body = host
        .exchange(
            "pulling a blob of",
            &name,
            host.client.pull_blob_stream(oref, &layer),
        )
        .await?;
    let mut progress = ByteProgress::new(progress, desc.digest.clone(), Some(desc.size));

    // The file is written by a blocking task fed through a small channel, so that disk
    // writes do not stall the runtime.
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let writer = store.writer()?;
    let write_task = tokio::task::spawn_blocking(move || write_all(writer, rx));
    let mut failure = None;
    loop {
        let chunk = match host.timeouts.next_piece(body.stream.next()).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(expired) => {
                failure = Some(host.timed_out(expired, "pulling a blob of", &name));
                break;
            }
        };
        match chunk {
            Ok(chunk) => {
                progress.advance(chunk.len() as u64);
                // A reader that stopped (it failed, or has all it wanted) gets no more; the
                // blob is still stored whole.
                if let Some(reader) = &tee
                    && reader.send(chunk.clone()).await.is_err()
                {
                    tee = None;
                }
                if tx.send(chunk).await.is_err() {
                    break;
                }
            }
            Err(e) => {
                failure = Some(RegistryError::DownloadFailed {
                    reference: name.clone(),
                    digest: desc.digest.clone(),
                    source: Box::new(e),
                });
                break;
            }
        }
    }
    drop(tx);
    let (writer, written) = write_task
        .await
        .map_err(|e| RegistryError::Task(e.to_string()))?;
    if let Some(e) = failure {
        // Dropping the writer removes the partial file.
        return Err(e);
    }
    written.map_err(|source| RegistryError::Blob {
        reference: name.clone(),
        digest: desc.digest.clone(),
        source,
    })?;
    writer.commit(Some(digest))?;
    progress.done();
    Ok(())
}

fn write_all(
    mut writer: BlobWriter,
    mut rx: mpsc::Receiver<Bytes>,
) -> (BlobWriter, std::io::Result<()>) {
    use std::io::Write;
    while let Some(chunk) = rx.blocking_recv() {
        if let Err(e) = writer.write_all(&chunk) {
            return (writer, Err(e));
        }
    }
    (writer, Ok(()))
}
