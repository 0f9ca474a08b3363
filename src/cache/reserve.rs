//! Space the metadata store keeps back on its filesystem, so that bud can still prune its
//! cache when the disk is full.
//!
//! Deleting a record writes to SQLite's write-ahead log, and a first connection maps a fresh
//! shared-memory file: both need free bytes, and a full disk has none. `meta.reserve` holds
//! [`RESERVE_BYTES`] allocated while there is room; a command that frees space releases it
//! when the filesystem is nearly full, which lets its first deletions through, and a later
//! open takes it back once there is room again.

use std::io;
use std::path::{Path, PathBuf};

/// The size of the reserve: room for SQLite's shared memory and a WAL of a few hundred
/// deletions, after which the deleted directories have freed far more.
pub const RESERVE_BYTES: u64 = 4 << 20;

/// Below this much free space a filesystem counts as full.
pub(crate) const NEARLY_FULL_BYTES: u64 = RESERVE_BYTES;

/// Bytes this process may still allocate on the filesystem of `path`: root may use the
/// blocks a filesystem keeps for it, others may not.
pub(crate) fn free_bytes(path: &Path) -> io::Result<u64> {
    let st = rustix::fs::statvfs(path)?;
    let blocks = if rustix::process::geteuid().is_root() {
        st.f_bfree
    } else {
        st.f_bavail
    };
    Ok(blocks.saturating_mul(st.f_frsize))
}

/// Whether the filesystem of `path` is (nearly) full; `false` when it cannot be told.
pub(crate) fn is_nearly_full(path: &Path) -> bool {
    free_bytes(path).is_ok_and(|free| free < NEARLY_FULL_BYTES)
}

/// The reserve file next to the metadata database.
#[derive(Debug, Clone)]
pub(crate) struct Reserve {
    path: PathBuf,
}

impl Reserve {
    /// The reserve of the database `db`: the same path with the extension `reserve`.
    pub(crate) fn beside(db: &Path) -> Self {
        Self {
            path: db.with_extension("reserve"),
        }
    }

    /// The reserve file, for messages.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Gives the reserve's space back to the filesystem. Returns the bytes released.
    pub(crate) fn release(&self) -> io::Result<u64> {
        let size = allocated(&self.path)?;
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(size),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Makes sure the reserve is allocated in full, if the filesystem has room for it and
    /// then some (taking the last free bytes would make the disk full by itself).
    pub(crate) fn replenish(&self) -> io::Result<()> {
        let have = allocated(&self.path)?;
        if have >= RESERVE_BYTES {
            return Ok(());
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        if free_bytes(dir)? < 3 * RESERVE_BYTES {
            return Ok(());
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.path)?;
        match rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, RESERVE_BYTES) {
            Ok(()) => Ok(()),
            // Filesystems without fallocate: blocks written are blocks allocated.
            Err(rustix::io::Errno::OPNOTSUPP) => {
                use std::io::Write;
                let mut file = file;
                let zeros = vec![0u8; 1 << 20];
                for _ in 0..RESERVE_BYTES / zeros.len() as u64 {
                    file.write_all(&zeros)?;
                }
                file.sync_all()
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Bytes allocated to a file; 0 when it does not exist.
fn allocated(path: &Path) -> io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Ok(m) => Ok(m.blocks() * 512),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replenish_allocates_and_release_frees() {
        let dir = tempfile::tempdir().unwrap();
        let reserve = Reserve::beside(&dir.path().join("meta.db"));
        assert_eq!(reserve.path(), dir.path().join("meta.reserve"));
        if free_bytes(dir.path()).unwrap() < 3 * RESERVE_BYTES {
            return;
        }
        reserve.replenish().unwrap();
        assert!(allocated(reserve.path()).unwrap() >= RESERVE_BYTES);
        // Idempotent.
        reserve.replenish().unwrap();
        assert!(reserve.release().unwrap() >= RESERVE_BYTES);
        assert!(!reserve.path().exists());
        assert_eq!(reserve.release().unwrap(), 0);
    }
}
