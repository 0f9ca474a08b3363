//! The writing half of a local cache directory (`--cache-to type=local,dest=DIR` with
//! `--addr`): BuildKit's local cache exporter writes every blob of the cache into the
//! client's directory through the session's content store, as containerd's Write (a STAT
//! naming the write, WRITEs, a COMMIT), Status and Abort; buildx serves them with
//! containerd's local store.
//!
//! Unlike that store, nothing is written outside DIR: `blobs/sha256` is opened once,
//! component by component, refusing symlinks, and every file is made and renamed through
//! it. A write goes to a hidden file of its own there (`.bud-ingest-PID-N`), not to
//! containerd's `ingest/`: the directory ends as BuildKit's layout (`oci-layout`,
//! `index.json`, `blobs/`), and no session removes a directory another session, exporting
//! into the same DIR, still writes in. A write is bounded by the size it declared, and a
//! blob is committed (renamed to its digest) only when its size is the one declared and its
//! bytes match the digest expected. What a write left uncommitted is removed when the
//! session ends.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::Write as _;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustix::fs::{AtFlags, Mode, OFlags};
use sha2::{Digest as _, Sha256};

use crate::content::Digest;

/// A write that declares no size (BuildKit's exporter declares one for every blob it
/// writes, layers included) is bounded as a manifest or config is.
const UNDECLARED_LIMIT: u64 = 64 << 20;

