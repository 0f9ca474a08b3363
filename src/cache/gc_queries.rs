//! Queries garbage collection and `bud du` need on top of [`MetaStore`]'s build-time API.

use std::collections::HashSet;

use rusqlite::{OptionalExtension, params};

use super::meta::{LeaseOwner, MetaError, MetaStore, live_leases};

impl MetaStore {
    /// Records the size of a snapshot's directory once measured.
    pub fn set_size(&self, id: &str, size: u64) -> Result<(), MetaError> {
        self.conn().execute(
            "UPDATE snapshots SET size = ?1 WHERE id = ?2",
            params![size as i64, id],
        )?;
        Ok(())
    }

    /// The snapshots a live process holds a lease on (leases of dead processes do not count).
    pub fn leased_snapshots(&self) -> Result<HashSet<String>, MetaError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT snapshot, pid, start_time FROM leases")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                LeaseOwner {
                    pid: r.get(1)?,
                    start_time: r.get(2)?,
                },
            ))
        })?;
        let mut leased = HashSet::new();
        for row in rows {
            let (id, owner) = row?;
            if owner.is_alive() {
                leased.insert(id);
            }
        }
        Ok(leased)
    }

    /// Whether a directory named `id` under the state root is garbage: it has no record and
    /// no live lease. A build leases an id before it moves the directory into place and
    /// commits its record, so a directory being published is never taken for an orphan.
    pub fn is_orphan(&self, id: &str) -> Result<bool, MetaError> {
        let mut conn = self.conn();
        let tx = super::meta::write_transaction(&mut conn)?;
        let recorded: Option<i64> = tx
            .query_row("SELECT 1 FROM snapshots WHERE id = ?1", [id], |r| r.get(0))
            .optional()?;
        if recorded.is_some() {
            return Ok(false);
        }
        Ok(live_leases(&tx, id)? == 0)
    }

    /// Drops the lease rows of processes that are gone, so the table does not grow forever.
    pub fn forget_dead_leases(&self) -> Result<usize, MetaError> {
        let mut conn = self.conn();
        let tx = super::meta::write_transaction(&mut conn)?;
        let owners: Vec<LeaseOwner> = {
            let mut stmt = tx.prepare("SELECT DISTINCT pid, start_time FROM leases")?;
            stmt.query_map([], |r| {
                Ok(LeaseOwner {
                    pid: r.get(0)?,
                    start_time: r.get(1)?,
                })
            })?
            .collect::<Result<_, _>>()?
        };
        let mut removed = 0;
        for owner in owners.iter().filter(|o| !o.is_alive()) {
            removed += tx.execute(
                "DELETE FROM leases WHERE pid = ?1 AND start_time = ?2",
                params![owner.pid, owner.start_time],
            )?;
        }
        tx.commit()?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::meta::{SnapshotKind, SnapshotRecord};

    fn record(id: &str) -> SnapshotRecord {
        SnapshotRecord {
            id: id.into(),
            parent: None,
            kind: SnapshotKind::Layer,
            size: 0,
            diff_id: None,
            description: String::new(),
            created: 1,
            last_used: 1,
            usage_count: 0,
            tar_format: 0,
        }
    }

    #[test]
    fn orphans_leases_and_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let s = MetaStore::open(&dir.path().join("meta.db")).unwrap();
        s.commit(&record("a"), &["k"]).unwrap();
        s.set_size("a", 42).unwrap();
        assert_eq!(s.snapshot("a").unwrap().unwrap().size, 42);

        assert!(!s.is_orphan("a").unwrap());
        assert!(s.is_orphan("b").unwrap());
        let me = LeaseOwner::current();
        s.lease(&me, &["b"]).unwrap();
        assert!(!s.is_orphan("b").unwrap());
        assert_eq!(
            s.leased_snapshots().unwrap(),
            HashSet::from(["b".to_string()])
        );

        let gone = LeaseOwner {
            pid: i64::from(i32::MAX),
            start_time: 1,
        };
        s.lease(&gone, &["a"]).unwrap();
        assert_eq!(s.forget_dead_leases().unwrap(), 1);
        assert!(!s.leased_snapshots().unwrap().contains("a"));
    }
}
