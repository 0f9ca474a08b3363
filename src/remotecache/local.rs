//! `type=local`: a cache in an OCI image layout directory, as buildx writes one for
//! BuildKit's local cache exporter: blobs under `blobs/sha256/`, the cache manifest named in
//! `index.json` by its `org.opencontainers.image.ref.name` annotation (the `tag`,
//! `latest` by default), an entry of the same tag replaced.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use futures_util::future::{BoxFuture, FutureExt as _};

use crate::content::{ContentStore, Digest};
use crate::registry::manifest::{self, Descriptor, Index};

use super::export::CacheManifest;
use super::import::BlobSource;

/// The `index.json` annotation naming a manifest's tag, as BuildKit's local cache tags it.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A manifest larger than this is no cache manifest (registries refuse over 4 MiB).
const MAX_MANIFEST_SIZE: u64 = 4 << 20;

/// A local cache: an OCI layout directory.
pub struct Layout {
    /// The directory (`dest=` or `src=`).
    pub dir: PathBuf,
}

impl Layout {
    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir
            .join("blobs")
            .join(digest.algorithm())
            .join(digest.hex())
    }

    /// Writes the cache's blobs (those missing) and names its manifest `tag`. Blocking.
    pub fn write(
        &self,
        cache: &CacheManifest,
        content: &ContentStore,
        tag: &str,
    ) -> anyhow::Result<()> {
        let blobs_dir = self.dir.join("blobs").join("sha256");
        std::fs::create_dir_all(&blobs_dir)
            .with_context(|| format!("creating {}", blobs_dir.display()))?;
        for desc in cache.layers.iter().chain([&cache.config]) {
            let digest = Digest::parse(&desc.digest)?;
            let path = self.blob_path(&digest);
            if path.is_file() {
                continue;
            }
            let tmp = tmp_name(&path);
            let mut source = std::fs::File::open(content.path(&digest))
                .with_context(|| format!("reading {digest}"))?;
            FileKind::Blob
                .create(&tmp)
                .and_then(|mut file| {
                    std::io::copy(&mut source, &mut file)?;
                    FileKind::Blob.finish(&file)
                })
                .with_context(|| format!("writing {}", path.display()))?;
            std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        }
        write_atomic(&self.blob_path(&cache.digest), &cache.bytes, FileKind::Blob)?;
        self.name(
            Descriptor {
                media_type: cache.media_type.clone(),
                digest: cache.digest.to_string(),
                size: cache.bytes.len() as u64,
                urls: Vec::new(),
                annotations: BTreeMap::new(),
                platform: None,
            },
            tag,
        )
    }

    /// Names the manifest `desc` (whose blobs are in the layout) `tag` in `index.json`,
    /// replacing the entry of the same tag, as BuildKit's client does once its daemon has
    /// exported a local cache. Blocking.
    pub fn name(&self, mut desc: Descriptor, tag: &str) -> anyhow::Result<()> {
        let layout = self.dir.join("oci-layout");
        if !layout.exists() {
            write_atomic(
                &layout,
                br#"{"imageLayoutVersion":"1.0.0"}"#,
                FileKind::Index,
            )?;
        }
        // Another build may name its own tag in the same layout meanwhile: the index is read,
        // changed and written under `index.json.lock`, as BuildKit's `ociindex` does it, so
        // neither loses the other's tag.
        let _locked = self.lock_index()?;
        let mut index = self.read_index()?.unwrap_or(Index {
            schema_version: 2,
            media_type: Some(manifest::OCI_INDEX.into()),
            manifests: Vec::new(),
            annotations: Default::default(),
        });
        index
            .manifests
            .retain(|m| m.annotations.get(REF_NAME).map(String::as_str) != Some(tag));
        desc.annotations
            .insert(REF_NAME.to_string(), tag.to_string());
        index.manifests.push(desc);
        write_atomic(
            &self.dir.join("index.json"),
            &serde_json::to_vec(&index)?,
            FileKind::Index,
        )?;
        Ok(())
    }

    /// The manifest `index.json` names `tag`.
    pub fn tagged(&self, tag: &str) -> anyhow::Result<Descriptor> {
        let Some(index) = self.read_index()? else {
            bail!("{} has no index.json", self.dir.display());
        };
        index
            .manifests
            .into_iter()
            .find(|m| m.annotations.get(REF_NAME).map(String::as_str) == Some(tag))
            .with_context(|| format!("no cache tagged {tag:?} in {}", self.dir.display()))
    }

    /// An exclusive lock on the layout's index, held until the [`IndexLock`] is dropped.
    fn lock_index(&self) -> anyhow::Result<IndexLock> {
        let path = self.dir.join("index.json.lock");
        loop {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
                .with_context(|| format!("locking {}", path.display()))?;
            // The holder before us removed the file as it let go: a lock on a file no longer
            // at the path excludes nobody, so the one there now (made anew if need be) is
            // locked instead.
            let held = file
                .metadata()
                .with_context(|| format!("locking {}", path.display()))?;
            match std::fs::metadata(&path) {
                Ok(now) if now.ino() == held.ino() && now.dev() == held.dev() => {
                    return Ok(IndexLock { path, _file: file });
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("locking {}", path.display())),
            }
        }
    }

    fn read_index(&self) -> anyhow::Result<Option<Index>> {
        let path = self.dir.join("index.json");
        match std::fs::read(&path) {
            Ok(bytes) => {
                Ok(Some(serde_json::from_slice(&bytes).with_context(|| {
                    format!("{} is not an OCI index", path.display())
                })?))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// The manifest named `tag` (or given by `digest`): its bytes, verified, and media
    /// type. Blocking.
    pub fn manifest(
        &self,
        tag: &str,
        digest: Option<&str>,
    ) -> anyhow::Result<(Vec<u8>, Option<String>)> {
        let desc = match digest {
            Some(d) => Descriptor {
                media_type: String::new(),
                digest: d.to_string(),
                size: 0,
                urls: Vec::new(),
                annotations: BTreeMap::new(),
                platform: None,
            },
            None => self.tagged(tag)?,
        };
        let digest = Digest::parse(&desc.digest)?;
        let path = self.blob_path(&digest);
        let size = std::fs::metadata(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        if size > MAX_MANIFEST_SIZE {
            bail!(
                "{} is too large for a manifest ({size} bytes)",
                path.display()
            );
        }
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        if Digest::of(&bytes) != digest {
            bail!("{} does not match its digest", path.display());
        }
        let media_type = Some(desc.media_type).filter(|m| !m.is_empty());
        Ok((bytes, media_type))
    }
}

impl BlobSource for Layout {
    fn fetch<'a>(
        &'a self,
        desc: &'a Descriptor,
        content: &'a ContentStore,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        async move {
            let digest = Digest::parse(&desc.digest)?;
            if content.exists(&digest) {
                return Ok(());
            }
            let path = self.blob_path(&digest);
            let (content, what) = (content.clone(), path.clone());
            tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                let file = std::fs::File::open(&path)
                    .with_context(|| format!("opening {}", path.display()))?;
                content.import(std::io::BufReader::new(file), Some(&digest))?;
                Ok(())
            })
            .await
            .context("reading a blob")?
            .with_context(|| format!("{}", what.display()))
        }
        .boxed()
    }

    fn manifest<'a>(&'a self, digest: &'a str) -> BoxFuture<'a, anyhow::Result<Vec<u8>>> {
        async move {
            let (layout, digest) = (
                Layout {
                    dir: self.dir.clone(),
                },
                digest.to_string(),
            );
            tokio::task::spawn_blocking(move || layout.manifest("", Some(&digest)))
                .await
                .context("reading a manifest")?
                .map(|(bytes, _)| bytes)
        }
        .boxed()
    }

    fn describe(&self) -> String {
        self.dir.display().to_string()
    }
}

