//! The Docker API bud talks to, chosen as the docker CLI chooses it: `DOCKER_HOST` when set;
//! else the context `DOCKER_CONTEXT` names; else the current context of the CLI's config
//! (`docker context use`); else the default socket. A `unix://` socket, a `tcp://` address
//! with TLS set up as docker sets it up (from `DOCKER_TLS_VERIFY`, `DOCKER_TLS` and
//! `DOCKER_CERT_PATH` for `DOCKER_HOST`, from the context's own TLS files for a context), or
//! `ssh://`, through `docker system dial-stdio` on the other end.

mod context;
mod ssh;
mod tcp;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bollard::{BollardRequest, Docker};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::Connect;
use hyper_util::rt::TokioExecutor;
use tokio::sync::watch;

pub use context::ContextError;
pub use ssh::SshHost;

const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
/// docker's default ports for `tcp://host` without one.
const DEFAULT_PORT: u16 = 2375;
const DEFAULT_TLS_PORT: u16 = 2376;
/// What bollard waits for an answer, in seconds: loads of large images take long.
const TIMEOUT_SECS: u64 = 120;

/// Why the Docker the settings choose cannot be talked to.
#[derive(Debug, thiserror::Error)]
pub enum DockerHostError {
    /// A setting names a Docker in a form bud does not take.
    #[error("{origin}: {reason}")]
    Unsupported {
        /// The setting: `DOCKER_HOST=…`, `Docker context "ci"`.
        origin: String,
        /// What is wrong with its value.
        reason: String,
    },
    /// The chosen Docker context cannot be used.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// bollard refused the socket.
    #[error("cannot reach Docker at {place}")]
    Connect {
        /// The setting that chose the socket.
        place: String,
        /// bollard's error.
        #[source]
        source: bollard::errors::Error,
    },
    /// No client could be made for a `tcp://` or `ssh://` Docker.
    #[error("{origin}")]
    Client {
        /// The setting that chose it.
        origin: String,
        /// Boxed: bollard's error is large, and this one is returned everywhere.
        #[source]
        source: Box<ClientError>,
    },
}

/// Why a client for a `tcp://` or `ssh://` endpoint could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The TLS files docker's settings name.
    #[error("TLS")]
    Tls(#[source] crate::remote::TlsFileError),
    /// bollard refused the transport.
    #[error(transparent)]
    Bollard(#[from] bollard::errors::Error),
}

/// Where the Docker API is, and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Where the API is.
    pub host: Host,
    /// Where the choice came from, for messages: `DOCKER_HOST=tcp://…`, `context "ci"`.
    pub origin: String,
    /// TLS for a `tcp://` host; `None`: plain HTTP.
    pub tls: Option<TlsSettings>,
    /// Chosen by a setting (`DOCKER_HOST`, a context), not the default socket by default.
    pub configured: bool,
}

/// A Docker API address, in the forms docker takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// `unix:///path`: a socket.
    Unix(PathBuf),
    /// `tcp://host:port`, docker's default port filled in.
    Tcp {
        /// A name or address; an IPv6 address without brackets.
        host: String,
        /// The port.
        port: u16,
    },
    /// `ssh://`: `docker system dial-stdio` run over ssh.
    Ssh(SshHost),
}

/// TLS as the docker CLI configures it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The CA the daemon's certificate is checked against, besides the system's.
    pub ca: Option<PathBuf>,
    /// The client certificate and key, when the daemon asks for one.
    pub identity: Option<(PathBuf, PathBuf)>,
    /// `false`: any certificate is accepted (`DOCKER_TLS` without `DOCKER_TLS_VERIFY`, or a
    /// context's `SkipTLSVerify`).
    pub verify: bool,
}

/// Reads what the process's environment and docker's config choose.
pub fn endpoint() -> Result<Endpoint, DockerHostError> {
    resolve(&|name| std::env::var_os(name))
}

/// A client for the Docker API the environment chooses (not yet checked to answer).
pub fn client() -> Result<Docker, DockerHostError> {
    connect(&endpoint()?)
}

/// A client for `endpoint` (not yet checked to answer).
pub fn connect(endpoint: &Endpoint) -> Result<Docker, DockerHostError> {
    match &endpoint.host {
        Host::Unix(path) => {
            let url = format!("unix://{}", path.display());
            Docker::connect_with_socket(&url, TIMEOUT_SECS, bollard::API_DEFAULT_VERSION).map_err(
                |source| DockerHostError::Connect {
                    place: endpoint.origin.clone(),
                    source,
                },
            )
        }
        Host::Tcp { host, port } => tcp::client(host, *port, endpoint.tls.as_ref(), TIMEOUT_SECS)
            .map_err(|source| DockerHostError::Client {
                origin: endpoint.origin.clone(),
                source: Box::new(source),
            }),
        Host::Ssh(host) => {
            ssh::client(host, TIMEOUT_SECS).map_err(|source| DockerHostError::Client {
                origin: endpoint.origin.clone(),
                source: Box::new(source.into()),
            })
        }
    }
}

