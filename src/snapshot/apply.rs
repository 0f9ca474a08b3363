//! Unpacks an OCI layer tar into an empty directory in overlayfs' format, to be used as a
//! lower: `.wh.NAME` becomes a 0/0 character device, `.wh..wh..opq` the opaque xattr.
//! Every entry, whiteouts included, keeps the tar's owner and time (a directory's is set
//! once all its entries are in), so that the directory tars back to the same layer.
//!
//! The archive is untrusted. Every entry is created relative to a directory fd opened with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, so no symlink in a parent path (one the
//! archive itself planted, say) is ever followed and nothing is written outside `dir`; an
//! archive that tries either fails with [`SnapshotError::UnsafeEntry`].

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;
use tar::{Archive, EntryType};

use super::{OPAQUE_WHITEOUT, Result, SnapshotError, WHITEOUT_PREFIX, walk};

/// Unpacks `tar` (uncompressed) into `dir`, which should be empty.
///
/// Small files are written by [`FileWriters`] while the archive is read on: creating files
/// is most of the time a layer of many small ones takes, and it goes faster side by side.
pub fn extract_layer(tar: impl Read, dir: &Path) -> Result<()> {
    std::thread::scope(|scope| {
        let mut writers = FileWriters::start(scope);
        extract_entries(tar, dir, &mut writers)?;
        writers.wait()
    })
}

