//! An imported cache: its manifest and config read and checked once; a record a step hits
//! is a lazy result (`solver::lazy`), its layers brought in only when something needs its
//! files (and then only the layers the state root lacks): downloaded, decompressed and
//! extracted in one pass (`unpack`), and committed to the state root only once the blob has
//! been verified against its digest and its tar against its diff ID.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use futures_util::future::{BoxFuture, FutureExt as _};

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::content::{ContentStore, Digest};
use crate::progress::ProgressSink;
use crate::registry::manifest::{Descriptor, Document};
use crate::registry::metadata::{Metadata, log_cache_error};
use crate::registry::pull::compression_of;
use crate::registry::{BlobFetcher, LazyBlob};
use crate::solver::lazy::{ImportedLayer, ImportedResult};
use crate::solver::snapshots::Workspace;
use crate::solver::{CacheImport, Ref, Snapshots, output_key};

use super::config::{
    ANNOTATION_CREATED_AT, ANNOTATION_UNCOMPRESSED, CacheConfig, CacheLayer, MAX_CONFIG_SIZE,
    MEDIA_TYPE, parse_time,
};
use super::export::{ANNOTATION_CACHE_MOUNT, CACHE_MOUNT_MEDIA_TYPE};
use super::{record_digest, unpack};

/// Where the blobs of a cache are: a local OCI layout or a registry repository.
pub trait BlobSource: Send + Sync {
    /// Puts blob `desc` into `content`, verified against its digest.
    fn fetch<'a>(
        &'a self,
        desc: &'a Descriptor,
        content: &'a ContentStore,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
    /// The manifest stored under `digest`, verified against it.
    fn manifest<'a>(&'a self, digest: &'a str) -> BoxFuture<'a, anyhow::Result<Vec<u8>>>;
    /// Puts blob `desc` (not stored yet) into `content` as `fetch` does, handing its bytes
    /// to `tee` on the way so that they can be unpacked as they arrive. Tried once (a reader
    /// cannot be handed the same bytes twice): a failure is the caller's to start over with
    /// `fetch`. A source with nothing to overlap (its blobs are files here) fetches, then
    /// reads the stored blob into `tee`.
    fn stream<'a>(
        &'a self,
        desc: &'a Descriptor,
        content: &'a ContentStore,
        tee: mpsc::Sender<Bytes>,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        async move {
            self.fetch(desc, content).await?;
            let blob = content.open(&Digest::parse(&desc.digest)?)?;
            tokio::task::spawn_blocking(move || send_file(blob, &tee))
                .await
                .context("reading a blob")?
        }
        .boxed()
    }
    /// For messages: the cache this is.
    fn describe(&self) -> String;
    /// The registry repository (`domain/path`) the blobs come from, when they come from one.
    fn repository(&self) -> Option<String> {
        None
    }
}

/// Sends the content of `file` into `tee` in pieces, until the reader stops. Blocking.
fn send_file(mut file: std::fs::File, tee: &mpsc::Sender<Bytes>) -> anyhow::Result<()> {
    let mut piece = vec![0; 256 * 1024];
    loop {
        let n = file.read(&mut piece).context("reading a stored blob")?;
        if n == 0
            || tee
                .blocking_send(Bytes::copy_from_slice(&piece[..n]))
                .is_err()
        {
            return Ok(());
        }
    }
}

/// One layer of a result chain, as the cache describes it.
#[derive(Clone, Debug)]
struct LayerRef {
    desc: Descriptor,
    diff_id: Option<Digest>,
    created: Option<i64>,
}

/// The results of a cache, by record digest: each a chain of layers, bottom first, and
/// when it was made.
pub struct ImportedCache {
    source: Arc<dyn BlobSource>,
    results: HashMap<String, (Vec<LayerRef>, Option<i64>)>,
    /// bud's extension: cache mount contents by portable name.
    cache_mounts: HashMap<String, Descriptor>,
    progress: ProgressSink,
}

