//! Build caches that travel (`--cache-to`, `--cache-from`) for the embedded solver, in
//! BuildKit's format: a cache config (`config`) whose layers are blobs, in an image index or
//! an image manifest as BuildKit writes them (`export`), in a local OCI layout (`local`) or
//! a registry (`registry`), and read back lazily (`import`): a layer is brought in only when
//! a step hits a record whose result needs it.
//!
//! A record's digest is the digest of bud's own cache key for the op output (`key@index`):
//! op bytes without proxy variables, input keys, the content checksums of what the op reads
//! from the context, image chain IDs. It names nothing of the machine, so a cache made on
//! one machine hits on another.
//!
//! Interop with BuildKit is at the level of the format: BuildKit (dockerd 20.10's v0.8 and
//! Docker 28.5's) imports bud's manifests, index or image manifest, with or without cache
//! mount blobs, and bud imports BuildKit's (registry, local, inline, image indexes). Neither
//! hits the other's records, because the record digests are different functions:
//! - BuildKit's record digest is `digest("<op digest>@<output>")` of one op alone, its
//!   inputs being links; bud's covers the whole key (inputs included), links written only
//!   for the shape.
//! - BuildKit's op digest is the digest of the Go `encoding/json` of its own structures
//!   (`{"Type":"buildkit.exec.v0","Exec":<pb.ExecOp with selectors, extra-host IPs and proxy
//!   env cleared>,"OS":…,"Arch":…}`, `buildkit.file.v0` with per-action JSON), whose field
//!   set changed between v0.8 and v0.2x; bud's hashes the op's protobuf bytes.
//! - Sources: BuildKit keys an image by `buildkit.source.v0:<chain ID or config digest>` and
//!   a context by a record of its source attributes plus, on each op reading it, a link whose
//!   selector is the digest of the path and whose record is BuildKit's `contenthash` of it
//!   (a tree checksum of tar-like headers and content); bud's context checksum is its own.
//!
//! Reproducing those three exactly, per BuildKit version, is what reading BuildKit's records
//! would take.

pub mod attrs;
mod aws_profile;
pub mod config;
pub mod credentials;
pub mod export;
pub mod import;
pub mod inline;
pub mod local;
pub mod registry;
mod unpack;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use futures_util::future::{BoxFuture, FutureExt as _};

use crate::cli::CacheOption;
use crate::content::{ContentStore, Digest};
use crate::progress::ProgressSink;
use crate::registry::{LayerCompression, RegistryConfig};
use crate::solver::{CacheImport, Ref, Snapshots, SolvedVertex};

pub use export::{Mode, Shape};
use import::ImportedCache;

/// The digest a cache record of output `index` of the op keyed `key` is found under.
pub fn record_digest(key: &str, index: usize) -> Digest {
    Digest::of(format!("{key}@{index}").as_bytes())
}

/// Where a cache goes or comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `type=local`: an OCI layout directory.
    Local {
        /// The directory.
        dir: PathBuf,
        /// The `index.json` tag (`latest` unless `tag=` says otherwise).
        tag: String,
        /// `--cache-from type=local,digest=…`: this manifest rather than the tag's.
        digest: Option<String>,
    },
    /// `type=registry`: a manifest in a registry.
    Registry {
        /// `ref=`.
        reference: String,
        /// `registry.insecure=true`: plain HTTP to this registry.
        insecure: bool,
    },
    /// `type=inline`: the records go in the built image's config.
    Inline,
}

/// One `--cache-to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSpec {
    /// Where it goes.
    pub location: Location,
    /// Which results go.
    pub mode: Mode,
    /// How the manifest and its layers are written.
    pub shape: Shape,
    /// `ignore-error=true`: a failed export is a warning, not a failed build.
    pub ignore_error: bool,
    /// bud's extension: the contents of cache mounts travel too.
    pub cache_mounts: bool,
}

