//! Source ops: `local://NAME` (a directory of the client, walked and checksummed) and
//! `docker-image://REF` (an image's layers, each extracted once into a snapshot shared by
//! every build that uses it, keyed by its chain ID), and `oci-layout://NAME@DIGEST` (an image
//! of an OCI layout directory of the client, extracted the same way).

use std::io::Read;
use std::sync::Arc;

use bud_frontend::dockerignore::PatternMatcher;
use bud_proto::pb;
use futures_util::future::{BoxFuture, FutureExt as _};
use sha2::{Digest as _, Sha256};
use tokio_util::sync::CancellationToken;

use crate::cache::meta::SnapshotKind;
use crate::content::{ContentStore, Digest};
use crate::source::context::{ContextSnapshot, Exclusions};

use super::snapshots::{Ref, Snapshots};
use super::{SolveError, Solved, Solver, graph::Vertex};

/// A local source as walked for this build, with the `.dockerignore` rules that apply to
/// every read of it.
#[derive(Debug)]
pub struct LocalContext {
    /// The source's name (`context`, a `--build-context` name).
    pub name: String,
    /// Every path the walk found (excluded ones left out), with the metadata and checksums
    /// cache keys are made of.
    pub snapshot: ContextSnapshot,
    /// The `.dockerignore` patterns, also applied to each step's reads of the context.
    pub excludes: Option<PatternMatcher>,
}

impl LocalContext {
    /// Whether the `.dockerignore` patterns exclude `path` (relative to the context, a
    /// leading `/` ignored).
    pub(crate) fn excluded(&self, path: &str) -> bool {
        self.excludes
            .as_ref()
            .is_some_and(|m| m.matches(path.trim_start_matches('/')))
    }
}

struct MatcherExclusions<'a>(&'a PatternMatcher);

impl Exclusions for MatcherExclusions<'_> {
    fn excluded(&self, path: &str) -> bool {
        self.0.matches(path)
    }
    fn prunable(&self, dir: &str) -> bool {
        self.0.can_skip_excluded_dir(dir)
    }
}

/// One layer of a resolved image: its diff ID and how to read it as an uncompressed tar.
pub struct ImageLayer {
    /// `sha256:` of the uncompressed tar, as the image config lists it: the layer is
    /// extracted once per chain of diff IDs.
    pub diff_id: String,
    /// Opens the tar, called only when the state root lacks the layer.
    pub open: Box<dyn FnOnce() -> std::io::Result<Box<dyn Read + Send>> + Send>,
}

/// A base image an [`ImageProvider`] found: its layers, to be extracted into snapshots.
pub struct ResolvedImage {
    /// The manifest digest the reference resolved to (shown in progress and metadata).
    pub manifest_digest: String,
    /// Bottom first, as `rootfs.diff_ids` lists them.
    pub layers: Vec<ImageLayer>,
}

/// Why an [`ImageProvider`] has no image: the provider's own error, kept whole so that its
/// causes reach the printer.
pub type ImageProviderError = Box<dyn std::error::Error + Send + Sync>;

/// Where images come from (Docker's local store, a registry): implemented by the image
/// source, faked in tests.
pub trait ImageProvider: Send + Sync {
    /// The image `reference` names for `platform` (the host's when `None`), its layers ready
    /// to open.
    fn resolve<'a>(
        &'a self,
        reference: &'a str,
        platform: Option<&'a pb::Platform>,
    ) -> BoxFuture<'a, Result<ResolvedImage, ImageProviderError>>;
}

/// Extracts a layer and, on the way, keeps its uncompressed tar in the content store under
/// its diff ID (verified), so that exports can send Docker and registries the very bytes
/// the base image had.
fn extract_and_keep(
    reader: Box<dyn Read + Send>,
    dir: &std::path::Path,
    content: &ContentStore,
    diff_id: &str,
) -> Result<(), SolveError> {
    let expected = Digest::parse(diff_id).map_err(|source| SolveError::DiffId {
        diff_id: diff_id.to_owned(),
        source,
    })?;
    if content.exists(&expected) {
        return extract_whole(reader, dir, diff_id);
    }
    let content_err = |source: crate::content::ContentError| SolveError::KeepLayer {
        diff_id: diff_id.to_owned(),
        source,
    };
    let mut tee = Tee {
        inner: reader,
        copy: content.writer().map_err(content_err)?,
    };
    extract_whole(&mut tee, dir, diff_id)?;
    tee.copy.commit(Some(&expected)).map_err(content_err)?;
    Ok(())
}

