//! From a solved result to an image: its layers as uncompressed tars (made once per
//! snapshot and kept in the content store by diff ID), the final image config, and the
//! exporters that write it somewhere.

use std::collections::HashSet;
use std::io::Write;
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context as _, bail};
use bud_frontend::image::{History, Image};

use crate::cache::meta::{SnapshotKind, SnapshotRecord};
use crate::content::{ContentStore, Digest};
use crate::exporter::annotations::ImageAnnotations;
use crate::exporter::{self, Layer, LayerTar, LoadLayer, files_tar};
use crate::solver::{Ref, Snapshots};

use super::outputs::Dest;

/// The image a build produced: config and layers, ready for any exporter.
pub struct BuiltImage {
    /// The image config, history and `rootfs.diff_ids` included.
    pub image: Image,
    /// The layers, bottom first, one per `rootfs.diff_ids` entry.
    pub layers: Vec<Layer>,
    /// sha256 of the config JSON: the image ID Docker shows.
    pub config_digest: Digest,
    /// Layers left in the `--cache-from` they came from (`lazy_image`), by diff ID: a push
    /// mounts or copies their blobs from there.
    pub lazy_layers: crate::registry::LazyLayers,
}

/// An image whose layers are known but not necessarily tarred yet: all an export to Docker
/// needs, since the layers it sends are tarred straight from their directories.
pub struct ImagePlan {
    /// The config, complete but for `rootfs.diff_ids`.
    pub image: Image,
    layers: Vec<PlannedLayer>,
}

struct PlannedLayer {
    record: SnapshotRecord,
    dir: PathBuf,
}

/// Works out the result's layers (leaving out empty ones) and completes the image config,
/// but for the diff IDs of layers never tarred before.
pub fn plan_image(
    snapshots: &Snapshots,
    result: &Ref,
    mut image: Image,
) -> anyhow::Result<ImagePlan> {
    let chain = match result {
        Ref::Snapshot(rec) => snapshots.chain_bottom_up(&rec.id)?,
        Ref::Scratch => Vec::new(),
        Ref::Context(_) => bail!("the build result is a local directory, not an image"),
        Ref::Lazy(_) => bail!(crate::solver::SolveError::NotBroughtIn),
    };
    let mut layers = Vec::with_capacity(chain.len());
    for record in chain {
        let dir = snapshots.layer_dir(&record.id);
        let empty = record.kind == SnapshotKind::Layer && dir_is_empty(&dir)?;
        layers.push((record, empty));
    }
    // Times come from the snapshots, not the clock, so that a rebuild from cache gives the
    // very same image ID, as BuildKit's does.
    let built_at = layers
        .iter()
        .map(|(record, _)| record.created)
        .max()
        .map_or_else(now_rfc3339, rfc3339);
    let layers = drop_empty_layers(&mut image.history, layers);
    image.rootfs.kind = "layers".into();
    image.rootfs.diff_ids.clear();
    for h in image.history.iter_mut().filter(|h| h.created.is_none()) {
        h.created = Some(built_at.clone());
    }
    // Set already only by SOURCE_DATE_EPOCH, which takes the place of the build's time.
    if image.created.is_none() {
        image.created = Some(built_at);
    }
    let layers = layers
        .into_iter()
        .map(|record| PlannedLayer {
            dir: snapshots.layer_dir(&record.id),
            record,
        })
        .collect();
    Ok(ImagePlan { image, layers })
}

impl ImagePlan {
    /// The layers as Docker is to be sent them: stored tars where bud has them, the
    /// snapshot directories otherwise. Base image layers are always stored (re-tarring an
    /// extracted layer would not give back its digest).
    pub fn load_layers(&self, content: &ContentStore) -> anyhow::Result<Vec<LoadLayer>> {
        self.layers
            .iter()
            .map(|l| {
                let mut diff_id = l.record.diff_id.as_deref().map(Digest::parse).transpose()?;
                let stored = diff_id.as_ref().filter(|d| content.exists(d));
                let tar = match (stored, l.record.kind) {
                    (Some(d), _) => LayerTar::Stored(content.path(d)),
                    (None, SnapshotKind::ImageLayer) => LayerTar::Stored(match &diff_id {
                        Some(d) => content.path(d),
                        None => bail!(
                            "the base image layer {} has no recorded digest; rebuild with --pull",
                            l.record.description
                        ),
                    }),
                    (None, _) => {
                        if !tars_to_recorded_diff_id(&l.record) {
                            diff_id = None;
                        }
                        LayerTar::Directory(l.dir.clone())
                    }
                };
                Ok(LoadLayer { diff_id, tar })
            })
            .collect()
    }

