//! Where a built result goes, and how: each `-o`/`--push`/`--load` export in turn. This is
//! where a layer's way to Docker is decided: a load gets new layers tarred straight from their
//! snapshots (`Assembled::Planned`), leaving out what Docker already holds; registries and
//! archive files get every layer stored in the content store first (`Assembled::Built`).

use std::sync::Arc;

use anyhow::{Context as _, bail};

use crate::attest::Attestation;
use crate::content::ContentStore;
use crate::docker_host::DockerUnavailable;
use crate::exporter::LoadLayer;
use crate::exporter::docker_load::PendingLoad;
use crate::registry::{ManifestFormat, PushOptions, RegistryConfig};
use crate::solver::Solver;

use super::BuildReport;
use super::export;
use super::outputs::Export;

/// The images the definition's `docker-image` sources name, as Docker knows them.
pub(super) fn base_images(definition: &bud_proto::pb::Definition) -> Vec<String> {
    use prost::Message as _;
    definition
        .def
        .iter()
        .filter_map(|bytes| bud_proto::pb::Op::decode(bytes.as_slice()).ok())
        .filter_map(|op| match op.op {
            Some(bud_proto::pb::op::Op::Source(source)) => source
                .identifier
                .strip_prefix("docker-image://")
                .map(str::to_owned),
            _ => None,
        })
        .collect()
}

/// The result as an image: with every layer tarred into the content store, or (when only
/// Docker is to receive it) planned, its new layers still directories.
pub(super) enum Assembled {
    Built(export::BuiltImage),
    Planned(export::ImagePlan),
}

/// What exports write to: Docker, the content store (compressed layers), registries.
pub(super) struct Targets<'a> {
    /// The daemon, or why there is none to use.
    pub(super) docker: Result<&'a bollard::Docker, &'a DockerUnavailable>,
    /// The images the build starts from, where Docker most likely holds the lower layers.
    pub(super) base_images: &'a [String],
    pub(super) content: &'a ContentStore,
    pub(super) registry: &'a RegistryConfig,
    /// Where pushes show their steps: the export's own vertex.
    pub(super) progress: &'a crate::registry::ProgressTarget,
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn export_one(
    e: &Export,
    solver: &Arc<Solver>,
    result: &crate::solver::Ref,
    assembled: Option<&Assembled>,
    targets: &Targets<'_>,
    attestations: &[Attestation],
    early_load: &mut Option<PendingLoad>,
    report: &mut BuildReport,
) -> anyhow::Result<()> {
    let Targets {
        docker,
        base_images,
        content,
        registry,
        progress,
    } = *targets;
    let need = || match assembled {
        Some(Assembled::Built(built)) => Ok(built),
        _ => bail!("internal error: the image's layers were not stored"),
    };
    match e {
        Export::DockerLoad { names, .. } => {
            let docker = match docker {
                Ok(docker) => docker,
                Err(why) => bail!(
                    "the image was built, but Docker is not reachable to load it ({why}): \
                     start Docker, or get the result out with -o type=docker,dest=image.tar, \
                     -o type=oci,dest=image.tar or -o type=local,dest=DIR",
                    why = crate::error_chain::error_chain(why)
                ),
            };
            let load = crate::exporter::docker_load::load;
            let loaded = match assembled {
                Some(Assembled::Built(built)) => {
                    let layers: Vec<LoadLayer> = built.layers.iter().map(LoadLayer::from).collect();
                    load(
                        docker,
                        &built.image,
                        &layers,
                        names,
                        base_images,
                        early_load.take(),
                    )
                    .await
                }
                Some(Assembled::Planned(plan)) => {
                    let layers = plan.load_layers(content)?;
                    load(
                        docker,
                        &plan.image,
                        &layers,
                        names,
                        base_images,
                        early_load.take(),
                    )
                    .await
                }
                None => bail!("internal error: no image was assembled"),
            };
            let loaded = loaded.context("loading the image into Docker")?;
            if let Some(Assembled::Planned(plan)) = assembled {
                // The image is in Docker: not remembering its diff IDs only costs tarring
                // the layers again on the next export.
                if let Err(e) = plan.record_diff_ids(solver.snapshots(), &loaded.diff_ids) {
                    tracing::warn!(
                        "not recording the layers' diff IDs: {}",
                        crate::error_chain::error_chain(e.as_ref())
                    );
                }
                report.config_digest = Some(loaded.config_digest.to_string());
            }
            report.image_id = Some(loaded.image_id);
            report.names.extend(names.iter().cloned());
        }
        Export::DockerArchive { .. } | Export::OciArchive { .. } | Export::Push { .. } => {
            let built = need()?;
            export_built(
                e,
                built,
                content,
                registry,
                Some(progress),
                attestations,
                report,
            )
            .await?;
        }
        Export::Tar { dest, epoch } => {
            let view = solver.snapshots().view(result)?;
            export::filesystem_tar(&view.path, dest, *epoch)?;
        }
        Export::Local {
            dest,
            in_platform_dir,
            epoch,
            ..
        } => {
            let view = solver.snapshots().view(result)?;
            if let Some(parent) = dest.parent().filter(|_| *in_platform_dir) {
                export::create_local_dest(parent)?;
            }
            export::local_dir(&view.path, dest, *epoch)?;
            if *in_platform_dir {
                export::finish_platform_dir(dest, *epoch)?;
            }
        }
    }
    Ok(())
}

