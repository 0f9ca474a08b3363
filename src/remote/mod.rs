//! The remote solver: runs bud's LLB on a BuildKit daemon over gRPC, as `docker build` does.
//!
//! bud's frontend makes the `pb::Definition` and image config; this module connects to the
//! daemon ([`Addr`]), serves the session the daemon pulls the context, credentials and
//! secrets from, solves the definition through the gateway so dockerd's `moby` exporter
//! gets the image config, and streams the daemon's progress into a [`ProgressSink`].
//!
//! ```no_run
//! # async fn f(definition: bud_proto::pb::Definition) -> Result<(), bud::remote::RemoteError> {
//! use bud::remote::{Exporter, RemoteSolver, SolveRequest};
//! let solver = RemoteSolver::connect("docker://").await?;
//! let mut req = SolveRequest::new(definition, Exporter::Moby { names: vec!["app".into()] });
//! req.local_dirs = SolveRequest::context_dirs(".".as_ref(), ".".as_ref(), vec![]);
//! let result = solver.solve(req).await?;
//! println!("{:?}", result.image_id);
//! # Ok(()) }
//! ```

mod addr;
mod admin;
mod container;
mod error_details;
mod exporters;
mod files;
mod images;
mod kube_pod;
mod local_cache;
mod progress;
mod session;
mod solve;
pub(crate) mod tls;
mod transport;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bud_proto::pb;
use tokio_util::sync::CancellationToken;

pub use addr::Addr;
pub use admin::PruneOptions;
pub use container::ContainerError;
pub use exporters::{BuildKitRelease, DaemonExporters};
pub use files::{DaemonFiles, DaemonFilesError};
pub use images::DaemonImages;
pub use local_cache::LocalCacheError;
pub use session::{SyncedDir, TransferStats};
pub use tls::{TlsFileError, TlsOptions};
pub use transport::{ChannelError, GrpcChannel};

use crate::progress::ProgressSink;