/// `index.json.lock`, locked: removed while still locked when dropped, so that the layout
/// ends as BuildKit's `ociindex` leaves it (`oci-layout`, `index.json`, `blobs/`) and a
/// writer waiting for the lock finds its file gone and locks the next one.
struct IndexLock {
    path: PathBuf,
    /// Unlocked when closed, after the removal (fields drop after `drop`).
    _file: std::fs::File,
}

impl Drop for IndexLock {
    fn drop(&mut self) {
        // Left behind when it cannot be removed: the next writer locks it all the same.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A temporary name beside `path`, of this process and call alone.
fn tmp_name(path: &Path) -> PathBuf {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.{call}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// A file of the layout, with the mode buildx's client gives it.
#[derive(Clone, Copy)]
enum FileKind {
    /// A blob, as containerd's local content store commits one: created 0666 less the
    /// umask, then made read-only (`&^ 0333`, so 0444 under the usual umask).
    Blob,
    /// `index.json` or `oci-layout`, as BuildKit's `ociindex` writes them: 0644 less the
    /// umask.
    Index,
}

impl FileKind {
    /// Creates `path`, which must not exist, with the mode the umask leaves of this kind's.
    fn create(self, path: &Path) -> std::io::Result<std::fs::File> {
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(match self {
                FileKind::Blob => 0o666,
                FileKind::Index => 0o644,
            })
            .open(path)
    }

    /// Gives a file written whole its final mode.
    fn finish(self, file: &std::fs::File) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        if let FileKind::Blob = self {
            let created = file.metadata()?.permissions().mode() & 0o777;
            file.set_permissions(std::fs::Permissions::from_mode(created & !0o333))?;
        }
        Ok(())
    }
}

/// Written whole and renamed into place, so that a reader never sees half a file.
fn write_atomic(path: &Path, bytes: &[u8], kind: FileKind) -> anyhow::Result<()> {
    use std::io::Write as _;
    let tmp = tmp_name(path);
    kind.create(&tmp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            kind.finish(&file)
        })
        .with_context(|| format!("writing {}", path.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache manifest of one config blob, stored in `content`.
    fn manifest(content: &ContentStore, text: &str) -> CacheManifest {
        let config = content.put(text.as_bytes()).unwrap();
        let bytes = format!("{{\"config\":\"{config}\"}}").into_bytes();
        CacheManifest {
            media_type: manifest::OCI_MANIFEST.to_owned(),
            digest: Digest::of(&bytes),
            bytes,
            config: Descriptor {
                media_type: "application/vnd.buildkit.cacheconfig.v0".to_owned(),
                digest: config.to_string(),
                size: text.len() as u64,
                urls: Vec::new(),
                annotations: BTreeMap::new(),
                platform: None,
            },
            layers: Vec::new(),
            lazy_layers: Vec::new(),
        }
    }

    /// Writers naming different tags in one layout at once keep every tag.
    #[test]
    fn concurrent_writers_keep_each_other_s_tags() {
        let dir = tempfile::tempdir().unwrap();
        let content = ContentStore::new(dir.path().join("content")).unwrap();
        let layout = Layout {
            dir: dir.path().join("cache"),
        };
        std::thread::scope(|s| {
            for writer in 0..8 {
                let (layout, content) = (&layout, &content);
                s.spawn(move || {
                    for round in 0..10 {
                        let cache = manifest(content, &format!("{writer}-{round}"));
                        layout
                            .write(&cache, content, &format!("tag-{writer}"))
                            .unwrap();
                    }
                });
            }
        });
        let index = layout.read_index().unwrap().unwrap();
        let mut tags: Vec<&str> = index
            .manifests
            .iter()
            .filter_map(|m| m.annotations.get(REF_NAME).map(String::as_str))
            .collect();
        tags.sort();
        let want: Vec<String> = (0..8).map(|w| format!("tag-{w}")).collect();
        assert_eq!(tags, want);
        // What BuildKit leaves: no lock file, no temporary blob.
        assert_eq!(names(&layout.dir), ["blobs", "index.json", "oci-layout"]);
        assert!(
            names(&layout.dir.join("blobs/sha256"))
                .iter()
                .all(|n| Digest::parse(&format!("sha256:{n}")).is_ok())
        );
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}
