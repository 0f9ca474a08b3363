//! Base images resolved by the daemon (LLBBridge.ResolveImageConfig), so a remote build
//! needs neither bud's access to the registry nor images in a local Docker: the daemon pins
//! the image it will pull, from where it pulls it, with the session's credentials.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bud_frontend::convert::{ImageResolver, Platform, ResolveError, ResolvedImage};
use bud_proto::gateway::ResolveImageConfigRequest;
use bud_proto::gateway::llb_bridge_client::LlbBridgeClient;
use bud_proto::pb;

use super::solve::with_build_id;
use super::transport::GrpcChannel;

/// Resolves base images through a build registered on the daemon.
///
/// [`ImageResolver::resolve`] blocks on the daemon's answer: call it from a blocking thread
/// (`spawn_blocking`), as the frontend's conversion runs.
#[derive(Clone)]
pub struct DaemonImages {
    bridge: LlbBridgeClient<GrpcChannel>,
    build_ref: String,
    session_id: String,
    /// `pull` with `--pull`: the registry is asked even if the daemon has the image.
    resolve_mode: &'static str,
    runtime: tokio::runtime::Handle,
    /// Used when the daemon has no ResolveImageConfig.
    fallback: Option<Arc<dyn ImageResolver + Send + Sync>>,
    unsupported: Arc<AtomicBool>,
    /// The LLB capabilities the daemon enables.
    llb_caps: Arc<std::collections::BTreeSet<String>>,
}

impl DaemonImages {
    pub(crate) fn new(
        bridge: LlbBridgeClient<GrpcChannel>,
        build_ref: String,
        session_id: String,
    ) -> Self {
        Self {
            bridge,
            build_ref,
            session_id,
            resolve_mode: "default",
            runtime: tokio::runtime::Handle::current(),
            fallback: None,
            unsupported: Arc::default(),
            llb_caps: Arc::default(),
        }
    }

    /// Records the LLB capabilities the daemon enables (its Ping answer).
    pub(crate) fn with_llb_caps(mut self, caps: &[bud_proto::apicaps::ApiCap]) -> Self {
        self.llb_caps = Arc::new(
            caps.iter()
                .filter(|c| c.enabled)
                .map(|c| c.id.clone())
                .collect(),
        );
        self
    }

    /// Whether the daemon enables LLB capability `cap`.
    pub fn supports(&self, cap: &str) -> bool {
        self.llb_caps.contains(cap)
    }

    /// Files of graphs solved in the same build (a remote context's Dockerfile).
    pub fn files(&self) -> super::DaemonFiles {
        super::DaemonFiles {
            bridge: self.bridge.clone(),
            build_ref: self.build_ref.clone(),
        }
    }

    /// Asks the registry for each image even when the daemon has it (`--pull`).
    pub fn always_pull(mut self, pull: bool) -> Self {
        self.resolve_mode = if pull { "pull" } else { "default" };
        self
    }

    /// Resolves with `fallback` instead if the daemon cannot resolve image configs.
    pub fn with_fallback(mut self, fallback: Arc<dyn ImageResolver + Send + Sync>) -> Self {
        self.fallback = Some(fallback);
        self
    }

    async fn ask_daemon(
        &self,
        reference: &str,
        platform: &Platform,
    ) -> Result<ResolvedImage, tonic::Status> {
        let request = ResolveImageConfigRequest {
            r#ref: reference.to_string(),
            platform: Some(pb::Platform {
                architecture: platform.architecture.clone(),
                os: platform.os.clone(),
                variant: platform.variant.clone(),
                ..Default::default()
            }),
            resolve_mode: self.resolve_mode.to_string(),
            // The daemon shows the lookup as a step, as for its own frontend.
            log_name: format!("[internal] load metadata for {reference}"),
            session_id: self.session_id.clone(),
            ..Default::default()
        };
        let request = with_build_id(&self.build_ref, request)
            .map_err(|e| tonic::Status::internal(crate::error_chain::error_chain(&e)))?;
        let resp = self
            .bridge
            .clone()
            .resolve_image_config(request)
            .await?
            .into_inner();
        let config = serde_json::from_slice(&resp.config).map_err(|e| {
            tonic::Status::internal(format!("the daemon's image config for {reference}: {e}"))
        })?;
        Ok(ResolvedImage {
            digest: resp.digest,
            config,
        })
    }
}

impl ImageResolver for DaemonImages {
    /// The daemon's refusal is text from the wire (`status.message()`): it stays the error.
    fn resolve(&self, reference: &str, platform: &Platform) -> Result<ResolvedImage, ResolveError> {
        if let Some(fallback) = &self.fallback
            && self.unsupported.load(Ordering::Relaxed)
        {
            return fallback.resolve(reference, platform);
        }
        match self.runtime.block_on(self.ask_daemon(reference, platform)) {
            Ok(image) => Ok(image),
            Err(status) if status.code() == tonic::Code::Unimplemented => match &self.fallback {
                Some(fallback) => {
                    self.unsupported.store(true, Ordering::Relaxed);
                    fallback.resolve(reference, platform)
                }
                None => Err(format!(
                    "the daemon cannot resolve image {reference}: {}",
                    status.message()
                )
                .into()),
            },
            Err(status) => Err(status.message().into()),
        }
    }

    /// The layout is the client's: read here, as the daemon would read it through the
    /// session's content store.
    fn resolve_oci_layout(
        &self,
        layout: &str,
        digest: &str,
        platform: &Platform,
    ) -> Result<ResolvedImage, ResolveError> {
        crate::source::oci_layout::resolve_for_frontend(layout, digest, platform)
    }
}
