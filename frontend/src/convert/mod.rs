//! Dockerfile → LLB, as BuildKit's `dockerfile2llb` does it.
//!
//! [`convert`] parses the Dockerfile, evaluates global ARGs, builds the stage graph
//! (bases, `COPY --from`, `RUN --mount=from=`), resolves the base images of the stages
//! the target needs through an [`ImageResolver`], and dispatches their instructions
//! into an LLB graph and an image config. The aim is the same graph, byte for byte,
//! as BuildKit's own frontend for the same input, so that caches and digests agree.
//!
//! The build context is one `local://` source whose `local.followpaths` lists every
//! context path the build reads; that list is only known once every stage has been
//! dispatched, so dispatch runs twice: once to collect the paths, once to build.

mod args;
mod copy;
mod dispatch;
mod env;
pub mod epoch;
mod error;
mod gofmt;
mod image;
mod main_context;
mod named;
mod platform;
mod run;
mod stages;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bud_proto::pb;
use serde_json::Value;

use crate::llb::{self, Constraints, LocalOptions, SourceMap, State};
use crate::shell::Lexer;

pub use error::{ConvertError, ConvertErrorKind, LineError};
pub(crate) use image::DEFAULT_PATH;
pub use main_context::{HTTP_CONTEXT_FILE, MainContext, http_download};
pub use named::NamedContext;
pub use platform::Platform;

/// What a build asks of the conversion besides the Dockerfile.
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// Stage to build (case-insensitive); the last stage when `None`.
    pub target: Option<String>,
    /// `--build-arg`s.
    pub build_args: BTreeMap<String, String>,
    /// `--label`s, added to the result's config.
    pub labels: BTreeMap<String, String>,
    /// `--platform`; when `None` the build platform is the target, implicitly.
    pub target_platform: Option<Platform>,
    /// The platform the build runs on.
    pub build_platform: Platform,
    /// Name of the local source holding the build context.
    pub context_name: String,
    /// The Dockerfile's file name, as the source map and error excerpts name it
    /// (BuildKit's `filename`: the `-f` path's last element).
    pub dockerfile_name: String,
    /// Where the build context comes from: the local source above, a git repository or a
    /// URL.
    pub main_context: MainContext,
    /// `.dockerignore` patterns, sent as `local.excludepatterns`.
    pub excludes: Vec<String>,
    /// Session the context is read through (`local.session`).
    pub session_id: Option<String>,
    /// `--no-cache` / `--no-cache-filter`.
    pub no_cache: NoCache,
    /// Prefix of cache mount IDs.
    pub cache_id_namespace: String,
    /// LLB features the solver supports, where the conversion depends on them.
    pub caps: SolverCaps,
    /// `--build-context`s by name; they take the place of stages and images so named.
    pub named_contexts: BTreeMap<String, NamedContext>,
    /// `--ulimit`s, set on every RUN.
    pub ulimits: Vec<pb::Ulimit>,
    /// `--shm-size` in bytes: the size of /dev/shm in every RUN.
    pub shm_size: Option<i64>,
    /// `--add-host` entries, on every RUN step as BuildKit's frontend puts them.
    pub extra_hosts: Vec<pb::HostIp>,
    /// One of several platforms is converted: step names start with the platform, as
    /// BuildKit's do then (`[linux/arm64 2/3] RUN …`).
    pub multi_platform: bool,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            target: None,
            build_args: BTreeMap::new(),
            labels: BTreeMap::new(),
            target_platform: None,
            build_platform: Platform::host(),
            context_name: "context".to_owned(),
            dockerfile_name: "Dockerfile".to_owned(),
            main_context: MainContext::Local,
            excludes: Vec::new(),
            session_id: None,
            no_cache: NoCache::None,
            cache_id_namespace: String::new(),
            caps: SolverCaps::default(),
            named_contexts: BTreeMap::new(),
            ulimits: Vec::new(),
            shm_size: None,
            extra_hosts: Vec::new(),
            multi_platform: false,
        }
    }
}

/// Which stages ignore the cache.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum NoCache {
    /// Every stage may use the cache.
    #[default]
    None,
    /// `--no-cache`: no step of any stage does.
    All,
    /// These stage names (case-insensitive).
    Stages(Vec<String>),
}

impl NoCache {
    fn applies_to(&self, stage: Option<&str>) -> bool {
        match self {
            NoCache::None => false,
            NoCache::All => true,
            NoCache::Stages(names) => {
                stage.is_some_and(|s| names.iter().any(|n| n.eq_ignore_ascii_case(s)))
            }
        }
    }
}

