//! Turning a built image (config + layer tars) into something Docker or a registry tool reads.
//!
//! - [`docker_archive`]: the `docker save` / `docker load` tarball (`manifest.json`).
//! - [`oci_layout`]: an OCI image layout tarball, as `-o type=oci,dest=FILE` writes it;
//!   [`oci_index_layout`] the same for several platforms, under an image index.
//! - [`annotations`]: `--annotation` and `annotation*` attributes, resolved for one image.
//! - [`files_tar`]: a result's files as a tarball (`-o type=tar`), headers as BuildKit writes them.
//! - [`docker_load`]: streams a docker archive into the daemon's `POST /images/load`,
//!   leaving out the layers the daemon already holds.
//!
//! All three take the same inputs: an [`Image`] whose `rootfs.diff_ids` name the layers, and
//! the [`Layer`]s in the same order. Layer files are checked against their digests while
//! they are copied, so a stale or truncated file fails the export instead of producing an
//! image Docker rejects later (or, worse, accepts).

pub mod annotations;
mod chain;
pub mod docker_archive;
pub mod docker_load;
pub mod files_tar;
pub mod oci_index_layout;
pub mod oci_layout;
mod reference;
mod tarball;

use std::io;
use std::path::PathBuf;

pub use bud_frontend::image::Image;

pub use chain::chain_ids;
pub use reference::{ImageName, ImageNameError};

use crate::content::{Digest, DigestError};

/// Media type of an uncompressed OCI layer.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// One filesystem layer of the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The layer as an uncompressed tar (whiteouts included).
    pub tar: PathBuf,
    /// sha256 of that tar; must match the image's `rootfs.diff_ids` entry.
    pub diff_id: Digest,
    /// The same layer compressed, when the build produced it (used by the OCI layout).
    pub compressed: Option<CompressedBlob>,
    /// A layer of the base image, not made by the build: unless `force-compression=true`,
    /// exports keep the blob it came with, whatever its compression, as BuildKit does.
    pub base: bool,
}

/// A layer on its way into Docker, which is sent the uncompressed tar: either stored, or
/// still a snapshot directory that is tarred straight into the upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadLayer {
    /// Unknown for a directory never tarred before.
    pub diff_id: Option<Digest>,
    /// Where the layer's bytes come from.
    pub tar: LayerTar,
}

/// The source of a [`LoadLayer`]'s bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerTar {
    /// In the content store; its sha256 is the diff ID.
    Stored(PathBuf),
    /// A snapshot's upper directory.
    Directory(PathBuf),
}

impl From<&Layer> for LoadLayer {
    fn from(layer: &Layer) -> Self {
        LoadLayer {
            diff_id: Some(layer.diff_id.clone()),
            tar: LayerTar::Stored(layer.tar.clone()),
        }
    }
}

/// A compressed layer blob, as pushed to registries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressedBlob {
    /// The blob's file (in the content store).
    pub path: PathBuf,
    /// sha256 of the compressed bytes.
    pub digest: Digest,
    /// e.g. `application/vnd.oci.image.layer.v1.tar+gzip`.
    pub media_type: String,
    /// Annotations its descriptor carries (an eStargz layer's TOC digest and size).
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// Why an image could not be written out or loaded into Docker.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A file of the export (a layer, the destination) could not be opened, read or written.
    #[error("{action} {path}")]
    Io {
        /// What was being done, e.g. `opening`.
        action: &'static str,
        /// The file it was done to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The output stream (file, pipe or the daemon's upload) refused bytes.
    #[error("writing the archive")]
    Write(#[source] io::Error),
    /// The attestation manifest attached to an OCI layout could not be made.
    #[error("the attestation manifest")]
    Attestation(#[source] crate::attest::AttestError),
    /// A `rootfs.diff_ids` entry is not a digest.
    #[error("invalid diff ID in the image config")]
    InvalidDiffId(#[from] DigestError),
    /// The config names a different number of layers than the build handed over: a bug in
    /// bud, caught before an image Docker would refuse is written.
    #[error(
        "the image config lists {config} layers (rootfs.diff_ids) but {given} layer files were given"
    )]
    LayerCount {
        /// Entries in `rootfs.diff_ids`.
        config: usize,
        /// Layer files given.
        given: usize,
    },
    /// The layers are not in the config's order (same kind of bug as `LayerCount`).
    #[error("layer {index}: the image config says {config} but the layer file is {given}")]
    LayerOrder {
        /// Position, from the base layer (0).
        index: usize,
        /// The diff ID the config lists there.
        config: Digest,
        /// The diff ID of the layer given there.
        given: Digest,
    },
    /// A layer file's content no longer hashes to its recorded digest.
    #[error("{path}: content is {actual}, expected {expected} (file changed or corrupt?)")]
    LayerDigest {
        /// The layer file.
        path: PathBuf,
        /// The digest it was recorded under.
        expected: Digest,
        /// The digest of the bytes read.
        actual: Digest,
    },
    /// A snapshot directory could not be tarred into the output.
    #[error("tarring the layer at {path}")]
    Layer {
        /// The snapshot's upper directory.
        path: PathBuf,
        /// The snapshot layer's error.
        #[source]
        source: crate::snapshot::SnapshotError,
    },
    /// A layer the daemon holds (so not sent) came without the diff ID the archive must list.
    #[error("layer {index} has neither a known diff ID nor a directory to tar")]
    UnknownDiffId {
        /// Position, from the base layer (0).
        index: usize,
    },
    /// A tag is not a valid image name.
    #[error(transparent)]
    InvalidName(#[from] ImageNameError),
    /// A call to the Docker daemon failed.
    #[error("{action}")]
    Docker {
        /// The call, e.g. `loading the image into docker`.
        action: &'static str,
        /// The client's error.
        #[source]
        source: bollard::errors::Error,
    },
    /// `POST /images/load` answered with an error message in its progress stream.
    #[error("docker rejected the image: {0}")]
    LoadRejected(String),
    /// The load stream ended without a `Loaded image` line naming the image (or its ID).
    #[error("docker finished loading without reporting an image")]
    NoImageReported,
}

/// Checks that `layers` are the layers `image.rootfs.diff_ids` names, in order.
fn check_layers(image: &Image, layers: &[Layer]) -> Result<(), ExportError> {
    let diff_ids = &image.rootfs.diff_ids;
    if diff_ids.len() != layers.len() {
        return Err(ExportError::LayerCount {
            config: diff_ids.len(),
            given: layers.len(),
        });
    }
    for (index, (text, layer)) in diff_ids.iter().zip(layers).enumerate() {
        let config = Digest::parse(text)?;
        if config != layer.diff_id {
            return Err(ExportError::LayerOrder {
                index,
                config,
                given: layer.diff_id.clone(),
            });
        }
    }
    Ok(())
}
