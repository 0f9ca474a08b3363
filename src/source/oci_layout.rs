//! An OCI image layout directory on the client (`--build-context NAME=oci-layout://PATH`):
//! `index.json` names manifests by tag, `blobs/<alg>/<hex>` holds every blob. Read as buildx
//! reads it: a tag is looked up in `index.json` by `org.opencontainers.image.ref.name`, an
//! index with a single entry stands for any tag, and an image index is narrowed to the
//! build's platform.
//!
//! Unlike containerd's local store, which buildx serves layouts with, a blob is only read
//! where it lies in the layout: a symlink under `blobs/` may point within the layout, never
//! out of it, and a blob must be a regular file (a FIFO would hang the build). Every blob is
//! checked against its digest before it is used.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use sha2::{Digest as _, Sha256};

use bud_frontend::image::Image;
use serde::Deserialize;

use crate::content::Digest;
use crate::exporter::oci_layout::ANNOTATION_REF_NAME;
use crate::registry::Platform;
use crate::registry::manifest::{Descriptor, Document, Manifest, select};

/// Why an OCI layout could not give the image asked for.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// `index.json` or a blob could not be opened or read (missing, unreadable).
    #[error("reading {path}")]
    Read {
        /// The file, or the layout directory when it could not be opened itself.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// What the layout holds is not what an OCI layout may hold: `index.json` that is not
    /// JSON, a malformed digest, an oversized manifest, layers and diff IDs that disagree,
    /// an index inside an index.
    #[error("{path}: {message}")]
    Invalid {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A manifest or index blob that does not parse as one.
    #[error("{path}")]
    Document {
        /// The blob's path under `blobs/`.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: crate::registry::manifest::DocumentError,
    },
    /// No `index.json` entry carries the tag as its `org.opencontainers.image.ref.name`,
    /// and there is more than one, so none stands for it.
    #[error("{layout}: no manifest is tagged {tag:?} and index.json lists more than one")]
    NoTag {
        /// The layout directory.
        layout: PathBuf,
        /// The tag asked for (`latest` when the context names none).
        tag: String,
    },
    /// A blob's content does not hash to the digest it is stored under.
    #[error("{layout}: blob {digest} does not match its digest")]
    Corrupt {
        /// The layout directory.
        layout: PathBuf,
        /// The digest it should have.
        digest: String,
    },
    /// `blobs/<alg>/<hex>` resolves outside the layout directory (a symlink out of it, an
    /// absolute one, a magic link): refused rather than read.
    #[error("{layout}: blob {digest} leads out of the layout (through a symlink)")]
    Escapes {
        /// The layout directory.
        layout: PathBuf,
        /// The blob's digest.
        digest: String,
    },
    /// A blob that is a FIFO, a device or a directory: reading it could hang or mean
    /// nothing.
    #[error("{path}: a blob must be a regular file")]
    NotAFile {
        /// The blob's path in the layout.
        path: PathBuf,
    },
    /// The digest names an image index with no manifest for the build's platform.
    #[error("{layout}: the image index {digest} has no manifest for {platform}")]
    NoPlatform {
        /// The layout directory.
        layout: PathBuf,
        /// The index's digest.
        digest: String,
        /// The platform looked for, `os/arch[/variant]`.
        platform: String,
    },
}

/// One image of a layout, for one platform.
#[derive(Debug, Clone)]
pub struct LayoutImage {
    /// The platform manifest's digest.
    pub manifest_digest: String,
    /// The image config, parsed (its diff IDs are already checked against the layers).
    pub config: Image,
    /// The config's bytes as stored.
    pub config_bytes: Vec<u8>,
    /// Layer blob digests, bottom first, with their diff IDs.
    pub layers: Vec<(Digest, Digest)>,
}

/// An OCI layout directory, read in place: nothing is copied until a blob is asked for.
#[derive(Debug, Clone)]
pub struct OciLayout {
    root: PathBuf,
}

#[derive(Deserialize)]
struct IndexFile {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

impl OciLayout {
    /// The layout at `root`; nothing is read yet.
    pub fn new(root: impl Into<PathBuf>) -> OciLayout {
        OciLayout { root: root.into() }
    }

    fn index(&self) -> Result<Vec<Descriptor>, LayoutError> {
        let path = self.root.join("index.json");
        let bytes = std::fs::read(&path).map_err(|source| LayoutError::Read {
            path: path.clone(),
            source,
        })?;
        let index: IndexFile =
            serde_json::from_slice(&bytes).map_err(|e| LayoutError::Invalid {
                path,
                message: e.to_string(),
            })?;
        Ok(index.manifests)
    }

    /// The digest `tag` names: the manifest annotated with it, else the only one there is.
    pub fn resolve_tag(&self, tag: &str) -> Result<String, LayoutError> {
        let manifests = self.index()?;
        let tagged = manifests
            .iter()
            .find(|d| d.annotations.get(ANNOTATION_REF_NAME).map(String::as_str) == Some(tag));
        let found = match (tagged, manifests.as_slice()) {
            (Some(d), _) => d,
            (None, [only]) => only,
            (None, _) => {
                return Err(LayoutError::NoTag {
                    layout: self.root.clone(),
                    tag: tag.to_owned(),
                });
            }
        };
        Digest::parse(&found.digest).map_err(|e| LayoutError::Invalid {
            path: self.root.join("index.json"),
            message: format!("digest {:?}: {e}", found.digest),
        })?;
        Ok(found.digest.clone())
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join(blob_rel(digest))
    }

    /// Opens blob `digest` for reading without leaving the layout: `blobs/<alg>/<hex>`
    /// resolved beneath the layout's directory (a relative symlink may point within it; one
    /// out of it, or any absolute one, is refused), opened without blocking and refused
    /// unless it is a regular file.
    fn open_blob(&self, digest: &Digest) -> Result<File, LayoutError> {
        let path = self.blob_path(digest);
        let read = |source: io::Error| LayoutError::Read {
            path: path.clone(),
            source,
        };
        let root = rustix::fs::open(
            &self.root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| LayoutError::Read {
            path: self.root.clone(),
            source: e.into(),
        })?;
        let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let beneath = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        let fd = match rustix::fs::openat2(&root, blob_rel(digest), flags, Mode::empty(), beneath) {
            Ok(fd) => fd,
            // EXDEV: the resolution left the directory; ELOOP: a magic link (/proc/…).
            Err(rustix::io::Errno::XDEV | rustix::io::Errno::LOOP) => {
                return Err(LayoutError::Escapes {
                    layout: self.root.clone(),
                    digest: digest.to_string(),
                });
            }
            // Kernels before 5.6 lack openat2, and seccomp filters may refuse it (EPERM):
            // resolve, then compare.
            Err(rustix::io::Errno::NOSYS | rustix::io::Errno::PERM) => {
                return self.open_blob_resolved(digest);
            }
            Err(e) => return Err(read(e.into())),
        };
        let file = File::from(fd);
        let md = file.metadata().map_err(read)?;
        if !md.is_file() {
            return Err(LayoutError::NotAFile { path });
        }
        Ok(file)
    }

    /// `open_blob` where openat2 is missing: the blob's real path must lie under the
    /// layout's real path.
    fn open_blob_resolved(&self, digest: &Digest) -> Result<File, LayoutError> {
        let path = self.blob_path(digest);
        let read = |path: &Path, source: io::Error| LayoutError::Read {
            path: path.to_owned(),
            source,
        };
        let root = std::fs::canonicalize(&self.root).map_err(|e| read(&self.root, e))?;
        let real = std::fs::canonicalize(&path).map_err(|e| read(&path, e))?;
        if !real.starts_with(&root) {
            return Err(LayoutError::Escapes {
                layout: self.root.clone(),
                digest: digest.to_string(),
            });
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_NOCTTY)
            .open(&real)
            .map_err(|e| read(&path, e))?;
        let md = file.metadata().map_err(|e| read(&path, e))?;
        if !md.is_file() {
            return Err(LayoutError::NotAFile { path });
        }
        Ok(file)
    }

    /// Blob `digest`, opened as `open_blob` opens it and read once through to check it
    /// against its digest; returned rewound, with its size.
    pub fn open_verified(&self, digest: &Digest) -> Result<(File, u64), LayoutError> {
        let path = self.blob_path(digest);
        let read = |source: io::Error| LayoutError::Read {
            path: path.clone(),
            source,
        };
        let mut file = self.open_blob(digest)?;
        let mut hasher = Sha256::new();
        let size = io::copy(&mut file, &mut hasher).map_err(read)?;
        if Digest::from_hasher(hasher) != *digest {
            return Err(LayoutError::Corrupt {
                layout: self.root.clone(),
                digest: digest.to_string(),
            });
        }
        file.rewind().map_err(read)?;
        Ok((file, size))
    }

    /// A small blob (a manifest, an index, a config), checked against its digest.
    fn read_blob(&self, digest: &str) -> Result<Vec<u8>, LayoutError> {
        let parsed = Digest::parse(digest).map_err(|e| LayoutError::Invalid {
            path: self.root.clone(),
            message: format!("digest {digest:?}: {e}"),
        })?;
        let path = self.blob_path(&parsed);
        let mut bytes = Vec::new();
        self.open_blob(&parsed)?
            .take(MAX_METADATA_BLOB + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| LayoutError::Read {
                path: path.clone(),
                source,
            })?;
        if bytes.len() as u64 > MAX_METADATA_BLOB {
            return Err(LayoutError::Invalid {
                path,
                message: format!(
                    "larger than the {} MiB a manifest, index or config may be",
                    MAX_METADATA_BLOB >> 20
                ),
            });
        }
        if Digest::of(&bytes) != parsed {
            return Err(LayoutError::Corrupt {
                layout: self.root.clone(),
                digest: digest.to_owned(),
            });
        }
        Ok(bytes)
    }

    /// The image `digest` names for `platform`: the manifest itself, or an index's entry for
    /// the platform.
    pub fn image(&self, digest: &str, platform: &Platform) -> Result<LayoutImage, LayoutError> {
        let invalid = |what: &str, message: String| LayoutError::Invalid {
            path: self.root.join("blobs").join(what),
            message,
        };
        let document = |what: &str, source| LayoutError::Document {
            path: self.root.join("blobs").join(what),
            source,
        };
        let bytes = self.read_blob(digest)?;
        let (manifest_digest, manifest): (String, Manifest) = match Document::parse(&bytes, None)
            .map_err(|e| document(digest, e))?
        {
            Document::Manifest(m) => (digest.to_owned(), *m),
            Document::Index(index) => {
                let entry = select(&index, platform).ok_or_else(|| LayoutError::NoPlatform {
                    layout: self.root.clone(),
                    digest: digest.to_owned(),
                    platform: platform.to_string(),
                })?;
                let bytes = self.read_blob(&entry.digest)?;
                match Document::parse(&bytes, Some(&entry.media_type))
                    .map_err(|e| document(&entry.digest, e))?
                {
                    Document::Manifest(m) => (entry.digest.clone(), *m),
                    Document::Index(_) => {
                        return Err(invalid(
                            &entry.digest,
                            "an index inside an index is not supported".into(),
                        ));
                    }
                }
            }
        };
        let config_bytes = self.read_blob(&manifest.config.digest)?;
        let config = Image::from_json(&config_bytes)
            .map_err(|e| invalid(&manifest.config.digest, e.to_string()))?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(invalid(
                &manifest_digest,
                format!(
                    "{} layers but {} diff IDs in the config",
                    manifest.layers.len(),
                    config.rootfs.diff_ids.len()
                ),
            ));
        }
        let layers = manifest
            .layers
            .iter()
            .zip(&config.rootfs.diff_ids)
            .map(|(layer, diff_id)| {
                let parse = |d: &str| {
                    Digest::parse(d).map_err(|e| invalid(&manifest_digest, format!("{d:?}: {e}")))
                };
                Ok((parse(&layer.digest)?, parse(diff_id)?))
            })
            .collect::<Result<_, LayoutError>>()?;
        Ok(LayoutImage {
            manifest_digest,
            config,
            config_bytes,
            layers,
        })
    }

    /// A layer blob as an uncompressed tar (gzip, zstd or plain, told by magic numbers),
    /// read once: hashed as the decompressor reads it, and checked against its digest when
    /// the uncompressed stream ends or fails. A blob that does not match its digest is
    /// reported as such, even where it breaks the decompressor first: the rest of the blob is
    /// hashed before the decompressor's error is given. A reader must read to the end (past
    /// a tar's end-of-archive blocks) for the check to be made.
    pub fn open_layer(&self, digest: &Digest) -> io::Result<Box<dyn Read + Send>> {
        let file = self.open_blob(digest).map_err(into_io)?;
        let blob = Arc::new(Mutex::new(HashedBlob {
            file,
            hasher: Sha256::new(),
        }));
        let mut layer = CheckedLayer {
            blob: blob.clone(),
            decoded: None,
            digest: digest.clone(),
            layout: self.root.clone(),
            checked: false,
        };
        let raw = BufReader::with_capacity(256 * 1024, HashingReader(blob));
        match decompressing(raw) {
            Ok(decoded) => layer.decoded = Some(decoded),
            Err(e) => {
                layer.check()?;
                return Err(e);
            }
        }
        Ok(Box::new(layer))
    }
}

/// A [`LayoutError`] where a reader's error is expected: an I/O error keeps its kind.
fn into_io(e: LayoutError) -> io::Error {
    let kind = match &e {
        LayoutError::Read { source, .. } => source.kind(),
        _ => io::ErrorKind::InvalidData,
    };
    io::Error::new(kind, e)
}

/// Whether `e`, from a reader [`OciLayout::open_layer`] gave, says the blob does not match
/// its digest.
pub fn is_digest_mismatch(e: &io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<LayoutError>())
        .is_some_and(|e| matches!(e, LayoutError::Corrupt { .. }))
}