fn extract_entries(tar: impl Read, dir: &Path, writers: &mut FileWriters) -> Result<()> {
    let root = walk::open_root(dir)?;
    let mut archive = Archive::new(tar);
    let entries = archive
        .entries()
        .map_err(|e| SnapshotError::io("reading layer for", dir, e))?;
    // Directory times are set last: creating their children would change them again.
    let mut dir_times: Vec<(String, Timespec)> = Vec::new();
    // The parent of the last entry, when that entry was a regular file: the next file in
    // the same directory (a layer lists a directory's files together) reuses the descriptor
    // instead of walking the path again. Files only ever add or replace children of their
    // parent, so the descriptor stays that directory; any other entry drops it.
    let mut last_parent: Option<(String, Arc<OwnedFd>)> = None;
    for entry in entries {
        let mut entry = entry.map_err(|e| SnapshotError::io("reading layer for", dir, e))?;
        let raw_path = entry.path_bytes().into_owned();
        let display = String::from_utf8_lossy(&raw_path).into_owned();
        let rel = clean_path(&raw_path, &display)?;
        if rel.is_empty() {
            // The layer's root: `dir` itself, whose metadata the caller owns.
            continue;
        }
        let meta = EntryMeta::read(&mut entry, &display)?;
        let kind = entry.header().entry_type();
        let (parent, name) = walk::split_parent(&rel);
        let regular = matches!(kind, EntryType::Regular | EntryType::Continuous)
            && !name.starts_with(WHITEOUT_PREFIX);
        if !regular || writers.writing(&rel) {
            // What an entry that is not a new file does may depend on the files before it
            // (a link to one, a whiteout or a directory replacing one): they are written
            // first. So is a file listed twice.
            writers.wait()?;
        }
        let parent_fd = match last_parent.take() {
            Some((path, fd)) if regular && path == parent => fd,
            _ => Arc::new(ensure_dir(&root, parent, &display)?),
        };
        let io = |action: &'static str| {
            let display = display.clone();
            move |e: Errno| SnapshotError::io(action, format!("{}/{display}", dir.display()), e)
        };

        if name == OPAQUE_WHITEOUT {
            let fd = rustix::fs::openat(
                &parent_fd,
                ".",
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(io("opening"))?;
            if let Some(marker) = super::make_opaque(&fd).map_err(io("marking opaque"))? {
                meta.restore_marker(&fd, marker)
                    .map_err(io("setting metadata of"))?;
            }
            continue;
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            // `.wh..wh.*` names are aufs bookkeeping with no meaning in a layer.
            if hidden.starts_with(WHITEOUT_PREFIX) || hidden.is_empty() {
                continue;
            }
            remove_existing(&parent_fd, hidden).map_err(io("replacing"))?;
            let made = super::make_whiteout(&parent_fd, std::ffi::OsStr::new(hidden))
                .map_err(io("creating whiteout"))?;
            meta.restore_marker(&parent_fd, made.as_os_str())
                .map_err(io("setting metadata of"))?;
            continue;
        }

        match kind {
            EntryType::Directory => {
                match rustix::fs::statat(&parent_fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
                    Ok(_) => {
                        remove_existing(&parent_fd, name).map_err(io("replacing"))?;
                        mkdir(&parent_fd, name).map_err(io("creating"))?;
                    }
                    Err(Errno::NOENT) => mkdir(&parent_fd, name).map_err(io("creating"))?,
                    Err(e) => return Err(io("reading")(e)),
                }
                let fd = rustix::fs::openat2(
                    &parent_fd,
                    name,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                    walk::STRICT_RESOLVE,
                )
                .map_err(io("opening"))?;
                meta.apply_fd(&fd).map_err(io("setting metadata of"))?;
                dir_times.push((rel.clone(), meta.mtime));
            }
            EntryType::Regular | EntryType::Continuous => {
                let job = FileJob {
                    parent: parent_fd.clone(),
                    name: name.to_owned(),
                    meta,
                    path: format!("{}/{display}", dir.display()),
                };
                if entry.size() <= SMALL_FILE {
                    let mut data = Vec::with_capacity(entry.size() as usize);
                    entry
                        .read_to_end(&mut data)
                        .map_err(|e| SnapshotError::io("reading layer for", dir, e))?;
                    writers.write(rel.clone(), job, data)?;
                } else {
                    job.write(&mut entry)?;
                }
                last_parent = Some((parent.to_owned(), parent_fd));
            }
            EntryType::Symlink => {
                let target = link_name(&entry, &display)?;
                remove_existing(&parent_fd, name).map_err(io("replacing"))?;
                rustix::fs::symlinkat(target.as_slice(), &parent_fd, name)
                    .map_err(io("creating"))?;
                meta.chown_at(&parent_fd, name)
                    .map_err(io("setting owner of"))?;
                meta.set_times(&parent_fd, name)
                    .map_err(io("setting times of"))?;
            }
            EntryType::Link => {
                let target = link_name(&entry, &display)?;
                let target_rel = clean_path(&target, &display)?;
                if target_rel.is_empty() {
                    return Err(SnapshotError::UnsafeEntry {
                        path: display,
                        reason: "hard link to the layer's root",
                    });
                }
                let (target_parent, target_name) = walk::split_parent(&target_rel);
                let target_parent_fd =
                    walk::open_dir_beneath(&root, target_parent).map_err(|_| {
                        SnapshotError::UnsafeEntry {
                            path: display.clone(),
                            reason: "hard link target is not an earlier entry of the layer",
                        }
                    })?;
                remove_existing(&parent_fd, name).map_err(io("replacing"))?;
                rustix::fs::linkat(
                    &target_parent_fd,
                    target_name,
                    &parent_fd,
                    name,
                    AtFlags::empty(),
                )
                .map_err(io("linking"))?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let file_type = match kind {
                    EntryType::Char => FileType::CharacterDevice,
                    EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let header = entry.header();
                let dev = rustix::fs::makedev(
                    header.device_major().ok().flatten().unwrap_or(0),
                    header.device_minor().ok().flatten().unwrap_or(0),
                );
                remove_existing(&parent_fd, name).map_err(io("replacing"))?;
                rustix::fs::mknodat(&parent_fd, name, file_type, Mode::from_raw_mode(0o600), dev)
                    .map_err(io("creating"))?;
                meta.chown_at(&parent_fd, name)
                    .map_err(io("setting owner of"))?;
                rustix::fs::chmodat(
                    &parent_fd,
                    name,
                    Mode::from_raw_mode(meta.mode),
                    AtFlags::empty(),
                )
                .map_err(io("setting mode of"))?;
                meta.set_times(&parent_fd, name)
                    .map_err(io("setting times of"))?;
            }
            EntryType::XGlobalHeader => {}
            other => {
                return Err(SnapshotError::Unsupported {
                    path: display,
                    what: format!("entry type {other:?}"),
                });
            }
        }
    }
    writers.wait()?;
    for (rel, mtime) in dir_times.iter().rev() {
        let (parent, name) = walk::split_parent(rel);
        if let Ok(parent_fd) = walk::open_dir_beneath(&root, parent) {
            let meta = EntryMeta {
                mtime: *mtime,
                ..EntryMeta::default()
            };
            meta.set_times(&parent_fd, name)
                .map_err(|e| SnapshotError::io("setting times of", dir.join(rel), e))?;
        }
    }
    Ok(())
}

/// Validates an entry's path and returns it relative, without `.` or empty components.
/// An absolute name is taken from the layer's root, as Docker and containerd extract it
/// (they join it to the root); a `..` component is refused.
fn clean_path(raw: &[u8], display: &str) -> Result<String> {
    let unsafe_entry = |reason| SnapshotError::UnsafeEntry {
        path: display.to_owned(),
        reason,
    };
    let Ok(text) = std::str::from_utf8(raw) else {
        return Err(SnapshotError::Unsupported {
            path: display.to_owned(),
            what: "non-UTF-8 path".to_owned(),
        });
    };
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(unsafe_entry("path with a `..` component")),
            p if p.contains('\0') => return Err(unsafe_entry("NUL in path")),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

fn link_name<R: Read>(entry: &tar::Entry<'_, R>, display: &str) -> Result<Vec<u8>> {
    match entry.link_name_bytes() {
        Some(name) if !name.is_empty() => Ok(name.into_owned()),
        _ => Err(SnapshotError::Unsupported {
            path: display.to_owned(),
            what: "link without a target".to_owned(),
        }),
    }
}

fn mkdir(parent: &OwnedFd, name: &str) -> rustix::io::Result<()> {
    rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(0o755))
}

/// Opens (creating as 0755 directories when missing) `rel` beneath `root`. A component that
/// is a symlink or not a directory fails: the archive would be writing through it.
fn ensure_dir(root: &OwnedFd, rel: &str, display: &str) -> Result<OwnedFd> {
    let mut current =
        walk::open_dir_beneath(root, "").map_err(|e| SnapshotError::io("opening", display, e))?;
    if rel.is_empty() {
        return Ok(current);
    }
    for part in rel.split('/') {
        match mkdir(&current, part) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(SnapshotError::io("creating parent of", display, e)),
        }
        current = walk::open_dir_beneath(&current, part).map_err(|e| match e {
            Errno::LOOP | Errno::NOTDIR | Errno::XDEV => SnapshotError::UnsafeEntry {
                path: display.to_owned(),
                reason: "a parent directory is a symlink or not a directory",
            },
            e => SnapshotError::io("opening parent of", display, e),
        })?;
    }
    Ok(current)
}