/// Why a solver cannot use a `--cache-to` or `--cache-from` as given.
#[derive(Debug, thiserror::Error)]
pub enum CacheOptionError {
    /// An attribute the solver would not honour for the type (`attrs`).
    #[error("{key}: not supported for type={kind} by {solver} (it takes {takes})")]
    Attribute {
        /// The attribute.
        key: String,
        /// The cache type.
        kind: String,
        /// The solver.
        solver: attrs::Solver,
        /// The attributes the solver honours for the type, comma-separated.
        takes: String,
    },
    /// bud's own extension (`cache-mounts=true`) asked of a BuildKit daemon.
    #[error(
        "{key}={value}: bud's own extension, which a BuildKit daemon cannot do: build without --addr to use it"
    )]
    Extension {
        /// The attribute.
        key: String,
        /// Its value.
        value: String,
    },
    /// A boolean attribute with another value.
    #[error("{name}={value}: not a boolean")]
    NotBoolean {
        /// The attribute.
        name: String,
        /// Its value.
        value: String,
    },
    /// `type=local` without its directory attribute (`dest` or `src`).
    #[error("type=local needs {0}=DIRECTORY")]
    NoDirectory(&'static str),
    /// `type=registry` without `ref`.
    #[error("type=registry needs ref=REFERENCE")]
    NoReference,
    /// A cache type only a BuildKit daemon has (gha, s3, azblob).
    #[error(
        "type={0} is not supported by the embedded solver (a BuildKit daemon, with --addr, has it)"
    )]
    Type(String),
    /// `mode=max` for an inline cache.
    #[error("mode=max: an inline cache holds the image's own steps only (min), as with BuildKit")]
    InlineMax,
    /// A `mode` other than `min` or `max`.
    #[error("mode={0}: not min or max")]
    Mode(String),
    /// A layer compression other than gzip or zstd.
    #[error("compression={0}: the embedded solver writes gzip or zstd")]
    Compression(String),
    /// The compression attributes' own message (the parser shared with image outputs).
    #[error("{0}")]
    CompressionAttrs(String),
    /// `image-manifest=true` with `oci-mediatypes=false`.
    #[error("image-manifest=true needs oci-mediatypes=true")]
    ImageManifestNeedsOci,
}

/// Checks a `--cache-from` before the build: an attribute the embedded solver would not
/// honour is an error, whereas a cache that cannot be read only warns (as with BuildKit).
pub fn check_import(opt: &CacheOption) -> Result<(), CacheOptionError> {
    attrs::check(opt, attrs::Direction::Import, attrs::Solver::Embedded)
}

/// A boolean attribute as Go's `strconv.ParseBool` reads it, which BuildKit uses.
fn parse_bool(name: &str, value: &str) -> Result<bool, CacheOptionError> {
    bud_frontend::gobool::parse_go_bool(value).ok_or_else(|| CacheOptionError::NotBoolean {
        name: name.to_owned(),
        value: value.to_owned(),
    })
}

fn bool_attr(opt: &CacheOption, name: &str) -> Result<Option<bool>, CacheOptionError> {
    opt.attrs.get(name).map(|v| parse_bool(name, v)).transpose()
}

/// Whether a `--cache-to` says `ignore-error=true`: one a solver cannot use is then left out
/// with a warning rather than failing the build.
pub fn ignores_errors(opt: &CacheOption) -> bool {
    matches!(bool_attr(opt, "ignore-error"), Ok(Some(true)))
}

fn location(opt: &CacheOption, dir_attr: &'static str) -> Result<Location, CacheOptionError> {
    match opt.kind.as_str() {
        "local" => {
            let dir = opt
                .attrs
                .get(dir_attr)
                .filter(|d| !d.is_empty())
                .ok_or(CacheOptionError::NoDirectory(dir_attr))?;
            Ok(Location::Local {
                dir: PathBuf::from(dir),
                tag: opt
                    .attrs
                    .get("tag")
                    .cloned()
                    .unwrap_or_else(|| "latest".into()),
                digest: opt.attrs.get("digest").cloned(),
            })
        }
        "registry" => Ok(Location::Registry {
            reference: opt
                .attrs
                .get("ref")
                .filter(|r| !r.is_empty())
                .cloned()
                .ok_or(CacheOptionError::NoReference)?,
            insecure: bool_attr(opt, "registry.insecure")?.unwrap_or(false),
        }),
        "inline" => Ok(Location::Inline),
        other => Err(CacheOptionError::Type(other.to_owned())),
    }
}

