//! `bud --addr …`: the same LLB, solved by a BuildKit daemon (the one inside dockerd, or a
//! buildkitd) with its own exporters.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::bail;
use bud_frontend::convert::{NamedContext, Platform};
use futures_util::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::cli::BuildOptions;
use crate::remote::{
    self, DaemonImages, Exporter, Graph, GraphError, MakeGraph, RemoteSolver, SolveRequest,
    TlsOptions,
};

use super::contexts::NamedContexts;
use super::dockerfile::{convert_dockerfile, convert_for, warn_unused_args};
use super::inputs::BuildInputs;
use super::outputs::Export;
use super::{BuildEnv, BuildReport};

/// Builds on the BuildKit daemon at `addr`: the same LLB, exported by the daemon. Several
/// platforms are one solve on a BuildKit with its own image exporters, which writes the
/// index itself (as with buildx); on dockerd's `moby`-only BuildKit they are solved one by
/// one and joined by bud (`remote_multi`).
pub(super) async fn build(
    env: &BuildEnv,
    addr: &str,
    tls: &TlsOptions,
    opts: &BuildOptions,
    inputs: &BuildInputs,
    exports: &[Export],
    cancel: CancellationToken,
) -> anyhow::Result<BuildReport> {
    let platforms = super::dockerfile::target_platforms(opts)?;
    let mut part = Part::default();
    if platforms.len() > 1 {
        let kinds = RemoteSolver::connect_with(addr, tls)
            .await?
            .exporters()
            .await?;
        if kinds == remote::DaemonExporters::MobyOnly {
            let node = super::remote_multi::Node::one(addr, tls);
            return super::remote_multi::build(
                env,
                &[node],
                opts,
                inputs,
                exports,
                platforms,
                cancel,
            )
            .await;
        }
        super::remote_multi::refuse_in_one_solve(exports, addr)?;
        part.platforms = platforms;
    }
    let solved = solve_on(env, addr, tls, opts, inputs, exports, part, cancel).await?;
    Ok(solved.report)
}

/// Which part of a build one solve is: the whole of it, one platform of several, or every
/// platform of several at once.
#[derive(Default, Clone)]
pub(super) struct Part {
    /// The one platform this solve is for, when the build has several.
    pub platform: Option<Platform>,
    /// Every platform of the build, each a ref of this solve's result (a BuildKit with its
    /// own image exporters writes their index).
    pub platforms: Vec<Platform>,
    /// Whether the build checks and the unused-argument warnings are this solve's to give
    /// (one solve of a build's gives them).
    pub quiet: bool,
}

/// A finished solve: its report, and the Docker that stored its image, if one did.
pub(super) struct Solved {
    pub report: BuildReport,
    pub docker: Option<bollard::Docker>,
}

