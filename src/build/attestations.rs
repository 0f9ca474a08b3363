//! The attestations of a build: which ones its exports carry (buildx's defaults with a
//! driver that attaches them), and the provenance predicate of each platform's image.

use std::collections::BTreeMap;
use std::io::Read;
use std::time::SystemTime;

use anyhow::{Context as _, bail};
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

/// The attestations the flags ask of an `--addr` build: no default provenance, as with
/// buildx's docker driver.
pub(super) fn requested(opts: &BuildOptions) -> anyhow::Result<Attestations> {
    Attestations::resolve(
        &opts.attests,
        opts.provenance.as_ref(),
        opts.sbom.as_ref(),
        None,
        false,
    )
    .map_err(anyhow::Error::msg)
}

/// The attestations asked of a build on the daemon at `--addr`. As buildx's docker driver on
/// Docker's own image store, no default provenance. Ones asked for are made by bud where it
/// writes the image itself (read back from the `moby` exporter's image and pushed or
/// archived, `remote_outputs`), for a single platform built with bud's own frontend.
pub(super) fn plan_remote(
    opts: &BuildOptions,
    exports: &[Export],
    several_platforms: bool,
    foreign_frontend: bool,
) -> anyhow::Result<Attestations> {
    let planned = requested(opts)?;
    if planned.is_empty() {
        return Ok(planned);
    }
    if several_platforms {
        bail!(
            "attestations (--provenance, --sbom, --attest) with --addr and several platforms \
             are not supported yet: build one platform at a time, or without --addr"
        );
    }
    if foreign_frontend {
        bail!(
            "attestations (--provenance, --sbom, --attest) with --addr and a frontend image \
             (# syntax=) are not supported: bud makes them from the graph its own frontend \
             converts; build without them"
        );
    }
    if !exports.iter().any(carries) {
        bail!(
            "attestations are attached to pushed images and -o type=oci layouts only (Docker's \
             image store, type=docker archives and local or tar outputs keep none): push the \
             image or use -o type=oci, or drop --provenance/--sbom/--attest"
        );
    }
    // The SBOM is made from the image's layers extracted into the state root's snapshots,
    // which takes the privilege the embedded solver needs.
    if planned.sbom.is_some()
        && let crate::privilege::Mode::Unprivileged(_) = crate::privilege::mode()
    {
        bail!(
            "--sbom with --addr on Docker's own image store: bud scans the image in its state \
             root, which takes root or, for another user, subordinate ids in /etc/subuid and \
             /etc/subgid (`bud debug workers` says why there is no user namespace): build \
             without --sbom, or on a daemon that makes attestations itself"
        );
    }
    Ok(planned)
}

/// Where the filesystem an SBOM is made from comes from.
pub(super) enum ScannedRoot<'a> {
    /// The embedded solver's result: a read-only view of its snapshot.
    Snapshot {
        snapshots: &'a std::sync::Arc<crate::solver::Snapshots>,
        result: &'a crate::solver::Ref,
    },
    /// An image a daemon built, read back from Docker: its layers imported into the state
    /// root's snapshots as a base image's are, then scanned through the same view.
    ReadBack(ReadBackImage<'a>),
}

/// An image a daemon built and bud read back from Docker, to be scanned for its SBOM.
pub(super) struct ReadBackImage<'a> {
    /// The build's state root and metadata, whose snapshots the layers are imported into.
    pub env: &'a super::BuildEnv,
    /// What the layers' snapshots are described as (`bud du`): the image's ID.
    pub reference: String,
    /// The layers, lowest first: diff ID and uncompressed tar in the content store.
    pub layers: Vec<(String, std::path::PathBuf)>,
}

/// What one build knows for the provenance of its images.
pub(super) struct Provenance<'a> {
    pub opts: &'a BuildOptions,
    pub inputs: &'a BuildInputs,
    pub images: &'a BuildImages,
    pub git: Vec<crate::source::git::Fetched>,
    pub invocation_id: String,
    pub started: SystemTime,
    /// Base images a daemon resolved without a digest (images only its Docker has), pinned
    /// to the image ID its Docker gives them, as the embedded build pins such an image.
    pub daemon_pins: BTreeMap<String, String>,
    /// What the embedded solver solved (for max mode's per-step layers); empty for a
    /// daemon's build, whose results bud does not see.
    pub journal: Vec<crate::solver::SolvedVertex>,
}

