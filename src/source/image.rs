//! Base images (`FROM`): a reference and platform to an image config and layer blobs in the
//! content store, looked for where `docker build` looks.
//!
//! 1. The local Docker daemon, unless a pull is forced: an image it has under that name is
//!    used as is, as `docker build` uses local images. Its layers are exported once
//!    (`GET /images/{name}/get`, a `docker save` archive) and stored uncompressed, so their
//!    digests are their diff IDs; later builds find them stored and skip the export.
//! 2. The registry, through [`crate::registry::Puller`], which reuses an earlier
//!    resolution of the tag unless a pull is forced.

use std::collections::HashMap;
use std::io::{self, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use bollard::Docker;
use bollard::errors::Error as BollardError;
use bud_frontend::image::Image;
use bud_frontend::reference::Reference;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::content::{ContentError, ContentStore, Digest, DigestError};
use crate::exporter::OCI_LAYER_TAR;
use crate::registry::{Platform, PullOptions, Puller, RegistryConfig, RegistryError};

/// Where a resolved image came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageOrigin {
    /// The local Docker daemon's image store.
    Docker,
    /// The registry, just now.
    Registry,
    /// An earlier resolution from the registry, all of whose blobs are still stored.
    Cache,
}

/// A resolved image whose config and layers are in the content store.
#[derive(Debug, Clone)]
pub struct PulledImage {
    /// The normalised reference, `latest` filled in.
    pub reference: Reference,
    /// The platform manifest's digest; `None` for a Docker image without one for this
    /// repository (built or loaded locally, never pushed or pulled).
    pub manifest_digest: Option<Digest>,
    /// The image config as stored.
    pub config: Image,
    /// Also the image ID.
    pub config_digest: Digest,
    /// The layers, base first, as the manifest (or Docker's `rootfs`) lists them.
    pub layers: Vec<PulledLayer>,
    /// Where it was found.
    pub origin: ImageOrigin,
}

/// One layer blob as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledLayer {
    /// The stored blob: compressed as the registry served it, or the tar itself.
    pub digest: Digest,
    /// The uncompressed tar's digest (`rootfs.diff_ids`).
    pub diff_id: Digest,
    /// The media type the manifest gives it (OCI's plain tar for a layer from Docker).
    pub media_type: String,
    /// The stored blob's size in bytes.
    pub size: u64,
}

/// Why a base image could not be resolved, stored or opened.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The registry's answer or the pull failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The content store could not keep or find a blob.
    #[error(transparent)]
    Content(#[from] ContentError),
    /// The stored config is not an image config.
    #[error("{reference}: invalid image config: {message}")]
    InvalidConfig {
        /// The image as Docker's API names it.
        reference: String,
        /// What the config parser found wrong.
        message: String,
    },
    /// Docker's API refused or failed a request about the image.
    #[error("{reference}: {action}")]
    Docker {
        /// The image as Docker's API names it.
        reference: String,
        /// What bud asked Docker for.
        action: &'static str,
        /// Docker's answer.
        #[source]
        source: BollardError,
    },
    /// `docker save`'s archive of the image does not hold the image Docker describes.
    #[error("{reference}: the image Docker exported is unusable")]
    Export {
        /// The image as Docker's API names it.
        reference: String,
        /// What is wrong with it.
        #[source]
        source: ExportError,
    },
    /// A stored layer blob could not be read as a tar stream.
    #[error("opening layer {digest}")]
    OpenLayer {
        /// The blob's digest.
        digest: Digest,
        /// Why it could not be read.
        #[source]
        source: io::Error,
    },
}

