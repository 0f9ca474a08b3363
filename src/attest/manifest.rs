//! The attestation manifest of one platform's image, as BuildKit's image writer makes it
//! (`commitAttestationsManifest`): each statement a layer (`application/vnd.in-toto+json`,
//! annotated with its predicate type), a config of platform `unknown/unknown` whose diff IDs
//! are the statements' digests, and an index entry of platform `unknown/unknown` pointing
//! at the image manifest (`vnd.docker.reference.digest`).

use std::collections::BTreeMap;

use bud_frontend::convert::Platform;
use serde::Serialize;
use serde_json::{Value, json};

use super::Attestation;
use crate::content::Digest;

/// The media type of a statement's layer.
const IN_TOTO_MEDIA_TYPE: &str = "application/vnd.in-toto+json";
/// The statement's `_type`: BuildKit still writes in-toto v0.1 statements.
const IN_TOTO_STATEMENT_V01: &str = "https://in-toto.io/Statement/v0.1";
/// The annotation naming a statement layer's predicate type.
const PREDICATE_TYPE_ANNOTATION: &str = "in-toto.io/predicate-type";
/// The index entry annotation that marks a manifest as an attestation manifest (value
/// [`ATTESTATION_MANIFEST`]); Docker and registries' UIs hide such entries.
pub const REFERENCE_TYPE_ANNOTATION: &str = "vnd.docker.reference.type";
/// The index entry annotation naming the image manifest the attestations are about.
pub const REFERENCE_DIGEST_ANNOTATION: &str = "vnd.docker.reference.digest";
/// The value of [`REFERENCE_TYPE_ANNOTATION`] on an attestation manifest's entry.
pub const ATTESTATION_MANIFEST: &str = "attestation-manifest";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// One blob of an attestation manifest: a statement or the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// In-toto JSON for a statement, an OCI image config for the config.
    pub media_type: &'static str,
    /// sha256 of `bytes`.
    pub digest: Digest,
    /// The blob as pushed or written into a layout.
    pub bytes: Vec<u8>,
    /// The descriptor's annotations (a statement's predicate type).
    pub annotations: BTreeMap<String, String>,
}

impl Blob {
    fn new(media_type: &'static str, bytes: Vec<u8>) -> Blob {
        Blob {
            media_type,
            digest: Digest::of(&bytes),
            bytes,
            annotations: BTreeMap::new(),
        }
    }

    /// Its descriptor, fields in the order Go writes them.
    fn descriptor(&self) -> Value {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Descriptor<'a> {
            media_type: &'a str,
            digest: String,
            size: usize,
            #[serde(skip_serializing_if = "BTreeMap::is_empty")]
            annotations: &'a BTreeMap<String, String>,
        }
        serde_json::to_value(Descriptor {
            media_type: self.media_type,
            digest: self.digest.to_string(),
            size: self.bytes.len(),
            annotations: &self.annotations,
        })
        .unwrap_or_default()
    }
}

/// An attestation manifest, ready to be written next to the image it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationManifest {
    /// The statements, in order, then the config.
    pub blobs: Vec<Blob>,
    /// The OCI image manifest's JSON, as pushed or written.
    pub manifest: Vec<u8>,
    /// sha256 of `manifest`, the digest the image index names.
    pub digest: Digest,
    /// The image manifest the statements are about.
    pub subject: Digest,
}

/// An in-toto statement, fields in the order in-toto-golang writes them.
#[derive(Serialize)]
struct Statement<'a> {
    #[serde(rename = "_type")]
    kind: &'static str,
    #[serde(rename = "predicateType")]
    predicate_type: &'a str,
    subject: Vec<Value>,
    predicate: &'a Value,
}

impl AttestationManifest {
    /// The attestation manifest of `attestations` about the image manifest `subject` of
    /// `platform`, named (in each statement's subject) by every one of `names`, as package
    /// URLs. `image_layers` are the image manifest's layer descriptors, which a max-mode
    /// provenance lists per step. `None` when there is nothing to attest.
    pub fn new(
        attestations: &[Attestation],
        names: &[String],
        platform: &Platform,
        subject: &Digest,
        image_layers: &[Value],
    ) -> Result<Option<AttestationManifest>, super::AttestError> {
        if attestations.is_empty() {
            return Ok(None);
        }
        let mut subjects = Vec::new();
        for name in names {
            subjects.push(json!({
                "name": super::image_purl(name, Some(platform))?,
                "digest": {"sha256": subject.hex()},
            }));
        }
        let mut blobs = Vec::with_capacity(attestations.len() + 1);
        for a in attestations {
            let predicate = with_layers(a, image_layers)?;
            let statement = Statement {
                kind: IN_TOTO_STATEMENT_V01,
                predicate_type: &a.predicate_type,
                subject: subjects.clone(),
                predicate: &predicate,
            };
            let bytes = serde_json::to_vec(&statement).map_err(super::AttestError::Json)?;
            let mut blob = Blob::new(IN_TOTO_MEDIA_TYPE, bytes);
            blob.annotations.insert(
                PREDICATE_TYPE_ANNOTATION.to_owned(),
                a.predicate_type.clone(),
            );
            blobs.push(blob);
        }
        // Fields in the order Go writes an `ocispec.Image`: its `config` always present.
        let diff_ids: Vec<String> = blobs.iter().map(|b| b.digest.to_string()).collect();
        let config = format!(
            r#"{{"architecture":"unknown","os":"unknown","config":{{}},"rootfs":{{"type":"layers","diff_ids":{}}}}}"#,
            serde_json::to_string(&diff_ids).map_err(super::AttestError::Json)?
        );
        let config = Blob::new(OCI_CONFIG, config.into_bytes());
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Manifest {
            media_type: &'static str,
            schema_version: u32,
            config: Value,
            layers: Vec<Value>,
        }
        let manifest = Manifest {
            media_type: OCI_MANIFEST,
            schema_version: 2,
            config: config.descriptor(),
            layers: blobs.iter().map(Blob::descriptor).collect(),
        };
        // Indented as BuildKit indents it.
        let manifest = serde_json::to_vec_pretty(&manifest).map_err(super::AttestError::Json)?;
        blobs.push(config);
        Ok(Some(AttestationManifest {
            blobs,
            digest: Digest::of(&manifest),
            manifest,
            subject: subject.clone(),
        }))
    }