    /// Records the diff IDs learnt while the layers were tarred, so that the next export
    /// knows them without tarring again.
    pub fn record_diff_ids(
        &self,
        snapshots: &Snapshots,
        diff_ids: &[Digest],
    ) -> anyhow::Result<()> {
        if diff_ids.len() != self.layers.len() {
            bail!(
                "internal error: {} layers exported, {} planned",
                diff_ids.len(),
                self.layers.len()
            );
        }
        for (layer, diff_id) in self.layers.iter().zip(diff_ids) {
            let recorded = layer.record.diff_id.as_deref();
            if recorded != Some(diff_id.to_string().as_str()) {
                // Tarred from the directory: by this writer.
                snapshots.meta.set_diff_id(
                    &layer.record.id,
                    &diff_id.to_string(),
                    crate::snapshot::diff::TAR_FORMAT,
                )?;
            }
        }
        Ok(())
    }

    /// Tars every layer into the content store (once: the diff ID is recorded with the
    /// snapshot) and completes the config: what registries and archive files need.
    /// With `mtime_limit` (`rewrite-timestamp`), the build's own layers are tarred with
    /// later mtimes clamped to it; base image layers stay as they came.
    pub fn into_built(
        self,
        snapshots: &Snapshots,
        content: &ContentStore,
        mtime_limit: Option<i64>,
    ) -> anyhow::Result<BuiltImage> {
        let mut image = self.image;
        let mut layers = Vec::with_capacity(self.layers.len());
        for l in &self.layers {
            let diff_id = match mtime_limit {
                Some(limit) if l.record.kind != SnapshotKind::ImageLayer => {
                    clamped_layer_tar(content, &l.record, &l.dir, limit)?
                }
                _ => layer_tar(snapshots, content, &l.record, &l.dir)?,
            };
            layers.push(Layer {
                tar: content.path(&diff_id),
                diff_id,
                compressed: None,
                base: l.record.kind == SnapshotKind::ImageLayer,
            });
        }
        image.rootfs.diff_ids = layers.iter().map(|l| l.diff_id.to_string()).collect();
        let config_digest = Digest::of(&image.to_json());
        Ok(BuiltImage {
            image,
            layers,
            config_digest,
            lazy_layers: Vec::new(),
        })
    }
}

/// The image of a result an imported cache holds, made without bringing it in, as
/// `plan_image` and `ImagePlan::into_built` make it of the brought-in result (the same
/// layers, times and so the same config): a layer the content store lacks stays a blob of
/// the cache, which a push mounts or copies (`lazy_layers`). None when the cache does not
/// name every layer's diff ID: the result must then be brought in.
pub fn lazy_image(
    snapshots: &Snapshots,
    lazy: &crate::solver::lazy::LazyRef,
    mut image: Image,
) -> anyhow::Result<Option<BuiltImage>> {
    let content = &snapshots.content;
    let imported = lazy.imported();
    let empty = empty_layer_diff_id(snapshots)?;
    let mut layers = Vec::new();
    for layer in imported.layers() {
        let Some(diff_id) = &layer.diff_id else {
            return Ok(None);
        };
        layers.push((layer, *diff_id == empty));
    }
    let built_at = layers
        .iter()
        .map(|(layer, _)| layer.created)
        .max()
        .map_or_else(now_rfc3339, rfc3339);
    let layers = drop_empty_layers(&mut image.history, layers);
    image.rootfs.kind = "layers".into();
    for h in image.history.iter_mut().filter(|h| h.created.is_none()) {
        h.created = Some(built_at.clone());
    }
    if image.created.is_none() {
        image.created = Some(built_at);
    }
    imported.remember_blobs(content);
    let mut built = Vec::with_capacity(layers.len());
    let mut lazy_layers = Vec::new();
    for layer in layers {
        let Some(diff_id) = layer.diff_id.clone() else {
            return Ok(None);
        };
        if !content.exists(&diff_id) {
            lazy_layers.push((diff_id.clone(), layer.blob.clone()));
        }
        built.push(Layer {
            tar: content.path(&diff_id),
            diff_id,
            compressed: None,
            base: false,
        });
    }
    image.rootfs.diff_ids = built.iter().map(|l| l.diff_id.to_string()).collect();
    let config_digest = Digest::of(&image.to_json());
    Ok(Some(BuiltImage {
        image,
        layers: built,
        config_digest,
        lazy_layers,
    }))
}

