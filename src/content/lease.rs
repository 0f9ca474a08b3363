//! Which blobs running bud processes use, so that garbage collection in any process leaves
//! them alone.
//!
//! Each process that looks a blob up or stores one appends its digest to its own lease file,
//! `leases/<pid>-<start time>`; the file counts while that process lives. Leasing holds
//! `gc.lock` shared and removing a blob holds it exclusive: a blob leased before its removal
//! began is kept, and a lookup that comes after a removal finds the blob gone and makes it
//! again. A process leases before it checks that a blob exists or installs one, never after.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use rustix::fs::{FlockOperation, flock};

use super::Digest;
use crate::cache::meta::LeaseOwner;

#[derive(Debug)]
pub(super) struct Leases {
    dir: PathBuf,
    lock_path: PathBuf,
    owner: LeaseOwner,
    state: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    lock: Option<File>,
    file: Option<File>,
    digests: HashSet<Digest>,
}

impl Leases {
    pub(super) fn new(root: &Path) -> Leases {
        Leases {
            dir: root.join("leases"),
            lock_path: root.join("gc.lock"),
            owner: LeaseOwner::current(),
            state: Mutex::new(Held::default()),
        }
    }

    /// Leases `digest` for this process and marks the blob at `blob` used now. A failure is
    /// logged, not returned: the build goes on, only without protection from a collection
    /// running at the same time.
    pub(super) fn hold(&self, digest: &Digest, blob: &Path) {
        let mut held = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if held.digests.contains(digest) {
            return;
        }
        match self.record(&mut held, digest, blob) {
            Ok(()) => {
                held.digests.insert(digest.clone());
            }
            Err(e) => tracing::warn!(
                "cannot lease blob {digest}: {e}",
                e = crate::error_chain::error_chain(&e)
            ),
        }
    }

    fn record(&self, held: &mut Held, digest: &Digest, blob: &Path) -> io::Result<()> {
        if held.lock.is_none() {
            held.lock = Some(open_lock(&self.lock_path)?);
        }
        if held.file.is_none() {
            fs::create_dir_all(&self.dir)?;
            held.file = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.join(owner_name(&self.owner)))?,
            );
        }
        let (Some(lock), Some(file)) = (&held.lock, &mut held.file) else {
            return Ok(());
        };
        // The process-wide mutex is held: threads never share (and drop) this flock.
        flock(lock, FlockOperation::LockShared)?;
        let written = file.write_all(format!("{digest}\n").as_bytes());
        let _ = flock(lock, FlockOperation::Unlock);
        written?;
        // Last use, for least-recently-used collection.
        if let Ok(f) = File::options().write(true).open(blob) {
            let _ = f.set_modified(SystemTime::now());
        }
        Ok(())
    }
}

/// The blobs other live processes hold, with the lease files of dead ones removed. Called
/// with `gc.lock` held exclusively.
fn others_leases(dir: &Path) -> io::Result<HashSet<Digest>> {
    let me = LeaseOwner::current();
    let mut leased = HashSet::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(leased),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Some(owner) = entry.file_name().to_str().and_then(parse_owner) else {
            continue;
        };
        if owner == me {
            continue;
        }
        if !owner.is_alive() {
            let _ = fs::remove_file(entry.path());
            continue;
        }
        let text = match fs::read_to_string(entry.path()) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        leased.extend(text.lines().filter_map(|l| Digest::parse(l).ok()));
    }
    Ok(leased)
}

/// The store's side of a collection: `gc.lock` held exclusively, so no process can lease
/// while blobs are checked and removed.
pub(super) struct Exclusive {
    lock: File,
    leased: HashSet<Digest>,
}

impl Exclusive {
    pub(super) fn take(root: &Path) -> io::Result<Exclusive> {
        let lock = open_lock(&root.join("gc.lock"))?;
        flock(&lock, FlockOperation::LockExclusive)?;
        let leased = others_leases(&root.join("leases"))?;
        Ok(Exclusive { lock, leased })
    }

    pub(super) fn is_leased(&self, digest: &Digest) -> bool {
        self.leased.contains(digest)
    }
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        let _ = flock(&self.lock, FlockOperation::Unlock);
    }
}

/// The blobs other live processes hold, read without the lock (for `bud du`: a snapshot of
/// what was in use, not a guarantee).
pub(super) fn leased_by_others(root: &Path) -> io::Result<HashSet<Digest>> {
    others_leases(&root.join("leases"))
}

fn open_lock(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
}

fn owner_name(owner: &LeaseOwner) -> String {
    format!("{}-{}", owner.pid, owner.start_time)
}

fn parse_owner(name: &str) -> Option<LeaseOwner> {
    let (pid, start) = name.split_once('-')?;
    Some(LeaseOwner {
        pid: pid.parse().ok()?,
        start_time: start.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_names_round_trip() {
        let me = LeaseOwner::current();
        assert_eq!(parse_owner(&owner_name(&me)), Some(me));
        assert_eq!(parse_owner("x-1"), None);
        assert_eq!(parse_owner("12"), None);
    }

    #[test]
    fn leases_of_dead_processes_are_dropped_and_mine_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let leases = dir.path().join("leases");
        fs::create_dir_all(&leases).unwrap();
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        let dead = LeaseOwner {
            pid: i64::from(i32::MAX),
            start_time: 1,
        };
        fs::write(leases.join(owner_name(&dead)), format!("{a}\n")).unwrap();
        fs::write(
            leases.join(owner_name(&LeaseOwner::current())),
            format!("{b}\n"),
        )
        .unwrap();
        assert!(others_leases(&leases).unwrap().is_empty());
        assert!(!leases.join(owner_name(&dead)).exists());
    }
}
