//! The attestations of a build: which ones its exports carry (buildx's defaults with a
//! driver that attaches them), and the provenance predicate of each platform's image.

use std::collections::BTreeMap;
use std::time::SystemTime;

use anyhow::bail;
use bud_frontend::convert::Platform;
use bud_proto::pb;
use prost::Message as _;

use crate::attest::flags::NO_DEFAULT_ATTESTATIONS_ENV;
use crate::attest::provenance::{self, BuildFacts, GitMaterial, ImageMaterial};
use crate::attest::{Attestation, Attestations, SLSA_PROVENANCE_V02};
use crate::cli::BuildOptions;

use super::images::BuildImages;
use super::inputs::BuildInputs;
use super::outputs::Export;

/// Whether `e` holds image manifests an attestation manifest can go next to. Docker's image
/// store (without its containerd store) and `docker load` archives keep no manifest; local
/// and tar outputs are files (BuildKit writes only non-inline attestations there).
pub(super) fn carries(e: &Export) -> bool {
    matches!(e, Export::Push { .. } | Export::OciArchive { .. })
}

/// The attestations the flags and `BUILDX_NO_DEFAULT_ATTESTATIONS` ask of `exports`: the
/// minimal provenance by default where an export carries it; one asked for explicitly where
/// none does is refused.
pub(super) fn plan(opts: &BuildOptions, exports: &[Export]) -> anyhow::Result<Attestations> {
    let carried = exports.iter().any(carries);
    let no_default = std::env::var(NO_DEFAULT_ATTESTATIONS_ENV).ok();
    let planned = Attestations::resolve(
        &opts.attests,
        opts.provenance.as_ref(),
        opts.sbom.as_ref(),
        no_default.as_deref(),
        carried,
    )
    .map_err(anyhow::Error::msg)?;
    if planned.explicit && !planned.is_empty() && !carried {
        bail!(
            "attestations are attached to pushed images and -o type=oci layouts only (Docker's \
             image store, type=docker archives and local or tar outputs keep none): push the \
             image or use -o type=oci, or drop --provenance/--attest"
        );
    }
    Ok(planned)
}

/// What one build knows for the provenance of its images.
pub(super) struct Provenance<'a> {
    pub opts: &'a BuildOptions,
    pub inputs: &'a BuildInputs,
    pub images: &'a BuildImages,
    pub git: Vec<crate::source::git::Fetched>,
    pub invocation_id: String,
    pub started: SystemTime,
}

impl Provenance<'_> {
    /// The attestations `planned` asks of the image `definition` built as `result` for
    /// `platform`: its SBOM, then its provenance, in BuildKit's order.
    pub(super) async fn image_attestations(
        &self,
        planned: &Attestations,
        snapshots: &std::sync::Arc<crate::solver::Snapshots>,
        result: &crate::solver::Ref,
        definition: &pb::Definition,
        platform: String,
        progress: &crate::progress::ProgressSink,
    ) -> anyhow::Result<Vec<Attestation>> {
        let epoch = super::dockerfile::source_date_epoch(self.opts)?;
        let mut attestations: Vec<Attestation> =
            sbom(planned, snapshots, result, epoch, progress, platform)
                .await?
                .into_iter()
                .collect();
        attestations.extend(self.provenance(planned, definition)?);
        Ok(attestations)
    }

    /// The provenance of the image `definition`, if `planned` asks for one.
    fn provenance(
        &self,
        planned: &Attestations,
        definition: &pb::Definition,
    ) -> anyhow::Result<Vec<Attestation>> {
        let Some(request) = &planned.provenance else {
            return Ok(Vec::new());
        };
        let mut frontend_attrs = super::forward::dockerfile_attrs(self.opts);
        if let Some(remote) = &self.inputs.remote {
            frontend_attrs.insert("context".to_owned(), remote.url().to_owned());
        }
        for c in &self.opts.build_contexts {
            frontend_attrs.insert(format!("context:{}", c.name), c.value.clone());
        }
        // A Dockerfile read by the client comes through a local source of its own.
        let extra_locals = if self.inputs.remote.is_none() || self.inputs.dockerfile_given {
            vec!["dockerfile".to_owned()]
        } else {
            Vec::new()
        };
        let facts = BuildFacts {
            definition,
            frontend_attrs,
            extra_locals,
            images: image_materials(definition, self.images)?,
            git: self
                .git
                .iter()
                .map(|g| GitMaterial {
                    url: g.url.clone(),
                    commit: g.commit.clone(),
                })
                .collect(),
            invocation_id: self.invocation_id.clone(),
            started: self.started,
            finished: SystemTime::now(),
            builder_platform: Platform::host(),
        };
        let predicate = provenance::predicate(request, &facts).map_err(anyhow::Error::msg)?;
        Ok(vec![Attestation {
            predicate_type: SLSA_PROVENANCE_V02.to_owned(),
            predicate,
        }])
    }
}

