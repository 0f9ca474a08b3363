//! Snapshots as the solver uses them: a result is a chain of read-only layer directories
//! (`snapshots/<id>`); a step works in a fresh upper directory under `tmp/`, and committing
//! renames it into `snapshots/` and records it, atomically, in the metadata store.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest as _, Sha256};

use crate::cache::meta::{self, LeaseOwner, MetaStore, SnapshotKind, SnapshotRecord};
use crate::content::ContentStore;
use crate::snapshot::overlay::{self, MountGuard, Writable};
use crate::source::context::EntryKind;
use crate::state::StateRoot;

use super::SolveError;
use super::source::LocalContext;

/// The value of one op output.
#[derive(Debug, Clone)]
pub enum Ref {
    /// An empty filesystem.
    Scratch,
    /// A committed snapshot: its layer and its parents'.
    Snapshot(Arc<SnapshotRecord>),
    /// A local context directory, as walked (contents are read from the directory).
    Context(Arc<LocalContext>),
    /// A result of an imported cache not brought in yet (`Solver::bring_in`).
    Lazy(super::lazy::LazyRef),
}

impl Ref {
    /// The snapshot's ID, for a committed snapshot only.
    pub fn snapshot_id(&self) -> Option<&str> {
        match self {
            Ref::Snapshot(r) => Some(&r.id),
            _ => None,
        }
    }
}

/// The embedded solver's snapshots: committed layers under the state root's `snapshots/`,
/// their records in the metadata store, and the workspaces steps run in.
pub struct Snapshots {
    /// The state root the layers and workspaces live under.
    pub state: StateRoot,
    /// Snapshot records, cache keys and leases.
    pub meta: Arc<MetaStore>,
    /// This process's lease: every snapshot a build looks up or commits is leased to it,
    /// so that garbage collection elsewhere leaves it alone.
    pub owner: LeaseOwner,
    /// Blobs by digest: image layers as uncompressed tars (by diff ID), for export.
    pub content: ContentStore,
    /// Overlays do not work here (see [`super::snapshotter`]): steps run on plain copies of
    /// their layers, and a step's layer is found by comparing its copy with the layers.
    pub copy_mode: bool,
}

/// A writable root a step works in, finished into the workspace's upper directory.
#[must_use = "finish() turns the step's changes into its layer"]
pub(crate) enum WritableRoot {
    /// An overlay mounted on the target, unmounted by `finish` (or on drop).
    Overlay(MountGuard),
    /// A copy of the layers at `target`; `base` is a second, untouched copy to diff against.
    Copy {
        target: PathBuf,
        base: PathBuf,
        upper: PathBuf,
    },
}

impl WritableRoot {
    /// Unmounts the overlay, or writes the copy's changes into the upper directory.
    pub(crate) fn finish(self) -> Result<(), SolveError> {
        match self {
            WritableRoot::Overlay(guard) => Ok(guard.unmount()?),
            WritableRoot::Copy {
                target,
                base,
                upper,
            } => Ok(crate::snapshot::copy::diff(&base, &target, &upper)?),
        }
    }
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A unique name for work in flight; its `pid-` prefix lets garbage collection tell which
/// process left it behind.
pub fn unique_name() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let h = Sha256::digest(format!("{}-{t}-{n}", std::process::id()));
    format!("{}-{}", std::process::id(), &hex::encode(h)[..16])
}

/// A directory in `tmp/` for one step: `upper/` (what the step writes), `work/` (overlay's
/// scratch) and mount points. Removed on drop unless committed.
pub struct Workspace {
    /// `tmp/<pid>-<random>` under the state root.
    pub dir: PathBuf,
}

impl Workspace {
    /// Where the step's changes go: an overlay's upper directory, committed as the layer.
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    /// overlayfs's work directory, on the same filesystem as the upper one.
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    /// A fresh, empty directory inside the workspace, for a mount point or a file.
    pub fn subdir(&self, name: &str) -> Result<PathBuf, SolveError> {
        let p = self.dir.join(name);
        std::fs::create_dir_all(&p).map_err(SolveError::io("creating", &p))?;
        Ok(p)
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        if self.dir.exists()
            && let Err(e) = std::fs::remove_dir_all(&self.dir)
        {
            tracing::warn!("removing {}: {e}", self.dir.display());
        }
    }
}

/// How a snapshot is recorded: new (an existing one for its key wins), replacing the key's
/// (a step run despite the cache), or brought from an imported cache.
#[derive(Clone, Copy)]
enum Commit<'a> {
    New,
    Replacing,
    Imported { created: i64, diff_id: &'a str },
}

