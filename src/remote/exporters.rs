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
        Ok(self.buildkit_release().await?.reads(13))
    }

    /// Whether the daemon's local exporter reads `platform-split` (BuildKit 0.12 and later).
    /// Older ones would silently split the platforms.
    pub async fn splits_platforms_on_request(&self) -> Result<bool, RemoteError> {
        Ok(self.buildkit_release().await?.reads(12))
    }

    /// Whether the daemon's local and tar exporters read `source-date-epoch` (BuildKit 0.11
    /// and later). Older ones send the files' own mtimes.
    pub async fn stamps_exported_files(&self) -> Result<bool, RemoteError> {
        Ok(self.buildkit_release().await?.reads(11))
    }

    /// The daemon's BuildKit release, as Control.Info tells it; a dockerd that vendors
    /// BuildKit without its version (0.0.0), or that has no Control.Info (before 0.11), is
    /// judged by Docker's own version.
    pub async fn buildkit_release(&self) -> Result<BuildKitRelease, RemoteError> {
        let info = self.info().await?;
        let has_info = info.is_some();
        let version = info
            .and_then(|i| i.buildkit_version)
            .map(|v| v.version)
            .unwrap_or_default();
        tracing::debug!("the daemon's BuildKit is {version:?}");
        if !version.is_empty() && !version.trim_start_matches('v').starts_with("0.0.0") {
            return Ok(BuildKitRelease::parse(&version));
        }
        let Some(docker) = self.docker_api()? else {
            // A buildkitd without a version: one built from source has Control.Info (0.11 and
            // later); one without is older, taken for the oldest bud is tested with.
            return Ok(if has_info {
                BuildKitRelease {
                    minor: 11,
                    name: format!("BuildKit {version:?} (taken for 0.11)"),
                }
            } else {
                BuildKitRelease {
                    minor: OLDEST_TESTED,
                    name: format!(
                        "BuildKit without Control.Info (older than 0.11, taken for \
                         0.{OLDEST_TESTED})"
                    ),
                }
            });
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
        Ok(BuildKitRelease::of_docker(&docker_version))
    }
}

/// Docker 20.10's BuildKit: the oldest bud is tested with.
const OLDEST_TESTED: u64 = 8;

/// A daemon's BuildKit release, as far as bud can tell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildKitRelease {
    /// BuildKit 0.`minor`; a 1.x is `u64::MAX`.
    pub minor: u64,
    /// How messages name it: `BuildKit v0.12.5`, `BuildKit 0.8 (Docker 20.10.24's)`.
    pub name: String,
}

impl BuildKitRelease {
    /// Whether it reads what came with BuildKit 0.`since`.
    pub fn reads(&self, since: u64) -> bool {
        self.minor >= since
    }

    /// `v0.13.0`, `0.20.1+ds`, `v1.0.0-rc1`.
    fn parse(version: &str) -> Self {
        let mut parts = version.trim_start_matches('v').split(['.', '-', '+']);
        let major: u64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        let minor: u64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        BuildKitRelease {
            minor: if major > 0 { u64::MAX } else { minor },
            name: format!("BuildKit {version}"),
        }
    }

    /// The BuildKit the first release of Docker `version`'s major vendored (moby's
    /// vendor.mod): 20.10 had 0.8, 23 0.10, 24 0.11, 25 0.12, 26 0.13, 27 0.14, 28 0.20.
    fn of_docker(version: &str) -> Self {
        let major: u64 = version
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        let minor = match major {
            0..=19 => 6,
            20..=22 => 8,
            23 => 10,
            24 => 11,
            25 => 12,
            26 => 13,
            27 => 14,
            _ => 20,
        };
        BuildKitRelease {
            minor,
            name: format!("BuildKit 0.{minor} (Docker {version}'s)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::BuildKitRelease;

    #[test]
    fn a_release_reads_what_came_with_it_and_before() {
        for (version, reads_13) in [
            ("v0.13.0", true),
            ("v0.25.1", true),
            ("1.0.0", true),
            ("v0.12.5", false),
            ("v0.8.3-4-gbc3e7d9", false),
            ("", false),
        ] {
            assert_eq!(
                BuildKitRelease::parse(version).reads(13),
                reads_13,
                "{version}"
            );
        }
        assert!(BuildKitRelease::parse("v0.12.0").reads(12));
        assert!(!BuildKitRelease::parse("v0.11.6").reads(12));
        assert_eq!(BuildKitRelease::parse("v0.12.5").name, "BuildKit v0.12.5");
    }

    #[test]
    fn a_docker_is_taken_for_the_buildkit_its_major_came_with() {
        for (docker, minor) in [
            ("20.10.24+dfsg1", 8),
            ("23.0.6", 10),
            ("24.0.9", 11),
            ("25.0.0", 12),
            ("26.1.4", 13),
            ("27.5.1", 14),
            ("28.5.2", 20),
            ("29.0.0", 20),
        ] {
            assert_eq!(BuildKitRelease::of_docker(docker).minor, minor, "{docker}");
        }
        assert_eq!(
            BuildKitRelease::of_docker("20.10.24").name,
            "BuildKit 0.8 (Docker 20.10.24's)"
        );
    }
}