/// BuildKit's SBOM scanner names the filesystem it scans by where it mounts it.
const SBOM_SUBJECT: &str = "/run/src/core";

/// The SBOM of the image whose filesystem is `result`, when `planned` asks for one: its
/// package databases scanned as BuildKit's default scanner scans the final image, the
/// document dated by SOURCE_DATE_EPOCH when the build has one, so that it is reproducible.
/// What the scanner could not read is a warning, and noted in the document.
async fn sbom(
    planned: &Attestations,
    snapshots: &std::sync::Arc<crate::solver::Snapshots>,
    result: &crate::solver::Ref,
    epoch: Option<i64>,
    progress: &crate::progress::ProgressSink,
    platform: String,
) -> anyhow::Result<Option<Attestation>> {
    if planned.sbom.is_none() {
        return Ok(None);
    }
    let vertex = format!("bud-sbom-{platform}");
    progress.started(&vertex, &format!("[{platform}] generating sbom"));
    let (snapshots, result) = (snapshots.clone(), result.clone());
    let scanned = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let view = snapshots.view(&result)?;
        Ok(crate::sbom::scan(&view.path)?)
    })
    .await
    .map_err(anyhow::Error::from)
    .and_then(|r| r);
    let inventory = match scanned {
        Ok(inventory) => inventory,
        Err(e) => {
            progress.completed(&vertex, Some(crate::error_chain::error_chain(e.as_ref())));
            return Err(e.context("generating the SBOM"));
        }
    };
    for warning in &inventory.warnings {
        progress.warning(Some(&vertex), format!("sbom: {warning}"));
    }
    let created = match epoch {
        Some(secs) => SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64),
        None => SystemTime::now(),
    };
    let document = crate::sbom::spdx_document(&inventory, SBOM_SUBJECT, created);
    progress.completed(&vertex, None);
    Ok(Some(Attestation::sbom(document)))
}

/// The base images of `definition`, each with the digest the build pinned it to.
fn image_materials(
    definition: &pb::Definition,
    images: &BuildImages,
) -> anyhow::Result<Vec<ImageMaterial>> {
    let mut seen = BTreeMap::new();
    for bytes in &definition.def {
        let op = pb::Op::decode(bytes.as_slice())?;
        let Some(pb::op::Op::Source(src)) = &op.op else {
            continue;
        };
        let Some(reference) = src.identifier.strip_prefix("docker-image://") else {
            continue;
        };
        let platform = op
            .platform
            .as_ref()
            .map(|p| Platform {
                os: p.os.clone(),
                architecture: p.architecture.clone(),
                variant: p.variant.clone(),
            })
            .unwrap_or_else(Platform::host);
        let (name, digest) = match reference.split_once('@') {
            Some((name, digest)) => (name.to_owned(), Some(digest.to_owned())),
            None => (reference.to_owned(), None),
        };
        let Some(digest) = digest.or_else(|| images.pinned(&name, &platform)) else {
            // Not resolved by this build (a daemon resolved it): no digest to record.
            continue;
        };
        seen.entry((name.clone(), platform.to_string()))
            .or_insert(ImageMaterial {
                reference: name,
                platform: Some(platform),
                digest,
            });
    }
    Ok(seen.into_values().collect())
}