/// A read-only view of a result, mounted while it is alive.
pub struct View {
    /// Where the result's files are seen.
    pub path: PathBuf,
    _mount: Option<MountGuard>,
    _workspace: Option<Workspace>,
}

impl View {
    /// Keeps a workspace alive (and removes it on drop) without mounting anything.
    pub(crate) fn holding(ws: Workspace) -> Self {
        View {
            path: ws.upper(),
            _mount: None,
            _workspace: Some(ws),
        }
    }
}

impl Snapshots {
    /// The snapshots of the state root `state`, for this process: overlays or copies as
    /// [`super::snapshotter`] decides, with the one-line note to show when it chose copies.
    /// What this process looks up or commits is leased to it until [`Snapshots::release`].
    pub fn open(
        state: StateRoot,
        meta: Arc<MetaStore>,
    ) -> Result<(Self, Option<String>), SolveError> {
        let content =
            ContentStore::new(state.content_dir()).map_err(SolveError::failed("content store"))?;
        let snapshotter = super::snapshotter::Snapshotter::choose(&state);
        let snapshots = Snapshots {
            state,
            meta,
            owner: LeaseOwner::current(),
            content,
            copy_mode: snapshotter.copy_mode,
        };
        Ok((snapshots, snapshotter.note))
    }

    /// Gives up this process's leases: garbage collection may take what it used from now on.
    pub fn release(&self) -> Result<(), SolveError> {
        Ok(self.meta.release(&self.owner)?)
    }

    /// A new workspace, its `upper/` and `work/` made.
    pub fn workspace(&self) -> Result<Workspace, SolveError> {
        let dir = self.state.tmp_dir().join(unique_name());
        for d in [dir.join("upper"), dir.join("work")] {
            std::fs::create_dir_all(&d).map_err(SolveError::io("creating", &d))?;
        }
        Ok(Workspace { dir })
    }