/// Errors of the remote solver. Daemon messages are passed on as the daemon wrote them.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// An `--addr` bud cannot use: an unknown scheme, a malformed value, TLS options with an
    /// address that is not `tcp://`.
    #[error("invalid --addr {addr:?}: {reason}")]
    Address {
        /// The address as given.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The socket or TCP port could not be connected to.
    #[error("cannot connect to the BuildKit daemon at {addr}")]
    Connect {
        /// The daemon's address.
        addr: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// `docker-container://` or `kube-pod://`: the container is missing, stopped, or has no
    /// working buildctl.
    #[error("{addr}: {reason}")]
    Container {
        /// The daemon's address.
        addr: String,
        /// What was found, and what to do about it.
        reason: String,
    },
    /// `docker-container://`: Docker's answer about the container, or why it was not asked.
    #[error("{addr}")]
    ContainerCheck {
        /// The daemon's address.
        addr: String,
        /// Boxed, as every remote call returns this type.
        #[source]
        source: Box<ContainerError>,
    },
    /// `docker-container://`: the Docker settings name no Docker bud can use.
    #[error("{addr}")]
    ContainerHost {
        /// The daemon's address.
        addr: String,
        /// Boxed, as every remote call returns this type.
        #[source]
        source: Box<crate::docker_host::DockerHostError>,
    },
    /// The `--tls*` options contradict each other or lack a file (`--tlsdir` with
    /// `--tlscert`, a certificate without its key).
    #[error("TLS with the BuildKit daemon at {addr}: {reason}")]
    Tls {
        /// The daemon's address.
        addr: String,
        /// What is missing or contradictory.
        reason: String,
    },
    /// The `--tls*` files could not make a TLS configuration.
    #[error("TLS with the BuildKit daemon at {addr}")]
    TlsFiles {
        /// The daemon's address.
        addr: String,
        /// Boxed, as every remote call returns this type.
        #[source]
        source: Box<tls::TlsFileError>,
    },
    /// The TLS handshake with a `tcp://` daemon failed (certificate refused, name
    /// mismatch, not a TLS server).
    #[error("TLS with the BuildKit daemon at {addr}: handshake failed")]
    Handshake {
        /// The daemon's address.
        addr: String,
        /// The TLS stack's error.
        #[source]
        source: std::io::Error,
    },
    /// An HTTP/1 exchange with dockerd's API (the `/grpc` or `/session` upgrade) failed.
    #[error("{what}")]
    Http {
        /// The request and where it went, e.g. `POST /grpc on unix:///var/run/docker.sock`.
        what: String,
        /// hyper's error.
        #[source]
        source: hyper::Error,
    },
    /// dockerd answered an upgrade request with an error instead of switching protocols.
    #[error("the daemon refused POST {path} (HTTP {status}): {message}")]
    Upgrade {
        /// The API path, `/grpc` or `/session`.
        path: String,
        /// The HTTP status.
        status: u16,
        /// dockerd's message, from its JSON body when it has one.
        message: String,
    },
    /// A gRPC call the daemon answered with an error status (not a failed build).
    #[error("{call}: {message} ({code:?})")]
    Grpc {
        /// The call, e.g. `Control.Solve`.
        call: &'static str,
        /// The status code.
        code: tonic::Code,
        /// The daemon's message, verbatim.
        message: String,
    },
    /// The build itself failed (a RUN exited non-zero, a file was missing…): the lines of
    /// the Dockerfile the daemon says the failed op comes from, then its message.
    #[error("{}failed to solve: {}", .0.excerpts(), .0.message)]
    Build(BuildFailure),
    #[error(
        "the daemon's BuildKit does not support LLB capability {cap:?}{}; upgrade the daemon or build without the feature that needs it",
        needed_by.as_deref().map(|n| format!(" (needed by {n})")).unwrap_or_default()
    )]
    /// The graph needs an LLB capability the daemon does not list: refused before the
    /// solve, rather than let an older BuildKit misread the op.
    MissingCap {
        /// The capability, e.g. `exec.mount.cache.sharing`.
        cap: String,
        /// The step that needs it (its custom name or Dockerfile command), when known.
        needed_by: Option<String>,
    },
    /// The daemon answered something bud does not understand or cannot use (an unexpected
    /// message, a missing result, a malformed header).
    #[error("{0}")]
    Protocol(String),
    /// The deferred graph could not be made; the error is the caller's.
    #[error(transparent)]
    Graph(GraphError),
    /// The build's cancellation token fired (a signal): the daemon was told to stop.
    #[error("build cancelled")]
    Cancelled,
    /// A local cache (`type=local`) could not be offered to the daemon or named after it.
    #[error(transparent)]
    LocalCache(#[from] local_cache::LocalCacheError),
}

/// A failed build as the daemon reports it: its message, and the places in the Dockerfile
/// of the op that failed.
#[derive(Debug, Clone, Default)]
pub struct BuildFailure {
    /// The daemon's message, as it wrote it (`process "..." did not complete
    /// successfully: exit code: 1`).
    pub message: String,
    /// The source locations BuildKit attaches to the error of a failed op whose definition
    /// has a source map (`errdefs.Source`), or, when it attaches none, the failed op's own
    /// from the definition bud sent.
    pub sources: Vec<bud_proto::errdefs::Source>,
    /// The op that failed, as the error names it (`errdefs.Vertex`).
    pub vertex: Option<String>,
}

impl BuildFailure {
    /// A failure with a message only; its sources are found later (`locate`, for a
    /// definition bud sent).
    pub fn new(message: impl Into<String>) -> Self {
        BuildFailure {
            message: message.into(),
            ..Default::default()
        }
    }

    /// The message and the typed details of a status: each detail is protobuf
    /// (`type.googleapis.com/errdefs.Source`, BuildKit before 0.13) or JSON
    /// (`github.com/moby/buildkit/errdefs.Source+json`, since). Details that do not decode
    /// are left out: the message is still the daemon's.
    pub fn from_status(status: &tonic::Status) -> Self {
        use prost::Message;
        let mut failure = BuildFailure::new(status.message());
        let details = bud_proto::rpc::Status::decode(status.details()).unwrap_or_default();
        for any in &details.details {
            match any.type_url.as_str() {
                bud_proto::errdefs::SOURCE_TYPE_URL => {
                    failure
                        .sources
                        .extend(bud_proto::errdefs::Source::decode(any.value.as_slice()).ok());
                }
                bud_proto::errdefs::SOURCE_JSON_TYPE_URL => {
                    failure
                        .sources
                        .extend(error_details::source_from_json(&any.value));
                }
                bud_proto::errdefs::VERTEX_TYPE_URL => {
                    failure.vertex = bud_proto::errdefs::Vertex::decode(any.value.as_slice())
                        .ok()
                        .map(|v| v.digest);
                }
                bud_proto::errdefs::VERTEX_JSON_TYPE_URL => {
                    failure.vertex = error_details::vertex_from_json(&any.value);
                }
                _ => {}
            }
        }
        failure
    }

