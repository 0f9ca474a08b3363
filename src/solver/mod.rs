//! The embedded solver: runs an LLB `pb.Definition` on this machine, with runc on overlayfs
//! snapshots and a persistent, content-addressed cache.
//!
//! Each vertex (op) is solved once however many users it has; independent vertices run
//! concurrently, bounded by the number of cores; the first failure cancels the rest. A
//! vertex's cache key is its op bytes with its inputs replaced by their cache keys, plus the
//! content checksums of what it reads from a local context, so that a step reruns exactly
//! when what it depends on changed.

mod ahead;
mod exec;
mod file;
mod graph;
mod key;
pub mod lazy;
mod merge;
mod remote_source;
pub mod snapshots;
pub mod snapshotter;
mod source;
mod top_layer;
mod why;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::error_chain::error_chain;

use bud_proto::pb;
use futures_util::future::{BoxFuture, FutureExt, Shared};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::cache::meta::{MetaError, MetaStore};
use crate::content::ContentStore;
use crate::executor::Runtime;
use crate::progress::ProgressSink;
use crate::state::StateRoot;

pub(crate) use graph::Graph;
pub use key::output_key;
pub use snapshots::{Ref, Snapshots};
pub use source::{ImageLayer, ImageProvider, ImageProviderError, LocalContext, ResolvedImage};
pub use why::{HistoryTarget, Reason};