/// Why a write was refused or failed; each maps to the gRPC code containerd's content
/// server gives the same case, which the daemon's client acts on.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IngestError {
    /// The write's ref is being written by another stream (Unavailable: retried).
    #[error("the write {0:?} is under way in another stream")]
    Busy(String),
    #[error("no write {0:?} is under way")]
    Unknown(String),
    #[error("write at offset {asked} of {reference:?}, which is at {at}")]
    Offset {
        reference: String,
        asked: i64,
        at: u64,
    },
    #[error("{reference:?}: {size} bytes is more than the {limit} the write may have")]
    TooLarge {
        reference: String,
        size: u64,
        limit: u64,
    },
    #[error("{reference:?}: {written} bytes written, {declared} declared")]
    Size {
        reference: String,
        written: u64,
        declared: u64,
    },
    #[error("{reference:?}: the bytes written are {actual}, not {expected}")]
    Digest {
        reference: String,
        actual: Digest,
        expected: Digest,
    },
    #[error("writing {what} in {dir}")]
    Io {
        what: String,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl IngestError {
    pub(crate) fn code(&self) -> tonic::Code {
        match self {
            IngestError::Busy(_) => tonic::Code::Unavailable,
            IngestError::Unknown(_) => tonic::Code::NotFound,
            IngestError::Offset { .. } => tonic::Code::OutOfRange,
            IngestError::TooLarge { .. } => tonic::Code::ResourceExhausted,
            IngestError::Size { .. } | IngestError::Digest { .. } => {
                tonic::Code::FailedPrecondition
            }
            IngestError::Io { .. } => tonic::Code::Internal,
        }
    }
}

/// A client directory the daemon writes a cache into.
pub(crate) struct CacheDir {
    root: PathBuf,
    /// `DIR/blobs/sha256`, opened beneath DIR.
    blobs: Arc<OwnedFd>,
    /// Writes not under way in a stream, kept for a stream that goes on with them.
    idle: Mutex<HashMap<String, Ingest>>,
    /// Writes a stream holds.
    busy: Mutex<HashSet<String>>,
}

impl CacheDir {
    /// Makes `DIR` and `DIR/blobs/sha256` where missing, as BuildKit's client makes DIR
    /// before the build. Blocking.
    pub(crate) fn open(root: &Path) -> std::io::Result<CacheDir> {
        std::fs::create_dir_all(root)?;
        let root_fd = rustix::fs::open(
            root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let blobs = subdir(&root_fd, "blobs")?;
        let blobs = subdir(&blobs, "sha256")?;
        Ok(CacheDir {
            root: root.to_owned(),
            blobs: Arc::new(blobs),
            idle: Mutex::default(),
            busy: Mutex::default(),
        })
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Takes the write `reference` for a stream: the one left by an earlier stream, else a
    /// new one declaring `total` bytes (0: undeclared). Blocking.
    pub(crate) fn begin(
        self: &Arc<Self>,
        reference: &str,
        total: i64,
    ) -> Result<HeldIngest, IngestError> {
        if !lock(&self.busy).insert(reference.to_owned()) {
            return Err(IngestError::Busy(reference.to_owned()));
        }
        let held = |ingest| HeldIngest {
            dir: self.clone(),
            reference: reference.to_owned(),
            ingest: Some(ingest),
        };
        if let Some(ingest) = lock(&self.idle).remove(reference) {
            return Ok(held(ingest));
        }
        match Ingest::new(&self.blobs, &self.root, reference, total) {
            Ok(ingest) => Ok(held(ingest)),
            Err(e) => {
                lock(&self.busy).remove(reference);
                Err(e)
            }
        }
    }

    /// The state of the write `reference`, under way or left by a stream.
    pub(crate) fn status(&self, reference: &str) -> Result<WriteStatus, IngestError> {
        match lock(&self.idle).get(reference) {
            Some(ingest) => Ok(ingest.status()),
            None if lock(&self.busy).contains(reference) => {
                Err(IngestError::Busy(reference.to_owned()))
            }
            None => Err(IngestError::Unknown(reference.to_owned())),
        }
    }

    /// Drops the write `reference` and its bytes.
    pub(crate) fn abort(&self, reference: &str) -> Result<(), IngestError> {
        match lock(&self.idle).remove(reference) {
            Some(_) => Ok(()),
            None if lock(&self.busy).contains(reference) => {
                Err(IngestError::Busy(reference.to_owned()))
            }
            None => Err(IngestError::Unknown(reference.to_owned())),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `parent/name`, made if missing and opened without following a symlink.
fn subdir(parent: &OwnedFd, name: &str) -> std::io::Result<OwnedFd> {
    match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o755)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(e.into()),
    }
    rustix::fs::openat(
        parent,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| match e {
        rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => std::io::Error::other(format!(
            "{name} is not a directory (a symlink is not followed)"
        )),
        e => e.into(),
    })
}

/// What Status and a STAT answer.
#[derive(Debug, Clone)]
pub(crate) struct WriteStatus {
    pub reference: String,
    pub offset: u64,
    pub total: u64,
    pub expected: Option<Digest>,
    /// The digest of the bytes written so far.
    pub digest: Digest,
    pub started: SystemTime,
    pub updated: SystemTime,
}

/// One blob being written, in a hidden file of `DIR/blobs/sha256` removed unless committed.
struct Ingest {
    reference: String,
    blobs: Arc<OwnedFd>,
    root: PathBuf,
    name: String,
    file: File,
    offset: u64,
    hasher: Sha256,
    /// Declared size; 0 when undeclared.
    total: u64,
    expected: Option<Digest>,
    started: SystemTime,
    updated: SystemTime,
}

impl Ingest {
    fn new(
        blobs: &Arc<OwnedFd>,
        root: &Path,
        reference: &str,
        total: i64,
    ) -> Result<Ingest, IngestError> {
        static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!(".bud-ingest-{}-{n}", std::process::id());
        let fd = rustix::fs::openat(
            blobs,
            name.as_str(),
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            // As containerd's local store creates an ingest; `commit` makes it read-only.
            Mode::from_raw_mode(0o666),
        )
        .map_err(|e| IngestError::Io {
            what: format!("blobs/sha256/{name}"),
            dir: root.to_owned(),
            source: e.into(),
        })?;
        let now = SystemTime::now();
        Ok(Ingest {
            reference: reference.to_owned(),
            blobs: blobs.clone(),
            root: root.to_owned(),
            name,
            file: File::from(fd),
            offset: 0,
            hasher: Sha256::new(),
            total: u64::try_from(total).unwrap_or(0),
            expected: None,
            started: now,
            updated: now,
        })
    }

    fn status(&self) -> WriteStatus {
        WriteStatus {
            reference: self.reference.clone(),
            offset: self.offset,
            total: self.total,
            expected: self.expected.clone(),
            digest: Digest::from_hasher(self.hasher.clone()),
            started: self.started,
            updated: self.updated,
        }
    }

    fn io(&self, source: std::io::Error) -> IngestError {
        IngestError::Io {
            what: format!("blobs/sha256/{}", self.name),
            dir: self.root.clone(),
            source,
        }
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        // Gone already when committed (renamed to its digest).
        let _ = rustix::fs::unlinkat(&*self.blobs, self.name.as_str(), AtFlags::empty());
    }
}

/// A write a stream holds; given back (for a later stream to go on with) when dropped
/// uncommitted.
pub(crate) struct HeldIngest {
    dir: Arc<CacheDir>,
    reference: String,
    ingest: Option<Ingest>,
}

impl HeldIngest {
    fn ingest(&mut self) -> &mut Ingest {
        self.ingest
            .as_mut()
            .expect("an ingest is held until the holder is dropped or commits")
    }

    pub(crate) fn status(&mut self) -> WriteStatus {
        self.ingest().status()
    }

    /// Drops the write and its bytes (the blob turned out to be there already).
    pub(crate) fn discard(mut self) {
        self.ingest.take();
    }

    /// What a later message of the stream declares: the size and digest the blob must have.
    pub(crate) fn declare(&mut self, total: i64, expected: Option<Digest>) {
        let ingest = self.ingest();
        if let Ok(total @ 1..) = u64::try_from(total) {
            ingest.total = total;
        }
        if expected.is_some() {
            ingest.expected = expected;
        }
    }

    /// `data` written at `offset` (0: from the start again, dropping what was written; any
    /// other offset must be where the write is). Blocking.
    pub(crate) fn write(&mut self, offset: i64, data: &[u8]) -> Result<(), IngestError> {
        let ingest = self.ingest();
        if offset > 0 && u64::try_from(offset).ok() != Some(ingest.offset) {
            return Err(IngestError::Offset {
                reference: ingest.reference.clone(),
                asked: offset,
                at: ingest.offset,
            });
        }
        if offset <= 0 && ingest.offset > 0 {
            ingest.file.set_len(0).map_err(|e| ingest.io(e))?;
            ingest.offset = 0;
            ingest.hasher = Sha256::new();
        }
        if data.is_empty() {
            return Ok(());
        }
        let limit = if ingest.total > 0 {
            ingest.total
        } else {
            UNDECLARED_LIMIT
        };
        let size = ingest.offset + data.len() as u64;
        if size > limit {
            return Err(IngestError::TooLarge {
                reference: ingest.reference.clone(),
                size,
                limit,
            });
        }
        ingest.file.write_all(data).map_err(|e| ingest.io(e))?;
        ingest.hasher.update(data);
        ingest.offset = size;
        ingest.updated = SystemTime::now();
        Ok(())
    }

    /// Checks the bytes written against the size and digest declared and renames them into
    /// `blobs/sha256/` under their digest. Blocking.
    pub(crate) fn commit(mut self) -> Result<Digest, IngestError> {
        let ingest = self
            .ingest
            .take()
            .expect("an ingest is held until the holder is dropped or commits");
        let actual = Digest::from_hasher(ingest.hasher.clone());
        if ingest.total > 0 && ingest.offset != ingest.total {
            return Err(IngestError::Size {
                reference: ingest.reference.clone(),
                written: ingest.offset,
                declared: ingest.total,
            });
        }
        if let Some(expected) = ingest.expected.clone().filter(|e| *e != actual) {
            return Err(IngestError::Digest {
                reference: ingest.reference.clone(),
                actual,
                expected,
            });
        }
        ingest.file.sync_all().map_err(|e| ingest.io(e))?;
        // Read-only once committed, as containerd's local store leaves a blob (the mode the
        // umask left, less write and execute: 0444 under the usual umask), which buildx
        // writes a local cache with.
        ingest
            .file
            .metadata()
            .and_then(|m| {
                let created = m.permissions().mode() & 0o777;
                ingest
                    .file
                    .set_permissions(std::fs::Permissions::from_mode(created & !0o333))
            })
            .map_err(|e| ingest.io(e))?;
        rustix::fs::renameat(
            &*ingest.blobs,
            ingest.name.as_str(),
            &*ingest.blobs,
            actual.hex(),
        )
        .map_err(|e| IngestError::Io {
            what: format!("blobs/sha256/{}", actual.hex()),
            dir: ingest.root.clone(),
            source: e.into(),
        })?;
        Ok(actual)
    }
}

impl Drop for HeldIngest {
    fn drop(&mut self) {
        if let Some(ingest) = self.ingest.take() {
            lock(&self.dir.idle).insert(self.reference.clone(), ingest);
        }
        lock(&self.dir.busy).remove(&self.reference);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_of(bytes: &[u8]) -> Digest {
        Digest::of(bytes)
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    #[test]
    fn a_blob_is_committed_once_its_size_and_digest_are_the_declared_ones() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("cache");
        let dir = Arc::new(CacheDir::open(&root).unwrap());
        let blob = b"hello, cache";
        let mut held = dir.begin("layer-1", blob.len() as i64).unwrap();
        held.declare(0, Some(digest_of(blob)));
        held.write(0, &blob[..5]).unwrap();
        held.write(5, &blob[5..]).unwrap();
        assert_eq!(held.status().digest, digest_of(blob));
        let writing = entries(&root.join("blobs/sha256"));
        assert!(
            writing.len() == 1 && writing[0].starts_with(".bud-ingest-"),
            "{writing:?}"
        );
        assert_eq!(held.commit().unwrap(), digest_of(blob));
        let path = root.join("blobs/sha256").join(digest_of(blob).hex());
        assert_eq!(std::fs::read(&path).unwrap(), blob);
        assert_eq!(entries(&root.join("blobs/sha256")), [digest_of(blob).hex()]);
        assert!(matches!(
            dir.status("layer-1"),
            Err(IngestError::Unknown(_))
        ));
        // Nothing but the layout's own directory, during the session and after it.
        assert_eq!(entries(&root), ["blobs"]);
        drop(dir);
        assert_eq!(entries(&root), ["blobs"]);
    }

    #[test]
    fn wrong_bytes_sizes_and_offsets_are_refused_and_leave_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("cache");
        let dir = Arc::new(CacheDir::open(&root).unwrap());

        // Not the digest declared.
        let mut held = dir.begin("a", 3).unwrap();
        held.declare(0, Some(digest_of(b"abc")));
        held.write(0, b"abd").unwrap();
        let err = held.commit().unwrap_err();
        assert!(matches!(err, IngestError::Digest { .. }), "{err}");
        assert_eq!(err.code(), tonic::Code::FailedPrecondition);

        // More than declared, fewer than declared.
        let mut held = dir.begin("b", 3).unwrap();
        let err = held.write(0, b"abcd").unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err}");
        held.write(0, b"ab").unwrap();
        let err = held.commit().unwrap_err();
        assert!(matches!(err, IngestError::Size { .. }), "{err}");

        // Undeclared: bounded all the same.
        let mut held = dir.begin("c", 0).unwrap();
        let err = held
            .write(0, &vec![0; UNDECLARED_LIMIT as usize + 1])
            .unwrap_err();
        assert!(matches!(err, IngestError::TooLarge { .. }), "{err}");

        // Anywhere but the current offset; offset 0 starts over.
        held.write(0, b"xyz").unwrap();
        let err = held.write(7, b"!").unwrap_err();
        assert_eq!(err.code(), tonic::Code::OutOfRange, "{err}");
        held.write(0, b"abc").unwrap();
        assert_eq!(held.status().offset, 3);
        assert_eq!(held.commit().unwrap(), digest_of(b"abc"));

        assert_eq!(
            entries(&root.join("blobs/sha256")),
            [digest_of(b"abc").hex()]
        );
    }

    #[test]
    fn a_write_is_held_by_one_stream_kept_for_the_next_and_aborted() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Arc::new(CacheDir::open(tmp.path()).unwrap());
        let mut held = dir.begin("r", 6).unwrap();
        held.write(0, b"abc").unwrap();
        let err = dir.begin("r", 6).err().unwrap();
        assert_eq!(err.code(), tonic::Code::Unavailable, "{err}");
        assert!(matches!(dir.abort("r"), Err(IngestError::Busy(_))));
        drop(held);

        // A later stream goes on where the first stopped.
        assert_eq!(dir.status("r").unwrap().offset, 3);
        let mut held = dir.begin("r", 6).unwrap();
        held.write(3, b"def").unwrap();
        drop(held);

        dir.abort("r").unwrap();
        assert!(matches!(dir.status("r"), Err(IngestError::Unknown(_))));
        assert!(entries(&tmp.path().join("blobs/sha256")).is_empty());
        assert!(matches!(dir.abort("r"), Err(IngestError::Unknown(_))));
    }

    /// Two builds exporting into one directory: the end of one session takes nothing the
    /// other still writes with.
    #[test]
    fn sessions_writing_into_one_directory_do_not_pull_it_from_each_other() {
        let tmp = tempfile::tempdir().unwrap();
        let first = Arc::new(CacheDir::open(tmp.path()).unwrap());
        let second = Arc::new(CacheDir::open(tmp.path()).unwrap());
        let mut held = first.begin("a", 1).unwrap();
        held.write(0, b"a").unwrap();
        held.commit().unwrap();
        drop(first);
        let mut held = second.begin("b", 1).unwrap();
        held.write(0, b"b").unwrap();
        held.commit().unwrap();
        let mut want = vec![
            digest_of(b"a").hex().to_owned(),
            digest_of(b"b").hex().to_owned(),
        ];
        want.sort();
        assert_eq!(entries(&tmp.path().join("blobs/sha256")), want);
    }

    #[test]
    fn a_symlink_in_the_cache_directory_is_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        for link in ["blobs", "blobs/sha256"] {
            let root = tmp.path().join(format!("cache-{}", link.replace('/', "-")));
            std::fs::create_dir_all(root.join(link).parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(&outside, root.join(link)).unwrap();
            let err = CacheDir::open(&root).err().unwrap();
            assert!(
                err.to_string().contains("a symlink is not followed"),
                "{err}"
            );
        }
        assert!(entries(&outside).is_empty());
    }
}
