//! `bud build`: read the inputs, convert the Dockerfile, solve the graph with the embedded
//! solver, and export the result where the flags say.

mod contexts;
pub mod dump_llb;
pub mod export;
mod images;
pub mod inputs;
pub mod outputs;
mod remote;
mod ssh_agent;
pub mod worker;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context as _, bail};
use bud_frontend::convert::{self, ConvertOptions, NoCache, SolverCaps};
use bud_frontend::image::Image;
use tokio_util::sync::CancellationToken;

use crate::cache::meta::MetaStore;
use crate::cli::{BuildOptions, GlobalOptions, SecretSource};
use crate::content::ContentStore;
use crate::executor::Runtime;
use crate::exporter::LoadLayer;
use crate::exporter::docker_load::PendingLoad;
use crate::progress::ProgressSink;
use crate::registry::{Compression, ManifestFormat, PushOptions, RegistryConfig};
use crate::solver::{SolveOptions, Solver};
use crate::source::image::ImageSource;
use crate::state::StateRoot;

use contexts::NamedContexts;
use images::BuildImages;
use inputs::BuildInputs;
use outputs::Export;

/// What a finished build reports (`--iidfile`, `--metadata-file`, `-q`).
#[derive(Debug, Default)]
pub struct BuildReport {
    pub image_id: Option<String>,
    pub config_digest: Option<String>,
    pub manifest_digest: Option<String>,
    pub names: Vec<String>,
}