impl ImportedCache {
    /// Reads the cache behind `manifest` (its bytes already verified against their digest):
    /// a cache manifest (an index of blobs and a config, or an image manifest whose config is
    /// the cache config) or an image whose config carries an inline cache: when an index
    /// holds several images, the image of each of `platforms` (a multi-platform build
    /// imports the inline caches of all it builds, as BuildKit imports every image's).
    pub async fn load(
        manifest: &[u8],
        content_type: Option<&str>,
        platforms: &[crate::registry::Platform],
        source: Arc<dyn BlobSource>,
        content: &ContentStore,
        progress: ProgressSink,
    ) -> anyhow::Result<ImportedCache> {
        let document = Document::parse(manifest, content_type).context("not a cache manifest")?;
        let mut cache = ImportedCache {
            source: source.clone(),
            results: HashMap::new(),
            cache_mounts: HashMap::new(),
            progress,
        };
        // An image index (several platforms, or an image and its attestations) without a
        // cache config: the inline caches of the images for the platforms bud builds for.
        let Document::Index(index) = &document else {
            cache.add(document, content).await?;
            return Ok(cache);
        };
        if index.manifests.iter().any(|d| d.media_type == MEDIA_TYPE) {
            cache.add(document, content).await?;
            return Ok(cache);
        }
        let mut missing = Vec::new();
        let mut found = 0;
        for platform in platforms {
            let Some(entry) = crate::registry::manifest::select(index, platform).cloned() else {
                missing.push(platform.to_string());
                continue;
            };
            let bytes = source.manifest(&entry.digest).await?;
            let image = Document::parse(&bytes, Some(&entry.media_type))
                .map_err(|e| anyhow::anyhow!("{}: {e}", entry.digest))?;
            if matches!(image, Document::Index(_)) {
                bail!("{}: an index inside an index", entry.digest);
            }
            cache.add(image, content).await?;
            found += 1;
        }
        if found == 0 {
            bail!("the image index has no image for {}", missing.join(", "));
        }
        if !missing.is_empty() {
            cache.progress.warning(
                None,
                format!(
                    "--cache-from {}: the image index has no image for {}: its other \
                     platforms' caches are imported",
                    source.describe(),
                    missing.join(", ")
                ),
            );
        }
        Ok(cache)
    }

    /// Adds the results of one cache manifest or image with an inline cache; a record
    /// already known keeps its result.
    async fn add(&mut self, document: Document, content: &ContentStore) -> anyhow::Result<()> {
        let source = self.source.clone();
        let (blobs, config_desc, image_config) = match document {
            Document::Index(index) => {
                let config = index
                    .manifests
                    .iter()
                    .find(|d| d.media_type == MEDIA_TYPE)
                    .cloned();
                let blobs = index
                    .manifests
                    .into_iter()
                    .filter(|d| d.media_type != MEDIA_TYPE)
                    .collect::<Vec<_>>();
                (blobs, config, None)
            }
            Document::Manifest(m) if m.config.media_type == MEDIA_TYPE => {
                (m.layers, Some(m.config), None)
            }
            Document::Manifest(m) => (m.layers.clone(), None, Some(m.config)),
        };
        let config = match (config_desc, image_config) {
            (Some(desc), _) => {
                let bytes = read_small_blob(&*source, &desc, content).await?;
                CacheConfig::parse(&bytes).context("the cache config")?
            }
            (None, Some(image_config)) => {
                let bytes = read_small_blob(&*source, &image_config, content).await?;
                inline_config(&bytes, &blobs)?
            }
            (None, None) => bail!("the manifest names no cache config"),
        };
        let by_blob: HashMap<&str, &Descriptor> =
            blobs.iter().map(|d| (d.digest.as_str(), d)).collect();
        let results = &mut self.results;
        for record in &config.records {
            if results.contains_key(&record.digest) {
                continue;
            }
            let chains = record
                .results
                .iter()
                .map(|r| (config.chain(r.layer_index), &r.created_at))
                .chain(record.chained_results.iter().map(|c| {
                    let chain = c
                        .layer_indexes
                        .iter()
                        .map(|&i| usize::try_from(i).ok().and_then(|i| config.layers.get(i)))
                        .collect::<Option<Vec<_>>>();
                    (chain, &c.created_at)
                }));
            for (chain, created_at) in chains {
                let Some(chain) = chain else { continue };
                // A result whose blobs the manifest does not list cannot be brought in.
                let Some(layers) = chain
                    .iter()
                    .map(|l| layer_ref(l, &by_blob))
                    .collect::<Option<Vec<_>>>()
                else {
                    continue;
                };
                results.insert(record.digest.clone(), (layers, parse_time(created_at)));
                break;
            }
        }
        let cache_mounts = blobs
            .iter()
            .filter(|d| d.media_type.starts_with(CACHE_MOUNT_MEDIA_TYPE))
            .filter_map(|d| {
                let name = d.annotations.get(ANNOTATION_CACHE_MOUNT)?;
                Some((name.clone(), d.clone()))
            });
        for (name, desc) in cache_mounts {
            self.cache_mounts.entry(name).or_insert(desc);
        }
        Ok(())
    }

