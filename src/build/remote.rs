//! `bud --addr …`: the same LLB, solved by a BuildKit daemon (the one inside dockerd, or a
//! buildkitd) with its own exporters.

use std::sync::Arc;

use anyhow::bail;
use bud_frontend::convert::NamedContext;
use tokio_util::sync::CancellationToken;

use crate::cli::BuildOptions;
use crate::progress::ProgressSink;
use crate::remote::{self, Exporter, RemoteSolver, SolveRequest, TlsOptions};

use super::contexts::NamedContexts;
use super::images::BuildImages;
use super::inputs::BuildInputs;
use super::outputs::{Dest, Export};
use super::{BuildReport, convert_dockerfile};

#[allow(clippy::too_many_arguments)]
pub(super) async fn build(
    addr: &str,
    tls: &TlsOptions,
    opts: &BuildOptions,
    inputs: &BuildInputs,
    images: Arc<BuildImages>,
    progress: &ProgressSink,
    exports: &[Export],
    cancel: CancellationToken,
) -> anyhow::Result<BuildReport> {
    let exporter = match exports {
        [] => bail!("with --addr, give one output (-t, --load, -o type=local or type=tar)"),
        [one] => exporter_for(one)?,
        _ => bail!("with --addr, only one output per build is supported yet"),
    };
    let ssh_agents = super::ssh_agents(opts)?.into_iter().collect();
    let session_id = remote::new_session_id();
    let converted =
        convert_dockerfile(opts, inputs, images, Some(session_id.clone()), progress).await?;
    let solver = RemoteSolver::connect_with(addr, tls).await?;
    let dockerfile_dir = match opts.file.as_deref() {
        Some(f) if f != "-" => std::path::Path::new(f)
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_default(),
        _ => inputs.context_dir.clone(),
    };
    let mut req = SolveRequest::new(converted.definition, exporter.clone());
    req.session_id = session_id;
    req.image_config_json = Some(serde_json::to_vec(&converted.image)?);
    req.local_dirs = SolveRequest::context_dirs(
        &inputs.context_dir,
        &dockerfile_dir,
        inputs.excludes.clone(),
    );
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
    req.secrets = opts.secrets.clone();
    req.ssh_agents = ssh_agents;
    req.progress = progress.clone();
    req.cancel = cancel;
    let result = solver.solve(req).await?;
    let mut report = BuildReport {
        image_id: result.image_id,
        config_digest: result
            .exporter_response
            .get("containerimage.config.digest")
            .cloned(),
        manifest_digest: result
            .exporter_response
            .get("containerimage.digest")
            .cloned(),
        names: Vec::new(),
    };
    if let Exporter::Moby { names } = exporter {
        report.names = names;
    }
    Ok(report)
}

fn exporter_for(e: &Export) -> anyhow::Result<Exporter> {
    Ok(match e {
        Export::DockerLoad { names } => Exporter::Moby {
            names: names.clone(),
        },
        Export::Local { dest } => Exporter::Local { dest: dest.clone() },
        Export::Tar {
            dest: Dest::File(dest),
        } => Exporter::Tar { dest: dest.clone() },
        other => bail!("with --addr, this output is not supported yet: {other:?}"),
    })
}
