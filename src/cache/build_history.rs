//! What the last build of each target was made of, so that the next one can say why a step
//! ran instead of coming from the cache (`solver/why.rs`).
//!
//! One record per target (context, Dockerfile, stage, platforms): the parts of each step's
//! cache key, hashed, and beside it, per local context, the fingerprint of each file, read
//! only when a step's context files changed and written only when the context did. A build
//! reads one record and writes one, whatever its number of steps.
//!
//! Bounded: [`MAX_RECORDS`] targets (the least recently built dropped), [`MAX_STEPS`] steps
//! per record (the longest unseen dropped), [`MAX_CONTEXT_FILES`] files per context (a larger
//! context is remembered by its checksum only: a change is then reported without names).

use std::collections::BTreeMap;
use std::io::Read as _;

use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::meta::{MetaError, MetaStore, now, write_transaction};

/// Targets remembered.
pub const MAX_RECORDS: usize = 64;
/// Steps remembered per target.
pub const MAX_STEPS: usize = 256;
/// Files remembered per local context of a target.
pub const MAX_CONTEXT_FILES: usize = 20_000;

// Kept apart from the schema in meta.rs (and created on first use): losing these tables
// only costs the explanations of one build.
const CREATE: &str = "CREATE TABLE IF NOT EXISTS build_history (
    target TEXT PRIMARY KEY,
    used INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS build_history_files (
    target TEXT NOT NULL,
    source TEXT NOT NULL,
    checksum TEXT NOT NULL,
    files BLOB,
    PRIMARY KEY (target, source)
)";

/// The last build of a target.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRecord {
    /// Counts the builds of the target; a step remembers the last one that solved it.
    pub generation: u64,
    /// The `--build-arg` names of the last build (their values are in the steps' env).
    pub build_args: Vec<String>,
    /// By identity (hashed: a step's name shows the values it expands).
    pub steps: BTreeMap<String, StepRecord>,
    /// Each local context's checksum, by source name (filled in when read).
    #[serde(skip)]
    pub contexts: BTreeMap<String, String>,
}

/// What one step's cache key was made of.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Its stage and index (`[build] 2`), to find it again when its text changed.
    #[serde(default)]
    pub position: String,
    /// The step's whole cache key (not hashed: it is itself a digest).
    pub key: String,
    /// The op without its inputs (hashed).
    pub op: String,
    /// Each input's part of the key (hashed): the input step's key, or the checksum of what
    /// the step reads of a context.
    pub inputs: Vec<String>,
    /// A RUN step's environment, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, EnvValue>,
    /// The [`BuildRecord::generation`] of the last build that solved the step; the oldest
    /// go first when the record is bounded.
    pub generation: u64,
}

/// A variable's value: always hashed; in clear only when it may be shown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvValue {
    /// A short hash of the value, compared to tell that it changed.
    pub hash: String,
    /// The value itself, kept only when it is short and its name does not look secret
    /// (the SecretsUsedInArgOrEnv rule), so a reason may show it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shown: Option<String>,
}

/// A local context as a build saw it: its checksum, and each file's fingerprint unless it
/// has more than [`MAX_CONTEXT_FILES`].
pub struct ContextRecord {
    /// The context's source name in the graph (`context`, a named context…).
    pub source: String,
    /// The checksum of the whole context as the build walked it.
    pub checksum: String,
    /// Each file's path and fingerprint; `None` for a context over the bound.
    pub files: Option<Vec<(String, u64)>>,
}

impl BuildRecord {
    /// Keeps the [`MAX_STEPS`] steps seen most recently.
    pub fn bound(&mut self) {
        if self.steps.len() <= MAX_STEPS {
            return;
        }
        let mut generations: Vec<u64> = self.steps.values().map(|s| s.generation).collect();
        generations.sort_unstable_by(|a, b| b.cmp(a));
        let oldest_kept = generations[MAX_STEPS - 1];
        let mut at_oldest = generations[..MAX_STEPS]
            .iter()
            .filter(|g| **g == oldest_kept)
            .count();
        self.steps.retain(|_, s| {
            if s.generation > oldest_kept {
                true
            } else if s.generation == oldest_kept && at_oldest > 0 {
                at_oldest -= 1;
                true
            } else {
                false
            }
        });
    }
}

impl MetaStore {
    /// The last build of `target`, with its contexts' checksums (not their files).
    pub fn build_record(&self, target: &str) -> Result<Option<BuildRecord>, MetaError> {
        let conn = self.conn();
        conn.execute_batch(CREATE)?;
        let text: Option<String> = conn
            .query_row(
                "SELECT record FROM build_history WHERE target = ?1",
                [target],
                |r| r.get(0),
            )
            .optional()?;
        // A record this version cannot read is as good as none: explanations start over.
        let Some(mut record) = text.and_then(|t| serde_json::from_str::<BuildRecord>(&t).ok())
        else {
            return Ok(None);
        };
        let mut stmt =
            conn.prepare("SELECT source, checksum FROM build_history_files WHERE target = ?1")?;
        let rows = stmt.query_map([target], |r| Ok((r.get(0)?, r.get(1)?)))?;
        for row in rows {
            let (source, checksum): (String, String) = row?;
            record.contexts.insert(source, checksum);
        }
        Ok(Some(record))
    }

    /// Each file's fingerprint of a context as the last build of `target` saw it, if
    /// remembered.
    pub fn build_record_files(
        &self,
        target: &str,
        source: &str,
    ) -> Result<Option<BTreeMap<String, u64>>, MetaError> {
        let conn = self.conn();
        conn.execute_batch(CREATE)?;
        let blob: Option<Option<Vec<u8>>> = conn
            .query_row(
                "SELECT files FROM build_history_files WHERE target = ?1 AND source = ?2",
                [target, source],
                |r| r.get(0),
            )
            .optional()?;
        Ok(blob.flatten().and_then(|b| decode_files(&b)))
    }