/// A layer blob being read, and the hash of what has been read of it so far.
struct HashedBlob {
    file: File,
    hasher: Sha256,
}

/// The blob's bytes as the decompressor reads them, each hashed on the way.
struct HashingReader(Arc<Mutex<HashedBlob>>);

impl Read for HashingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut blob = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let n = blob.file.read(buf)?;
        blob.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A layer's uncompressed stream whose end, or failure, is first checked against the
/// blob's digest (the decompressor owns the blob's reader, hence the shared hash).
struct CheckedLayer {
    blob: Arc<Mutex<HashedBlob>>,
    decoded: Option<Box<dyn Read + Send>>,
    digest: Digest,
    layout: PathBuf,
    /// The digest has been checked (and matched): the stream can end.
    checked: bool,
}

impl CheckedLayer {
    /// Hashes what is left of the blob and compares it with its digest, once.
    fn check(&mut self) -> io::Result<()> {
        if self.checked {
            return Ok(());
        }
        let mut blob = self.blob.lock().unwrap_or_else(PoisonError::into_inner);
        let HashedBlob { file, hasher } = &mut *blob;
        io::copy(file, hasher).map_err(|source| {
            into_io(LayoutError::Read {
                path: self.layout.join(blob_rel(&self.digest)),
                source,
            })
        })?;
        let hash = std::mem::replace(hasher, Sha256::new());
        if Digest::from_hasher(hash) != self.digest {
            return Err(into_io(LayoutError::Corrupt {
                layout: self.layout.clone(),
                digest: self.digest.to_string(),
            }));
        }
        self.checked = true;
        Ok(())
    }
}