/// Capabilities BuildKit's frontend checks before using a feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SolverCaps {
    /// `mergeop`: `COPY --link` becomes a copy onto scratch merged onto the stage.
    pub merge_op: bool,
    /// `exec.mount.bind.readwrite-nooutput`: writable bind mounts produce no output.
    pub bind_read_write_no_output: bool,
    /// `exec.mount.tmpfs.size`: tmpfs mounts with a size (`--shm-size`).
    pub tmpfs_size: bool,
}

impl Default for SolverCaps {
    fn default() -> Self {
        SolverCaps {
            merge_op: true,
            bind_read_write_no_output: true,
            tmpfs_size: true,
        }
    }
}

/// A base image as the registry describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedImage {
    /// Manifest digest (`sha256:…`) the build pins the image to.
    pub digest: String,
    /// The image config JSON.
    pub config: Value,
}

/// Why an [`ImageResolver`] found no image: the implementer's own error, kept whole (not
/// flattened to text) so that the printer shows each of its causes once.
pub type ResolveError = Box<dyn std::error::Error + Send + Sync>;

/// Looks up base images: the frontend does no I/O, so the caller does (bud's `build/images`
/// from Docker or a registry, or `remote/images` through the daemon's ResolveImageConfig).
pub trait ImageResolver {
    /// `reference` is normalised (`docker.io/library/busybox:latest`).
    fn resolve(&self, reference: &str, platform: &Platform) -> Result<ResolvedImage, ResolveError>;

    /// The image `digest` names in the OCI layout directory `layout` of the client, for
    /// `platform` when `digest` is an index.
    fn resolve_oci_layout(
        &self,
        layout: &str,
        digest: &str,
        platform: &Platform,
    ) -> Result<ResolvedImage, ResolveError> {
        let _ = (digest, platform);
        Err(format!("cannot read the OCI layout {layout} here").into())
    }
}

/// The result of a conversion.
#[derive(Debug, Clone)]
pub struct Converted {
    /// The LLB to solve. Empty when the target is scratch with no files.
    pub definition: pb::Definition,
    /// The result's image config (`architecture`, `os`, `config`, `rootfs`, `history`, …).
    pub image: Value,
    /// Name of the built stage (`stage-N` for unnamed ones).
    pub target: String,
    /// Build args that no ARG consumed (docker warns about them).
    pub unused_build_args: Vec<String>,
}

