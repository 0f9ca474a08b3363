//! What bud remembers about blobs, next to the content store's `blobs/`:
//!
//! - `refs/<sha256 of reference and platform>`: the manifest digest a tag resolved to, so a
//!   build reuses it until `--pull` (as Docker reuses a local image).
//! - `compressed/<diff ID hex>.<gzip|zstd|estargz>[-<level>]`: the digest of the layer's
//!   compressed blob (at a level other than the default, the level follows), so each layer
//!   is compressed once per compression and level however often it is pushed.
//! - `compressed/<diff ID hex>.origin-<gzip|zstd>`: the blob a base image layer was pulled
//!   as, which exports keep unless `force-compression=true`.
//! - `sources/<blob hex>`: repositories (`domain/path`, one a line) known to hold the blob,
//!   for cross-repository mounts instead of uploads.
//!
//! Each file is replaced atomically (write, then rename), so a reader sees the old or the
//! new content; everything here is a cache and may be deleted.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::{Compression, LayerCompression, Platform, RegistryError};
use crate::content::{ContentStore, Digest};

pub(crate) struct Metadata {
    root: PathBuf,
}

impl Metadata {
    pub(crate) fn new(store: &ContentStore) -> Metadata {
        Metadata {
            root: store.root().to_owned(),
        }
    }

    fn ref_path(&self, reference: &str, platform: &Platform) -> PathBuf {
        let key = Sha256::new_with_prefix(format!("{reference}\n{platform}"));
        self.root.join("refs").join(hex::encode(key.finalize()))
    }

    /// The manifest `reference` resolved to for `platform` last time.
    pub(crate) fn resolved(&self, reference: &str, platform: &Platform) -> Option<Digest> {
        read_digest(&self.ref_path(reference, platform))
    }

    pub(crate) fn set_resolved(
        &self,
        reference: &str,
        platform: &Platform,
        manifest: &Digest,
    ) -> Result<(), RegistryError> {
        write_atomic(
            &self.ref_path(reference, platform),
            manifest.to_string().as_bytes(),
        )
    }

    fn compressed_path(&self, diff_id: &Digest, compression: LayerCompression) -> PathBuf {
        self.root
            .join("compressed")
            .join(format!("{}.{}", diff_id.hex(), compression.memo_name()))
    }

    /// The compressed blob of layer `diff_id`, if made before and still stored.
    pub(crate) fn compressed(
        &self,
        store: &ContentStore,
        diff_id: &Digest,
        compression: LayerCompression,
    ) -> Option<Digest> {
        read_digest(&self.compressed_path(diff_id, compression)).filter(|d| store.exists(d))
    }

    pub(crate) fn set_compressed(
        &self,
        diff_id: &Digest,
        compression: LayerCompression,
        blob: &Digest,
    ) -> Result<(), RegistryError> {
        write_atomic(
            &self.compressed_path(diff_id, compression),
            blob.to_string().as_bytes(),
        )
    }

    fn origin_path(&self, diff_id: &Digest, kind: Compression) -> PathBuf {
        self.root
            .join("compressed")
            .join(format!("{}.origin-{}", diff_id.hex(), kind.extension()))
    }

    /// The blobs base image layer `diff_id` was pulled as, still stored: those an export
    /// keeps unless `force-compression` (a blob bud compressed itself is not one).
    pub(crate) fn origins(
        &self,
        store: &ContentStore,
        diff_id: &Digest,
    ) -> Vec<(Digest, Compression)> {
        [Compression::Gzip, Compression::Zstd]
            .into_iter()
            .filter_map(|kind| {
                read_digest(&self.origin_path(diff_id, kind))
                    .filter(|d| store.exists(d))
                    .map(|d| (d, kind))
            })
            .collect()
    }

    pub(crate) fn set_origin(
        &self,
        diff_id: &Digest,
        kind: Compression,
        blob: &Digest,
    ) -> Result<(), RegistryError> {
        write_atomic(
            &self.origin_path(diff_id, kind),
            blob.to_string().as_bytes(),
        )
    }

    /// Every entry of `compressed/` and `refs/` with the blob it names: what garbage
    /// collection removes along with that blob.
    pub(crate) fn entries(&self) -> std::io::Result<Vec<Entry>> {
        let mut entries = Vec::new();
        for (path, blob) in digest_files(&self.root.join("compressed"))? {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let kind = match name.split_once('.') {
                Some((diff_hex, compression)) => EntryKind::Compressed {
                    diff_hex: diff_hex.to_owned(),
                    compression: compression.to_owned(),
                },
                None => EntryKind::Other,
            };
            entries.push(Entry { path, blob, kind });
        }
        for (path, blob) in digest_files(&self.root.join("refs"))? {
            entries.push(Entry {
                path,
                blob,
                kind: EntryKind::ResolvedManifest,
            });
        }
        Ok(entries)
    }