    /// Replaces the record of `target` and the contexts that changed, then drops the least
    /// recently built targets beyond [`MAX_RECORDS`], in one transaction.
    pub fn put_build_record(
        &self,
        target: &str,
        record: &BuildRecord,
        contexts: &[ContextRecord],
    ) -> Result<(), MetaError> {
        let text = serde_json::to_string(record)
            .map_err(|e| MetaError::Sql(rusqlite::Error::ToSqlConversionFailure(e.into())))?;
        let mut conn = self.conn();
        conn.execute_batch(CREATE)?;
        let tx = write_transaction(&mut conn)?;
        tx.execute(
            "INSERT OR REPLACE INTO build_history (target, used, record) VALUES (?1, ?2, ?3)",
            params![target, now(), text],
        )?;
        for c in contexts {
            tx.execute(
                "INSERT OR REPLACE INTO build_history_files (target, source, checksum, files)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    target,
                    c.source,
                    c.checksum,
                    c.files.as_deref().and_then(encode_files)
                ],
            )?;
        }
        tx.execute(
            "DELETE FROM build_history WHERE target NOT IN
                 (SELECT target FROM build_history ORDER BY used DESC, rowid DESC LIMIT ?1)",
            [MAX_RECORDS as i64],
        )?;
        tx.execute(
            "DELETE FROM build_history_files
             WHERE target NOT IN (SELECT target FROM build_history)",
            [],
        )?;
        tx.commit()?;
        Ok(())
    }
}

/// `fingerprint path` lines, zstd-compressed; None past the bound.
fn encode_files(files: &[(String, u64)]) -> Option<Vec<u8>> {
    if files.len() > MAX_CONTEXT_FILES {
        return None;
    }
    let mut text = String::with_capacity(files.len() * 48);
    for (path, fingerprint) in files {
        // Newlines in names cannot be told apart from the separator: such a context is
        // remembered by its checksum only.
        if path.contains('\n') {
            return None;
        }
        text.push_str(&format!("{fingerprint:016x} {path}\n"));
    }
    zstd::encode_all(text.as_bytes(), 3).ok()
}

fn decode_files(blob: &[u8]) -> Option<BTreeMap<String, u64>> {
    let mut text = String::new();
    zstd::Decoder::new(blob)
        .ok()?
        .read_to_string(&mut text)
        .ok()?;
    text.lines()
        .map(|line| {
            let (fingerprint, path) = line.split_once(' ')?;
            Some((path.to_string(), u64::from_str_radix(fingerprint, 16).ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, MetaStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = MetaStore::open(&dir.path().join("meta.db")).unwrap();
        (dir, store)
    }

    fn step(generation: u64) -> StepRecord {
        StepRecord {
            key: format!("k{generation}"),
            generation,
            ..Default::default()
        }
    }

    #[test]
    fn a_record_and_its_context_files_round_trip() {
        let (_d, s) = store();
        assert_eq!(s.build_record("t").unwrap(), None);
        let mut record = BuildRecord {
            generation: 3,
            build_args: vec!["VERSION".into()],
            ..Default::default()
        };
        record.steps.insert("[] RUN x".into(), step(3));
        let files = vec![("a".to_string(), 1), ("dir/b c".to_string(), u64::MAX)];
        let context = ContextRecord {
            source: "context".into(),
            checksum: "sha256:c".into(),
            files: Some(files.clone()),
        };
        s.put_build_record("t", &record, &[context]).unwrap();
        let read = s.build_record("t").unwrap().unwrap();
        assert_eq!(read.steps, record.steps);
        assert_eq!(read.contexts["context"], "sha256:c");
        let read_files = s.build_record_files("t", "context").unwrap().unwrap();
        assert_eq!(read_files, files.into_iter().collect());
        assert_eq!(s.build_record_files("t", "other").unwrap(), None);
    }

    #[test]
    fn records_steps_and_files_are_bounded() {
        let (_d, s) = store();
        for i in 0..MAX_RECORDS + 3 {
            s.put_build_record(&format!("t{i}"), &BuildRecord::default(), &[])
                .unwrap();
        }
        // The first targets built are the ones dropped.
        for i in 0..3 {
            assert_eq!(s.build_record(&format!("t{i}")).unwrap(), None, "t{i}");
        }
        for i in 3..MAX_RECORDS + 3 {
            assert!(s.build_record(&format!("t{i}")).unwrap().is_some(), "t{i}");
        }

        let mut record = BuildRecord::default();
        for i in 0..MAX_STEPS as u64 + 10 {
            record.steps.insert(format!("step {i:04}"), step(i / 2));
        }
        record.bound();
        assert_eq!(record.steps.len(), MAX_STEPS);
        assert!(
            record
                .steps
                .contains_key(&format!("step {:04}", MAX_STEPS + 9))
        );
        assert!(!record.steps.contains_key("step 0000"));

        let many: Vec<(String, u64)> = (0..MAX_CONTEXT_FILES + 1)
            .map(|i| (format!("f{i}"), i as u64))
            .collect();
        let context = ContextRecord {
            source: "context".into(),
            checksum: "sha256:big".into(),
            files: Some(many),
        };
        s.put_build_record("big", &BuildRecord::default(), &[context])
            .unwrap();
        let read = s.build_record("big").unwrap().unwrap();
        assert_eq!(read.contexts["context"], "sha256:big");
        assert_eq!(s.build_record_files("big", "context").unwrap(), None);
    }
}
