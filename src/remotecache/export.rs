//! From what a build solved to a cache manifest in BuildKit's shape: one record per op
//! output, keyed by the digest of bud's cache key for it (content-based: op bytes, input
//! keys, context checksums; never a path, an inode, a time or a uid map), linked to the
//! records of its inputs, with the output's layer chain as its result.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::{Context as _, bail};

use crate::build::export::layer_tar;
use crate::cache::meta::{SnapshotKind, SnapshotRecord};
use crate::content::{ContentStore, Digest};
use crate::registry::manifest::{self, Descriptor, Index, Manifest};
use crate::registry::metadata::Metadata;
use crate::registry::{Compression, LayerCompression, LazyLayers};
use crate::solver::lazy::{ImportedLayer, LazyRef};
use crate::solver::{Ref, Snapshots, SolvedVertex};

use super::config::{
    ANNOTATION_CREATED_AT, ANNOTATION_UNCOMPRESSED, CacheConfig, CacheInput, CacheLayer,
    CacheRecord, CacheResult, LayerAnnotations, MEDIA_TYPE,
};
use super::record_digest;

/// bud's extension: a cache mount's contents travel as a blob of the cache manifest with
/// this media type (`+gzip` or `+zstd`) and its portable name in this annotation. BuildKit
/// lists such a blob with the layers and, no record naming it, ignores it.
pub const CACHE_MOUNT_MEDIA_TYPE: &str = "application/vnd.bud.cache-mount.v1.tar";
/// The annotation naming a cache mount blob's mount (id, owner, mode; never a snapshot id).
pub const ANNOTATION_CACHE_MOUNT: &str = "dev.bud.cache-mount";

/// Which results travel: those of the image's own layers (`min`, BuildKit's default) or
/// every step's (`max`, other stages and intermediate results too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// The results of the image's own layers.
    #[default]
    Min,
    /// Every step's result.
    Max,
}

/// How the manifest is written: BuildKit's `oci-mediatypes` and `image-manifest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// How the layer blobs are compressed.
    pub compression: LayerCompression,
    /// OCI media types rather than Docker's.
    pub oci: bool,
    /// An image manifest with the config as its config, rather than an image index.
    pub image_manifest: bool,
}

/// A cache ready to be written somewhere: every blob it names is in the content store.
pub struct CacheManifest {
    /// The manifest's (or index's) media type.
    pub media_type: String,
    /// The manifest as written.
    pub bytes: Vec<u8>,
    /// The digest of `bytes`.
    pub digest: Digest,
    /// The cache config blob.
    pub config: Descriptor,
    /// The layer (and cache mount) blobs.
    pub layers: Vec<Descriptor>,
    /// The layer blobs left in the `--cache-from` they came from (results the build never
    /// brought in), by diff ID: a push mounts or copies them from there, a local cache
    /// copies them, never unpacking them.
    pub lazy_layers: LazyLayers,
}

/// A record's result: a chain of snapshots, or the layers of an imported cache's result the
/// build has not brought in (their blobs are the cache's).
enum ResultChain {
    Snapshot(SnapshotRecord),
    Lazy(LazyRef),
}

/// `r`, or what it became once brought in.
pub(super) fn settled(r: &Ref) -> Ref {
    match r {
        Ref::Lazy(lazy) => lazy.brought().unwrap_or_else(|| r.clone()),
        other => other.clone(),
    }
}