impl ExportSpec {
    /// Reads a `--cache-to` as BuildKit reads its attributes (defaults of BuildKit 0.21+,
    /// which Docker 28 carries: OCI media types and an image manifest).
    pub fn parse(opt: &CacheOption) -> Result<ExportSpec, CacheOptionError> {
        let location = location(opt, "dest")?;
        attrs::check(opt, attrs::Direction::Export, attrs::Solver::Embedded)?;
        let mode = match opt.attrs.get("mode").map(String::as_str) {
            Some("max") => Mode::Max,
            // Any other value is refused by `attrs::check`.
            _ => Mode::Min,
        };
        let compression = match opt.attrs.get("compression").map(String::as_str) {
            None | Some("gzip" | "zstd") => LayerCompression::from_attrs(&opt.attrs)
                .map_err(CacheOptionError::CompressionAttrs)?
                .unwrap_or_default(),
            Some(other) => {
                return Err(CacheOptionError::Compression(other.to_owned()));
            }
        };
        let oci = bool_attr(opt, "oci-mediatypes")?.unwrap_or(true);
        let image_manifest = bool_attr(opt, "image-manifest")?.unwrap_or(oci);
        if image_manifest && !oci {
            return Err(CacheOptionError::ImageManifestNeedsOci);
        }
        Ok(ExportSpec {
            location,
            mode,
            shape: Shape {
                compression,
                oci,
                image_manifest,
            },
            ignore_error: bool_attr(opt, "ignore-error")?.unwrap_or(false),
            cache_mounts: bool_attr(opt, "cache-mounts")?.unwrap_or(false),
        })
    }

    /// Where it goes, for progress and errors: the directory, the reference, or the image.
    pub fn describe(&self) -> String {
        describe(&self.location)
    }

    /// The step's name, as BuildKit names its exporters.
    pub fn step_name(&self) -> &'static str {
        match self.location {
            Location::Local { .. } => "exporting cache to client directory",
            Location::Registry { .. } => "exporting cache to registry",
            Location::Inline => "exporting inline cache",
        }
    }
}

fn describe(location: &Location) -> String {
    match location {
        Location::Local { dir, .. } => dir.display().to_string(),
        Location::Registry { reference, .. } => reference.clone(),
        Location::Inline => "the image (inline)".into(),
    }
}

/// One `--cache-from`.
pub fn import_location(opt: &CacheOption) -> Result<Location, CacheOptionError> {
    location(opt, "src")
}

/// The caches of every `--cache-from`, tried in order.
pub struct Imports(Vec<ImportedCache>);

impl CacheImport for Imports {
    fn lookup(
        &self,
        key: &str,
        index: usize,
    ) -> Option<Arc<dyn crate::solver::lazy::ImportedResult>> {
        self.0.iter().find_map(|cache| cache.lookup(key, index))
    }

    fn cache_mount<'a>(
        &'a self,
        content: &'a ContentStore,
        portable_id: &'a str,
    ) -> BoxFuture<'a, Option<Digest>> {
        async move {
            for cache in &self.0 {
                if let Some(tar) = cache.cache_mount(content, portable_id).await {
                    return Some(tar);
                }
            }
            None
        }
        .boxed()
    }
}

/// The reading of every `--cache-from` ([`import_all`]) as a future the solver's lookups
/// share, owning what it reads with; none without a `--cache-from`. It makes progress while
/// someone polls it: the build drives it beside its start and first steps
/// (`build::embedded::while_importing`), a lookup waits for it.
pub fn pending_import(
    opts: &[CacheOption],
    platforms: Vec<crate::registry::Platform>,
    content: &ContentStore,
    registry: &RegistryConfig,
    progress: &ProgressSink,
) -> Option<crate::solver::PendingImport> {
    if opts.is_empty() {
        return None;
    }
    let (opts, content, registry, progress) = (
        opts.to_vec(),
        content.clone(),
        registry.clone(),
        progress.clone(),
    );
    Some(
        async move { import_all(&opts, &platforms, &content, &registry, &progress).await }
            .boxed()
            .shared(),
    )
}

