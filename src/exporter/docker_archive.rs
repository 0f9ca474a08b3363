//! The `docker save` archive format, read by `docker load`.
//!
//! ```text
//! manifest.json                 [{"Config": "<id>.json", "RepoTags": [...], "Layers": [...]}]
//! repositories                  legacy {"repo": {"tag": "<top layer dir>"}}
//! <id>.json                     the image config; <id> is its sha256, the image ID
//! <diff-id>/VERSION, json       legacy v1 metadata, as `docker save` writes it
//! <diff-id>/layer.tar           the uncompressed layer
//! ```
//!
//! A layer tarred from its snapshot directory while the archive is written has no diff ID
//! yet when its entries start: its directory is `layer<N>` instead, and the config (which
//! lists the diff IDs) follows the layers. `docker load` reads `manifest.json` only once the
//! whole archive is in, so the order of entries does not matter to it.
//!
//! `docker load` reads `manifest.json` and, for each layer, first looks its chain ID up in
//! its layer store; only a layer it does not hold is read from the archive. A layer's file
//! can therefore be left out when the daemon holds the layer with everything below it,
//! which is what `skip_layers` is for (see [`super::docker_load`]).
//!
//! No OCI `index.json` is written: Docker 20.10 ignores it, and an OCI layout would need
//! every blob a second time under `blobs/sha256/`. Docker's containerd image store imports
//! `manifest.json` archives as well.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::Path;

use serde::Serialize;

use super::{ExportError, Image, ImageName, Layer, check_layers};
use crate::content::Digest;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestEntry<'a> {
    config: String,
    /// `null` for an untagged image, as `docker save` writes it.
    repo_tags: Option<&'a [String]>,
    layers: Vec<String>,
}

/// Legacy per-layer `json` (Docker image format v1). Nothing current reads it; it keeps
/// the archive shaped like `docker save`'s for older tools.
#[derive(Serialize)]
struct LegacyLayerJson<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created: Option<&'a str>,
    #[serde(skip_serializing_if = "str::is_empty")]
    os: &'a str,
}

/// Writes the archive of `image` to `out` and returns the image ID (the config's digest).
///
/// Layers whose diff ID is in `skip_layers` are listed in the manifest but their
/// `layer.tar` is left out: only pass layers the receiving daemon holds with the same
/// layers below them.
pub fn write(
    out: impl Write,
    image: &Image,
    layers: &[Layer],
    tags: &[String],
    skip_layers: &HashSet<Digest>,
) -> Result<Digest, ExportError> {
    check_layers(image, layers)?;
    let layers: Vec<ArchiveLayer<'_>> = layers
        .iter()
        .map(|l| ArchiveLayer {
            diff_id: Some(&l.diff_id),
            tar: if skip_layers.contains(&l.diff_id) {
                ArchiveTar::Held
            } else {
                ArchiveTar::Stored(&l.tar)
            },
        })
        .collect();
    Ok(write_layers(out, image, &layers, tags)?.image_id)
}

/// One layer of an archive being written.
#[derive(Debug, Clone, Copy)]
pub struct ArchiveLayer<'a> {
    /// Known unless the layer is a directory never tarred before.
    pub diff_id: Option<&'a Digest>,
    /// Where its bytes come from.
    pub tar: ArchiveTar<'a>,
}

/// Where an archived layer's bytes come from.
#[derive(Debug, Clone, Copy)]
pub enum ArchiveTar<'a> {
    /// A tar file whose sha256 is the layer's diff ID.
    Stored(&'a Path),
    /// A snapshot's upper directory, tarred into the archive as it is written.
    Directory(&'a Path),
    /// Held by the receiving daemon: listed, not included. Needs a known diff ID.
    Held,
}

/// What [`write_layers`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// sha256 of the config JSON, the ID `docker load` gives the image.
    pub image_id: Digest,
    /// The layers' diff IDs, as the config lists them.
    pub diff_ids: Vec<Digest>,
}

