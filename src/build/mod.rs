//! `bud build`: read the inputs, convert the Dockerfile, solve the graph with the embedded
//! solver, and export the result where the flags say.

mod attestations;
mod call;
mod contexts;
mod dockerfile;
pub mod dump_llb;
mod embedded;
pub mod export;
mod failure;
mod forward;
mod host_gateway;
mod images;
pub mod inputs;
mod multi;
pub mod outputs;
mod platform_split;
mod remote;
mod remote_context;
mod remote_multi;
mod remote_outputs;
mod remote_platform;
mod remote_release;
mod route;
mod secrets;
mod ssh_agent;
pub mod worker;

pub use call::ChecksFailed;

use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::cache::meta::MetaStore;
use crate::cli::{BuildOptions, GlobalOptions};
use crate::config::Config;
use crate::content::ContentStore;
use crate::docker_host::DockerUnavailable;
use crate::progress::ProgressSink;
use crate::registry::RegistryConfig;
use crate::source::image::ImageSource;
use crate::state::StateRoot;

use images::BuildImages;
use inputs::BuildInputs;

/// What a finished build reports (`--iidfile`, `--metadata-file`, `-q`).
#[derive(Debug, Default)]
pub struct BuildReport {
    /// The ID Docker gives the loaded image (`sha256:` of its config); `-q` and
    /// `--iidfile` print it, else the config digest.
    pub image_id: Option<String>,
    /// `containerimage.config.digest`: the config's digest, known whatever the outputs.
    pub config_digest: Option<String>,
    /// `containerimage.digest`: the pushed or archived manifest's (or index's) digest.
    pub manifest_digest: Option<String>,
    /// Every name the outputs tagged or pushed, in order, for `image.name`.
    pub names: Vec<String>,
    /// The pushed or exported manifest's descriptor (`containerimage.descriptor`).
    pub descriptor: Option<serde_json::Value>,
    /// The build on the daemon, for `--addr` builds (`buildx.build.ref`).
    pub build_ref: Option<String>,
}

/// What a build runs with, whichever solver runs it: made once in [`run`].
pub(crate) struct BuildEnv {
    state: StateRoot,
    meta: Arc<MetaStore>,
    content: ContentStore,
    config: Config,
    registry: RegistryConfig,
    /// The Docker the docker CLI would use, or why there is none.
    docker: Result<bollard::Docker, DockerUnavailable>,
    /// Base images, resolved once per build for the frontend and the solver.
    images: Arc<BuildImages>,
    progress: ProgressSink,
    /// `--explain`: the steps that ran and why.
    explained: Option<crate::progress::Explained>,
    /// The whole output of the steps that failed, kept under the state root.
    failed_logs: crate::progress::step_logs::KeptLogs,
    /// Whether an `--addr` build wrote into the state root: the image read back from Docker
    /// for a push or an archive, its layers extracted for an SBOM. Then it collects garbage
    /// when it ends, as an embedded build does.
    wrote_state_root: std::sync::atomic::AtomicBool,
}

/// What a build reads and opens before bud's first thread starts: `main` does it while a
/// rootless bud's user namespace is being mapped, so that the two overlap. Nothing here may
/// start a thread, and nothing here may depend on the user namespace (a context from stdin,
/// whose archive is unpacked with its owners, is read later, by [`run`]).
pub struct Prepared {
    exports: Vec<outputs::Export>,
    /// `None` for a context from stdin.
    inputs: Option<BuildInputs>,
    state: StateRoot,
    meta: Arc<MetaStore>,
    content: ContentStore,
    config: Config,
}

/// Reads a build's outputs, inputs, state root and configuration, in the order their errors
/// are reported; see [`Prepared`].
pub fn prepare(opts: &BuildOptions, global: &GlobalOptions) -> anyhow::Result<Prepared> {
    let exports = outputs::plan(opts)?;
    let inputs = if opts.context == "-" {
        None
    } else {
        Some(BuildInputs::read(&opts.context, opts.file.as_deref())?)
    };
    let root = match &global.root {
        Some(r) => r.clone(),
        None => StateRoot::default_path()?,
    };
    let state = StateRoot::open(&root)?;
    let meta = Arc::new(MetaStore::open(&state.db_path())?);
    let content = ContentStore::new(state.content_dir())?;
    let config = Config::load()?;
    Ok(Prepared {
        exports,
        inputs,
        state,
        meta,
        content,
        config,
    })
}