    /// How many records carry a result.
    pub fn len(&self) -> usize {
        self.results.len()
    }

    /// Whether no record carries a result.
    pub fn is_empty(&self) -> bool {
        self.results.is_empty()
    }

    /// The result `record_digest(key, index)` names, to be brought in when needed.
    fn lookup(&self, key: &str, index: usize) -> Option<Arc<dyn ImportedResult>> {
        let (layers, created) = self.results.get(&record_digest(key, index).to_string())?;
        if layers.is_empty() {
            return None;
        }
        let fetcher: Arc<dyn BlobFetcher> = Arc::new(Fetcher(self.source.clone()));
        let imported = layers
            .iter()
            .enumerate()
            .map(|(i, layer)| ImportedLayer {
                blob: LazyBlob {
                    desc: layer.desc.clone(),
                    source: fetcher.clone(),
                },
                diff_id: layer.diff_id.clone(),
                created: if i + 1 == layers.len() {
                    layer_time(i, layers.len(), layer, *created)
                } else {
                    self.chain_time(&layers[..=i])
                        .unwrap_or_else(|| layer_time(i, layers.len(), layer, None))
                },
            })
            .collect();
        Some(Arc::new(Hit {
            source: self.source.clone(),
            key: key.to_string(),
            index,
            layers: layers.clone(),
            imported,
        }))
    }
}

impl ImportedCache {
    /// The time of the earliest result whose layers are `chain`: a layer below the top of a
    /// result gets the time of the step that made it (the result under the one hit), as
    /// when that step's result was brought in first.
    fn chain_time(&self, chain: &[LayerRef]) -> Option<i64> {
        self.results
            .values()
            .filter(|(layers, _)| {
                layers.len() == chain.len()
                    && layers
                        .iter()
                        .zip(chain)
                        .all(|(a, b)| a.desc.digest == b.desc.digest)
            })
            .filter_map(|(_, created)| *created)
            .min()
    }
}

/// The time a layer of a result gets: the result's own time is exact for its top layer;
/// an inline cache's layer times come from the image's history, which has one time for
/// every step.
fn layer_time(i: usize, count: usize, layer: &LayerRef, created: Option<i64>) -> i64 {
    if i + 1 == count {
        created.or(layer.created)
    } else {
        layer.created
    }
    .unwrap_or_else(crate::cache::meta::now)
}

/// The blobs of a cache as a push fetches them.
struct Fetcher(Arc<dyn BlobSource>);

impl BlobFetcher for Fetcher {
    fn fetch<'a>(
        &'a self,
        desc: &'a Descriptor,
        content: &'a ContentStore,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        self.0.fetch(desc, content)
    }

    fn describe(&self) -> String {
        self.0.describe()
    }
}

/// One result of a cache, hit and not brought in yet.
struct Hit {
    source: Arc<dyn BlobSource>,
    key: String,
    index: usize,
    layers: Vec<LayerRef>,
    imported: Vec<ImportedLayer>,
}

impl ImportedResult for Hit {
    fn layers(&self) -> &[ImportedLayer] {
        &self.imported
    }

    fn bring_in<'a>(&'a self, snapshots: &'a Arc<Snapshots>) -> BoxFuture<'a, anyhow::Result<Ref>> {
        self.bring_in_now(snapshots).boxed()
    }

    fn top_layer<'a>(
        &'a self,
        snapshots: &'a Arc<Snapshots>,
    ) -> BoxFuture<'a, anyhow::Result<Workspace>> {
        async move {
            let layer = self
                .layers
                .last()
                .context("the cached result has no layers")?;
            let diff_id = match &layer.diff_id {
                Some(d) => d.clone(),
                None => self.tar_of(layer, None, snapshots).await?,
            };
            self.extract(layer, &diff_id, snapshots).await
        }
        .boxed()
    }

    fn remember_blobs(&self, content: &ContentStore) {
        for layer in &self.layers {
            if let Some(diff_id) = &layer.diff_id {
                remember_blob(content, &layer.desc, diff_id, self.source.repository());
            }
        }
    }

    fn cache(&self) -> String {
        self.source.describe()
    }
}