/// Writes the archive of `image`, whose `rootfs.diff_ids` are those of `layers` (computed
/// here for directories, which is why the config comes after the layers).
pub fn write_layers(
    out: impl Write,
    image: &Image,
    layers: &[ArchiveLayer<'_>],
    tags: &[String],
) -> Result<Written, ExportError> {
    let repo_tags = tags
        .iter()
        .map(|t| ImageName::parse(t).map(|n| n.familiar()))
        .collect::<Result<Vec<_>, _>>()?;

    let mut tar = super::tarball::Tarball::new(out);
    // Where each diff's layer.tar is: a diff (often the empty layer) can occur at several
    // heights, and one copy serves all.
    let mut written: HashMap<Digest, String> = HashMap::new();
    let mut dirs: Vec<String> = Vec::with_capacity(layers.len());
    let mut diff_ids = Vec::with_capacity(layers.len());
    for (index, layer) in layers.iter().enumerate() {
        if let Some(d) = layer.diff_id
            && let Some(dir) = written.get(d)
        {
            diff_ids.push(d.clone());
            dirs.push(dir.clone());
            continue;
        }
        let dir = match layer.diff_id {
            Some(d) => d.hex().to_owned(),
            None => format!("layer{index}"),
        };
        tar.dir(&format!("{dir}/"))?;
        tar.bytes(&format!("{dir}/VERSION"), b"1.0")?;
        let legacy = LegacyLayerJson {
            id: &dir,
            parent: dirs.last().map(String::as_str).filter(|p| *p != dir),
            created: image.created.as_deref(),
            os: &image.os,
        };
        tar.bytes(&format!("{dir}/json"), &to_json(&legacy))?;
        let entry = format!("{dir}/layer.tar");
        let diff_id = match (layer.tar, layer.diff_id) {
            (ArchiveTar::Stored(path), Some(expected)) => {
                tar.file(&entry, path, expected)?;
                expected.clone()
            }
            (ArchiveTar::Directory(upper), expected) => {
                let actual = tar.layer_dir(&entry, upper)?;
                if let Some(expected) = expected
                    && *expected != actual
                {
                    return Err(ExportError::LayerDigest {
                        path: upper.to_owned(),
                        expected: expected.clone(),
                        actual,
                    });
                }
                actual
            }
            (ArchiveTar::Held, Some(known)) => known.clone(),
            (ArchiveTar::Stored(_) | ArchiveTar::Held, None) => {
                return Err(ExportError::UnknownDiffId { index });
            }
        };
        written.insert(diff_id.clone(), dir.clone());
        diff_ids.push(diff_id);
        dirs.push(dir);
    }

    let mut image = image.clone();
    image.rootfs.diff_ids = diff_ids.iter().map(Digest::to_string).collect();
    let config = image.to_json();
    let image_id = Digest::of(&config);
    let config_name = format!("{}.json", image_id.hex());
    tar.bytes(&config_name, &config)?;

    if let Some(top) = dirs.last() {
        let mut repositories: BTreeMap<String, BTreeMap<&str, &str>> = BTreeMap::new();
        for tag in &repo_tags {
            if let Some((repo, tag)) = tag.rsplit_once(':') {
                repositories
                    .entry(repo.to_owned())
                    .or_default()
                    .insert(tag, top);
            }
        }
        if !repositories.is_empty() {
            tar.bytes("repositories", &to_json(&repositories))?;
        }
    }

    let manifest = [ManifestEntry {
        config: config_name,
        repo_tags: (!repo_tags.is_empty()).then_some(&repo_tags[..]),
        layers: dirs.iter().map(|d| format!("{d}/layer.tar")).collect(),
    }];
    tar.bytes("manifest.json", &to_json(&manifest))?;
    tar.finish()?.flush().map_err(ExportError::Write)?;
    Ok(Written { image_id, diff_ids })
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    // Only strings, sequences and string-keyed maps: serialization cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}
