//! From what a build solved to a cache manifest in BuildKit's shape: one record per op
//! output, keyed by the digest of bud's cache key for it (content-based: op bytes, input
//! keys, context checksums; never a path, an inode, a time or a uid map), linked to the
//! records of its inputs, with the output's layer chain as its result.

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::Context as _;

use crate::build::export::layer_tar;
use crate::cache::meta::{SnapshotKind, SnapshotRecord};
use crate::content::{ContentStore, Digest};
use crate::registry::manifest::{self, Descriptor, Index, Manifest};
use crate::registry::metadata::Metadata;
use crate::registry::{Compression, LayerCompression};
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
    let mut final_chain: HashSet<String> = HashSet::new();
    for result in results {
        if let Ref::Snapshot(rec) = result {
            final_chain.extend(
                snapshots
                    .chain_bottom_up(&rec.id)?
                    .into_iter()
                    .map(|r| r.id),
            );
        }
    }
    // The records that carry a result, then every record they link to.
    let mut with_result: HashMap<(String, usize), SnapshotRecord> = HashMap::new();
    for v in journal.iter().filter(|v| !v.source) {
        for (i, out) in v.outputs.iter().enumerate() {
            if let Ref::Snapshot(rec) = out
                && (mode == Mode::Max || final_chain.contains(&rec.id))
            {
                with_result.insert((v.key.clone(), i), (**rec).clone());
            }
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
            if let Some(snapshot) = with_result.get(&out) {
                let (top, created) = layers.chain_of(snapshot)?;
                record.results.push(CacheResult {
                    layer_index: top,
                    created_at: created,
                });
            }
            record_index.insert(out, records.len() as i64);
            records.push(record);
        }
    }
    let (config_layers, mut descriptors) = layers.finish();
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
    })
}

/// The layer list of a cache config, each snapshot compressed once.
struct Layers<'a> {
    snapshots: &'a Snapshots,
    content: &'a ContentStore,
    shape: Shape,
    config: Vec<CacheLayer>,
    descriptors: Vec<Descriptor>,
    /// Snapshot id → its index in `config`.
    by_snapshot: HashMap<String, i64>,
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
        }
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
        let created_at = crate::timefmt::rfc3339(rec.created, 0);
        // Docker's schema has no zstd layer type: BuildKit writes those with OCI's.
        let media_type = match compression.docker_media_type() {
            Some(docker) if !self.shape.oci => docker,
            _ => compression.oci_media_type(),
        }
        .to_string();
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
        self.by_snapshot.insert(rec.id.clone(), index);
        Ok(index)
    }

    fn finish(self) -> (Vec<CacheLayer>, Vec<Descriptor>) {
        (self.config, self.descriptors)
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
