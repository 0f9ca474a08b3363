//! What the last download of a URL returned: its validators (ETag, Last-Modified) and the
//! digest and file name of its content. A rebuild sends the validators back; a
//! `304 Not Modified` then means the snapshot made from that content can be reused
//! without downloading it again.

use rusqlite::{OptionalExtension, params};

use super::meta::{MetaError, MetaStore, now};

/// The response a URL gave when it was last downloaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpValidators {
    /// The entity tag, without a weak `W/` prefix.
    pub etag: Option<String>,
    /// The `Last-Modified` header as the server sent it.
    pub last_modified: Option<String>,
    /// `sha256:…` of the content.
    pub digest: String,
    /// The name the file was saved under.
    pub filename: String,
}

// Kept apart from the schema in meta.rs (and created on first use) so that the table can
// come and go without a schema migration: losing it only costs a download.
const CREATE: &str = "CREATE TABLE IF NOT EXISTS http_validators (
    source TEXT PRIMARY KEY,
    etag TEXT,
    last_modified TEXT,
    digest TEXT NOT NULL,
    filename TEXT NOT NULL,
    updated INTEGER NOT NULL
)";

impl MetaStore {
    /// The validators recorded for a source, keyed by the caller (its URL and the options
    /// that shape the file it makes).
    pub fn http_validators(&self, source: &str) -> Result<Option<HttpValidators>, MetaError> {
        let conn = self.conn();
        conn.execute(CREATE, [])?;
        Ok(conn
            .query_row(
                "SELECT etag, last_modified, digest, filename FROM http_validators
                 WHERE source = ?1",
                [source],
                |r| {
                    Ok(HttpValidators {
                        etag: r.get(0)?,
                        last_modified: r.get(1)?,
                        digest: r.get(2)?,
                        filename: r.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    /// Records what a download of a source returned, replacing the previous record.
    pub fn put_http_validators(
        &self,
        source: &str,
        validators: &HttpValidators,
    ) -> Result<(), MetaError> {
        let conn = self.conn();
        conn.execute(CREATE, [])?;
        conn.execute(
            "INSERT OR REPLACE INTO http_validators
             (source, etag, last_modified, digest, filename, updated)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                source,
                validators.etag,
                validators.last_modified,
                validators.digest,
                validators.filename,
                now()
            ],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validators_round_trip_and_replace() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetaStore::open(&dir.path().join("meta.db")).unwrap();
        assert_eq!(store.http_validators("u").unwrap(), None);
        let first = HttpValidators {
            etag: Some("\"a\"".into()),
            last_modified: None,
            digest: "sha256:1".into(),
            filename: "f".into(),
        };
        store.put_http_validators("u", &first).unwrap();
        assert_eq!(store.http_validators("u").unwrap(), Some(first));
        let second = HttpValidators {
            etag: None,
            last_modified: Some("Wed, 21 Oct 2015 07:28:00 GMT".into()),
            digest: "sha256:2".into(),
            filename: "g".into(),
        };
        store.put_http_validators("u", &second).unwrap();
        assert_eq!(store.http_validators("u").unwrap(), Some(second));
        assert_eq!(store.http_validators("other").unwrap(), None);
    }
}