/// One solve on the daemon at `addr`, exported where `exports` say.
#[allow(clippy::too_many_arguments)]
pub(super) async fn solve_on(
    env: &BuildEnv,
    addr: &str,
    tls: &TlsOptions,
    opts: &BuildOptions,
    inputs: &BuildInputs,
    exports: &[Export],
    part: Part,
    cancel: CancellationToken,
) -> anyhow::Result<Solved> {
    let started = std::time::SystemTime::now();
    let (images, progress) = (env.images.clone(), &env.progress);
    let caches = cache_entries(opts, progress)?;
    // The Dockerfile is converted only once the daemon is reached (below); its syntax is
    // the user's to fix before any daemon is involved.
    // A URL context's Dockerfile is read only once the daemon has fetched it.
    let foreign = if inputs.remote.is_none() || inputs.dockerfile_given {
        check_syntax(inputs, opts)?
    } else {
        None
    };
    if foreign.is_some() && part.platform.is_some() {
        bail!(
            "a frontend image (# syntax=) with several platforms and --addr is not supported \
             yet: build the platforms one at a time"
        );
    }
    // Served until the build returns.
    let ssh = super::secrets::ssh_agents(opts)?;
    let session_id = remote::new_session_id();
    let solver = RemoteSolver::connect_with(addr, tls).await?;
    let exports = &super::remote_platform::name_platform_dirs(&solver, opts, exports).await?;
    let kinds = solver.exporters().await?;
    // A BuildKit that exports images itself makes the attestations asked for, as buildx has
    // it make them (none by default); on Docker's own image store, whose `moby` exporter
    // would drop them, bud attaches them to the image it exports itself.
    let (asked, planned) = if kinds == remote::DaemonExporters::All {
        let asked = super::attestations::requested(opts)?;
        if !asked.is_empty() && !solver.makes_attestations().await? {
            bail!(
                "attestations (--provenance, --sbom, --attest) with --addr need BuildKit 0.11 \
                 or later, and the daemon at {addr} is older: build without --addr to attach \
                 them"
            );
        }
        (asked, crate::attest::Attestations::default())
    } else {
        let planned = super::attestations::plan_remote(
            opts,
            exports,
            part.platform.is_some(),
            foreign.is_some(),
        )?;
        (crate::attest::Attestations::default(), planned)
    };
    if kinds == remote::DaemonExporters::MobyOnly {
        refuse_cache_exports(&caches.1, addr)?;
    }
    let daemon_plan = super::remote_outputs::plan(exports, kinds, &env.registry)?;
    let exporter = daemon_plan.exporter.clone();
    super::remote_release::refuse_unread_exporter_attrs(
        &solver,
        std::iter::once(&exporter).chain(&daemon_plan.more),
    )
    .await?;
    let caches = super::remote_release::readable_caches(&solver, caches, progress).await?;
    if part.platform.is_some()
        && kinds == remote::DaemonExporters::All
        && matches!(exporter, Exporter::Moby { .. })
    {
        // Only a node of bud.toml's builder gets here (`--addr` gives such a daemon every
        // platform in one solve): a node builds its platforms one by one.
        bail!(
            "with several platforms, an image (--push, -o type=oci) built on a node of \
             [[builder.nodes]] that exports images itself ({addr}) is not supported yet: give \
             it every platform with --addr {addr}, or build without the nodes"
        );
    }
    let merges = std::iter::once(&daemon_plan.exporter)
        .chain(&daemon_plan.more)
        .any(|e| {
            matches!(
                e,
                Exporter::Local {
                    merge_platforms: true,
                    ..
                }
            )
        });
    if merges && !solver.splits_platforms_on_request().await? {
        bail!(
            "platform-split=false: the daemon's BuildKit would write each platform into a \
             directory of its own regardless (platform-split came with BuildKit 0.12)"
        );
    }
    if !daemon_plan.more.is_empty() && !solver.takes_several_exporters().await? {
        bail!(
            "the daemon's BuildKit runs one exporter per build (several came with BuildKit \
             0.13): give each output a build of its own"
        );
    }
    let dockerfile_dir = match opts.file.as_deref() {
        Some(f) if f != "-" => std::path::Path::new(f)
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_default(),
        _ => inputs.context_dir.clone(),
    };
    // The Dockerfile is converted once the build is registered on the daemon, so that base
    // images are resolved there: from where the daemon pulls them, and with no registry
    // access or Docker needed here. bud's own resolution is kept for a daemon without it.
    let requested_platform = match (&part.platform, part.platforms.as_slice()) {
        (Some(p), _) => Some(p.to_string()),
        // As buildx asks for several: the daemon checks the result's platforms against them.
        (None, [_, _, ..]) => Some(
            part.platforms
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(","),
        ),
        (None, _) => super::dockerfile::target_platforms(opts)?
            .first()
            .map(|p| p.to_string()),
    };
    let local_session = session_id.clone();
    // The graph sent, kept for the provenance of the image bud exports itself.
    let sent: Arc<std::sync::Mutex<Option<bud_proto::pb::Definition>>> = Arc::default();
    let keep = sent.clone();
    let make: MakeGraph<'_> = Box::new(move |daemon: DaemonImages| {
        Box::pin(async move {
            // A URL context is fetched by the daemon, and its Dockerfile read there, as
            // BuildKit's Dockerfile frontend does.
            let fetched = match &inputs.remote {
                Some(remote) => {
                    let files = super::remote_context::DaemonContextFiles(daemon.files());
                    let loaded = super::remote_context::load(
                        remote,
                        opts.file.as_deref(),
                        super::remote_context::keep_git_dir(&super::dockerfile::build_arg_values(
                            &opts.build_args,
                        )),
                        inputs.dockerfile_given,
                        daemon.supports("source.git.subdir"),
                        &files,
                    )
                    .await
                    .map_err(|e| crate::error_chain::error_chain(e.as_ref()))?;
                    Some(inputs.loaded(loaded))
                }
                None => None,
            };
            let inputs = fetched.as_ref().unwrap_or(inputs);
            let resolver = Arc::new(daemon.always_pull(opts.pull).with_fallback(images));
            if !part.platforms.is_empty() {
                return platforms_graph(
                    opts,
                    inputs,
                    resolver,
                    &local_session,
                    &part.platforms,
                    progress,
                )
                .await
                .map_err(|e| crate::error_chain::error_chain(e.as_ref()).into());
            }
            let converted = match part.platform {
                None => {
                    convert_dockerfile(opts, inputs, resolver, Some(local_session), progress).await
                }
                Some(platform) => {
                    let checks = (!part.quiet).then_some(progress);
                    let converted = convert_for(
                        opts,
                        inputs,
                        resolver,
                        Some(local_session),
                        Some(platform),
                        checks,
                    )
                    .await;
                    if let (Ok(c), false) = (&converted, part.quiet) {
                        warn_unused_args(c, progress);
                    }
                    converted
                }
            }
            .map_err(|e| crate::error_chain::error_chain(e.as_ref()))?;
            *keep.lock().unwrap_or_else(|p| p.into_inner()) = Some(converted.definition.clone());
            Ok(Graph {
                definition: converted.definition,
                image_config_json: Some(serde_json::to_vec(&converted.image)?),
                platforms: Vec::new(),
            })
        }) as BoxFuture<'_, Result<Graph, GraphError>>
    });
    let mut req = match &foreign {
        // Another frontend: the daemon runs it, as buildx has it run.
        Some(f) => SolveRequest::frontend(
            "gateway.v0",
            super::forward::frontend_attrs(f, opts)?,
            exporter.clone(),
        ),
        None => SolveRequest::deferred(make, exporter.clone()),
    };
    req.more_exporters = daemon_plan.more.clone();
    req.session_id = session_id;
    if inputs.remote.is_none() {
        req.local_dirs = SolveRequest::context_dirs(
            &inputs.context_dir,
            &dockerfile_dir,
            inputs.excludes.clone(),
        );
    }
    // Directory contexts are local sources of the session too, with their own .dockerignore.
    let named = NamedContexts::read(&opts.build_contexts)?;
    for (name, path) in named.local_dirs {
        if req.local_dirs.contains_key(&name) {
            bail!("--build-context {name}: with --addr, the name is taken by the main context");
        }
        let excludes = match named.contexts.get(&name) {
            Some(NamedContext::Local { excludes, .. }) => excludes.clone(),
            _ => Vec::new(),
        };
        req.local_dirs
            .insert(name, remote::SyncedDir { path, excludes });
    }
    req.oci_layouts = named.oci_layouts;
    req.secrets = opts.secrets.clone();
    req.ssh_agents = ssh.sockets.clone().into_iter().collect();
    req.progress = progress.clone();
    req.cancel = cancel.clone();
    (req.cache_imports, req.cache_exports) = caches;
    req.entitlements = opts.entitlements();
    req.platform = requested_platform;
    req.frontend_attrs = attestation_attrs(&asked);
    let result = solver.solve(req).await.map_err(|e| {
        if let Some(hint) = device_refusal_hint(&e) {
            return DeviceRefused { hint, source: e }.into();
        }
        match super::contexts::NoOciLayoutSource::of(e) {
            Ok(no_source) => no_source.into(),
            Err(e) => super::remote_outputs::explain_missing_exporter(e),
        }
    })?;
    let response = &result.exporter_response;
    let config_digest = response.get("containerimage.config.digest").cloned();
    let mut report = BuildReport {
        // What buildx writes to --iidfile and prints with -q: the image's config digest,
        // else (an index of several platforms) the digest the exporters answered last.
        image_id: config_digest.clone().or_else(|| result.image_id.clone()),
        config_digest,
        manifest_digest: response.get("containerimage.digest").cloned(),
        descriptor: super::remote_outputs::descriptor(response),
        // buildx's form, builder/node/ref; bud is one builder with one node.
        build_ref: Some(format!("bud/bud0/{}", result.build_ref)),
        names: Vec::new(),
    };
    for e in std::iter::once(&exporter).chain(&daemon_plan.more) {
        match e {
            Exporter::Moby { names } => report.names.extend(names.iter().cloned()),
            Exporter::Image { attrs } | Exporter::Archive { attrs, .. } => {
                report.names.extend(attrs.get("name").cloned())
            }
            Exporter::Local { .. } | Exporter::Tar { .. } => {}
        }
    }
    for e in exports {
        // The daemon wrote the files into the platform's directory bud named; it is made
        // as BuildKit makes a platform's.
        if let Export::Local {
            dest,
            in_platform_dir: true,
            epoch,
            ..
        } = e
        {
            super::export::finish_platform_dir(dest, *epoch)?;
        }
    }
    for e in std::iter::once(&exporter).chain(&daemon_plan.more) {
        if let Exporter::Tar {
            dest,
            epoch: Some(epoch),
        } = e
        {
            if !solver.stamps_exported_files().await? {
                super::remote_multi::restamp_tar(dest, *epoch)?;
            }
        }
    }
    if !daemon_plan.from_docker.is_empty() {
        let Some(image_id) = result.image_id.as_deref() else {
            bail!("the daemon stored the image in Docker but did not say its ID");
        };
        let Some(docker) = solver.docker_api()? else {
            bail!("internal error: an image stored by the moby exporter, but no Docker API");
        };
        // The moby exporter's names are Docker's; the pushes and archives name their own.
        report.names.clear();
        if let Exporter::Moby { names } = &exporter {
            let pushed: Vec<&String> = daemon_plan
                .from_docker
                .iter()
                .filter_map(|e| match e {
                    Export::Push { names, .. } => Some(names),
                    _ => None,
                })
                .flatten()
                .collect();
            report
                .names
                .extend(names.iter().filter(|n| !pushed.contains(n)).cloned());
        }
        report.manifest_digest = None;
        let built = super::remote_outputs::read_back(&docker, image_id, env).await?;
        report.config_digest = Some(built.config_digest.to_string());
        let attestations = if planned.is_empty() {
            Vec::new()
        } else {
            let Some(definition) = sent.lock().unwrap_or_else(|p| p.into_inner()).take() else {
                bail!(
                    "internal error: attestations asked for a build whose graph bud did not make"
                );
            };
            let provenance = super::attestations::Provenance {
                opts,
                inputs,
                images: &env.images,
                git: super::attestations::git_sources(&definition, &cancel).await?,
                // The daemon's build, as `--metadata-file`'s buildx.build.ref names it.
                invocation_id: result.build_ref.clone(),
                started,
                daemon_pins: super::attestations::daemon_pins(&docker, &definition).await?,
                journal: Vec::new(),
            };
            let platform = super::export::platform_of(&built.image);
            let root =
                super::attestations::ScannedRoot::ReadBack(super::attestations::ReadBackImage {
                    env,
                    reference: image_id.to_owned(),
                    layers: built
                        .layers
                        .iter()
                        .map(|l| (l.diff_id.to_string(), l.tar.clone()))
                        .collect(),
                });
            provenance
                .image_attestations(
                    &planned,
                    root,
                    &definition,
                    platform.to_string(),
                    progress,
                    &cancel,
                )
                .await?
        };
        super::remote_outputs::finish_from_docker(
            &daemon_plan.from_docker,
            &built,
            &env.content,
            &env.registry,
            &attestations,
            &mut report,
        )
        .await?;
    }
    let docker = solver.docker_api()?;
    Ok(Solved { report, docker })
}

