//! A build with the embedded solver: the Dockerfile converted, its graph solved with runc
//! on bud's own snapshots, and the result exported (`route`).

use std::sync::{Arc, Mutex, PoisonError};

use anyhow::{Context as _, bail};
use bud_frontend::image::Image;
use tokio_util::sync::CancellationToken;

use crate::cli::BuildOptions;
use crate::executor::Runtime;
use crate::exporter::docker_load::PendingLoad;
use crate::progress::ProgressSink;
use crate::remotecache;
use crate::solver::{HistoryTarget, Ref, SolveOptions, Solver};

use super::contexts::NamedContexts;
use super::dockerfile::convert_dockerfile;
use super::inputs::BuildInputs;
use super::multi::EXPORT_VERTEX;
use super::outputs::Export;
use super::{BuildEnv, BuildReport, export, route};

/// Builds with the embedded solver: converts the Dockerfile, solves it with `runtime`, and
/// exports the result where `exports` say.
pub(super) async fn build(
    env: &BuildEnv,
    opts: &BuildOptions,
    inputs: &BuildInputs,
    exports: &[Export],
    runtime: Runtime,
    cancel: CancellationToken,
) -> anyhow::Result<BuildReport> {
    let platforms = super::dockerfile::target_platforms(opts)?;
    if platforms.len() > 1 {
        return super::multi::build(env, opts, inputs, exports, runtime, cancel, platforms).await;
    }
    // The one platform this build is for.
    let platform = platforms
        .first()
        .cloned()
        .unwrap_or_else(bud_frontend::convert::Platform::host);
    let BuildEnv {
        content,
        registry,
        docker,
        images,
        progress,
        ..
    } = env;
    let planned = super::attestations::plan(opts, exports)?;
    let started = std::time::SystemTime::now();
    let cache_specs = cache_exports(opts, progress);
    let cache_platform =
        crate::registry::Platform::new(&platform.os, &platform.architecture, &platform.variant);
    // The caches' manifests download while the solver starts, the Dockerfile converts
    // (which may wait on a registry or Docker for the base images) and the context loads.
    let import = remotecache::pending_import(
        &opts.cache_from,
        vec![cache_platform],
        content,
        registry,
        progress,
    );
    let ssh = super::secrets::ssh_agents(opts)?;
    let mut solve_opts = solve_options(opts, inputs, registry, &ssh)?;
    solve_opts.cdi_spec_dirs = env.config.cdi.spec_dirs.clone();
    solve_opts.cache_import = import.clone();
    // A build that runs a step most likely ends in an image Docker does not have: its load
    // is opened then, to overlap dockerd's start-up with the build.
    let early_load: Arc<Mutex<Option<PendingLoad>>> = Arc::default();
    if let Ok(docker) = docker
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
    let solving = async {
        runtime.reap_orphans().await;
        let solver = start_solver(env, runtime, solve_opts)?;
        let fetched = fetch_remote_context(opts, inputs, &solver, &cancel).await?;
        // Resolving the base images may wait on a registry.
        let converted = unless_cancelled(
            &cancel,
            convert_dockerfile(
                opts,
                fetched.as_ref().unwrap_or(inputs),
                images.clone(),
                None,
                progress,
            ),
        )
        .await?;
        let solved = solver.solve(&converted.definition, &cancel).await;
        anyhow::Ok((solver, fetched, converted, solved))
    };
    // A URL context fetched stays where the solve reads it until the build is done.
    let (solver, _fetched, converted, solved) = while_importing(import, &cancel, solving).await?;
    // The context as given (a URL context's is read once fetched): the provenance names it.
    let given = inputs;
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
                tracing::debug!(
                    "closing the unused docker load: {e}",
                    e = crate::error_chain::error_chain(&e)
                );
            }
            return Err(super::failure::step_failure(e, &[&converted.definition]));
        }
    };
    // A result an imported cache holds stays there when only pushes want it (a cache export
    // takes its blobs as they are); anything else reads its files.
    let result = if lazy_push(&result, exports, &planned, content) {
        result
    } else {
        let brought = bring_in_results(&solver, vec![result], &cancel).await?;
        brought.into_iter().next().unwrap_or(Ref::Scratch)
    };

    let mut image: Image = serde_json::from_value(converted.image)
        .context("the frontend produced an invalid image config")?;
    add_inline_cache(&mut image, &cache_specs, &solver, &result, &cancel).await?;
    let attestations = if planned.is_empty() {
        Vec::new()
    } else {
        let provenance = super::attestations::Provenance {
            opts,
            inputs: given,
            images,
            git: solver.git_sources(),
            invocation_id: crate::remote::new_session_id(),
            started,
            daemon_pins: Default::default(),
            journal: solver.journal(),
        };
        let made = provenance.image_attestations(
            &planned,
            super::attestations::ScannedRoot::Snapshot {
                snapshots: solver.snapshots(),
                result: &result,
            },
            &converted.definition,
            platform.to_string(),
            progress,
            &cancel,
        );
        unless_cancelled(&cancel, made).await?
    };
    let mut report = BuildReport::default();
    let epoch = super::dockerfile::source_date_epoch(opts)?;
    // One image per clamp of the layers' mtimes the exports ask for (`rewrite-timestamp`).
    let mut variants: Vec<(Option<i64>, bool)> = Vec::new();
    for e in exports {
        let Some(attrs) = e.image_attrs() else {
            continue;
        };
        let clamp = if attrs.rewrite_timestamp { epoch } else { None };
        // Only registries and archive files need the layer tars stored; Docker gets new
        // layers tarred straight from their snapshots, unless their mtimes are clamped.
        let stored = clamp.is_some() || !matches!(e, Export::DockerLoad { .. });
        match variants.iter_mut().find(|(c, _)| *c == clamp) {
            Some((_, s)) => *s |= stored,
            None => variants.push((clamp, stored)),
        }
    }
    let mut assembled: Vec<(Option<i64>, route::Assembled)> = Vec::new();
    for (clamp, stored) in variants {
        let snapshots = solver.snapshots().clone();
        let content = content.clone();
        let result = result.clone();
        let image = image.clone();
        let assembling =
            tokio::task::spawn_blocking(move || -> anyhow::Result<route::Assembled> {
                if let Ref::Lazy(lazy) = &result {
                    return match export::lazy_image(&snapshots, lazy, image)? {
                        Some(built) => Ok(route::Assembled::Built(built)),
                        None => bail!(crate::solver::SolveError::NotBroughtIn),
                    };
                }
                let plan = export::plan_image(&snapshots, &result, image)?;
                Ok(if stored {
                    route::Assembled::Built(plan.into_built(&snapshots, &content, clamp)?)
                } else {
                    route::Assembled::Planned(plan)
                })
            });
        let one = unless_cancelled(&cancel, async {
            assembling.await.context("exporting layers")?
        })
        .await?;
        if let route::Assembled::Built(built) = &one
            && report.config_digest.is_none()
        {
            report.config_digest = Some(built.config_digest.to_string());
        }
        assembled.push((clamp, one));
    }
    let assembled_for = |e: &Export| {
        let attrs = e.image_attrs()?;
        let clamp = if attrs.rewrite_timestamp { epoch } else { None };
        assembled.iter().find(|(c, _)| *c == clamp).map(|(_, a)| a)
    };
    let base_images = route::base_images(&converted.definition);
    // The export shows as one more step, as BuildKit's "exporting to image" does.
    let export_progress = crate::registry::ProgressTarget {
        sink: progress.clone(),
        vertex: EXPORT_VERTEX.to_owned(),
    };
    let targets = route::Targets {
        docker: docker.as_ref(),
        base_images: &base_images,
        content,
        registry,
        progress: &export_progress,
    };
    progress.started(EXPORT_VERTEX, "exporting to image");
    // Loads, pushes and archives stop when the build is cancelled: a load cut short never
    // gets its image into Docker, a push never writes its manifest.
    let exporting = async {
        for e in exports {
            route::export_one(
                e,
                &solver,
                &result,
                assembled_for(e),
                &targets,
                &attestations,
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
        Err(e) => progress.completed(
            EXPORT_VERTEX,
            Some(crate::error_chain::error_chain(e.as_ref())),
        ),
    }
    exported?;
    unless_cancelled(
        &cancel,
        export_caches(&cache_specs, &solver, std::slice::from_ref(&result), env),
    )
    .await?;
    Ok(report)
}

/// Whether the result, which an imported cache holds and the build has not brought in, can
/// stay there: only pushes want it, in the compression of the cache's blobs (another
/// compression or level needs the layers' tars), with no SBOM to scan its files and no
/// max-mode provenance to list its steps' snapshots.
pub(super) fn lazy_push(
    result: &Ref,
    exports: &[Export],
    planned: &crate::attest::Attestations,
    content: &crate::content::ContentStore,
) -> bool {
    let Ref::Lazy(lazy) = result else {
        return false;
    };
    let max_provenance = planned
        .provenance
        .as_ref()
        .is_some_and(|p| p.mode == crate::attest::ProvenanceMode::Max);
    if lazy.brought().is_some() || planned.sbom.is_some() || max_provenance {
        return false;
    }
    let layers = lazy.imported().layers();
    !exports.is_empty()
        && exports.iter().all(|e| match e {
            Export::Push {
                compression, image, ..
            } => {
                !image.rewrite_timestamp
                    && !compression.force
                    && compression.level.is_none()
                    && layers.iter().all(|l| match &l.diff_id {
                        Some(d) => {
                            content.exists(d) || l.blob.compression() == Some(compression.kind)
                        }
                        None => false,
                    })
            }
            _ => false,
        })
}

/// `results` with what an imported cache holds brought in.
pub(super) async fn bring_in_results(
    solver: &Arc<Solver>,
    results: Vec<Ref>,
    cancel: &CancellationToken,
) -> anyhow::Result<Vec<Ref>> {
    let bringing = async {
        let mut brought = Vec::with_capacity(results.len());
        for r in &results {
            brought.push(
                solver
                    .bring_in(r)
                    .await
                    .context("bringing in a result of --cache-from")?,
            );
        }
        anyhow::Ok(brought)
    };
    unless_cancelled(cancel, bringing).await
}

/// With `--cache-to type=inline`, puts the records of `result`'s own layers into the
/// image's config, as BuildKit's inline cache does (each platform's image its own).
pub(super) async fn add_inline_cache(
    image: &mut Image,
    cache_specs: &[remotecache::ExportSpec],
    solver: &Arc<Solver>,
    result: &crate::solver::Ref,
    cancel: &CancellationToken,
) -> anyhow::Result<()> {
    if !cache_specs
        .iter()
        .any(|s| s.location == remotecache::Location::Inline)
    {
        return Ok(());
    }
    let (journal, snapshots) = (solver.journal(), solver.snapshots().clone());
    let result = result.clone();
    let records = tokio::task::spawn_blocking(move || {
        remotecache::inline::records(&journal, &result, &snapshots)
    });
    let records =
        unless_cancelled(cancel, async { records.await.context("the inline cache")? }).await?;
    image.extra.insert(
        remotecache::inline::IMAGE_CONFIG_KEY.into(),
        serde_json::Value::String(records),
    );
    Ok(())
}

/// With a URL as the context, the inputs once `solver` has fetched it (its Dockerfile read
/// from it, as BuildKit's Dockerfile frontend reads it); `None` for a local context.
pub(super) async fn fetch_remote_context(
    opts: &BuildOptions,
    inputs: &BuildInputs,
    solver: &Arc<Solver>,
    cancel: &CancellationToken,
) -> anyhow::Result<Option<BuildInputs>> {
    let Some(remote) = &inputs.remote else {
        return Ok(None);
    };
    let files = super::remote_context::SolverFiles { solver, cancel };
    let keep_git_dir =
        super::remote_context::keep_git_dir(&super::dockerfile::build_arg_values(&opts.build_args));
    let loaded = super::remote_context::load(
        remote,
        opts.file.as_deref(),
        keep_git_dir,
        inputs.dockerfile_given,
        true,
        &files,
    );
    Ok(Some(inputs.loaded(unless_cancelled(cancel, loaded).await?)))
}

/// What the solver needs from the flags and inputs; `ssh` serves the `--ssh` agents.
pub(super) fn solve_options(
    opts: &BuildOptions,
    inputs: &BuildInputs,
    registry: &crate::registry::RegistryConfig,
    ssh: &super::secrets::SshAgents,
) -> anyhow::Result<SolveOptions> {
    let entitlements = opts.entitlements();
    let mut solve_opts = SolveOptions {
        no_cache: opts.no_cache,
        network_none: opts.network == "none",
        allow_network_host: entitlements.iter().any(|e| e == "network.host"),
        allow_insecure: entitlements.iter().any(|e| e == "security.insecure"),
        devices: crate::executor::cdi::Grants::from_entitlements(&entitlements),
        secrets: super::secrets::read_secrets(opts)?,
        ssh_agents: ssh.sockets.clone(),
        timeouts: registry.timeouts,
        history: Some(history_target(opts, inputs)),
        ..Default::default()
    };
    let named = NamedContexts::read(&opts.build_contexts)?;
    solve_opts.local_dirs.extend(named.local_dirs);
    solve_opts.oci_layouts.extend(named.oci_layouts);
    // A URL context is a source of the graph, not a local directory.
    if inputs.remote.is_none() {
        solve_opts
            .local_dirs
            .insert("context".into(), inputs.context_dir.clone());
    }
    Ok(solve_opts)
}

/// What makes two builds the same target, whose steps are compared to say why one ran:
/// the context, the Dockerfile, the target stage and the platforms.
fn history_target(opts: &BuildOptions, inputs: &BuildInputs) -> HistoryTarget {
    let path = |p: &str| match std::fs::canonicalize(p) {
        Ok(full) => full.display().to_string(),
        Err(_) => p.to_string(),
    };
    // A context from stdin or a URL is named as given: its directory is a new one each time.
    let context = if inputs.remote.is_some() || opts.context == "-" {
        opts.context.clone()
    } else {
        path(&opts.context)
    };
    let dockerfile = match opts.file.as_deref() {
        Some("-") | None => opts.file.clone().unwrap_or_default(),
        Some(f) => path(f),
    };
    let id = [
        context,
        dockerfile,
        opts.target.clone().unwrap_or_default(),
        opts.platforms.join(","),
    ]
    .join("\n");
    let mut build_args: Vec<String> = opts.build_args.iter().map(|a| a.key.clone()).collect();
    build_args.sort_unstable();
    build_args.dedup();
    HistoryTarget { id, build_args }
}

/// The build's solver on the state root, with the work a killed build left removed first.
pub(super) fn start_solver(
    env: &BuildEnv,
    runtime: Runtime,
    solve_opts: SolveOptions,
) -> anyhow::Result<Arc<Solver>> {
    let solver = Arc::new(Solver::new(
        env.state.clone(),
        env.meta.clone(),
        runtime,
        env.images.clone(),
        env.progress.clone(),
        solve_opts,
    )?);
    solver.snapshots().remove_abandoned_work();
    Ok(solver)
}

/// `work`, with the imported caches read beside it (they make progress only while polled)
/// and to the end, as BuildKit shows every import done, unless the build is cancelled.
pub(super) async fn while_importing<T>(
    import: Option<crate::solver::PendingImport>,
    cancel: &CancellationToken,
    work: impl Future<Output = T>,
) -> T {
    let Some(import) = import else {
        return work.await;
    };
    let (done, _) = tokio::join!(work, unless_cancelled(cancel, async { Ok(import.await) }));
    done
}

/// `work`, unless the build is cancelled first; then `work` is dropped where it waits
/// (on a registry, on Docker, on a blocking task) and the build fails at once.
pub(super) async fn unless_cancelled<T>(
    cancel: &CancellationToken,
    work: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    tokio::select! {
        biased;
        () = cancel.cancelled() => bail!("cancelled"),
        done = work => done,
    }
}

/// Checks every `--cache-to` before anything runs: one the embedded solver cannot write
/// fails the build, as BuildKit's does, unless its `ignore-error=true` says otherwise. A
/// `--cache-from` attribute the embedded solver would not honour fails it too.
pub(super) fn caches(opts: &BuildOptions, _progress: &ProgressSink) -> anyhow::Result<()> {
    for from in &opts.cache_from {
        if let Err(e) = remotecache::check_import(from) {
            bail!("--cache-from type={}: {e}", from.kind);
        }
    }
    for to in &opts.cache_to {
        if let Err(e) = parse_cache_to(to)
            && !remotecache::ignores_errors(to)
        {
            bail!(
                "--cache-to type={}: {e}; add ignore-error=true to build without it",
                to.kind
            );
        }
    }
    Ok(())
}

fn parse_cache_to(
    to: &crate::cli::CacheOption,
) -> Result<remotecache::ExportSpec, remotecache::CacheOptionError> {
    remotecache::ExportSpec::parse(to)
}

/// The `--cache-to` specs the embedded solver writes (`caches` refused the build if one it
/// cannot write lacks `ignore-error=true`); a warning for each left out.
pub(super) fn cache_exports(
    opts: &BuildOptions,
    progress: &ProgressSink,
) -> Vec<remotecache::ExportSpec> {
    let mut specs = Vec::new();
    for to in &opts.cache_to {
        match parse_cache_to(to) {
            Ok(spec) => specs.push(spec),
            Err(e) => progress.warning(
                None,
                format!(
                    "--cache-to type={}: not exported (ignore-error=true): {e}",
                    to.kind
                ),
            ),
        }
    }
    specs
}

/// Writes every `--cache-to` once the image is exported, the records of every result
/// (one per platform) in one cache; each shows as a step of its own. A failure fails the
/// build unless `ignore-error=true`.
pub(super) async fn export_caches(
    specs: &[remotecache::ExportSpec],
    solver: &Solver,
    results: &[crate::solver::Ref],
    env: &BuildEnv,
) -> anyhow::Result<()> {
    for (i, spec) in specs
        .iter()
        .enumerate()
        .filter(|(_, s)| s.location != remotecache::Location::Inline)
    {
        let vertex = format!("bud-cache-export-{i}");
        env.progress.started(&vertex, spec.step_name());
        let exported = async {
            bring_in_for_cache(spec, solver, results, &env.content).await?;
            export_cache(spec, solver, results, env).await
        }
        .await;
        match exported {
            Ok(()) => env.progress.completed(&vertex, None),
            Err(e) => {
                let message = crate::error_chain::error_chain(e.as_ref());
                env.progress.completed(&vertex, Some(message.clone()));
                if !spec.ignore_error {
                    return Err(e.context(format!("exporting the cache to {}", spec.describe())));
                }
                env.progress.warning(
                    None,
                    format!(
                        "--cache-to {}: not exported (ignore-error=true): {message}",
                        spec.describe()
                    ),
                );
            }
        }
    }
    Ok(())
}

/// Brings in the results of `--cache-from` that `spec` cannot record as the blobs they are
/// (another compression or level than theirs, a layer without a diff ID); the others stay in
/// their cache, whose blobs the export mounts or copies, as BuildKit's lazy refs.
async fn bring_in_for_cache(
    spec: &remotecache::ExportSpec,
    solver: &Solver,
    results: &[Ref],
    content: &crate::content::ContentStore,
) -> anyhow::Result<()> {
    let outputs = solver.journal().into_iter().flat_map(|v| v.outputs);
    for r in results.iter().cloned().chain(outputs) {
        if let Ref::Lazy(lazy) = &r
            && lazy.brought().is_none()
            && !remotecache::export::keeps_lazy(lazy, spec.shape.compression, content)
        {
            solver
                .bring_in(&r)
                .await
                .context("bringing in a result of --cache-from")?;
        }
    }
    Ok(())
}

/// Writes the cache `spec` asks for of `results` and the steps the solver journalled.
async fn export_cache(
    spec: &remotecache::ExportSpec,
    solver: &Solver,
    results: &[Ref],
    env: &BuildEnv,
) -> anyhow::Result<()> {
    let cache_mounts = if spec.cache_mounts {
        solver.cache_mounts_used()
    } else {
        Vec::new()
    };
    remotecache::export_one(
        spec,
        solver.journal(),
        cache_mounts,
        results.to_vec(),
        solver.snapshots().clone(),
        &env.content,
        &env.registry,
    )
    .await
}
