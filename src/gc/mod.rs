//! Garbage collection of the build cache: which snapshots to delete, in which order, and
//! how to delete them while other bud processes build from the same state root.
//!
//! Order: least recently used first, cache mounts after layers, and only leaves (records no
//! other record names as parent), so a chain is taken apart from its top. Records a live
//! process holds a lease on are never removed, nor their ancestors (they have children).
//!
//! Safety against concurrent builds rests on three rules the solver keeps:
//! - a build leases the snapshots it uses, and after a cache hit checks that the record is
//!   still there once leased;
//! - a build leases a new snapshot's id before moving its directory under `snapshots/` and
//!   commits its record in one transaction;
//! - removal drops the record first (refused if a child or a live lease appeared), then
//!   renames the directory into `tmp/` and deletes it there, so `snapshots/` never holds a
//!   half-deleted directory.
//!
//! Content-store blobs are records too (see [`blobs`]): collected least recently used first
//! with the snapshots, never while another live process leases them, and a base image
//! layer's tar only after the snapshot extracted from it.

pub mod blobs;
pub mod filter;
pub mod orphans;
pub mod remove;
pub mod size;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use filter::{FilterError, RecordFilter};
pub use orphans::Orphan;

use crate::cache::meta::{self, MetaError, MetaStore, SnapshotKind, SnapshotRecord};
use crate::content::{ContentError, ContentStore, Digest};
use crate::state::StateRoot;

/// Why a collection, or `bud du`'s measure, failed.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// The metadata store failed.
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// bud.toml's `[gc]` policy is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Listing or removing a content-store blob failed.
    #[error(transparent)]
    Content(#[from] ContentError),
    /// Measuring, moving or deleting a directory failed.
    #[error("{action} {path}")]
    Io {
        /// What was being done, as a verb phrase (`"removing"`, `"reading"`…).
        action: &'static str,
        /// The directory or file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

impl GcError {
    pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.to_owned(),
            source,
        }
    }
}

/// What to remove.
#[derive(Debug, Clone, Default)]
pub struct GcPolicy {
    /// Stop once the records add up to at most this many bytes; `None` removes every
    /// record the other settings allow.
    pub keep_bytes: Option<u64>,
    /// Records used within this long are kept.
    pub keep_duration: Option<Duration>,
    /// Only matching records are removed.
    pub filter: RecordFilter,
    /// Whether layers of base images may go too (`bud prune --all`, and automatic GC).
    pub include_image_layers: bool,
}

impl GcPolicy {
    /// The policy of the automatic collection after a build, from `bud.toml`.
    pub fn from_config(
        gc: &crate::config::GcConfig,
        state: &StateRoot,
    ) -> Result<Self, crate::config::ConfigError> {
        Ok(Self {
            keep_bytes: Some(gc.keep_bytes(state.path())?),
            keep_duration: gc.keep_duration,
            filter: RecordFilter::default(),
            include_image_layers: true,
        })
    }

    fn allows(&self, r: &SnapshotRecord, now: i64) -> bool {
        if r.kind == SnapshotKind::ImageLayer && !self.include_image_layers {
            return false;
        }
        if let Some(d) = self.keep_duration {
            let d = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            if r.last_used >= now.saturating_sub(d) {
                return false;
            }
        }
        self.filter.matches(r, now)
    }
}

/// What a collection removed.
#[derive(Debug, Clone, Default)]
pub struct GcReport {
    /// The records removed, in the order they went.
    pub removed: Vec<SnapshotRecord>,
    /// Directories nothing owned any more.
    pub orphans: Vec<Orphan>,
    /// Bytes freed: removed records and orphans.
    pub freed: u64,
}

