//! `--cache-to type=local,dest=DIR` and `--cache-from type=local,src=DIR` with `--addr`: the
//! daemon's local cache exporter and importer reach the client's directory through the
//! session's content store `local:DIR`, as BuildKit's client (`client/solve.go`) sets them
//! up: an import is sent with the digest of the manifest `index.json` tags (`tag`, `latest`
//! by default), or left out with a warning when there is none; once the daemon has written
//! an export, its manifest (the `cache.manifest` the solve answers) is named in DIR's
//! `index.json` under the export's tag.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::progress::ProgressSink;
use crate::registry::manifest::Descriptor;
use crate::remotecache::local::Layout;

use super::CacheEntry;
use super::session::{CacheDir, ContentStore};

/// The exporter response naming the cache manifest BuildKit exported
/// (`remotecache.ExporterResponseManifestDesc`).
const MANIFEST_RESPONSE: &str = "cache.manifest";

/// Why a local cache could not be offered to the daemon or named after the build.
#[derive(Debug, thiserror::Error)]
pub enum LocalCacheError {
    /// An export without its directory.
    #[error("--cache-to type=local needs dest=DIR")]
    NoDest,
    /// An import without its directory.
    #[error("--cache-from type=local needs src=DIR")]
    NoSrc,
    /// An export's directory (or its `blobs/sha256/`) could not be made.
    #[error("--cache-to type=local,dest={dir}: preparing the directory")]
    Dir {
        /// The directory as the option names it.
        dir: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The daemon's exporter response has no readable cache manifest descriptor.
    #[error("the daemon's answer names no cache manifest ({MANIFEST_RESPONSE})")]
    Manifest(#[source] serde_json::Error),
    /// The exported manifest could not be tagged in the layout's `index.json`.
    #[error("naming the cache {tag:?} in {dir}/index.json")]
    Index {
        /// The layout directory.
        dir: String,
        /// The tag (`latest`, or the `tag=` attribute).
        tag: String,
        /// The layout's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The local caches of one solve.
pub(super) struct LocalCaches {
    /// The imports to send: a local one with the digest of its manifest, or left out.
    pub imports: Vec<CacheEntry>,
    /// The content stores of the session, by directory as the options name it.
    pub stores: BTreeMap<String, ContentStore>,
    /// Each export's directory and the tag its manifest gets.
    tags: Vec<(String, String)>,
}

impl LocalCaches {
    /// Makes each export's directory, and reads each import's `index.json`. Blocking.
    pub(super) fn prepare(
        imports: Vec<CacheEntry>,
        exports: &[CacheEntry],
        progress: &ProgressSink,
    ) -> Result<LocalCaches, LocalCacheError> {
        let mut caches = LocalCaches {
            imports: Vec::new(),
            stores: BTreeMap::new(),
            tags: Vec::new(),
        };
        for export in exports.iter().filter(|e| e.kind == "local") {
            let dir = export
                .attrs
                .get("dest")
                .filter(|d| !d.is_empty())
                .ok_or(LocalCacheError::NoDest)?;
            let writer = CacheDir::open(std::path::Path::new(dir)).map_err(|source| {
                LocalCacheError::Dir {
                    dir: dir.clone(),
                    source,
                }
            })?;
            let tag = export.attrs.get("tag").cloned();
            caches
                .tags
                .push((dir.clone(), tag.unwrap_or_else(|| "latest".to_owned())));
            caches.stores.insert(
                dir.clone(),
                ContentStore::Cache {
                    dir: PathBuf::from(dir),
                    writer: Some(Arc::new(writer)),
                },
            );
        }
        for mut import in imports {
            if import.kind != "local" {
                caches.imports.push(import);
                continue;
            }
            let dir = import
                .attrs
                .get("src")
                .filter(|d| !d.is_empty())
                .ok_or(LocalCacheError::NoSrc)?
                .clone();
            if !import.attrs.contains_key("digest") {
                let tag = import.attrs.get("tag").map_or("latest", String::as_str);
                let layout = Layout {
                    dir: PathBuf::from(&dir),
                };
                match layout.tagged(tag) {
                    Ok(desc) => {
                        import.attrs.insert("digest".to_owned(), desc.digest);
                    }
                    // As BuildKit's client, and as the embedded solver with a cache it cannot
                    // read: the build goes on without it.
                    Err(e) => {
                        progress.warning(
                            None,
                            format!(
                                "--cache-from type=local,src={dir}: not imported: {}",
                                crate::error_chain::error_chain(e.as_ref())
                            ),
                        );
                        continue;
                    }
                }
            }
            caches
                .stores
                .entry(dir.clone())
                .or_insert_with(|| ContentStore::Cache {
                    dir: PathBuf::from(&dir),
                    writer: None,
                });
            caches.imports.push(import);
        }
        Ok(caches)
    }

    /// Names the manifest the daemon exported in each export directory's `index.json`.
    /// Blocking.
    pub(super) fn name_exported(
        &self,
        response: &BTreeMap<String, String>,
    ) -> Result<(), LocalCacheError> {
        if self.tags.is_empty() {
            return Ok(());
        }
        let Some(text) = response.get(MANIFEST_RESPONSE) else {
            // BuildKit's client names nothing then either (an export the daemon skipped,
            // `ignore-error=true`).
            return Ok(());
        };
        let desc: Descriptor = serde_json::from_str(text).map_err(LocalCacheError::Manifest)?;
        for (dir, tag) in &self.tags {
            let layout = Layout {
                dir: PathBuf::from(dir),
            };
            layout
                .name(desc.clone(), tag)
                .map_err(|e| LocalCacheError::Index {
                    dir: dir.clone(),
                    tag: tag.clone(),
                    source: e.into(),
                })?;
        }
        Ok(())
    }
}