impl BuildEnv {
    async fn new(
        opts: &BuildOptions,
        state: StateRoot,
        meta: Arc<MetaStore>,
        content: ContentStore,
        config: Config,
    ) -> anyhow::Result<Self> {
        let registry = RegistryConfig {
            insecure_registries: config
                .registries
                .iter()
                .filter(|(_, r)| r.insecure)
                .map(|(host, _)| host.clone())
                .collect(),
            timeouts: config.network.timeouts(),
            ..RegistryConfig::default()
        };
        let docker = crate::docker_host::probe().await;
        let images = Arc::new(BuildImages::new(
            ImageSource::new(content.clone(), registry.clone(), docker.clone().ok()),
            opts.pull,
        ));
        let mut renderer = crate::progress::renderer_for(opts.progress, opts.quiet);
        if let Some(path) = &opts.trace {
            renderer = Box::new(crate::progress::TraceRenderer::new(renderer, path.clone()));
        }
        let mut explained = None;
        if opts.explain {
            let (explaining, gathered) = crate::progress::ExplainRenderer::new(renderer);
            renderer = Box::new(explaining);
            explained = Some(gathered);
        }
        use crate::progress::step_logs;
        step_logs::bound(&state.logs_dir());
        let (renderer, failed_logs) =
            step_logs::StepLogRenderer::new(renderer, step_logs::build_dir(&state.logs_dir()));
        Ok(Self {
            state,
            meta,
            content,
            config,
            registry,
            docker,
            images,
            progress: ProgressSink::new(Box::new(renderer)),
            explained,
            failed_logs,
            wrote_state_root: std::sync::atomic::AtomicBool::new(false),
        })
    }
}

/// A failed step as the line pointing at its whole output names it: by its position
/// (`[2/2]`, `[stage 1/3]`) when it has one, since the failure block above already shows
/// its instruction, which may be long.
fn step_label(name: &str) -> String {
    match name.split_once(']') {
        Some((position, _)) if name.starts_with('[') => format!("step {position}]"),
        _ if name.is_empty() => "the failed step".to_owned(),
        _ => name.chars().take(60).collect(),
    }
}

/// Whether a build on a daemon (`--addr`) may import the image it built into the state
/// root: where the daemon's exporter is Docker's own image store, bud reads the image back
/// from Docker for a push or an image archive, and extracts its layers, as a base image's,
/// for an SBOM. Such a build collects garbage when it ends, which needs the privilege the
/// embedded solver needs (`privilege::enter`).
pub fn may_import_built_image(opts: &BuildOptions) -> bool {
    use crate::cli::OutputKind;
    let pushes_or_archives = opts.push
        || opts.outputs.iter().any(|o| match o.kind {
            OutputKind::Image | OutputKind::Registry | OutputKind::Oci => true,
            OutputKind::Docker => o.attrs.contains_key("dest"),
            OutputKind::Tar | OutputKind::Local | OutputKind::CacheOnly => false,
        });
    pushes_or_archives || attestations::requested(opts).is_ok_and(|a| a.sbom.is_some())
}