/// Removes orphans, then records as `policy` says. See the module documentation for the
/// order and the guarantees.
pub fn collect(
    state: &StateRoot,
    meta: &MetaStore,
    policy: &GcPolicy,
) -> Result<GcReport, GcError> {
    let store = ContentStore::new(state.content_dir())?;
    let mut report = GcReport::default();
    for path in orphans::find(state, meta, &store)? {
        let size = size::disk_usage(&path).map_err(|e| GcError::io("measuring", &path, e))?;
        let removed = if path.starts_with(state.tmp_dir()) || path.starts_with(store.root()) {
            remove::remove_tree(&path).map(|()| true)
        } else {
            remove::remove_dir(state, &path)
        };
        match removed {
            Ok(true) => {
                report.freed += size;
                report.orphans.push(Orphan { path, size });
            }
            Ok(false) => {}
            Err(e) => tracing::warn!("cannot remove {}: {e}", path.display()),
        }
    }
    meta.forget_dead_leases()?;

    let now = meta::now();
    let snapshots = measured_records(state, meta)?;
    let blobs = blobs::Inventory::read(&store, &snapshots)?;
    let leased = meta.leased_snapshots()?;
    let leased_blobs = store.leased_by_others()?;
    let records: Vec<&SnapshotRecord> = snapshots.iter().chain(&blobs.records).collect();
    let mut total: u64 = records.iter().map(|r| r.size).sum();
    // What keeps a record from being a leaf: child snapshots, and for a base image layer's
    // tar, the snapshots extracted from it.
    let mut children: HashMap<&str, usize> = HashMap::new();
    for r in &snapshots {
        if let Some(p) = &r.parent {
            *children.entry(p.as_str()).or_default() += 1;
        }
    }
    for (blob, n) in &blobs.pins {
        *children.entry(blob.as_str()).or_default() += n;
    }
    let by_id: HashMap<&str, &SnapshotRecord> =
        records.iter().map(|r| (r.id.as_str(), *r)).collect();
    let eligible = |r: &SnapshotRecord| {
        if r.kind == SnapshotKind::ContentBlob {
            let in_use = Digest::parse(&r.id).is_ok_and(|d| leased_blobs.contains(&d));
            let base = blobs.base_image.contains(&r.id);
            !in_use && (policy.include_image_layers || !base) && policy.allows(r, now)
        } else {
            !leased.contains(&r.id) && policy.allows(r, now)
        }
    };
    let order = |r: &SnapshotRecord| {
        (
            r.kind == SnapshotKind::CacheMount,
            r.last_used,
            r.id.clone(),
        )
    };
    let mut leaves: BTreeSet<(bool, i64, String)> = records
        .iter()
        .filter(|r| !children.contains_key(r.id.as_str()) && eligible(r))
        .map(|r| order(r))
        .collect();

    while let Some((_, _, id)) = leaves.pop_first() {
        if policy.keep_bytes.is_some_and(|keep| total <= keep) {
            break;
        }
        let Some(&record) = by_id.get(id.as_str()) else {
            continue;
        };
        if record.kind == SnapshotKind::ContentBlob {
            if !remove_blob(&store, &blobs, &record.id)? {
                continue;
            }
        } else {
            // Refused when a build leased it or committed a child since we looked.
            if !meta.remove_if_unused(&record.id)? {
                continue;
            }
            if let Some(dir) = record_dir(state, record)
                && let Err(e) = remove::remove_dir(state, &dir)
            {
                // The record is gone, so the directory is an orphan the next collection
                // retries.
                tracing::warn!("cannot remove {}: {e}", dir.display());
            }
        }
        total = total.saturating_sub(record.size);
        report.freed += record.size;
        report.removed.push(record.clone());
        // What this record kept: its parent, and a base image layer's tar.
        let pinned = (record.kind == SnapshotKind::ImageLayer)
            .then_some(record.diff_id.as_deref())
            .flatten();
        for kept in record.parent.as_deref().into_iter().chain(pinned) {
            let Some(n) = children.get_mut(kept) else {
                continue;
            };
            *n = n.saturating_sub(1);
            if *n == 0
                && let Some(&p) = by_id.get(kept)
                && eligible(p)
            {
                leaves.insert(order(p));
            }
        }
    }
    Ok(report)
}

/// Removes a blob unless another process leased it since the inventory, then what names it.
fn remove_blob(store: &ContentStore, blobs: &blobs::Inventory, id: &str) -> Result<bool, GcError> {
    let Ok(digest) = Digest::parse(id) else {
        return Ok(false);
    };
    if !store.collector()?.remove(&digest)? {
        return Ok(false);
    }
    blobs.forget(id)?;
    Ok(true)
}