/// Files up to this size are read into memory and written by [`FileWriters`]; larger ones
/// are written as they are read, where their bytes, not their creation, are the cost.
const SMALL_FILE: u64 = 1 << 20;
/// Files read and waiting for a writer: at most this many [`SMALL_FILE`]s in memory.
const QUEUED_FILES: usize = 32;

/// A regular file to create in `parent`, which an earlier entry made or walked to.
struct FileJob {
    parent: Arc<OwnedFd>,
    name: String,
    meta: EntryMeta,
    /// For messages: the file's path on the host.
    path: String,
}

impl FileJob {
    /// Creates the file, replacing what an earlier entry made there, with `data` and its
    /// owner, mode, xattrs and time.
    fn write(self, data: &mut dyn Read) -> Result<()> {
        let io = |action: &'static str| {
            let path = &self.path;
            move |e: Errno| SnapshotError::io(action, path, e)
        };
        let create = || {
            rustix::fs::openat(
                &self.parent,
                self.name.as_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
        };
        // Most names are new: what an earlier entry made is removed only when there.
        let fd = match create() {
            Err(Errno::EXIST) => {
                remove_existing(&self.parent, &self.name).map_err(io("replacing"))?;
                create()
            }
            created => created,
        }
        .map_err(io("creating"))?;
        let mut file = std::fs::File::from(fd);
        std::io::copy(data, &mut file).map_err(|e| SnapshotError::io("writing", &self.path, e))?;
        self.meta
            .apply_fd(&file)
            .map_err(io("setting metadata of"))?;
        self.meta
            .set_times(&self.parent, self.name.as_str())
            .map_err(io("setting times of"))
    }
}

/// Threads that write small files while the archive is read on. The reader waits for them
/// ([`FileWriters::wait`]) before any entry whose effect depends on the files before it.
struct FileWriters {
    queue: Option<std::sync::mpsc::SyncSender<(FileJob, Vec<u8>)>>,
    state: Arc<(Mutex<Writing>, Condvar)>,
    /// The paths handed over since the last wait.
    paths: HashSet<String>,
}