/// Reads every `--cache-from`. One that cannot be read shows as a failed "importing cache
/// manifest" step with a warning, and the build goes on without it, as with BuildKit.
pub async fn import_all(
    opts: &[CacheOption],
    platforms: &[crate::registry::Platform],
    content: &ContentStore,
    registry: &RegistryConfig,
    progress: &ProgressSink,
) -> Option<Arc<dyn CacheImport>> {
    let mut caches = Vec::new();
    for (i, opt) in opts.iter().enumerate() {
        let vertex = format!("bud-cache-import-{i}");
        let location = import_location(opt);
        let what = match &location {
            Ok(l) => describe(l),
            Err(_) => format!("type={}", opt.kind),
        };
        progress.started(&vertex, &format!("importing cache manifest from {what}"));
        let loaded = match location {
            Ok(l) => load(&l, platforms, content, registry, progress).await,
            Err(e) => Err(anyhow::anyhow!(e)),
        };
        match loaded {
            Ok(cache) => {
                progress.completed(&vertex, None);
                caches.push(cache);
            }
            Err(e) => {
                let message = crate::error_chain::error_chain(e.as_ref());
                progress.completed(&vertex, Some(message.clone()));
                progress.warning(
                    None,
                    format!(
                        "--cache-from {what}: not imported, the build goes on without it: {message}"
                    ),
                );
            }
        }
    }
    if caches.is_empty() {
        None
    } else {
        Some(Arc::new(Imports(caches)))
    }
}

async fn load(
    location: &Location,
    platforms: &[crate::registry::Platform],
    content: &ContentStore,
    registry: &RegistryConfig,
    progress: &ProgressSink,
) -> anyhow::Result<ImportedCache> {
    match location {
        Location::Local { dir, tag, digest } => {
            let layout = Arc::new(local::Layout { dir: dir.clone() });
            let (bytes, media_type) = {
                let (layout, tag, digest) = (layout.clone(), tag.clone(), digest.clone());
                tokio::task::spawn_blocking(move || layout.manifest(&tag, digest.as_deref()))
                    .await
                    .context("reading the cache")??
            };
            ImportedCache::load(
                &bytes,
                media_type.as_deref(),
                platforms,
                layout,
                content,
                progress.clone(),
            )
            .await
        }
        Location::Registry {
            reference,
            insecure,
        } => {
            let repo =
                Arc::new(registry::Repository::connect(registry, reference, *insecure).await?);
            let (bytes, media_type) = repo.manifest().await?;
            ImportedCache::load(
                &bytes,
                media_type.as_deref(),
                platforms,
                repo,
                content,
                progress.clone(),
            )
            .await
        }
        Location::Inline => {
            bail!("type=inline is for --cache-to; import the image by its reference")
        }
    }
}