/// The `--cache-from` and `--cache-to` entries the daemon is sent, each checked against
/// what BuildKit takes for its type (`remotecache::attrs`, the embedded solver's table):
/// an attribute the daemon would pass over fails the build before it starts, naming it, or,
/// with `ignore-error=true`, leaves that export out with a warning, as the embedded solver
/// does. The credentials and endpoints buildx fills in from the environment are filled in
/// (`remotecache::credentials`) once the user's own attributes passed that check.
fn cache_entries(
    opts: &BuildOptions,
    progress: &crate::progress::ProgressSink,
) -> anyhow::Result<(Vec<remote::CacheEntry>, Vec<remote::CacheEntry>)> {
    use crate::remotecache::attrs::{Direction, Solver, check};
    use crate::remotecache::credentials::{Environment, Filled, fill_in};
    let env = Environment::of_process();
    let entry = |c: &crate::cli::CacheOption, flag: &str| {
        let mut attrs = c.attrs.clone();
        let note = match fill_in(&c.kind, &mut attrs, &env) {
            Filled::Kept { note } => note,
            Filled::Dropped(why) => {
                progress.warning(None, format!("{flag} type={}: {why}", c.kind));
                return None;
            }
        };
        if let Some(note) = note {
            progress.warning(None, format!("{flag} type={}: {note}", c.kind));
        }
        Some(remote::CacheEntry {
            kind: c.kind.clone(),
            attrs,
        })
    };
    let mut imports = Vec::new();
    for from in &opts.cache_from {
        if let Err(e) = check(from, Direction::Import, Solver::Daemon) {
            bail!("--cache-from type={}: {e}", from.kind);
        }
        imports.extend(entry(from, "--cache-from"));
    }
    let mut exports = Vec::new();
    for to in &opts.cache_to {
        match check(to, Direction::Export, Solver::Daemon) {
            Ok(()) => exports.extend(entry(to, "--cache-to")),
            Err(e) if crate::remotecache::ignores_errors(to) => progress.warning(
                None,
                format!(
                    "--cache-to type={}: not exported (ignore-error=true): {e}",
                    to.kind
                ),
            ),
            Err(e) => bail!(
                "--cache-to type={}: {e}; add ignore-error=true to build without it",
                to.kind
            ),
        }
    }
    Ok((imports, exports))
}