/// Files handed over and not written yet, and the first failure.
#[derive(Default)]
struct Writing {
    pending: usize,
    failure: Option<SnapshotError>,
}

impl FileWriters {
    /// Writers on `scope`'s threads, one per core (at least two: creating a file mostly
    /// waits on the filesystem); they end when the writers are dropped.
    fn start<'scope>(scope: &'scope std::thread::Scope<'scope, '_>) -> Self {
        let (queue, jobs) = std::sync::mpsc::sync_channel::<(FileJob, Vec<u8>)>(QUEUED_FILES);
        let jobs = Arc::new(Mutex::new(jobs));
        let state: Arc<(Mutex<Writing>, Condvar)> = Arc::default();
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4));
        for _ in 0..threads {
            let (jobs, state) = (jobs.clone(), state.clone());
            scope.spawn(move || {
                loop {
                    // The lock is held only to take the next job.
                    let next = jobs.lock().map(|jobs| jobs.recv());
                    let Ok(Ok((job, data))) = next else { return };
                    let path = job.path.clone();
                    // A panic must still count the file as done, or the reader would wait
                    // for it forever.
                    let written = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        job.write(&mut data.as_slice())
                    }))
                    .unwrap_or_else(|_| {
                        Err(SnapshotError::io(
                            "writing",
                            path,
                            std::io::Error::other("the file's writer panicked"),
                        ))
                    });
                    let (writing, done) = &*state;
                    let mut writing = writing.lock().unwrap_or_else(PoisonError::into_inner);
                    writing.pending -= 1;
                    if let Err(e) = written {
                        writing.failure.get_or_insert(e);
                    }
                    done.notify_all();
                }
            });
        }
        FileWriters {
            queue: Some(queue),
            state,
            paths: HashSet::new(),
        }
    }

    /// Whether a file at `rel` was handed over since the last wait.
    fn writing(&self, rel: &str) -> bool {
        self.paths.contains(rel)
    }

    /// Hands the file at `rel` over to a writer.
    fn write(&mut self, rel: String, job: FileJob, data: Vec<u8>) -> Result<()> {
        let Some(queue) = &self.queue else {
            return job.write(&mut data.as_slice());
        };
        self.state
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pending += 1;
        self.paths.insert(rel);
        if let Err(std::sync::mpsc::SendError((job, data))) = queue.send((job, data)) {
            // Every writer is gone (none could start): write it here.
            self.state
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pending -= 1;
            self.queue = None;
            return job.write(&mut data.as_slice());
        }
        Ok(())
    }

    /// Waits until every file handed over is written; the first failure, if any.
    fn wait(&mut self) -> Result<()> {
        self.paths.clear();
        let (writing, done) = &*self.state;
        let mut writing = writing.lock().unwrap_or_else(PoisonError::into_inner);
        while writing.pending > 0 {
            writing = done.wait(writing).unwrap_or_else(PoisonError::into_inner);
        }
        writing.failure.take().map_or(Ok(()), Err)
    }
}

/// Makes room for a new entry called `name`: a later entry replaces an earlier one, as in
/// tar. A directory is only replaced when empty.
fn remove_existing(parent: &OwnedFd, name: &str) -> rustix::io::Result<()> {
    match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e),
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
            rustix::fs::unlinkat(parent, name, AtFlags::REMOVEDIR)
        }
        Ok(_) => rustix::fs::unlinkat(parent, name, AtFlags::empty()),
    }
}

/// Ownership, permissions, mtime and xattrs of an entry.
#[derive(Debug, Default)]
struct EntryMeta {
    uid: u32,
    gid: u32,
    mode: u32,
    /// With a PAX record's nanoseconds; out of Go's range, the epoch (containerd's and
    /// moby's `boundTime`).
    mtime: Timespec,
    xattrs: Vec<(String, Vec<u8>)>,
}

