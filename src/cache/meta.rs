//! The cache's metadata in SQLite: which snapshot a cache key produced, the snapshots' parent
//! chains and sizes, which snapshots running builds hold, and memoized context checksums.
//!
//! SQLite (WAL, busy timeout) because several bud processes share one state root: each
//! transaction is atomic across processes and survives a kill -9 at any point.
//!
//! A full disk must not lock bud out of its own cache: a store opened to free space
//! releases the reserve kept beside the database ([`super::reserve`]), and when the shared
//! memory file SQLite maps for WAL cannot be sized, the store is opened with exclusive
//! locking, which keeps the WAL index in memory (other processes wait until it closes).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

use super::reserve::{self, Reserve};

/// Errors of the metadata store.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// The database could not be opened or migrated.
    #[error("cache metadata {path}")]
    Open {
        /// The database file.
        path: String,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A statement failed (other than for a full disk).
    #[error("cache metadata: {0}")]
    Sql(rusqlite::Error),
    #[error(
        "cache metadata{}: no space left on the disk: free some space on it \
         (`bud prune` needs a little to remove bud's build cache)",
        .path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default()
    )]
    /// SQLite found no room to write; the message says how to get out of it.
    DiskFull {
        /// The database file, when known at the point of failure.
        path: Option<PathBuf>,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// The database was written by a newer bud, whose records this one could misread (a
    /// diff ID of a layer format it does not write, say).
    #[error(
        "cache metadata {path} is of a newer bud (schema {found}; this bud knows up to \
         {known}): use that bud, or give this one a state root of its own (--root)"
    )]
    NewerSchema {
        /// The database file.
        path: String,
        /// Its schema version.
        found: i32,
        /// The newest this bud knows.
        known: i32,
    },
    /// The lock file beside the database could not be taken.
    #[error("cache metadata lock {path}")]
    Lock {
        /// The lock file.
        path: String,
        /// The operating system's error.
        source: std::io::Error,
    },
}

impl From<rusqlite::Error> for MetaError {
    fn from(e: rusqlite::Error) -> Self {
        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
            MetaError::DiskFull {
                path: None,
                source: e,
            }
        } else {
            MetaError::Sql(e)
        }
    }
}

impl MetaError {
    /// The disk is full: the caller may go on without what it meant to store.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, MetaError::DiskFull { .. })
    }
}

/// What a cache record holds, for `bud du` and for garbage collection order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotKind {
    /// A layer made by a RUN or file step.
    Layer,
    /// A layer extracted from a base image.
    ImageLayer,
    /// The directory of a `RUN --mount=type=cache`.
    CacheMount,
    /// A blob in the content store (layer tar, compressed layer, image config or manifest).
    /// Listed and collected with the snapshots, never stored in the `snapshots` table.
    ContentBlob,
    /// What nothing owns any more (a dead process's work, a directory without a record):
    /// listed by `bud du`, removed by every collection, never stored.
    Orphan,
}

impl SnapshotKind {
    /// The name stored in the database and shown as the type by `bud du`.
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotKind::Layer => "layer",
            SnapshotKind::ImageLayer => "image-layer",
            SnapshotKind::CacheMount => "cache-mount",
            SnapshotKind::ContentBlob => "content-blob",
            SnapshotKind::Orphan => "orphan",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "image-layer" => SnapshotKind::ImageLayer,
            "cache-mount" => SnapshotKind::CacheMount,
            "content-blob" => SnapshotKind::ContentBlob,
            _ => SnapshotKind::Layer,
        }
    }
}