/// What is wrong with an image exported from Docker.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The task reading the archive ended without an answer.
    #[error("reading the archive")]
    Task(#[source] tokio::task::JoinError),
    /// The archive itself is not a `docker save` archive.
    #[error(transparent)]
    Archive(ArchiveError),
    /// The config in the archive is not the one the image ID names.
    #[error("its config is {config}, but the image ID is {id}")]
    ConfigMismatch {
        /// The config the archive holds.
        config: Digest,
        /// The image ID Docker reported.
        id: Digest,
    },
    /// The archive's layers differ from the image's `rootfs`.
    #[error("its layers are not the ones the image lists (rootfs)")]
    LayersMismatch,
    /// Docker's image ID is not a digest.
    #[error("image ID")]
    ImageId(#[source] DigestError),
    /// One of the image's `rootfs` diff IDs is not a digest.
    #[error("layer list")]
    LayerList(#[source] DigestError),
    /// The stored config blob could not be read.
    #[error("reading {}", path.display())]
    ReadConfig {
        /// Where the store keeps it.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: io::Error,
    },
}

/// Resolves base images from Docker and registries into one content store.
#[derive(Debug, Clone)]
pub struct ImageSource {
    puller: Puller,
    docker: Option<Docker>,
}

impl ImageSource {
    /// `docker`: the daemon to look in first; `None` goes straight to registries.
    pub fn new(store: ContentStore, registry: RegistryConfig, docker: Option<Docker>) -> Self {
        ImageSource {
            puller: Puller::new(store, registry),
            docker,
        }
    }

    /// The content store the images' blobs are kept in.
    pub fn store(&self) -> &ContentStore {
        self.puller.store()
    }

    /// The image `reference` names for `opts.platform`, its blobs stored.
    pub async fn resolve(
        &self,
        reference: &Reference,
        opts: &PullOptions,
    ) -> Result<PulledImage, ImageError> {
        let reference = reference.clone().with_default_tag();
        if !opts.pull
            && let Some(docker) = &self.docker
        {
            match self
                .resolve_in_docker(docker, &reference, &opts.platform)
                .await
            {
                Ok(Some(image)) => return Ok(image),
                Ok(None) => {}
                // The daemon is a shortcut; the registry still has the image.
                Err(e) => tracing::warn!(
                    "not using Docker's copy: {}",
                    crate::error_chain::error_chain(&e)
                ),
            }
        }
        let (pulled, origin) = match self.puller.cached(&reference, &opts.platform) {
            Some(pulled) if !opts.pull => (pulled, ImageOrigin::Cache),
            _ => {
                let forced = PullOptions {
                    pull: true,
                    ..opts.clone()
                };
                (
                    self.puller.pull(&reference, &forced).await?,
                    ImageOrigin::Registry,
                )
            }
        };
        let layers = pulled
            .manifest
            .layers
            .iter()
            .zip(&pulled.config.rootfs.diff_ids)
            .map(|(desc, diff_id)| {
                Ok(PulledLayer {
                    digest: Digest::parse(&desc.digest)?,
                    diff_id: Digest::parse(diff_id)?,
                    media_type: desc.media_type.clone(),
                    size: desc.size,
                })
            })
            .collect::<Result<Vec<_>, DigestError>>()
            .map_err(RegistryError::from)?;
        Ok(PulledImage {
            reference: pulled.reference,
            manifest_digest: Some(pulled.manifest_digest),
            config: pulled.config,
            config_digest: pulled.config_digest,
            layers,
            origin,
        })
    }

    /// The layer as an uncompressed tar stream, whatever it is stored as.
    pub fn open_layer(&self, layer: &PulledLayer) -> Result<Box<dyn Read + Send>, ImageError> {
        open_layer(self.store(), &layer.digest)
    }

    /// The image from the Docker daemon, or `None` if it has none under that name for the
    /// platform.
    async fn resolve_in_docker(
        &self,
        docker: &Docker,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<Option<PulledImage>, ImageError> {
        let name = docker_name(reference);
        let docker_error = |action, source| ImageError::Docker {
            reference: name.clone(),
            action,
            source,
        };
        let inspect = match docker.inspect_image(&name).await {
            Ok(inspect) => inspect,
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => return Ok(None),
            Err(e) => return Err(docker_error("inspecting the image", e)),
        };
        let offered = Platform::new(
            inspect.os.as_deref().unwrap_or_default(),
            inspect.architecture.as_deref().unwrap_or_default(),
            inspect.variant.as_deref().unwrap_or_default(),
        );
        if !platform.matches(&offered) {
            tracing::debug!("{name}: Docker has it for {offered}, not {platform}");
            return Ok(None);
        }
        let (config, config_digest, diff_ids) =
            stored_from_docker(self, docker, &name, &inspect).await?;
        let store = self.store();
        let layers = diff_ids
            .iter()
            .map(|diff_id| {
                Ok(PulledLayer {
                    digest: diff_id.clone(),
                    diff_id: diff_id.clone(),
                    media_type: OCI_LAYER_TAR.to_owned(),
                    size: store.size(diff_id)?,
                })
            })
            .collect::<Result<Vec<_>, ContentError>>()?;
        let repository = reference.name();
        let manifest_digest = inspect
            .repo_digests
            .unwrap_or_default()
            .iter()
            .find_map(|d| {
                let (repo, digest) = d.rsplit_once('@')?;
                let repo = Reference::parse(repo).ok()?;
                (repo.name() == repository).then(|| Digest::parse(digest).ok())?
            });
        Ok(Some(PulledImage {
            reference: reference.clone(),
            manifest_digest,
            config,
            config_digest,
            layers,
            origin: ImageOrigin::Docker,
        }))
    }

    /// Streams `docker save` of `name` into the store and checks it holds the image.
    async fn export(
        &self,
        docker: &Docker,
        name: &str,
        config_digest: &Digest,
        diff_ids: &[Digest],
    ) -> Result<(), ImageError> {
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(16);
        let store = self.store().clone();
        let reader = tokio::task::spawn_blocking(move || {
            import_archive(
                &store,
                ChannelReader {
                    rx,
                    current: Bytes::new(),
                },
            )
        });
        let mut body = docker.export_image(name);
        let mut failure = None;
        while let Some(chunk) = body.next().await {
            let item = chunk.map_err(|e| {
                let message = e.to_string();
                failure = Some(e);
                io::Error::other(message)
            });
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                break;
            }
        }
        drop(tx);
        let export_error = |source: ExportError| ImageError::Export {
            reference: name.to_owned(),
            source,
        };
        let imported = reader
            .await
            .map_err(|e| export_error(ExportError::Task(e)))?;
        if let Some(source) = failure {
            return Err(ImageError::Docker {
                reference: name.to_owned(),
                action: "exporting the image",
                source,
            });
        }
        let (config, layers) = imported.map_err(|e| export_error(ExportError::Archive(e)))?;
        if config != *config_digest {
            return Err(export_error(ExportError::ConfigMismatch {
                config,
                id: config_digest.clone(),
            }));
        }
        if layers != diff_ids {
            return Err(export_error(ExportError::LayersMismatch));
        }
        Ok(())
    }
}

/// An image Docker holds, by ID or name, with its config and uncompressed layer tars stored
/// in `store`: the image a `moby` exporter wrote, for bud to push or archive itself.
pub async fn import_from_docker(
    store: &ContentStore,
    docker: &Docker,
    name: &str,
) -> Result<(Image, Digest, Vec<Digest>), ImageError> {
    let inspect = docker
        .inspect_image(name)
        .await
        .map_err(|source| ImageError::Docker {
            reference: name.to_owned(),
            action: "inspecting the image",
            source,
        })?;
    let source = ImageSource::new(store.clone(), RegistryConfig::default(), None);
    stored_from_docker(&source, docker, name, &inspect).await
}

/// The config, config digest and layer diff IDs of the image Docker describes by `inspect`,
/// exported from Docker into the content store unless every blob is there already.
async fn stored_from_docker(
    source: &ImageSource,
    docker: &Docker,
    name: &str,
    inspect: &bollard::models::ImageInspect,
) -> Result<(Image, Digest, Vec<Digest>), ImageError> {
    let export_error = |source: ExportError| ImageError::Export {
        reference: name.to_owned(),
        source,
    };
    let config_digest = Digest::parse(inspect.id.as_deref().unwrap_or_default())
        .map_err(|e| export_error(ExportError::ImageId(e)))?;
    let diff_ids = inspect
        .root_fs
        .as_ref()
        .and_then(|r| r.layers.as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|d| Digest::parse(d))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| export_error(ExportError::LayerList(e)))?;
    let store = source.store();
    if !(store.exists(&config_digest) && diff_ids.iter().all(|d| store.exists(d))) {
        source
            .export(docker, name, &config_digest, &diff_ids)
            .await?;
    }
    let config_path = store.path(&config_digest);
    let config_bytes = std::fs::read(&config_path).map_err(|source| {
        export_error(ExportError::ReadConfig {
            path: config_path.clone(),
            source,
        })
    })?;
    let config = Image::from_json(&config_bytes).map_err(|e| ImageError::InvalidConfig {
        reference: name.to_owned(),
        message: e.to_string(),
    })?;
    Ok((config, config_digest, diff_ids))
}

/// The name Docker's API knows the image by: the short form for Docker Hub.
fn docker_name(reference: &Reference) -> String {
    reference.familiar()
}

/// Opens a stored layer blob as an uncompressed tar: gzip (one member or several), zstd or
/// plain, told apart by their magic numbers rather than trusting a media type.
pub fn open_layer(
    store: &ContentStore,
    digest: &Digest,
) -> Result<Box<dyn Read + Send>, ImageError> {
    let open_error = |source| ImageError::OpenLayer {
        digest: digest.clone(),
        source,
    };
    let reader = BufReader::with_capacity(256 * 1024, store.open(digest)?);
    super::oci_layout::decompressing(reader).map_err(open_error)
}

/// A blocking reader over chunks sent from an async task.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.current = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// `manifest.json` of a `docker save` archive (one entry per image).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SaveManifest {
    config: String,
    layers: Vec<String>,
}

