//! Which exporters the daemon's BuildKit has. A buildkitd has them all; dockerd's has only
//! `moby`, `local` and `tar` unless Docker keeps its images in containerd (the containerd
//! snapshotter), which is how buildx's docker driver decides it.

use super::{Addr, RemoteError, RemoteSolver};

/// What the daemon can export itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaemonExporters {
    /// BuildKit's own exporters: `image` (with push), `oci`, `docker`, `local`, `tar`.
    All,
    /// dockerd's image store only: `moby`, `local` and `tar`. Images go to a registry or a
    /// tarball from Docker's store.
    MobyOnly,
}

impl RemoteSolver {
    /// What the daemon can export; asks Docker's API for `docker://` addresses.
    pub async fn exporters(&self) -> Result<DaemonExporters, RemoteError> {
        let Some(docker) = self.docker_api()? else {
            return Ok(DaemonExporters::All);
        };
        let containerd = crate::docker_host::uses_containerd_store(&docker)
            .await
            .map_err(|e| {
                RemoteError::Protocol(format!(
                    "asking {} which exporters its BuildKit has: {}",
                    self.addr,
                    crate::error_chain::error_chain(&e)
                ))
            })?;
        Ok(if containerd {
            DaemonExporters::All
        } else {
            DaemonExporters::MobyOnly
        })
    }

    /// Docker's API on the daemon this BuildKit belongs to (`docker://` only): where bud
    /// reads an image the `moby` exporter stored.
    pub fn docker_api(&self) -> Result<Option<bollard::Docker>, RemoteError> {
        let Addr::Docker { socket } = &self.addr else {
            return Ok(None);
        };
        let endpoint = crate::docker_host::Endpoint {
            host: crate::docker_host::Host::Unix(socket.clone()),
            origin: self.addr.to_string(),
            tls: None,
            configured: true,
        };
        crate::docker_host::connect(&endpoint)
            .map(Some)
            .map_err(|e| {
                RemoteError::Protocol(format!(
                    "{}: {}",
                    self.addr,
                    crate::error_chain::error_chain(&e)
                ))
            })
    }
}

impl RemoteSolver {
    /// The daemon's Control.Info, or `None` from a BuildKit older than 0.11, which had none.
    async fn info(&self) -> Result<Option<bud_proto::control::InfoResponse>, RemoteError> {
        let mut control = bud_proto::control::control_client::ControlClient::with_origin(
            self.channel.clone(),
            super::transport::origin(),
        );
        match control.info(bud_proto::control::InfoRequest {}).await {
            Ok(resp) => Ok(Some(resp.into_inner())),
            Err(status) if status.code() == tonic::Code::Unimplemented => {
                tracing::debug!("the daemon has no Control.Info: {}", status.message());
                Ok(None)
            }
            Err(status) => Err(RemoteError::grpc("Control.Info", status)),
        }
    }

    /// Whether the daemon makes attestations asked for in a solve's frontend attributes
    /// (`attest:provenance`, `attest:sbom`): BuildKit 0.11 and later, which also came with
    /// Control.Info. Older ones would silently pass over them.
    pub async fn makes_attestations(&self) -> Result<bool, RemoteError> {
        Ok(self.info().await?.is_some())
    }

    /// Whether the daemon runs several exporters in one solve (BuildKit 0.13 and later).
    /// Older ones read only the first and would silently drop the others.
    pub async fn takes_several_exporters(&self) -> Result<bool, RemoteError> {
        // Docker 26 was the first with BuildKit 0.13.
        self.buildkit_since(13, 26).await
    }

    /// Whether the daemon's local exporter reads `platform-split` (BuildKit 0.12 and later,
    /// Docker 25 and later). Older ones would silently split the platforms.
    pub async fn splits_platforms_on_request(&self) -> Result<bool, RemoteError> {
        self.buildkit_since(12, 25).await
    }

    /// Whether the daemon's local and tar exporters read `source-date-epoch` (BuildKit 0.11
    /// and later, Docker 23 and later). Older ones send the files' own mtimes.
    pub async fn stamps_exported_files(&self) -> Result<bool, RemoteError> {
        self.buildkit_since(11, 23).await
    }

    /// Whether the daemon's BuildKit is 0.`minor` or later; a dockerd that vendors BuildKit
    /// without its version is judged by its own, `docker_major` being the first Docker
    /// that came with that BuildKit.
    async fn buildkit_since(&self, minor: u64, docker_major: u64) -> Result<bool, RemoteError> {
        let Some(info) = self.info().await? else {
            return Ok(false);
        };
        let version = info.buildkit_version.map(|v| v.version).unwrap_or_default();
        tracing::debug!("the daemon's BuildKit is {version:?}");
        if !version.trim_start_matches('v').starts_with("0.0.0") {
            return Ok(at_least(&version, minor));
        }
        let Some(docker) = self.docker_api()? else {
            return Ok(false);
        };
        let server = docker.version().await.map_err(|e| {
            RemoteError::Protocol(format!(
                "asking {} for Docker's version: {}",
                self.addr,
                crate::error_chain::error_chain(&e)
            ))
        })?;
        let docker_version = server.version.unwrap_or_default();
        tracing::debug!("Docker {docker_version}");
        let major: u64 = docker_version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        Ok(major >= docker_major)
    }
}

/// `v0.13.0`, `0.20.1+ds`, `v1.0.0-rc1`: BuildKit 0.`minor` or later.
fn at_least(version: &str, minor: u64) -> bool {
    let mut parts = version.trim_start_matches('v').split(['.', '-', '+']);
    let major: u64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let its_minor: u64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    major > 0 || its_minor >= minor
}

#[cfg(test)]
mod tests {
    #[test]
    fn several_exporters_from_buildkit_0_13() {
        for (version, several) in [
            ("v0.13.0", true),
            ("v0.25.1", true),
            ("1.0.0", true),
            ("v0.12.5", false),
            ("v0.8.3-4-gbc3e7d9", false),
            ("", false),
        ] {
            assert_eq!(super::at_least(version, 13), several, "{version}");
        }
        assert!(super::at_least("v0.12.0", 12));
        assert!(!super::at_least("v0.11.6", 12));
    }
}