#[allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the command's output: `-q`'s image ID, `--explain`'s list after the progress"
)]
/// `bud build`: reads the inputs and plans the exports (so a bad `-o` fails before any
/// work), runs the build on the solver [`worker`] picks, then collects garbage after a
/// build that used the snapshot store and writes `--iidfile`, `--metadata-file` and `-q`'s
/// ID.
pub async fn run(
    prepared: Prepared,
    opts: &BuildOptions,
    global: &GlobalOptions,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let Prepared {
        exports,
        inputs,
        state,
        meta,
        content,
        config,
    } = prepared;
    let inputs = match inputs {
        Some(inputs) => inputs,
        None => BuildInputs::read(&opts.context, opts.file.as_deref())?,
    };
    let env = BuildEnv::new(opts, state, meta, content, config).await?;
    if opts.rm == Some(false) {
        // docker build's legacy builder kept a container per step; BuildKit, and bud, keep
        // none to remove, so the flag cannot do what it asks: say so rather than pass over it.
        env.progress.warning(
            None,
            "--rm=false: no intermediate containers are kept (there are none, as with BuildKit)",
        );
    }
    let resolved = host_gateway::resolve(opts, env.docker.as_ref()).await?;
    let opts = resolved.as_ref().unwrap_or(opts);
    let call = opts.call();
    if call.method != crate::cli::Call::Build {
        let images: Arc<dyn bud_frontend::convert::ImageResolver + Send + Sync> =
            env.images.clone();
        return call::run(opts, &inputs, images, call).await;
    }
    let worker = worker::choose(
        global.addr.as_deref(),
        &env.config.builder,
        &env.config.worker,
        &env.state,
        env.docker.as_ref(),
    )?;
    let embedded = matches!(worker, worker::Worker::Embedded(_));
    if opts.explain && !embedded {
        // Said before the build, so that its absence at the end is not taken for "cached".
        env.progress.warning(
            None,
            "--explain: the build runs on BuildKit, which does not report why a step was not \
             cached: no reasons will be listed",
        );
    }
    let result = match worker {
        worker::Worker::Daemon(addr) => {
            remote::build(&env, &addr, &global.tls, opts, &inputs, &exports, cancel).await
        }
        worker::Worker::Nodes(nodes) => {
            let nodes = remote_multi::Node::from_config(&nodes)?;
            let mut platforms = dockerfile::target_platforms(opts)?;
            if platforms.is_empty() {
                platforms.push(bud_frontend::convert::Platform::host());
            }
            remote_multi::build(&env, &nodes, opts, &inputs, &exports, platforms, cancel).await
        }
        worker::Worker::Embedded(runtime) => {
            embedded::caches(opts, &env.progress)?;
            embedded::build(&env, opts, &inputs, &exports, runtime, cancel).await
        }
    };
    env.progress.finish(result.is_ok());
    if embedded && let Some(explained) = &env.explained {
        eprint!("{}", explained.summary());
    }
    // buildx shows a step's last lines; the whole of them is in a file.
    for kept in env
        .failed_logs
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
    {
        crate::report!(
            "the whole output of {}: {}",
            step_label(&kept.name),
            kept.path.display()
        );
    }
    let report = result?;
    // An `--addr` build that wrote nothing into the state root does not pay for a
    // collection, nor may it hold the privilege to remove snapshots (`main` enters it only
    // for a build that may import its image).
    if embedded
        || env
            .wrote_state_root
            .load(std::sync::atomic::Ordering::Relaxed)
    {
        collect_garbage(&env.state, &env.meta, &env.config.gc);
    }
    if let Some(path) = &opts.iidfile {
        let id = report
            .image_id
            .as_deref()
            .or(report.config_digest.as_deref())
            .unwrap_or_default();
        std::fs::write(path, id).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &opts.metadata_file {
        std::fs::write(path, metadata_json(&report))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if opts.quiet
        && let Some(id) = report.image_id.as_ref().or(report.config_digest.as_ref())
    {
        println!("{id}");
    }
    Ok(())
}

fn metadata_json(report: &BuildReport) -> String {
    let mut m = serde_json::Map::new();
    if let Some(d) = &report.config_digest {
        m.insert("containerimage.config.digest".into(), d.clone().into());
    }
    if let Some(d) = report.manifest_digest.as_ref().or(report.image_id.as_ref()) {
        m.insert("containerimage.digest".into(), d.clone().into());
    }
    // A name several outputs share (a push and an archive of the same tag) is listed once.
    let mut names: Vec<&str> = Vec::new();
    for n in &report.names {
        if !names.contains(&n.as_str()) {
            names.push(n);
        }
    }
    if !names.is_empty() {
        m.insert("image.name".into(), names.join(",").into());
    }
    if let Some(d) = &report.descriptor {
        m.insert("containerimage.descriptor".into(), d.clone());
    }
    if let Some(r) = &report.build_ref {
        m.insert("buildx.build.ref".into(), r.clone().into());
    }
    serde_json::to_string_pretty(&m).unwrap_or_default()
}

/// Keeps the cache within the configured policy after a build. The build already
/// succeeded: a collection that fails is reported, not fatal.
fn collect_garbage(state: &StateRoot, meta: &MetaStore, policy: &crate::config::GcConfig) {
    match crate::gc::collect_configured(state, meta, policy) {
        Ok(Some(report)) if report.freed > 0 => {
            tracing::info!("garbage collection freed {} bytes", report.freed)
        }
        Ok(_) => {}
        Err(e) => crate::report!(
            "warning: cache garbage collection: {}",
            crate::error_chain::error_chain(&e)
        ),
    }
}