/// Docker's BuildKit on Docker's own image store exports only inline caches (its controller
/// registers no other cache exporter); buildx's docker driver refuses the others before
/// the build, and so does bud, with buildx's way out. Only the exports still there once
/// the environment was read count (buildx checks after leaving out a gha cache with no
/// token).
fn refuse_cache_exports(exports: &[remote::CacheEntry], addr: &str) -> anyhow::Result<()> {
    if let Some(cache) = exports.iter().find(|c| c.kind != "inline") {
        bail!(
            "--cache-to type={}: the BuildKit of the Docker at {addr} exports only inline \
             caches (type=inline) on Docker's own image store, as buildx's docker driver \
             says: turn on the containerd image store, use a BuildKit daemon (buildkitd), \
             or build without --addr",
            cache.kind
        );
    }
    Ok(())
}

/// A daemon's refusal of a `RUN --device` CDI device: the way out, then the daemon's error.
#[derive(Debug, thiserror::Error)]
#[error("{hint}")]
struct DeviceRefused {
    hint: &'static str,
    #[source]
    source: remote::RemoteError,
}

/// The way out of a daemon's refusal of a `RUN --device` CDI device. BuildKit gives a
/// device its spec does not auto-allow only with the `device` entitlement, which the daemon
/// must permit: dockerd's BuildKit (Docker >= 28.2 reads /etc/cdi and /var/run/cdi)
/// permits only network.host and security.insecure, a buildkitd what its configuration
/// lists.
fn device_refusal_hint(e: &remote::RemoteError) -> Option<&'static str> {
    let remote::RemoteError::Build(failure) = e else {
        return None;
    };
    let message = &failure.message;
    let refused = message.contains("is requested by the build but not allowed")
        || message.contains("are requested by the build but not allowed")
        || message.contains("granting entitlement device is not allowed");
    refused.then_some(
        "a CDI device is given to a step when its spec auto-allows it (the annotation \
         org.mobyproject.buildkit.device.autoallow: \"true\") or, on a daemon that permits \
         the device entitlement (buildkitd --allow-insecure-entitlement device; dockerd \
         permits none), with --allow device",
    )
}

