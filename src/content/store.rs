//! The on-disk content store.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use sha2::{Digest as _, Sha256};
use tempfile::NamedTempFile;

use super::Digest;
use super::lease::{self, Exclusive, Leases};

/// Errors of the content store.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// A file operation in the store failed.
    #[error("{action} {path}")]
    Io {
        /// What was being done, as a verb phrase (`"creating"`, `"removing"`…).
        action: &'static str,
        /// The blob, ingest file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// No blob with this digest is stored (never was, or collected since).
    #[error("blob {0} not found in the content store")]
    NotFound(Digest),
    /// Bytes committed under a digest hash to another; nothing was stored.
    #[error("content does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest the caller named.
        expected: Digest,
        /// The sha256 of the bytes written.
        actual: Digest,
    },
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
///
/// Looking a blob up ([`exists`](Self::exists), [`open`](Self::open)) or storing one leases
/// it to this process, so that garbage collection elsewhere keeps it while this process
/// lives; [`path`](Self::path) alone does not, so call it after one of those.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
    leases: Arc<Leases>,
}

/// A committed blob as garbage collection and `bud du` see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// The blob's digest, its name in the store.
    pub digest: Digest,
    /// Bytes allocated on disk (as `du` counts them).
    pub disk_size: u64,
    /// When it was stored.
    pub created: SystemTime,
    /// When a process last leased it (or when it was stored).
    pub last_used: SystemTime,
}

impl ContentStore {
    /// Opens the store at `root`, creating its directories if needed.
    pub fn new(root: impl Into<PathBuf>) -> Result<ContentStore, ContentError> {
        let root = root.into();
        let store = ContentStore {
            leases: Arc::new(Leases::new(&root)),
            root,
        };
        for dir in [store.blob_dir(), store.ingest_dir()] {
            fs::create_dir_all(&dir).map_err(ContentError::io("creating", &dir))?;
        }
        Ok(store)
    }

    /// The store's directory (`content/` under the state root).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where the blob lives (whether or not it exists).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.blob_dir().join(digest.hex())
    }

    /// Whether the blob is stored; leases it first, so a blob found stays until this
    /// process exits.
    pub fn exists(&self, digest: &Digest) -> bool {
        let path = self.path(digest);
        self.leases.hold(digest, &path);
        path.is_file()
    }

    /// Opens a committed blob for reading (leasing it).
    pub fn open(&self, digest: &Digest) -> Result<File, ContentError> {
        let path = self.path(digest);
        self.leases.hold(digest, &path);
        File::open(&path).map_err(|e| self.not_found_or(digest, "opening", &path, e))
    }

    /// The committed blob's length in bytes; [`ContentError::NotFound`] when it is not
    /// stored. Does not lease it.
    pub fn size(&self, digest: &Digest) -> Result<u64, ContentError> {
        let path = self.path(digest);
        fs::metadata(&path)
            .map(|m| m.len())
            .map_err(|e| self.not_found_or(digest, "reading metadata of", &path, e))
    }

    /// Removes a blob; returns whether it was there. Readers that already opened it keep
    /// reading the old file. Leases are not checked: see [`ContentStore::collector`].
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
        // Named for this process, so garbage collection can tell an abandoned file (its
        // writer was killed) from one being written.
        let file = tempfile::Builder::new()
            .prefix(&format!("{}-ingest-", std::process::id()))
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

    /// Every committed blob, with its size on disk and times.
    pub fn blobs(&self) -> Result<Vec<BlobInfo>, ContentError> {
        let dir = self.blob_dir();
        let mut blobs = Vec::new();
        for entry in fs::read_dir(&dir).map_err(ContentError::io("listing", &dir))? {
            let entry = entry.map_err(ContentError::io("listing", &dir))?;
            let Some(digest) = entry
                .file_name()
                .to_str()
                .and_then(|hex| Digest::parse(&format!("sha256:{hex}")).ok())
            else {
                continue;
            };
            let meta = match entry.metadata() {
                Ok(m) => m,
                // Removed since the listing.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(ContentError::io("reading metadata of", &entry.path())(e)),
            };
            if !meta.is_file() {
                continue;
            }
            let last_used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            blobs.push(BlobInfo {
                digest,
                disk_size: std::os::unix::fs::MetadataExt::blocks(&meta) * 512,
                created: meta.created().unwrap_or(last_used).min(last_used),
                last_used,
            });
        }
        Ok(blobs)
    }

    /// The blobs other live processes lease, as of now (for display: by the time the caller
    /// looks, more may be leased).
    pub fn leased_by_others(&self) -> Result<std::collections::HashSet<Digest>, ContentError> {
        let dir = self.root.join("leases");
        lease::leased_by_others(&self.root).map_err(ContentError::io("reading leases in", &dir))
    }

    /// Starts removing blobs: until the collector is dropped, no process can lease a blob.
    pub fn collector(&self) -> Result<Collector<'_>, ContentError> {
        let exclusive =
            Exclusive::take(&self.root).map_err(ContentError::io("locking", &self.root))?;
        Ok(Collector {
            store: self,
            exclusive,
        })
    }

    /// Files under `ingest/` whose writer is gone (killed before it committed or dropped).
    pub fn abandoned_ingests(&self) -> Result<Vec<PathBuf>, ContentError> {
        let dir = self.ingest_dir();
        let mut found = Vec::new();
        for entry in fs::read_dir(&dir).map_err(ContentError::io("listing", &dir))? {
            let entry = entry.map_err(ContentError::io("listing", &dir))?;
            let name = entry.file_name();
            let pid = name
                .to_str()
                .and_then(|n| n.split_once("-ingest-"))
                .and_then(|(pid, _)| pid.parse::<u32>().ok());
            if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
                found.push(entry.path());
            }
        }
        Ok(found)
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
        // Leased before it is installed: a collection never sees it unleased.
        self.store.leases.hold(&actual, &target);
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

/// Removes blobs no live process leases. See [`ContentStore::collector`].
pub struct Collector<'a> {
    store: &'a ContentStore,
    exclusive: Exclusive,
}

impl Collector<'_> {
    /// Whether another live process leases the blob.
    pub fn is_leased(&self, digest: &Digest) -> bool {
        self.exclusive.is_leased(digest)
    }

    /// Removes the blob unless another live process leases it; returns whether it was
    /// removed.
    pub fn remove(&self, digest: &Digest) -> Result<bool, ContentError> {
        if self.is_leased(digest) {
            return Ok(false);
        }
        self.store.delete(digest)
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