impl EntryMeta {
    fn read<R: Read>(entry: &mut tar::Entry<'_, R>, display: &str) -> Result<Self> {
        let header = entry.header();
        let bad = |what: &str| SnapshotError::Unsupported {
            path: display.to_owned(),
            what: format!("header field {what}"),
        };
        // An all-NUL or blank numeric field reads as 0, as Go's archive/tar reads it.
        let id = |raw: &[u8], parsed: std::io::Result<u64>, what: &str| -> Result<u32> {
            if raw.iter().all(|b| *b == 0 || *b == b' ') {
                return Ok(0);
            }
            parsed
                .ok()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| bad(what))
        };
        let old = header.as_old();
        let mut meta = EntryMeta {
            uid: id(&old.uid, header.uid(), "uid")?,
            gid: id(&old.gid, header.gid(), "gid")?,
            mode: header.mode().map_err(|_| bad("mode"))? & 0o7777,
            // Set below, from the PAX record if there is one.
            mtime: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            xattrs: Vec::new(),
        };
        let mut mtime: (i64, u32) = (
            header
                .mtime()
                .ok()
                .and_then(|v| i64::try_from(v).ok())
                .unwrap_or(0),
            0,
        );
        let pax: HashMap<String, Vec<u8>> = match entry
            .pax_extensions()
            .map_err(|e| SnapshotError::io("reading PAX header of", display, e))?
        {
            Some(extensions) => extensions
                .filter_map(|ext| ext.ok())
                .filter_map(|ext| Some((ext.key().ok()?.to_owned(), ext.value_bytes().to_vec())))
                .collect(),
            None => HashMap::new(),
        };
        for (key, value) in pax {
            let number = || std::str::from_utf8(&value).ok().map(str::trim);
            match key.as_str() {
                "uid" => {
                    meta.uid = number()
                        .and_then(|v| v.parse().ok())
                        .ok_or_else(|| bad("uid"))?
                }
                "gid" => {
                    meta.gid = number()
                        .and_then(|v| v.parse().ok())
                        .ok_or_else(|| bad("gid"))?
                }
                "mtime" => {
                    if let Some(time) = number().and_then(crate::timefmt::pax_time) {
                        mtime = time;
                    }
                }
                _ => {
                    if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                        meta.xattrs.push((name.to_owned(), value));
                    }
                }
            }
        }
        let (secs, nanos) = crate::timefmt::bound_time(mtime.0, mtime.1);
        meta.mtime = Timespec {
            tv_sec: secs,
            tv_nsec: nanos.into(),
        };
        meta.xattrs.sort();
        if let Some(why) = crate::privilege::unmapped_owner(meta.uid, meta.gid) {
            return Err(SnapshotError::Unsupported {
                path: display.to_owned(),
                what: why,
            });
        }
        Ok(meta)
    }

    /// Owner, then mode (a chown clears set-id bits), then xattrs, on an open file or dir.
    fn apply_fd(&self, fd: impl std::os::fd::AsFd) -> rustix::io::Result<()> {
        let fd = fd.as_fd();
        rustix::fs::fchown(
            fd,
            Some(rustix::fs::Uid::from_raw(self.uid)),
            Some(rustix::fs::Gid::from_raw(self.gid)),
        )?;
        rustix::fs::fchmod(fd, Mode::from_raw_mode(self.mode))?;
        for (name, value) in &self.xattrs {
            rustix::fs::fsetxattr(fd, name.as_str(), value, XattrFlags::empty())?;
        }
        Ok(())
    }

    /// The entry's owner and times on the whiteout or opaque marker made for it, as the
    /// layer writer reads them back (containerd and moby chown theirs too); its mode stays
    /// the marker's own.
    fn restore_marker(
        &self,
        parent: impl std::os::fd::AsFd,
        name: impl rustix::path::Arg + Copy,
    ) -> rustix::io::Result<()> {
        let parent = parent.as_fd();
        rustix::fs::chownat(
            parent,
            name,
            Some(rustix::fs::Uid::from_raw(self.uid)),
            Some(rustix::fs::Gid::from_raw(self.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )?;
        self.set_times(parent, name)
    }

    fn chown_at(&self, parent: &OwnedFd, name: &str) -> rustix::io::Result<()> {
        rustix::fs::chownat(
            parent,
            name,
            Some(rustix::fs::Uid::from_raw(self.uid)),
            Some(rustix::fs::Gid::from_raw(self.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
    }

    fn set_times(
        &self,
        parent: impl std::os::fd::AsFd,
        name: impl rustix::path::Arg,
    ) -> rustix::io::Result<()> {
        let time = self.mtime;
        rustix::fs::utimensat(
            parent,
            name,
            &Timestamps {
                last_access: time,
                last_modification: time,
            },
            AtFlags::SYMLINK_NOFOLLOW,
        )
    }
}