impl Provenance<'_> {
    /// The attestations `planned` asks of the image `definition` built as `result` for
    /// `platform`: its SBOM, then its provenance, in BuildKit's order.
    pub(super) async fn image_attestations(
        &self,
        planned: &Attestations,
        root: ScannedRoot<'_>,
        definition: &pb::Definition,
        platform: String,
        progress: &crate::progress::ProgressSink,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> anyhow::Result<Vec<Attestation>> {
        let epoch = super::dockerfile::source_date_epoch(self.opts)?;
        let image_layers = match (&root, &planned.provenance) {
            (ScannedRoot::Snapshot { snapshots, result }, Some(p))
                if p.mode == crate::attest::ProvenanceMode::Max =>
            {
                let layers = step_layers(&self.journal, snapshots, result)?;
                provenance::layer_steps(definition, &layers)?
            }
            _ => BTreeMap::new(),
        };
        let mut attestations: Vec<Attestation> =
            sbom(planned, root, epoch, progress, platform, cancel)
                .await?
                .into_iter()
                .collect();
        for mut p in self.provenance(planned, definition)? {
            p.image_layers = image_layers.clone();
            attestations.push(p);
        }
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
            images: image_materials(definition, self.images, &self.daemon_pins)?,
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
        let predicate = provenance::predicate(request, &facts)?;
        Ok(vec![Attestation {
            predicate_type: SLSA_PROVENANCE_V02.to_owned(),
            predicate,
            image_layers: BTreeMap::new(),
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
    root: ScannedRoot<'_>,
    epoch: Option<i64>,
    progress: &crate::progress::ProgressSink,
    platform: String,
    cancel: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<Option<Attestation>> {
    if planned.sbom.is_none() {
        return Ok(None);
    }
    let vertex = format!("bud-sbom-{platform}");
    progress.started(&vertex, &format!("[{platform}] generating sbom"));
    let scanned = scan_root(root, progress, cancel).await;
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

/// The packages of the image `root` holds.
async fn scan_root(
    root: ScannedRoot<'_>,
    progress: &crate::progress::ProgressSink,
    cancel: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<crate::sbom::Inventory> {
    let image = match root {
        ScannedRoot::Snapshot { snapshots, result } => {
            return scan_view(snapshots.clone(), result.clone()).await;
        }
        ScannedRoot::ReadBack(image) => image,
    };
    let (snapshots, note) =
        crate::solver::Snapshots::open(image.env.state.clone(), image.env.meta.clone())?;
    image
        .env
        .wrote_state_root
        .store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(note) = note {
        progress.warning(None, note);
    }
    let snapshots = std::sync::Arc::new(snapshots);
    let _leases = Leases(&snapshots);
    let layers = image
        .layers
        .into_iter()
        .map(|(diff_id, tar)| {
            let cancel = cancel.clone();
            crate::solver::ImageLayer {
                diff_id,
                open: Box::new(move || {
                    let file = std::fs::File::open(tar)?;
                    Ok(Box::new(Cancellable {
                        inner: file,
                        cancel,
                    }) as Box<dyn Read + Send>)
                }),
            }
        })
        .collect();
    // Awaited to its end, even when the build is cancelled (the extraction stops at its
    // next read), so that its workspace is removed before bud exits.
    let (_, result) = snapshots
        .import_image(&image.reference, layers)
        .await
        .context("importing the image's layers to scan them")?;
    if cancel.is_cancelled() {
        bail!("cancelled");
    }
    scan_view(snapshots.clone(), result).await
}

/// Scans a read-only view of `result`, off the async threads. Awaited to its end, even
/// when the build is cancelled, so that the view is unmounted and removed before bud exits.
async fn scan_view(
    snapshots: std::sync::Arc<crate::solver::Snapshots>,
    result: crate::solver::Ref,
) -> anyhow::Result<crate::sbom::Inventory> {
    tokio::task::spawn_blocking(move || {
        let view = snapshots.view(&result)?;
        Ok(crate::sbom::scan(&view.path)?)
    })
    .await?
}

/// This process's leases on the snapshots it imported, given up when the scan is done:
/// from then on they are cached records like a base image's, kept or collected by the
/// garbage collection policy.
struct Leases<'a>(&'a crate::solver::Snapshots);

impl Drop for Leases<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.0.release() {
            tracing::warn!(
                "releasing cache leases: {}",
                crate::error_chain::error_chain(&e)
            );
        }
    }
}

/// A layer tar whose reads fail once the build is cancelled, so that an extraction running
/// on a blocking thread stops at its next read.
struct Cancellable<R> {
    inner: R,
    cancel: tokio_util::sync::CancellationToken,
}

impl<R: Read> Read for Cancellable<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.cancel.is_cancelled() {
            // Not `Interrupted`, which readers retry.
            return Err(std::io::Error::other("the build was cancelled"));
        }
        self.inner.read(buf)
    }
}

/// The git repositories of `definition` at the commits their refs name, for the provenance
/// of a graph a daemon fetched (it does not say which commit it checked out): each ref
/// resolved here with `git ls-remote`, as the daemon resolved it moments before.
pub(super) async fn git_sources(
    definition: &pb::Definition,
    cancel: &tokio_util::sync::CancellationToken,
) -> anyhow::Result<Vec<crate::source::git::Fetched>> {
    /// A remote that answers no ls-remote in this long is not waited for.
    const LS_REMOTE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);
    let mut fetched = Vec::new();
    for bytes in &definition.def {
        let op = pb::Op::decode(bytes.as_slice())?;
        let Some(pb::op::Op::Source(src)) = &op.op else {
            continue;
        };
        let Some(identifier) = src.identifier.strip_prefix("git://") else {
            continue;
        };
        let attrs = src.attrs.clone().into_iter().collect();
        let source = crate::source::git::GitSource::parse(identifier, &attrs)?;
        let resolved = tokio::select! {
            () = cancel.cancelled() => bail!("cancelled"),
            r = tokio::time::timeout(LS_REMOTE_TIMEOUT, source.resolve()) => r,
        };
        let resolved = resolved
            .map_err(|_| {
                anyhow::anyhow!(
                    "git ls-remote of {identifier} gave no answer in {}s",
                    LS_REMOTE_TIMEOUT.as_secs()
                )
            })
            .and_then(|r| Ok(r?))
            .context("resolving the git context's commit for the provenance")?;
        let one = source.fetched(&resolved);
        if !fetched.contains(&one) {
            fetched.push(one);
        }
    }
    Ok(fetched)
}

/// The image IDs the daemon's Docker gives the base images of `definition` that the daemon
/// resolved without a digest: images only that Docker has, which its BuildKit took from
/// its image store.
pub(super) async fn daemon_pins(
    docker: &bollard::Docker,
    definition: &pb::Definition,
) -> anyhow::Result<BTreeMap<String, String>> {
    /// Docker answers an inspect of its own image at once; a daemon that does not is not
    /// waited for.
    const INSPECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
    let mut pins = BTreeMap::new();
    for reference in super::route::base_images(definition) {
        if reference.contains('@') || pins.contains_key(&reference) {
            continue;
        }
        let inspected = tokio::time::timeout(INSPECT_TIMEOUT, docker.inspect_image(&reference))
            .await
            .map_err(|_| anyhow::anyhow!("Docker gave no answer in {}s", INSPECT_TIMEOUT.as_secs()))
            .and_then(|r| Ok(r?))
            .with_context(|| format!("inspecting the base image {reference} for the provenance"))?;
        if let Some(id) = inspected.id {
            pins.insert(reference, id);
        }
    }
    Ok(pins)
}

/// For each op the solver solved, its outputs that hold the image `result`'s first layers,
/// and how many (BuildKit lists a step's layer chain when its blobs exist, which they do for
/// the exported image's layers): an output whose snapshot chain is a prefix of the image's,
/// counted in the layers the image keeps (empty ones dropped, as `export::plan_image`).
fn step_layers(
    journal: &[crate::solver::SolvedVertex],
    snapshots: &crate::solver::Snapshots,
    result: &crate::solver::Ref,
) -> anyhow::Result<BTreeMap<String, Vec<(usize, usize)>>> {
    use crate::solver::Ref;
    let Ref::Snapshot(image) = result else {
        return Ok(BTreeMap::new());
    };
    let image_chain: Vec<String> = snapshots
        .chain_bottom_up(&image.id)?
        .into_iter()
        .map(|r| r.id)
        .collect();
    let kept = super::export::kept_layer_ids(snapshots, result)?;
    let mut layers: BTreeMap<String, Vec<(usize, usize)>> = BTreeMap::new();
    for vertex in journal {
        for (output, r) in vertex.outputs.iter().enumerate() {
            let Ref::Snapshot(rec) = r else {
                continue;
            };
            let chain: Vec<String> = snapshots
                .chain_bottom_up(&rec.id)?
                .into_iter()
                .map(|r| r.id)
                .collect();
            if !image_chain.starts_with(&chain) {
                continue;
            }
            let count = chain.iter().filter(|id| kept.contains(id)).count();
            if count > 0 {
                layers
                    .entry(vertex.digest.clone())
                    .or_default()
                    .push((output, count));
            }
        }
    }
    Ok(layers)
}

/// The base images of `definition`, each with the digest the build pinned it to.
fn image_materials(
    definition: &pb::Definition,
    images: &BuildImages,
    daemon_pins: &BTreeMap<String, String>,
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
        let Some(digest) = digest
            .or_else(|| daemon_pins.get(&name).cloned())
            .or_else(|| images.pinned(&name, &platform))
        else {
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
