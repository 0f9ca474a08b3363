//! Manifests and indexes as registries serve them: Docker's v2 schema 2 and the OCI image
//! spec share one shape, so one set of types reads both and the media types tell them apart.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

// The media types of the documents and blobs, Docker's (v2 schema 2) and OCI's.

/// A Docker v2 schema 2 image manifest: what `docker push` writes, and what bud pushes
/// unless `oci-mediatypes=true` or a layer has no Docker media type (zstd, eStargz).
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// A Docker manifest list: the index of Docker manifests, one per platform.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// An OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// An OCI image index: manifests per platform, or a cache's or attestation's manifests.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

pub(crate) const DOCKER_CONFIG: &str = bud_frontend::image::DOCKER_CONFIG_MEDIA_TYPE;
pub(crate) const OCI_CONFIG: &str = bud_frontend::image::OCI_CONFIG_MEDIA_TYPE;

pub(crate) const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
pub(crate) const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// A Windows base layer another server hosts (`urls`); read like any gzip layer.
pub(crate) const DOCKER_FOREIGN_LAYER_GZIP: &str =
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
pub(crate) const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub(crate) const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub(crate) const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// OCI's counterpart of Docker's foreign layers, deprecated by the spec but still met.
pub(crate) const OCI_NONDISTRIBUTABLE_LAYER_GZIP: &str =
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";

/// What a pull asks for, image manifests and indexes of both kinds.
pub(crate) const ACCEPTED: &[&str] = &[
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_MANIFEST,
    OCI_INDEX,
];

/// Whether a pulled manifest's layer of this media type is one bud unpacks (plain tar or gzip,
/// Docker's or OCI's; OCI's zstd); a pull refuses any other rather than store a blob
/// it cannot extract.
pub(crate) fn is_layer(media_type: &str) -> bool {
    matches!(
        media_type,
        DOCKER_LAYER
            | DOCKER_LAYER_GZIP
            | DOCKER_FOREIGN_LAYER_GZIP
            | OCI_LAYER
            | OCI_LAYER_GZIP
            | OCI_LAYER_ZSTD
            | OCI_NONDISTRIBUTABLE_LAYER_GZIP
    )
}

/// A reference to a blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// What the blob is (a manifest, a config, a layer and its compression).
    pub media_type: String,
    /// `algorithm:hex` of the blob's bytes; kept as text, as registries send it, and parsed
    /// where it is used.
    pub digest: String,
    /// The blob's length in bytes.
    pub size: u64,
    /// Where a foreign or non-distributable layer can be downloaded instead.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Free-form metadata (an index entry's `org.opencontainers.image.ref.name`, eStargz's
    /// TOC digest, an attestation's reference).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// In an index: the platform the manifest is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// An image manifest: a config and its layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Always 2 (schema 1 is refused by [`Document::parse`]).
    pub schema_version: u32,
    /// The manifest's own media type; optional in OCI, where the `Content-Type` says it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The image config blob.
    pub config: Descriptor,
    /// The layer blobs, bottom first, one per diff ID of the config.
    pub layers: Vec<Descriptor>,
    /// `--annotation`s of the manifest (OCI only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A manifest list or image index: one manifest per platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    /// Always 2.
    pub schema_version: u32,
    /// The index's own media type: a Docker manifest list or an OCI index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The manifests, each with its platform (attestation manifests with `unknown/unknown`).
    pub manifests: Vec<Descriptor>,
    /// `--annotation index:…`s (OCI only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Either document, told apart by media type or, when a registry leaves it out of the body,
/// by shape (an index has `manifests`, a manifest `config`).
#[derive(Debug, Clone)]
pub enum Document {
    /// One image (boxed, the larger of the two).
    Manifest(Box<Manifest>),
    /// A manifest list or image index.
    Index(Index),
}

/// Why bytes are not a manifest or index bud reads.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// Not JSON of either shape.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// Schema 1 manifests (long deprecated) or an unknown schema.
    #[error("schema version {0:?} is not supported (only 2)")]
    SchemaVersion(Option<u32>),
    /// A media type of neither a manifest nor an index.
    #[error("unsupported media type {0:?}")]
    MediaType(String),
}

impl Document {
    /// Reads a manifest or index; `content_type` is the registry's `Content-Type`, used when
    /// the body names no media type.
    pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Document, DocumentError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Probe {
            schema_version: Option<u32>,
            media_type: Option<String>,
            manifests: Option<serde::de::IgnoredAny>,
        }
        let probe: Probe = serde_json::from_slice(bytes)?;
        if probe.schema_version != Some(2) {
            return Err(DocumentError::SchemaVersion(probe.schema_version));
        }
        let media_type = probe.media_type.as_deref().or(content_type);
        let is_index = match media_type {
            Some(DOCKER_MANIFEST_LIST | OCI_INDEX) => true,
            Some(DOCKER_MANIFEST | OCI_MANIFEST) => false,
            Some(other) => return Err(DocumentError::MediaType(other.to_owned())),
            None => probe.manifests.is_some(),
        };
        Ok(if is_index {
            Document::Index(serde_json::from_slice(bytes)?)
        } else {
            Document::Manifest(Box::new(serde_json::from_slice(bytes)?))
        })
    }
}

