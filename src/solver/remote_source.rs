//! Source ops fetched from elsewhere, `https://…` and `git://…`: the fetchers of
//! `crate::source` write into a workspace the solver gives them, and the solver commits it
//! as a snapshot under the key the fetcher names, looked up first so that an unchanged
//! source costs no download or checkout.

use std::collections::BTreeMap;

use crate::cache::meta::SnapshotKind;
use crate::source::git::GitSource;
use crate::source::http::{self, Fetched, HttpError, HttpSource};

use super::snapshots::Ref;
use super::{SolveError, Solver};

impl Solver {
    /// The snapshot holding the file of an HTTP(S) source, and its cache key. The URL's
    /// last validators are sent back so that an unchanged file is not downloaded again.
    pub(super) async fn http_source(
        &self,
        url: &str,
        attrs: &BTreeMap<String, String>,
    ) -> Result<(String, Ref), SolveError> {
        let snapshots = &self.snapshots;
        let source = HttpSource::parse(url, attrs)?;
        if let Some(key) = source.pinned_key()
            && let Some(hit) = snapshots.lookup(&key)?
        {
            return Ok((key, hit));
        }
        let validators_key = source.validators_key();
        let previous = match snapshots.meta.http_validators(&validators_key)? {
            Some(prev) => {
                let key = source.downloaded_key(&prev);
                snapshots.lookup(&key)?.map(|hit| (prev, key, hit))
            }
            None => None,
        };
        let client = http::client(self.opts.timeouts)?;
        let ws = snapshots.workspace()?;
        let fetched = source
            .fetch(&client, previous.as_ref().map(|(p, _, _)| p), &ws.upper())
            .await?;
        let validators = match (fetched, previous) {
            (Fetched::NotModified, Some((_, key, hit))) => return Ok((key, hit)),
            // Only a conditional request is answered NotModified.
            (Fetched::NotModified, None) => {
                return Err(HttpError::Status {
                    url: url.to_owned(),
                    status: reqwest::StatusCode::NOT_MODIFIED,
                }
                .into());
            }
            (Fetched::Downloaded(v), _) => v,
        };
        let key = source.downloaded_key(&validators);
        let committed = snapshots.commit(
            ws,
            &Ref::Scratch,
            SnapshotKind::Layer,
            &key,
            &format!("http url {url}"),
        )?;
        if validators.etag.is_some() || validators.last_modified.is_some() {
            snapshots
                .meta
                .put_http_validators(&validators_key, &validators)?;
        }
        Ok((key, committed))
    }

    /// The snapshot of a git source's checkout (`identifier` is what follows `git://`), and
    /// its cache key; the checkout is noted for provenance. The ref is resolved first, so a
    /// commit already checked out is not fetched again.
    pub(super) async fn git_source(
        &self,
        identifier: &str,
        attrs: &BTreeMap<String, String>,
    ) -> Result<(String, Ref), SolveError> {
        let snapshots = &self.snapshots;
        let mut source = GitSource::parse(identifier, attrs)?;
        source.auth = source.auth_from_secrets(attrs, &self.opts.secrets);
        // Holds the known_hosts file an ssh remote is checked against, while git runs.
        let ssh_scratch = tempfile::tempdir().map_err(SolveError::failed(
            "creating a directory for ssh's known hosts",
        ))?;
        source.ssh = source.ssh_access(attrs, &self.opts.ssh_agents, ssh_scratch.path())?;
        let resolved = source.resolve_with_credentials().await?;
        let key = source.snapshot_key(&resolved);
        let fetched = source.fetched(&resolved);
        let solved = match snapshots.lookup(&key)? {
            Some(hit) => hit,
            None => {
                let ws = snapshots.workspace()?;
                let scratch = ws.subdir("git")?;
                source.checkout(&resolved, &scratch, &ws.upper()).await?;
                let description = format!(
                    "git snapshot for {}#{}",
                    source.url,
                    source.reference_name()
                );
                snapshots.commit(ws, &Ref::Scratch, SnapshotKind::Layer, &key, &description)?
            }
        };
        self.note_git_source(fetched);
        Ok((key, solved))
    }
}
