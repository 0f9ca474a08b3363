//! `bud debug dump-llb`: the LLB a Dockerfile converts to, as JSON lines (like
//! `buildctl debug dump-llb`), a Graphviz graph, or the binary `pb.Definition`.

use std::io::Write;
use std::sync::Arc;

use bud_frontend::convert::ConvertOptions;
use prost::Message;

use crate::cli::{DumpFormat, DumpLlbOptions, GlobalOptions};
use crate::content::ContentStore;
use crate::registry::RegistryConfig;
use crate::source::image::ImageSource;
use crate::state::StateRoot;

use super::images::BuildImages;
use super::inputs::BuildInputs;

/// `bud debug dump-llb`: converts the Dockerfile of a local context (base images resolved
/// as a build resolves them, through the state root's store) and prints the Definition in
/// the format asked for.
pub async fn run(opts: &DumpLlbOptions, global: &GlobalOptions) -> anyhow::Result<()> {
    let context = opts.context.to_string_lossy();
    let inputs = BuildInputs::read(&context, opts.file.as_deref())?;
    if let Some(remote) = &inputs.remote {
        anyhow::bail!(
            "{}: dump-llb reads a local context only (a remote one is fetched by the build)",
            remote.url()
        );
    }
    let root = match &global.root {
        Some(r) => r.clone(),
        None => StateRoot::default_path()?,
    };
    let state = StateRoot::open(&root)?;
    let content = ContentStore::new(state.content_dir())?;
    let images = Arc::new(BuildImages::new(
        ImageSource::new(
            content,
            RegistryConfig::default(),
            crate::docker_host::probe().await.ok(),
        ),
        false,
    ));
    let convert_opts = ConvertOptions {
        target: opts.target.clone(),
        build_args: super::dockerfile::build_arg_values(&opts.build_args),
        excludes: inputs.excludes.clone(),
        dockerfile_name: inputs.dockerfile_file_name().to_owned(),
        ..ConvertOptions::default()
    };
    let converted = super::dockerfile::convert_with(&inputs, convert_opts, images).await?;
    let def = &converted.definition;
    let format = if opts.dot {
        DumpFormat::Dot
    } else {
        opts.format
    };
    let mut out = std::io::stdout().lock();
    match format {
        DumpFormat::Json => out.write_all(bud_frontend::dump::to_json_lines(def)?.as_bytes())?,
        DumpFormat::Dot => out.write_all(bud_frontend::dump::to_dot(def)?.as_bytes())?,
        DumpFormat::Pb => out.write_all(&def.encode_to_vec())?,
    }
    out.flush()?;
    Ok(())
}