/// bollard on a pooled hyper client of bud's that dials with `connector`; `address` gives
/// the scheme and authority of the requests' URIs. A failed request is explained by what
/// `notes` recorded, when the connector's processes record why they ended.
fn client_over<C>(
    connector: C,
    address: String,
    timeout: u64,
    notes: Option<FailureNotes>,
) -> Result<Docker, bollard::errors::Error>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    let client = Client::builder(TokioExecutor::new()).build(connector);
    let transport = move |request: BollardRequest| {
        let (client, notes) = (client.clone(), notes.clone());
        async move {
            let err = match client.request(request).await {
                Ok(response) => return Ok(response),
                Err(err) => err,
            };
            // hyper may report only that the connection went away ("canceled", "broken
            // pipe"); the process behind it says why, unless the error already does.
            let said = match &notes {
                Some(notes) => notes.explain().await,
                None => None,
            };
            let text = crate::error_chain::error_chain(&err);
            match said {
                Some(said) if !text.contains(&said) => Err(bollard::errors::Error::IOError {
                    err: std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        format!("{text}: {said}"),
                    ),
                }),
                _ => Err(bollard::errors::Error::HyperLegacyError { err }),
            }
        }
    };
    Docker::connect_with_custom_transport(
        transport,
        Some(address),
        timeout,
        bollard::API_DEFAULT_VERSION,
    )
}

/// Why a transport's processes ended (ssh's error output), kept to explain the request that
/// failed with them.
#[derive(Clone)]
struct FailureNotes(Arc<watch::Sender<Option<String>>>);

/// How long a failed request waits for the process behind it to say why it ended.
const EXPLAIN_WAIT: Duration = Duration::from_secs(1);

impl FailureNotes {
    fn new() -> Self {
        FailureNotes(Arc::new(watch::Sender::new(None)))
    }

    fn record(&self, said: String) {
        self.0.send_replace(Some(said));
    }

    /// The latest note, waiting a moment for one, and forgetting it once given.
    async fn explain(&self) -> Option<String> {
        let mut notes = self.0.subscribe();
        let noted = tokio::time::timeout(EXPLAIN_WAIT, notes.wait_for(Option::is_some))
            .await
            .is_ok_and(|waited| waited.is_ok());
        if noted {
            self.0.send_replace(None)
        } else {
            None
        }
    }
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Unix(path) => write!(f, "unix://{}", path.display()),
            Host::Tcp { host, port } if host.contains(':') => write!(f, "tcp://[{host}]:{port}"),
            Host::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Host::Ssh(host) => write!(f, "{host}"),
        }
    }
}

/// The docker CLI's choice, from the environment `var` gives.
fn resolve(var: &dyn Fn(&str) -> Option<OsString>) -> Result<Endpoint, DockerHostError> {
    let set = |name: &str| var(name).filter(|v| !v.is_empty());
    let text = |name: &str| set(name).map(|v| v.to_string_lossy().into_owned());
    let config_dir = match set("DOCKER_CONFIG") {
        Some(dir) => Some(PathBuf::from(dir)),
        None => set("HOME").map(|home| Path::new(&home).join(".docker")),
    };

    if let Some(host) = text("DOCKER_HOST") {
        return from_environment(&host, &text, config_dir.as_deref());
    }
    let context = match text("DOCKER_CONTEXT") {
        Some(name) => Some((name, "DOCKER_CONTEXT")),
        None => config_dir
            .as_deref()
            .and_then(context::current)
            .map(|name| (name, "the docker config's currentContext")),
    };
    match context {
        Some((name, _)) if name == context::DEFAULT => {
            from_environment(DEFAULT_HOST, &text, config_dir.as_deref())
        }
        Some((name, chosen_by)) => {
            let Some(config_dir) = config_dir else {
                return Err(ContextError::NoConfigDir { name, chosen_by }.into());
            };
            let stored = context::read(&config_dir, &name, chosen_by)?;
            let origin = format!("Docker context {name:?}");
            let Some(host) = stored.host else {
                return Err(DockerHostError::Unsupported {
                    origin,
                    reason: "the context has no Docker endpoint".into(),
                });
            };
            // TLS files make the connection TLS; SkipTLSVerify alone does too, unverified.
            let tls = match (stored.tls_files, stored.skip_tls_verify) {
                (Some(files), skip) => Some(TlsSettings {
                    ca: files.ca,
                    identity: files.identity,
                    verify: !skip,
                }),
                (None, true) if host.starts_with("tcp://") => Some(TlsSettings {
                    ca: None,
                    identity: None,
                    verify: false,
                }),
                (None, _) => None,
            };
            Ok(Endpoint {
                host: parse_host(&host, tls.is_some(), &origin)?,
                origin,
                tls,
                configured: true,
            })
        }
        None => from_environment(DEFAULT_HOST, &text, config_dir.as_deref()),
    }
}