/// A committed snapshot: one read-only layer directory on top of its parent's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRecord {
    /// The snapshot's directory name under `snapshots/` (unique, never reused).
    pub id: String,
    /// The snapshot below this one in its chain; `None` for a bottom layer.
    pub parent: Option<String>,
    /// What the snapshot holds.
    pub kind: SnapshotKind,
    /// Bytes used by this layer's directory alone (not its parents).
    pub size: u64,
    /// sha256 of the layer as an uncompressed tar, once computed.
    pub diff_id: Option<String>,
    /// The version of bud's layer writer ([`crate::snapshot::diff::TAR_FORMAT`]) that
    /// tarred the directory to `diff_id`; 0 for one recorded before versions were, or taken
    /// from a tar bud did not write.
    pub tar_format: u32,
    /// What made it, for `bud du` (a step's name, an image layer's reference and diff ID…).
    pub description: String,
    /// Seconds since the Unix epoch when it was committed.
    pub created: i64,
    /// Seconds since the Unix epoch when a build last used it; collection goes oldest first.
    pub last_used: i64,
    /// How many times builds used it (`bud du --verbose`'s usage count).
    pub usage_count: i64,
}

/// The metadata database of one state root (`meta.db`), shared by every bud process using
/// that root; one connection per store, serialised by a mutex.
pub struct MetaStore {
    conn: Mutex<Connection>,
}

/// A file's identity as the checksum memo keys it: if none of these changed, neither did
/// the content (ctime catches writes that restore mtime).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    /// Length in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Status change time, nanoseconds since the Unix epoch.
    pub ctime_ns: i64,
    /// Inode number, so a file replaced by another of the same size and times is seen.
    pub ino: u64,
}

const SCHEMA_VERSION: i32 = 3;

