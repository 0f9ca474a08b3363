//! An OCI image layout as a tarball, as `-o type=oci,dest=FILE` writes it.
//!
//! ```text
//! oci-layout                    {"imageLayoutVersion":"1.0.0"}
//! blobs/sha256/<hex>            layers, the config, the manifest
//! index.json                    one manifest descriptor per name
//! ```
//!
//! Names are recorded the way containerd's archive exporter (used by BuildKit) records them:
//! `io.containerd.image.name` holds the full name, `org.opencontainers.image.ref.name` the tag.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use serde::Serialize;

use super::annotations::ImageAnnotations;
use super::{ExportError, Image, ImageName, Layer, OCI_LAYER_TAR, check_layers};
use crate::content::Digest;
use bud_frontend::image::OCI_CONFIG_MEDIA_TYPE;

/// Media type of an OCI image manifest.
pub(crate) const OCI_MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of an OCI image index.
pub(crate) const OCI_INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// The full image name (`docker.io/library/app:latest`) on an `index.json` entry, which
/// containerd and BuildKit's OCI exporter write so `ctr import` can name the image.
pub(crate) const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// The tag alone (`latest`) on an `index.json` entry, as the OCI layout spec names an image.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Creation time (RFC 3339), which BuildKit puts on an image index.
pub(crate) const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    digest: Digest,
    size: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest<'a> {
    schema_version: u32,
    media_type: &'static str,
    config: &'a Descriptor,
    layers: &'a [Descriptor],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    schema_version: u32,
    media_type: &'static str,
    manifests: Vec<Descriptor>,
}

/// Writes the layout of `image` to `out`; returns the manifest's digest.
///
/// A layer with a compressed blob is stored compressed (with its media type), otherwise as
/// an uncompressed tar whose digest is its diff ID. `annotations` go into the manifest and
/// onto its descriptors in `index.json`, as BuildKit's OCI exporter writes them.
pub fn write(
    out: impl Write,
    image: &Image,
    layers: &[Layer],
    tags: &[String],
    annotations: &ImageAnnotations,
) -> Result<Digest, ExportError> {
    check_layers(image, layers)?;
    let names = tags
        .iter()
        .map(|t| ImageName::parse(t))
        .collect::<Result<Vec<_>, _>>()?;

    let mut tar = super::tarball::Tarball::new(out);
    tar.bytes("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    tar.dir("blobs/")?;
    tar.dir("blobs/sha256/")?;

    let mut written = HashMap::new();
    let mut layer_descriptors = Vec::with_capacity(layers.len());
    for layer in layers {
        let (path, digest, media_type) = match &layer.compressed {
            Some(blob) => (&blob.path, &blob.digest, blob.media_type.as_str()),
            None => (&layer.tar, &layer.diff_id, OCI_LAYER_TAR),
        };
        let annotations = layer
            .compressed
            .as_ref()
            .map(|blob| blob.annotations.clone())
            .unwrap_or_default();
        // A blob occurring twice (the empty layer, often) is stored once.
        let size = match written.get(digest) {
            Some(&size) => size,
            None => {
                let size = tar.file(&blob_path(digest), path, digest)?;
                written.insert(digest.clone(), size);
                size
            }
        };
        layer_descriptors.push(Descriptor {
            annotations,
            ..descriptor(media_type, digest.clone(), size)
        });
    }

    let config_bytes = image.to_json();
    let config = blob(&mut tar, &mut written, OCI_CONFIG_MEDIA_TYPE, &config_bytes)?;
    let manifest_bytes = to_json(&Manifest {
        schema_version: 2,
        media_type: OCI_MANIFEST_MEDIA_TYPE,
        config: &config,
        layers: &layer_descriptors,
        annotations: &annotations.manifest,
    });
    let manifest = blob(
        &mut tar,
        &mut written,
        OCI_MANIFEST_MEDIA_TYPE,
        &manifest_bytes,
    )?;

    let mut manifests = Vec::new();
    let mut base = manifest.clone();
    if let Some(created) = &image.created {
        base.annotations
            .insert(ANNOTATION_CREATED.to_owned(), created.clone());
    }
    base.annotations.extend(
        annotations
            .manifest_descriptor
            .iter()
            .map(|(k, v)| (k.clone(), v.clone())),
    );
    for name in &names {
        let mut named = base.clone();
        named
            .annotations
            .insert(ANNOTATION_IMAGE_NAME.to_owned(), name.to_string());
        named
            .annotations
            .insert(ANNOTATION_REF_NAME.to_owned(), name.tag.clone());
        manifests.push(named);
    }
    if manifests.is_empty() {
        manifests.push(base);
    }
    let index = Index {
        schema_version: 2,
        media_type: OCI_INDEX_MEDIA_TYPE,
        manifests,
    };
    tar.bytes("index.json", &to_json(&index))?;
    tar.finish()?.flush().map_err(ExportError::Write)?;
    Ok(manifest.digest)
}

fn blob<W: Write>(
    tar: &mut super::tarball::Tarball<W>,
    written: &mut HashMap<Digest, u64>,
    media_type: &str,
    bytes: &[u8],
) -> Result<Descriptor, ExportError> {
    let digest = Digest::of(bytes);
    if !written.contains_key(&digest) {
        tar.bytes(&blob_path(&digest), bytes)?;
        written.insert(digest.clone(), bytes.len() as u64);
    }
    Ok(descriptor(media_type, digest, bytes.len() as u64))
}

fn descriptor(media_type: &str, digest: Digest, size: u64) -> Descriptor {
    Descriptor {
        media_type: media_type.to_owned(),
        digest,
        size,
        annotations: BTreeMap::new(),
    }
}

fn blob_path(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    // Only strings, numbers, sequences and string-keyed maps: serialization cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}
