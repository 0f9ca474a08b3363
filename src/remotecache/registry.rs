//! `type=registry`: a cache manifest pushed under a reference (`ref=reg/app:cache`), its
//! blobs in the same repository, with bud's registry client (credentials, plain HTTP for
//! loopback, timeouts, retries). Also reads a plain image's inline cache.

use anyhow::{Context as _, bail};
use bud_frontend::reference::Reference;
use bytes::Bytes;
use futures_util::future::{BoxFuture, FutureExt as _};
use oci_client::RegistryOperation;
use tokio::sync::mpsc;

use crate::content::{ContentStore, Digest};
use crate::registry::client::oci_reference;
use crate::registry::manifest::Descriptor;
use crate::registry::{PushOptions, RegistryConfig, RegistryHost, pull};

use super::export::CacheManifest;
use super::import::BlobSource;

/// A cache in a registry: the manifest pushed or pulled under `ref=`.
pub struct Repository {
    reference: Reference,
    config: RegistryConfig,
    host: RegistryHost,
    oref: oci_client::Reference,
}

impl Repository {
    /// `insecure` (`registry.insecure=true`) speaks plain HTTP to the reference's registry.
    pub async fn connect(
        config: &RegistryConfig,
        reference: &str,
        insecure: bool,
    ) -> anyhow::Result<Repository> {
        let reference =
            Reference::parse(reference).map_err(|e| anyhow::anyhow!("ref={reference}: {e}"))?;
        let config = config.with_insecure(&reference.domain, insecure);
        let host = config.connect(&reference.domain).await?;
        let oref = oci_reference(&reference);
        Ok(Repository {
            reference,
            config,
            host,
            oref,
        })
    }

    /// The manifest the reference names, verified against its digest.
    pub async fn manifest(&self) -> anyhow::Result<(Vec<u8>, Option<String>)> {
        self.host
            .authorize(&self.oref, RegistryOperation::Pull)
            .await?;
        let name = self.reference.to_string();
        let (bytes, digest) = pull::fetch_manifest(&self.host, &self.oref, &name).await?;
        if Digest::of(&bytes) != digest {
            bail!("{name}: the manifest does not match its digest {digest}");
        }
        if let Some(pinned) = &self.reference.digest
            && *pinned != digest.to_string()
        {
            bail!("{name}: the registry served {digest}");
        }
        Ok((bytes.to_vec(), None))
    }

    /// Pushes the cache's blobs, then its manifest under the reference.
    pub async fn push(&self, cache: &CacheManifest, content: &ContentStore) -> anyhow::Result<()> {
        let mut opts = PushOptions::new(content.clone());
        opts.registry = self.config.clone();
        // Mounted from the cache they came from, or copied from there.
        opts.lazy_layers = cache.lazy_layers.clone();
        let blobs: Vec<Descriptor> = cache
            .layers
            .iter()
            .chain([&cache.config])
            .cloned()
            .collect();
        crate::registry::push::push_document(
            &self.reference,
            &blobs,
            Bytes::from(cache.bytes.clone()),
            &cache.media_type,
            opts,
        )
        .await
        .with_context(|| format!("pushing the cache to {}", self.reference))?;
        Ok(())
    }
}

impl BlobSource for Repository {
    fn fetch<'a>(
        &'a self,
        desc: &'a Descriptor,
        content: &'a ContentStore,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        async move {
            pull::fetch_blob(&self.host, &self.oref, desc, content, None).await?;
            Ok(())
        }
        .boxed()
    }

    fn stream<'a>(
        &'a self,
        desc: &'a Descriptor,
        content: &'a ContentStore,
        tee: mpsc::Sender<Bytes>,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        async move {
            pull::stream_blob(&self.host, &self.oref, desc, content, tee).await?;
            Ok(())
        }
        .boxed()
    }

    fn manifest<'a>(&'a self, digest: &'a str) -> BoxFuture<'a, anyhow::Result<Vec<u8>>> {
        async move {
            let oref = oci_client::Reference::with_digest(
                self.reference.domain.clone(),
                self.reference.path.clone(),
                digest.to_string(),
            );
            let name = format!("{}@{digest}", self.reference.name());
            let (bytes, _) = pull::fetch_manifest(&self.host, &oref, &name).await?;
            if Digest::of(&bytes).to_string() != digest {
                bail!("{name}: the manifest does not match its digest");
            }
            Ok(bytes.to_vec())
        }
        .boxed()
    }

    fn describe(&self) -> String {
        self.reference.to_string()
    }

    fn repository(&self) -> Option<String> {
        Some(self.reference.name())
    }
}