impl MetaStore {
    /// Opens (creating it if need be) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, MetaError> {
        Self::open_with(path, false)
    }

    /// Opens the store for a command that frees space (`bud prune`): on a nearly full disk
    /// the reserve beside the database is released first, so that deleting records, which
    /// writes to the WAL, goes through.
    pub fn open_to_free_space(path: &Path) -> Result<Self, MetaError> {
        Self::open_with(path, true)
    }

    fn open_with(path: &Path, freeing_space: bool) -> Result<Self, MetaError> {
        // Switching a new database to WAL and creating its tables take locks SQLite does not
        // wait for: processes opening the same root at once take turns on a lock file.
        let lock_path = path.with_extension("lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| MetaError::Lock {
                path: lock_path.display().to_string(),
                source: e,
            })?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).map_err(|e| {
            MetaError::Lock {
                path: lock_path.display().to_string(),
                source: e.into(),
            }
        })?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let reserve = Reserve::beside(path);
        if freeing_space && reserve::is_nearly_full(dir) {
            match reserve.release() {
                Ok(0) => {}
                Ok(n) => tracing::info!(
                    "the disk of {} is full: released bud's reserve of {n} bytes to prune",
                    dir.display()
                ),
                Err(e) => tracing::warn!("releasing {}: {e}", reserve.path().display()),
            }
        }
        let conn = match connect(path, false) {
            Ok(conn) => conn,
            Err(e) if reserve::is_nearly_full(dir) => {
                tracing::info!(
                    "opening {} with exclusive locking, the disk is full: {e}",
                    path.display()
                );
                connect(path, true).map_err(|source| MetaError::DiskFull {
                    path: Some(path.to_owned()),
                    source,
                })?
            }
            Err(source) => {
                return Err(MetaError::Open {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        let found: i32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if found > SCHEMA_VERSION {
            return Err(MetaError::NewerSchema {
                path: path.display().to_string(),
                found,
                known: SCHEMA_VERSION,
            });
        }
        if let Err(e) = reserve.replenish() {
            tracing::debug!("keeping {} allocated: {e}", reserve.path().display());
        }
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    pub(super) fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions
        // roll back), so a poisoned lock is safe to reuse.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The snapshot a cache key produced, if it is still there; marks it used.
    pub fn lookup(&self, key: &str) -> Result<Option<SnapshotRecord>, MetaError> {
        Ok(self.lookup_step(key)?.map(|(record, _)| record))
    }

    /// Like [`MetaStore::lookup`], with whether the snapshot was recorded by a step made to
    /// run again (`--no-cache`, `--no-cache-filter`) over what the key recorded before.
    pub fn lookup_step(&self, key: &str) -> Result<Option<(SnapshotRecord, bool)>, MetaError> {
        let mut conn = self.conn();
        let tx = write_transaction(&mut conn)?;
        let found: Option<(String, bool)> = tx
            .query_row(
                "SELECT snapshot, rerun FROM cache_keys WHERE key = ?1",
                [key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((id, rerun)) = found else {
            return Ok(None);
        };
        let now = now();
        tx.execute(
            "UPDATE snapshots SET last_used = ?1, usage_count = usage_count + 1 WHERE id = ?2",
            params![now, id],
        )?;
        let record = get_snapshot(&tx, &id)?;
        tx.commit()?;
        Ok(record.map(|record| (record, rerun)))
    }

    /// Records a committed snapshot and the cache keys that produce it, in one transaction.
    /// When another process committed one of the keys first, its snapshot wins and is
    /// returned; the caller then discards its own directory.
    pub fn commit(
        &self,
        record: &SnapshotRecord,
        keys: &[&str],
    ) -> Result<SnapshotRecord, MetaError> {
        self.commit_with(record, keys, false)
    }

    /// Records a snapshot that replaces whatever the keys pointed at (a step run again with
    /// `--no-cache`: later builds must see the new result).
    pub fn commit_replacing(
        &self,
        record: &SnapshotRecord,
        keys: &[&str],
    ) -> Result<SnapshotRecord, MetaError> {
        self.commit_with(record, keys, true)
    }

    fn commit_with(
        &self,
        record: &SnapshotRecord,
        keys: &[&str],
        replace: bool,
    ) -> Result<SnapshotRecord, MetaError> {
        let mut conn = self.conn();
        let tx = write_transaction(&mut conn)?;
        for key in keys.iter().filter(|_| !replace) {
            let existing: Option<String> = tx
                .query_row(
                    "SELECT snapshot FROM cache_keys WHERE key = ?1",
                    [key],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(id) = existing
                && let Some(winner) = get_snapshot(&tx, &id)?
            {
                return Ok(winner);
            }
        }
        tx.execute(
            "INSERT INTO snapshots (id, parent, kind, size, diff_id, description, created, last_used, usage_count, tar_format)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            params![
                record.id,
                record.parent,
                record.kind.as_str(),
                record.size as i64,
                record.diff_id,
                record.description,
                record.created,
                record.last_used,
                record.usage_count,
                record.tar_format
            ],
        )?;
        for key in keys {
            tx.execute(
                "INSERT OR REPLACE INTO cache_keys (key, snapshot, rerun) VALUES (?1, ?2, ?3)",
                params![key, record.id, replace],
            )?;
        }
        tx.commit()?;
        Ok(record.clone())
    }

    /// Records `key` for an existing snapshot (an op whose result another op made).
    pub fn alias(&self, key: &str, id: &str) -> Result<(), MetaError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO cache_keys (key, snapshot) VALUES (?1, ?2)",
            params![key, id],
        )?;
        Ok(())
    }

    /// The record of snapshot `id`; `None` when there is none.
    pub fn snapshot(&self, id: &str) -> Result<Option<SnapshotRecord>, MetaError> {
        get_snapshot(&self.conn(), id)
    }

    /// The snapshot and its ancestors, top first: the overlay lower dirs in order.
    pub fn chain(&self, id: &str) -> Result<Vec<SnapshotRecord>, MetaError> {
        let conn = self.conn();
        let mut chain = Vec::new();
        let mut next = Some(id.to_string());
        while let Some(id) = next {
            let Some(record) = get_snapshot(&conn, &id)? else {
                break;
            };
            next = record.parent.clone();
            chain.push(record);
        }
        Ok(chain)
    }

    /// Remembers the sha256 of snapshot `id`'s layer tar (`sha256:…`) once it was written,
    /// and which version of the layer writer wrote it (`tar_format`).
    pub fn set_diff_id(&self, id: &str, diff_id: &str, tar_format: u32) -> Result<(), MetaError> {
        self.conn().execute(
            "UPDATE snapshots SET diff_id = ?1, tar_format = ?3 WHERE id = ?2",
            params![diff_id, id, tar_format],
        )?;
        Ok(())
    }

    /// Every snapshot, for `bud du` and garbage collection.
    pub fn snapshots(&self) -> Result<Vec<SnapshotRecord>, MetaError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("SELECT {SNAPSHOT_COLUMNS} FROM snapshots"))?;
        let rows = stmt.query_map([], row_to_snapshot)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Removes a snapshot's record and the keys pointing at it, unless it has children or a
    /// live lease. Returns whether it was removed; the caller then deletes the directory.
    pub fn remove_if_unused(&self, id: &str) -> Result<bool, MetaError> {
        let mut conn = self.conn();
        let tx = write_transaction(&mut conn)?;
        let children: i64 = tx.query_row(
            "SELECT COUNT(*) FROM snapshots WHERE parent = ?1",
            [id],
            |r| r.get(0),
        )?;
        let leases = live_leases(&tx, id)?;
        if children > 0 || leases > 0 {
            return Ok(false);
        }
        tx.execute("DELETE FROM cache_keys WHERE snapshot = ?1", [id])?;
        tx.execute("DELETE FROM leases WHERE snapshot = ?1", [id])?;
        let removed = tx.execute("DELETE FROM snapshots WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(removed > 0)
    }

    /// Marks snapshots as in use by this process, so that garbage collection in any
    /// process leaves them alone. Leases of processes that are gone do not count.
    pub fn lease(&self, owner: &LeaseOwner, ids: &[&str]) -> Result<(), MetaError> {
        let mut conn = self.conn();
        let tx = write_transaction(&mut conn)?;
        for id in ids {
            tx.execute(
                "INSERT OR IGNORE INTO leases (snapshot, pid, start_time) VALUES (?1, ?2, ?3)",
                params![id, owner.pid, owner.start_time],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Drops every lease `owner` holds (a build's end; a dead owner's leases already count
    /// for nothing).
    pub fn release(&self, owner: &LeaseOwner) -> Result<(), MetaError> {
        self.conn().execute(
            "DELETE FROM leases WHERE pid = ?1 AND start_time = ?2",
            params![owner.pid, owner.start_time],
        )?;
        Ok(())
    }

    /// The memoized content checksum of a context file, if its stamp is unchanged.
    pub fn file_checksum(
        &self,
        context: &str,
        path: &str,
        stamp: FileStamp,
    ) -> Result<Option<String>, MetaError> {
        let row: Option<(i64, i64, i64, i64, String)> = self
            .conn()
            .query_row(
                "SELECT size, mtime_ns, ctime_ns, ino, digest FROM file_checksums
                 WHERE context = ?1 AND path = ?2",
                params![context, path],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?;
        Ok(row.and_then(|(size, mtime, ctime, ino, digest)| {
            let same = size as u64 == stamp.size
                && mtime == stamp.mtime_ns
                && ctime == stamp.ctime_ns
                && ino as u64 == stamp.ino;
            same.then_some(digest)
        }))
    }

    /// Stores checksums computed by one context walk, in one transaction.
    pub fn put_file_checksums(
        &self,
        context: &str,
        entries: &[(String, FileStamp, String)],
    ) -> Result<(), MetaError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn();
        let tx = write_transaction(&mut conn)?;
        {
            let mut stmt = tx.prepare(
                "INSERT OR REPLACE INTO file_checksums (context, path, size, mtime_ns, ctime_ns, ino, digest)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for (path, s, digest) in entries {
                stmt.execute(params![
                    context,
                    path,
                    s.size as i64,
                    s.mtime_ns,
                    s.ctime_ns,
                    s.ino as i64,
                    digest
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// All memoized checksums of one context, loaded at once: a walk of 20,000 files then
    /// needs one query, not 20,000.
    pub fn context_checksums(
        &self,
        context: &str,
    ) -> Result<std::collections::HashMap<String, (FileStamp, String)>, MetaError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT path, size, mtime_ns, ctime_ns, ino, digest FROM file_checksums WHERE context = ?1",
        )?;
        let rows = stmt.query_map([context], |r| {
            Ok((
                r.get::<_, String>(0)?,
                (
                    FileStamp {
                        size: r.get::<_, i64>(1)? as u64,
                        mtime_ns: r.get(2)?,
                        ctime_ns: r.get(3)?,
                        ino: r.get::<_, i64>(4)? as u64,
                    },
                    r.get::<_, String>(5)?,
                ),
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// A process that holds leases: its pid and its start time (so a recycled pid is not
/// mistaken for the original owner).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseOwner {
    /// Process id.
    pub pid: i64,
    /// Start time in clock ticks since boot (field 22 of /proc/PID/stat); 0 if unknown.
    pub start_time: i64,
}

impl LeaseOwner {
    /// This process.
    pub fn current() -> Self {
        Self::of(std::process::id())
    }

    /// The running process `pid` (start time 0 when it is not running).
    pub fn of(pid: u32) -> Self {
        let pid = i64::from(pid);
        Self {
            pid,
            start_time: process_start_time(pid).unwrap_or(0),
        }
    }

    /// Whether the process still runs: same pid and same start time.
    pub fn is_alive(&self) -> bool {
        process_start_time(self.pid) == Some(self.start_time)
    }
}

/// Field 22 of /proc/PID/stat: the start time in clock ticks since boot.
fn process_start_time(pid: i64) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: skip past its last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

pub(super) fn live_leases(conn: &Connection, id: &str) -> Result<usize, MetaError> {
    let mut stmt = conn.prepare("SELECT pid, start_time FROM leases WHERE snapshot = ?1")?;
    let owners = stmt.query_map([id], |r| {
        Ok(LeaseOwner {
            pid: r.get(0)?,
            start_time: r.get(1)?,
        })
    })?;
    let mut live = 0;
    for owner in owners {
        if owner?.is_alive() {
            live += 1;
        }
    }
    Ok(live)
}

const SNAPSHOT_COLUMNS: &str =
    "id, parent, kind, size, diff_id, description, created, last_used, usage_count, tar_format";

fn row_to_snapshot(r: &rusqlite::Row<'_>) -> rusqlite::Result<SnapshotRecord> {
    Ok(SnapshotRecord {
        id: r.get(0)?,
        parent: r.get(1)?,
        kind: SnapshotKind::parse(&r.get::<_, String>(2)?),
        size: r.get::<_, i64>(3)? as u64,
        diff_id: r.get(4)?,
        description: r.get(5)?,
        created: r.get(6)?,
        last_used: r.get(7)?,
        usage_count: r.get(8)?,
        tar_format: r.get(9)?,
    })
}

fn get_snapshot(conn: &Connection, id: &str) -> Result<Option<SnapshotRecord>, MetaError> {
    Ok(conn
        .query_row(
            &format!("SELECT {SNAPSHOT_COLUMNS} FROM snapshots WHERE id = ?1"),
            [id],
            row_to_snapshot,
        )
        .optional()?)
}

/// Every transaction here may write: start it as a writer (`BEGIN IMMEDIATE`). A deferred
/// transaction that reads and then writes cannot wait for another process's writer (SQLite
/// answers "database is locked" at once rather than risk a deadlock); an immediate one waits
/// under the busy timeout.
pub(super) fn write_transaction(
    conn: &mut Connection,
) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
}

/// Seconds since the Unix epoch, the unit of every time in the store (0 before 1970).
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A connection to the database at `path`, in WAL mode, its tables created. With
/// `exclusive` locking SQLite needs no shared-memory file, which a full disk cannot hold.
fn connect(path: &Path, exclusive: bool) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(60))?;
    if exclusive {
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
    }
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // WAL with synchronous=NORMAL is durable against process crashes (kill -9); only a
    // power loss may drop the last transactions, which a cache can afford.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    migrate(&conn)?;
    Ok(conn)
}

fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let version: i32 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version >= SCHEMA_VERSION {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE;")?;
    // Read again under the lock: another process may have migrated meanwhile.
    let migrated = migrate_from(
        conn,
        conn.pragma_query_value(None, "user_version", |r| r.get(0))?,
    );
    conn.execute_batch(if migrated.is_ok() {
        "COMMIT;"
    } else {
        "ROLLBACK;"
    })?;
    migrated
}

fn migrate_from(conn: &Connection, version: i32) -> rusqlite::Result<()> {
    if version < 1 {
        create_tables(conn)?;
    }
    if version < 2 {
        // Version 2: which keys a step made to run again recorded (their dependents then
        // key on the new result, so no step reuses what was made from the one before).
        conn.execute(
            "ALTER TABLE cache_keys ADD COLUMN rerun INTEGER NOT NULL DEFAULT 0",
            [],
        )?;
    }
    if version < 3 {
        // Version 3: which layer writer a recorded diff ID comes from, so that a directory
        // an earlier bud tarred (its tar since pruned) is tarred again, not expected to
        // give the old bytes.
        conn.execute(
            "ALTER TABLE snapshots ADD COLUMN tar_format INTEGER NOT NULL DEFAULT 0",
            [],
        )?;
    }
    conn.pragma_update(None, "user_version", SCHEMA_VERSION)
}

fn create_tables(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS snapshots (
             id TEXT PRIMARY KEY,
             parent TEXT REFERENCES snapshots(id),
             kind TEXT NOT NULL,
             size INTEGER NOT NULL,
             diff_id TEXT,
             description TEXT NOT NULL,
             created INTEGER NOT NULL,
             last_used INTEGER NOT NULL,
             usage_count INTEGER NOT NULL
         );
         CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent);
         CREATE TABLE IF NOT EXISTS cache_keys (
             key TEXT PRIMARY KEY,
             snapshot TEXT NOT NULL REFERENCES snapshots(id)
         );
         CREATE INDEX IF NOT EXISTS cache_keys_snapshot ON cache_keys(snapshot);
         CREATE TABLE IF NOT EXISTS leases (
             snapshot TEXT NOT NULL,
             pid INTEGER NOT NULL,
             start_time INTEGER NOT NULL,
             PRIMARY KEY (snapshot, pid, start_time)
         );
         CREATE TABLE IF NOT EXISTS file_checksums (
             context TEXT NOT NULL,
             path TEXT NOT NULL,
             size INTEGER NOT NULL,
             mtime_ns INTEGER NOT NULL,
             ctime_ns INTEGER NOT NULL,
             ino INTEGER NOT NULL,
             digest TEXT NOT NULL,
             PRIMARY KEY (context, path)
         );",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, parent: Option<&str>) -> SnapshotRecord {
        SnapshotRecord {
            id: id.into(),
            parent: parent.map(Into::into),
            kind: SnapshotKind::Layer,
            size: 10,
            diff_id: None,
            description: format!("step {id}"),
            created: 1,
            last_used: 1,
            usage_count: 0,
            tar_format: 0,
        }
    }

    fn store() -> (tempfile::TempDir, MetaStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = MetaStore::open(&dir.path().join("meta.db")).unwrap();
        (dir, store)
    }

    #[test]
    fn commit_then_lookup_and_chain() {
        let (_d, s) = store();
        s.commit(&record("a", None), &["k1"]).unwrap();
        s.commit(&record("b", Some("a")), &["k2"]).unwrap();
        let hit = s.lookup("k2").unwrap().unwrap();
        assert_eq!(hit.id, "b");
        assert_eq!(s.snapshot("b").unwrap().unwrap().usage_count, 1);
        let ids: Vec<_> = s.chain("b").unwrap().into_iter().map(|r| r.id).collect();
        assert_eq!(ids, ["b", "a"]);
        assert!(s.lookup("nope").unwrap().is_none());
    }

    #[test]
    fn first_commit_of_a_key_wins() {
        let (_d, s) = store();
        s.commit(&record("a", None), &["k"]).unwrap();
        let winner = s.commit(&record("b", None), &["k"]).unwrap();
        assert_eq!(winner.id, "a");
        assert!(s.snapshot("b").unwrap().is_none());
    }

    #[test]
    fn a_replacing_commit_takes_over_the_key() {
        let (_d, s) = store();
        s.commit(&record("a", None), &["k"]).unwrap();
        let new = s.commit_replacing(&record("b", None), &["k"]).unwrap();
        assert_eq!(new.id, "b");
        assert_eq!(s.lookup("k").unwrap().unwrap().id, "b");
        assert!(
            s.snapshot("a").unwrap().is_some(),
            "the old one stays for GC"
        );
        assert!(s.lookup_step("k").unwrap().unwrap().1, "marked as a rerun");
        s.commit(&record("c", None), &["other"]).unwrap();
        assert!(!s.lookup_step("other").unwrap().unwrap().1);
    }

    /// A database of schema 1 (before reruns were marked) opens with its keys, unmarked.
    #[test]
    fn a_version_1_database_is_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        {
            let conn = Connection::open(&path).unwrap();
            create_tables(&conn).unwrap();
            conn.execute_batch(
                "INSERT INTO snapshots VALUES ('a', NULL, 'layer', 1, NULL, 'd', 1, 1, 0);
                 INSERT INTO cache_keys (key, snapshot) VALUES ('k', 'a');
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        }
        let s = MetaStore::open(&path).unwrap();
        let (record, rerun) = s.lookup_step("k").unwrap().unwrap();
        assert_eq!((record.id.as_str(), rerun), ("a", false));
        drop(s);
        // Opening it again finds it current.
        assert!(
            MetaStore::open(&path)
                .unwrap()
                .lookup("k")
                .unwrap()
                .is_some()
        );
    }

    /// A newer bud's database is refused, not read as this bud's, and left as it was.
    #[test]
    fn a_database_of_a_newer_schema_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        drop(MetaStore::open(&path).unwrap());
        let newer = SCHEMA_VERSION + 1;
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", newer)
            .unwrap();
        let Err(e) = MetaStore::open(&path) else {
            panic!("opened a database of schema {newer}");
        };
        assert!(
            matches!(e, MetaError::NewerSchema { found, known, .. } if found == newer && known == SCHEMA_VERSION),
            "{e:?}"
        );
        assert!(e.to_string().contains("--root"), "{e}");
        let version: i32 = Connection::open(&path)
            .unwrap()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, newer);
    }

    #[test]
    fn parents_and_leased_snapshots_are_not_removed() {
        let (_d, s) = store();
        s.commit(&record("a", None), &["k1"]).unwrap();
        s.commit(&record("b", Some("a")), &["k2"]).unwrap();
        assert!(!s.remove_if_unused("a").unwrap());
        let me = LeaseOwner::current();
        s.lease(&me, &["b"]).unwrap();
        assert!(!s.remove_if_unused("b").unwrap());
        s.release(&me).unwrap();
        assert!(s.remove_if_unused("b").unwrap());
        assert!(s.lookup("k2").unwrap().is_none());
        assert!(s.remove_if_unused("a").unwrap());
    }

    #[test]
    fn leases_of_dead_processes_do_not_count() {
        let (_d, s) = store();
        s.commit(&record("a", None), &["k"]).unwrap();
        let gone = LeaseOwner {
            pid: i64::from(i32::MAX),
            start_time: 1,
        };
        s.lease(&gone, &["a"]).unwrap();
        assert!(s.remove_if_unused("a").unwrap());
    }

    #[test]
    fn checksum_memo_needs_an_identical_stamp() {
        let (_d, s) = store();
        let stamp = FileStamp {
            size: 3,
            mtime_ns: 5,
            ctime_ns: 6,
            ino: 7,
        };
        s.put_file_checksums("ctx", &[("a.txt".into(), stamp, "sha256:x".into())])
            .unwrap();
        assert_eq!(
            s.file_checksum("ctx", "a.txt", stamp).unwrap().as_deref(),
            Some("sha256:x")
        );
        let touched = FileStamp {
            ctime_ns: 9,
            ..stamp
        };
        assert_eq!(s.file_checksum("ctx", "a.txt", touched).unwrap(), None);
        assert_eq!(s.context_checksums("ctx").unwrap().len(), 1);
    }

    #[test]
    fn reopening_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        MetaStore::open(&path)
            .unwrap()
            .commit(&record("a", None), &["k"])
            .unwrap();
        let s = MetaStore::open(&path).unwrap();
        assert_eq!(s.lookup("k").unwrap().unwrap().id, "a");
    }
}