impl Read for CheckedLayer {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(decoded) = self.decoded.as_mut() else {
            return Ok(0);
        };
        match decoded.read(buf) {
            Ok(0) if !buf.is_empty() => {
                self.check()?;
                Ok(0)
            }
            Ok(n) => Ok(n),
            // Read again by the caller, as any reader's.
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                self.check()?;
                Err(e)
            }
        }
    }
}

/// BuildKit reads a manifest, an index or a config with this limit (`maxReadSize`); a
/// larger one is no image of a layout's.
const MAX_METADATA_BLOB: u64 = 4 << 20;

/// Where blob `digest` lies in a layout: `blobs/<alg>/<hex>` (the digest's form is checked,
/// so this never climbs out).
fn blob_rel(digest: &Digest) -> PathBuf {
    Path::new("blobs")
        .join(digest.algorithm())
        .join(digest.hex())
}

/// The frontend's view of the image `digest` names in `layout` for `platform`: the config,
/// pinned to the platform manifest.
pub fn resolve_for_frontend(
    layout: &str,
    digest: &str,
    platform: &bud_frontend::convert::Platform,
) -> Result<bud_frontend::convert::ResolvedImage, bud_frontend::convert::ResolveError> {
    let wanted = Platform::new(&platform.os, &platform.architecture, &platform.variant);
    let image = OciLayout::new(layout).image(digest, &wanted)?;
    let config = serde_json::from_slice(&image.config_bytes)?;
    Ok(bud_frontend::convert::ResolvedImage {
        digest: image.manifest_digest,
        config,
    })
}