/// Extracts the layer tar `reader` into `dir`, then reads it to its end: past the tar's
/// end-of-archive blocks (padding a stored copy must keep), and, after a failed
/// extraction, through the rest, because a reader that checks its blob against a digest
/// (an OCI layout's) does so at the end, and a mismatch explains the failure better than
/// the decompressor or the tar reader that tripped on the damage.
fn extract_whole(
    mut reader: impl Read,
    dir: &std::path::Path,
    diff_id: &str,
) -> Result<(), SolveError> {
    let extracted = crate::snapshot::apply::extract_layer(&mut reader, dir);
    let drained = std::io::copy(&mut reader, &mut std::io::sink());
    let reading = SolveError::failed(format!("reading layer {diff_id}"));
    match (extracted, drained) {
        (Ok(()), Ok(_)) => Ok(()),
        (Ok(()), Err(e)) => Err(reading(e)),
        (Err(_), Err(e)) if crate::source::oci_layout::is_digest_mismatch(&e) => Err(reading(e)),
        (Err(e), _) => Err(e.into()),
    }
}

struct Tee<W: std::io::Write> {
    inner: Box<dyn Read + Send>,
    copy: W,
}

impl<W: std::io::Write> Read for Tee<W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.write_all(&buf[..n])?;
        Ok(n)
    }
}

impl Solver {
    pub(super) async fn solve_source(
        &self,
        vertex: &Vertex,
        src: &pb::SourceOp,
        cancel: &CancellationToken,
    ) -> Result<Solved, SolveError> {
        let id = src.identifier.as_str();
        if let Some(name) = id.strip_prefix("local://") {
            self.progress.started(&vertex.digest, &vertex.name);
            let result = self.local(name, src).await;
            let shown = result
                .as_ref()
                .err()
                .map(|e| crate::error_chain::error_chain(e));
            self.progress.completed(&vertex.digest, shown);
            let ctx = Arc::new(result?);
            let checksum = ctx.snapshot.checksum("");
            if let Some(history) = &self.history {
                history.context_solved(&ctx, &checksum);
            }
            let key = format!("{}:{checksum}", vertex.digest);
            return Ok(Solved {
                key,
                outputs: vec![Ref::Context(ctx)],
            });
        }
        let platform = vertex.op.platform.as_ref();
        if let Some(reference) = id.strip_prefix("docker-image://") {
            let image = self.image(reference, platform);
            return self.image_source(vertex, image, cancel).await;
        }
        if let Some(reference) = id.strip_prefix("oci-layout://") {
            let layout = self.oci_layout(reference, src, platform);
            return self.image_source(vertex, layout, cancel).await;
        }
        let remote = if id.starts_with("http://") || id.starts_with("https://") {
            Some(self.http_source(id, &src.attrs).boxed())
        } else {
            id.strip_prefix("git://")
                .map(|remote| self.git_source(remote, &src.attrs).boxed())
        };
        if let Some(fetch) = remote {
            self.progress.started(&vertex.digest, &vertex.name);
            let result = tokio::select! {
                r = fetch => r,
                _ = cancel.cancelled() => Err(SolveError::Cancelled),
            };
            // The fetchers' messages name their own layer only: show the causes too.
            let shown = result
                .as_ref()
                .err()
                .map(|e| crate::error_chain::error_chain(e));
            self.progress.completed(&vertex.digest, shown);
            let (key, r) = result?;
            return Ok(Solved {
                key,
                outputs: vec![r],
            });
        }
        let scheme = id.split("://").next().unwrap_or(id);
        Err(SolveError::Unsupported(format!("{scheme}:// sources")))
    }

    async fn local(&self, name: &str, src: &pb::SourceOp) -> Result<LocalContext, SolveError> {
        let dir = self.opts.local_dirs.get(name).cloned().ok_or_else(|| {
            SolveError::InvalidDefinition(format!("no local directory named {name:?}"))
        })?;
        let excludes: Vec<String> = match src.attrs.get("local.excludepatterns") {
            Some(json) => serde_json::from_str(json).map_err(|e| {
                SolveError::InvalidDefinition(format!("local.excludepatterns: {e}"))
            })?,
            None => Vec::new(),
        };
        let matcher = if excludes.is_empty() {
            None
        } else {
            Some(PatternMatcher::new(&excludes).map_err(SolveError::failed(".dockerignore"))?)
        };
        let meta = self.snapshots.meta.clone();
        let name = name.to_string();
        tokio::task::spawn_blocking(move || {
            let snapshot = match &matcher {
                Some(m) => ContextSnapshot::walk(&dir, &MatcherExclusions(m), &meta)?,
                None => ContextSnapshot::walk(&dir, &crate::source::context::NoExclusions, &meta)?,
            };
            Ok(LocalContext {
                name,
                snapshot,
                excludes: matcher,
            })
        })
        .await
        .map_err(SolveError::failed("walking the context"))?
    }

