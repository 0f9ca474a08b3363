//! The `--addr` forms bud accepts for a BuildKit daemon.

use std::path::PathBuf;

use super::RemoteError;

const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// Where the daemon listens and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    /// dockerd's embedded BuildKit, reached by upgrading `/grpc` and `/session` on its API socket.
    Docker {
        /// dockerd's Unix socket: `docker://unix:///PATH`'s, else the one the docker CLI
        /// would use (DOCKER_HOST, the current context, the default socket).
        socket: PathBuf,
    },
    /// A standalone buildkitd on a Unix socket (plain HTTP/2).
    Unix(PathBuf),
    /// A standalone buildkitd on TCP (`host:port`), with TLS when TLS options are given.
    Tcp(String),
    /// A buildkitd in the named Docker container, reached through `buildctl dial-stdio`
    /// run in it (as buildx's docker-container driver does).
    DockerContainer(String),
    /// A buildkitd in a Kubernetes pod, reached through `kubectl exec … buildctl dial-stdio`
    /// (as buildx's kubernetes driver connects).
    KubePod(super::kube_pod::KubePod),
}

impl Addr {
    /// Parses `docker://` (the Docker that `DOCKER_HOST` or docker's current context names, as
    /// with the docker CLI), `docker://unix:///path`, `unix:///path`, `tcp://host:port` and
    /// `docker-container://NAME` and `kube-pod://POD?context=&namespace=&container=`.
    pub fn parse(s: &str) -> Result<Self, RemoteError> {
        let bad = |why: &str| RemoteError::Address {
            addr: s.to_string(),
            reason: why.to_string(),
        };
        if let Some(rest) = s.strip_prefix("docker://") {
            return match rest {
                // The daemon docker's CLI would use: DOCKER_HOST, the current context.
                "" => match crate::docker_host::endpoint() {
                    Ok(crate::docker_host::Endpoint {
                        host: crate::docker_host::Host::Unix(socket),
                        ..
                    }) => Ok(Addr::Docker { socket }),
                    Ok(endpoint) => Err(bad(&format!(
                        "{} is {}: docker:// reaches dockerd's BuildKit on a unix socket only",
                        endpoint.origin, endpoint.host
                    ))),
                    Err(e) => Err(bad(&e.to_string())),
                },
                _ => match rest.strip_prefix("unix://") {
                    Some(path) if path.starts_with('/') => Ok(Addr::Docker {
                        socket: path.into(),
                    }),
                    _ => Err(bad(
                        "expected docker:// or docker://unix:///path/to/docker.sock",
                    )),
                },
            };
        }
        if let Some(path) = s.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(bad(
                    "expected an absolute socket path, as in unix:///run/buildkit/buildkitd.sock",
                ));
            }
            return Ok(Addr::Unix(path.into()));
        }
        if let Some(hostport) = s.strip_prefix("tcp://") {
            let hostport = hostport.trim_end_matches('/');
            match hostport.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                    return Ok(Addr::Tcp(hostport.to_string()));
                }
                _ => return Err(bad("expected tcp://host:port")),
            }
        }
        if let Some(name) = s.strip_prefix("docker-container://") {
            let name = name.trim_end_matches('/');
            if name.contains('?') {
                return Err(bad(
                    "Docker contexts are not supported; point DOCKER_HOST at the daemon instead",
                ));
            }
            if !is_container_name(name) {
                return Err(bad(
                    "expected docker-container://NAME, with a container's name or ID",
                ));
            }
            return Ok(Addr::DockerContainer(name.to_string()));
        }
        if let Some(rest) = s.strip_prefix("kube-pod://") {
            return super::kube_pod::KubePod::parse(rest)
                .map(Addr::KubePod)
                .map_err(|why| bad(&why));
        }
        Err(bad(
            "expected docker://, docker://unix:///path, unix:///path, tcp://host:port, \
             docker-container://NAME or kube-pod://POD",
        ))
    }
}

/// Docker's rule for container names (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`), which IDs also meet.
fn is_container_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// The host of `host:port`, without the brackets of an IPv6 literal: the name a daemon's
/// TLS certificate is checked against by default.
pub(crate) fn host_of(hostport: &str) -> &str {
    let host = hostport.rsplit_once(':').map_or(hostport, |(h, _)| h);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Addr::Docker { socket } if socket.as_os_str() == DOCKER_SOCKET => {
                write!(f, "docker://")
            }
            Addr::Docker { socket } => write!(f, "docker://unix://{}", socket.display()),
            Addr::Unix(path) => write!(f, "unix://{}", path.display()),
            Addr::Tcp(hostport) => write!(f, "tcp://{hostport}"),
            Addr::DockerContainer(name) => write!(f, "docker-container://{name}"),
            Addr::KubePod(pod) => write!(f, "{pod}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        // As the environment chooses (the default socket unless DOCKER_HOST or a context
        // says otherwise).
        if let Ok(crate::docker_host::Endpoint {
            host: crate::docker_host::Host::Unix(socket),
            ..
        }) = crate::docker_host::endpoint()
        {
            assert_eq!(Addr::parse("docker://").unwrap(), Addr::Docker { socket });
        }
        assert_eq!(
            Addr::parse("docker://unix:///tmp/d.sock").unwrap(),
            Addr::Docker {
                socket: "/tmp/d.sock".into()
            }
        );
        assert_eq!(
            Addr::parse("unix:///run/buildkit/buildkitd.sock").unwrap(),
            Addr::Unix("/run/buildkit/buildkitd.sock".into())
        );
        assert_eq!(
            Addr::parse("tcp://10.0.0.1:1234").unwrap(),
            Addr::Tcp("10.0.0.1:1234".into())
        );
        assert_eq!(
            Addr::parse("docker-container://buildx_buildkit_default0").unwrap(),
            Addr::DockerContainer("buildx_buildkit_default0".into())
        );
        assert_eq!(
            Addr::parse("docker-container://my.builder-1/").unwrap(),
            Addr::DockerContainer("my.builder-1".into())
        );
    }

    #[test]
    fn refuses_unknown_and_unsupported_forms() {
        for bad in [
            "",
            "docker://tcp://x",
            "unix://relative",
            "tcp://nohost",
            "tcp://h:notaport",
            "ssh://host",
            "docker-container://",
            "docker-container://-x",
            "docker-container://a/b",
            "docker-container://a b",
        ] {
            assert!(Addr::parse(bad).is_err(), "{bad}");
        }
        let err = Addr::parse("docker-container://b?context=remote").unwrap_err();
        assert!(err.to_string().contains("DOCKER_HOST"), "{err}");
    }

    #[test]
    fn hosts_are_taken_from_host_port() {
        assert_eq!(host_of("builder.example:1234"), "builder.example");
        assert_eq!(host_of("127.0.0.1:1"), "127.0.0.1");
        assert_eq!(host_of("[::1]:1234"), "::1");
    }

    #[test]
    fn displays_back_to_the_parsed_form() {
        for s in [
            "docker://",
            "docker://unix:///x.sock",
            "unix:///b.sock",
            "tcp://h:1",
            "docker-container://buildkitd",
        ] {
            assert_eq!(Addr::parse(s).unwrap().to_string(), s);
        }
    }
}
