//! A build for several platforms with the embedded solver (`--platform a,b`): the
//! Dockerfile converted once per platform, the graphs solved together (an op the platforms
//! share, such as a `FROM --platform=$BUILDPLATFORM` stage's, runs once), and the results
//! exported as buildx exports them: an image index pushed, or one directory per platform.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use bud_frontend::convert::Platform;
use bud_frontend::image::Image;
use tokio_util::sync::CancellationToken;

use crate::cli::BuildOptions;
use crate::executor::Runtime;
use crate::exporter::oci_index_layout::{self, PlatformImage};
use crate::registry::{self, ManifestFormat, PlatformManifest, PushOptions};
use crate::remotecache;
use crate::solver::{Ref, Solver};

use super::dockerfile::{convert_for, warn_unused_args};
use super::embedded::{
    cache_exports, export_caches, fetch_remote_context, solve_options, start_solver,
    unless_cancelled,
};
use super::inputs::BuildInputs;
use super::outputs::Export;
use super::{BuildEnv, BuildReport, export};

/// Builds `platforms` (two or more) and exports the results where `exports` say.
pub(super) async fn build(
    env: &BuildEnv,
    opts: &BuildOptions,
    inputs: &BuildInputs,
    exports: &[Export],
    runtime: Runtime,
    cancel: CancellationToken,
    platforms: Vec<Platform>,
) -> anyhow::Result<BuildReport> {
    refuse_single_image_exports(exports, docker_keeps_indexes(env, exports).await)?;
    let planned = super::attestations::plan(opts, exports)?;
    let started = std::time::SystemTime::now();
    let BuildEnv {
        content,
        registry,
        images,
        progress,
        ..
    } = env;
    let cache_specs = cache_exports(opts, progress);
    // One import for every platform: a cache's records are found by content keys, whatever
    // platform made them; an image index's inline caches are read for each platform.
    let cache_platforms: Vec<registry::Platform> = platforms
        .iter()
        .map(|p| registry::Platform::new(&p.os, &p.architecture, &p.variant))
        .collect();
    // The caches' manifests download while the solver starts, the Dockerfile converts and
    // the context loads.
    let import = remotecache::pending_import(
        &opts.cache_from,
        cache_platforms,
        content,
        registry,
        progress,
    );
    let ssh = super::secrets::ssh_agents(opts)?;
    let mut solve_opts = solve_options(opts, inputs, registry, &ssh)?;
    solve_opts.cdi_spec_dirs = env.config.cdi.spec_dirs.clone();
    solve_opts.cache_import = import.clone();
    let solving = async {
        runtime.reap_orphans().await;
        let solver = start_solver(env, runtime, solve_opts)?;
        // A URL context is fetched once, by the solver, for every platform.
        let fetched = fetch_remote_context(opts, inputs, &solver, &cancel).await?;
        // The build checks run once, with the first platform's conversion.
        let conversions = platforms.iter().enumerate().map(|(i, platform)| {
            let checks = (i == 0).then_some(progress);
            convert_for(
                opts,
                fetched.as_ref().unwrap_or(inputs),
                images.clone(),
                None,
                Some(platform.clone()),
                checks,
            )
        });
        let converted =
            unless_cancelled(&cancel, futures_util::future::try_join_all(conversions)).await?;
        // The arguments are the same for every platform: warned of once.
        if let Some(first) = converted.first() {
            warn_unused_args(first, progress);
        }
        let definitions: Vec<_> = converted.iter().map(|c| c.definition.clone()).collect();
        let results = solver
            .solve_many(&definitions, &cancel)
            .await
            .map_err(|e| {
                let definitions: Vec<&_> = definitions.iter().collect();
                super::failure::step_failure(e, &definitions)
            })?;
        anyhow::Ok((solver, fetched, converted, results))
    };
    // A URL context fetched stays where the solve reads it until the build is done.
    let (solver, _fetched, converted, results) =
        super::embedded::while_importing(import, &cancel, solving).await?;
    // The context as given (a URL context's is read once fetched): the provenance names it.
    let given = inputs;
    // A result an imported cache holds stays there when only pushes want it, as in a build
    // for one platform; the other exports read every platform's files.
    let mut settled = Vec::with_capacity(results.len());
    for result in results {
        settled.push(
            if super::embedded::lazy_push(&result, exports, &planned, content) {
                result
            } else {
                let brought =
                    super::embedded::bring_in_results(&solver, vec![result], &cancel).await?;
                brought.into_iter().next().unwrap_or(Ref::Scratch)
            },
        );
    }
    let results = settled;

    // One invocation for every platform's provenance, as BuildKit records it.
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
    let mut built = Vec::with_capacity(platforms.len());
    for ((platform, converted), result) in platforms.iter().zip(converted).zip(results) {
        let attestations = if planned.is_empty() {
            Vec::new()
        } else {
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
        let mut image: Image = serde_json::from_value(converted.image)
            .context("the frontend produced an invalid image config")?;
        super::embedded::add_inline_cache(&mut image, &cache_specs, &solver, &result, &cancel)
            .await?;
        built.push(Built {
            platform: platform.clone(),
            result,
            image,
            attestations,
        });
    }

    progress.started(EXPORT_VERTEX, "exporting to image");
    let mut report = BuildReport::default();
    let epoch = super::dockerfile::source_date_epoch(opts)?;
    let exporting = async {
        for e in exports {
            export_one(e, &solver, &built, epoch, env, &mut report).await?;
        }
        anyhow::Ok(())
    };
    let exported = unless_cancelled(&cancel, exporting).await;
    finish_export_vertex(progress, &report, &exported);
    exported?;
    let results: Vec<Ref> = built.iter().map(|b| b.result.clone()).collect();
    unless_cancelled(&cancel, export_caches(&cache_specs, &solver, &results, env)).await?;
    Ok(report)
}

impl BuildReport {
    /// An index has no config: `--iidfile` and `-q` give its digest, as buildx does.
    fn set_index(&mut self, index: &crate::content::Digest) {
        self.manifest_digest = Some(index.to_string());
        self.image_id = Some(index.to_string());
    }
}

/// One platform's result, image config and attestations.
struct Built {
    platform: Platform,
    result: Ref,
    image: Image,
    attestations: Vec<crate::attest::Attestation>,
}

/// The export's own vertex, as BuildKit's "exporting to image".
pub(super) const EXPORT_VERTEX: &str = "bud-export";

/// Ends the export's vertex (started as "exporting to image") with the index written, or
/// with why it failed.
pub(super) fn finish_export_vertex(
    progress: &crate::progress::ProgressSink,
    report: &BuildReport,
    exported: &anyhow::Result<()>,
) {
    match exported {
        Ok(()) => {
            if let Some(digest) = &report.manifest_digest {
                progress.done(EXPORT_VERTEX, &format!("writing image index {digest}"));
            }
            progress.completed(EXPORT_VERTEX, None);
        }
        Err(e) => progress.completed(
            EXPORT_VERTEX,
            Some(crate::error_chain::error_chain(e.as_ref())),
        ),
    }
}

/// Whether `--load` (or `-t` alone) goes to a Docker that keeps its images in containerd,
/// where one tag holds the index of every platform, as buildx loads it there. Asked only
/// when an export loads; a Docker that cannot be asked is taken for one that cannot.
pub(super) async fn docker_keeps_indexes(env: &BuildEnv, exports: &[Export]) -> bool {
    if !exports
        .iter()
        .any(|e| matches!(e, Export::DockerLoad { .. }))
    {
        return false;
    }
    let Ok(docker) = &env.docker else {
        return false;
    };
    match crate::docker_host::uses_containerd_store(docker).await {
        Ok(containerd) => containerd,
        Err(e) => {
            tracing::debug!(
                "asking Docker for its image store: {}",
                crate::error_chain::error_chain(&e)
            );
            false
        }
    }
}

/// The exports that hold one image only, refused with buildx's reason before anything runs:
/// an archive of one image, and a load unless `loads_index` (Docker's containerd image
/// store takes the index).
pub(super) fn refuse_single_image_exports(
    exports: &[Export],
    loads_index: bool,
) -> anyhow::Result<()> {
    if exports.iter().any(|e| match e {
        Export::DockerArchive { .. } => true,
        Export::DockerLoad { .. } => !loads_index,
        _ => false,
    }) {
        bail!(
            "docker exporter does not currently support exporting manifest lists: push the \
             platforms' image index with --push, write it with -o type=oci,dest=FILE, or \
             build one platform to load it into Docker"
        );
    }
    Ok(())
}

/// A platform's directory in a local or tar export, as buildx names it: `linux_arm_v7`.
pub(super) fn platform_dir(platform: &Platform) -> String {
    platform.to_string().replace('/', "_")
}

/// Writes one export of the platforms' images. `epoch` is SOURCE_DATE_EPOCH, which
/// `rewrite-timestamp=true` clamps each platform image's own layers to.
async fn export_one(
    e: &Export,
    solver: &Arc<Solver>,
    built: &[Built],
    epoch: Option<i64>,
    env: &BuildEnv,
    report: &mut BuildReport,
) -> anyhow::Result<()> {
    match e {
        Export::Local {
            dest,
            merge_platforms,
            epoch,
            ..
        } => {
            let views = built
                .iter()
                .map(|b| solver.snapshots().view(&b.result))
                .collect::<Result<Vec<_>, _>>()?;
            if *merge_platforms {
                let parts: Vec<(&Platform, &Path)> = built
                    .iter()
                    .zip(&views)
                    .map(|(b, view)| (&b.platform, view.path.as_path()))
                    .collect();
                super::platform_split::check_disjoint(&parts)?;
            }
            export::create_local_dest(dest)?;
            for (b, view) in built.iter().zip(&views) {
                if *merge_platforms {
                    export::local_dir(&view.path, dest, *epoch)?;
                } else {
                    let dir = dest.join(platform_dir(&b.platform));
                    export::local_dir(&view.path, &dir, *epoch)?;
                    export::finish_platform_dir(&dir, *epoch)?;
                }
            }
        }
        Export::Tar { dest, epoch } => {
            let views = built
                .iter()
                .map(|b| solver.snapshots().view(&b.result))
                .collect::<Result<Vec<_>, _>>()?;
            let parts: Vec<(PathBuf, &Path)> = built
                .iter()
                .zip(&views)
                .map(|(b, view)| {
                    (
                        PathBuf::from(platform_dir(&b.platform)),
                        view.path.as_path(),
                    )
                })
                .collect();
            export::filesystem_tars(&parts, dest, *epoch)?;
        }
        Export::Push { .. } | Export::OciArchive { .. } | Export::DockerLoad { .. } => {
            let clamp = e.image_attrs().filter(|a| a.rewrite_timestamp).and(epoch);
            let mut stored = Vec::with_capacity(built.len());
            for b in built {
                stored.push(store_image(solver, env, b, clamp).await?);
            }
            let images: Vec<PlatformBuilt<'_>> = built
                .iter()
                .zip(&stored)
                .map(|(b, image)| PlatformBuilt {
                    platform: &b.platform,
                    image,
                    attestations: &b.attestations,
                })
                .collect();
            export_index(e, &images, env, report).await?;
        }
        Export::DockerArchive { .. } => {
            bail!("internal error: an export of one image for several platforms")
        }
    }
    Ok(())
}

/// One platform's image, with every layer in the content store, and its attestations.
pub(super) struct PlatformBuilt<'a> {
    pub platform: &'a Platform,
    pub image: &'a export::BuiltImage,
    pub attestations: &'a [crate::attest::Attestation],
}

