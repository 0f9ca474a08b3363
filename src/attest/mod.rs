//! Attestations: in-toto statements about each image a build exports (SLSA provenance, and
//! SPDX SBOMs made by `crate::sbom`), attached as BuildKit attaches them: for each platform's image,
//! an attestation manifest in the image index (`manifest`).
//!
//! The plumbing is generic: an export takes, per platform image, a list of [`Attestation`]s
//! (predicate type and predicate); the statement's subject, the image manifest, is filled
//! in when the image is written.

pub mod flags;
pub mod manifest;
pub mod provenance;
mod purl;

pub use flags::{Attestations, ProvenanceMode, ProvenanceRequest};

/// Why an attestation could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    /// A base image's name is no image reference (its package URL cannot be written).
    #[error("the package URL of {reference}")]
    Reference {
        /// The name as the build gives it.
        reference: String,
        /// Why it is no reference.
        #[source]
        source: bud_frontend::reference::ReferenceError,
    },
    /// A resolved base image's digest is not `algorithm:hex`.
    #[error("{reference}: invalid digest {digest}")]
    ImageDigest {
        /// The image as named.
        reference: String,
        /// The digest as resolved.
        digest: String,
    },
    /// The provenance reads the build's ops from the Definition, and one does not decode.
    #[error("an op of the definition does not decode")]
    Op(#[source] prost::DecodeError),
    /// A step the provenance describes names an op digest the Definition lacks.
    #[error("the definition has no op {0}")]
    NoOp(String),
    /// A statement could not be serialised.
    #[error("writing the attestation")]
    Json(#[source] serde_json::Error),
    /// Max provenance's `layers` map: a step's snapshot chain is longer than the image's.
    #[error("{step} holds {count} layers, the image only {layers}")]
    Layers {
        /// The step, `stepN:OUTPUT`.
        step: String,
        /// The layers its result holds.
        count: usize,
        /// The layers the image has.
        layers: usize,
    },
    /// Max provenance's `layers` map was asked of a predicate without `metadata`.
    #[error("the provenance has no metadata")]
    NoMetadata,
}
pub use manifest::AttestationManifest;
pub use purl::image_purl;

/// SLSA provenance v0.2, BuildKit's default provenance predicate.
pub const SLSA_PROVENANCE_V02: &str = "https://slsa.dev/provenance/v0.2";
/// SPDX, the predicate type of BuildKit's SBOM statements.
pub const SPDX_DOCUMENT: &str = "https://spdx.dev/Document";

/// One predicate about a platform's image.
#[derive(Debug, Clone, PartialEq)]
pub struct Attestation {
    /// The statement's `predicateType`, e.g. [`SLSA_PROVENANCE_V02`] or [`SPDX_DOCUMENT`];
    /// also the `in-toto.io/predicate-type` annotation of its layer.
    pub predicate_type: String,
    /// The statement's `predicate`, written as given.
    pub predicate: serde_json::Value,
    /// For a max-mode provenance: how many of the image's first layers each step's result
    /// holds (`stepN:OUTPUT`), written into the predicate's `layers` map as the image's layer
    /// descriptors once the image is written (BuildKit fills it after the export's blobs
    /// exist).
    pub image_layers: std::collections::BTreeMap<String, usize>,
}

impl Attestation {
    /// An SPDX document (an SBOM) about the image, as BuildKit's SBOM statements carry it.
    pub fn sbom(spdx: serde_json::Value) -> Attestation {
        Attestation {
            predicate_type: SPDX_DOCUMENT.to_owned(),
            predicate: spdx,
            image_layers: Default::default(),
        }
    }
}