    /// The file listing the repositories that hold `blob`.
    pub(crate) fn sources_path(&self, blob: &Digest) -> PathBuf {
        self.root.join("sources").join(blob.hex())
    }

    /// Repositories (`domain/path`) known to hold `blob`.
    pub(crate) fn sources(&self, blob: &Digest) -> Vec<String> {
        fs::read_to_string(self.sources_path(blob))
            .map(|text| text.lines().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// Records that `repository` holds `blob`. Two concurrent writers may lose one line:
    /// that only costs an upload later.
    pub(crate) fn add_source(&self, blob: &Digest, repository: &str) -> Result<(), RegistryError> {
        let mut known = self.sources(blob);
        if known.iter().any(|r| r == repository) {
            return Ok(());
        }
        known.push(repository.to_owned());
        let mut text = known.join("\n");
        text.push('\n');
        write_atomic(&self.sources_path(blob), text.as_bytes())
    }
}

/// A metadata file that names a blob.
pub(crate) struct Entry {
    pub path: PathBuf,
    pub blob: Digest,
    pub kind: EntryKind,
}

pub(crate) enum EntryKind {
    /// `compressed/<diff_hex>.<compression>`: the blob is that layer, compressed.
    Compressed {
        diff_hex: String,
        compression: String,
    },
    /// `refs/…`: the blob is the manifest a reference resolved to.
    ResolvedManifest,
    Other,
}

/// The files of `dir` that each hold one digest.
fn digest_files(dir: &Path) -> std::io::Result<Vec<(PathBuf, Digest)>> {
    let listing = match fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for entry in listing {
        let path = entry?.path();
        // Replaced or removed meanwhile (writers rename into place): skip it.
        if let Some(digest) = read_digest(&path) {
            found.push((path, digest));
        }
    }
    Ok(found)
}

fn read_digest(path: &Path) -> Option<Digest> {
    let text = fs::read_to_string(path).ok()?;
    Digest::parse(text.trim()).ok()
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(RegistryError::io("creating", dir))?;
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .map_err(RegistryError::io("creating a file in", dir))?;
    file.write_all(bytes)
        .map_err(RegistryError::io("writing", file.path()))?;
    file.persist(path)
        .map_err(|e| RegistryError::io("replacing", path)(e.error))?;
    Ok(())
}

/// Unused results are still errors worth logging: losing a cache entry is harmless.
pub(crate) fn log_cache_error(result: Result<(), RegistryError>) {
    if let Err(e) = result {
        tracing::warn!(
            "not recording registry metadata: {e}",
            e = crate::error_chain::error_chain(&e)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_stale_blobs_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::new(dir.path().join("content")).unwrap();
        let meta = Metadata::new(&store);
        let amd64 = Platform::default();
        let arm64 = Platform::new("linux", "arm64", "");
        let digest = Digest::of(b"manifest");

        assert_eq!(meta.resolved("docker.io/library/a:1", &amd64), None);
        meta.set_resolved("docker.io/library/a:1", &amd64, &digest)
            .unwrap();
        assert_eq!(meta.resolved("docker.io/library/a:1", &amd64), Some(digest));
        assert_eq!(meta.resolved("docker.io/library/a:1", &arm64), None);

        let diff_id = Digest::of(b"tar");
        let blob = Digest::of(b"gz");
        meta.set_compressed(&diff_id, Compression::Gzip.into(), &blob)
            .unwrap();
        // Recorded, but the blob itself is gone: not reusable.
        assert_eq!(
            meta.compressed(&store, &diff_id, Compression::Gzip.into()),
            None
        );
        let stored = store.put(b"gz").unwrap();
        assert_eq!(
            meta.compressed(&store, &diff_id, Compression::Gzip.into()),
            Some(stored.clone())
        );
        assert_eq!(
            meta.compressed(&store, &diff_id, Compression::Zstd.into()),
            None
        );
        // Another level is another blob; the default level, given or not, the same one.
        let level = |kind, level| LayerCompression {
            level: Some(level),
            ..LayerCompression::from(kind)
        };
        assert_eq!(
            meta.compressed(&store, &diff_id, level(Compression::Gzip, 9)),
            None
        );
        assert_eq!(
            meta.compressed(&store, &diff_id, level(Compression::Gzip, 6)),
            Some(stored.clone())
        );
        let best = store.put(b"gz9").unwrap();
        meta.set_compressed(&diff_id, level(Compression::Gzip, 9), &best)
            .unwrap();
        assert_eq!(
            meta.compressed(&store, &diff_id, level(Compression::Gzip, 9)),
            Some(best)
        );
        assert_eq!(
            meta.compressed(&store, &diff_id, Compression::Gzip.into()),
            Some(stored)
        );

        meta.add_source(&blob, "r:5000/a").unwrap();
        meta.add_source(&blob, "r:5000/b").unwrap();
        meta.add_source(&blob, "r:5000/a").unwrap();
        assert_eq!(meta.sources(&blob), ["r:5000/a", "r:5000/b"]);
    }
}
