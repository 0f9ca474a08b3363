//! The Docker API bud talks to: the one `DOCKER_HOST` names, as for `docker build`, or the
//! default socket. Only `unix://` sockets are supported.

use bollard::Docker;

#[derive(Debug, thiserror::Error)]
pub enum DockerHostError {
    #[error("DOCKER_HOST={0}: only unix:// sockets are supported yet")]
    Unsupported(String),
    #[error("cannot reach Docker at {place}: {source}")]
    Connect {
        place: String,
        #[source]
        source: bollard::errors::Error,
    },
}

/// A client for the Docker API (not yet checked to answer).
pub fn client() -> Result<Docker, DockerHostError> {
    match std::env::var("DOCKER_HOST") {
        Err(_) => {
            Docker::connect_with_socket_defaults().map_err(|source| DockerHostError::Connect {
                place: "the default socket".into(),
                source,
            })
        }
        Ok(host) if host.starts_with("unix://") => {
            Docker::connect_with_socket(&host, 120, bollard::API_DEFAULT_VERSION).map_err(
                |source| DockerHostError::Connect {
                    place: format!("DOCKER_HOST={host}"),
                    source,
                },
            )
        }
        Ok(host) => Err(DockerHostError::Unsupported(host)),
    }
}