    /// Removes the workspaces of bud processes that died without cleaning up (SIGKILL, a
    /// power loss): their names start with the owner's pid.
    pub fn remove_abandoned_work(&self) {
        let Ok(entries) = std::fs::read_dir(self.state.tmp_dir()) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) = name.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
                tracing::info!("removing {name}, left by a bud process that is gone");
                if let Err(err) = std::fs::remove_dir_all(e.path()) {
                    tracing::warn!("removing {}: {err}", e.path().display());
                }
            }
        }
    }

    /// The directory of snapshot `id`'s own layer (its files, without its parents').
    pub fn layer_dir(&self, id: &str) -> PathBuf {
        self.state.snapshots_dir().join(id)
    }

    /// The layer directories of a snapshot and its parents, topmost first.
    pub fn lowers(&self, id: &str) -> Result<Vec<PathBuf>, SolveError> {
        let chain = self.meta.chain(id)?;
        Ok(chain.iter().map(|r| self.layer_dir(&r.id)).collect())
    }

    /// The records of a snapshot's chain, bottom first: the image's layers in order.
    pub fn chain_bottom_up(&self, id: &str) -> Result<Vec<SnapshotRecord>, SolveError> {
        let mut chain = self.meta.chain(id)?;
        chain.reverse();
        Ok(chain)
    }

    /// Mounts `r` read-only: an overlay of its layers, the context directory itself, or an
    /// empty directory for scratch.
    pub fn view(&self, r: &Ref) -> Result<View, SolveError> {
        match r {
            Ref::Context(ctx) => Ok(View {
                path: ctx.snapshot.root.clone(),
                _mount: None,
                _workspace: None,
            }),
            Ref::Scratch => {
                let ws = self.workspace()?;
                Ok(View {
                    path: ws.upper(),
                    _mount: None,
                    _workspace: Some(ws),
                })
            }
            Ref::Lazy(_) => Err(SolveError::NotBroughtIn),
            Ref::Snapshot(rec) => {
                let lowers = self.lowers(&rec.id)?;
                let ws = self.workspace()?;
                let target = ws.subdir("view")?;
                let lower_refs: Vec<&Path> = lowers.iter().map(PathBuf::as_path).collect();
                if self.copy_mode {
                    crate::snapshot::copy::populate(&lower_refs, &target)?;
                    return Ok(View {
                        path: target,
                        _mount: None,
                        _workspace: Some(ws),
                    });
                }
                // A single lower cannot be mounted read-only without an upper on every
                // kernel: give it a throwaway upper and mount the view read-only instead.
                let upper = ws.upper();
                let work = ws.work();
                let mount = overlay::mount(
                    &lower_refs,
                    Some(Writable {
                        upper: &upper,
                        work: &work,
                    }),
                    &target,
                )?;
                Ok(View {
                    path: target,
                    _mount: Some(mount),
                    _workspace: Some(ws),
                })
            }
        }
    }

    /// Like [`Snapshots::view`], for a step that mounts `r`: a context shows only what
    /// .dockerignore lets through (copies filter the client's directory themselves).
    pub(crate) fn mount_view(&self, r: &Ref) -> Result<View, SolveError> {
        match r {
            Ref::Context(ctx) if ctx.excludes.is_some() => {
                let ws = self.workspace()?;
                let path = ws.subdir("context")?;
                filtered_context(ctx, &path)?;
                Ok(View {
                    path,
                    _mount: None,
                    _workspace: Some(ws),
                })
            }
            _ => self.view(r),
        }
    }

    /// Mounts a writable overlay of `base` on `target` with the workspace's upper directory
    /// (in copy mode: copies the layers there, and a second time to diff against).
    pub(crate) fn mount_writable(
        &self,
        base: &Ref,
        ws: &Workspace,
        target: &Path,
    ) -> Result<WritableRoot, SolveError> {
        let lowers = match base {
            Ref::Snapshot(rec) => self.lowers(&rec.id)?,
            Ref::Scratch => Vec::new(),
            Ref::Lazy(_) => return Err(SolveError::NotBroughtIn),
            // A writable bind of the context (`RUN --mount=type=bind,rw`): the context
            // directory is the only lower, so writes land in the throwaway upper.
            Ref::Context(ctx) if ctx.excludes.is_none() => vec![ctx.snapshot.root.clone()],
            Ref::Context(ctx) => {
                let path = ws.subdir("context")?;
                filtered_context(ctx, &path)?;
                vec![path]
            }
        };
        let lower_refs: Vec<&Path> = lowers.iter().map(PathBuf::as_path).collect();
        let upper = ws.upper();
        if self.copy_mode {
            let base = ws.subdir("base")?;
            crate::snapshot::copy::populate(&lower_refs, target)?;
            crate::snapshot::copy::populate(&lower_refs, &base)?;
            return Ok(WritableRoot::Copy {
                target: target.to_path_buf(),
                base,
                upper,
            });
        }
        let work = ws.work();
        Ok(WritableRoot::Overlay(overlay::mount(
            &lower_refs,
            Some(Writable {
                upper: &upper,
                work: &work,
            }),
            target,
        )?))
    }

    /// Turns a workspace's upper directory into a committed snapshot on top of `parent`,
    /// recorded under `key`. When another build committed the key first, that snapshot is
    /// returned and this one discarded.
    pub fn commit(
        &self,
        ws: Workspace,
        parent: &Ref,
        kind: SnapshotKind,
        key: &str,
        description: &str,
    ) -> Result<Ref, SolveError> {
        self.commit_with(ws, parent, kind, key, description, Commit::New)
    }

    /// Commits a layer brought from an imported cache: its creation time is the one the
    /// cache recorded (image times come from it) and its tar, already stored, is `diff_id`.
    pub fn commit_imported(
        &self,
        ws: Workspace,
        parent: &Ref,
        key: &str,
        description: &str,
        created: i64,
        diff_id: &str,
    ) -> Result<Ref, SolveError> {
        let how = Commit::Imported { created, diff_id };
        self.commit_with(ws, parent, SnapshotKind::Layer, key, description, how)
    }

    /// Like [`Snapshots::commit`], but the new snapshot replaces what `key` recorded: a
    /// step that ran despite a cached result (`--no-cache`) updates the cache.
    pub(crate) fn commit_replacing(
        &self,
        ws: Workspace,
        parent: &Ref,
        kind: SnapshotKind,
        key: &str,
        description: &str,
    ) -> Result<Ref, SolveError> {
        self.commit_with(ws, parent, kind, key, description, Commit::Replacing)
    }

    fn commit_with(
        &self,
        ws: Workspace,
        parent: &Ref,
        kind: SnapshotKind,
        key: &str,
        description: &str,
        how: Commit<'_>,
    ) -> Result<Ref, SolveError> {
        let parent_id = parent.snapshot_id().map(str::to_string);
        let id = unique_name();
        let dest = self.layer_dir(&id);
        let upper = ws.upper();
        // Leased before it appears under snapshots/, so that garbage collection running in
        // another process never takes it for an orphan.
        self.meta.lease(&self.owner, &[&id])?;
        std::fs::rename(&upper, &dest).map_err(SolveError::io("committing", &dest))?;
        drop(ws);
        let now = meta::now();
        let record = SnapshotRecord {
            id: id.clone(),
            parent: parent_id,
            kind,
            size: dir_size(&dest),
            diff_id: match how {
                Commit::Imported { diff_id, .. } => Some(diff_id.to_string()),
                _ => None,
            },
            description: description.to_string(),
            created: match how {
                Commit::Imported { created, .. } => created,
                _ => now,
            },
            last_used: now,
            usage_count: 1,
            tar_format: 0,
        };
        let winner = if matches!(how, Commit::Replacing) {
            self.meta.commit_replacing(&record, &[key])?
        } else {
            self.meta.commit(&record, &[key])?
        };
        if winner.id != id {
            self.meta.lease(&self.owner, &[&winner.id])?;
            remove_dir(&self.state, &dest);
        }
        Ok(Ref::Snapshot(Arc::new(winner)))
    }

    /// A cache hit: the snapshot recorded for `key`, leased for this build.
    pub fn lookup(&self, key: &str) -> Result<Option<Ref>, SolveError> {
        Ok(self.lookup_step(key)?.map(|(hit, _)| hit))
    }

    /// A cache hit, and whether a step made to run again recorded it (see
    /// `Solver::commit_step`).
    pub(crate) fn lookup_step(&self, key: &str) -> Result<Option<(Ref, bool)>, SolveError> {
        let Some((rec, rerun)) = self.meta.lookup_step(key)? else {
            return Ok(None);
        };
        // Lease first, then check: garbage collection in another process either removed
        // the snapshot before the lease (the checks below see it gone) or cannot remove it.
        self.meta.lease(&self.owner, &[&rec.id])?;
        if self.meta.snapshot(&rec.id)?.is_none() || !self.layer_dir(&rec.id).is_dir() {
            // Gone (collected, removed by hand, or a crash between deleting the directory
            // and its record): a miss, and the step runs again.
            return Ok(None);
        }
        Ok(Some((Ref::Snapshot(Arc::new(rec)), rerun)))
    }
}