/// Converts `dockerfile` into LLB and an image config.
pub fn convert(
    dockerfile: &str,
    opts: &ConvertOptions,
    resolver: &dyn ImageResolver,
) -> Result<Converted, ConvertError> {
    let parsed = crate::parser::parse(dockerfile)?;
    let file = crate::instructions::parse(&parsed)?;
    if file.stages.is_empty() {
        return Err(ConvertError::NoStages);
    }
    check_syntax(&parsed.directives, &file, &opts.build_args)?;
    let epoch = epoch::from_build_args(&opts.build_args)?;
    let lexer = Lexer::new(parsed.directives.escape);
    let platforms = args::Platforms::new(opts);
    let target_name = opts
        .target
        .clone()
        .or_else(|| file.stages.last().and_then(|s| s.name.clone()));
    let defaults = args::default_args(&platforms, &opts.build_args, target_name.as_deref());
    let meta = args::meta_args(defaults, &lexer, &file.meta_args, &opts.build_args)?;

    let source_map = Arc::new(dockerfile_source_map(dockerfile, opts));
    let mut graph = stages::Graph::build(&file, &meta.env, &lexer, opts, &source_map)?;
    let target = graph.target(opts.target.as_deref())?;
    graph.check_cycles()?;
    let reachable = graph.resolve(target, resolver, &platforms, &lexer, opts)?;

    let ctx = dispatch::Context {
        opts,
        lexer: &lexer,
        global_args: &meta.env,
        proxy_env: args::proxy_env(&opts.build_args),
        source_map: &source_map,
    };
    // First pass: learn which context paths are read.
    let first = dispatch::dispatch_all(&graph, &reachable, &ctx, &State::scratch())?;
    let context = match opts
        .main_context
        .state()
        .map_err(ConvertError::MainContext)?
    {
        Some(remote) => remote,
        None => main_context(opts, &first.context_paths),
    };
    graph.narrow_named_locals(target, &first.copied_from, opts);
    let mut result = dispatch::dispatch_all(&graph, &reachable, &ctx, &context)?;

    let mut stage = result.take(target);
    if !opts.labels.is_empty() {
        stage
            .image
            .add_labels(opts.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    }
    if let Some(tp) = &opts.target_platform {
        stage.image.set_top("os", Value::from(tp.os.clone()));
        stage
            .image
            .set_top("architecture", Value::from(tp.architecture.clone()));
        // The target's variant, as normalised: an arm64 base's `v8` goes, as in BuildKit.
        if tp.variant.is_empty() {
            stage.image.remove_top("variant");
        } else {
            stage
                .image
                .set_top("variant", Value::from(tp.variant.clone()));
        }
    }

    if let Some(secs) = epoch {
        stage.image.stamp_created(&epoch::rfc3339(secs));
    }

    let mut consumed: BTreeSet<String> = meta.declared.clone();
    consumed.extend(result.declared_args.iter().cloned());
    let unused_build_args = opts
        .build_args
        .keys()
        .filter(|k| !consumed.contains(*k) && !args::is_builtin(k))
        .cloned()
        .collect();

    Ok(Converted {
        definition: stage.state.marshal(),
        image: stage.image.into_json(),
        target: graph.stages[target].display_name(),
        unused_build_args,
    })
}

/// The frontend the Dockerfile asks for is bud's own, and its flags are the ones that
/// frontend has: labs flags need a labs syntax, as in BuildKit.
pub fn check_syntax(
    directives: &crate::parser::Directives,
    file: &crate::instructions::Dockerfile,
    build_args: &BTreeMap<String, String>,
) -> Result<(), ConvertError> {
    use crate::instructions::CommandKind;
    let labs = match crate::syntax::resolve(directives, directives.syntax_line, build_args) {
        crate::syntax::Syntax::Foreign(f) => return Err(ConvertError::ForeignFrontend(f)),
        crate::syntax::Syntax::Own { labs } => labs,
    };
    for command in file.stages.iter().flat_map(|s| &s.commands) {
        let line = command.location.start_line;
        let given = match &command.kind {
            CommandKind::Run(run) => &run.labs_flags,
            CommandKind::Copy(copy) => &copy.labs_flags,
            _ => continue,
        };
        for &flag in given {
            let kind = match (flag, labs) {
                ("device", false) => ConvertErrorKind::DeviceNeedsLabs,
                (flag, false) => ConvertErrorKind::LabsFlag(flag),
                (_, true) => continue,
            };
            return Err(kind.at(line));
        }
    }
    Ok(())
}

/// The Dockerfile as the source of the ops' locations, as BuildKit's frontend makes it: its
/// name, its bytes, and the `local://dockerfile` source it is read from.
fn dockerfile_source_map(dockerfile: &str, opts: &ConvertOptions) -> SourceMap {
    let map = SourceMap::new(
        &opts.dockerfile_name,
        "Dockerfile",
        dockerfile.as_bytes().to_vec(),
    );
    if opts.main_context != MainContext::Local {
        return map;
    }
    let loaded_from = llb::local(
        "dockerfile",
        LocalOptions {
            session_id: opts.session_id.clone(),
            follow_paths: vec![opts.dockerfile_name.clone()],
            shared_key_hint: Some("dockerfile".to_owned()),
            constraints: Constraints::default().with_custom_name(format!(
                "[internal] load build definition from {}",
                opts.dockerfile_name
            )),
            ..Default::default()
        },
    );
    map.with_definition(loaded_from.marshal())
}

/// The `local://context` source, as BuildKit's `dockerui` client builds it.
fn main_context(opts: &ConvertOptions, paths: &BTreeSet<String>) -> State {
    llb::local(
        &opts.context_name,
        LocalOptions {
            session_id: opts.session_id.clone(),
            exclude_patterns: opts.excludes.clone(),
            follow_paths: follow_paths(paths),
            shared_key_hint: Some(opts.context_name.clone()),
            constraints: Constraints::default().with_custom_name("[internal] load build context"),
            ..Default::default()
        },
    )
}

/// `local.followpaths` for the paths a build reads from a local source.
fn follow_paths(paths: &BTreeSet<String>) -> Vec<String> {
    // A build that reads "/" reads everything: no filter.
    if paths.contains("/") {
        return Vec::new();
    }
    paths
        .iter()
        .map(|p| p.trim_start_matches('/').to_owned())
        .map(|p| if p.is_empty() { ".".to_owned() } else { p })
        .collect()
}