    /// The manifest's media type: always an OCI image manifest, as BuildKit writes it.
    pub fn media_type(&self) -> &'static str {
        OCI_MANIFEST
    }

    /// Its entry in the image index.
    pub fn index_entry(&self) -> Value {
        json!({
            "mediaType": OCI_MANIFEST,
            "digest": self.digest.to_string(),
            "size": self.manifest.len(),
            "annotations": {
                REFERENCE_DIGEST_ANNOTATION: self.subject.to_string(),
                REFERENCE_TYPE_ANNOTATION: ATTESTATION_MANIFEST,
            },
            "platform": {"architecture": "unknown", "os": "unknown"},
        })
    }
}

/// The predicate of `a` with its steps' layer chains (`metadata.buildkit_metadata.layers`,
/// BuildKit's `[][]Descriptor` per `stepN:OUTPUT`): the first image layers each step's
/// result holds.
fn with_layers(a: &Attestation, image_layers: &[Value]) -> Result<Value, super::AttestError> {
    let mut predicate = a.predicate.clone();
    if a.image_layers.is_empty() {
        return Ok(predicate);
    }
    let mut chains = serde_json::Map::new();
    for (step, count) in &a.image_layers {
        let chain = image_layers
            .get(..*count)
            .ok_or_else(|| super::AttestError::Layers {
                step: step.clone(),
                count: *count,
                layers: image_layers.len(),
            })?;
        chains.insert(step.clone(), json!([chain]));
    }
    let metadata = predicate
        .pointer_mut("/metadata")
        .and_then(Value::as_object_mut)
        .ok_or(super::AttestError::NoMetadata)?;
    let buildkit = metadata
        .entry(super::provenance::BUILDKIT_METADATA)
        .or_insert_with(|| json!({}));
    buildkit["layers"] = Value::Object(chains);
    Ok(predicate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shaped_as_buildkit_shapes_it() {
        let subject = Digest::of(b"manifest");
        let atts = [Attestation {
            predicate_type: super::super::SLSA_PROVENANCE_V02.to_owned(),
            predicate: json!({"buildType": "https://mobyproject.org/buildkit@v1"}),
            image_layers: Default::default(),
        }];
        let platform = Platform::parse("linux/amd64").unwrap();
        let m =
            AttestationManifest::new(&atts, &["r.example/app:1".into()], &platform, &subject, &[])
                .unwrap()
                .unwrap();
        let manifest: Value = serde_json::from_slice(&m.manifest).unwrap();
        assert_eq!(manifest["mediaType"], OCI_MANIFEST);
        assert_eq!(manifest["config"]["mediaType"], OCI_CONFIG);
        let layer = &manifest["layers"][0];
        assert_eq!(layer["mediaType"], IN_TOTO_MEDIA_TYPE);
        assert_eq!(
            layer["annotations"][PREDICATE_TYPE_ANNOTATION],
            super::super::SLSA_PROVENANCE_V02
        );
        let statement: Value = serde_json::from_slice(&m.blobs[0].bytes).unwrap();
        assert_eq!(statement["_type"], IN_TOTO_STATEMENT_V01);
        assert_eq!(
            statement["subject"][0]["name"],
            "pkg:docker/r.example/app@1?platform=linux%2Famd64"
        );
        assert_eq!(statement["subject"][0]["digest"]["sha256"], subject.hex());
        let config: Value = serde_json::from_slice(&m.blobs[1].bytes).unwrap();
        assert_eq!(config["os"], "unknown");
        assert_eq!(config["rootfs"]["diff_ids"][0], layer["digest"]);
        let entry = m.index_entry();
        assert_eq!(entry["platform"]["architecture"], "unknown");
        assert_eq!(
            entry["annotations"][REFERENCE_DIGEST_ANNOTATION],
            subject.to_string()
        );
        assert_eq!(entry["digest"], Digest::of(&m.manifest).to_string());
        assert!(
            AttestationManifest::new(&[], &[], &platform, &subject, &[])
                .unwrap()
                .is_none()
        );
    }
}