    /// Without sources from the daemon, the failed op's locations in the definition bud
    /// sent: the op the error names, else the first the progress reported failed, by
    /// digest or, where the daemon rewrote the op (Docker 28 rewrites an image op it pins,
    /// and with it every digest after it), by its step name.
    pub(crate) fn locate(&mut self, sent: &pb::Definition, failed: &[(String, String)]) {
        let Some(source) = &sent.source else { return };
        if !self.sources.is_empty() {
            return;
        }
        let by_name = |name: &str| {
            sent.metadata
                .iter()
                .find(|(_, md)| {
                    md.description
                        .get(bud_frontend::llb::Constraints::CUSTOM_NAME)
                        .is_some_and(|n| n == name)
                })
                .map(|(digest, _)| digest.clone())
        };
        let candidates = self
            .vertex
            .iter()
            .cloned()
            .chain(failed.iter().map(|(digest, _)| digest.clone()))
            .chain(failed.iter().filter_map(|(_, name)| by_name(name)));
        for digest in candidates {
            self.sources
                .extend(
                    bud_frontend::llb::locations_of(source, &digest).map(|(info, ranges)| {
                        bud_proto::errdefs::Source {
                            info: Some(info.clone()),
                            ranges: ranges.to_vec(),
                        }
                    }),
                );
            if !self.sources.is_empty() {
                return;
            }
        }
    }

    /// Each source's lines, as buildx prints them before the error.
    pub fn excerpts(&self) -> String {
        self.sources
            .iter()
            .filter_map(|s| {
                let info = s.info.as_ref()?;
                Some(crate::progress::source_excerpt_of(info, &s.ranges))
            })
            .collect()
    }
}

impl RemoteError {
    pub(crate) fn grpc(call: &'static str, status: tonic::Status) -> Self {
        RemoteError::Grpc {
            call,
            code: status.code(),
            message: status.message().to_string(),
        }
    }
}

/// A secret for `RUN --mount=type=secret`: bud's `--secret`, as the command line parsed it.
pub use crate::cli::{SecretSource, SecretSpec as Secret};

/// Where the result goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exporter {
    /// An image in dockerd's image store, tagged with `names` (may be empty).
    Moby {
        /// The tags, full references.
        names: Vec<String>,
    },
    /// The result's files, written into `dest`.
    Local {
        /// A directory on bud's side: the daemon sends the files through the session.
        dest: PathBuf,
        /// `platform-split=false`: the daemon merges several platforms' files into `dest`
        /// (BuildKit 0.12 and later; an older one ignores it and splits them).
        merge_platforms: bool,
        /// SOURCE_DATE_EPOCH, every file's mtime: the exporter's `source-date-epoch`
        /// (BuildKit 0.11 and later), and set by bud's receiver for an older daemon.
        epoch: Option<i64>,
    },
    /// The result's files as a tar archive written to `dest`.
    Tar {
        /// A file on bud's side, the daemon's tar stream written into it through the
        /// session.
        dest: PathBuf,
        /// SOURCE_DATE_EPOCH, every entry's mtime: the exporter's `source-date-epoch`
        /// (BuildKit 0.11 and later; an older one ignores it).
        epoch: Option<i64>,
    },
    /// BuildKit's `image` exporter (a buildkitd's, or dockerd's on the containerd image
    /// store), with the attributes buildx sends: `name`, `push`, `registry.insecure`,
    /// `oci-mediatypes`, `compression`…; credentials come from the session's Auth service.
    Image {
        /// The exporter's attributes, passed as given.
        attrs: BTreeMap<String, String>,
    },
    /// BuildKit's `oci` or `docker` exporter (`kind`): the image as a tarball sent back to
    /// `dest` through the session.
    Archive {
        /// Which of the two exporters.
        kind: ArchiveKind,
        /// The file on bud's side the tarball is written to.
        dest: PathBuf,
        /// The exporter's attributes (`name`, `compression`, annotations…), passed as given.
        attrs: BTreeMap<String, String>,
    },
}