/// Every platform's graph and image config for one solve, converted together as the
/// embedded build converts them; the build checks and unused-argument warnings once.
async fn platforms_graph(
    opts: &BuildOptions,
    inputs: &BuildInputs,
    resolver: Arc<dyn bud_frontend::convert::ImageResolver + Send + Sync>,
    session: &str,
    platforms: &[Platform],
    progress: &crate::progress::ProgressSink,
) -> anyhow::Result<Graph> {
    let conversions = platforms.iter().enumerate().map(|(i, platform)| {
        let checks = (i == 0).then_some(progress);
        convert_for(
            opts,
            inputs,
            resolver.clone(),
            Some(session.to_owned()),
            Some(platform.clone()),
            checks,
        )
    });
    let converted = futures_util::future::try_join_all(conversions).await?;
    if let Some(first) = converted.first() {
        warn_unused_args(first, progress);
    }
    let mut graph = Graph::default();
    for (platform, c) in platforms.iter().zip(converted) {
        let mut oci = serde_json::json!({"os": platform.os, "architecture": platform.architecture});
        if !platform.variant.is_empty() {
            oci["variant"] = serde_json::json!(platform.variant);
        }
        graph.platforms.push(remote::PlatformGraph {
            id: platform.to_string(),
            platform: oci,
            definition: c.definition,
            image_config_json: serde_json::to_vec(&c.image)?,
        });
    }
    Ok(graph)
}

