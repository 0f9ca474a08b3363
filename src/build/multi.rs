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
use crate::solver::{Ref, Solver};

use super::dockerfile::{convert_for, warn_unused_args};
use super::embedded::{solve_options, start_solver, unless_cancelled};
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
    refuse_single_image_exports(exports)?;
    let planned = super::attestations::plan(opts, exports)?;
    let started = std::time::SystemTime::now();
    // Not carried into the multi-platform build yet: refused, never dropped.
    if !opts.cache_from.is_empty() || !opts.cache_to.is_empty() {
        bail!("--cache-from and --cache-to with several platforms are not supported yet");
    }
    if inputs.remote.is_some() {
        bail!("a URL as the build context with several platforms is not supported yet");
    }
    let BuildEnv {
        registry,
        images,
        progress,
        ..
    } = env;
    // The build checks run once, with the first platform's conversion.
    let conversions = platforms.iter().enumerate().map(|(i, platform)| {
        let checks = (i == 0).then_some(progress);
        convert_for(
            opts,
            inputs,
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

    runtime.reap_orphans().await;
    let ssh = super::secrets::ssh_agents(opts)?;
    let solve_opts = solve_options(opts, inputs, registry, &ssh)?;
    let solver = start_solver(env, runtime, solve_opts)?;
    let definitions: Vec<_> = converted.iter().map(|c| c.definition.clone()).collect();
    let results = solver
        .solve_many(&definitions, &cancel)
        .await
        .map_err(|e| {
            let definitions: Vec<&_> = definitions.iter().collect();
            super::failure::step_failure(e, &definitions)
        })?;

    // One invocation for every platform's provenance, as BuildKit records it.
    let provenance = super::attestations::Provenance {
        opts,
        inputs,
        images,
        git: solver.git_sources(),
        invocation_id: crate::remote::new_session_id(),
        started,
    };
    let mut built = Vec::with_capacity(platforms.len());
    for ((platform, converted), result) in platforms.iter().zip(converted).zip(results) {
        let attestations = if planned.is_empty() {
            Vec::new()
        } else {
            let made = provenance.image_attestations(
                &planned,
                solver.snapshots(),
                &result,
                &converted.definition,
                platform.to_string(),
                progress,
            );
            unless_cancelled(&cancel, made).await?
        };
        let image: Image = serde_json::from_value(converted.image)
            .context("the frontend produced an invalid image config")?;
        built.push(Built {
            platform: platform.clone(),
            result,
            image,
            attestations,
        });
    }

    const EXPORT_VERTEX: &str = "bud-export";
    progress.started(EXPORT_VERTEX, "exporting to image");
    let mut report = BuildReport::default();
    let exporting = async {
        for e in exports {
            export_one(e, &solver, &built, env, &mut report).await?;
        }
        anyhow::Ok(())
    };
    let exported = unless_cancelled(&cancel, exporting).await;
    match &exported {
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
    exported?;
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

/// The exports that hold one image only, refused with buildx's reason before anything runs.
fn refuse_single_image_exports(exports: &[Export]) -> anyhow::Result<()> {
    for e in exports {
        match e {
            Export::DockerLoad { .. } | Export::DockerArchive { .. } => bail!(
                "docker exporter does not currently support exporting manifest lists: \
                 push the platforms' image index with --push, write it with \
                 -o type=oci,dest=FILE, or build one platform to load it into Docker"
            ),
            Export::OciArchive {
                image, compression, ..
            } => {
                refuse_image_attrs(image)?;
                if compression.is_some() {
                    bail!(
                        "compression= on -o type=oci with several platforms is not supported \
                         yet (the layout holds each layer as the build stored it)"
                    );
                }
            }
            Export::Push { image, .. } => refuse_image_attrs(image)?,
            Export::Tar { .. } | Export::Local { .. } => {}
        }
    }
    Ok(())
}

/// What single-platform images honour but an index of several does not yet (annotations
/// are refused with the plan of exports).
fn refuse_image_attrs(image: &super::outputs::ImageAttrs) -> anyhow::Result<()> {
    if image.rewrite_timestamp {
        bail!("rewrite-timestamp=true with several platforms is not supported yet");
    }
    Ok(())
}

/// A platform's directory in a local or tar export, as buildx names it: `linux_arm_v7`.
pub(super) fn platform_dir(platform: &Platform) -> String {
    platform.to_string().replace('/', "_")
}

async fn export_one(
    e: &Export,
    solver: &Arc<Solver>,
    built: &[Built],
    env: &BuildEnv,
    report: &mut BuildReport,
) -> anyhow::Result<()> {
    match e {
        Export::Local { dest } => {
            for b in built {
                let view = solver.snapshots().view(&b.result)?;
                export::local_dir(&view.path, &dest.join(platform_dir(&b.platform)))?;
            }
        }
        Export::Tar { dest } => {
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
            export::filesystem_tars(&parts, dest)?;
        }
        Export::Push {
            names,
            compression,
            oci_media_types,
            insecure,
            image: _,
        } => {
            let mut push = PushOptions::new(env.content.clone());
            push.registry = env.registry.clone();
            push.untagged = true;
            push.compression = *compression;
            push.insecure = *insecure;
            // BuildKit writes OCI indexes unless told `oci-mediatypes=false`.
            if *oci_media_types != Some(false) {
                push.format = ManifestFormat::Oci;
            }
            let mut manifests = Vec::with_capacity(built.len());
            let mut attestations = Vec::new();
            for b in built {
                let image = store_image(solver, env, b).await?;
                let pushed = registry::push(&image.image, &image.layers, names, push.clone())
                    .await
                    .with_context(|| format!("pushing the {} image", b.platform))?;
                if let Some(a) = crate::attest::AttestationManifest::new(
                    &b.attestations,
                    names,
                    &b.platform,
                    &pushed.manifest_digest,
                )
                .map_err(anyhow::Error::msg)?
                {
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
                });
            }
            let (index, _, _) = registry::push_index(&manifests, &attestations, names, &push)
                .await
                .context("pushing the image index")?;
            for name in names {
                crate::report!("pushed {name}@{index}");
            }
            report.set_index(&index);
            report.names.extend(names.iter().cloned());
        }
        Export::OciArchive { dest, names, .. } => {
            let mut stored = Vec::with_capacity(built.len());
            for b in built {
                stored.push(store_image(solver, env, b).await?);
            }
            let images: Vec<PlatformImage<'_>> = built
                .iter()
                .zip(&stored)
                .map(|(b, s)| PlatformImage {
                    platform: &b.platform,
                    image: &s.image,
                    layers: &s.layers,
                    annotations: None,
                    attestations: &b.attestations,
                })
                .collect();
            let index = oci_index_layout::write(export::open_dest(dest)?, &images, names)?;
            report.set_index(&index);
        }
        Export::DockerLoad { .. } | Export::DockerArchive { .. } => {
            bail!("internal error: an export of one image for several platforms")
        }
    }
    Ok(())
}

/// A platform's image with every layer tarred into the content store.
async fn store_image(
    solver: &Arc<Solver>,
    env: &BuildEnv,
    b: &Built,
) -> anyhow::Result<export::BuiltImage> {
    let snapshots = solver.snapshots().clone();
    let content = env.content.clone();
    let (result, image) = (b.result.clone(), b.image.clone());
    tokio::task::spawn_blocking(move || {
        export::plan_image(&snapshots, &result, image)?.into_built(&snapshots, &content, None)
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