/// Names the layers of `r`'s chain, bottom first, so that a chain of snapshots and a result
/// left in the cache it came from name a layer alike when they hold the same tars: by the
/// chain ID of the diff IDs up to it while all are known, else by snapshot id or blob.
pub(super) fn layer_names(snapshots: &Snapshots, r: &Ref) -> anyhow::Result<Vec<String>> {
    let layers: Vec<(Option<String>, String)> = match settled(r) {
        Ref::Snapshot(rec) => snapshots
            .chain_bottom_up(&rec.id)?
            .into_iter()
            .map(|l| (l.diff_id, format!("snapshot:{}", l.id)))
            .collect(),
        Ref::Lazy(lazy) => {
            let layers = lazy.imported().layers();
            layers
                .iter()
                .map(|l| l.diff_id.as_ref().map(Digest::to_string))
                .zip(lazy_chain_ids(layers))
                .collect()
        }
        Ref::Scratch | Ref::Context(_) => Vec::new(),
    };
    let mut names = Vec::with_capacity(layers.len());
    let mut chain = Some(String::new());
    for (diff_id, own) in layers {
        chain = chain
            .zip(diff_id)
            .map(|(below, d)| Digest::of(format!("{below} {d}").as_bytes()).to_string());
        names.push(match &chain {
            Some(chain) => format!("layers:{chain}"),
            None => own,
        });
    }
    Ok(names)
}

/// Names each layer of a chain of imported layers by the blobs under and at it, bottom
/// first: two results share a layer when they share these.
fn lazy_chain_ids(layers: &[ImportedLayer]) -> Vec<String> {
    let mut ids = Vec::with_capacity(layers.len());
    let mut below = String::new();
    for layer in layers {
        below = Digest::of(format!("{below} {}", layer.blob.desc.digest).as_bytes()).to_string();
        ids.push(format!("cache:{below}"));
    }
    ids
}

/// Whether a cache export compressed as `asked` can record `lazy` without bringing it in:
/// each layer's diff ID is known, and its blob is in that compression (a level asked is
/// another blob) or its tar is in `content` to be compressed.
pub fn keeps_lazy(lazy: &LazyRef, asked: LayerCompression, content: &ContentStore) -> bool {
    lazy.imported().layers().iter().all(|l| match &l.diff_id {
        Some(diff_id) => reuses_blob(l, asked) || content.exists(diff_id),
        None => false,
    })
}

/// Whether the cache's blob of `layer` is the one a cache compressed as `asked` records.
fn reuses_blob(layer: &ImportedLayer, asked: LayerCompression) -> bool {
    asked.level.is_none() && layer.blob.compression() == Some(asked.kind)
}