    /// Resolves an image and makes sure each of its layers is extracted, bottom up. Each
    /// layer's snapshot is keyed by its chain ID, so images sharing base layers share them.
    /// Solves a base image's vertex: `fetch` (from Docker, a registry or an OCI layout)
    /// shown as the step, stopped by `cancel`.
    async fn image_source(
        &self,
        vertex: &Vertex,
        fetch: impl std::future::Future<Output = Result<(String, Ref), SolveError>>,
        cancel: &CancellationToken,
    ) -> Result<Solved, SolveError> {
        self.progress.started(&vertex.digest, &vertex.name);
        let result = tokio::select! {
            r = fetch => r,
            _ = cancel.cancelled() => Err(SolveError::Cancelled),
        };
        self.progress.completed(
            &vertex.digest,
            result
                .as_ref()
                .err()
                .map(|e| crate::error_chain::error_chain(e)),
        );
        let (key, r) = result?;
        Ok(Solved {
            key,
            outputs: vec![r],
        })
    }

    async fn image(
        &self,
        reference: &str,
        platform: Option<&pb::Platform>,
    ) -> Result<(String, Ref), SolveError> {
        let resolved = self
            .images
            .resolve(reference, platform)
            .await
            .map_err(SolveError::ImageProvider)?;
        self.snapshots
            .import_image(reference, resolved.layers)
            .await
    }

    /// The image of an OCI layout the build context names: the store attribute names the
    /// directory, the reference's digest the manifest or index in it.
    async fn oci_layout(
        &self,
        reference: &str,
        src: &pb::SourceOp,
        platform: Option<&pb::Platform>,
    ) -> Result<(String, Ref), SolveError> {
        let store = src
            .attrs
            .get(pb::attr::oci::STORE_ID)
            .ok_or_else(|| SolveError::InvalidDefinition(format!("{reference}: no oci.store")))?;
        let dir = self.opts.oci_layouts.get(store).ok_or_else(|| {
            SolveError::InvalidDefinition(format!("no OCI layout named {store:?}"))
        })?;
        let digest = reference.rsplit_once('@').map(|(_, d)| d).ok_or_else(|| {
            SolveError::InvalidDefinition(format!("{reference}: an OCI layout needs a digest"))
        })?;
        let wanted = match platform {
            Some(p) => crate::registry::Platform::new(&p.os, &p.architecture, &p.variant),
            None => {
                let host = bud_frontend::convert::Platform::host();
                crate::registry::Platform::new(&host.os, &host.architecture, &host.variant)
            }
        };
        let layout = crate::source::oci_layout::OciLayout::new(dir);
        let image = {
            let layout = layout.clone();
            let digest = digest.to_owned();
            tokio::task::spawn_blocking(move || layout.image(&digest, &wanted))
                .await
                .map_err(SolveError::failed("reading an OCI layout"))?
                .map_err(SolveError::Layout)?
        };
        let layers = image
            .layers
            .into_iter()
            .map(|(blob, diff_id)| {
                let layout = layout.clone();
                ImageLayer {
                    diff_id: diff_id.to_string(),
                    open: Box::new(move || layout.open_layer(&blob)),
                }
            })
            .collect();
        self.snapshots.import_image(reference, layers).await
    }
}

impl Snapshots {
    /// Extracts the layers of the image `reference`, bottom up, each once: a layer's
    /// snapshot is keyed by its chain ID, so images sharing base layers share them, wherever
    /// they came from (a registry, Docker, an OCI layout, an image a daemon built and bud
    /// read back for its SBOM). Returns the image's cache key and its topmost snapshot,
    /// leased to this process.
    pub async fn import_image(
        &self,
        reference: &str,
        layers: Vec<ImageLayer>,
    ) -> Result<(String, Ref), SolveError> {
        let mut parent = Ref::Scratch;
        let mut chain_id = String::new();
        for layer in layers {
            chain_id = if chain_id.is_empty() {
                layer.diff_id.clone()
            } else {
                format!(
                    "sha256:{}",
                    hex::encode(Sha256::digest(format!("{chain_id} {}", layer.diff_id)))
                )
            };
            let key = format!("image-layer:{chain_id}");
            if let Some(hit) = self.lookup(&key)? {
                parent = hit;
                continue;
            }
            let ws = self.workspace()?;
            let upper = ws.upper();
            let open = layer.open;
            let content = self.content.clone();
            let diff_id = layer.diff_id.clone();
            tokio::task::spawn_blocking(move || -> Result<(), SolveError> {
                let reader = open().map_err(SolveError::failed("reading layer"))?;
                extract_and_keep(reader, &upper, &content, &diff_id)
            })
            .await
            .map_err(SolveError::failed("extracting a layer"))??;
            let committed = self.commit(
                ws,
                &parent,
                SnapshotKind::ImageLayer,
                &key,
                &format!("{reference} layer {}", layer.diff_id),
            )?;
            if let Some(id) = committed.snapshot_id() {
                // The registry's tar, not one bud wrote.
                self.meta.set_diff_id(id, &layer.diff_id, 0)?;
            }
            parent = committed;
        }
        let key = format!("image:{chain_id}");
        Ok((key, parent))
    }
}
