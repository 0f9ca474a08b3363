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
    pub sink: crate::progress::ProgressSink,
    pub vertex: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "{registry}: access denied (HTTP {status}): log in with `docker login {registry}` \
         and check that the repository exists and that you may {action} it"
    )]
    Unauthorized {
        registry: String,
        status: u16,
        action: &'static str,
    },
    #[error("{reference}: not found in the registry")]
    NotFound { reference: String },
    /// A layer the build took from a `--cache-from` without bringing it in.
    #[error("fetching layer blob {blob} from the cache {cache}")]
    CacheBlob {
        blob: String,
        cache: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{action} {reference}")]
    Distribution {
        action: &'static str,
        reference: String,
        #[source]
        source: Box<oci_client::errors::OciDistributionError>,
    },
    #[error("{action} {reference}: {registry}: {expired}")]
    TimedOut {
        action: &'static str,
        reference: String,
        registry: String,
        expired: crate::timeouts::Expired,
    },
    #[error("{reference}: blob {digest}: download failed: {message}")]
    DownloadFailed {
        reference: String,
        digest: String,
        message: String,
    },
    #[error("reading credentials for {registry} from the Docker config: {message}")]
    Credentials { registry: String, message: String },
    #[error("{reference}: invalid image reference: {message}")]
    InvalidReference { reference: String, message: String },
    #[error("{reference}: invalid manifest: {message}")]
    InvalidManifest { reference: String, message: String },
    #[error("{reference}: invalid manifest")]
    ManifestDocument {
        reference: String,
        #[source]
        source: manifest::DocumentError,
    },
    #[error("{reference}: unsupported manifest media type {media_type:?}")]
    UnsupportedMediaType {
        reference: String,
        media_type: String,
    },
    #[error("{reference}: no image for platform {platform} (the index offers: {available})")]
    NoMatchingPlatform {
        reference: String,
        platform: String,
        available: String,
    },
    #[error("{reference}: invalid image config")]
    InvalidConfig {
        reference: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{reference}: blob {digest}: {message}")]
    Blob {
        reference: String,
        digest: String,
        message: String,
    },
    #[error(transparent)]
    Digest(#[from] DigestError),
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the image config lists {config} layers but {given} were given")]
    LayerCount { config: usize, given: usize },
    #[error("layer {index}: the image config says {config} but the layer is {given}")]
    LayerOrder {
        index: usize,
        config: Digest,
        given: Digest,
    },
    #[error("no tags to push")]
    NoTags,
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
