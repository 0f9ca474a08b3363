//! A build context given as a URL (`bud -t x https://host/repo.git#main`,
//! `bud http://host/ctx.tar.gz`, `bud https://host/Dockerfile`), as docker build and buildx
//! take it: the URL becomes a source of the graph (git, or http unpacked when it serves an
//! archive), and the Dockerfile is read from that source once solved, by whichever solver
//! runs the build (the embedded one, or the daemon behind `--addr`, as BuildKit's
//! Dockerfile frontend reads it there). As in BuildKit, no `.dockerignore` applies to it.

use anyhow::{Context as _, bail};
use bud_frontend::convert::{HTTP_CONTEXT_FILE, MainContext, http_download};
use bud_frontend::gitref::GitRef;
use bud_proto::pb;
use futures_util::future::BoxFuture;

/// How many bytes of an http context tell an archive from a Dockerfile, as in BuildKit.
const SNIFF_LEN: usize = 1024;

/// The positional context argument when it names something remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteContext {
    Git { git: GitRef, source: String },
    Http(String),
}

impl RemoteContext {
    /// `None` when `context` is not a URL docker build would fetch.
    pub fn detect(context: &str) -> anyhow::Result<Option<Self>> {
        if let Some(git) =
            GitRef::parse(context).map_err(|e| anyhow::anyhow!("git context {context}: {e}"))?
        {
            return Ok(Some(RemoteContext::Git {
                git,
                source: context.to_owned(),
            }));
        }
        let lower = context.to_ascii_lowercase();
        if lower.starts_with("http://") || lower.starts_with("https://") {
            return Ok(Some(RemoteContext::Http(context.to_owned())));
        }
        Ok(None)
    }

    /// The URL as given, for messages.
    pub fn url(&self) -> &str {
        match self {
            RemoteContext::Git { source, .. } => source,
            RemoteContext::Http(url) => url,
        }
    }
}

/// Solves a graph and reads files from its result: the embedded solver or the daemon.
pub(super) trait ContextFiles: Sync {
    /// The contents of each of `paths` (relative to the result's root) in the result of
    /// `definition`, `None` where there is no such file; at most `limit` bytes of each.
    fn read<'a>(
        &'a self,
        definition: pb::Definition,
        paths: Vec<String>,
        limit: Option<usize>,
    ) -> BoxFuture<'a, anyhow::Result<Vec<Option<Vec<u8>>>>>;
}

/// The remote context once fetched: its source for the frontend and the Dockerfile.
#[derive(Debug)]
pub struct LoadedContext {
    pub main_context: MainContext,
    /// `None` when the Dockerfile comes from elsewhere (`-f -`).
    pub dockerfile: Option<Vec<u8>>,
    /// Where the Dockerfile came from, for messages.
    pub dockerfile_name: String,
}

/// Fetches `remote` through `files` and reads the Dockerfile from it: `file` (`-f`) is
/// relative to the context's root, `Dockerfile` (or `dockerfile`) by default; a URL that
/// serves no archive is the Dockerfile itself. `dockerfile_given`: the client read it (`-f -`,
/// an absolute `-f`).
/// `git_subdir`: the solver checks out a repository's subdirectory itself.
pub(super) async fn load(
    remote: &RemoteContext,
    file: Option<&str>,
    keep_git_dir: bool,
    dockerfile_given: bool,
    git_subdir: bool,
    files: &dyn ContextFiles,
) -> anyhow::Result<LoadedContext> {
    let url = remote.url();
    let main_context = match remote {
        RemoteContext::Git { git, source } => MainContext::Git {
            git: git.clone(),
            source: source.clone(),
            keep_git_dir,
            copy_subdir: !git_subdir,
        },
        RemoteContext::Http(url) => {
            let head = files
                .read(
                    http_download(url).marshal(),
                    vec![HTTP_CONTEXT_FILE.to_owned()],
                    Some(SNIFF_LEN),
                )
                .await
                .with_context(|| format!("unable to fetch the build context {url}"))?;
            let head = head.into_iter().next().flatten().unwrap_or_default();
            if is_archive(&head) {
                MainContext::HttpArchive(url.clone())
            } else {
                // BuildKit reads the file as the Dockerfile whatever -f says.
                let dockerfile = if dockerfile_given {
                    None
                } else {
                    let whole = files
                        .read(
                            http_download(url).marshal(),
                            vec![HTTP_CONTEXT_FILE.to_owned()],
                            None,
                        )
                        .await
                        .with_context(|| format!("unable to fetch the build context {url}"))?;
                    whole.into_iter().next().flatten()
                };
                return Ok(LoadedContext {
                    main_context: MainContext::HttpFile(url.clone()),
                    dockerfile,
                    dockerfile_name: url.clone(),
                });
            }
        }
    };
    let name = file.unwrap_or("Dockerfile").trim_start_matches('/');
    if dockerfile_given {
        return Ok(LoadedContext {
            main_context,
            dockerfile: None,
            dockerfile_name: "-".into(),
        });
    }
    let mut candidates = vec![name.to_owned()];
    // `dockerfile` is found when `Dockerfile` is not, as BuildKit looks for it.
    if let Some(dir) = name.strip_suffix("Dockerfile")
        && (dir.is_empty() || dir.ends_with('/'))
    {
        candidates.push(format!("{dir}dockerfile"));
    }
    let state = main_context
        .state()
        .context("the build context's source")?
        .context("a remote build context has a source")?;
    let found = files
        .read(state.marshal(), candidates.clone(), None)
        .await
        .with_context(|| format!("unable to fetch the build context {url}"))?;
    let Some((bytes, found_name)) = found
        .into_iter()
        .zip(&candidates)
        .find_map(|(bytes, name)| bytes.map(|b| (b, name)))
    else {
        bail!("failed to read dockerfile: {name} not found in the build context {url}");
    };
    Ok(LoadedContext {
        main_context,
        dockerfile: Some(bytes),
        dockerfile_name: format!("{url} ({found_name})"),
    })
}

