//! Blobs a push (of an image or a cache) may find elsewhere than in the content store: the
//! layers of a `--cache-from` result the build never brought in. A push mounts one from the
//! cache's repository when that is on the same registry (the cache's repository is recorded
//! as a source of the blob), else copies it from the cache (downloaded once, verified
//! against its digest), never unpacking it.

use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::RegistryError;
use super::compress::Compression;
use super::manifest::Descriptor;
use crate::content::{ContentStore, Digest};

/// Where the blobs of a cache can be fetched from.
pub trait BlobFetcher: Send + Sync {
    /// Puts blob `desc` into `content`, verified against its digest.
    fn fetch<'a>(
        &'a self,
        desc: &'a Descriptor,
        content: &'a ContentStore,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
    /// For messages: the cache this is.
    fn describe(&self) -> String;
}

/// A layer's compressed blob, and the cache that holds it.
#[derive(Clone)]
pub struct LazyBlob {
    /// The blob as the cache's manifest describes it (media type, digest, size).
    pub desc: Descriptor,
    /// The cache to fetch it from when it cannot be mounted.
    pub source: Arc<dyn BlobFetcher>,
}

impl std::fmt::Debug for LazyBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "LazyBlob({} in {})",
            self.desc.digest,
            self.source.describe()
        )
    }
}

/// The layers a push may take from a cache, by diff ID.
pub type LazyLayers = Vec<(Digest, LazyBlob)>;

impl LazyBlob {
    /// What the blob is compressed with, from its media type.
    pub fn compression(&self) -> Option<Compression> {
        super::pull::compression_of(&self.desc.media_type)
    }

    /// Copies the blob into `content`, verified.
    pub(super) async fn fetch(&self, content: &ContentStore) -> Result<(), RegistryError> {
        self.source
            .fetch(&self.desc, content)
            .await
            .map_err(|e| RegistryError::CacheBlob {
                blob: self.desc.digest.clone(),
                cache: self.source.describe(),
                source: e.into(),
            })
    }
}