/// The context as BuildKit would have received it, for steps that mount it: only what
/// .dockerignore lets through, as hard links to the client's files (copies when the state
/// root is on another file system).
fn filtered_context(ctx: &LocalContext, into: &Path) -> Result<(), SolveError> {
    let root = &ctx.snapshot.root;
    let mut dirs = Vec::new();
    for entry in &ctx.snapshot.entries {
        let src = root.join(&entry.path);
        let dst = into.join(&entry.path);
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent).map_err(SolveError::io("creating", parent))?;
        }
        match entry.kind {
            EntryKind::Dir => {
                std::fs::create_dir_all(&dst).map_err(SolveError::io("creating", &dst))?;
                dirs.push((dst, entry.mode));
            }
            EntryKind::Symlink => {
                let target = std::fs::read_link(&src).map_err(SolveError::io("reading", &src))?;
                std::os::unix::fs::symlink(&target, &dst)
                    .map_err(SolveError::io("creating", &dst))?;
            }
            EntryKind::File => {
                if std::fs::hard_link(&src, &dst).is_err() {
                    std::fs::copy(&src, &dst).map_err(SolveError::io("copying", &src))?;
                }
            }
            // Devices, fifos and sockets carry no content a step could read.
            EntryKind::Special => {}
        }
    }
    // Modes last, so that a read-only directory is filled before it turns read-only.
    for (dir, mode) in dirs.iter().rev() {
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(*mode))
            .map_err(SolveError::io("chmod", dir))?;
    }
    Ok(())
}

/// Deletes a directory by first moving it out of `snapshots/`, so that a crash never leaves
/// a half-deleted layer where a build could use it.
fn remove_dir(state: &StateRoot, dir: &Path) {
    let trash = state.tmp_dir().join(format!("{}-trash", unique_name()));
    let target = if std::fs::rename(dir, &trash).is_ok() {
        trash
    } else {
        dir.to_path_buf()
    };
    if let Err(e) = std::fs::remove_dir_all(&target) {
        tracing::warn!("removing {}: {e}", target.display());
    }
}

/// Disk usage of a directory tree (allocated blocks), without following symlinks.
fn dir_size(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            if let Ok(md) = e.metadata() {
                total += md.blocks() * 512;
                if md.is_dir() {
                    stack.push(e.path());
                }
            }
        }
    }
    total
}