/// The diff ID of a layer that changes nothing, as bud tars an empty directory: such a
/// layer is left out of the image, as `plan_image` leaves out an empty snapshot.
pub(crate) fn empty_layer_diff_id(snapshots: &Snapshots) -> anyhow::Result<Digest> {
    let ws = snapshots.workspace()?;
    let dir = ws.subdir("empty")?;
    let stats = crate::snapshot::diff::write_layer(&dir, std::io::sink())
        .context("tarring an empty layer")?;
    Ok(Digest::parse(&stats.diff_id)?)
}

/// Collects the result's layers, writing the tar of each new one into the content store,
/// and completes the image config.
pub fn build_image(
    snapshots: &Snapshots,
    content: &ContentStore,
    result: &Ref,
    image: Image,
) -> anyhow::Result<BuiltImage> {
    plan_image(snapshots, result, image)?.into_built(snapshots, content, None)
}

/// A step's layer tarred with mtimes clamped to `limit`: not the snapshot's own diff ID,
/// so not recorded with it (it is tarred again on each such export).
fn clamped_layer_tar(
    content: &ContentStore,
    record: &SnapshotRecord,
    dir: &Path,
    limit: i64,
) -> anyhow::Result<Digest> {
    let mut writer = content.writer()?;
    // A limit before 1970 clamps every mtime to 0, the earliest a tar header holds.
    let limit = u64::try_from(limit).unwrap_or(0);
    let stats = crate::snapshot::diff::write_layer_clamped(dir, &mut writer, Some(limit))
        .with_context(|| format!("writing the layer of {}", record.description))?;
    let digest = writer.commit(None)?;
    if digest.to_string() != stats.diff_id {
        bail!("layer digest mismatch for {}", record.description);
    }
    Ok(digest)
}

/// Whether tarring the snapshot's directory gives its recorded diff ID: only when this
/// version of the layer writer recorded it. One an earlier bud recorded, or one of a tar bud
/// did not write (an imported cache layer), holds only while that tar is stored.
fn tars_to_recorded_diff_id(record: &SnapshotRecord) -> bool {
    record.tar_format == crate::snapshot::diff::TAR_FORMAT
}

/// The uncompressed tar of a layer, by diff ID. Image layers were stored when they were
/// extracted; a step's layer is written from its directory the first time it is exported.
pub(crate) fn layer_tar(
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
    if record.diff_id.is_none() || !tars_to_recorded_diff_id(record) {
        snapshots.meta.set_diff_id(
            &record.id,
            &stats.diff_id,
            crate::snapshot::diff::TAR_FORMAT,
        )?;
    } else if record.diff_id.as_deref() != Some(stats.diff_id.as_str()) {
        bail!(
            "the layer of {} tars to {}, not the {} recorded for it",
            record.description,
            stats.diff_id,
            record.diff_id.as_deref().unwrap_or_default()
        );
    }
    Ok(digest)
}

