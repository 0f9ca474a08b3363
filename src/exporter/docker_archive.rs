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
//! `docker load` reads `manifest.json` and, for each layer, first looks its chain ID up in
//! its layer store; only a layer it does not hold is read from the archive. A layer's file
//! can therefore be left out when the daemon holds the layer with everything below it,
//! which is what `skip_layers` is for (see [`super::docker_load`]).
//!
//! No OCI `index.json` is written: Docker 20.10 ignores it, and an OCI layout would need
//! every blob a second time under `blobs/sha256/`. Docker's containerd image store imports
//! `manifest.json` archives as well.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;

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
    let repo_tags = tags
        .iter()
        .map(|t| ImageName::parse(t).map(|n| n.familiar()))
        .collect::<Result<Vec<_>, _>>()?;
    let config = image.to_json();
    let image_id = Digest::of(&config);

    let mut tar = super::tarball::Tarball::new(out);
    let mut written = HashSet::new();
    let mut parent: Option<&str> = None;
    for layer in layers {
        let dir = layer.diff_id.hex();
        // A diff (often the empty layer) can occur at several heights; one copy serves all.
        if written.insert(&layer.diff_id) {
            tar.dir(&format!("{dir}/"))?;
            tar.bytes(&format!("{dir}/VERSION"), b"1.0")?;
            let legacy = LegacyLayerJson {
                id: dir,
                parent: parent.filter(|p| *p != dir),
                created: image.created.as_deref(),
                os: &image.os,
            };
            tar.bytes(&format!("{dir}/json"), &to_json(&legacy))?;
            if !skip_layers.contains(&layer.diff_id) {
                tar.file(&format!("{dir}/layer.tar"), &layer.tar, &layer.diff_id)?;
            }
        }
        parent = Some(dir);
    }

    let config_name = format!("{}.json", image_id.hex());
    tar.bytes(&config_name, &config)?;

    if let Some(top) = layers.last() {
        let mut repositories: BTreeMap<String, BTreeMap<&str, &str>> = BTreeMap::new();
        for tag in &repo_tags {
            if let Some((repo, tag)) = tag.rsplit_once(':') {
                repositories
                    .entry(repo.to_owned())
                    .or_default()
                    .insert(tag, top.diff_id.hex());
            }
        }
        if !repositories.is_empty() {
            tar.bytes("repositories", &to_json(&repositories))?;
        }
    }

    let manifest = [ManifestEntry {
        config: config_name,
        repo_tags: (!repo_tags.is_empty()).then_some(&repo_tags[..]),
        layers: layers
            .iter()
            .map(|l| format!("{}/layer.tar", l.diff_id.hex()))
            .collect(),
    }];
    tar.bytes("manifest.json", &to_json(&manifest))?;
    tar.finish()?.flush().map_err(ExportError::Write)?;
    Ok(image_id)
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    // Only strings, sequences and string-keyed maps: serialization cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}
