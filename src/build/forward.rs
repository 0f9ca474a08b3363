//! A Dockerfile whose `# syntax=` (or `BUILDKIT_SYNTAX`) names another frontend image,
//! handed to a BuildKit daemon as buildx hands it: the `gateway.v0` frontend with the image
//! as `source`, and the build's options as the Dockerfile frontend's attributes, which the
//! gateway passes on to the image.

use std::collections::BTreeMap;

use anyhow::bail;
use bud_frontend::syntax::ForeignFrontend;

use crate::cli::BuildOptions;

/// The `gateway.v0` attributes for `frontend`; an option no attribute carries is refused.
pub(super) fn frontend_attrs(
    frontend: &ForeignFrontend,
    opts: &BuildOptions,
) -> anyhow::Result<BTreeMap<String, String>> {
    if !opts.build_contexts.is_empty() {
        bail!(
            "--build-context with the frontend image {}: not passed to it yet",
            frontend.image
        );
    }
    let mut attrs = dockerfile_attrs(opts);
    attrs.insert("source".to_owned(), frontend.image.clone());
    attrs.insert("cmdline".to_owned(), frontend.cmdline.clone());
    if !opts.platforms.is_empty() {
        attrs.insert("platform".to_owned(), opts.platforms.join(","));
    }
    Ok(attrs)
}

/// The Dockerfile frontend's attributes for the build's options, as buildx sets them.
pub(super) fn dockerfile_attrs(opts: &BuildOptions) -> BTreeMap<String, String> {
    let mut attrs = BTreeMap::new();
    let filename = match opts.file.as_deref() {
        Some(f) if f != "-" => std::path::Path::new(f)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "Dockerfile".to_owned()),
        _ => "Dockerfile".to_owned(),
    };
    attrs.insert("filename".to_owned(), filename);
    if let Some(target) = &opts.target {
        attrs.insert("target".to_owned(), target.clone());
    }
    for (k, v) in super::dockerfile::build_arg_values(&opts.build_args) {
        attrs.insert(format!("build-arg:{k}"), v);
    }
    for label in &opts.labels {
        attrs.insert(format!("label:{}", label.key), label.value.clone());
    }
    if opts.no_cache {
        attrs.insert("no-cache".to_owned(), String::new());
    } else if !opts.no_cache_filter.is_empty() {
        attrs.insert("no-cache".to_owned(), opts.no_cache_filter.join(","));
    }
    if !opts.add_hosts.is_empty() {
        let hosts: Vec<String> = opts
            .add_hosts
            .iter()
            .map(|h| format!("{}={}", h.host, h.ip))
            .collect();
        attrs.insert("add-hosts".to_owned(), hosts.join(","));
    }
    if matches!(opts.network.as_str(), "none" | "host") {
        attrs.insert("force-network-mode".to_owned(), opts.network.clone());
    }
    if let Some(size) = opts.shm_size {
        attrs.insert("shm-size".to_owned(), size.to_string());
    }
    if !opts.ulimits.is_empty() {
        let limits: Vec<String> = opts
            .ulimits
            .iter()
            .map(|u| format!("{}={}:{}", u.name, u.soft, u.hard))
            .collect();
        attrs.insert("ulimit".to_owned(), limits.join(","));
    }
    attrs
}