/// The frontend attributes buildx asks a daemon's attestations with (`attest:provenance`,
/// `attest:sbom`), each the attestation's own attributes as given.
fn attestation_attrs(asked: &crate::attest::Attestations) -> BTreeMap<String, String> {
    let mut attrs = BTreeMap::new();
    if let Some(provenance) = &asked.provenance {
        attrs.insert("attest:provenance".to_owned(), provenance.frontend_attr());
    }
    if let Some(sbom) = &asked.sbom {
        let fields: Vec<String> = sbom.iter().map(|(k, v)| format!("{k}={v}")).collect();
        attrs.insert("attest:sbom".to_owned(), fields.join(","));
    }
    attrs
}

/// The frontend the Dockerfile asks for, when it is not bud's own; otherwise the
/// Dockerfile's syntax and flags, checked before any daemon is involved.
fn check_syntax(
    inputs: &BuildInputs,
    opts: &BuildOptions,
) -> anyhow::Result<Option<bud_frontend::syntax::ForeignFrontend>> {
    let name = &inputs.dockerfile_name;
    let parsed = bud_frontend::parser::parse(&inputs.dockerfile)
        .map_err(|e| anyhow::anyhow!("{name}: {e}", e = crate::error_chain::error_chain(&e)))?;
    let build_args = super::dockerfile::build_arg_values(&opts.build_args);
    let syntax = bud_frontend::syntax::resolve(
        &parsed.directives,
        parsed.directives.syntax_line,
        &build_args,
    );
    if let bud_frontend::syntax::Syntax::Foreign(f) = syntax {
        return Ok(Some(f));
    }
    let file = bud_frontend::instructions::parse(&parsed)
        .map_err(|e| anyhow::anyhow!("{name}: {e}", e = crate::error_chain::error_chain(&e)))?;
    bud_frontend::convert::check_syntax(&parsed.directives, &file, &build_args)
        .map_err(|e| anyhow::anyhow!("{name}: {e}", e = crate::error_chain::error_chain(&e)))?;
    Ok(None)
}