const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// The default context: `host` with TLS from `DOCKER_TLS_VERIFY`, `DOCKER_TLS` and
/// `DOCKER_CERT_PATH` (default: docker's config directory).
fn from_environment(
    host: &str,
    text: &dyn Fn(&str) -> Option<String>,
    config_dir: Option<&Path>,
) -> Result<Endpoint, DockerHostError> {
    let verify = text("DOCKER_TLS_VERIFY").is_some();
    let tls = if verify || text("DOCKER_TLS").is_some() {
        let cert_path = text("DOCKER_CERT_PATH")
            .map(PathBuf::from)
            .or_else(|| config_dir.map(Path::to_owned));
        let file = |name: &str| {
            cert_path
                .as_ref()
                .map(|dir| dir.join(name))
                .filter(|p| p.exists())
        };
        Some(TlsSettings {
            ca: file("ca.pem").filter(|_| verify),
            identity: file("cert.pem").zip(file("key.pem")),
            verify,
        })
    } else {
        None
    };
    let configured = text("DOCKER_HOST").is_some();
    let origin = if configured {
        format!("DOCKER_HOST={host}")
    } else {
        format!("the default socket {DEFAULT_SOCKET}")
    };
    Ok(Endpoint {
        host: parse_host(host, tls.is_some(), &origin)?,
        origin,
        tls,
        configured,
    })
}

/// A host as docker writes it: `unix:///path`, `tcp://host[:port]`.
fn parse_host(text: &str, tls: bool, origin: &str) -> Result<Host, DockerHostError> {
    let unsupported = |reason: String| DockerHostError::Unsupported {
        origin: origin.to_string(),
        reason,
    };
    if let Some(path) = text.strip_prefix("unix://") {
        let path = if path.is_empty() {
            DEFAULT_SOCKET
        } else {
            path
        };
        if !path.starts_with('/') {
            return Err(unsupported(format!(
                "{text:?}: the socket path must be absolute"
            )));
        }
        return Ok(Host::Unix(path.into()));
    }
    if let Some(rest) = text.strip_prefix("tcp://") {
        let hostport = rest.split('/').next().unwrap_or_default();
        let default_port = if tls { DEFAULT_TLS_PORT } else { DEFAULT_PORT };
        let (host, port) = split_host_port(hostport, default_port)
            .ok_or_else(|| unsupported(format!("{text:?}: expected tcp://HOST[:PORT]")))?;
        return Ok(Host::Tcp { host, port });
    }
    if let Some(rest) = text.strip_prefix("ssh://") {
        return SshHost::parse(rest)
            .map(Host::Ssh)
            .map_err(|reason| unsupported(format!("{text:?}: {reason}")));
    }
    let scheme = text.split_once("://").map_or(text, |(scheme, _)| scheme);
    Err(unsupported(match scheme {
        "fd" | "npipe" => format!("{scheme}:// Docker hosts are not supported"),
        _ => format!("{text:?}: expected unix:///PATH, tcp://HOST[:PORT] or ssh://[USER@]HOST"),
    }))
}

/// `host:port`, `host`, `[v6]:port`, `[v6]`; `None` for an empty host or a bad port.
fn split_host_port(text: &str, default_port: u16) -> Option<(String, u16)> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let port = match port {
        None => default_port,
        Some(port) => port.parse().ok()?,
    };
    (!host.is_empty()).then(|| (host.to_string(), port))
}

/// The storage driver Docker reports (`/info` DriverStatus `driver-type`) when its images
/// live in containerd, as buildx and the docker CLI detect the containerd image store.
const CONTAINERD_SNAPSHOTTER: &str = "io.containerd.snapshotter.v1";

