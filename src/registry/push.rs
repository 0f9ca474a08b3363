//! Pushing a built image: layer blobs, config, manifest, then every tag.
//!
//! Per repository, each blob goes up at most once: a blob the repository already has is
//! skipped (HEAD), one another repository of the same registry holds is mounted from there,
//! and only the rest is uploaded, several at a time, streamed from the content store.

use std::collections::BTreeMap;

use bud_frontend::reference::Reference;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};
use oci_client::RegistryOperation;
use oci_client::errors::OciDistributionError;
use tokio_util::io::ReaderStream;

use super::client::{RegistryConfig, RegistryHost, TRANSFER_CONCURRENCY};
use super::compress::{Compression, LayerCompression, known_compressed_layer};
use super::manifest::{self, Descriptor, Manifest};
use super::metadata::{Metadata, log_cache_error};
use super::{ByteProgress, ProgressTarget, RegistryError, retry};
use crate::content::{ContentStore, Digest};
use crate::exporter::{Image, Layer};
use crate::timeouts::Upload;

pub(super) mod index;
mod pipeline;

/// Which manifest schema to push.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ManifestFormat {
    /// Docker's v2 schema 2, what `docker push` writes (the default, like BuildKit's).
    #[default]
    Docker,
    /// The OCI image manifest (`oci-mediatypes=true`). zstd and eStargz layers always use
    /// it: Docker's schema has no media type for zstd, and BuildKit puts eStargz's TOC
    /// annotations on OCI descriptors only.
    Oci,
}

/// How to push.
#[derive(Clone)]
pub struct PushOptions {
    /// Holds the config and compressed layers, and what was learnt about them.
    pub store: ContentStore,
    /// How registries are reached: plain HTTP, credentials, timeouts.
    pub registry: RegistryConfig,
    /// How the layers are compressed (`compression=`, `compression-level=`,
    /// `force-compression=`).
    pub compression: LayerCompression,
    /// Docker or OCI manifests (`oci-mediatypes=`).
    pub format: ManifestFormat,
    /// Reach the tags' registries over plain HTTP (`registry.insecure=true`).
    pub insecure: bool,
    /// Where the bytes of each upload are reported; `None` reports nothing.
    pub progress: Option<ProgressTarget>,
    /// Written into the manifest (`--annotation`, `annotation.*`).
    pub manifest_annotations: BTreeMap<String, String>,
    /// Written into the image index of a multi-platform push (`index:` annotations).
    pub index_annotations: BTreeMap<String, String>,
    /// Push the manifest under its digest only, not the tags: it is one platform's, and
    /// the tags go to the index that lists it (`index::push_index`).
    pub untagged: bool,
    /// Layers whose blobs are in a `--cache-from` rather than the store: mounted or copied
    /// from there.
    pub lazy_layers: super::LazyLayers,
}