/// `reader` uncompressed: gzip (one member or several), zstd or plain tar.
pub fn decompressing<R: BufRead + Send + 'static>(
    mut reader: R,
) -> io::Result<Box<dyn Read + Send>> {
    let magic = reader.fill_buf()?;
    if magic.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(reader)))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Box::new(zstd::stream::read::Decoder::with_buffer(reader)?))
    } else {
        Ok(Box::new(reader))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(root: &Path, bytes: &[u8]) -> String {
        let digest = Digest::of(bytes);
        let dir = root.join("blobs/sha256");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(digest.hex()), bytes).unwrap();
        digest.to_string()
    }

    fn manifest(root: &Path, arch: &str) -> String {
        let config = format!(
            r#"{{"architecture":"{arch}","os":"linux","config":{{}},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#
        );
        let config = put(root, config.as_bytes());
        put(
            root,
            format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":1}},"layers":[]}}"#
            )
            .as_bytes(),
        )
    }

    #[test]
    fn tags_single_entries_and_platforms_are_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let amd = manifest(root, "amd64");
        let arm = manifest(root, "arm64");
        let index = put(
            root,
            format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
                {{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{amd}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}},
                {{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{arm}","size":1,"platform":{{"os":"linux","architecture":"arm64"}}}}]}}"#
            )
            .as_bytes(),
        );
        let layout = OciLayout::new(root);
        std::fs::write(
            root.join("index.json"),
            format!(
                r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"{index}","size":1}}]}}"#
            ),
        )
        .unwrap();
        // One entry stands for any tag, as in buildx.
        assert_eq!(layout.resolve_tag("latest").unwrap(), index);
        let image = layout
            .image(&index, &Platform::new("linux", "arm64", ""))
            .unwrap();
        assert_eq!(image.manifest_digest, arm);
        assert_eq!(image.config.architecture, "arm64");
        let err = layout
            .image(&index, &Platform::new("linux", "s390x", ""))
            .unwrap_err();
        assert!(
            err.to_string().contains("no manifest for linux/s390x"),
            "{err}"
        );

        std::fs::write(
            root.join("index.json"),
            format!(
                r#"{{"schemaVersion":2,"manifests":[
                {{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{amd}","size":1,"annotations":{{"org.opencontainers.image.ref.name":"one"}}}},
                {{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{arm}","size":1,"annotations":{{"org.opencontainers.image.ref.name":"two"}}}}]}}"#
            ),
        )
        .unwrap();
        assert_eq!(layout.resolve_tag("two").unwrap(), arm);
        let err = layout.resolve_tag("three").unwrap_err();
        assert!(
            err.to_string().contains("no manifest is tagged \"three\""),
            "{err}"
        );

        // A blob that is not what its name says is refused.
        let hex = amd.strip_prefix("sha256:").unwrap();
        std::fs::write(root.join("blobs/sha256").join(hex), b"{}").unwrap();
        let err = layout
            .image(&amd, &Platform::new("linux", "amd64", ""))
            .unwrap_err();
        assert!(matches!(err, LayoutError::Corrupt { .. }), "{err}");
    }

    /// A layer blob read through `open_layer` to its end: the tar, or the error.
    fn read_layer(layout: &OciLayout, digest: &str) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        let digest = Digest::parse(digest).unwrap();
        layout.open_layer(&digest)?.read_to_end(&mut bytes)?;
        Ok(bytes)
    }

    #[test]
    fn a_layer_is_checked_against_its_digest_as_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let layout = OciLayout::new(root);
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_mode(0o644);
        tar.append_data(&mut header, "file", &b"hello"[..]).unwrap();
        let tar = tar.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut gz, &tar).unwrap();
        let gz = gz.finish().unwrap();

        let plain = put(root, &tar);
        assert_eq!(read_layer(&layout, &plain).unwrap(), tar);
        let gzipped = put(root, &gz);
        assert_eq!(read_layer(&layout, &gzipped).unwrap(), tar);

        let mismatch = |digest: &str, damage: &dyn Fn(&mut Vec<u8>)| {
            let path = root.join("blobs/sha256").join(&digest[7..]);
            let mut bytes = std::fs::read(&path).unwrap();
            damage(&mut bytes);
            std::fs::write(&path, bytes).unwrap();
            let err = read_layer(&layout, digest).unwrap_err();
            assert!(is_digest_mismatch(&err), "{digest}: {err}");
            assert!(
                err.to_string().contains("does not match its digest"),
                "{err}"
            );
        };
        // The gzip trailer (its CRC and size) damaged: the decompressor fails at the end,
        // and the mismatch is what is reported.
        mismatch(&gzipped, &|b| *b.last_mut().unwrap() ^= 1);
        // Cut short: the decompressor fails in the middle.
        let cut = put(root, &gz);
        mismatch(&cut, &|b| b.truncate(b.len() / 2));
        // The tar's padding changed: the contents read well, the end does not.
        let padded = put(root, &tar);
        mismatch(&padded, &|b| *b.last_mut().unwrap() ^= 1);
    }
}
