//! A multi-platform image as an OCI image layout tarball (`-o type=oci,dest=FILE` with
//! several platforms), as BuildKit's OCI exporter writes it:
//!
//! ```text
//! oci-layout                    {"imageLayoutVersion":"1.0.0"}
//! blobs/sha256/<hex>            every platform's layers, config and manifest; the image index
//! index.json                    the image index's descriptor, once per name
//! ```
//!
//! The image index (a blob) lists one manifest per platform, each with its platform.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use serde::Serialize;
use serde_json::{Value, json};

use super::oci_layout::{
    ANNOTATION_CREATED, ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, OCI_INDEX_MEDIA_TYPE,
    OCI_MANIFEST_MEDIA_TYPE,
};
use super::tarball::Tarball;
use super::{ExportError, Image, ImageName, Layer, OCI_LAYER_TAR, check_layers};
use crate::content::Digest;
use bud_frontend::convert::Platform;
use bud_frontend::image::OCI_CONFIG_MEDIA_TYPE;

/// One platform's image.
pub struct PlatformImage<'a> {
    /// The platform its index entry names.
    pub platform: &'a Platform,
    /// Its config; `rootfs.diff_ids` name `layers`.
    pub image: &'a Image,
    /// Its layers, base first.
    pub layers: &'a [Layer],
    /// Written into its manifest and onto the index's entry for it.
    pub annotations: Option<&'a super::annotations::ImageAnnotations>,
    /// Attached as an attestation manifest, listed after every image's manifest.
    pub attestations: &'a [crate::attest::Attestation],
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: &'static str,
    digest: Digest,
    size: u64,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<Value>,
}

/// Blobs written so far, by digest: each goes in once.
struct Blobs<W: Write> {
    tar: Tarball<W>,
    written: HashMap<Digest, u64>,
}

impl<W: Write> Blobs<W> {
    fn bytes(&mut self, media_type: &'static str, bytes: &[u8]) -> Result<Descriptor, ExportError> {
        let digest = Digest::of(bytes);
        if !self.written.contains_key(&digest) {
            self.tar.bytes(&blob_path(&digest), bytes)?;
            self.written.insert(digest.clone(), bytes.len() as u64);
        }
        Ok(descriptor(media_type, digest, bytes.len() as u64))
    }

    /// A layer, compressed when the build compressed it, else its uncompressed tar.
    fn layer(&mut self, layer: &Layer) -> Result<Value, ExportError> {
        let (path, digest, media_type) = match &layer.compressed {
            Some(blob) => (&blob.path, &blob.digest, blob.media_type.as_str()),
            None => (&layer.tar, &layer.diff_id, OCI_LAYER_TAR),
        };
        let size = match self.written.get(digest) {
            Some(&size) => size,
            None => {
                let size = self.tar.file(&blob_path(digest), path, digest)?;
                self.written.insert(digest.clone(), size);
                size
            }
        };
        let mut descriptor = json!({"mediaType": media_type, "digest": digest, "size": size});
        if let Some(blob) = &layer.compressed
            && !blob.annotations.is_empty()
        {
            descriptor["annotations"] = json!(blob.annotations);
        }
        Ok(descriptor)
    }
}

/// Written into the image index (`index`) and onto its descriptor in `index.json`
/// (`index_descriptor`), as BuildKit's OCI exporter writes them.
#[derive(Debug, Clone, Copy, Default)]
pub struct IndexAnnotations<'a> {
    /// Written into the image index.
    pub index: Option<&'a BTreeMap<String, String>>,
    /// Written onto the index's descriptor in `index.json`.
    pub index_descriptor: Option<&'a BTreeMap<String, String>>,
}