/// The exports of a stored image: archives and pushes, with `attestations` attached where
/// the export holds manifests. They are the same whichever solver built the image (the
/// embedded one, or a daemon whose image bud read back).
pub(super) async fn export_built(
    e: &Export,
    built: &export::BuiltImage,
    content: &ContentStore,
    registry: &RegistryConfig,
    progress: Option<&crate::registry::ProgressTarget>,
    attestations: &[Attestation],
    report: &mut BuildReport,
) -> anyhow::Result<()> {
    match e {
        Export::DockerArchive { dest, names, .. } => {
            export::docker_archive(built, dest, names)?;
            report.names.extend(names.iter().cloned());
        }
        Export::OciArchive {
            dest,
            names,
            image,
            compression,
        } => {
            let compressed;
            let built = match compression {
                Some(c) => {
                    compressed = export::with_compressed_layers(built, content, *c)?;
                    &compressed
                }
                None => built,
            };
            let platform = export::platform_of(&built.image);
            let annotations = image.annotations_for(&platform)?;
            if attestations.is_empty() {
                let digest = export::oci_archive(built, dest, names, &annotations)?;
                report.manifest_digest = Some(digest.to_string());
            } else {
                // An attestation makes the image an index, as BuildKit's OCI exporter does.
                let one = crate::exporter::oci_index_layout::PlatformImage {
                    platform: &platform,
                    image: &built.image,
                    layers: &built.layers,
                    annotations: Some(&annotations),
                    attestations,
                };
                let index = crate::exporter::oci_index_layout::write(
                    export::open_dest(dest)?,
                    std::slice::from_ref(&one),
                    names,
                    // Index annotations are refused for a single-platform image.
                    Default::default(),
                )?;
                report.manifest_digest = Some(index.to_string());
            }
        }
        Export::Push {
            names,
            compression,
            oci_media_types,
            insecure,
            image,
        } => {
            let mut push = PushOptions::new(content.clone());
            push.registry = registry.clone();
            push.progress = progress.cloned();
            // A single image is pushed as its manifest alone; descriptor annotations, which
            // would go on an index's entry for it, were refused before the build.
            push.manifest_annotations = image
                .annotations_for(&export::platform_of(&built.image))?
                .manifest;
            push.compression = *compression;
            push.insecure = *insecure;
            push.lazy_layers = built.lazy_layers.clone();
            if *oci_media_types == Some(true) {
                push.format = ManifestFormat::Oci;
            }
            if !attestations.is_empty() {
                push_attested(built, names, push, attestations, report).await?;
                return Ok(());
            }
            let shown = push.progress.is_some();
            let pushed = crate::registry::push(&built.image, &built.layers, names, push)
                .await
                .context("pushing the image")?;
            if !shown {
                // No vertex to show it under (a daemon's build, exported by bud afterwards).
                for name in names {
                    crate::report!("pushed {name}@{}", pushed.manifest_digest);
                }
            }
            report.manifest_digest = Some(pushed.manifest_digest.to_string());
            report.descriptor = Some(serde_json::json!({
                "mediaType": pushed.media_type,
                "digest": pushed.manifest_digest.to_string(),
                "size": pushed.size,
            }));
            report.names.extend(names.iter().cloned());
        }
        other => bail!("internal error: {other:?} is not an export of a stored image"),
    }
    Ok(())
}

/// A single image with attestations, pushed as buildx pushes it: the image manifest and its
/// attestation manifest under their digests (OCI media types, as BuildKit switches to them
/// for attestations), then an image index listing both under the tags.
async fn push_attested(
    built: &export::BuiltImage,
    names: &[String],
    mut push: PushOptions,
    attestations: &[Attestation],
    report: &mut BuildReport,
) -> anyhow::Result<()> {
    push.untagged = true;
    push.format = ManifestFormat::Oci;
    let platform = export::platform_of(&built.image);
    let pushed = crate::registry::push(&built.image, &built.layers, names, push.clone())
        .await
        .context("pushing the image")?;
    let attestation = crate::attest::AttestationManifest::new(
        attestations,
        names,
        &platform,
        &pushed.manifest_digest,
        &pushed.layers,
    )?;
    let attestation: Vec<_> = attestation.into_iter().collect();
    for a in &attestation {
        crate::registry::push_attestation(a, names, &push)
            .await
            .context("pushing the attestation manifest")?;
    }
    let manifests = [crate::registry::PlatformManifest {
        platform: crate::registry::Platform::new(
            &platform.os,
            &platform.architecture,
            &platform.variant,
        ),
        pushed,
        // Refused for a single-platform push when the plan was made.
        annotations: Default::default(),
    }];
    let (index, size, media_type) =
        crate::registry::push_index(&manifests, &attestation, names, &push)
            .await
            .context("pushing the image index")?;
    report.manifest_digest = Some(index.to_string());
    report.descriptor = Some(serde_json::json!({
        "mediaType": media_type,
        "digest": index.to_string(),
        "size": size,
    }));
    report.names.extend(names.iter().cloned());
    Ok(())
}
