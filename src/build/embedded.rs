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
use crate::solver::{SolveOptions, Solver};

use super::contexts::NamedContexts;
use super::dockerfile::convert_dockerfile;
use super::inputs::BuildInputs;
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
    let BuildEnv {
        state,
        meta,
        content,
        registry,
        docker,
        images,
        progress,
        ..
    } = env;
    // Resolving the base images may wait on a registry.
    let converted = unless_cancelled(
        &cancel,
        convert_dockerfile(opts, inputs, images.clone(), None, progress),
    )
    .await?;

    runtime.reap_orphans().await;
    // Served until the build returns.
    let ssh = super::secrets::ssh_agents(opts)?;
    let mut solve_opts = solve_options(opts, inputs, registry, &ssh)?;
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
    let solver = Arc::new(Solver::new(
        state.clone(),
        meta.clone(),
        runtime,
        images.clone(),
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
            return Err(super::failure::step_failure(e, inputs));
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
        let assembling =
            tokio::task::spawn_blocking(move || -> anyhow::Result<route::Assembled> {
                let plan = export::plan_image(&snapshots, &result, image)?;
                Ok(if needs_stored_layers {
                    route::Assembled::Built(plan.into_built(&snapshots, &content)?)
                } else {
                    route::Assembled::Planned(plan)
                })
            });
        let assembled = unless_cancelled(&cancel, async {
            assembling.await.context("exporting layers")?
        })
        .await?;
        if let route::Assembled::Built(built) = &assembled {
            report.config_digest = Some(built.config_digest.to_string());
        }
        Some(assembled)
    } else {
        None
    };
    let base_images = route::base_images(&converted.definition);
    let targets = route::Targets {
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
            route::export_one(
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

/// What the solver needs from the flags and inputs; `ssh` serves the `--ssh` agents.
pub(super) fn solve_options(
    opts: &BuildOptions,
    inputs: &BuildInputs,
    registry: &crate::registry::RegistryConfig,
    ssh: &super::secrets::SshAgents,
) -> anyhow::Result<SolveOptions> {
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
        secrets: super::secrets::read_secrets(opts)?,
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
    Ok(solve_opts)
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

/// `--cache-from` and `--cache-to` with the embedded solver, whose cache is its state root.
/// An import that cannot be made does not fail the build, as with BuildKit: it shows as a
/// failed "importing cache manifest" step and the build goes on with the local cache. An
/// export that cannot be made does fail it, before anything runs, unless its
/// `ignore-error=true` says otherwise, as BuildKit's does.
pub(super) fn caches(opts: &BuildOptions, progress: &ProgressSink) -> anyhow::Result<()> {
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