/// Builds the cache config of a build and compresses the layers it names into the content
/// store (once per layer and compression, remembered as pushes remember it). `results` are
/// the build's results, one per platform: as BuildKit exports every result of a
/// multi-platform build into one cache, the records of all of them go in one config.
/// Blocking.
pub fn collect(
    journal: &[SolvedVertex],
    results: &[Ref],
    mode: Mode,
    shape: Shape,
    snapshots: &Snapshots,
    content: &ContentStore,
    cache_mounts: &[(String, std::path::PathBuf)],
) -> anyhow::Result<CacheManifest> {
    // The layers of the results, named alike whether brought in or left in their cache.
    let mut final_chain: HashSet<String> = HashSet::new();
    for result in results {
        final_chain.extend(layer_names(snapshots, result)?);
    }
    // The records that carry a result, then every record they link to.
    let mut with_result: HashMap<(String, usize), ResultChain> = HashMap::new();
    for v in journal.iter().filter(|v| !v.source) {
        for (i, out) in v.outputs.iter().enumerate() {
            let wanted = mode == Mode::Max
                || layer_names(snapshots, out)?
                    .last()
                    .is_some_and(|top| final_chain.contains(top));
            let chain = match settled(out) {
                Ref::Snapshot(rec) if wanted => ResultChain::Snapshot((*rec).clone()),
                Ref::Lazy(lazy) if wanted => ResultChain::Lazy(lazy),
                _ => continue,
            };
            with_result.insert((v.key.clone(), i), chain);
        }
    }
    let by_key: HashMap<&str, &SolvedVertex> =
        journal.iter().map(|v| (v.key.as_str(), v)).collect();
    let mut wanted: HashSet<(String, usize)> = HashSet::new();
    let mut stack: Vec<(String, usize)> = with_result.keys().cloned().collect();
    while let Some(out) = stack.pop() {
        if !wanted.insert(out.clone()) {
            continue;
        }
        if let Some(v) = by_key.get(out.0.as_str()) {
            stack.extend(v.inputs.iter().cloned());
        }
    }

    let mut layers = Layers::new(snapshots, content, shape);
    let mut records = Vec::new();
    let mut record_index: HashMap<(String, usize), i64> = HashMap::new();
    // The journal lists inputs before their users, so links always point backwards.
    for v in journal {
        for i in 0..v.outputs.len().max(1) {
            let out = (v.key.clone(), i);
            if !wanted.contains(&out) || record_index.contains_key(&out) {
                continue;
            }
            let inputs = v
                .inputs
                .iter()
                .filter_map(|input| record_index.get(input))
                .map(|&link| {
                    vec![CacheInput {
                        selector: String::new(),
                        link_index: link,
                    }]
                })
                .collect::<Vec<_>>();
            let mut record = CacheRecord {
                digest: record_digest(&v.key, i).to_string(),
                // A record whose inputs did not all make it in could never be matched.
                inputs: if inputs.len() == v.inputs.len() {
                    inputs
                } else {
                    Vec::new()
                },
                ..Default::default()
            };
            if let Some(chain) = with_result.get(&out) {
                let (top, created) = match chain {
                    ResultChain::Snapshot(snapshot) => layers.chain_of(snapshot)?,
                    ResultChain::Lazy(lazy) => layers.lazy_chain_of(lazy)?,
                };
                record.results.push(CacheResult {
                    layer_index: top,
                    created_at: created,
                });
            }
            record_index.insert(out, records.len() as i64);
            records.push(record);
        }
    }
    let (config_layers, mut descriptors, lazy_layers) = layers.finish();
    for (name, dir) in cache_mounts {
        descriptors.push(cache_mount_blob(name, dir, content, shape.compression)?);
    }
    let config = CacheConfig {
        layers: config_layers,
        records,
    };
    let config_bytes = serde_json::to_vec(&config)?;
    let config_digest = content.put(&config_bytes)?;
    let config_desc = Descriptor {
        media_type: MEDIA_TYPE.into(),
        digest: config_digest.to_string(),
        size: config_bytes.len() as u64,
        urls: Vec::new(),
        annotations: BTreeMap::new(),
        platform: None,
    };
    let (media_type, bytes) = if shape.image_manifest {
        let m = Manifest {
            schema_version: 2,
            media_type: Some(manifest::OCI_MANIFEST.into()),
            config: config_desc.clone(),
            layers: descriptors.clone(),
            annotations: BTreeMap::new(),
        };
        (manifest::OCI_MANIFEST, serde_json::to_vec(&m)?)
    } else {
        let media_type = if shape.oci {
            manifest::OCI_INDEX
        } else {
            manifest::DOCKER_MANIFEST_LIST
        };
        let mut manifests = descriptors.clone();
        manifests.push(config_desc.clone());
        let index = Index {
            schema_version: 2,
            media_type: Some(media_type.into()),
            manifests,
            annotations: BTreeMap::new(),
        };
        (media_type, serde_json::to_vec(&index)?)
    };
    let digest = content.put(&bytes)?;
    Ok(CacheManifest {
        media_type: media_type.into(),
        bytes,
        digest,
        config: config_desc,
        layers: descriptors,
        lazy_layers,
    })
}

/// The layer list of a cache config, each snapshot compressed once.
struct Layers<'a> {
    snapshots: &'a Snapshots,
    content: &'a ContentStore,
    shape: Shape,
    config: Vec<CacheLayer>,
    descriptors: Vec<Descriptor>,
    /// Snapshot id (or a lazy layer's name, `lazy_chain_ids`) → its index in `config`.
    by_snapshot: HashMap<String, i64>,
    /// (blob, parent index) → its index in `config`: a layer that two chains share (a base
    /// image's, under a step brought in and one left in the cache) is listed once.
    by_blob: HashMap<(String, i64), i64>,
    lazy_layers: LazyLayers,
}