/// The two image tarballs BuildKit's exporters write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveKind {
    /// An OCI image layout tarball (`-o type=oci`).
    Oci,
    /// A `docker load` tarball (`-o type=docker,dest=…`).
    Docker,
}

impl ArchiveKind {
    /// The exporter's name in the solve request.
    pub(crate) fn exporter(self) -> &'static str {
        match self {
            ArchiveKind::Oci => "oci",
            ArchiveKind::Docker => "docker",
        }
    }
}

/// What the daemon builds: the LLB and the image config the `moby` exporter writes.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    /// The LLB the daemon solves (a single platform's).
    pub definition: pb::Definition,
    /// The image config JSON the `moby` exporter writes into the image.
    pub image_config_json: Option<Vec<u8>>,
    /// Several platforms in one solve, as buildx builds them on a BuildKit with its own image
    /// exporters: each platform a ref of the result, from which the exporter writes the
    /// index. When given, `definition` and `image_config_json` are not used.
    pub platforms: Vec<PlatformGraph>,
}

/// One platform's graph and image config in a solve of several.
#[derive(Debug, Clone)]
pub struct PlatformGraph {
    /// Its key in the result's refs and metadata, as BuildKit formats it (`linux/arm64`).
    pub id: String,
    /// The OCI platform (`os`, `architecture`, `variant`) the index lists it under.
    pub platform: serde_json::Value,
    /// The platform's LLB.
    pub definition: pb::Definition,
    /// The platform's image config, returned as `containerimage.config/<id>`.
    pub image_config_json: Vec<u8>,
}

/// Why a deferred graph could not be made (a Dockerfile error, an unresolvable image…).
pub type GraphError = Box<dyn std::error::Error + Send + Sync>;

/// Makes the graph once the build is registered on the daemon, resolving base images
/// through it.
pub type MakeGraph<'a> = Box<
    dyn FnOnce(DaemonImages) -> futures_util::future::BoxFuture<'a, Result<Graph, GraphError>>
        + Send
        + 'a,
>;

/// Where a build's graph comes from.
pub enum GraphSource<'a> {
    /// Made before the daemon was asked.
    Ready(Graph),
    /// Made inside the gateway's session, its base images resolved by the daemon (an
    /// image only the daemon's Docker has is then found).
    Deferred(MakeGraph<'a>),
    /// A frontend the daemon runs itself (`gateway.v0` with `source=IMAGE`), reading the
    /// session's `context` and `dockerfile` directories: the graph is its to make.
    Frontend {
        /// The frontend's name (`dockerfile.v0`, `gateway.v0`).
        name: String,
        /// Its options (`source=IMAGE`, build args, target…).
        attrs: BTreeMap<String, String>,
    },
}

