//! The bud under test copied where the test users can run it (the build's own may sit below
//! a directory only root may enter, a clone in /root), one copy per build of bud.
//!
//! Every build of bud used to leave a copy of its own (hundreds of MB) behind for good. Now
//! each copy `bud-SIZE-MTIME` has a lock file beside it, `bud-SIZE-MTIME.lock`, on which
//! every test process using the copy holds a shared `flock` until it exits; a test process
//! removes the other copies whose lock it can take exclusively, so that only the copies of
//! live test processes stay. Copies without a lock file were made before this rule, by test
//! processes that may still run and exec them: they are left alone.
//!
//! A lock file is removed by a process holding its exclusive lock; a process taking the
//! shared lock then checks that the path still names the file it locked, else starts again,
//! so a copy is never removed between its user's check and its lock.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

const LOCK_SUFFIX: &str = ".lock";
/// A copy being written by the process whose id follows, renamed into place when whole.
const PARTIAL_PREFIX: &str = "partial-";

/// A copy of `built` in `dir`, and the open lock file that keeps other test processes from
/// removing it while this process lives: the caller keeps it open as long as it may run
/// the copy. Older copies that no live process holds are removed.
pub fn shared_copy(built: &Path, dir: &Path) -> (PathBuf, File) {
    let meta = std::fs::metadata(built).expect("stat bud");
    // Size and modification time tell builds apart without reading 350 MB to hash them.
    let name = format!(
        "bud-{}-{}",
        meta.size(),
        meta.mtime_nsec() + meta.mtime() * 1_000_000_000
    );
    let copy = dir.join(&name);
    let lock = lock_shared(&dir.join(format!("{name}{LOCK_SUFFIX}")));
    if !copy.exists() {
        let partial = dir.join(format!("{PARTIAL_PREFIX}{}", std::process::id()));
        let _ = std::fs::remove_file(&partial);
        if std::fs::hard_link(built, &partial).is_err() {
            std::fs::copy(built, &partial).expect("copy bud for the test users");
        }
        std::fs::rename(&partial, &copy).expect("put bud in place for the test users");
    }
    remove_unused(dir, &name);
    (copy, lock)
}

/// `path`, created if need be, with a shared lock held on it.
fn lock_shared(path: &Path) -> File {
    loop {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        flock(&file, FlockOperation::LockShared)
            .unwrap_or_else(|e| panic!("lock {}: {e}", path.display()));
        // Removed (by a process that held it exclusively) between the open and the lock.
        if names(path, &file) {
            return file;
        }
    }
}

/// Whether `path` is still the file `file` opened.
fn names(path: &Path, file: &File) -> bool {
    let (Ok(named), Ok(opened)) = (std::fs::metadata(path), file.metadata()) else {
        return false;
    };
    named.dev() == opened.dev() && named.ino() == opened.ino()
}

/// Removes from `dir` every copy but `keep` that no live process holds, and copies left
/// half written by dead processes.
fn remove_unused(dir: &Path, keep: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(copy) = name.strip_suffix(LOCK_SUFFIX) {
            if copy != keep {
                remove_if_unused(dir, copy, &entry.path());
            }
        } else if let Some(pid) = name.strip_prefix(PARTIAL_PREFIX)
            && pid.parse::<u32>().is_ok()
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Removes the copy `copy` and then its lock file `lock`, if no process holds the lock.
fn remove_if_unused(dir: &Path, copy: &str, lock: &Path) {
    let Ok(file) = File::open(lock) else {
        return;
    };
    if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() || !names(lock, &file) {
        return;
    }
    let _ = std::fs::remove_file(dir.join(copy));
    let _ = std::fs::remove_file(lock);
}