impl Hit {
    /// Downloads the layers the state root lacks, verifies and extracts them: side by side,
    /// each into a workspace of its own, and only then stacked in order (a commit needs its
    /// parent), so that a chain of several layers costs about what its largest does.
    async fn bring_in_now(&self, snapshots: &Arc<Snapshots>) -> anyhow::Result<Ref> {
        // A layer's place in the state root is its chain ID, which needs every diff ID
        // below it: those the cache does not name come from the blobs themselves.
        let diff_ids = futures_util::future::try_join_all(self.layers.iter().map(|layer| {
            let known = layer.diff_id.clone();
            async move {
                match known {
                    Some(d) => Ok(d),
                    None => self.tar_of(layer, None, snapshots).await,
                }
            }
        }))
        .await?;
        let layer_keys: Vec<String> = crate::exporter::chain_ids(&diff_ids)
            .into_iter()
            .map(|chain_id| format!("cache-layer:{chain_id}"))
            .collect();
        let mut present = Vec::with_capacity(layer_keys.len());
        for key in &layer_keys {
            present.push(snapshots.lookup(key)?);
        }
        let extracted = futures_util::future::try_join_all(
            self.layers.iter().zip(&diff_ids).zip(&present).map(
                |((layer, diff_id), present)| async move {
                    match present {
                        Some(_) => Ok(None),
                        None => self.extract(layer, diff_id, snapshots).await.map(Some),
                    }
                },
            ),
        )
        .await?;
        let mut parent = Ref::Scratch;
        for (i, (present, ws)) in present.into_iter().zip(extracted).enumerate() {
            parent = match (present, ws) {
                (Some(hit), _) => hit,
                (None, Some(ws)) => snapshots.commit_imported(
                    ws,
                    &parent,
                    &layer_keys[i],
                    &format!(
                        "cache layer {} from {}",
                        diff_ids[i],
                        self.source.describe()
                    ),
                    self.imported[i].created,
                    &diff_ids[i].to_string(),
                )?,
                (None, None) => bail!("a cached layer was neither present nor extracted"),
            };
        }
        let Some(id) = parent.snapshot_id() else {
            bail!("the cached result has no layers");
        };
        snapshots
            .meta
            .alias(&output_key(&self.key, self.index), id)?;
        Ok(parent)
    }

    /// The layer's tar in the content store (downloaded, verified and decompressed unless
    /// it is there already), by its diff ID: `known` when the cache or an earlier
    /// decompression gave it.
    async fn tar_of(
        &self,
        layer: &LayerRef,
        known: Option<&Digest>,
        snapshots: &Snapshots,
    ) -> anyhow::Result<Digest> {
        let content = snapshots.content.clone();
        if let Some(d) = known
            && content.exists(d)
        {
            return Ok(d.clone());
        }
        self.source.fetch(&layer.desc, &content).await?;
        let (blob, expected) = (layer.desc.digest.clone(), known.cloned());
        let diff_id = tokio::task::spawn_blocking({
            let content = content.clone();
            move || decompress(&content, &blob, expected)
        })
        .await
        .context("decompressing a layer")??;
        remember_blob(&content, &layer.desc, &diff_id, self.source.repository());
        Ok(diff_id)
    }