impl<'a> Layers<'a> {
    fn new(snapshots: &'a Snapshots, content: &'a ContentStore, shape: Shape) -> Self {
        Layers {
            snapshots,
            content,
            shape,
            config: Vec::new(),
            descriptors: Vec::new(),
            by_snapshot: HashMap::new(),
            by_blob: HashMap::new(),
            lazy_layers: Vec::new(),
        }
    }

    /// As `chain_of`, for a result left in the cache it came from: its layers keep their
    /// blobs (`keeps_lazy` said they can), recorded as sources to mount or copy from.
    fn lazy_chain_of(&mut self, lazy: &LazyRef) -> anyhow::Result<(i64, String)> {
        let imported = lazy.imported();
        imported.remember_blobs(self.content);
        let layers = imported.layers();
        let mut parent = -1;
        for (layer, id) in layers.iter().zip(lazy_chain_ids(layers)) {
            parent = match self.by_snapshot.get(&id) {
                Some(&i) => i,
                None => {
                    let index = self.add_lazy(layer, parent)?;
                    self.by_snapshot.insert(id, index);
                    index
                }
            };
        }
        let created = layers
            .last()
            .map_or_else(crate::cache::meta::now, |l| l.created);
        Ok((parent, crate::timefmt::rfc3339(created, 0)))
    }

    fn add_lazy(&mut self, layer: &ImportedLayer, parent: i64) -> anyhow::Result<i64> {
        let Some(diff_id) = layer.diff_id.clone() else {
            bail!(
                "internal error: the cache blob {} has no diff ID and was not brought in",
                layer.blob.desc.digest
            );
        };
        let asked = self.shape.compression;
        let (blob, compression, size) = if reuses_blob(layer, asked) {
            let blob = Digest::parse(&layer.blob.desc.digest)?;
            if !self.content.exists(&blob) {
                self.lazy_layers.push((diff_id.clone(), layer.blob.clone()));
            }
            (blob, asked.kind, layer.blob.desc.size)
        } else {
            let blob = compressed(self.content, &diff_id, asked)?;
            let size = self.content.size(&blob)?;
            (blob, asked.kind, size)
        };
        Ok(self.push_layer(blob, compression, size, diff_id, layer.created, parent))
    }

    /// The index of the top layer of `snapshot`'s chain (adding what is missing) and the
    /// creation time of the snapshot.
    fn chain_of(&mut self, snapshot: &SnapshotRecord) -> anyhow::Result<(i64, String)> {
        let mut parent = -1;
        for rec in self.snapshots.chain_bottom_up(&snapshot.id)? {
            parent = match self.by_snapshot.get(&rec.id) {
                Some(&i) => i,
                None => self.add(&rec, parent)?,
            };
        }
        Ok((parent, crate::timefmt::rfc3339(snapshot.created, 0)))
    }

    fn add(&mut self, rec: &SnapshotRecord, parent: i64) -> anyhow::Result<i64> {
        let dir = self.snapshots.layer_dir(&rec.id);
        let diff_id = layer_tar(self.snapshots, self.content, rec, &dir)?;
        let asked = self.shape.compression;
        // A base image layer keeps the blob it came with, as in an image export.
        let base = (rec.kind == SnapshotKind::ImageLayer)
            .then(|| crate::registry::compress::base_layer_blob(self.content, &diff_id, asked))
            .flatten();
        let (blob, compression) = match base {
            Some(known) => known,
            None => (compressed(self.content, &diff_id, asked)?, asked.kind),
        };
        let size = self.content.size(&blob)?;
        let index = self.push_layer(blob, compression, size, diff_id, rec.created, parent);
        self.by_snapshot.insert(rec.id.clone(), index);
        Ok(index)
    }