/// The collection a build runs when it ends, as `bud.toml`'s `[gc]` says; `None` when
/// it is disabled.
pub fn collect_configured(
    state: &StateRoot,
    meta: &MetaStore,
    gc: &crate::config::GcConfig,
) -> Result<Option<GcReport>, GcError> {
    if !gc.enabled {
        return Ok(None);
    }
    let policy = GcPolicy::from_config(gc, state)?;
    collect(state, meta, &policy).map(Some)
}

/// A record as `bud du` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    /// The record, its `size` measured on disk.
    pub record: SnapshotRecord,
    /// Held by a running build, directly or as an ancestor of what it holds.
    pub in_use: bool,
}

impl UsageRecord {
    /// Whether a prune may remove it now (`bud du`'s RECLAIMABLE column).
    pub fn reclaimable(&self) -> bool {
        !self.in_use
    }
}

/// Every record (snapshots, content blobs and orphans) with its size measured and whether a
/// running build holds it.
pub fn usage(state: &StateRoot, meta: &MetaStore) -> Result<Vec<UsageRecord>, GcError> {
    let records = measured_records(state, meta)?;
    let leased = meta.leased_snapshots()?;
    let parents: HashMap<&str, Option<&str>> = records
        .iter()
        .map(|r| (r.id.as_str(), r.parent.as_deref()))
        .collect();
    let mut in_use: HashSet<&str> = HashSet::new();
    for id in &leased {
        let mut next = Some(id.as_str());
        while let Some(id) = next {
            // A chain is finite, but a corrupt database could loop: stop at a repeat.
            if !in_use.insert(id) {
                break;
            }
            next = parents.get(id).copied().flatten();
        }
    }
    let store = ContentStore::new(state.content_dir())?;
    let blobs = blobs::Inventory::read(&store, &records)?;
    let leased_blobs = store.leased_by_others()?;
    let mut usage: Vec<UsageRecord> = records
        .iter()
        .map(|r| UsageRecord {
            in_use: in_use.contains(r.id.as_str()),
            record: r.clone(),
        })
        .collect();
    usage.extend(blobs.records.into_iter().map(|r| UsageRecord {
        in_use: Digest::parse(&r.id).is_ok_and(|d| leased_blobs.contains(&d)),
        record: r,
    }));
    // What the next collection removes takes space too.
    for path in orphans::find(state, meta, &store)? {
        match orphans::record(state, &path) {
            Ok(record) => usage.push(UsageRecord {
                in_use: false,
                record,
            }),
            // Removed meanwhile (a collection in another process).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(GcError::io("measuring", &path, e)),
        }
    }
    Ok(usage)
}

/// The records, with the sizes of those that had none measured and stored.
fn measured_records(state: &StateRoot, meta: &MetaStore) -> Result<Vec<SnapshotRecord>, GcError> {
    let mut records = meta.snapshots()?;
    for r in records.iter_mut().filter(|r| r.size == 0) {
        let Some(dir) = record_dir(state, r) else {
            continue;
        };
        let size = size::disk_usage(&dir).map_err(|e| GcError::io("measuring", &dir, e))?;
        if size > 0 {
            match meta.set_size(&r.id, size) {
                // Measured again next time: a full disk must not keep `bud du` from listing
                // what takes its space.
                Err(e) if e.is_disk_full() => tracing::debug!(
                    "not storing a size: {e}",
                    e = crate::error_chain::error_chain(&e)
                ),
                other => other?,
            }
            r.size = size;
        }
    }
    Ok(records)
}

/// Where a record's directory lives; `None` for an id that is not a plain file name (bud
/// never makes one, and it must not lead outside the state root).
pub(crate) fn record_dir(state: &StateRoot, r: &SnapshotRecord) -> Option<PathBuf> {
    let plain = !r.id.is_empty() && r.id != "." && r.id != ".." && !r.id.contains('/');
    if !plain {
        return None;
    }
    let base = match r.kind {
        SnapshotKind::CacheMount => state.cache_mounts_dir(),
        SnapshotKind::Layer | SnapshotKind::ImageLayer => state.snapshots_dir(),
        SnapshotKind::ContentBlob | SnapshotKind::Orphan => return None,
    };
    Some(base.join(&r.id))
}