    /// The layer's files, extracted into a new workspace's upper directory: from its stored
    /// tar, from its stored blob, or else as it downloads. A download that fails on the way
    /// is made again, retried, and then extracted (a reader cannot be handed the same bytes
    /// twice).
    async fn extract(
        &self,
        layer: &LayerRef,
        diff_id: &Digest,
        snapshots: &Snapshots,
    ) -> anyhow::Result<Workspace> {
        let content = &snapshots.content;
        if content.exists(diff_id) {
            return extract_stored_tar(snapshots, diff_id).await;
        }
        let blob = Digest::parse(&layer.desc.digest)?;
        let ws = snapshots.workspace()?;
        let started = std::time::Instant::now();
        let (tar, ws) = if content.exists(&blob) {
            let stored = BufReader::new(content.open(&blob)?);
            unpack_blocking(stored, content, ws).await?
        } else {
            let (tee, pieces) = mpsc::channel(STREAMED_PIECES);
            let unpacking = unpack_blocking(unpack::ChannelReader::new(pieces), content, ws);
            let (fetched, unpacked) =
                futures_util::join!(self.source.stream(&layer.desc, content, tee), unpacking);
            if let Err(e) = fetched {
                tracing::debug!(
                    "downloading {} again: {}",
                    layer.desc.digest,
                    crate::error_chain::error_chain(e.as_ref())
                );
                self.tar_of(layer, Some(diff_id), snapshots).await?;
                return extract_stored_tar(snapshots, diff_id).await;
            }
            unpacked?
        };
        tar.commit(Some(diff_id))
            .with_context(|| format!("layer {}", layer.desc.digest))?;
        tracing::debug!(
            "cache layer {} ({} bytes) unpacked in {} ms",
            layer.desc.digest,
            layer.desc.size,
            started.elapsed().as_millis()
        );
        remember_blob(content, &layer.desc, diff_id, self.source.repository());
        Ok(ws)
    }
}

/// Pieces of a download waiting for the unpacking reader: enough to ride out a burst of
/// file creation without stalling the download for long, few enough to stay small.
const STREAMED_PIECES: usize = 64;

/// `blob` unpacked into the workspace's upper directory on a blocking thread, which owns the
/// workspace meanwhile (so that a cancelled build's workspace is removed by that thread, once
/// it stops writing into it).
async fn unpack_blocking(
    blob: impl BufRead + Send + 'static,
    content: &ContentStore,
    ws: Workspace,
) -> anyhow::Result<(crate::content::BlobWriter, Workspace)> {
    let content = content.clone();
    tokio::task::spawn_blocking(move || {
        let tar = unpack::unpack(blob, &content, &ws.upper())?;
        Ok((tar, ws))
    })
    .await
    .context("extracting a layer")?
}

/// The files of the stored layer tar `diff_id`, extracted into a new workspace.
async fn extract_stored_tar(snapshots: &Snapshots, diff_id: &Digest) -> anyhow::Result<Workspace> {
    let ws = snapshots.workspace()?;
    let tar = snapshots.content.path(diff_id);
    tokio::task::spawn_blocking(move || -> anyhow::Result<Workspace> {
        let file =
            std::fs::File::open(&tar).with_context(|| format!("opening {}", tar.display()))?;
        crate::snapshot::apply::extract_layer(BufReader::new(file), &ws.upper())?;
        Ok(ws)
    })
    .await
    .context("extracting a layer")?
}

/// Records what a pull records of its layers: which repository holds the blob, and that it
/// is the layer compressed. A later push of the image to that registry then mounts the blob
/// instead of compressing the layer again and uploading it.
fn remember_blob(
    content: &ContentStore,
    desc: &Descriptor,
    diff_id: &Digest,
    repository: Option<String>,
) {
    let Ok(blob) = Digest::parse(&desc.digest) else {
        return;
    };
    let metadata = Metadata::new(content);
    if let Some(repository) = repository {
        log_cache_error(metadata.add_source(&blob, &repository));
    }
    if let Some(compression) = compression_of(&desc.media_type) {
        log_cache_error(metadata.set_compressed(diff_id, compression.into(), &blob));
    }
}

impl CacheImport for ImportedCache {
    fn lookup(&self, key: &str, index: usize) -> Option<Arc<dyn ImportedResult>> {
        ImportedCache::lookup(self, key, index)
    }

    fn cache_mount<'a>(
        &'a self,
        content: &'a ContentStore,
        portable_id: &'a str,
    ) -> BoxFuture<'a, Option<Digest>> {
        async move {
            let desc = self.cache_mounts.get(portable_id)?;
            let brought = async {
                self.source.fetch(desc, content).await?;
                let expected = desc
                    .annotations
                    .get(ANNOTATION_UNCOMPRESSED)
                    .and_then(|d| Digest::parse(d).ok());
                let (content, blob) = (content.clone(), desc.digest.clone());
                tokio::task::spawn_blocking(move || decompress(&content, &blob, expected))
                    .await
                    .context("decompressing a cache mount")?
            };
            match brought.await {
                Ok(tar) => Some(tar),
                Err(e) => {
                    self.progress.warning(
                        None,
                        format!(
                            "cache from {}: a cache mount could not be brought in, it \
                             starts empty: {}",
                            self.source.describe(),
                            crate::error_chain::error_chain(e.as_ref())
                        ),
                    );
                    None
                }
            }
        }
        .boxed()
    }
}