/// Why a vertex could not be solved.
#[derive(Debug, thiserror::Error)]
pub enum SolveError {
    /// The Definition is malformed (an op that does not decode, an input that names no op,
    /// an exec without a root mount): a frontend's bug, never a user's.
    #[error("invalid build definition: {0}")]
    InvalidDefinition(String),
    /// An op or option BuildKit has that the embedded solver does not run (DiffOp,
    /// BuildOp, some source schemes); `--addr` builds it on BuildKit.
    #[error("{0} is not supported yet")]
    Unsupported(String),
    /// An entitlement the step needs and the build did not grant (`network.host`,
    /// `security.insecure`), as BuildKit refuses it.
    #[error("{0} is not allowed (grant it with --allow {0})")]
    NotAllowed(&'static str),
    /// A file or directory of the solver's own could not be made, read or removed.
    #[error("{action} {path}")]
    Io {
        /// What was being done, e.g. `creating`.
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The metadata store (snapshot records, cache keys, leases).
    #[error(transparent)]
    Meta(#[from] MetaError),
    /// Mounting or unmounting a snapshot's overlay.
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotError),
    /// The OCI runtime, before the step's process ran (its spec, runc itself).
    #[error(transparent)]
    Exec(crate::executor::ExecError),
    /// A file operation (`COPY`, `ADD`, `mkdir`…) on a step's root.
    #[error(transparent)]
    File(#[from] crate::fileop::Error),
    /// A `--chown` or `USER` name the image's `/etc/passwd` or `/etc/group` cannot resolve.
    #[error(transparent)]
    User(#[from] crate::userdb::Error),
    /// A `--chmod` value that is not a mode.
    #[error(transparent)]
    Mode(#[from] crate::fileop::symbolic_mode::BadMode),
    /// Walking or checksumming a local context.
    #[error(transparent)]
    Context(#[from] crate::source::context::ContextError),
    /// Fetching a git source.
    #[error(transparent)]
    Git(#[from] crate::source::git::GitError),
    /// Downloading an `ADD` URL.
    #[error(transparent)]
    Http(#[from] crate::source::http::HttpError),
    /// A base image layer named by a diff ID that is no digest.
    #[error("layer diff ID {diff_id}")]
    DiffId {
        /// The diff ID as the image config gives it.
        diff_id: String,
        /// Why it is no digest.
        #[source]
        source: crate::content::DigestError,
    },
    /// A base image layer's tar could not be kept in the content store.
    #[error("keeping the base image layer {diff_id}")]
    KeepLayer {
        /// The layer's diff ID.
        diff_id: String,
        /// The content store's error.
        #[source]
        source: crate::content::ContentError,
    },
    /// An `oci-layout://` context's image could not be read.
    #[error(transparent)]
    Layout(#[from] crate::source::oci_layout::LayoutError),
    /// The image provider's error, as it tells it.
    #[error(transparent)]
    ImageProvider(source::ImageProviderError),
    /// A step for a platform this machine cannot run (no emulator for it).
    #[error(transparent)]
    NoEmulator(#[from] crate::emulation::NoEmulator),
    /// A RUN step exited non-zero: BuildKit's message, word for word, as scripts match it.
    #[error(
        "process \"{command}\" did not complete successfully: exit code: {code}{}",
        .hint.map(|h| format!(" ({h})")).unwrap_or_default()
    )]
    ProcessFailed {
        /// The step's command line as BuildKit quotes it (`/bin/sh -c …`).
        command: String,
        /// Its exit code.
        code: i32,
        /// What to do when the runtime, not the step, failed in a way bud recognises.
        hint: Option<&'static str>,
        /// The last lines the step printed, for the error report.
        output_tail: Vec<String>,
    },
    /// A step that cannot run as asked, said in full (a secret or SSH agent the build was
    /// not given, a bind source `.dockerignore` excludes).
    #[error("{0}")]
    Other(String),
    /// A failure of something the solver called, under what the solver was doing.
    #[error("{action}")]
    Failed {
        /// What the solver was doing, e.g. `extracting a layer`.
        action: String,
        /// The callee's error, whole.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The build's cancellation token fired (a signal, or another step failed first).
    #[error("the build was cancelled")]
    Cancelled,
    /// A result of an imported cache used before it was brought in: a bug.
    #[error("internal error: an imported result was used before it was brought in")]
    NotBroughtIn,
    /// A failure of a vertex shared by several users.
    #[error(transparent)]
    Shared(Arc<SolveError>),
    /// The failure of a step that others wait for too: its error, without its name.
    #[error(transparent)]
    SharedStep(SharedStepError),
}

/// The error of a step several parts of the build share, seen as the step's own error
/// (its message and causes, not its name).
#[derive(Debug, Clone)]
pub struct SharedStepError(Arc<StepError>);

impl std::fmt::Display for SharedStepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.source.fmt(f)
    }
}

impl std::error::Error for SharedStepError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source.source()
    }
}

/// A step the runtime stopped because the build was cancelled is a cancellation like any
/// other: a multi-platform build reports the failure that cancelled it, not it.
impl From<crate::executor::ExecError> for SolveError {
    fn from(e: crate::executor::ExecError) -> Self {
        match e {
            crate::executor::ExecError::Cancelled => SolveError::Cancelled,
            e => SolveError::Exec(e),
        }
    }
}

impl SolveError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> SolveError {
        let path = path.into();
        move |source| SolveError::Io {
            action,
            path,
            source,
        }
    }

    /// What failed while the solver was doing `action`.
    pub(crate) fn failed<E>(action: impl Into<String>) -> impl FnOnce(E) -> SolveError
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let action = action.into();
        move |source| SolveError::Failed {
            action,
            source: source.into(),
        }
    }

    /// The innermost error, through shared wrappers.
    pub fn root(&self) -> &SolveError {
        match self {
            SolveError::Shared(e) => e.root(),
            SolveError::SharedStep(e) => e.0.source.root(),
            e => e,
        }
    }
}

/// A step that failed, with the name progress showed for it.
#[derive(Debug, thiserror::Error)]
#[error("{name}")]
pub struct StepError {
    /// The step as progress named it (`[2/3] RUN …`).
    pub name: String,
    /// The op's digest (empty when the definition itself failed to decode), which the
    /// Definition's source map takes to Dockerfile lines.
    pub vertex: String,
    /// What went wrong.
    #[source]
    pub source: SolveError,
}

/// What a build needs from outside the graph.
#[derive(Default)]
pub struct SolveOptions {
    /// Local sources by name (`local://context`, `local://dockerfile`).
    pub local_dirs: HashMap<String, PathBuf>,
    /// OCI layout directories by content store ID (`oci-layout://` sources).
    pub oci_layouts: HashMap<String, PathBuf>,
    /// `--secret` values by id.
    pub secrets: HashMap<String, Vec<u8>>,
    /// `--ssh` agent sockets by id.
    pub ssh_agents: HashMap<String, PathBuf>,
    /// `--no-cache`: run every step, still recording the results.
    pub no_cache: bool,
    /// `--network=none`: steps that do not choose a network get none.
    pub network_none: bool,
    /// Called each time a step is about to run rather than come from the cache.
    pub on_run: Option<Arc<dyn Fn() + Send + Sync>>,
    /// `RUN --network=host` is allowed (`--allow network.host`).
    pub allow_network_host: bool,
    /// `RUN --security=insecure` is allowed (`--allow security.insecure`).
    pub allow_insecure: bool,
    /// The CDI devices granted besides the auto-allowed ones (`--allow device[=NAME]`).
    pub devices: crate::executor::cdi::Grants,
    /// Where the CDI specs are (`[cdi] spec_dirs`); unset: BuildKit's defaults.
    pub cdi_spec_dirs: Option<Vec<PathBuf>>,
    /// Bounds on `ADD` URL downloads.
    pub timeouts: crate::timeouts::Timeouts,
    /// The target whose steps are remembered, so that a step that runs says why.
    pub history: Option<HistoryTarget>,
    /// Caches from elsewhere (`--cache-from`), asked when the state root has no result.
    pub cache_import: Option<PendingImport>,
}

/// The reading of the caches `--cache-from` names, shared by every lookup that waits for it.
pub type PendingImport = Shared<BoxFuture<'static, Option<Arc<dyn CacheImport>>>>;

/// A cache outside the state root that can supply a step's outputs (`--cache-from`).
pub trait CacheImport: Send + Sync {
    /// Output `index` of the op keyed `key`, as the cache holds it (brought in only when
    /// needed), or None.
    fn lookup(&self, key: &str, index: usize) -> Option<Arc<dyn lazy::ImportedResult>>;

    /// The contents of the cache mount `portable_id` (see [`Solver::cache_mounts_used`]) as
    /// an uncompressed tar in `content`, by its digest; None if the cache has none.
    fn cache_mount<'a>(
        &'a self,
        _content: &'a ContentStore,
        _portable_id: &'a str,
    ) -> BoxFuture<'a, Option<crate::content::Digest>> {
        async { None }.boxed()
    }
}

/// One vertex as this build solved it (run or cached), for cache export.
#[derive(Clone, Debug)]
pub struct SolvedVertex {
    /// Its op's digest in the definition.
    pub digest: String,
    /// Its cache key.
    pub key: String,
    /// Each input's vertex key and output index.
    pub inputs: Vec<(String, usize)>,
    /// Its results, one per op output.
    pub outputs: Vec<Ref>,
    /// A source op (image, context, URL, git): its results come from the source, never a cache.
    pub source: bool,
}

/// The result of a solved vertex: its cache key and its outputs.
#[derive(Clone)]
struct Solved {
    key: String,
    outputs: Vec<Ref>,
}

type VertexFuture = Shared<BoxFuture<'static, Result<Solved, Arc<StepError>>>>;

/// What the vertices of one solve share: each vertex's future (solved once however many
/// read it), and which are sure to run.
struct Pass {
    futures: Mutex<HashMap<String, VertexFuture>>,
    ahead: ahead::Ahead,
}

/// One build's embedded solver: solves definitions against the state root's cache,
/// running what misses, and keeps the journal, the cache mounts and the git sources the
/// build used for what comes after (cache export, provenance).
pub struct Solver {
    pub(crate) snapshots: Arc<Snapshots>,
    pub(crate) runtime: Runtime,
    pub(crate) images: Arc<dyn ImageProvider>,
    pub(crate) progress: ProgressSink,
    pub(crate) opts: SolveOptions,
    limit: Arc<Semaphore>,
    journal: Mutex<Vec<SolvedVertex>>,
    /// Cache mounts this build used: a name that means the same on any machine (the
    /// mount's id and its seed's owner and mode) → the directory.
    cache_mounts: Mutex<std::collections::BTreeMap<String, PathBuf>>,
    /// The last build of the same target, to explain why a step ran.
    history: Option<why::History>,
    /// The git repositories this build checked out, for provenance.
    git_sources: Mutex<Vec<crate::source::git::Fetched>>,
}

impl Solver {
    /// A solver on `state`, its steps run by `runtime` and its base images found by
    /// `images`; picks overlays or copies (warning once when copies must do) and reads the
    /// target's last build when `opts.history` names one.
    pub fn new(
        state: StateRoot,
        meta: Arc<MetaStore>,
        runtime: Runtime,
        images: Arc<dyn ImageProvider>,
        progress: ProgressSink,
        opts: SolveOptions,
    ) -> Result<Self, SolveError> {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let (snapshots, note) = Snapshots::open(state, meta.clone())?;
        if let Some(note) = note {
            progress.warning(None, note);
        }
        let history = opts
            .history
            .clone()
            .map(|target| why::History::open(meta.clone(), target));
        Ok(Self {
            snapshots: Arc::new(snapshots),
            runtime,
            images,
            progress,
            opts,
            limit: Arc::new(Semaphore::new(cores)),
            journal: Mutex::default(),
            cache_mounts: Mutex::default(),
            history,
            git_sources: Mutex::default(),
        })
    }

