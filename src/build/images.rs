//! Base images for one build: resolved once through the image source (Docker's store first,
//! then the registry), then handed to the frontend (the config) and to the solver (the
//! layers) from the same memo, so both see the same image.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bud_frontend::convert::{self, ImageResolver, ResolveError};
use bud_frontend::reference::{Reference, ReferenceError};
use bud_proto::pb;
use futures_util::future::BoxFuture;

use crate::registry::{Platform as RegistryPlatform, PullOptions};
use crate::solver::{ImageLayer, ImageProvider, ImageProviderError, ResolvedImage};
use crate::source::image::{ImageError, ImageSource, PulledImage};

/// Why a base image could not be had; the frontend and the solver print its causes.
#[derive(Debug, thiserror::Error)]
enum BaseImageError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("the image config")]
    Config(#[source] serde_json::Error),
}

pub(super) struct BuildImages {
    source: ImageSource,
    pull: bool,
    runtime: tokio::runtime::Handle,
    /// By platform and the reference as asked, and by platform and its pinned form
    /// `ref@digest`: one build may take a tag for several platforms.
    memo: Mutex<HashMap<String, Arc<PulledImage>>>,
}

impl BuildImages {
    pub(super) fn new(source: ImageSource, pull: bool) -> Self {
        Self {
            source,
            pull,
            runtime: tokio::runtime::Handle::current(),
            memo: Mutex::default(),
        }
    }

    async fn get(
        &self,
        reference: &str,
        platform: RegistryPlatform,
    ) -> Result<Arc<PulledImage>, BaseImageError> {
        let key = |reference: &str| format!("{platform} {reference}");
        if let Some(hit) = self
            .memo
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key(reference))
        {
            return Ok(hit.clone());
        }
        let parsed = Reference::parse(reference)?;
        let opts = PullOptions {
            pull: self.pull,
            platform: platform.clone(),
            ..PullOptions::default()
        };
        let image = Arc::new(self.source.resolve(&parsed, &opts).await?);
        let mut memo = self.memo.lock().unwrap_or_else(|p| p.into_inner());
        memo.insert(key(reference), image.clone());
        memo.insert(key(&format!("{reference}@{}", pin(&image))), image.clone());
        Ok(image)
    }
}

impl BuildImages {
    /// The digest the build pinned `reference` (as a source op names it) to for `platform`,
    /// if the build resolved it.
    pub(super) fn pinned(&self, reference: &str, platform: &convert::Platform) -> Option<String> {
        let wanted = Reference::parse(reference)
            .ok()?
            .with_default_tag()
            .to_string();
        let prefix = format!(
            "{} ",
            registry_platform(&platform.os, &platform.architecture, &platform.variant)
        );
        let memo = self.memo.lock().unwrap_or_else(|p| p.into_inner());
        memo.iter().find_map(|(key, image)| {
            let asked = key.strip_prefix(&prefix)?;
            let same = Reference::parse(asked)
                .ok()
                .is_some_and(|r| r.digest.is_none() && r.with_default_tag().to_string() == wanted);
            same.then(|| pin(image))
        })
    }
}

/// What the frontend pins an image to: its manifest digest, or for an image only Docker
/// has (built locally, never pushed), its config digest.
fn pin(image: &PulledImage) -> String {
    image
        .manifest_digest
        .as_ref()
        .unwrap_or(&image.config_digest)
        .to_string()
}

fn registry_platform(os: &str, arch: &str, variant: &str) -> RegistryPlatform {
    RegistryPlatform::new(os, arch, variant)
}

impl ImageResolver for BuildImages {
    fn resolve(
        &self,
        reference: &str,
        platform: &convert::Platform,
    ) -> Result<convert::ResolvedImage, ResolveError> {
        let p = registry_platform(&platform.os, &platform.architecture, &platform.variant);
        let image = self.runtime.block_on(self.get(reference, p))?;
        let config = serde_json::to_value(&image.config).map_err(BaseImageError::Config)?;
        // An image only Docker has (built or loaded there, never pushed) has no manifest
        // digest to pin: left unpinned, a daemon finds it in its own store by name.
        let digest = image
            .manifest_digest
            .as_ref()
            .map(|d| d.to_string())
            .unwrap_or_default();
        Ok(convert::ResolvedImage { digest, config })
    }

    fn resolve_oci_layout(
        &self,
        layout: &str,
        digest: &str,
        platform: &convert::Platform,
    ) -> Result<convert::ResolvedImage, ResolveError> {
        crate::source::oci_layout::resolve_for_frontend(layout, digest, platform)
    }
}

impl ImageProvider for BuildImages {
    fn resolve<'a>(
        &'a self,
        reference: &'a str,
        platform: Option<&'a pb::Platform>,
    ) -> BoxFuture<'a, Result<ResolvedImage, ImageProviderError>> {
        Box::pin(async move {
            let p = match platform {
                Some(p) => registry_platform(&p.os, &p.architecture, &p.variant),
                None => {
                    let host = convert::Platform::host();
                    registry_platform(&host.os, &host.architecture, &host.variant)
                }
            };
            let image = self.get(reference, p).await?;
            let layers = layers_of(&self.source, &image);
            Ok(ResolvedImage {
                manifest_digest: pin(&image),
                layers,
            })
        })
    }
}

fn layers_of(source: &ImageSource, image: &PulledImage) -> Vec<ImageLayer> {
    image
        .layers
        .iter()
        .map(|layer| {
            let source = source.clone();
            let layer = layer.clone();
            ImageLayer {
                diff_id: layer.diff_id.to_string(),
                open: Box::new(move || {
                    // An io::Error around the image error shows its message and causes.
                    source.open_layer(&layer).map_err(std::io::Error::other)
                }),
            }
        })
        .collect()
}