/// The embedded solver's results, read from their snapshots.
pub(super) struct SolverFiles<'a> {
    pub solver: &'a std::sync::Arc<crate::solver::Solver>,
    pub cancel: &'a tokio_util::sync::CancellationToken,
}

impl ContextFiles for SolverFiles<'_> {
    fn read<'a>(
        &'a self,
        definition: pb::Definition,
        paths: Vec<String>,
        limit: Option<usize>,
    ) -> BoxFuture<'a, anyhow::Result<Vec<Option<Vec<u8>>>>> {
        Box::pin(async move {
            let result = self
                .solver
                .solve(&definition, self.cancel)
                .await
                .map_err(|e| anyhow::anyhow!("{e}", e = crate::error_chain::error_chain(&e)))?;
            let snapshots = self.solver.snapshots().clone();
            tokio::task::spawn_blocking(move || {
                let view = snapshots.view(&result)?;
                paths
                    .iter()
                    .map(|p| read_in_root(&view.path, p, limit))
                    .collect::<anyhow::Result<Vec<_>>>()
            })
            .await
            .context("reading the build context")?
        })
    }
}

/// The daemon's results (`--addr`), read through the gateway.
pub(super) struct DaemonContextFiles(pub crate::remote::DaemonFiles);

impl ContextFiles for DaemonContextFiles {
    fn read<'a>(
        &'a self,
        definition: pb::Definition,
        paths: Vec<String>,
        limit: Option<usize>,
    ) -> BoxFuture<'a, anyhow::Result<Vec<Option<Vec<u8>>>>> {
        Box::pin(async move {
            self.0
                .read(definition, &paths, limit)
                .await
                .map_err(anyhow::Error::new)
        })
    }
}

/// `path` inside `root` (symlinks resolved within it), `None` when it is not a file.
fn read_in_root(
    root: &std::path::Path,
    path: &str,
    limit: Option<usize>,
) -> anyhow::Result<Option<Vec<u8>>> {
    use std::io::Read as _;
    let full = crate::fileop::safe::resolve(root, path)?;
    let file = match std::fs::File::open(&full) {
        Ok(f) if f.metadata().is_ok_and(|m| m.is_file()) => f,
        Ok(_) => return Ok(None),
        Err(e) if crate::fileop::safe::is_absent(&e) => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {path}")),
    };
    let mut bytes = Vec::new();
    let cap = limit.map_or(u64::MAX, |l| l as u64);
    file.take(cap)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {path}"))?;
    Ok(Some(bytes))
}

/// BuildKit's `isArchive` on the head of a download: a bzip2, gzip or xz stream, or a tar
/// header.
fn is_archive(head: &[u8]) -> bool {
    const MAGIC: [&[u8]; 3] = [
        &[0x42, 0x5A, 0x68],
        &[0x1F, 0x8B, 0x08],
        &[0xFD, 0x37, 0x7A, 0x58, 0x5A, 0x00],
    ];
    if MAGIC.iter().any(|m| head.starts_with(m)) {
        return true;
    }
    let mut archive = tar::Archive::new(head);
    archive
        .entries()
        .ok()
        .and_then(|mut entries| entries.next())
        .is_some_and(|entry| entry.is_ok())
}

/// Whether BUILDKIT_CONTEXT_KEEP_GIT_DIR asks for `.git` in a git context (Go's ParseBool).
pub(super) fn keep_git_dir(build_args: &std::collections::BTreeMap<String, String>) -> bool {
    build_args
        .get("BUILDKIT_CONTEXT_KEEP_GIT_DIR")
        .is_some_and(|v| crate::cli::parse_go_bool(v) == Some(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_are_told_apart() {
        let git = RemoteContext::detect("https://h/r.git#main:sub")
            .unwrap()
            .unwrap();
        assert!(matches!(git, RemoteContext::Git { .. }));
        assert!(matches!(
            RemoteContext::detect("git@h:o/r.git").unwrap(),
            Some(RemoteContext::Git { .. })
        ));
        assert_eq!(
            RemoteContext::detect("http://h/ctx.tar.gz").unwrap(),
            Some(RemoteContext::Http("http://h/ctx.tar.gz".into()))
        );
        assert_eq!(RemoteContext::detect("some/dir").unwrap(), None);
        assert!(RemoteContext::detect("https://h/r.git?bogus=1").is_err());
    }

    #[test]
    fn archives_are_sniffed_as_buildkit_does() {
        assert!(is_archive(&[0x1F, 0x8B, 0x08, 0]));
        assert!(is_archive(b"BZh91AY"));
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(3);
        header.set_cksum();
        tar.append_data(&mut header, "Dockerfile", &b"abc"[..])
            .unwrap();
        let bytes = tar.into_inner().unwrap();
        assert!(is_archive(&bytes[..SNIFF_LEN]));
        assert!(!is_archive(b"FROM busybox\n"));
        assert!(!is_archive(b""));
    }
}