pub async fn run(
    opts: &BuildOptions,
    global: &GlobalOptions,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let exports = outputs::plan(opts)?;
    let inputs = BuildInputs::read(&opts.context, opts.file.as_deref())?;
    let root = match &global.root {
        Some(r) => r.clone(),
        None => StateRoot::default_path()?,
    };
    let state = StateRoot::open(&root)?;
    let meta = Arc::new(MetaStore::open(&state.db_path())?);
    let meta_for_gc = meta.clone();
    let content = ContentStore::new(state.content_dir())?;
    let config = crate::config::Config::load()?;
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
    let docker = docker_client().await;
    let images = Arc::new(BuildImages::new(
        ImageSource::new(content.clone(), registry.clone(), docker.clone().ok()),
        opts.pull,
    ));

    let mut renderer = crate::progress::renderer_for(opts.progress, opts.quiet);
    if let Some(path) = &opts.trace {
        renderer = Box::new(crate::progress::TraceRenderer::new(renderer, path.clone()));
    }
    let worker = worker::choose(
        global.addr.as_deref(),
        &config.worker,
        &state,
        docker.as_ref().map_err(String::as_str),
    )?;
    let embedded = matches!(worker, worker::Worker::Embedded(_));
    let progress = ProgressSink::new(renderer);
    let result = match worker {
        worker::Worker::Daemon(addr) => {
            let tls = &global.tls;
            remote::build(
                &addr, tls, opts, &inputs, images, &progress, &exports, cancel,
            )
            .await
        }
        worker::Worker::Embedded(runtime) => {
            embedded_caches(opts, &progress)?;
            build(
                opts, &inputs, &state, meta, &content, images, &progress, &exports, docker,
                &registry, runtime, cancel,
            )
            .await
        }
    };
    progress.finish(result.is_ok());
    let report = result?;
    if embedded {
        collect_garbage(&state, &meta_for_gc, &config.gc);
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

#[allow(clippy::too_many_arguments)]
async fn build(
    opts: &BuildOptions,
    inputs: &BuildInputs,
    state: &StateRoot,
    meta: Arc<MetaStore>,
    content: &ContentStore,
    images: Arc<BuildImages>,
    progress: &ProgressSink,
    exports: &[Export],
    docker: Result<bollard::Docker, String>,
    registry: &RegistryConfig,
    runtime: Runtime,
    cancel: CancellationToken,
) -> anyhow::Result<BuildReport> {
    // Resolving the base images may wait on a registry.
    let converted = unless_cancelled(
        &cancel,
        convert_dockerfile(opts, inputs, images.clone(), None, progress),
    )
    .await?;

    runtime.reap_orphans().await;
    // Served until the build returns.
    let ssh = ssh_agents(opts)?;
    let entitlements = opts.entitlements();
    let mut solve_opts = SolveOptions {
        extra_hosts: opts
            .add_hosts
            .iter()
            .map(|h| (h.host.clone(), h.ip.clone()))
            .collect(),
        no_cache: opts.no_cache,
        network_none: opts.network == "none",
        allow_network_host: entitlements.iter().any(|e| e == "network.host"),
        allow_insecure: entitlements.iter().any(|e| e == "security.insecure"),
        secrets: read_secrets(opts)?,
        ssh_agents: ssh.sockets.clone(),
        timeouts: registry.timeouts,
        ..Default::default()
    };
    solve_opts
        .local_dirs
        .extend(NamedContexts::read(&opts.build_contexts)?.local_dirs);
    solve_opts
        .local_dirs
        .insert("context".into(), inputs.context_dir.clone());
    // A build that runs a step most likely ends in an image Docker does not have: its load
    // is opened then, to overlap dockerd's start-up with the build.
    let early_load: Arc<Mutex<Option<PendingLoad>>> = Arc::default();
    if let Ok(docker) = &docker
        && exports
            .iter()
            .any(|e| matches!(e, Export::DockerLoad { .. }))
    {
        let (docker, slot) = (docker.clone(), early_load.clone());
        solve_opts.on_run = Some(Arc::new(move || {
            let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
            if slot.is_none() {
                *slot = Some(PendingLoad::open(&docker));
            }
        }));
    }
    let solver = Arc::new(Solver::new(
        state.clone(),
        meta,
        runtime,
        images,
        progress.clone(),
        solve_opts,
    )?);
    solver.snapshots().remove_abandoned_work();
    let solved = solver.solve(&converted.definition, &cancel).await;
    let mut early_load = early_load
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    let result = match solved {
        Ok(result) => result,
        Err(e) => {
            if let Some(unused) = early_load
                && let Err(e) = unused.close().await
            {
                tracing::debug!("closing the unused docker load: {e}");
            }
            return Err(step_failure(e, inputs));
        }
    };

    let image: Image = serde_json::from_value(converted.image)
        .context("the frontend produced an invalid image config")?;
    let mut report = BuildReport::default();
    let needs_image = exports
        .iter()
        .any(|e| !matches!(e, Export::Tar { .. } | Export::Local { .. }));
    // Only registries and archive files need the layer tars stored; Docker gets new layers
    // tarred straight from their snapshots.
    let needs_stored_layers = exports.iter().any(|e| {
        !matches!(
            e,
            Export::Tar { .. } | Export::Local { .. } | Export::DockerLoad { .. }
        )
    });
    let assembled = if needs_image {
        let snapshots = solver.snapshots().clone();
        let content = content.clone();
        let result = result.clone();
        let assembling = tokio::task::spawn_blocking(move || -> anyhow::Result<Assembled> {
            let plan = export::plan_image(&snapshots, &result, image)?;
            Ok(if needs_stored_layers {
                Assembled::Built(plan.into_built(&snapshots, &content)?)
            } else {
                Assembled::Planned(plan)
            })
        });
        let assembled = unless_cancelled(&cancel, async {
            assembling.await.context("exporting layers")?
        })
        .await?;
        if let Assembled::Built(built) = &assembled {
            report.config_digest = Some(built.config_digest.to_string());
        }
        Some(assembled)
    } else {
        None
    };
    let base_images = base_images(&converted.definition);
    let targets = Targets {
        docker: docker.as_ref().map_err(String::as_str),
        base_images: &base_images,
        content,
        registry,
    };
    // The export shows as one more step, as BuildKit's "exporting to image" does.
    const EXPORT_VERTEX: &str = "bud-export";
    progress.started(EXPORT_VERTEX, "exporting to image");
    // Loads, pushes and archives stop when the build is cancelled: a load cut short never
    // gets its image into Docker, a push never writes its manifest.
    let exporting = async {
        for e in exports {
            export_one(
                e,
                &solver,
                &result,
                assembled.as_ref(),
                &targets,
                &mut early_load,
                &mut report,
            )
            .await?;
        }
        Ok(())
    };
    let exported = unless_cancelled(&cancel, exporting).await;
    match &exported {
        Ok(()) => {
            if let Some(id) = report.image_id.as_ref().or(report.config_digest.as_ref()) {
                progress.done(EXPORT_VERTEX, &format!("writing image {id}"));
            }
            for name in &report.names {
                let full = bud_frontend::reference::Reference::parse(name)
                    .map(|r| match &r.tag {
                        Some(tag) => format!("{}:{tag}", r.name()),
                        None => r.name(),
                    })
                    .unwrap_or_else(|_| name.clone());
                progress.done(EXPORT_VERTEX, &format!("naming to {full}"));
            }
            progress.completed(EXPORT_VERTEX, None);
        }
        Err(e) => progress.completed(EXPORT_VERTEX, Some(format!("{e:#}"))),
    }
    exported?;
    Ok(report)
}

/// `work`, unless the build is cancelled first; then `work` is dropped where it waits
/// (on a registry, on Docker, on a blocking task) and the build fails at once.
async fn unless_cancelled<T>(
    cancel: &CancellationToken,
    work: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::select! {
        biased;
        () = cancel.cancelled() => bail!("cancelled"),
        done = work => done,
    }
}

/// `--cache-from` and `--cache-to` with the embedded solver, whose cache is its state root.
/// An import that cannot be made does not fail the build, as with BuildKit: it shows as a
/// failed "importing cache manifest" step and the build goes on with the local cache. An
/// export that cannot be made does fail it, before anything runs, unless its
/// `ignore-error=true` says otherwise, as BuildKit's does.
fn embedded_caches(opts: &BuildOptions, progress: &ProgressSink) -> anyhow::Result<()> {
    const WHY: &str = "the embedded solver does not import build caches yet; it builds with \
                       its local cache (a BuildKit daemon, with --addr, imports them)";
    for (i, from) in opts.cache_from.iter().enumerate() {
        let what = from
            .attrs
            .get("ref")
            .or_else(|| from.attrs.get("src"))
            .map_or_else(|| format!("type={}", from.kind), String::clone);
        let vertex = format!("bud-cache-import-{i}");
        progress.started(&vertex, &format!("importing cache manifest from {what}"));
        progress.completed(&vertex, Some(WHY.to_string()));
    }
    for to in &opts.cache_to {
        if to.attrs.get("ignore-error").map(String::as_str) == Some("true") {
            progress.warning(
                None,
                format!(
                    "--cache-to type={}: not exported, the embedded solver does not export \
                     build caches yet (ignore-error=true)",
                    to.kind
                ),
            );
        } else {
            bail!(
                "--cache-to type={}: the embedded solver does not export build caches yet; \
                 build with --addr to have a BuildKit daemon export it, or add \
                 ignore-error=true to build without it",
                to.kind
            );
        }
    }
    Ok(())
}

/// The images the definition's `docker-image` sources name, as Docker knows them.
fn base_images(definition: &bud_proto::pb::Definition) -> Vec<String> {
    use prost::Message as _;
    definition
        .def
        .iter()
        .filter_map(|bytes| bud_proto::pb::Op::decode(bytes.as_slice()).ok())
        .filter_map(|op| match op.op {
            Some(bud_proto::pb::op::Op::Source(source)) => source
                .identifier
                .strip_prefix("docker-image://")
                .map(str::to_owned),
            _ => None,
        })
        .collect()
}

/// The result as an image: with every layer tarred into the content store, or (when only
/// Docker is to receive it) planned, its new layers still directories.
enum Assembled {
    Built(export::BuiltImage),
    Planned(export::ImagePlan),
}

/// What exports write to: Docker, the content store (compressed layers), registries.
struct Targets<'a> {
    /// The daemon, or why there is none to use.
    docker: Result<&'a bollard::Docker, &'a str>,
    /// The images the build starts from, where Docker most likely holds the lower layers.
    base_images: &'a [String],
    content: &'a ContentStore,
    registry: &'a RegistryConfig,
}

async fn export_one(
    e: &Export,
    solver: &Arc<Solver>,
    result: &crate::solver::Ref,
    assembled: Option<&Assembled>,
    targets: &Targets<'_>,
    early_load: &mut Option<PendingLoad>,
    report: &mut BuildReport,
) -> anyhow::Result<()> {
    let Targets {
        docker,
        base_images,
        content,
        registry,
    } = *targets;
    let need = || match assembled {
        Some(Assembled::Built(built)) => Ok(built),
        _ => bail!("internal error: the image's layers were not stored"),
    };
    match e {
        Export::DockerLoad { names } => {
            let docker = match docker {
                Ok(docker) => docker,
                Err(why) => bail!(
                    "the image was built, but Docker is not reachable to load it ({why}): \
                     start Docker, or get the result out with -o type=docker,dest=image.tar, \
                     -o type=oci,dest=image.tar or -o type=local,dest=DIR"
                ),
            };
            let load = crate::exporter::docker_load::load;
            let loaded = match assembled {
                Some(Assembled::Built(built)) => {
                    let layers: Vec<LoadLayer> = built.layers.iter().map(LoadLayer::from).collect();
                    load(
                        docker,
                        &built.image,
                        &layers,
                        names,
                        base_images,
                        early_load.take(),
                    )
                    .await
                }
                Some(Assembled::Planned(plan)) => {
                    let layers = plan.load_layers(content)?;
                    load(
                        docker,
                        &plan.image,
                        &layers,
                        names,
                        base_images,
                        early_load.take(),
                    )
                    .await
                }
                None => bail!("internal error: no image was assembled"),
            };
            let loaded = loaded.context("loading the image into Docker")?;
            if let Some(Assembled::Planned(plan)) = assembled {
                // The image is in Docker: not remembering its diff IDs only costs tarring
                // the layers again on the next export.
                if let Err(e) = plan.record_diff_ids(solver.snapshots(), &loaded.diff_ids) {
                    tracing::warn!("not recording the layers' diff IDs: {e:#}");
                }
                report.config_digest = Some(loaded.config_digest.to_string());
            }
            report.image_id = Some(loaded.image_id);
            report.names.extend(names.iter().cloned());
        }
        Export::DockerArchive { dest, names } => {
            export::docker_archive(need()?, dest, names)?;
            report.names.extend(names.iter().cloned());
        }
        Export::OciArchive { dest, names } => {
            let digest = export::oci_archive(need()?, dest, names)?;
            report.manifest_digest = Some(digest.to_string());
        }
        Export::Tar { dest } => {
            let view = solver.snapshots().view(result)?;
            export::filesystem_tar(&view.path, dest)?;
        }
        Export::Local { dest } => {
            let view = solver.snapshots().view(result)?;
            export::local_dir(&view.path, dest)?;
        }
        Export::Push {
            names,
            zstd,
            oci_media_types,
        } => {
            let built = need()?;
            let mut push = PushOptions::new(content.clone());
            push.registry = registry.clone();
            if *zstd {
                push.compression = Compression::Zstd;
            }
            if *oci_media_types {
                push.format = ManifestFormat::Oci;
            }
            let pushed = crate::registry::push(&built.image, &built.layers, names, push)
                .await
                .context("pushing the image")?;
            for name in names {
                crate::report!("pushed {name}@{}", pushed.manifest_digest);
            }
            report.manifest_digest = Some(pushed.manifest_digest.to_string());
            report.names.extend(names.iter().cloned());
        }
    }
    Ok(())
}

/// The Dockerfile as LLB and an image config; `session_id` names the session that serves
/// the local sources (remote builds).
async fn convert_dockerfile(
    opts: &BuildOptions,
    inputs: &BuildInputs,
    images: Arc<dyn convert::ImageResolver + Send + Sync>,
    session_id: Option<String>,
    progress: &ProgressSink,
) -> anyhow::Result<convert::Converted> {
    let mut convert_opts = convert_options(opts, inputs)?;
    // Docker 20.10's BuildKit has no MergeOp: on a daemon, `COPY --link` falls back to a
    // plain copy, as BuildKit's own frontend does there.
    convert_opts.caps.merge_op = session_id.is_none();
    convert_opts.session_id = session_id;
    let converted = convert_with(inputs, convert_opts, images).await?;
    for arg in &converted.unused_build_args {
        progress.warning(
            None,
            format!("one or more build-args [{arg}] were not consumed"),
        );
    }
    Ok(converted)
}

/// Runs the frontend off the async threads (it resolves base images synchronously).
async fn convert_with(
    inputs: &BuildInputs,
    convert_opts: ConvertOptions,
    images: Arc<dyn convert::ImageResolver + Send + Sync>,
) -> anyhow::Result<convert::Converted> {
    let dockerfile = inputs.dockerfile.clone();
    tokio::task::spawn_blocking(move || {
        convert::convert(&dockerfile, &convert_opts, images.as_ref())
    })
    .await
    .context("converting the Dockerfile")?
    .map_err(|e| anyhow::anyhow!("{}: {e}", inputs.dockerfile_name))
}

/// `--build-arg` values; bare keys the environment does not set are dropped, as docker does.
fn build_arg_values(args: &[crate::cli::BuildArg]) -> BTreeMap<String, String> {
    args.iter()
        .filter_map(|a| a.value.clone().map(|v| (a.key.clone(), v)))
        .collect()
}

/// `--secret` values, read once: from a file, or from an environment variable.
fn read_secrets(opts: &BuildOptions) -> anyhow::Result<HashMap<String, Vec<u8>>> {
    let mut secrets = HashMap::new();
    for s in &opts.secrets {
        let data = match &s.source {
            SecretSource::File(path) => std::fs::read(path)
                .with_context(|| format!("--secret id={}: reading {}", s.id, path.display()))?,
            SecretSource::Env(var) => std::env::var_os(var)
                .with_context(|| format!("--secret id={}: ${var} is not set", s.id))?
                .into_encoded_bytes(),
        };
        secrets.insert(s.id.clone(), data);
    }
    Ok(secrets)
}

/// `--ssh` agents by id, and the agents bud serves for key files (kept for the build).
struct SshAgents {
    sockets: HashMap<String, std::path::PathBuf>,
    _served: Vec<ssh_agent::KeyAgent>,
}

/// `--ssh ID[=SOCKET|KEY[,KEY...]]`: no path means $SSH_AUTH_SOCK, as docker does; one
/// socket is forwarded as it is; key files are served by an agent of bud's own, as buildx does.
fn ssh_agents(opts: &BuildOptions) -> anyhow::Result<SshAgents> {
    use std::os::unix::fs::FileTypeExt;
    let mut agents = SshAgents {
        sockets: HashMap::new(),
        _served: Vec::new(),
    };
    for spec in &opts.ssh {
        let paths = match spec.paths.as_slice() {
            [] => vec![
                std::env::var_os("SSH_AUTH_SOCK")
                    .map(std::path::PathBuf::from)
                    .with_context(|| format!("--ssh {}: SSH_AUTH_SOCK is not set", spec.id))?,
            ],
            some => some.to_vec(),
        };
        let mut sockets = 0;
        for path in &paths {
            let kind = std::fs::metadata(path)
                .with_context(|| format!("--ssh {}: {}", spec.id, path.display()))?
                .file_type();
            if kind.is_socket() {
                sockets += 1;
            } else if !kind.is_file() {
                bail!(
                    "--ssh {}: {} is neither an agent socket nor a private key file",
                    spec.id,
                    path.display()
                );
            }
        }
        let socket = match (sockets, paths.as_slice()) {
            (0, _) => {
                let agent = ssh_agent::KeyAgent::start(&paths)
                    .with_context(|| format!("--ssh {}", spec.id))?;
                let socket = agent.socket().to_path_buf();
                agents._served.push(agent);
                socket
            }
            (1, [one]) => one.clone(),
            _ => bail!(
                "--ssh {}: give either one agent socket or private key files",
                spec.id
            ),
        };
        agents.sockets.insert(spec.id.clone(), socket);
    }
    Ok(agents)
}

/// The embedded solver builds for the machine it runs on; `--platform` may name it.
fn target_platform(opts: &BuildOptions) -> anyhow::Result<Option<convert::Platform>> {
    let Some(requested) = opts.platforms.first() else {
        return Ok(None);
    };
    let platform = convert::Platform::parse(requested)
        .map_err(|e| anyhow::anyhow!("--platform {requested}: {e}"))?;
    let host = convert::Platform::host();
    if platform != host {
        bail!(
            "--platform {requested}: building for another platform than the host's ({host}) \
             is not supported yet by the embedded solver"
        );
    }
    Ok(Some(platform))
}

fn convert_options(opts: &BuildOptions, inputs: &BuildInputs) -> anyhow::Result<ConvertOptions> {
    let build_args = build_arg_values(&opts.build_args);
    let labels = opts
        .labels
        .iter()
        .map(|l| (l.key.clone(), l.value.clone()))
        .collect();
    let no_cache = if opts.no_cache {
        NoCache::All
    } else if !opts.no_cache_filter.is_empty() {
        NoCache::Stages(opts.no_cache_filter.clone())
    } else {
        NoCache::None
    };
    let ulimits = opts
        .ulimits
        .iter()
        .map(|u| bud_proto::pb::Ulimit {
            name: u.name.clone(),
            soft: u.soft,
            hard: u.hard,
        })
        .collect();
    let shm_size = opts
        .shm_size
        .map(i64::try_from)
        .transpose()
        .context("--shm-size is too large")?;
    Ok(ConvertOptions {
        target: opts.target.clone(),
        named_contexts: NamedContexts::read(&opts.build_contexts)?.contexts,
        ulimits,
        shm_size,
        target_platform: target_platform(opts)?,
        build_args,
        labels,
        excludes: inputs.excludes.clone(),
        no_cache,
        caps: SolverCaps {
            merge_op: true,
            bind_read_write_no_output: true,
            tmpfs_size: true,
        },
        ..ConvertOptions::default()
    })
}

/// A failed step, reported as docker build and buildx do: the step and its last output lines
/// (the block is there even when the step printed nothing), the Dockerfile lines around the
/// instruction, then the error (after that block, without the step's name again).
fn step_failure(e: crate::solver::StepError, inputs: &BuildInputs) -> anyhow::Error {
    let mut msg = String::new();
    let mut step_shown = false;
    if let crate::solver::SolveError::ProcessFailed { output_tail, .. } = e.source.root() {
        step_shown = true;
        msg.push_str("------\n");
        msg.push_str(&format!(" > {}:\n", e.name));
        for line in output_tail {
            msg.push_str(&format!("{line}\n"));
        }
        msg.push_str("------\n");
    }
    if let Some(excerpt) = dockerfile_excerpt(&e.name, inputs) {
        msg.push_str(&excerpt);
    }
    // The step's name holds its whole command, which the process error repeats: name it
    // once, as buildx does.
    if step_shown {
        msg.push_str(&format!("failed to solve: {}", e.source));
    } else {
        msg.push_str(&format!("failed to solve: {}: {}", e.name, e.source));
    }
    anyhow::anyhow!(msg)
}

/// The Dockerfile lines around the instruction a step came from, found by its text: the
/// line starting with the instruction's keyword followed by the first characters of its
/// arguments. Dockerfile text is any UTF-8, so the comparison is by characters, never by
/// byte offsets.
fn dockerfile_excerpt(step_name: &str, inputs: &BuildInputs) -> Option<String> {
    let instruction = step_name.split_once("] ").map(|(_, rest)| rest)?;
    let lines: Vec<&str> = inputs.dockerfile.lines().collect();
    let (keyword, rest) = instruction
        .split_once(char::is_whitespace)
        .unwrap_or((instruction, ""));
    let rest = rest.trim();
    let rest_start = rest
        .char_indices()
        .nth(20)
        .map_or(rest, |(at, _)| &rest[..at]);
    let idx = lines.iter().position(|l| {
        let t = l.trim_start();
        t.get(..keyword.len())
            .is_some_and(|k| k.eq_ignore_ascii_case(keyword))
            && t[keyword.len()..].trim().starts_with(rest_start)
    })?;
    let start = idx.saturating_sub(2);
    let end = (idx + 3).min(lines.len());
    let mut out = format!(
        "{}:{}\n--------------------\n",
        inputs.dockerfile_name,
        idx + 1
    );
    for (i, line) in lines.iter().enumerate().take(end).skip(start) {
        let mark = if i == idx { ">>>" } else { "   " };
        out.push_str(&format!(" {:>3} | {mark} {line}\n", i + 1));
    }
    out.push_str("--------------------\n");
    Some(out)
}

fn metadata_json(report: &BuildReport) -> String {
    let mut m = serde_json::Map::new();
    if let Some(d) = &report.config_digest {
        m.insert("containerimage.config.digest".into(), d.clone().into());
    }
    if let Some(d) = report.manifest_digest.as_ref().or(report.image_id.as_ref()) {
        m.insert("containerimage.digest".into(), d.clone().into());
    }
    if !report.names.is_empty() {
        m.insert("image.name".into(), report.names.join(",").into());
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
        Err(e) => crate::report!("warning: cache garbage collection: {e}"),
    }
}

/// The Docker daemon docker's CLI would use (DOCKER_HOST, the current context or the default
/// socket) if it answers, or why not. Docker is optional until an output needs it; that
/// output's error gives the reason.
pub(crate) async fn docker_client() -> Result<bollard::Docker, String> {
    let endpoint = match crate::docker_host::endpoint() {
        Ok(endpoint) => endpoint,
        Err(e) => {
            // A setting naming a Docker bud cannot use is worth knowing even when no
            // output needs Docker.
            crate::report!("warning: {e}");
            return Err(e.to_string());
        }
    };
    let docker = crate::docker_host::connect(&endpoint).map_err(|e| e.to_string())?;
    match docker.ping().await {
        Ok(_) => Ok(docker),
        Err(e) => {
            let why = format!(
                "{}: {}",
                endpoint.origin,
                crate::error_chain::error_chain(&e)
            );
            // No Docker on the default socket is a normal setup; a daemon a setting names
            // that does not answer is not, and base images then come from registries.
            if endpoint.configured {
                crate::report!("warning: building without Docker: {why}");
            }
            Err(why)
        }
    }
}