/// BuildKit leaves out layers whose diff is empty and marks their history entries
/// `empty_layer`; history entries and layers are paired from the top.
/// `layers` come bottom-up, each with whether its diff is empty.
fn drop_empty_layers<T>(history: &mut [History], layers: Vec<(T, bool)>) -> Vec<T> {
    let mut kept = Vec::with_capacity(layers.len());
    let mut entries = history.iter_mut().rev().filter(|h| !h.empty_layer);
    for (layer, empty) in layers.into_iter().rev() {
        let entry = entries.next();
        if empty {
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

/// The snapshots of `result`'s chain that are layers of its image, bottom up: the rule
/// `plan_image` drops empty layers by.
pub fn kept_layer_ids(snapshots: &Snapshots, result: &Ref) -> anyhow::Result<Vec<String>> {
    let Ref::Snapshot(rec) = result else {
        return Ok(Vec::new());
    };
    let mut kept = Vec::new();
    for record in snapshots.chain_bottom_up(&rec.id)? {
        let dir = snapshots.layer_dir(&record.id);
        if !(record.kind == SnapshotKind::Layer && dir_is_empty(&dir)?) {
            kept.push(record.id);
        }
    }
    Ok(kept)
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

/// Writes a `docker load` tarball of `built`, tagged with `names`, to `dest`.
pub fn docker_archive(built: &BuiltImage, dest: &Dest, names: &[String]) -> anyhow::Result<()> {
    let out = open_dest(dest)?;
    exporter::docker_archive::write(out, &built.image, &built.layers, names, &HashSet::new())?;
    Ok(())
}

/// Returns the manifest digest.
pub fn oci_archive(
    built: &BuiltImage,
    dest: &Dest,
    names: &[String],
    annotations: &ImageAnnotations,
) -> anyhow::Result<Digest> {
    let out = open_dest(dest)?;
    Ok(exporter::oci_layout::write(
        out,
        &built.image,
        &built.layers,
        names,
        annotations,
    )?)
}

/// `built` with every layer compressed (`-o type=oci,compression=…`); the blobs are kept
/// in the content store, as a push keeps them.
pub fn with_compressed_layers(
    built: &BuiltImage,
    content: &ContentStore,
    compression: crate::registry::LayerCompression,
) -> anyhow::Result<BuiltImage> {
    if compression.kind == crate::registry::Compression::Estargz {
        // eStargz layers have diff IDs of their own: the config changes too.
        let (image, layers) =
            crate::registry::estargz::convert(content, &built.image, &built.layers, compression)?;
        let config_digest = Digest::of(&image.to_json());
        return Ok(BuiltImage {
            image,
            layers,
            config_digest,
            lazy_layers: Vec::new(),
        });
    }
    let mut layers = built.layers.clone();
    for layer in &mut layers {
        layer.compressed = Some(crate::registry::compress::compressed_layer(
            content,
            layer,
            compression,
        )?);
    }
    Ok(BuiltImage {
        image: built.image.clone(),
        layers,
        config_digest: built.config_digest.clone(),
        lazy_layers: built.lazy_layers.clone(),
    })
}

/// The platform `image` says it is for.
pub fn platform_of(image: &Image) -> bud_frontend::convert::Platform {
    bud_frontend::convert::Platform::new(&image.os, &image.architecture, &image.variant)
}

/// The result's filesystem as a tarball, in path order, owners and modes kept, every header
/// as BuildKit's tar exporter writes it; `epoch` (SOURCE_DATE_EPOCH, or the output's
/// `source-date-epoch`) is every entry's mtime.
pub fn filesystem_tar(root: &Path, dest: &Dest, epoch: Option<i64>) -> anyhow::Result<()> {
    filesystem_tars(&[(PathBuf::new(), root)], dest, epoch)
}

/// Several results' filesystems in one tarball, each under its own directory (a
/// multi-platform build's, one per platform), made as BuildKit makes a platform's: 0755,
/// mtime the epoch or 0.
pub fn filesystem_tars(
    parts: &[(PathBuf, &Path)],
    dest: &Dest,
    epoch: Option<i64>,
) -> anyhow::Result<()> {
    let mut writer = files_tar::Writer::new(open_dest(dest)?);
    for (prefix, root) in parts {
        if !prefix.as_os_str().is_empty() {
            writer
                .append(
                    &platform_dir_entry(prefix.as_os_str().as_bytes(), epoch),
                    &mut std::io::empty(),
                )
                .with_context(|| format!("adding {} to the tarball", prefix.display()))?;
        }
        let mut paths = Vec::new();
        collect_paths(root, Path::new(""), &mut paths)?;
        for (rel, _) in paths {
            append_entry(&mut writer, &root.join(&rel), &prefix.join(&rel), epoch)
                .with_context(|| format!("adding {} to the tarball", rel.display()))?;
        }
    }
    writer.finish().context("writing the tarball")?;
    Ok(())
}

/// A platform's directory `name` in a tarball of several, as BuildKit's tar exporter writes
/// it: 0755, owned by root, its mtime the epoch or 0.
pub fn platform_dir_entry(name: &[u8], epoch: Option<i64>) -> files_tar::Entry {
    let mut entry = files_tar::Entry::new(name, files_tar::Kind::Dir);
    entry.mode = 0o755;
    entry.mtime = epoch.unwrap_or(0);
    entry
}

/// `path` as `name`, as fsutil's `WriteTar` describes it: type, permission bits, owner,
/// device numbers, link target and xattrs (`SCHILY.xattr.` records) as they are, the mtime
/// `epoch` or the file's own rounded to the second (as Go's archive/tar rounds it).
fn append_entry<W: Write>(
    writer: &mut files_tar::Writer<W>,
    path: &Path,
    name: &Path,
    epoch: Option<i64>,
) -> anyhow::Result<()> {
    use files_tar::Kind;
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
    let meta = std::fs::symlink_metadata(path)?;
    let kind = meta.file_type();
    let mut entry = files_tar::Entry::new(
        name.as_os_str().as_bytes(),
        if kind.is_dir() {
            Kind::Dir
        } else if kind.is_symlink() {
            Kind::Symlink
        } else if kind.is_char_device() {
            Kind::Char
        } else if kind.is_block_device() {
            Kind::Block
        } else if kind.is_fifo() {
            Kind::Fifo
        } else {
            // A socket too: fsutil clears its type, and it has no content.
            Kind::File
        },
    );
    entry.mode = meta.mode() & 0o7777;
    entry.uid = meta.uid().into();
    entry.gid = meta.gid().into();
    let rounded = meta.mtime() + i64::from(meta.mtime_nsec() >= 500_000_000);
    entry.mtime = epoch.unwrap_or(rounded);
    if kind.is_char_device() || kind.is_block_device() {
        entry.device = (
            rustix::fs::major(meta.rdev()).into(),
            rustix::fs::minor(meta.rdev()).into(),
        );
    }
    if kind.is_symlink() {
        entry.link = std::fs::read_link(path)?.into_os_string().into_vec();
    }
    for (name, value) in crate::snapshot::file_xattrs(path)? {
        entry.records.insert(format!("SCHILY.xattr.{name}"), value);
    }
    if kind.is_file() {
        entry.size = meta.len();
        writer.append(&entry, &mut std::fs::File::open(path)?)?;
    } else {
        writer.append(&entry, &mut std::io::empty())?;
    }
    Ok(())
}

/// Every path below `root`, relative to it, in name order, each with whether it is a
/// directory; symlinks are not followed.
pub(super) fn collect_paths(
    root: &Path,
    rel: &Path,
    out: &mut Vec<(PathBuf, bool)>,
) -> anyhow::Result<()> {
    let dir = root.join(rel);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let child = rel.join(e.file_name());
        let is_dir = e.file_type()?.is_dir();
        out.push((child.clone(), is_dir));
        if is_dir {
            collect_paths(root, &child, out)?;
        }
    }
    Ok(())
}

/// The merged filesystem of the result into a directory, as `-o type=local` writes it;
/// `epoch` (SOURCE_DATE_EPOCH) is every entry's mtime, as BuildKit's local exporter sets
/// it (the destination itself keeps its own).
pub fn local_dir(root: &Path, dest: &Path, epoch: Option<i64>) -> anyhow::Result<()> {
    // As BuildKit's local exporter writes them on the client: every file is the user's
    // who builds (root, or in a user namespace the user), whatever the image says.
    copy_dir(
        root,
        dest,
        Some(crate::fileop::Owner { uid: 0, gid: 0 }),
        epoch.map(|e| e.saturating_mul(1_000_000_000)),
    )
}

/// A directory a daemon's local exporter wrote for bud (already the builder's files) copied
/// into `dest`, owners and times kept.
pub fn received_dir(root: &Path, dest: &Path) -> anyhow::Result<()> {
    copy_dir(root, dest, None, None)
}

/// Creates a local output's destination where it is missing, as BuildKit's client does
/// (`MkdirAll(dest, 0700)` in its session's receiver): private until the user opens it.
pub fn create_local_dest(dest: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dest)
        .with_context(|| format!("creating {}", dest.display()))
}

/// Gives a platform's directory of a local output (`linux_arm64/`) what BuildKit's local
/// exporter gives it: mode 0755 and the epoch, or 0, as its mtime.
pub fn finish_platform_dir(dir: &Path, epoch: Option<i64>) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("setting the mode of {}", dir.display()))?;
    // Before 1970 too, as BuildKit takes a negative epoch.
    let seconds = epoch.unwrap_or(0);
    let offset = std::time::Duration::from_secs(seconds.unsigned_abs());
    let mtime = if seconds < 0 {
        std::time::SystemTime::UNIX_EPOCH.checked_sub(offset)
    } else {
        std::time::SystemTime::UNIX_EPOCH.checked_add(offset)
    }
    .with_context(|| format!("the time {seconds}"))?;
    std::fs::File::open(dir)
        .and_then(|d| d.set_times(std::fs::FileTimes::new().set_modified(mtime)))
        .with_context(|| format!("setting the time of {}", dir.display()))
}

fn copy_dir(
    root: &Path,
    dest: &Path,
    owner: Option<crate::fileop::Owner>,
    timestamp: Option<i64>,
) -> anyhow::Result<()> {
    create_local_dest(dest)?;
    let action = crate::fileop::CopyAction {
        src: "/".into(),
        dest: "/".into(),
        owner,
        dir_copy_contents: true,
        create_dest_path: true,
        timestamp,
        ..Default::default()
    };
    crate::fileop::copy(root, dest, &action)
        .with_context(|| format!("writing the result to {}", dest.display()))?;
    if timestamp.is_some() {
        // The copy stamped the destination too; BuildKit's receiver never sets its time,
        // which is left as writing into it made it.
        std::fs::File::open(dest)
            .and_then(|d| d.set_times(std::fs::FileTimes::new().set_modified(SystemTime::now())))
            .with_context(|| format!("setting the time of {}", dest.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
            vec![("base", false), ("RUN true", true), ("COPY", false)],
        );
        assert_eq!(kept, ["base", "COPY"]);
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