/// Writes the layout of `images` (one per platform, in index order) to `out`; returns the
/// image index's digest.
pub fn write(
    out: impl Write,
    images: &[PlatformImage<'_>],
    tags: &[String],
    annotations: IndexAnnotations<'_>,
) -> Result<Digest, ExportError> {
    let names = tags
        .iter()
        .map(|t| ImageName::parse(t))
        .collect::<Result<Vec<_>, _>>()?;
    let mut blobs = Blobs {
        tar: Tarball::new(out),
        written: HashMap::new(),
    };
    blobs
        .tar
        .bytes("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    blobs.tar.dir("blobs/")?;
    blobs.tar.dir("blobs/sha256/")?;

    let mut manifests = Vec::with_capacity(images.len());
    let mut attestations = Vec::new();
    for p in images {
        check_layers(p.image, p.layers)?;
        let layers = p
            .layers
            .iter()
            .map(|l| blobs.layer(l))
            .collect::<Result<Vec<_>, _>>()?;
        let config = blobs.bytes(OCI_CONFIG_MEDIA_TYPE, &p.image.to_json())?;
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST_MEDIA_TYPE,
            "config": config,
            "layers": layers,
        });
        if let Some(a) = p.annotations
            && !a.manifest.is_empty()
        {
            manifest["annotations"] = json!(a.manifest);
        }
        let mut manifest = blobs.bytes(OCI_MANIFEST_MEDIA_TYPE, &to_json(&manifest))?;
        if let Some(a) = p.annotations {
            manifest.annotations.extend(
                a.manifest_descriptor
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
        }
        if let Some(attestation) = crate::attest::AttestationManifest::new(
            p.attestations,
            tags,
            p.platform,
            &manifest.digest,
            &layers,
        )
        .map_err(ExportError::Attestation)?
        {
            for blob in &attestation.blobs {
                blobs.bytes(blob.media_type, &blob.bytes)?;
            }
            blobs.bytes(attestation.media_type(), &attestation.manifest)?;
            attestations.push(attestation.index_entry());
        }
        let mut platform = json!({"architecture": p.platform.architecture, "os": p.platform.os});
        if !p.platform.variant.is_empty() {
            platform["variant"] = json!(p.platform.variant);
        }
        manifest.platform = Some(platform);
        manifests.push(manifest);
    }
    let mut listed: Vec<Value> = manifests
        .iter()
        .map(|m| serde_json::to_value(m).unwrap_or_default())
        .collect();
    listed.extend(attestations);
    let mut index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX_MEDIA_TYPE,
        "manifests": listed,
    });
    if let Some(a) = annotations.index.filter(|a| !a.is_empty()) {
        index["annotations"] = json!(a);
    }
    let index = blobs.bytes(OCI_INDEX_MEDIA_TYPE, &to_json(&index))?;

    let mut base = index.clone();
    if let Some(a) = annotations.index_descriptor {
        base.annotations
            .extend(a.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    if let Some(created) = images.iter().filter_map(|p| p.image.created.clone()).max() {
        // An index-descriptor annotation of the same key wins, as in BuildKit.
        base.annotations
            .entry(ANNOTATION_CREATED.to_owned())
            .or_insert(created);
    }
    let mut entries = Vec::new();
    for name in &names {
        let mut named = base.clone();
        named
            .annotations
            .insert(ANNOTATION_IMAGE_NAME.to_owned(), name.to_string());
        named
            .annotations
            .insert(ANNOTATION_REF_NAME.to_owned(), name.tag.clone());
        entries.push(named);
    }
    if entries.is_empty() {
        entries.push(base);
    }
    let top = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX_MEDIA_TYPE,
        "manifests": entries,
    });
    blobs.tar.bytes("index.json", &to_json(&top))?;
    blobs.tar.finish()?.flush().map_err(ExportError::Write)?;
    Ok(index.digest)
}

fn descriptor(media_type: &'static str, digest: Digest, size: u64) -> Descriptor {
    Descriptor {
        media_type,
        digest,
        size,
        annotations: BTreeMap::new(),
        platform: None,
    }
}

fn blob_path(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    // Only strings, numbers, sequences and string-keyed maps: serialization cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}