    /// Lists a layer blob (once) and its layer above `parent` (once per parent).
    fn push_layer(
        &mut self,
        blob: Digest,
        compression: Compression,
        size: u64,
        diff_id: Digest,
        created: i64,
        parent: i64,
    ) -> i64 {
        if let Some(&index) = self.by_blob.get(&(blob.to_string(), parent)) {
            return index;
        }
        let created_at = crate::timefmt::rfc3339(created, 0);
        // Docker's schema has no zstd layer type: BuildKit writes those with OCI's.
        let media_type = match compression.docker_media_type() {
            Some(docker) if !self.shape.oci => docker,
            _ => compression.oci_media_type(),
        }
        .to_string();
        if !self
            .descriptors
            .iter()
            .any(|d| d.digest == blob.to_string())
        {
            let annotations = BTreeMap::from([
                (ANNOTATION_UNCOMPRESSED.to_string(), diff_id.to_string()),
                (ANNOTATION_CREATED_AT.to_string(), created_at.clone()),
            ]);
            self.descriptors.push(Descriptor {
                media_type: media_type.clone(),
                digest: blob.to_string(),
                size,
                urls: Vec::new(),
                annotations,
                platform: None,
            });
        }
        self.config.push(CacheLayer {
            blob: blob.to_string(),
            parent_index: parent,
            annotations: Some(LayerAnnotations {
                media_type,
                diff_id: diff_id.to_string(),
                size: size as i64,
                created_at,
            }),
        });
        let index = self.config.len() as i64 - 1;
        self.by_blob.insert((blob.to_string(), parent), index);
        index
    }

    fn finish(self) -> (Vec<CacheLayer>, Vec<Descriptor>, LazyLayers) {
        (self.config, self.descriptors, self.lazy_layers)
    }
}

/// The contents of a cache mount as a compressed tar in the content store.
fn cache_mount_blob(
    name: &str,
    dir: &std::path::Path,
    content: &ContentStore,
    compression: LayerCompression,
) -> anyhow::Result<Descriptor> {
    let mut writer = content.writer()?;
    let stats = crate::snapshot::diff::write_layer(dir, &mut writer)
        .with_context(|| format!("reading the cache mount {}", dir.display()))?;
    let diff_id = writer.commit(None)?;
    let blob = compressed(content, &diff_id, compression)?;
    let suffix = match compression.kind {
        // The cache's attributes never ask for eStargz: its blobs are gzip.
        Compression::Gzip | Compression::Estargz => "+gzip",
        Compression::Zstd => "+zstd",
        Compression::Uncompressed => "",
    };
    debug_assert_eq!(stats.diff_id, diff_id.to_string());
    Ok(Descriptor {
        media_type: format!("{CACHE_MOUNT_MEDIA_TYPE}{suffix}"),
        digest: blob.to_string(),
        size: content.size(&blob)?,
        urls: Vec::new(),
        annotations: BTreeMap::from([
            (ANNOTATION_CACHE_MOUNT.to_string(), name.to_string()),
            (ANNOTATION_UNCOMPRESSED.to_string(), diff_id.to_string()),
        ]),
        platform: None,
    })
}

/// The compressed blob of an uncompressed layer tar, made once per compression and level
/// and remembered (the same memo image pushes use).
pub(super) fn compressed(
    content: &ContentStore,
    diff_id: &Digest,
    compression: LayerCompression,
) -> anyhow::Result<Digest> {
    let memo = Metadata::new(content);
    if let Some(known) = memo.compressed(content, diff_id, compression) {
        return Ok(known);
    }
    let mut writer = content.writer()?;
    crate::registry::compress::compress_file(&content.path(diff_id), compression, &mut writer)
        .with_context(|| format!("compressing layer {diff_id}"))?;
    let blob = writer.commit(None)?;
    memo.set_compressed(diff_id, compression, &blob)?;
    Ok(blob)
}