/// Why a `docker save` archive could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The tar stream could not be read.
    #[error("reading the archive")]
    Read(#[from] io::Error),
    /// The content store could not keep a file of it.
    #[error(transparent)]
    Content(#[from] ContentError),
    /// `manifest.json` is not JSON of the expected shape.
    #[error("manifest.json")]
    Manifest(#[source] serde_json::Error),
    /// `manifest.json` is absent or lists no image.
    #[error("manifest.json: missing or empty")]
    NoManifest,
    /// A file `manifest.json` names is not in the archive.
    #[error("{0}: listed in manifest.json but not in the archive")]
    Missing(String),
}

/// Stores the config and layer files of a `docker save` archive (both the classic layout
/// and the OCI one of Docker 25+) and returns the config's and the layers' digests.
/// Files are stored as they stream by, since `manifest.json` comes last.
fn import_archive(
    store: &ContentStore,
    input: impl Read,
) -> Result<(Digest, Vec<Digest>), ArchiveError> {
    let mut archive = tar::Archive::new(input);
    let mut files: HashMap<PathBuf, Digest> = HashMap::new();
    let mut links: HashMap<PathBuf, PathBuf> = HashMap::new();
    let mut manifest: Option<Vec<SaveManifest>> = None;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = normalize(&entry.path()?);
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            if let Some(target) = entry.link_name()? {
                // Symlinks are relative to their directory, hard links to the root.
                let base = if kind.is_symlink() {
                    path.parent().unwrap_or(Path::new("")).to_owned()
                } else {
                    PathBuf::new()
                };
                links.insert(path, normalize(&base.join(target)));
            }
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        if path == Path::new("manifest.json") {
            let mut text = Vec::new();
            entry.read_to_end(&mut text)?;
            manifest = Some(serde_json::from_slice(&text).map_err(ArchiveError::Manifest)?);
        } else if is_blob_file(&path) {
            let digest = store.import(&mut entry, None)?;
            files.insert(path, digest);
        }
    }
    let manifest = manifest
        .and_then(|m| m.into_iter().next())
        .ok_or(ArchiveError::NoManifest)?;
    let lookup = |name: &str| {
        let mut path = normalize(Path::new(name));
        // Bounded: a cycle of links must not loop forever.
        for _ in 0..8 {
            match links.get(&path) {
                Some(target) => path = target.clone(),
                None => break,
            }
        }
        files
            .get(&path)
            .cloned()
            .ok_or_else(|| ArchiveError::Missing(name.to_owned()))
    };
    let config = lookup(&manifest.config)?;
    let layers = manifest
        .layers
        .iter()
        .map(|l| lookup(l))
        .collect::<Result<_, _>>()?;
    Ok((config, layers))
}

/// The files worth storing: layer tars, the config, and OCI-layout blobs; not the legacy
/// per-layer `json` and `VERSION` files.
fn is_blob_file(path: &Path) -> bool {
    let name = path.to_string_lossy();
    name.ends_with("/layer.tar")
        || (path.components().count() == 1 && name.ends_with(".json"))
        || name.starts_with("blobs/")
}

/// Drops `.` and leading `/`, resolves `..` lexically (never above the archive's root).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(builder: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]) {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, path, data).unwrap();
    }

    #[test]
    fn classic_save_archives_with_shared_layers_are_imported() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::new(dir.path().join("content")).unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        append(&mut builder, "aaa/layer.tar", b"layer one");
        append(&mut builder, "aaa/json", b"{}");
        append(&mut builder, "aaa/VERSION", b"1.0");
        // Docker links a layer that occurs twice to its first copy.
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        builder
            .append_link(&mut link, "bbb/layer.tar", "../aaa/layer.tar")
            .unwrap();
        append(&mut builder, "cfg.json", b"{\"config\":{}}");
        append(
            &mut builder,
            "manifest.json",
            br#"[{"Config":"cfg.json","RepoTags":["x:1"],"Layers":["aaa/layer.tar","bbb/layer.tar"]}]"#,
        );
        let archive = builder.into_inner().unwrap();
        let (config, layers) = import_archive(&store, &archive[..]).unwrap();
        assert_eq!(config, Digest::of(b"{\"config\":{}}"));
        assert_eq!(layers, vec![Digest::of(b"layer one"); 2]);
        assert!(store.exists(&layers[0]));
        assert!(!store.exists(&Digest::of(b"1.0")));
    }

    #[test]
    fn a_layer_missing_from_the_archive_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::new(dir.path().join("content")).unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        append(&mut builder, "cfg.json", b"{}");
        append(
            &mut builder,
            "manifest.json",
            br#"[{"Config":"cfg.json","Layers":["../../etc/layer.tar"]}]"#,
        );
        let archive = builder.into_inner().unwrap();
        let err = import_archive(&store, &archive[..]).unwrap_err();
        assert!(matches!(err, ArchiveError::Missing(_)), "{err}");
    }

    #[test]
    fn layers_open_uncompressed_whatever_their_compression() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::new(dir.path().join("content")).unwrap();
        let data = b"tar bytes, pretend".repeat(1000);
        let mut gzip = Vec::new();
        crate::registry::compress::gzip_parallel(&data[..], &mut gzip, 6).unwrap();
        let mut zstd = Vec::new();
        crate::registry::compress::zstd_parallel(&data[..], &mut zstd, 3).unwrap();
        let mut single_gzip =
            flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        single_gzip.write_all(&data).unwrap();
        let single_gzip = single_gzip.finish().unwrap();
        for blob in [&data, &gzip, &zstd, &single_gzip] {
            let digest = store.put(blob).unwrap();
            let mut back = Vec::new();
            open_layer(&store, &digest)
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            assert_eq!(back, data);
        }
        let empty = store.put(b"").unwrap();
        let mut back = Vec::new();
        open_layer(&store, &empty)
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert!(back.is_empty());
    }
}
