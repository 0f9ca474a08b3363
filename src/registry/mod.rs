//! Talking to image registries (the OCI distribution API): resolving and pulling images into
//! the content store, and pushing built images.
//!
//! - [`client`]: one HTTP client per registry, plain HTTP for loopback and listed insecure
//!   registries as Docker does, credentials from the Docker CLI's config.
//! - [`manifest`]: the manifest and index documents, Docker v2 schema 2 and OCI.
//! - [`pull`]: a reference and platform to a manifest, its config and layer blobs, stored.
//! - [`push`](mod@push): an image config and layer tars to a manifest under one or more tags.
//! - [`compress`]: layer compression on every core, done once per layer and remembered.
//! - [`estargz`]: eStargz layers, a gzip layer with a table of contents for lazy pulling.
//! - [`lazy`]: layers of a `--cache-from` result the build never brought in, which a push
//!   mounts from the cache's repository or copies from the cache.
//!
//! What this module knows about a blob beyond its bytes (which repositories hold it, what a
//! layer compresses to, what a tag resolved to) lives in small files next to the content
//! store's blobs, each written atomically; all of it is a cache that may be deleted.

pub mod client;
pub mod compress;
mod credentials;
pub mod estargz;
pub mod lazy;
pub mod manifest;
pub(crate) mod metadata;
pub mod pull;
pub mod push;
mod retry;

use std::io;
use std::path::PathBuf;

pub use client::{RegistryConfig, RegistryHost};
pub use compress::{Compression, LayerCompression};
pub use lazy::{BlobFetcher, LazyBlob, LazyLayers};
pub use manifest::Platform;
pub use pull::{PullOptions, Pulled, Puller};
pub use push::index::{PlatformManifest, push_attestation, push_index};
pub use push::{ManifestFormat, PushOptions, PushResult, push};

use crate::content::{ContentError, Digest, DigestError};

/// Where byte progress of pulls and pushes goes: `Status` events under `vertex`.
#[derive(Clone)]
pub struct ProgressTarget {
    /// Where the events go.
    pub sink: crate::progress::ProgressSink,
    /// The id of the step the transfers show under (the export's own step, as BuildKit's
    /// "exporting to image" shows its pushes).
    pub vertex: String,
}

