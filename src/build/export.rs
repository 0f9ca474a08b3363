//! From a solved result to an image: its layers as uncompressed tars (made once per
//! snapshot and kept in the content store by diff ID), the final image config, and the
//! exporters that write it somewhere.

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use anyhow::{Context as _, bail};
use bud_frontend::image::{History, Image};

use crate::cache::meta::{SnapshotKind, SnapshotRecord};
use crate::content::{ContentStore, Digest};
use crate::exporter::{self, Layer};
use crate::solver::{Ref, Snapshots};

use super::outputs::Dest;

/// The image a build produced: config and layers, ready for any exporter.
pub struct BuiltImage {
    pub image: Image,
    pub layers: Vec<Layer>,
    /// sha256 of the config JSON: the image ID Docker shows.
    pub config_digest: Digest,
}

/// One layer of the result chain before empty ones are dropped.
struct ChainLayer {
    diff_id: Digest,
    /// When the layer's snapshot was made (seconds since the epoch).
    created: i64,
    empty: bool,
}

/// Collects the result's layers, writing the tar of each new one into the content store
/// (once: the diff ID is recorded with the snapshot), and completes the image config.
pub fn build_image(
    snapshots: &Snapshots,
    content: &ContentStore,
    result: &Ref,
    mut image: Image,
) -> anyhow::Result<BuiltImage> {
    let chain = match result {
        Ref::Snapshot(rec) => snapshots.chain_bottom_up(&rec.id)?,
        Ref::Scratch => Vec::new(),
        Ref::Context(_) => bail!("the build result is a local directory, not an image"),
    };
    let mut layers = Vec::with_capacity(chain.len());
    for record in chain {
        let dir = snapshots.layer_dir(&record.id);
        let empty = record.kind == SnapshotKind::Layer && dir_is_empty(&dir)?;
        let diff_id = layer_tar(snapshots, content, &record, &dir)?;
        layers.push(ChainLayer {
            diff_id,
            created: record.created,
            empty,
        });
    }
    // Times come from the snapshots, not the clock, so that a rebuild from cache gives the
    // very same image ID, as BuildKit's does.
    let built_at = layers
        .iter()
        .map(|l| l.created)
        .max()
        .map_or_else(now_rfc3339, rfc3339);
    let layers = drop_empty_layers(&mut image.history, layers);
    image.rootfs.kind = "layers".into();
    image.rootfs.diff_ids = layers.iter().map(|l| l.diff_id.to_string()).collect();
    for h in image.history.iter_mut().filter(|h| h.created.is_none()) {
        h.created = Some(built_at.clone());
    }
    image.created = Some(built_at);
    let layers: Vec<Layer> = layers
        .into_iter()
        .map(|l| Layer {
            tar: content.path(&l.diff_id),
            diff_id: l.diff_id,
            compressed: None,
        })
        .collect();
    let config_digest = Digest::of(&image.to_json());
    Ok(BuiltImage {
        image,
        layers,
        config_digest,
    })
}

/// The uncompressed tar of a layer, by diff ID. Image layers were stored when they were
/// extracted; a step's layer is written from its directory the first time it is exported.
fn layer_tar(
    snapshots: &Snapshots,
    content: &ContentStore,
    record: &SnapshotRecord,
    dir: &Path,
) -> anyhow::Result<Digest> {
    if let Some(known) = &record.diff_id {
        let digest = Digest::parse(known)?;
        if content.exists(&digest) {
            return Ok(digest);
        }
        if record.kind == SnapshotKind::ImageLayer {
            bail!(
                "the base image layer {known} is no longer in bud's content store; \
                 rebuild with --pull"
            );
        }
    }
    let mut writer = content.writer()?;
    let stats = crate::snapshot::diff::write_layer(dir, &mut writer)
        .with_context(|| format!("writing the layer of {}", record.description))?;
    let digest = writer.commit(None)?;
    if digest.to_string() != stats.diff_id {
        bail!("layer digest mismatch for {}", record.description);
    }
    snapshots.meta.set_diff_id(&record.id, &stats.diff_id)?;
    Ok(digest)
}

