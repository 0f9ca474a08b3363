//! `type=inline`: the cache records of the image's own layers, in the image config under
//! `moby.buildkit.cache.v0` (base64 of the JSON of the records, as BuildKit writes it), each
//! result naming the top of its chain by its index among the image's layers. An importer
//! rebuilds the layer list from the image's manifest (layer i's parent is i-1), so the
//! records hold whatever compression the image is pushed with.

use std::collections::{HashMap, HashSet};

use base64::Engine as _;

use crate::cache::meta::SnapshotKind;
use crate::solver::{Ref, Snapshots, SolvedVertex};

use super::config::{CacheInput, CacheRecord, CacheResult};
use super::export::{layer_names, settled};
use super::record_digest;

/// The image config key BuildKit reads an inline cache from.
pub const IMAGE_CONFIG_KEY: &str = "moby.buildkit.cache.v0";

/// The value of [`IMAGE_CONFIG_KEY`] for a build whose result is `result`, brought in or
/// left in the cache it came from (its layers are then the cache's blobs). Blocking.
pub fn records(
    journal: &[SolvedVertex],
    result: &Ref,
    snapshots: &Snapshots,
) -> anyhow::Result<String> {
    // The image's layers, bottom first, each named as `top_layer` names a result's top, and
    // whether it is empty: as `build::export::plan_image` (or `lazy_image`, for a result left
    // in the cache it came from) keeps them, a step's empty layer is left out of the image.
    let names = layer_names(snapshots, result)?;
    let empties: Vec<bool> = match settled(result) {
        Ref::Snapshot(top) => {
            let mut empties = Vec::new();
            for rec in snapshots.chain_bottom_up(&top.id)? {
                let dir = snapshots.layer_dir(&rec.id);
                empties.push(
                    rec.kind == SnapshotKind::Layer && std::fs::read_dir(&dir)?.next().is_none(),
                );
            }
            empties
        }
        Ref::Lazy(lazy) => {
            let empty = crate::build::export::empty_layer_diff_id(snapshots)?;
            let layers = lazy.imported().layers();
            layers
                .iter()
                .map(|l| l.diff_id.as_ref() == Some(&empty))
                .collect()
        }
        Ref::Scratch | Ref::Context(_) => return Ok(encode(&[])?),
    };
    let chain = names.into_iter().zip(empties);
    let mut image_layer = HashMap::new();
    let mut has_empty_below = HashMap::new();
    let mut kept = 0i64;
    let mut empty_seen = false;
    for (id, empty) in chain {
        if empty {
            empty_seen = true;
        } else {
            image_layer.insert(id.clone(), kept);
            kept += 1;
        }
        has_empty_below.insert(id, empty_seen);
    }
    // Only results the image's layers make up exactly: a chain with an empty layer left
    // out of the image would come back one layer short of its history.
    let image_layer_of = |v: &SolvedVertex, out: &Ref| -> anyhow::Result<Option<i64>> {
        if v.source {
            return Ok(None);
        }
        let Some(top) = layer_names(snapshots, out)?.pop() else {
            return Ok(None);
        };
        Ok(if has_empty_below.get(&top) == Some(&false) {
            image_layer.get(&top).copied()
        } else {
            None
        })
    };
    // Only the records of this image's graph (those with a result and what they link to):
    // the journal of a multi-platform build also holds the other platforms' vertices.
    let by_key: HashMap<&str, &SolvedVertex> =
        journal.iter().map(|v| (v.key.as_str(), v)).collect();
    let mut results: HashMap<(String, usize), i64> = HashMap::new();
    for v in journal {
        for (i, out) in v.outputs.iter().enumerate() {
            if let Some(layer) = image_layer_of(v, out)? {
                results.insert((v.key.clone(), i), layer);
            }
        }
    }
    let mut wanted: HashSet<(String, usize)> = HashSet::new();
    let mut stack: Vec<(String, usize)> = results.keys().cloned().collect();
    while let Some(out) = stack.pop() {
        if let Some(v) = by_key.get(out.0.as_str())
            && wanted.insert(out)
        {
            stack.extend(v.inputs.iter().cloned());
        }
    }
    let mut records: Vec<CacheRecord> = Vec::new();
    let mut index: HashMap<(String, usize), i64> = HashMap::new();
    for v in journal {
        for (i, out) in v.outputs.iter().enumerate() {
            if !wanted.contains(&(v.key.clone(), i)) {
                continue;
            }
            let mut record = CacheRecord {
                digest: record_digest(&v.key, i).to_string(),
                ..Default::default()
            };
            let links: Vec<Vec<CacheInput>> = v
                .inputs
                .iter()
                .filter_map(|input| index.get(input))
                .map(|&link| {
                    vec![CacheInput {
                        selector: String::new(),
                        link_index: link,
                    }]
                })
                .collect();
            if links.len() == v.inputs.len() {
                record.inputs = links;
            }
            if let Some(&layer) = results.get(&(v.key.clone(), i))
                && let Some(created) = created_of(out)
            {
                record.results.push(CacheResult {
                    layer_index: layer,
                    created_at: crate::timefmt::rfc3339(created, 0),
                });
            }
            index.insert((v.key.clone(), i), records.len() as i64);
            records.push(record);
        }
    }
    Ok(encode(&records)?)
}

/// When a result was made: its snapshot's time, or its top layer's as the cache recorded it.
fn created_of(out: &Ref) -> Option<i64> {
    match settled(out) {
        Ref::Snapshot(rec) => Some(rec.created),
        Ref::Lazy(lazy) => lazy.imported().layers().last().map(|l| l.created),
        Ref::Scratch | Ref::Context(_) => None,
    }
}

fn encode(records: &[CacheRecord]) -> Result<String, serde_json::Error> {
    let json = serde_json::to_vec(records)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(json))
}