/// Why a pull or a push failed. Each names the image or registry it was about, since one
/// build may talk to several.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry refused the credentials, or their absence (401, 403, an
    /// `UNAUTHORIZED` or `DENIED` error code); the message says what to do, as Docker's
    /// does.

    #[error(
        "{registry}: access denied (HTTP {status}): log in with `docker login {registry}` \
         and check that the repository exists and that you may {action} it"
    )]
    Unauthorized {
        /// The registry's host (`127.0.0.1:5000`, `docker.io`).
        registry: String,
        /// The HTTP status of the refusal.
        status: u16,
        /// `"pull from"` or `"push to"`, for the message.
        action: &'static str,
    },
    /// The repository, tag or manifest does not exist (404, `MANIFEST_UNKNOWN`,
    /// `NAME_UNKNOWN`).
    #[error("{reference}: not found in the registry")]
    NotFound {
        /// The image as named.
        reference: String,
    },
    /// A layer the build took from a `--cache-from` without bringing it in.
    #[error("fetching layer blob {blob} from the cache {cache}")]
    CacheBlob {
        /// The blob's digest.
        blob: String,
        /// The cache it was to come from, as the fetcher describes it.
        cache: String,
        /// The fetcher's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Any other failure of a distribution API exchange (a 5xx, a refused connection, a
    /// malformed answer); `retry` tells the transient ones apart.
    #[error("{action} {reference}")]
    Distribution {
        /// What was being done, as a verb phrase ending in a preposition (`"pulling a
        /// blob of"`).
        action: &'static str,
        /// The image as named.
        reference: String,
        /// oci-client's error.
        #[source]
        source: Box<oci_client::errors::OciDistributionError>,
    },
    /// The registry gave no answer, or a transfer stalled, within `[network]`'s bounds.
    #[error("{action} {reference}: {registry}: {expired}")]
    TimedOut {
        /// What was being done (`"pulling a blob of"`).
        action: &'static str,
        /// The image as named.
        reference: String,
        /// The registry's host.
        registry: String,
        /// Which bound ran out, and how long it was.
        expired: crate::timeouts::Expired,
    },
    /// A blob's body broke off mid-transfer; retried as dockerd retries a download.
    #[error("{reference}: blob {digest}: download failed")]
    DownloadFailed {
        /// The image as named.
        reference: String,
        /// The blob's digest.
        digest: String,
        /// The transport's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The Docker config's credential store or helper failed (not: had no credentials,
    /// which means anonymous access).
    #[error("reading credentials for {registry} from the Docker config: {message}")]
    Credentials {
        /// The registry's host.
        registry: String,
        /// The helper's or the config reader's message.
        message: String,
    },
    /// A tag to push is no valid image reference, or names a digest.
    #[error("{reference}: invalid image reference: {message}")]
    InvalidReference {
        /// The tag as given.
        reference: String,
        /// What is wrong with it.
        message: String,
    },
    /// A manifest or index that parses but is not usable: layers that disagree with the
    /// config's diff IDs, an index inside an index, an index entry bud could not make.
    #[error("{reference}: invalid manifest: {message}")]
    InvalidManifest {
        /// The image as named.
        reference: String,
        /// What is wrong with it.
        message: String,
    },
    /// The registry's manifest does not parse as a manifest or an index.
    #[error("{reference}: invalid manifest")]
    ManifestDocument {
        /// The image as named.
        reference: String,
        /// The parser's error.
        #[source]
        source: manifest::DocumentError,
    },
    /// A layer of a media type bud cannot unpack (neither a Docker nor an OCI layer).
    #[error("{reference}: unsupported layer media type {media_type:?}")]
    UnsupportedMediaType {
        /// The image as named.
        reference: String,
        /// The layer's media type.
        media_type: String,
    },
    /// The image is an index with no manifest for the build's platform.
    #[error("{reference}: no image for platform {platform} (the index offers: {available})")]
    NoMatchingPlatform {
        /// The image as named.
        reference: String,
        /// The platform asked for, `os/arch[/variant]`.
        platform: String,
        /// The platforms the index lists, comma-separated, so the user can pick one.
        available: String,
    },
    /// The image config blob is not an image config.
    #[error("{reference}: invalid image config")]
    InvalidConfig {
        /// The image as named.
        reference: String,
        /// serde's error.
        #[source]
        source: serde_json::Error,
    },
    /// A pulled blob could not be written to the content store.
    #[error("{reference}: blob {digest}: writing to the content store")]
    Blob {
        /// The image as named.
        reference: String,
        /// The blob's digest.
        digest: String,
        /// The write's error.
        #[source]
        source: std::io::Error,
    },
    /// A digest in a manifest or config that is not `algorithm:hex`.
    #[error(transparent)]
    Digest(#[from] DigestError),
    /// The content store failed to read or store a blob.
    #[error(transparent)]
    Content(#[from] ContentError),
    /// A file operation on a blob, a layer tar or a metadata file failed.
    #[error("{action} {path}")]
    Io {
        /// What was being done, as a verb phrase (`"reading"`, `"writing"`…).
        action: &'static str,
        /// The file it was done to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A push was given another number of layers than its config lists: a bug of the
    /// caller, refused before anything is uploaded.
    #[error("the image config lists {config} layers but {given} were given")]
    LayerCount {
        /// How many diff IDs the config lists.
        config: usize,
        /// How many layers were given.
        given: usize,
    },
    /// A push was given layers in another order than its config lists them.
    #[error("layer {index}: the image config says {config} but the layer is {given}")]
    LayerOrder {
        /// The layer's position, bottom first, from 0.
        index: usize,
        /// The diff ID the config lists there.
        config: Digest,
        /// The diff ID of the layer given there.
        given: Digest,
    },
    /// A push was asked for with no tag.
    #[error("no tags to push")]
    NoTags,
    /// A blocking or spawned task of a transfer panicked or was cancelled (the join
    /// error's message).
    #[error("a background task failed: {0}")]
    Task(String),
}

impl RegistryError {
    fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Self {
        let path = path.into();
        move |source| RegistryError::Io {
            action,
            path,
            source,
        }
    }
}

impl ProgressTarget {
    pub(crate) fn status(&self, id: &str, current: u64, total: Option<u64>, done: bool) {
        self.sink.emit(crate::progress::Event::Status {
            vertex: self.vertex.clone(),
            id: id.to_owned(),
            current,
            total,
            done,
            at: std::time::SystemTime::now(),
        });
    }
}

/// Reports byte progress of one transfer, at most every `STEP` bytes.
pub(crate) struct ByteProgress {
    target: Option<ProgressTarget>,
    id: String,
    total: Option<u64>,
    current: u64,
    reported: u64,
}

impl ByteProgress {
    const STEP: u64 = 1 << 20;

    pub(crate) fn new(target: Option<&ProgressTarget>, id: String, total: Option<u64>) -> Self {
        if let Some(target) = target {
            target.status(&id, 0, total, false);
        }
        ByteProgress {
            target: target.cloned(),
            id,
            total,
            current: 0,
            reported: 0,
        }
    }

    pub(crate) fn advance(&mut self, bytes: u64) {
        self.current += bytes;
        if self.current - self.reported >= Self::STEP
            && let Some(target) = &self.target
        {
            target.status(&self.id, self.current, self.total, false);
            self.reported = self.current;
        }
    }

    pub(crate) fn done(self) {
        if let Some(target) = &self.target {
            target.status(&self.id, self.current, self.total, true);
        }
    }
}