/// BuildKit leaves out layers whose diff is empty and marks their history entries
/// `empty_layer`; history entries and layers are paired from the top.
fn drop_empty_layers(history: &mut [History], layers: Vec<ChainLayer>) -> Vec<ChainLayer> {
    let mut kept = Vec::with_capacity(layers.len());
    let mut entries = history.iter_mut().rev().filter(|h| !h.empty_layer);
    for layer in layers.into_iter().rev() {
        let entry = entries.next();
        if layer.empty {
            if let Some(h) = entry {
                h.empty_layer = true;
            }
            continue;
        }
        kept.push(layer);
    }
    kept.reverse();
    kept
}

fn dir_is_empty(dir: &Path) -> anyhow::Result<bool> {
    Ok(std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .next()
        .is_none())
}

/// RFC 3339 UTC with nanoseconds, as Go writes time.Time.
pub fn now_rfc3339() -> String {
    crate::timefmt::rfc3339_of(std::time::SystemTime::now())
}

fn rfc3339(secs: i64) -> String {
    crate::timefmt::rfc3339(secs, 0)
}

/// Writes to a file or stdout.
pub fn open_dest(dest: &Dest) -> anyhow::Result<Box<dyn Write + Send>> {
    Ok(match dest {
        Dest::Stdout => Box::new(std::io::stdout()),
        Dest::File(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
    })
}

pub fn docker_archive(built: &BuiltImage, dest: &Dest, names: &[String]) -> anyhow::Result<()> {
    let out = open_dest(dest)?;
    exporter::docker_archive::write(out, &built.image, &built.layers, names, &HashSet::new())?;
    Ok(())
}

/// Returns the manifest digest.
pub fn oci_archive(built: &BuiltImage, dest: &Dest, names: &[String]) -> anyhow::Result<Digest> {
    let out = open_dest(dest)?;
    Ok(exporter::oci_layout::write(
        out,
        &built.image,
        &built.layers,
        names,
    )?)
}

/// The merged filesystem of the result as a tarball, in path order, owners and modes kept.
pub fn filesystem_tar(root: &Path, dest: &Dest) -> anyhow::Result<()> {
    let mut builder = tar::Builder::new(open_dest(dest)?);
    builder.follow_symlinks(false);
    let mut paths = Vec::new();
    collect_paths(root, Path::new(""), &mut paths)?;
    for rel in paths {
        builder
            .append_path_with_name(root.join(&rel), &rel)
            .with_context(|| format!("adding {} to the tarball", rel.display()))?;
    }
    builder.into_inner()?.flush()?;
    Ok(())
}

fn collect_paths(root: &Path, rel: &Path, out: &mut Vec<std::path::PathBuf>) -> anyhow::Result<()> {
    let dir = root.join(rel);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let child = rel.join(e.file_name());
        out.push(child.clone());
        if e.file_type()?.is_dir() {
            collect_paths(root, &child, out)?;
        }
    }
    Ok(())
}

/// The merged filesystem of the result into a directory, as `-o type=local` writes it.
pub fn local_dir(root: &Path, dest: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    let action = crate::fileop::CopyAction {
        src: "/".into(),
        dest: "/".into(),
        dir_copy_contents: true,
        create_dest_path: true,
        ..Default::default()
    };
    crate::fileop::copy(root, dest, &action)
        .with_context(|| format!("writing the result to {}", dest.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(empty: bool, n: u8) -> ChainLayer {
        ChainLayer {
            diff_id: Digest::of(&[n]),
            created: 0,
            empty,
        }
    }

    fn history(by: &str, empty_layer: bool) -> History {
        History {
            created_by: by.into(),
            empty_layer,
            ..Default::default()
        }
    }

    #[test]
    fn empty_layers_leave_with_their_history_marked() {
        let mut h = vec![
            history("base", false),
            history("ENV", true),
            history("RUN true", false),
            history("COPY", false),
        ];
        let kept = drop_empty_layers(
            &mut h,
            vec![layer(false, 0), layer(true, 1), layer(false, 2)],
        );
        let ids: Vec<_> = kept.iter().map(|l| l.diff_id.clone()).collect();
        assert_eq!(ids, [Digest::of(&[0]), Digest::of(&[2])]);
        assert!(h[2].empty_layer, "RUN true made no change");
        assert!(!h[3].empty_layer);
    }

    #[test]
    fn rfc3339() {
        let s = now_rfc3339();
        assert_eq!(s.len(), 30, "{s}");
        assert!(s.ends_with('Z'));
    }
}