/// Whether `docker` keeps its images in containerd: then one tag holds an image index of
/// several platforms, and dockerd's BuildKit has its own image exporters.
pub async fn uses_containerd_store(docker: &Docker) -> Result<bool, bollard::errors::Error> {
    let info = docker.info().await?;
    Ok(info.driver_status.unwrap_or_default().iter().any(|pair| {
        pair.first().is_some_and(|k| k == "driver-type")
            && pair.get(1).is_some_and(|v| v == CONTAINERD_SNAPSHOTTER)
    }))
}

/// Why there is no Docker to use. Cloned into each part of a build that would use it, whose
/// own error then says what needed Docker.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DockerUnavailable {
    /// The setting that names Docker cannot be used.
    #[error(transparent)]
    Setting(Arc<DockerHostError>),
    /// The Docker the settings name does not answer.
    #[error("{origin}")]
    NoAnswer {
        /// Where the choice came from: `DOCKER_HOST=…`, `the default socket …`.
        origin: String,
        /// The ping's failure.
        #[source]
        source: Arc<bollard::errors::Error>,
    },
}

/// The Docker daemon docker's CLI would use (DOCKER_HOST, the current context or the default
/// socket) if it answers, or why not. Docker is optional until an output needs it; that
/// output's error gives the reason.
pub async fn probe() -> Result<bollard::Docker, DockerUnavailable> {
    let setting = |e| DockerUnavailable::Setting(Arc::new(e));
    let endpoint = match endpoint() {
        Ok(endpoint) => endpoint,
        Err(e) => {
            // A setting naming a Docker bud cannot use is worth knowing even when no
            // output needs Docker.
            crate::report!("warning: {}", crate::error_chain::error_chain(&e));
            return Err(setting(e));
        }
    };
    let docker = connect(&endpoint).map_err(setting)?;
    match docker.ping().await {
        Ok(_) => Ok(docker),
        Err(e) => {
            let why = DockerUnavailable::NoAnswer {
                origin: endpoint.origin,
                source: Arc::new(e),
            };
            // No Docker on the default socket is a normal setup; a daemon a setting names
            // that does not answer is not, and base images then come from registries.
            if endpoint.configured {
                crate::report!(
                    "warning: building without Docker: {}",
                    crate::error_chain::error_chain(&why)
                );
            }
            Err(why)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn resolve_with(vars: &[(&str, &str)]) -> Result<Endpoint, DockerHostError> {
        let vars: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        resolve(&|name| vars.get(name).cloned())
    }

    fn tcp(host: &str, port: u16) -> Host {
        Host::Tcp {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn without_anything_set_the_default_socket() {
        let e = resolve_with(&[("HOME", "/nonexistent")]).unwrap();
        assert_eq!(e.host, Host::Unix(DEFAULT_SOCKET.into()));
        assert_eq!(e.tls, None);
    }

    #[test]
    fn docker_host_forms() {
        for (text, host) in [
            (
                "unix:///run/user/1000/docker.sock",
                Host::Unix("/run/user/1000/docker.sock".into()),
            ),
            ("unix://", Host::Unix(DEFAULT_SOCKET.into())),
            ("tcp://10.0.0.5:2375", tcp("10.0.0.5", 2375)),
            ("tcp://docker", tcp("docker", 2375)),
            ("tcp://docker:2376/", tcp("docker", 2376)),
            ("tcp://[::1]:2375", tcp("::1", 2375)),
            ("tcp://[::1]", tcp("::1", 2375)),
            (
                "ssh://me@box:2222",
                Host::Ssh(SshHost {
                    user: Some("me".into()),
                    host: "box".into(),
                    port: Some(2222),
                }),
            ),
        ] {
            let e = resolve_with(&[("DOCKER_HOST", text)]).unwrap();
            assert_eq!(e.host, host, "{text}");
            assert_eq!(e.origin, format!("DOCKER_HOST={text}"));
        }
        assert_eq!(tcp("::1", 2375).to_string(), "tcp://[::1]:2375");
    }

    #[test]
    fn unsupported_hosts_say_what_to_do() {
        for (text, expected) in [
            ("ssh://me@box/path", "no path"),
            ("fd://", "not supported"),
            ("tcp://", "expected tcp://HOST"),
            ("tcp://box:http", "expected tcp://HOST"),
            ("unix://relative.sock", "absolute"),
            ("box:2375", "expected unix:///PATH"),
        ] {
            let err = resolve_with(&[("DOCKER_HOST", text)])
                .unwrap_err()
                .to_string();
            assert!(err.contains(expected), "{text}: {err}");
            assert!(err.contains("DOCKER_HOST="), "{text}: {err}");
        }
    }

    #[test]
    fn tls_from_the_environment_as_docker_reads_it() {
        let certs = tempfile::tempdir().unwrap();
        for name in ["ca.pem", "cert.pem", "key.pem"] {
            std::fs::write(certs.path().join(name), "").unwrap();
        }
        let dir = certs.path().to_str().unwrap();
        let e = resolve_with(&[
            ("DOCKER_HOST", "tcp://docker"),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CERT_PATH", dir),
        ])
        .unwrap();
        // With TLS the default port is 2376.
        assert_eq!(e.host, tcp("docker", 2376));
        assert_eq!(
            e.tls,
            Some(TlsSettings {
                ca: Some(certs.path().join("ca.pem")),
                identity: Some((certs.path().join("cert.pem"), certs.path().join("key.pem"))),
                verify: true,
            })
        );

        // DOCKER_TLS alone: encrypted, not verified; the CA is not used.
        let e = resolve_with(&[
            ("DOCKER_HOST", "tcp://docker:2376"),
            ("DOCKER_TLS", "1"),
            ("DOCKER_CERT_PATH", dir),
        ])
        .unwrap();
        let tls = e.tls.unwrap();
        assert!(!tls.verify);
        assert_eq!(tls.ca, None);

        // The certificates default to docker's config directory; missing files are left out.
        let e = resolve_with(&[
            ("DOCKER_HOST", "tcp://docker:2376"),
            ("DOCKER_TLS_VERIFY", "1"),
            ("DOCKER_CONFIG", "/nonexistent"),
        ])
        .unwrap();
        assert_eq!(
            e.tls,
            Some(TlsSettings {
                ca: None,
                identity: None,
                verify: true
            })
        );

        // An empty variable is an unset one.
        let e =
            resolve_with(&[("DOCKER_HOST", "tcp://docker"), ("DOCKER_TLS_VERIFY", "")]).unwrap();
        assert_eq!((e.host, e.tls), (tcp("docker", 2375), None));
    }

    #[test]
    fn contexts_are_found_as_the_docker_cli_finds_them() {
        let config = tempfile::tempdir().unwrap();
        let dir = config.path().to_str().unwrap();
        context::tests::store(
            config.path(),
            "remote",
            "tcp://builder:2376",
            false,
            &["ca.pem"],
        );
        context::tests::store(
            config.path(),
            "rootless",
            "unix:///run/user/1000/docker.sock",
            false,
            &[],
        );
        std::fs::write(
            config.path().join("config.json"),
            r#"{"auths": {}, "currentContext": "rootless"}"#,
        )
        .unwrap();

        // The config's current context.
        let e = resolve_with(&[("DOCKER_CONFIG", dir)]).unwrap();
        assert_eq!(e.host, Host::Unix("/run/user/1000/docker.sock".into()));
        assert_eq!(e.origin, "Docker context \"rootless\"");
        assert_eq!(e.tls, None);

        // DOCKER_CONTEXT over the config; its TLS files make the connection TLS.
        let e = resolve_with(&[("DOCKER_CONFIG", dir), ("DOCKER_CONTEXT", "remote")]).unwrap();
        assert_eq!(e.host, tcp("builder", 2376));
        let tls = e.tls.unwrap();
        assert!(tls.verify);
        assert!(tls.ca.unwrap().ends_with("docker/ca.pem"));
        assert_eq!(tls.identity, None);

        // DOCKER_HOST over any context, and "default" is the environment's choice.
        let e = resolve_with(&[
            ("DOCKER_CONFIG", dir),
            ("DOCKER_CONTEXT", "remote"),
            ("DOCKER_HOST", "unix:///tmp/d.sock"),
        ])
        .unwrap();
        assert_eq!(e.host, Host::Unix("/tmp/d.sock".into()));
        let e = resolve_with(&[("DOCKER_CONFIG", dir), ("DOCKER_CONTEXT", "default")]).unwrap();
        assert_eq!(e.host, Host::Unix(DEFAULT_SOCKET.into()));

        // A context that does not exist is an error naming it and who chose it.
        let err = resolve_with(&[("DOCKER_CONFIG", dir), ("DOCKER_CONTEXT", "gone")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("\"gone\"") && err.contains("DOCKER_CONTEXT"),
            "{err}"
        );
    }

    #[test]
    fn skip_tls_verify_contexts() {
        let config = tempfile::tempdir().unwrap();
        context::tests::store(config.path(), "lab", "tcp://lab:2376", true, &[]);
        let e = resolve_with(&[
            ("DOCKER_CONFIG", config.path().to_str().unwrap()),
            ("DOCKER_CONTEXT", "lab"),
        ])
        .unwrap();
        assert_eq!(
            e.tls,
            Some(TlsSettings {
                ca: None,
                identity: None,
                verify: false
            })
        );
    }
}
