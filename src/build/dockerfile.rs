//! The Dockerfile through bud's frontend: the flags that shape the conversion
//! (`--build-arg`, `--target`, `--platform`, labels, ulimits, ...) and the conversion itself,
//! run off the async threads.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use bud_frontend::convert::epoch::SOURCE_DATE_EPOCH;
use bud_frontend::convert::{self, ConvertOptions, NoCache, SolverCaps};
use bud_frontend::lint::{self, LintOptions};
use sha2::{Digest as _, Sha256};

use crate::cli::BuildOptions;
use crate::progress::{Event, ProgressSink, WarningInfo, WarningSource};

use super::contexts::NamedContexts;
use super::inputs::BuildInputs;

/// The Dockerfile as LLB and an image config; `session_id` names the session that serves
/// the local sources (remote builds).
pub(super) async fn convert_dockerfile(
    opts: &BuildOptions,
    inputs: &BuildInputs,
    images: Arc<dyn convert::ImageResolver + Send + Sync>,
    session_id: Option<String>,
    progress: &ProgressSink,
) -> anyhow::Result<convert::Converted> {
    let platform = target_platform(opts)?;
    let converted = convert_for(opts, inputs, images, session_id, platform, Some(progress)).await?;
    warn_unused_args(&converted, progress);
    Ok(converted)
}

/// The `--build-arg`s no stage consumed, as docker build warns of them.
pub(super) fn warn_unused_args(converted: &convert::Converted, progress: &ProgressSink) {
    for arg in &converted.unused_build_args {
        progress.warning(
            None,
            format!("one or more build-args [{arg}] were not consumed"),
        );
    }
}

/// The Dockerfile as LLB and an image config for `platform` (the host's when `None`), the
/// build checks run first when `checks` says where they report (once per build).
pub(super) async fn convert_for(
    opts: &BuildOptions,
    inputs: &BuildInputs,
    images: Arc<dyn convert::ImageResolver + Send + Sync>,
    session_id: Option<String>,
    platform: Option<convert::Platform>,
    checks: Option<&ProgressSink>,
) -> anyhow::Result<convert::Converted> {
    let mut convert_opts = convert_options(opts, inputs)?;
    convert_opts.multi_platform = target_platforms(opts)?.len() > 1;
    convert_opts.target_platform = platform;
    // Docker 20.10's BuildKit has no MergeOp: on a daemon, `COPY --link` falls back to a
    // plain copy, as BuildKit's own frontend does there.
    convert_opts.caps.merge_op = session_id.is_none();
    convert_opts.session_id = session_id;
    let convert_opts = match checks {
        Some(progress) => check_dockerfile(inputs, convert_opts, images.clone(), progress).await?,
        None => convert_opts,
    };
    convert_with(inputs, convert_opts, images).await
}

/// The build checks BuildKit runs on every build (the target's stages only): each finding a
/// warning of an `[internal] load build definition` step, as BuildKit reports them; with
/// `# check=error=true`, findings fail the build with BuildKit's error.
async fn check_dockerfile(
    inputs: &BuildInputs,
    convert_opts: ConvertOptions,
    images: Arc<dyn convert::ImageResolver + Send + Sync>,
    progress: &ProgressSink,
) -> anyhow::Result<ConvertOptions> {
    let dockerfile = inputs.dockerfile.clone();
    let (convert_opts, report) = tokio::task::spawn_blocking(move || {
        let lint_opts = LintOptions {
            convert: &convert_opts,
            all_stages: false,
        };
        let report = lint::lint(&dockerfile, &lint_opts, images.as_ref());
        (convert_opts, report)
    })
    .await
    .context("checking the Dockerfile")?;
    let report = report.map_err(|e| {
        anyhow::anyhow!(
            "{}: {e}",
            inputs.dockerfile_name,
            e = crate::error_chain::error_chain(&e)
        )
    })?;
    if report.findings.is_empty() {
        return Ok(convert_opts);
    }
    let file = inputs.dockerfile_file_name();
    let name = format!("[internal] load build definition from {file}");
    let vertex = format!(
        "sha256:{}",
        hex::encode(Sha256::digest(format!("{name}\n{}", inputs.dockerfile)))
    );
    progress.started(&vertex, &name);
    let data: Arc<str> = inputs.dockerfile.as_str().into();
    let filename = file.to_string();
    for f in &report.findings {
        let info = WarningInfo {
            detail: vec![f.rule.description.to_string()],
            url: f.rule.url.to_string(),
            source: Some(WarningSource {
                filename: filename.clone(),
                data: data.clone(),
                lines: vec![(f.start_line, f.end_line)],
            }),
        };
        progress.emit(Event::Warning {
            vertex: Some(vertex.clone()),
            message: f.short(),
            info: Some(Arc::new(info)),
        });
    }
    progress.completed(&vertex, None);
    if let Some(error) = report.error() {
        bail!("failed to solve: {error}");
    }
    Ok(convert_opts)
}