/// An OS and CPU an image runs on: `linux/amd64`, `linux/arm64/v8`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    /// `linux`, `windows`…, as Go's `GOOS`.
    pub os: String,
    /// `amd64`, `arm64`, `arm`…, as Go's `GOARCH`.
    pub architecture: String,
    /// The CPU variant (`v7` of arm, `v8` of arm64), empty when none is named.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
    /// `os.version`: Windows images name the build of the OS they need; empty elsewhere.
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub os_version: String,
}

impl Default for Platform {
    /// `linux/amd64`, what `docker build` targets unless told otherwise on these machines.
    fn default() -> Self {
        Platform::new("linux", "amd64", "")
    }
}

impl Platform {
    /// The platform `os/architecture[/variant]` (an empty variant names none), with no OS
    /// version.
    pub fn new(os: &str, architecture: &str, variant: &str) -> Platform {
        Platform {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.to_owned(),
            os_version: String::new(),
        }
    }

    /// Parses `os/arch[/variant]`.
    pub fn parse(text: &str) -> Option<Platform> {
        let mut parts = text.split('/');
        let os = parts.next().filter(|s| !s.is_empty())?;
        let arch = parts.next().filter(|s| !s.is_empty())?;
        let variant = parts.next().unwrap_or("");
        if parts.next().is_some() {
            return None;
        }
        Some(Platform::new(os, arch, variant))
    }

    /// Whether an image for `offered` runs here. arm64's only variant is v8, so its
    /// absence and presence mean the same, as arm's absence means v7 (containerd's
    /// normalisation); elsewhere a wanted variant must be offered.
    pub fn matches(&self, offered: &Platform) -> bool {
        if self.os != offered.os || self.architecture != offered.architecture {
            return false;
        }
        let normal = |p: &Platform| match (p.architecture.as_str(), p.variant.as_str()) {
            ("arm64", "v8") => String::new(),
            ("arm", "") => "v7".to_owned(),
            _ => p.variant.clone(),
        };
        self.variant.is_empty() || normal(self) == normal(offered)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

/// The index entry to use for `platform`: the first that matches, preferring an exact
/// variant when several do (an index may list `arm/v6` and `arm/v7`).
pub fn select<'a>(index: &'a Index, platform: &Platform) -> Option<&'a Descriptor> {
    let candidates = || {
        index.manifests.iter().filter(|d| {
            d.platform.as_ref().is_some_and(|p| platform.matches(p))
                && matches!(d.media_type.as_str(), DOCKER_MANIFEST | OCI_MANIFEST)
        })
    };
    candidates()
        .find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.variant == platform.variant)
        })
        .or_else(|| candidates().next())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = r#"{
      "schemaVersion": 2,
      "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
      "manifests": [
        {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 1,
         "digest": "sha256:arm7", "platform": {"architecture": "arm", "os": "linux", "variant": "v7"}},
        {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 1,
         "digest": "sha256:amd64", "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 1,
         "digest": "sha256:arm64", "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 1,
         "digest": "sha256:attestation", "platform": {"architecture": "unknown", "os": "unknown"}}
      ]
    }"#;

    fn select_digest(platform: &str) -> Option<String> {
        let Document::Index(index) = Document::parse(INDEX.as_bytes(), None).unwrap() else {
            panic!("not an index");
        };
        select(&index, &Platform::parse(platform).unwrap()).map(|d| d.digest.clone())
    }

    #[test]
    fn index_entries_are_chosen_by_platform() {
        assert_eq!(
            select_digest("linux/amd64").as_deref(),
            Some("sha256:amd64")
        );
        assert_eq!(
            select_digest("linux/arm64").as_deref(),
            Some("sha256:arm64")
        );
        assert_eq!(
            select_digest("linux/arm64/v8").as_deref(),
            Some("sha256:arm64")
        );
        assert_eq!(
            select_digest("linux/arm/v7").as_deref(),
            Some("sha256:arm7")
        );
        assert_eq!(select_digest("linux/arm/v6"), None);
        assert_eq!(select_digest("windows/amd64"), None);
    }

    #[test]
    fn documents_are_told_apart_without_a_media_type() {
        let manifest = r#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:c","size":2},"layers":[]}"#;
        assert!(matches!(
            Document::parse(manifest.as_bytes(), None),
            Ok(Document::Manifest(_))
        ));
        let index = r#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(matches!(
            Document::parse(index.as_bytes(), None),
            Ok(Document::Index(_))
        ));
        assert!(Document::parse(br#"{"schemaVersion":1}"#, None).is_err());
        assert!(
            Document::parse(
                br#"{"schemaVersion":2,"mediaType":"text/plain","manifests":[]}"#,
                None
            )
            .is_err()
        );
    }
}