fn layer_ref(layer: &CacheLayer, by_blob: &HashMap<&str, &Descriptor>) -> Option<LayerRef> {
    let desc = (*by_blob.get(layer.blob.as_str())?).clone();
    let notes = layer.annotations.as_ref();
    let diff_id = desc
        .annotations
        .get(ANNOTATION_UNCOMPRESSED)
        .map(String::as_str)
        .or(notes.map(|a| a.diff_id.as_str()).filter(|d| !d.is_empty()))
        .and_then(|d| Digest::parse(d).ok());
    let created = desc
        .annotations
        .get(ANNOTATION_CREATED_AT)
        .map(String::as_str)
        .or(notes.map(|a| a.created_at.as_str()))
        .and_then(parse_time);
    Some(LayerRef {
        desc,
        diff_id,
        created,
    })
}

/// A cache config or image config: small, read whole, verified.
async fn read_small_blob(
    source: &dyn BlobSource,
    desc: &Descriptor,
    content: &ContentStore,
) -> anyhow::Result<Vec<u8>> {
    if desc.size > MAX_CONFIG_SIZE {
        bail!("{} is too large ({} bytes)", desc.digest, desc.size);
    }
    let digest = Digest::parse(&desc.digest)?;
    source.fetch(desc, content).await?;
    let bytes =
        std::fs::read(content.path(&digest)).with_context(|| format!("reading {}", desc.digest))?;
    Ok(bytes)
}

/// The cache config an image config carries (`moby.buildkit.cache.v0`: base64 of the JSON
/// of its records), whose layers are the image's, in order.
fn inline_config(image_config: &[u8], layers: &[Descriptor]) -> anyhow::Result<CacheConfig> {
    #[derive(serde::Deserialize)]
    struct ImageConfig {
        #[serde(rename = "moby.buildkit.cache.v0")]
        cache: Option<String>,
        #[serde(default)]
        rootfs: Option<RootFs>,
        #[serde(default)]
        history: Vec<History>,
    }
    #[derive(serde::Deserialize)]
    struct RootFs {
        #[serde(default)]
        diff_ids: Vec<String>,
    }
    #[derive(serde::Deserialize)]
    struct History {
        created: Option<String>,
        #[serde(default)]
        empty_layer: bool,
    }
    let image: ImageConfig =
        serde_json::from_slice(image_config).context("the image config is not JSON")?;
    let Some(cache) = image.cache else {
        bail!("the image carries no inline cache (build it with BUILDKIT_INLINE_CACHE=1)");
    };
    let records = base64::engine::general_purpose::STANDARD
        .decode(cache.trim())
        .context("the inline cache is not base64")?;
    let diff_ids = image.rootfs.map(|r| r.diff_ids).unwrap_or_default();
    if diff_ids.len() != layers.len() {
        bail!("the image's config and manifest disagree on its layers");
    }
    let created: Vec<Option<String>> = image
        .history
        .into_iter()
        .filter(|h| !h.empty_layer)
        .map(|h| h.created)
        .collect();
    let layers = layers
        .iter()
        .enumerate()
        .map(|(i, d)| CacheLayer {
            blob: d.digest.clone(),
            parent_index: i as i64 - 1,
            annotations: Some(super::config::LayerAnnotations {
                media_type: d.media_type.clone(),
                diff_id: diff_ids[i].clone(),
                size: d.size as i64,
                created_at: created.get(i).cloned().flatten().unwrap_or_default(),
            }),
        })
        .collect();
    let config = CacheConfig {
        layers,
        records: serde_json::from_slice(&records).context("the inline cache records")?,
    };
    config.check()?;
    Ok(config)
}

/// Decompresses stored blob `blob` into the content store as a layer tar, verified against
/// `expected` when the cache named it. Blocking.
fn decompress(
    content: &ContentStore,
    blob: &str,
    expected: Option<Digest>,
) -> anyhow::Result<Digest> {
    let blob = Digest::parse(blob)?;
    let tar = unpack::decoder(BufReader::new(content.open(&blob)?))?;
    content
        .import(tar, expected.as_ref())
        .with_context(|| format!("layer {blob}"))
}