/// One build for [`RemoteSolver::solve`].
pub struct SolveRequest<'a> {
    /// The session the daemon reads local directories, secrets and credentials from.
    /// BuildKit shares identical ops between concurrent builds, so a definition's
    /// `local://` sources should name this session (`LocalOptions::session_id`): two
    /// builds of different directories then never read each other's files.
    pub session_id: String,
    /// What is built.
    pub graph: GraphSource<'a>,
    /// The directories the definition's `local://NAME` sources read, by NAME.
    pub local_dirs: BTreeMap<String, SyncedDir>,
    /// Where the result goes.
    pub exporter: Exporter,
    /// More exporters for the same result, in one solve (BuildKit 0.13 and later).
    pub more_exporters: Vec<Exporter>,
    /// The secrets the session's Secrets service serves by id.
    pub secrets: Vec<Secret>,
    /// Agent sockets for `RUN --mount=type=ssh`, by ID (`default` for a mount without one).
    pub ssh_agents: BTreeMap<String, PathBuf>,
    /// The OCI layout directories the definition's `oci-layout://` sources read, by their
    /// `oci.store` attribute: served as content stores of the session.
    pub oci_layouts: BTreeMap<String, PathBuf>,
    /// Where the daemon's status stream is reported.
    pub progress: ProgressSink,
    /// Cancelling stops the build on the daemon.
    pub cancel: CancellationToken,
    /// `--cache-from`: caches the daemon imports and matches steps against.
    pub cache_imports: Vec<CacheEntry>,
    /// `--cache-to`: where the daemon exports the build's cache.
    pub cache_exports: Vec<CacheEntry>,
    /// The entitlements asked for (`network.host`, `security.insecure`); the daemon grants
    /// those its configuration allows.
    pub entitlements: Vec<String>,
    /// The platform bud's graph is for, as a frontend is asked for it (`platform`): BuildKit
    /// 0.13 and later check the result against it, and warn of a mismatch otherwise.
    pub platform: Option<String>,
    /// More of the solve's frontend attributes that the daemon itself reads, whoever makes
    /// the graph: `attest:provenance` and `attest:sbom`, as buildx sends them.
    pub frontend_attrs: BTreeMap<String, String>,
}

/// A cache import or export as BuildKit names it: a type (`registry`, `local`, `inline`, …)
/// and its attributes (`ref=…`, `src=…`, `mode=max`, …). Its `Debug` hides the values of
/// secrets (`remotecache::credentials::is_secret`).
#[derive(Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// The cache type, passed to the daemon as given.
    pub kind: String,
    /// Its attributes, `type` left out.
    pub attrs: BTreeMap<String, String>,
}

impl std::fmt::Debug for CacheEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let attrs: BTreeMap<&str, &str> = self
            .attrs
            .iter()
            .map(|(key, value)| {
                let shown = if crate::remotecache::credentials::is_secret(key) {
                    "<redacted>"
                } else {
                    value.as_str()
                };
                (key.as_str(), shown)
            })
            .collect();
        f.debug_struct("CacheEntry")
            .field("kind", &self.kind)
            .field("attrs", &attrs)
            .finish()
    }
}

impl<'a> SolveRequest<'a> {
    /// A request with no image config, local directories, secrets or progress output.
    pub fn new(definition: pb::Definition, exporter: Exporter) -> Self {
        let graph = Graph {
            definition,
            ..Graph::default()
        };
        Self::for_graph(graph, exporter)
    }

    /// A request for a graph made beforehand.
    pub fn for_graph(graph: Graph, exporter: Exporter) -> Self {
        Self::from_source(GraphSource::Ready(graph), exporter)
    }

    /// A request the daemon's frontend `name` builds, with `attrs` as its options.
    pub fn frontend(name: &str, attrs: BTreeMap<String, String>, exporter: Exporter) -> Self {
        Self::from_source(
            GraphSource::Frontend {
                name: name.to_owned(),
                attrs,
            },
            exporter,
        )
    }

    /// A request whose graph is made once the daemon can resolve base images for it.
    pub fn deferred(make: MakeGraph<'a>, exporter: Exporter) -> Self {
        Self::from_source(GraphSource::Deferred(make), exporter)
    }

    fn from_source(graph: GraphSource<'a>, exporter: Exporter) -> Self {
        Self {
            session_id: new_session_id(),
            graph,
            local_dirs: BTreeMap::new(),
            exporter,
            more_exporters: Vec::new(),
            secrets: Vec::new(),
            ssh_agents: BTreeMap::new(),
            oci_layouts: BTreeMap::new(),
            progress: ProgressSink::quiet(),
            cancel: CancellationToken::new(),
            cache_imports: Vec::new(),
            cache_exports: Vec::new(),
            entitlements: Vec::new(),
            platform: None,
            frontend_attrs: BTreeMap::new(),
        }
    }