/// Pushes the platforms' images and their index, or writes them as an OCI layout, as `e`
/// says (an export of one image is not `e`), with the annotations and compression it asks.
pub(super) async fn export_index(
    e: &Export,
    images: &[PlatformBuilt<'_>],
    env: &BuildEnv,
    report: &mut BuildReport,
) -> anyhow::Result<()> {
    let platforms: Vec<Platform> = images.iter().map(|b| b.platform.clone()).collect();
    match e {
        Export::Push {
            names,
            compression,
            oci_media_types,
            insecure,
            image,
        } => {
            let annotations = image.index_annotations_for(&platforms)?;
            let mut push = PushOptions::new(env.content.clone());
            push.registry = env.registry.clone();
            push.progress = Some(registry::ProgressTarget {
                sink: env.progress.clone(),
                vertex: EXPORT_VERTEX.to_owned(),
            });
            push.untagged = true;
            push.compression = *compression;
            push.insecure = *insecure;
            // BuildKit writes OCI indexes unless told `oci-mediatypes=false`.
            if *oci_media_types != Some(false) {
                push.format = ManifestFormat::Oci;
            }
            push.index_annotations = annotations.index.clone();
            let mut manifests = Vec::with_capacity(images.len());
            let mut attestations = Vec::new();
            for (b, own) in images.iter().zip(&annotations.images) {
                let mut push = push.clone();
                push.manifest_annotations = own.manifest.clone();
                push.lazy_layers = b.image.lazy_layers.clone();
                let pushed = registry::push(&b.image.image, &b.image.layers, names, push.clone())
                    .await
                    .with_context(|| format!("pushing the {} image", b.platform))?;
                if let Some(a) = crate::attest::AttestationManifest::new(
                    b.attestations,
                    names,
                    b.platform,
                    &pushed.manifest_digest,
                    &pushed.layers,
                )? {
                    registry::push_attestation(&a, names, &push)
                        .await
                        .with_context(|| {
                            format!("pushing the {} attestation manifest", b.platform)
                        })?;
                    attestations.push(a);
                }
                manifests.push(PlatformManifest {
                    platform: registry::Platform::new(
                        &b.platform.os,
                        &b.platform.architecture,
                        &b.platform.variant,
                    ),
                    pushed,
                    annotations: own.manifest_descriptor.clone(),
                });
            }
            let (index, _, _) = registry::push_index(&manifests, &attestations, names, &push)
                .await
                .context("pushing the image index")?;
            report.set_index(&index);
            report.names.extend(names.iter().cloned());
        }
        Export::OciArchive {
            dest,
            names,
            image,
            compression,
        } => {
            let out = export::open_dest(dest)?;
            let index = write_layout(out, images, names, image, *compression, env)?;
            report.set_index(&index);
        }
        Export::DockerLoad { names, image } => {
            let docker = env.docker.as_ref().map_err(|why| {
                anyhow::anyhow!(
                    "the images were built, but Docker is not reachable to load them ({why}): \
                     start Docker, or get the result out with -o type=oci,dest=FILE"
                )
            })?;
            // As buildx's docker exporter loads several platforms: an OCI archive of the
            // index, its layers compressed as a push's (the store keeps them as sent).
            let archive = tempfile::NamedTempFile::new_in(env.state.tmp_dir())
                .context("making a file for the image index archive")?;
            let out = std::io::BufWriter::new(archive.as_file());
            let compression = Some(registry::LayerCompression::default());
            let index = write_layout(out, images, names, image, compression, env)?;
            let loaded = crate::exporter::docker_load::load_archive(docker, archive.path())
                .await
                .context("loading the image index into Docker")?;
            tracing::debug!("Docker loaded {loaded:?}");
            report.set_index(&index);
            report.names.extend(names.iter().cloned());
        }
        Export::DockerArchive { .. } | Export::Local { .. } | Export::Tar { .. } => {
            bail!("internal error: not an export of an image index")
        }
    }
    Ok(())
}

/// Writes the platforms' images and their index as an OCI layout tarball to `out`, with the
/// annotations `image` asks and the layers compressed as `compression` says; returns the
/// index's digest.
fn write_layout(
    out: impl std::io::Write,
    images: &[PlatformBuilt<'_>],
    names: &[String],
    image: &super::outputs::ImageAttrs,
    compression: Option<registry::LayerCompression>,
    env: &BuildEnv,
) -> anyhow::Result<crate::content::Digest> {
    let platforms: Vec<Platform> = images.iter().map(|b| b.platform.clone()).collect();
    let annotations = image.index_annotations_for(&platforms)?;
    let mut compressed = Vec::new();
    if let Some(c) = compression {
        for b in images {
            compressed.push(export::with_compressed_layers(b.image, &env.content, c)?);
        }
    }
    let layout: Vec<PlatformImage<'_>> = images
        .iter()
        .enumerate()
        .zip(&annotations.images)
        .map(|((i, b), own)| {
            let image = compressed.get(i).unwrap_or(b.image);
            PlatformImage {
                platform: b.platform,
                image: &image.image,
                layers: &image.layers,
                annotations: Some(own),
                attestations: b.attestations,
            }
        })
        .collect();
    Ok(oci_index_layout::write(
        out,
        &layout,
        names,
        oci_index_layout::IndexAnnotations {
            index: Some(&annotations.index),
            index_descriptor: Some(&annotations.index_descriptor),
        },
    )?)
}

/// A platform's image with every layer tarred into the content store, the build's own
/// layers with their mtimes clamped to `clamp` when given (`rewrite-timestamp`); of a
/// result left in the cache it came from (`embedded::lazy_push`), with the layers the
/// store lacks left there for the push to mount or copy.
async fn store_image(
    solver: &Arc<Solver>,
    env: &BuildEnv,
    b: &Built,
    clamp: Option<i64>,
) -> anyhow::Result<export::BuiltImage> {
    let snapshots = solver.snapshots().clone();
    let content = env.content.clone();
    let (result, image) = (b.result.clone(), b.image.clone());
    tokio::task::spawn_blocking(move || {
        if let Ref::Lazy(lazy) = &result {
            return match export::lazy_image(&snapshots, lazy, image)? {
                Some(built) => Ok(built),
                None => bail!(crate::solver::SolveError::NotBroughtIn),
            };
        }
        export::plan_image(&snapshots, &result, image)?.into_built(&snapshots, &content, clamp)
    })
    .await
    .context("exporting layers")?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_directories_are_named_as_buildx_names_them() {
        let dir = |p: &str| platform_dir(&Platform::parse(p).unwrap());
        assert_eq!(dir("linux/amd64"), "linux_amd64");
        assert_eq!(dir("linux/arm64/v8"), "linux_arm64");
        assert_eq!(dir("linux/armhf"), "linux_arm_v7");
    }
}