impl PushOptions {
    /// A push of blobs from `store` with BuildKit's defaults: gzip, Docker manifests,
    /// tagged, registries reached as the default `RegistryConfig` says.
    pub fn new(store: ContentStore) -> PushOptions {
        PushOptions {
            store,
            registry: RegistryConfig::default(),
            compression: LayerCompression::default(),
            format: ManifestFormat::default(),
            insecure: false,
            progress: None,
            manifest_annotations: BTreeMap::new(),
            index_annotations: BTreeMap::new(),
            untagged: false,
            lazy_layers: Vec::new(),
        }
    }
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushResult {
    /// The manifest's digest: `name@digest` pulls exactly this image.
    pub manifest_digest: Digest,
    /// The manifest's size in bytes.
    pub size: u64,
    /// The manifest's media type (Docker's or OCI's), for the index entry that lists it.
    pub media_type: String,
    /// The manifest's layer descriptors, in order.
    pub layers: Vec<serde_json::Value>,
    /// Blobs uploaded, over all repositories.
    pub uploaded: usize,
    /// Blobs mounted from another repository of the same registry instead of uploaded.
    pub mounted: usize,
    /// Blobs skipped because the repository already had them.
    pub existing: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transfer {
    Existing,
    Mounted,
    Uploaded,
}

/// Pushes `image` with `layers` (in `rootfs.diff_ids` order) under every tag in `tags`.
///
/// A layer whose compressed blob is not stored yet is compressed while it is uploaded to the
/// first repository (as `docker push` does), and stored on the way for later pushes.
pub async fn push(
    image: &Image,
    layers: &[Layer],
    tags: &[String],
    opts: PushOptions,
) -> Result<PushResult, RegistryError> {
    check_layers(image, layers)?;
    let converted;
    let (image, layers) = if opts.compression.kind == Compression::Estargz {
        // An eStargz layer's diff ID is its own (the tar with the TOC after it), so the
        // config changes with the blobs.
        let store = opts.store.clone();
        let (image, layers, config) = (image.clone(), layers.to_vec(), opts.compression);
        converted = tokio::task::spawn_blocking(move || {
            super::estargz::convert(&store, &image, &layers, config)
        })
        .await
        .map_err(|e| RegistryError::Task(e.to_string()))??;
        (&converted.0, &converted.1[..])
    } else {
        (image, layers)
    };
    let repositories: Vec<(String, Vec<Reference>)> =
        group_by_repository(tags)?.into_iter().collect();
    let store = &opts.store;

    let (first_repository, first_references) = repositories.first().ok_or(RegistryError::NoTags)?;
    let first = Destination::open(&opts, first_repository, first_references).await?;
    announce(&opts, PUSHING_LAYERS, false);
    // A layer given twice (the same diff ID) is compressed and uploaded once: `slots` maps
    // each layer to its entry in `distinct`.
    let mut distinct: Vec<&Layer> = Vec::new();
    let slots: Vec<usize> = layers
        .iter()
        .map(|layer| {
            distinct
                .iter()
                .position(|l| l.diff_id == layer.diff_id)
                .unwrap_or_else(|| {
                    distinct.push(layer);
                    distinct.len() - 1
                })
        })
        .collect();
    // Futures made first, as in pull (rust#102211).
    let blobs: Vec<_> = distinct
        .iter()
        .map(|layer| layer_blob(&first, layer, &opts))
        .collect();
    let blobs = stream::iter(blobs)
        .buffered(2)
        .try_collect::<Vec<LayerBlob>>()
        .await?;

    let config_bytes = image.to_json();
    let config_digest = store.put(&config_bytes)?;
    // A base image layer may keep another compression than the one asked for.
    let oci = opts.format == ManifestFormat::Oci
        || blobs
            .iter()
            .any(|blob| blob.compression.docker_media_type().is_none());
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(
            if oci {
                manifest::OCI_MANIFEST
            } else {
                manifest::DOCKER_MANIFEST
            }
            .to_owned(),
        ),
        config: descriptor(
            if oci {
                manifest::OCI_CONFIG
            } else {
                manifest::DOCKER_CONFIG
            },
            &config_digest,
            config_bytes.len() as u64,
        ),
        layers: slots
            .iter()
            .map(|&slot| {
                let blob = &blobs[slot];
                let media_type = match blob.compression.docker_media_type() {
                    Some(docker) if !oci => docker,
                    _ => blob.compression.oci_media_type(),
                };
                Descriptor {
                    annotations: blob.annotations.clone(),
                    ..descriptor(media_type, &blob.digest, blob.size)
                }
            })
            .collect(),
        annotations: opts.manifest_annotations.clone(),
    };
    let manifest_bytes =
        serde_json::to_vec(&manifest).map_err(|e| RegistryError::InvalidManifest {
            reference: tags.join(", "),
            message: e.to_string(),
        })?;
    let manifest_digest = store.put(&manifest_bytes)?;
    let media_type = manifest.media_type.clone().unwrap_or_default();

    let pipelined: Vec<String> = blobs
        .iter()
        .filter(|blob| blob.uploaded)
        .map(|blob| blob.digest.to_string())
        .collect();
    let mut result = PushResult {
        manifest_digest,
        size: manifest_bytes.len() as u64,
        media_type,
        layers: manifest
            .layers
            .iter()
            .map(|d| serde_json::to_value(d).unwrap_or_default())
            .collect(),
        uploaded: pipelined.len(),
        mounted: 0,
        existing: 0,
    };
    let all_blobs: Vec<&Descriptor> = manifest.layers.iter().chain([&manifest.config]).collect();
    let manifest_bytes = Bytes::from(manifest_bytes);
    let mut first = Some(first);
    for (repository, references) in &repositories {
        let (destination, blobs) = match first.take() {
            Some(first) => {
                let rest: Vec<&Descriptor> = all_blobs
                    .iter()
                    .copied()
                    .filter(|blob| !pipelined.contains(&blob.digest))
                    .collect();
                (first, rest)
            }
            None => {
                announce(&opts, PUSHING_LAYERS, false);
                (
                    Destination::open(&opts, repository, references).await?,
                    all_blobs.clone(),
                )
            }
        };
        // Futures made first, as in pull (rust#102211).
        let ensures: Vec<_> = blobs
            .iter()
            .map(|blob| ensure_blob(&destination, blob, &opts))
            .collect();
        let transfers = stream::iter(ensures)
            .buffer_unordered(TRANSFER_CONCURRENCY)
            .try_collect::<Vec<Transfer>>()
            .await?;
        for transfer in transfers {
            match transfer {
                Transfer::Existing => result.existing += 1,
                Transfer::Mounted => result.mounted += 1,
                Transfer::Uploaded => result.uploaded += 1,
            }
        }
        announce(&opts, PUSHING_LAYERS, true);
        let content_type = http::HeaderValue::from_str(&result.media_type)
            .map_err(|e| RegistryError::Task(e.to_string()))?;
        let targets = if opts.untagged {
            &references[..1]
        } else {
            &references[..]
        };
        for reference in targets {
            let tagged = if opts.untagged {
                oci_client::Reference::with_digest(
                    reference.domain.clone(),
                    reference.path.clone(),
                    result.manifest_digest.to_string(),
                )
            } else {
                oci_reference(reference, reference.tag.as_deref())
            };
            let host = &destination.host;
            let status = format!(
                "pushing manifest for {reference}@{}",
                result.manifest_digest
            );
            announce(&opts, &status, false);
            host.exchange(
                "pushing the manifest of",
                &reference.to_string(),
                host.client.push_manifest_raw(
                    &tagged,
                    manifest_bytes.clone(),
                    content_type.clone(),
                ),
            )
            .await?;
            announce(&opts, &status, true);
        }
    }
    Ok(result)
}

/// The status BuildKit shows while a push makes sure the repository has every blob.
const PUSHING_LAYERS: &str = "pushing layers";

/// A push's progress as BuildKit shows it under "exporting to image": "pushing layers",
/// then "pushing manifest for NAME@DIGEST" for each name.
pub(crate) fn announce(opts: &PushOptions, status: &str, done: bool) {
    if let Some(progress) = &opts.progress {
        progress.status(status, 0, None, done);
    }
}

/// Pushes a document that is not an image (a build cache manifest or index) and the blobs
/// it names, all already in `opts.store`, under `reference`. Blobs go first, so that the
/// document is never there without them.
pub async fn push_document(
    reference: &Reference,
    blobs: &[Descriptor],
    document: Bytes,
    media_type: &str,
    opts: PushOptions,
) -> Result<(), RegistryError> {
    let repository = format!("{}/{}", reference.domain, reference.path);
    let destination =
        Destination::open(&opts, &repository, std::slice::from_ref(reference)).await?;
    let ensures: Vec<_> = blobs
        .iter()
        .map(|blob| ensure_blob(&destination, blob, &opts))
        .collect();
    stream::iter(ensures)
        .buffer_unordered(TRANSFER_CONCURRENCY)
        .try_collect::<Vec<Transfer>>()
        .await?;
    let content_type =
        http::HeaderValue::from_str(media_type).map_err(|e| RegistryError::Task(e.to_string()))?;
    let tagged = oci_reference(reference, reference.tag.as_deref());
    let host = &destination.host;
    host.exchange(
        "pushing the manifest of",
        &reference.to_string(),
        host.client
            .push_manifest_raw(&tagged, document, content_type),
    )
    .await?;
    Ok(())
}

/// One repository to push to, authorized.
struct Destination {
    host: RegistryHost,
    target: oci_client::Reference,
    /// `domain/path`, as recorded in the blobs' sources.
    repository: String,
}

impl Destination {
    async fn open(
        opts: &PushOptions,
        repository: &str,
        references: &[Reference],
    ) -> Result<Destination, RegistryError> {
        let reference = &references[0];
        let host = connect(opts, &reference.domain).await?;
        // Blobs belong to the repository, not a tag; the tag only names it in errors.
        let target = oci_reference(reference, reference.tag.as_deref());
        host.authorize(&target, RegistryOperation::Push).await?;
        Ok(Destination {
            host,
            target,
            repository: repository.to_owned(),
        })
    }
}

/// A layer's compressed blob, and whether getting it uploaded it to the first repository.
struct LayerBlob {
    digest: Digest,
    size: u64,
    uploaded: bool,
    /// What the blob is: the compression asked for, or a base image layer's own.
    compression: Compression,
    /// Its descriptor's annotations, those of the layer's own compressed blob.
    annotations: BTreeMap<String, String>,
}

/// The stored compressed blob of `layer`, or, when there is none yet, a new one made while
/// it is uploaded to `destination`.
async fn layer_blob(
    destination: &Destination,
    layer: &Layer,
    opts: &PushOptions,
) -> Result<LayerBlob, RegistryError> {
    let lazy = opts
        .lazy_layers
        .iter()
        .find(|(diff_id, _)| *diff_id == layer.diff_id)
        .map(|(_, blob)| blob)
        .filter(|blob| blob.compression() == Some(opts.compression.kind));
    if let Some(blob) = lazy {
        return Ok(LayerBlob {
            digest: Digest::parse(&blob.desc.digest)?,
            size: blob.desc.size,
            uploaded: false,
            compression: opts.compression.kind,
            annotations: BTreeMap::new(),
        });
    }
    let store = opts.store.clone();
    let owned = layer.clone();
    let compression = opts.compression;
    let known = tokio::task::spawn_blocking(move || {
        known_compressed_layer(&store, &owned, compression)?
            .map(|(digest, kind)| Ok::<_, RegistryError>((store.size(&digest)?, digest, kind)))
            .transpose()
    })
    .await
    .map_err(|e| RegistryError::Task(e.to_string()))??;
    if let Some((size, digest, compression)) = known {
        let annotations = layer
            .compressed
            .as_ref()
            .filter(|blob| blob.digest == digest)
            .map(|blob| blob.annotations.clone())
            .unwrap_or_default();
        return Ok(LayerBlob {
            digest,
            size,
            uploaded: false,
            compression,
            annotations,
        });
    }
    let what = format!(
        "pushing layer {} to {}",
        layer.diff_id, destination.repository
    );
    let (digest, size) = retry::transfer(&what, || {
        pipeline::compress_and_upload(destination, layer, opts)
    })
    .await?;
    Ok(LayerBlob {
        digest,
        size,
        uploaded: true,
        compression: opts.compression.kind,
        annotations: BTreeMap::new(),
    })
}

fn descriptor(media_type: &str, digest: &Digest, size: u64) -> Descriptor {
    Descriptor {
        media_type: media_type.to_owned(),
        digest: digest.to_string(),
        size,
        urls: Vec::new(),
        annotations: BTreeMap::new(),
        platform: None,
    }
}

async fn connect(opts: &PushOptions, domain: &str) -> Result<RegistryHost, RegistryError> {
    opts.registry
        .with_insecure(domain, opts.insecure)
        .connect(domain)
        .await
}

fn oci_reference(reference: &Reference, tag: Option<&str>) -> oci_client::Reference {
    oci_client::Reference::with_tag(
        reference.domain.clone(),
        reference.path.clone(),
        tag.unwrap_or("latest").to_owned(),
    )
}

/// The tags grouped by repository (`domain/path`), in a stable order.
fn group_by_repository(tags: &[String]) -> Result<BTreeMap<String, Vec<Reference>>, RegistryError> {
    if tags.is_empty() {
        return Err(RegistryError::NoTags);
    }
    let mut repositories: BTreeMap<String, Vec<Reference>> = BTreeMap::new();
    for tag in tags {
        let reference = Reference::parse(tag)
            .map_err(|e| RegistryError::InvalidReference {
                reference: tag.clone(),
                message: e.to_string(),
            })?
            .with_default_tag();
        if reference.digest.is_some() {
            return Err(RegistryError::InvalidReference {
                reference: tag.clone(),
                message: "cannot push to a digest; name a tag".to_owned(),
            });
        }
        repositories
            .entry(reference.name())
            .or_default()
            .push(reference);
    }
    Ok(repositories)
}

fn check_layers(image: &Image, layers: &[Layer]) -> Result<(), RegistryError> {
    let diff_ids = &image.rootfs.diff_ids;
    if diff_ids.len() != layers.len() {
        return Err(RegistryError::LayerCount {
            config: diff_ids.len(),
            given: layers.len(),
        });
    }
    for (index, (text, layer)) in diff_ids.iter().zip(layers).enumerate() {
        let config = Digest::parse(text)?;
        if config != layer.diff_id {
            return Err(RegistryError::LayerOrder {
                index,
                config,
                given: layer.diff_id.clone(),
            });
        }
    }
    Ok(())
}

/// Makes sure the repository holds `blob`: already there, mounted, or uploaded; retried as
/// a whole, as Docker retries a layer's upload.
async fn ensure_blob(
    destination: &Destination,
    blob: &Descriptor,
    opts: &PushOptions,
) -> Result<Transfer, RegistryError> {
    let what = format!("pushing {} to {}", blob.digest, destination.repository);
    retry::transfer(&what, || ensure_blob_once(destination, blob, opts)).await
}

async fn ensure_blob_once(
    destination: &Destination,
    blob: &Descriptor,
    opts: &PushOptions,
) -> Result<Transfer, RegistryError> {
    let Destination {
        host,
        target,
        repository,
    } = destination;
    let digest = Digest::parse(&blob.digest)?;
    let name = target.whole();
    let metadata = Metadata::new(&opts.store);
    let exists = host
        .exchange(
            "pushing (checking a blob of)",
            &name,
            host.client.blob_exists(target, &blob.digest),
        )
        .await?;
    if exists {
        log_cache_error(metadata.add_source(&digest, repository));
        return Ok(Transfer::Existing);
    }
    if mount(host, target, repository, &digest, &metadata).await {
        log_cache_error(metadata.add_source(&digest, repository));
        return Ok(Transfer::Mounted);
    }

    // A layer of a cache the build did not bring in: copied from there, once.
    if !opts.store.exists(&digest)
        && let Some((_, lazy)) = opts
            .lazy_layers
            .iter()
            .find(|(_, lazy)| lazy.desc.digest == blob.digest)
    {
        lazy.fetch(&opts.store).await?;
    }
    let path = opts.store.path(&digest);
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(RegistryError::io("opening", &path))?;
    let mut progress =
        ByteProgress::new(opts.progress.as_ref(), blob.digest.clone(), Some(blob.size));
    let upload = Upload::new(host.timeouts);
    let body = upload.body(
        ReaderStream::new(file)
            .inspect(move |chunk| {
                if let Ok(chunk) = chunk {
                    progress.advance(chunk.len() as u64);
                }
            })
            .map_err(OciDistributionError::IoError),
    );
    upload
        .run(
            host.client
                .push_blob_stream(target, body, &blob.digest, Some(blob.size)),
        )
        .await
        .map_err(|expired| host.timed_out(expired, "pushing a blob of", &name))?
        .map_err(|e| host.error(e, "pushing a blob of", &name))?;
    if let Some(progress) = &opts.progress {
        progress.status(&blob.digest, blob.size, Some(blob.size), true);
    }
    log_cache_error(metadata.add_source(&digest, repository));
    Ok(Transfer::Uploaded)
}

/// Tries cross-repository mounts from the repositories of the same registry known to hold
/// the blob. A refusal is no error: the blob is uploaded instead.
async fn mount(
    host: &RegistryHost,
    target: &oci_client::Reference,
    repository: &str,
    digest: &Digest,
    metadata: &Metadata,
) -> bool {
    let prefix = format!("{}/", host.domain());
    for source in metadata.sources(digest) {
        let Some(path) = source.strip_prefix(&prefix) else {
            continue;
        };
        if source == repository {
            continue;
        }
        let from = oci_client::Reference::with_tag(
            host.domain().to_owned(),
            path.to_owned(),
            "latest".to_owned(),
        );
        let digest_text = digest.to_string();
        let mounted = host
            .timeouts
            .answer(host.client.mount_blob(target, &from, &digest_text))
            .await;
        let Ok(mounted) = mounted else {
            tracing::debug!("{source}: mount of {digest} timed out");
            continue;
        };
        match mounted {
            Ok(()) => return true,
            // 202: the registry declined to mount and opened an upload session instead,
            // which oci-client reports as a spec violation. The session is left to expire.
            Err(OciDistributionError::SpecViolationError(_)) => {
                tracing::debug!("{source}: mount of {digest} refused");
            }
            Err(e) => tracing::debug!(
                "{source}: mount of {digest} failed: {e}",
                e = crate::error_chain::error_chain(&e)
            ),
        }
    }
    false
}
