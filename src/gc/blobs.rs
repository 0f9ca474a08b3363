//! Content-store blobs as cache records: what each one is, what keeps it, and the metadata
//! that names it, which goes with it.
//!
//! Every reader of the store makes a missing blob again: a build's layer tar is written
//! again from its snapshot, a compressed layer is compressed again, a pulled image is pulled
//! again. The exception is the tar of a base image layer, which is the only copy of the
//! layer as the image had it: it stays as long as the snapshot extracted from it.
//!
//! The metadata that names blobs is `registry::metadata`'s (which lists its entries); the
//! snapshots' diff IDs are in the metadata database.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use super::GcError;
use crate::cache::meta::{SnapshotKind, SnapshotRecord};
use crate::content::{ContentStore, Digest};
use crate::registry::metadata::{EntryKind, Metadata};

/// Manifests and configs are small; anything larger named as one is not read.
const MAX_MANIFEST: u64 = 4 << 20;

/// The store's blobs, described, with what keeps them.
#[derive(Debug, Default)]
pub struct Inventory {
    /// One record per blob, of kind [`SnapshotKind::ContentBlob`], id the digest.
    pub records: Vec<SnapshotRecord>,
    /// Blobs of base images (pulled images, base layer tars): `bud prune` without `--all`
    /// keeps them.
    pub base_image: HashSet<String>,
    /// How many base-image-layer snapshots keep each blob (their tar).
    pub pins: HashMap<String, usize>,
    /// Metadata files that name each blob and must go with it.
    names: HashMap<String, Vec<PathBuf>>,
}

impl Inventory {
    /// Reads the store and the metadata that names its blobs. `snapshots` are the cache's
    /// snapshot records.
    pub fn read(store: &ContentStore, snapshots: &[SnapshotRecord]) -> Result<Self, GcError> {
        let mut inv = Inventory::default();
        let mut description: HashMap<String, String> = HashMap::new();
        let mut groups: Vec<Vec<String>> = Vec::new();
        let mut manifests = Vec::new();

        for r in snapshots {
            let Some(diff_id) = &r.diff_id else { continue };
            if r.kind == SnapshotKind::ImageLayer {
                *inv.pins.entry(diff_id.clone()).or_default() += 1;
                inv.base_image.insert(diff_id.clone());
            }
            description
                .entry(diff_id.clone())
                .or_insert_with(|| format!("layer tar of {}", r.description));
        }
        let metadata = Metadata::new(store);
        let entries = metadata
            .entries()
            .map_err(|e| GcError::io("listing", store.root(), e))?;
        for entry in entries {
            let blob = entry.blob.to_string();
            inv.names.entry(blob.clone()).or_default().push(entry.path);
            match entry.kind {
                EntryKind::Compressed {
                    diff_hex,
                    compression,
                } => {
                    description.entry(blob).or_insert_with(|| {
                        format!("{compression} of layer sha256:{}", short(&diff_hex))
                    });
                }
                EntryKind::ResolvedManifest => manifests.push(blob),
                EntryKind::Other => {}
            }
        }
        for manifest in manifests {
            let mut group = vec![manifest.clone()];
            description.insert(manifest.clone(), "image manifest".into());
            if let Some((config, layers)) = manifest_parts(store, &manifest) {
                description.insert(config.clone(), "image config".into());
                group.push(config);
                for layer in layers {
                    description
                        .entry(layer.clone())
                        .or_insert_with(|| "image layer".into());
                    group.push(layer);
                }
            }
            inv.base_image.extend(group.iter().cloned());
            groups.push(group);
        }

        let blobs = store.blobs()?;
        let mut last_used: HashMap<String, i64> = blobs
            .iter()
            .map(|b| (b.digest.to_string(), secs(b.last_used)))
            .collect();
        // Pulling an image reads its manifest and config without leasing them; only its
        // layers are marked used. The members of an image were used when any of them was.
        for group in &groups {
            let latest = group.iter().filter_map(|d| last_used.get(d)).max().copied();
            if let Some(latest) = latest {
                for d in group {
                    if let Some(t) = last_used.get_mut(d) {
                        *t = latest;
                    }
                }
            }
        }
        for b in blobs {
            let id = b.digest.to_string();
            inv.names
                .entry(id.clone())
                .or_default()
                .push(metadata.sources_path(&b.digest));
            inv.records.push(SnapshotRecord {
                description: description.remove(&id).unwrap_or_else(|| "blob".into()),
                last_used: last_used.get(&id).copied().unwrap_or(0),
                id,
                parent: None,
                kind: SnapshotKind::ContentBlob,
                size: b.disk_size,
                diff_id: None,
                created: secs(b.created),
                usage_count: 0,
                tar_format: 0,
            });
        }
        Ok(inv)
    }

    /// Drops the registry metadata files that name a removed blob. A snapshot keeps its
    /// diff ID: it describes the snapshot's content, so Docker loads (which send new layers
    /// from their directories) still know the image ID, and an export that needs the tar
    /// again writes it from the snapshot and checks it against that diff ID.
    pub fn forget(&self, id: &str) -> Result<(), GcError> {
        for path in self.names.get(id).into_iter().flatten() {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(GcError::io("removing", path, e)),
            }
        }
        Ok(())
    }
}

/// The config and layer digests of a stored image manifest.
fn manifest_parts(store: &ContentStore, manifest: &str) -> Option<(String, Vec<String>)> {
    let digest = Digest::parse(manifest).ok()?;
    let path = store.path(&digest);
    if std::fs::metadata(&path).ok()?.len() > MAX_MANIFEST {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    let config = json["config"]["digest"].as_str()?.to_string();
    let layers = json["layers"]
        .as_array()
        .map(|layers| {
            layers
                .iter()
                .filter_map(|l| l["digest"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Some((config, layers))
}

fn short(hex: &str) -> &str {
    hex.get(..12).unwrap_or(hex)
}

fn secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