/// Runs the frontend off the async threads (it resolves base images synchronously).
pub(super) async fn convert_with(
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
    .map_err(|e| {
        anyhow::anyhow!(
            "{}: {e}",
            inputs.dockerfile_name,
            e = crate::error_chain::error_chain(&e)
        )
    })
}

/// `--build-arg` values; bare keys the environment does not set are dropped, as docker does.
/// `SOURCE_DATE_EPOCH` in the environment is a build arg unless one is given, as buildx
/// makes it.
pub(super) fn build_arg_values(args: &[crate::cli::BuildArg]) -> BTreeMap<String, String> {
    let mut values: BTreeMap<String, String> = args
        .iter()
        .filter_map(|a| a.value.clone().map(|v| (a.key.clone(), v)))
        .collect();
    if let Ok(epoch) = std::env::var(SOURCE_DATE_EPOCH) {
        values.entry(SOURCE_DATE_EPOCH.to_owned()).or_insert(epoch);
    }
    values
}

/// SOURCE_DATE_EPOCH, from `--build-arg` or the environment, in seconds.
pub(super) fn source_date_epoch(opts: &BuildOptions) -> anyhow::Result<Option<i64>> {
    Ok(convert::epoch::from_build_args(&build_arg_values(
        &opts.build_args,
    ))?)
}

/// `--platform`'s platforms, normalised as containerd normalises them, each once.
pub(super) fn target_platforms(opts: &BuildOptions) -> anyhow::Result<Vec<convert::Platform>> {
    let mut platforms: Vec<convert::Platform> = Vec::new();
    for requested in &opts.platforms {
        let platform = convert::Platform::parse(requested.trim())
            .map_err(|e| anyhow::anyhow!("--platform {requested}: {e}"))?;
        if !platforms.contains(&platform) {
            platforms.push(platform);
        }
    }
    Ok(platforms)
}

/// The one platform a single-platform conversion is for, if `--platform` names one.
fn target_platform(opts: &BuildOptions) -> anyhow::Result<Option<convert::Platform>> {
    let platforms = target_platforms(opts)?;
    if platforms.len() > 1 {
        bail!("internal error: one conversion for several platforms");
    }
    Ok(platforms.into_iter().next())
}

pub(super) fn convert_options(
    opts: &BuildOptions,
    inputs: &BuildInputs,
) -> anyhow::Result<ConvertOptions> {
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
        extra_hosts: opts
            .add_hosts
            .iter()
            .map(|h| bud_proto::pb::HostIp {
                host: h.host.clone(),
                ip: h.ip.clone(),
            })
            .collect(),
        build_args,
        labels,
        excludes: inputs.excludes.clone(),
        main_context: inputs.main_context.clone(),
        dockerfile_name: inputs.dockerfile_file_name().to_owned(),
        no_cache,
        caps: SolverCaps {
            merge_op: true,
            bind_read_write_no_output: true,
            tmpfs_size: true,
        },
        ..ConvertOptions::default()
    })
}