    /// The two directories a Dockerfile build offers: `context` (filtered by the
    /// `.dockerignore` patterns in `excludes`) and `dockerfile`.
    pub fn context_dirs(
        context_dir: &Path,
        dockerfile_dir: &Path,
        excludes: Vec<String>,
    ) -> BTreeMap<String, SyncedDir> {
        BTreeMap::from([
            (
                "context".to_string(),
                SyncedDir {
                    path: context_dir.to_path_buf(),
                    excludes,
                },
            ),
            (
                "dockerfile".to_string(),
                SyncedDir {
                    path: dockerfile_dir.to_path_buf(),
                    excludes: Vec::new(),
                },
            ),
        ])
    }
}

/// What a finished build reports.
#[derive(Debug, Clone, Default)]
pub struct SolveResult {
    /// The exporter's response (`containerimage.digest`, …).
    pub exporter_response: BTreeMap<String, String>,
    /// The image ID, for the `moby` exporter.
    pub image_id: Option<String>,
    /// How much of the local directories the daemon asked for.
    pub transfers: TransferStats,
    /// The build's ref on the daemon (buildx's `buildx.build.ref` ends with it).
    pub build_ref: String,
}

/// A connection to a BuildKit daemon.
pub struct RemoteSolver {
    addr: Addr,
    channel: GrpcChannel,
}

impl RemoteSolver {
    /// Connects to `addr` (see [`Addr::parse`] for the forms). Errors name the address.
    pub async fn connect(addr: &str) -> Result<Self, RemoteError> {
        Self::connect_addr(Addr::parse(addr)?, &TlsOptions::default()).await
    }

    /// Connects to `addr`, over TLS if any of `tls` is set (`tcp://` only).
    pub async fn connect_with(addr: &str, tls: &TlsOptions) -> Result<Self, RemoteError> {
        Self::connect_addr(Addr::parse(addr)?, tls).await
    }

    async fn connect_addr(addr: Addr, tls: &TlsOptions) -> Result<Self, RemoteError> {
        let connector = match &addr {
            Addr::Tcp(hostport) if tls.is_set() => {
                Some(tls.connector(&addr.to_string(), addr::host_of(hostport))?)
            }
            _ if tls.is_set() => {
                return Err(RemoteError::Address {
                    addr: addr.to_string(),
                    reason: "the TLS options apply to tcp:// addresses only".into(),
                });
            }
            _ => None,
        };
        let channel = match &addr {
            Addr::Docker { socket } => {
                let io = transport::docker_upgrade(socket, "/grpc", &[]).await?;
                GrpcChannel::handshake(io, &addr).await?
            }
            Addr::Unix(_) | Addr::Tcp(_) | Addr::DockerContainer(_) | Addr::KubePod(_) => {
                let (socket, started) = transport::dial(&addr, connector.as_ref()).await?;
                let io = hyper_util::rt::TokioIo::new(socket);
                match GrpcChannel::handshake(io, &addr).await {
                    Ok(channel) => {
                        started.await?;
                        channel
                    }
                    // A relay that died says why better than the broken pipe it left.
                    Err(e) => return Err(started.await.err().unwrap_or(e)),
                }
            }
        };
        Ok(Self { addr, channel })
    }
}

/// A new session ID, for the definition's local sources and [`SolveRequest::session_id`].
pub fn new_session_id() -> String {
    random_id()
}

/// A random identifier for sessions and build refs.
pub(crate) fn random_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // Uniqueness is all that matters here: fall back to the time and process.
        use sha2::Digest;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let seed = format!(
            "{}:{}:{:?}",
            std::process::id(),
            now.as_nanos(),
            std::thread::current().id()
        );
        bytes.copy_from_slice(&sha2::Sha256::digest(seed.as_bytes())[..16]);
    }
    // BuildKit's IDs are base36 strings; any unique string is accepted.
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cache_entry_s_debug_hides_its_secrets() {
        let entry = CacheEntry {
            kind: "s3".into(),
            attrs: [
                ("bucket", "the-bucket"),
                ("access_key_id", "AKIDSHOWN"),
                ("secret_access_key", "s3cr3t"),
                ("session_token", "s3ss10n"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        };
        let shown = format!("{entry:?}");
        assert!(shown.contains("the-bucket"), "{shown}");
        for secret in ["AKIDSHOWN", "s3cr3t", "s3ss10n"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