/// Writes one `--cache-to` of a build whose results (one per platform) are `results`.
/// Blocking parts run off the async threads.
pub async fn export_one(
    spec: &ExportSpec,
    journal: Vec<SolvedVertex>,
    cache_mounts: Vec<(String, PathBuf)>,
    results: Vec<Ref>,
    snapshots: Arc<Snapshots>,
    content: &ContentStore,
    registry: &RegistryConfig,
) -> anyhow::Result<()> {
    if spec.location == Location::Inline {
        return Ok(());
    }
    let (mode, shape) = (spec.mode, spec.shape);
    let collected = {
        let content = content.clone();
        tokio::task::spawn_blocking(move || {
            export::collect(
                &journal,
                &results,
                mode,
                shape,
                &snapshots,
                &content,
                &cache_mounts,
            )
        })
        .await
        .context("collecting the cache")??
    };
    match &spec.location {
        Location::Local { dir, tag, .. } => {
            // Blobs of results left in their cache are copied from there, once, verified.
            for (_, blob) in &collected.lazy_layers {
                if !content.exists(&Digest::parse(&blob.desc.digest)?) {
                    blob.source
                        .fetch(&blob.desc, content)
                        .await
                        .with_context(|| {
                            format!(
                                "copying blob {} from {}",
                                blob.desc.digest,
                                blob.source.describe()
                            )
                        })?;
                }
            }
            let layout = local::Layout { dir: dir.clone() };
            let (content, tag) = (content.clone(), tag.clone());
            tokio::task::spawn_blocking(move || layout.write(&collected, &content, &tag))
                .await
                .context("writing the cache")?
        }
        Location::Registry {
            reference,
            insecure,
        } => {
            let repo = registry::Repository::connect(registry, reference, *insecure).await?;
            repo.push(&collected, content).await
        }
        // Already in the image config.
        Location::Inline => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `--cache-to`/`--cache-from` of `kind` with `attrs`.
    pub(super) fn opt(kind: &str, attrs: &[(&str, &str)]) -> CacheOption {
        CacheOption {
            kind: kind.into(),
            attrs: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn export_attributes_as_buildkit_reads_them() {
        let s = ExportSpec::parse(&opt("local", &[("dest", "/c")])).unwrap();
        assert_eq!(s.mode, Mode::Min);
        assert!(s.shape.oci && s.shape.image_manifest && !s.ignore_error);
        assert_eq!(
            s.location,
            Location::Local {
                dir: "/c".into(),
                tag: "latest".into(),
                digest: None
            }
        );
        let s = ExportSpec::parse(&opt(
            "registry",
            &[
                ("ref", "r/a:c"),
                ("mode", "max"),
                ("oci-mediatypes", "false"),
            ],
        ))
        .unwrap();
        assert!(s.mode == Mode::Max && !s.shape.oci && !s.shape.image_manifest);
        assert!(ExportSpec::parse(&opt("local", &[])).is_err());
        assert!(ExportSpec::parse(&opt("local", &[("dest", "/c"), ("mode", "all")])).is_err());
        assert!(
            ExportSpec::parse(&opt(
                "registry",
                &[
                    ("ref", "r"),
                    ("oci-mediatypes", "false"),
                    ("image-manifest", "true")
                ]
            ))
            .is_err()
        );
        assert!(ExportSpec::parse(&opt("gha", &[])).is_err());
    }

    /// Every attribute BuildKit's local and registry caches take is honoured (in
    /// `EXPORT_ATTRS`/`IMPORT_ATTRS`, each exercised by tests/it/build_caches.rs) or refused by
    /// name; so is an attribute no cache takes.
    #[test]
    fn attributes_the_embedded_solver_does_not_honour_are_refused_by_name() {
        for (kind, key, value) in [
            ("registry", "store", "true"),
            ("registry", "no-such-attribute", "x"),
            ("inline", "compression", "zstd"),
            ("inline", "cache-mounts", "true"),
        ] {
            let base = match kind {
                "local" => vec![("dest", "/c")],
                "registry" => vec![("ref", "r/a:c")],
                _ => vec![],
            };
            let mut attrs = base.clone();
            attrs.push((key, value));
            let err = ExportSpec::parse(&opt(kind, &attrs))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(&format!("{key}: not supported")), "{err}");
            assert!(ExportSpec::parse(&opt(kind, &base)).is_ok());
        }
        let err = ExportSpec::parse(&opt("inline", &[("mode", "max")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("inline"), "{err}");
        for (kind, key) in [
            ("local", "dest"),
            ("local", "mode"),
            ("registry", "mode"),
            ("registry", "compression"),
        ] {
            let base = if kind == "local" {
                ("src", "/c")
            } else {
                ("ref", "r")
            };
            let err = check_import(&opt(kind, &[base, (key, "x")]))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(&format!("{key}: not supported")), "{err}");
            assert!(check_import(&opt(kind, &[base])).is_ok());
        }
        let s = ExportSpec::parse(&opt(
            "registry",
            &[("ref", "r/a"), ("registry.insecure", "true")],
        ));
        assert!(matches!(
            s.unwrap().location,
            Location::Registry { insecure: true, .. }
        ));
    }

    #[test]
    fn record_digests_name_key_and_output() {
        assert_ne!(record_digest("sha256:a", 0), record_digest("sha256:a", 1));
        assert_eq!(record_digest("k", 0), Digest::of(b"k@0"));
    }
}
