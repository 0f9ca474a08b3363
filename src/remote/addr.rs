//! The `--addr` forms bud accepts for a BuildKit daemon.

use std::path::PathBuf;

use super::RemoteError;

const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// Where the daemon listens and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    /// dockerd's embedded BuildKit, reached by upgrading `/grpc` and `/session` on its API socket.
    Docker { socket: PathBuf },
    /// A standalone buildkitd on a Unix socket (plain HTTP/2).
    Unix(PathBuf),
    /// A standalone buildkitd on TCP (`host:port`), with TLS when TLS options are given.
    Tcp(String),
}

impl Addr {
    /// Parses `docker://`, `docker://unix:///path`, `unix:///path` and `tcp://host:port`.
    pub fn parse(s: &str) -> Result<Self, RemoteError> {
        let bad = |why: &str| RemoteError::Address {
            addr: s.to_string(),
            reason: why.to_string(),
        };
        if let Some(rest) = s.strip_prefix("docker://") {
            return match rest {
                "" => Ok(Addr::Docker {
                    socket: DOCKER_SOCKET.into(),
                }),
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
        if s.starts_with("docker-container://") {
            return Err(bad(
                "docker-container:// is not supported yet; expose the daemon's socket and use unix:// or tcp://",
            ));
        }
        Err(bad(
            "expected docker://, docker://unix:///path, unix:///path or tcp://host:port",
        ))
    }
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
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!(
            Addr::parse("docker://").unwrap(),
            Addr::Docker {
                socket: DOCKER_SOCKET.into()
            }
        );
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
        ] {
            assert!(Addr::parse(bad).is_err(), "{bad}");
        }
        let err = Addr::parse("docker-container://buildkitd").unwrap_err();
        assert!(err.to_string().contains("not supported yet"), "{err}");
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
        ] {
            assert_eq!(Addr::parse(s).unwrap().to_string(), s);
        }
    }
}
