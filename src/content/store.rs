//! The on-disk content store.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use tempfile::NamedTempFile;

use super::Digest;

#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("blob {0} not found in the content store")]
    NotFound(Digest),
    #[error("content does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
}

impl ContentError {
    fn io(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> ContentError {
        let path = path.to_owned();
        move |source| ContentError::Io {
            action,
            path,
            source,
        }
    }
}

/// A directory of blobs named by their digest (`blobs/sha256/<hex>`).
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
}

impl ContentStore {
    /// Opens the store at `root`, creating its directories if needed.
    pub fn new(root: impl Into<PathBuf>) -> Result<ContentStore, ContentError> {
        let store = ContentStore { root: root.into() };
        for dir in [store.blob_dir(), store.ingest_dir()] {
            fs::create_dir_all(&dir).map_err(ContentError::io("creating", &dir))?;
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob lives (whether or not it exists).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.blob_dir().join(digest.hex())
    }

    pub fn exists(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Opens a committed blob for reading.
    pub fn open(&self, digest: &Digest) -> Result<File, ContentError> {
        let path = self.path(digest);
        File::open(&path).map_err(|e| self.not_found_or(digest, "opening", &path, e))
    }

    pub fn size(&self, digest: &Digest) -> Result<u64, ContentError> {
        let path = self.path(digest);
        fs::metadata(&path)
            .map(|m| m.len())
            .map_err(|e| self.not_found_or(digest, "reading metadata of", &path, e))
    }

    /// Removes a blob; returns whether it was there. Readers that already opened it keep
    /// reading the old file.
    pub fn delete(&self, digest: &Digest) -> Result<bool, ContentError> {
        let path = self.path(digest);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(ContentError::io("removing", &path)(e)),
        }
    }

    /// Starts writing a new blob under `ingest/`. Dropping the writer without committing
    /// removes the partial file.
    pub fn writer(&self) -> Result<BlobWriter, ContentError> {
        let dir = self.ingest_dir();
        let file = tempfile::Builder::new()
            .prefix("ingest-")
            .tempfile_in(&dir)
            .map_err(ContentError::io("creating a file in", &dir))?;
        Ok(BlobWriter {
            store: self.clone(),
            file,
            hasher: Sha256::new(),
            size: 0,
        })
    }

    /// Copies `reader` into the store; with `expected`, fails unless the content matches.
    pub fn import(
        &self,
        mut reader: impl Read,
        expected: Option<&Digest>,
    ) -> Result<Digest, ContentError> {
        let mut writer = self.writer()?;
        let path = writer.file.path().to_owned();
        io::copy(&mut reader, &mut writer).map_err(ContentError::io("writing", &path))?;
        writer.commit(expected)
    }

    /// Stores `bytes` and returns their digest.
    pub fn put(&self, bytes: &[u8]) -> Result<Digest, ContentError> {
        self.import(bytes, None)
    }

    fn blob_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    fn ingest_dir(&self) -> PathBuf {
        self.root.join("ingest")
    }

    fn not_found_or(
        &self,
        digest: &Digest,
        action: &'static str,
        path: &Path,
        e: io::Error,
    ) -> ContentError {
        if e.kind() == io::ErrorKind::NotFound {
            ContentError::NotFound(digest.clone())
        } else {
            ContentError::io(action, path)(e)
        }
    }
}

/// A blob being written. Nothing is visible in the store until [`BlobWriter::commit`].
pub struct BlobWriter {
    store: ContentStore,
    file: NamedTempFile,
    hasher: Sha256,
    size: u64,
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Verifies the content against `expected` (if given) and moves it into place.
    ///
    /// If the blob is already there (another writer won the race, or it was stored before),
    /// the new copy is discarded: blobs are immutable, so both are the same bytes.
    pub fn commit(mut self, expected: Option<&Digest>) -> Result<Digest, ContentError> {
        let temp = self.file.path().to_owned();
        self.file
            .flush()
            .map_err(ContentError::io("writing", &temp))?;
        let actual = Digest::from_hasher(self.hasher);
        if let Some(expected) = expected
            && *expected != actual
        {
            return Err(ContentError::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        let target = self.store.path(&actual);
        if target.is_file() {
            return Ok(actual);
        }
        // rename(2) replaces atomically: concurrent writers of one blob each install a
        // complete, identical file and the last rename wins.
        self.file
            .persist(&target)
            .map_err(|e| ContentError::io("moving a blob to", &target)(e.error))?;
        Ok(actual)
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, ContentStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::new(dir.path().join("content")).unwrap();
        (dir, store)
    }

    fn ingest_is_empty(store: &ContentStore) -> bool {
        fs::read_dir(store.root().join("ingest"))
            .unwrap()
            .next()
            .is_none()
    }

    #[test]
    fn put_open_size_delete() {
        let (_dir, store) = store();
        let digest = store.put(b"layer bytes").unwrap();
        assert_eq!(digest, Digest::of(b"layer bytes"));
        assert!(store.exists(&digest));
        assert_eq!(
            store.path(&digest),
            store.root().join("blobs/sha256").join(digest.hex())
        );
        assert_eq!(store.size(&digest).unwrap(), 11);
        let mut text = String::new();
        store
            .open(&digest)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "layer bytes");
        assert!(ingest_is_empty(&store));

        assert!(store.delete(&digest).unwrap());
        assert!(!store.exists(&digest));
        assert!(!store.delete(&digest).unwrap());
        assert!(matches!(store.open(&digest), Err(ContentError::NotFound(d)) if d == digest));
        assert!(matches!(
            store.size(&digest),
            Err(ContentError::NotFound(_))
        ));
    }

    #[test]
    fn mismatched_content_is_never_visible() {
        let (_dir, store) = store();
        let claimed = Digest::of(b"something else");
        let err = store.import(&b"actual"[..], Some(&claimed)).unwrap_err();
        assert!(matches!(err, ContentError::DigestMismatch { .. }), "{err}");
        assert!(!store.exists(&claimed));
        assert!(!store.exists(&Digest::of(b"actual")));
        assert!(ingest_is_empty(&store));
    }

    #[test]
    fn abandoned_writer_leaves_nothing() {
        let (_dir, store) = store();
        let mut w = store.writer().unwrap();
        w.write_all(b"partial").unwrap();
        drop(w);
        assert!(ingest_is_empty(&store));
        assert!(!store.exists(&Digest::of(b"partial")));
    }

    #[test]
    fn concurrent_writers_of_one_blob() {
        let (_dir, store) = store();
        let content = vec![7u8; 256 * 1024];
        let digests: Vec<Digest> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        let mut w = store.writer().unwrap();
                        for chunk in content.chunks(4096) {
                            w.write_all(chunk).unwrap();
                        }
                        w.commit(Some(&Digest::of(&content))).unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(digests.iter().all(|d| *d == Digest::of(&content)));
        assert_eq!(fs::read(store.path(&digests[0])).unwrap(), content);
        assert!(ingest_is_empty(&store));
    }
}