    /// The caches `--cache-from` named, once read: a lookup waits for the reading, which
    /// the build drives beside the sources' loading.
    async fn cache_import(&self) -> Option<Arc<dyn CacheImport>> {
        self.opts.cache_import.clone()?.await
    }

    /// The snapshots the solver commits, for the exports that read its results.
    pub fn snapshots(&self) -> &Arc<Snapshots> {
        &self.snapshots
    }

    /// The cache mounts used so far, by portable name.
    pub fn cache_mounts_used(&self) -> Vec<(String, PathBuf)> {
        let used = self.cache_mounts.lock().unwrap_or_else(|p| p.into_inner());
        used.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The git repositories checked out so far (each once), for provenance.
    pub fn git_sources(&self) -> Vec<crate::source::git::Fetched> {
        self.git_sources
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn note_git_source(&self, fetched: crate::source::git::Fetched) {
        let mut sources = self.git_sources.lock().unwrap_or_else(|p| p.into_inner());
        if !sources.contains(&fetched) {
            sources.push(fetched);
        }
    }

    pub(crate) fn note_cache_mount(&self, portable_id: String, dir: PathBuf) {
        let mut used = self.cache_mounts.lock().unwrap_or_else(|p| p.into_inner());
        used.insert(portable_id, dir);
    }

    /// Every vertex solved so far, inputs before their users.
    pub fn journal(&self) -> Vec<SolvedVertex> {
        self.journal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Solves the definition's result. The first failing step cancels the others.
    pub async fn solve(
        self: &Arc<Self>,
        def: &pb::Definition,
        cancel: &CancellationToken,
    ) -> Result<Ref, StepError> {
        let mut results = self.solve_many(std::slice::from_ref(def), cancel).await?;
        Ok(results.pop().unwrap_or(Ref::Scratch))
    }

    /// Solves the results of several definitions (one per platform) at once, as one graph:
    /// an op they share (the same bytes, so the same digest) runs once for all of them. The
    /// results are in the definitions' order; the first failing step cancels the others.
    pub async fn solve_many(
        self: &Arc<Self>,
        defs: &[pb::Definition],
        cancel: &CancellationToken,
    ) -> Result<Vec<Ref>, StepError> {
        let mut merged = Graph {
            vertices: HashMap::new(),
            target: None,
        };
        let mut targets = Vec::with_capacity(defs.len());
        for def in defs {
            let graph = Graph::decode(def).map_err(|e| StepError {
                name: "definition".into(),
                vertex: String::new(),
                source: e,
            })?;
            targets.push(graph.target);
            merged.vertices.extend(graph.vertices);
        }
        let graph = Arc::new(merged);
        if let Some(history) = &self.history {
            history.identify(&graph);
        }
        if let Some(refused) = self
            .entitlement_refusal(&graph)
            .or_else(|| self.platform_refusal(&graph))
        {
            return Err(refused);
        }
        let memo = Arc::new(Pass {
            futures: Mutex::default(),
            ahead: ahead::Ahead::new(&graph),
        });
        let cancel = cancel.child_token();
        let solving: Vec<_> = targets
            .into_iter()
            .map(|target| {
                let (graph, memo, cancel) = (graph.clone(), memo.clone(), cancel.clone());
                async move {
                    let Some(target) = target else {
                        return Ok(None);
                    };
                    let solved = self
                        .clone()
                        .vertex(graph, target.digest.clone(), memo, cancel)
                        .await?;
                    Ok(Some((solved, target)))
                }
            })
            .collect();
        // Once every vertex is done, nothing but the results holds a failure: the one
        // reported can then be taken out of its Arc whole (a step's output kept).
        drop(memo);
        let results: Vec<Result<_, Arc<StepError>>> = futures_util::future::join_all(solving).await;
        // Failed or not, what was solved is remembered: a step that failed is compared
        // with its last success next time.
        if let Some(history) = &self.history {
            history.store();
        }
        let mut refs = Vec::with_capacity(results.len());
        let mut failure: Option<Arc<StepError>> = None;
        for result in results {
            match result {
                Ok(None) => refs.push(Ref::Scratch),
                Ok(Some((solved, target))) => match solved.outputs.get(target.index as usize) {
                    Some(r) => refs.push(r.clone()),
                    None => {
                        return Err(StepError {
                            name: "definition".into(),
                            vertex: target.digest,
                            source: SolveError::InvalidDefinition(
                                "result index out of range".into(),
                            ),
                        });
                    }
                },
                // The failure that cancelled the others is reported, not a cancellation.
                Err(e) => {
                    let cancelled =
                        |e: &StepError| matches!(e.source.root(), SolveError::Cancelled);
                    if failure
                        .as_ref()
                        .is_none_or(|f| cancelled(f) && !cancelled(&e))
                    {
                        failure = Some(e);
                    }
                }
            }
        }
        match failure {
            Some(e) => Err(Arc::try_unwrap(e).unwrap_or_else(|shared| StepError {
                name: shared.name.clone(),
                vertex: shared.vertex.clone(),
                source: SolveError::SharedStep(SharedStepError(shared)),
            })),
            None => Ok(refs),
        }
    }

    fn vertex(
        self: Arc<Self>,
        graph: Arc<Graph>,
        digest: String,
        memo: Arc<Pass>,
        cancel: CancellationToken,
    ) -> VertexFuture {
        let mut map = memo.futures.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = map.get(&digest) {
            return f.clone();
        }
        let fut = {
            let memo = memo.clone();
            let digest = digest.clone();
            async move {
                let result = self
                    .clone()
                    .solve_vertex(graph, &digest, memo, cancel.clone())
                    .await;
                if result.is_err() {
                    cancel.cancel();
                }
                result
            }
            .boxed()
            .shared()
        };
        map.insert(digest, fut.clone());
        fut
    }

    async fn solve_vertex(
        self: Arc<Self>,
        graph: Arc<Graph>,
        digest: &str,
        memo: Arc<Pass>,
        cancel: CancellationToken,
    ) -> Result<Solved, Arc<StepError>> {
        let vertex = graph.vertices.get(digest).cloned().ok_or_else(|| {
            Arc::new(StepError {
                name: digest.to_string(),
                vertex: digest.to_string(),
                source: SolveError::InvalidDefinition("unknown op".into()),
            })
        })?;
        let input_futures: Vec<_> = vertex
            .op
            .inputs
            .iter()
            .map(|i| {
                self.clone().vertex(
                    graph.clone(),
                    i.digest.clone(),
                    memo.clone(),
                    cancel.clone(),
                )
            })
            .collect();
        let solved_inputs = self
            .solve_inputs(&memo.ahead, &vertex, input_futures, &cancel)
            .await;
        // An input that failed is reported rather than one that was cancelled because of it.
        if let Some(failure) = solved_inputs
            .iter()
            .filter_map(|s| s.as_ref().err())
            .min_by_key(|e| matches!(e.source, SolveError::Cancelled))
        {
            return Err(failure.clone());
        }
        let mut inputs = Vec::with_capacity(solved_inputs.len());
        let mut input_keys = Vec::with_capacity(solved_inputs.len());
        let mut journal_inputs = Vec::with_capacity(solved_inputs.len());
        for (input, solved) in vertex.op.inputs.iter().zip(solved_inputs) {
            let solved = solved?;
            let r = solved
                .outputs
                .get(input.index as usize)
                .cloned()
                .ok_or_else(|| {
                    Arc::new(StepError {
                        name: vertex.name.clone(),
                        vertex: vertex.digest.clone(),
                        source: SolveError::InvalidDefinition(format!(
                            "input {} has no output {}",
                            input.digest, input.index
                        )),
                    })
                })?;
            input_keys.push(format!("{}:{}", solved.key, input.index));
            journal_inputs.push((solved.key.clone(), input.index as usize));
            inputs.push(r);
        }
        let step_err = |source: SolveError| {
            Arc::new(StepError {
                name: vertex.name.clone(),
                vertex: vertex.digest.clone(),
                source,
            })
        };
        if cancel.is_cancelled() {
            return Err(step_err(SolveError::Cancelled));
        }
        let solved = self
            .run_vertex(&graph, &memo.ahead, &vertex, inputs, input_keys, &cancel)
            .await
            .map_err(step_err)?;
        self.journal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(SolvedVertex {
                digest: vertex.digest.clone(),
                key: solved.key.clone(),
                inputs: journal_inputs,
                outputs: solved.outputs.clone(),
                source: matches!(vertex.op.op, Some(pb::op::Op::Source(_))),
            });
        Ok(solved)
    }

    /// Refuses, before anything runs, a step that needs an entitlement the build was not
    /// granted, as BuildKit does.
    fn entitlement_refusal(&self, graph: &Graph) -> Option<StepError> {
        for vertex in graph.vertices.values() {
            let Some(pb::op::Op::Exec(exec)) = &vertex.op.op else {
                continue;
            };
            let missing =
                if exec.network == pb::NetMode::Host as i32 && !self.opts.allow_network_host {
                    "network.host"
                } else if exec.security == pb::SecurityMode::Insecure as i32
                    && !self.opts.allow_insecure
                {
                    "security.insecure"
                } else if !exec.cdi_devices.is_empty() {
                    // Devices that are not there, or not allowed, refused before anything
                    // runs, as BuildKit validates them when it loads the definition.
                    match exec::resolve_devices(exec, &self.opts) {
                        Ok(_) => continue,
                        Err(source) => {
                            return Some(StepError {
                                name: vertex.name.clone(),
                                vertex: vertex.digest.clone(),
                                source,
                            });
                        }
                    }
                } else {
                    continue;
                };
            return Some(StepError {
                name: vertex.name.clone(),
                vertex: vertex.digest.clone(),
                source: SolveError::NotAllowed(missing),
            });
        }
        None
    }

    /// Refuses, before anything runs, a step for a platform whose binaries this machine
    /// cannot run, natively or through an emulator (which is tested then, once).
    fn platform_refusal(&self, graph: &Graph) -> Option<StepError> {
        let tmp = self.snapshots.state.tmp_dir();
        let mut vertices: Vec<&graph::Vertex> = graph.vertices.values().collect();
        vertices.sort_by(|a, b| a.name.cmp(&b.name));
        for vertex in vertices {
            if !matches!(vertex.op.op, Some(pb::op::Op::Exec(_))) {
                continue;
            }
            let Some(p) = &vertex.op.platform else {
                continue;
            };
            let platform = bud_frontend::convert::Platform::new(&p.os, &p.architecture, &p.variant);
            if let Err(refused) = crate::emulation::check(&platform, &tmp) {
                return Some(StepError {
                    name: vertex.name.clone(),
                    vertex: vertex.digest.clone(),
                    source: refused.into(),
                });
            }
        }
        None
    }

    /// A vertex's inputs, solved. Once the vertex is sure to run, those an imported cache
    /// holds are brought in as each is solved, beside the others ([`ahead`]).
    async fn solve_inputs(
        &self,
        ahead: &ahead::Ahead,
        vertex: &graph::Vertex,
        inputs: Vec<VertexFuture>,
        cancel: &CancellationToken,
    ) -> Vec<Result<Solved, Arc<StepError>>> {
        let all = futures_util::future::join_all(inputs.clone());
        tokio::pin!(all);
        tokio::select! {
            solved = &mut all => solved,
            _ = ahead.sure_to_run(&vertex.digest) => {
                let bringing = async {
                    tokio::select! {
                        _ = self.bring_in_ahead(vertex, inputs) => {}
                        _ = cancel.cancelled() => {}
                    }
                };
                futures_util::future::join(all, bringing).await.0
            }
        }
    }

    /// Brings in each input of `vertex` from an imported cache as soon as it is solved, as
    /// the step will (the top layer alone for a copy that needs only that); a failure is
    /// left for the step to meet and report.
    async fn bring_in_ahead(&self, vertex: &graph::Vertex, inputs: Vec<VertexFuture>) {
        let copied = match &vertex.op.op {
            Some(op) => top_layer::plainly_copied(op, inputs.len()),
            None => Default::default(),
        };
        let copied = &copied;
        let each = inputs.into_iter().zip(&vertex.op.inputs).enumerate().map(
            |(i, (solving, input))| async move {
                let Ok(solved) = solving.await else { return };
                let Some(r @ Ref::Lazy(_)) = solved.outputs.get(input.index as usize) else {
                    return;
                };
                if let Err(e) = self.bring_in_for(r, copied.get(&i)).await {
                    tracing::debug!("bringing in ahead {r:?}: {}", error_chain(&e));
                }
            },
        );
        futures_util::future::join_all(each).await;
    }

    async fn run_vertex(
        self: &Arc<Self>,
        graph: &Arc<Graph>,
        ahead: &ahead::Ahead,
        vertex: &graph::Vertex,
        inputs: Vec<Ref>,
        input_keys: Vec<String>,
        cancel: &CancellationToken,
    ) -> Result<Solved, SolveError> {
        let op = vertex
            .op
            .op
            .as_ref()
            .ok_or_else(|| SolveError::InvalidDefinition("op without a kind".into()))?;
        if let pb::op::Op::Source(src) = op {
            return self.solve_source(vertex, src, cancel).await;
        }
        let material = self.key_material(vertex, op, &inputs, &input_keys);
        let key = material.key.clone();
        let forced = self.opts.no_cache || vertex.ignore_cache;
        let mut hit = None;
        if !forced {
            hit = self.lookup_outputs(&key, op)?;
            if hit.is_none() {
                hit = self
                    .lookup_imported(vertex, &key, op, &inputs, &input_keys, cancel)
                    .await
                    .map(|outputs| (outputs, false));
            }
        }
        if let Some((outputs, rerun)) = hit {
            self.progress.cached(&vertex.digest, &vertex.name);
            if let Some(history) = &self.history {
                history.solved(vertex, &material);
            }
            let key = if rerun {
                key::after_rerun(&key, &outputs)
            } else {
                key
            };
            return Ok(Solved { key, outputs });
        }
        ahead.runs(&vertex.digest);
        let reason = self
            .history
            .as_ref()
            .map(|h| h.explain(graph, vertex, &material, &inputs, self.opts.no_cache));
        self.run_op(vertex, op, inputs, material, reason, cancel)
            .await
    }

    /// A vertex's cache key and what it is made of.
    fn key_material(
        &self,
        vertex: &graph::Vertex,
        op: &pb::op::Op,
        inputs: &[Ref],
        input_keys: &[String],
    ) -> key::KeyMaterial {
        let mut material = key::cache_key(vertex, inputs, input_keys);
        if self.opts.network_none
            && let pb::op::Op::Exec(e) = op
            && e.network == pb::NetMode::Unset as i32
        {
            // --network=none changes what the step sees without changing its op.
            material.key = key::salted(&material.key, "network=none");
            material.op = key::salted(&material.op, "network=none");
        }
        material
    }

    /// Runs a step the cache had no result for: its inputs brought in first, if an
    /// imported cache holds them.
    async fn run_op(
        &self,
        vertex: &graph::Vertex,
        op: &pb::op::Op,
        inputs: Vec<Ref>,
        material: key::KeyMaterial,
        reason: Option<Reason>,
        cancel: &CancellationToken,
    ) -> Result<Solved, SolveError> {
        let key = material.key.clone();
        let forced = self.opts.no_cache || vertex.ignore_cache;
        let copied = top_layer::plainly_copied(op, inputs.len());
        // Side by side: two inputs from an imported cache download and unpack together.
        let bringing = futures_util::future::try_join_all(
            inputs
                .iter()
                .enumerate()
                .map(|(i, input)| self.bring_in_for(input, copied.get(&i))),
        );
        let (inputs, views): (Vec<Ref>, Vec<Option<Arc<snapshots::View>>>) = tokio::select! {
            brought = bringing => brought?.into_iter().unzip(),
            _ = cancel.cancelled() => return Err(SolveError::Cancelled),
        };
        let views: file::SourceViews = views
            .into_iter()
            .enumerate()
            .filter_map(|(i, view)| Some((i, view?)))
            .collect();
        let _permit = tokio::select! {
            p = self.limit.clone().acquire_owned() => p.map_err(|_| SolveError::Cancelled)?,
            _ = cancel.cancelled() => return Err(SolveError::Cancelled),
        };
        self.progress.started(&vertex.digest, &vertex.name);
        if let Some(reason) = reason {
            self.progress.reason(&vertex.digest, reason.to_string());
        }
        if let Some(on_run) = &self.opts.on_run {
            on_run();
        }
        let result = match op {
            pb::op::Op::Exec(e) => exec::run(self, vertex, e, &inputs, &key, cancel).await,
            pb::op::Op::File(f) => file::run(self, vertex, f, &inputs, views, &key).await,
            pb::op::Op::Merge(m) => merge::run(self, vertex, m, &inputs, &key).await,
            pb::op::Op::Diff(_) => Err(SolveError::Unsupported("DiffOp".into())),
            pb::op::Op::Build(_) => Err(SolveError::Unsupported("BuildOp".into())),
            _ => Err(SolveError::Unsupported("this op kind".into())),
        };
        match &result {
            Ok(_) => {
                self.progress.completed(&vertex.digest, None);
                if let Some(history) = &self.history {
                    history.solved(vertex, &material);
                }
            }
            Err(SolveError::Cancelled) => self
                .progress
                .completed(&vertex.digest, Some("cancelled".into())),
            Err(e) => self
                .progress
                .completed(&vertex.digest, Some(error_chain(e))),
        }
        let outputs = result?;
        // A step made to run again replaced what its key recorded (`commit_step`); what
        // follows it keys on the new result, as BuildKit's content-keyed copies do, rather
        // than reuse what was made from the old one.
        let replaced = forced && matches!(op, pb::op::Op::Exec(_) | pb::op::Op::File(_));
        let key = if replaced {
            key::after_rerun(&key, &outputs)
        } else {
            key
        };
        Ok(Solved { key, outputs })
    }

    /// `r` with its files in the state root: a result of an imported cache is brought in
    /// (or, when it cannot be, made by running its step) the first time it is needed.
    pub async fn bring_in(&self, r: &Ref) -> Result<Ref, SolveError> {
        match r {
            Ref::Lazy(lazy) => lazy.bring_in().await,
            other => Ok(other.clone()),
        }
    }

    /// An input of a step, brought in; or, for one that the step's copies read only at
    /// `copied` paths, the view of its top layer alone when that layer holds them all.
    async fn bring_in_for(
        &self,
        input: &Ref,
        copied: Option<&Vec<String>>,
    ) -> Result<(Ref, Option<Arc<snapshots::View>>), SolveError> {
        if let (Ref::Lazy(lazy), Some(paths)) = (input, copied)
            && let Some(view) = top_layer::view(self, lazy, paths).await
        {
            return Ok((input.clone(), Some(view)));
        }
        Ok((self.bring_in(input).await?, None))
    }

    /// Commits a step's result; a step that ran because the cache was to be ignored
    /// replaces what its key recorded, marked so that hits on it key their dependents as
    /// this build's do (`key::after_rerun`).
    pub(crate) fn commit_step(
        &self,
        vertex: &graph::Vertex,
        ws: snapshots::Workspace,
        parent: &Ref,
        key: &str,
    ) -> Result<Ref, SolveError> {
        let kind = crate::cache::meta::SnapshotKind::Layer;
        if self.opts.no_cache || vertex.ignore_cache {
            self.snapshots
                .commit_replacing(ws, parent, kind, key, &vertex.name)
        } else {
            self.snapshots.commit(ws, parent, kind, key, &vertex.name)
        }
    }

    /// All outputs of an op from an imported cache, or none; not brought in until needed.
    /// Should they turn out not to be available then, the step runs after all.
    async fn lookup_imported(
        self: &Arc<Self>,
        vertex: &graph::Vertex,
        key: &str,
        op: &pb::op::Op,
        inputs: &[Ref],
        input_keys: &[String],
        cancel: &CancellationToken,
    ) -> Option<Vec<Ref>> {
        let import = tokio::select! {
            import = self.cache_import() => import?,
            _ = cancel.cancelled() => return None,
        };
        let outputs = (0..key::output_count(op))
            .map(|i| import.lookup(key, i))
            .collect::<Option<Vec<_>>>()?;
        let (inputs, input_keys, cancel) = (inputs.to_vec(), input_keys.to_vec(), cancel.clone());
        // The step shows again, under a progress entry of its own, when it runs after all.
        let mut again = vertex.clone();
        again.digest = format!("{}-rerun", vertex.digest);
        let rerun: lazy::Rerun = Box::new(move |solver: Arc<Solver>| {
            let (again, inputs, input_keys, cancel) = (
                again.clone(),
                inputs.clone(),
                input_keys.clone(),
                cancel.clone(),
            );
            async move {
                let op = again
                    .op
                    .op
                    .as_ref()
                    .ok_or_else(|| SolveError::InvalidDefinition("op without a kind".into()))?;
                let material = solver.key_material(&again, op, &inputs, &input_keys);
                let solved = solver
                    .run_op(&again, op, inputs, material, None, &cancel)
                    .await?;
                Ok(solved.outputs)
            }
            .boxed()
        });
        Some(lazy::LazyVertex::refs(
            vertex.name.clone(),
            outputs,
            Arc::downgrade(self),
            rerun,
        ))
    }

    /// All outputs of an op from the cache, or none: a partial hit reruns the step. With
    /// them, whether a step made to run again recorded any.
    fn lookup_outputs(
        &self,
        key: &str,
        op: &pb::op::Op,
    ) -> Result<Option<(Vec<Ref>, bool)>, SolveError> {
        let count = key::output_count(op);
        let mut outputs = Vec::with_capacity(count);
        let mut rerun = false;
        for i in 0..count {
            match self.snapshots.lookup_step(&key::output_key(key, i))? {
                Some((r, again)) => {
                    outputs.push(r);
                    rerun |= again;
                }
                None => return Ok(None),
            }
        }
        Ok(Some((outputs, rerun)))
    }
}

impl Drop for Solver {
    fn drop(&mut self) {
        if let Err(e) = self.snapshots.release() {
            tracing::warn!("releasing cache leases: {}", error_chain(&e));
        }
    }
}
