//! Path resolution confined to a root directory.
//!
//! Every FileOp path is interpreted as if `root` were `/`: `..` stops at the root, absolute
//! symlink targets restart at the root, and symlinked parents are followed inside the root.
//! This is the behaviour of containerd's `fs.RootPath`, which BuildKit uses for all of its
//! file actions, and of `openat2(RESOLVE_IN_ROOT)`. Components that do not exist are kept
//! literally so that callers can create them.
//!
//! Resolution is done by walking the path with `lstat`/`readlink`; the directories handled
//! here belong to the build (snapshots), so nothing else modifies them concurrently.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::error::{Error, Result};

/// Linux's limit on symlinks followed while resolving one path (`MAXSYMLINKS` is 40; Go's
/// resolver allows 255). Past it the path is refused rather than resolved.
const MAX_LINKS: usize = 255;

/// Resolves `path` inside `root`, following symlinks in every component including the last.
pub fn resolve(root: &Path, path: impl AsRef<Path>) -> Result<PathBuf> {
    resolve_components(root, path.as_ref(), true)
}

/// Resolves the parent directories of `path` inside `root` but keeps the last component as
/// it is, so that a symlink there can be inspected, replaced or removed rather than followed.
/// A path naming the root itself resolves to the root.
pub(crate) fn resolve_parent(root: &Path, path: impl AsRef<Path>) -> Result<PathBuf> {
    resolve_components(root, path.as_ref(), false)
}

pub use bud_frontend::gopath::clean_abs;

/// The path of `full` as seen from inside `root` (`/a/b`), for messages.
pub fn display(root: &Path, full: &Path) -> String {
    match full.strip_prefix(root) {
        Ok(rel) => format!("/{}", rel.display()),
        Err(_) => full.display().to_string(),
    }
}

fn resolve_components(root: &Path, path: &Path, follow_last: bool) -> Result<PathBuf> {
    // The input is cleaned lexically first, as Go's resolver does: `a/link/..` is `a`.
    let mut pending: VecDeque<OsString> = lexical_components(path.as_os_str()).into();
    let mut resolved: Vec<OsString> = Vec::new();
    let mut links = 0usize;

    while let Some(name) = pending.pop_front() {
        if name == ".." {
            resolved.pop();
            continue;
        }
        let is_last = pending.is_empty();
        if is_last && !follow_last {
            resolved.push(name);
            break;
        }
        let candidate = join_all(root, resolved.iter().chain(std::iter::once(&name)));
        let target = match std::fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.file_type().is_symlink() => {
                std::fs::read_link(&candidate).map_err(|source| Error::Io {
                    op: "readlink",
                    path: display(root, &candidate),
                    error: source,
                })?
            }
            Ok(_) => {
                resolved.push(name);
                continue;
            }
            // Missing (or below a non-directory): kept as is for the caller to create or
            // to fail on with a precise error.
            Err(err) if is_absent(&err) => {
                resolved.push(name);
                continue;
            }
            Err(source) => {
                return Err(Error::Io {
                    op: "lstat",
                    path: display(root, &candidate),
                    error: source,
                });
            }
        };
        links += 1;
        if links > MAX_LINKS {
            return Err(Error::TooManyLinks {
                path: display(root, &join_all(root, resolved.iter())),
            });
        }
        let target_bytes = target.as_os_str().as_bytes();
        if target_bytes.first() == Some(&b'/') {
            resolved.clear();
        }
        // The target's own `..` apply to the resolved prefix, so they are queued as they are.
        for part in raw_components(target.as_os_str()).into_iter().rev() {
            pending.push_front(part);
        }
    }
    Ok(join_all(root, resolved.iter()))
}

/// Whether an error means the path does not exist (possibly below a non-directory).
pub fn is_absent(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

fn join_all<'a>(root: &Path, parts: impl Iterator<Item = &'a OsString>) -> PathBuf {
    let mut out = root.to_path_buf();
    for part in parts {
        out.push(part);
    }
    out
}

/// Components without `.` and empty ones; `..` kept for the resolver to apply.
fn raw_components(path: &OsStr) -> Vec<OsString> {
    path.as_bytes()
        .split(|b| *b == b'/')
        .filter(|part| !part.is_empty() && *part != b".")
        .map(|part| OsStr::from_bytes(part).to_os_string())
        .collect()
}

/// Components after lexical cleaning of `"/" + path`.
fn lexical_components(path: &OsStr) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
    for part in raw_components(path) {
        if part == ".." {
            out.pop();
        } else {
            out.push(part);
        }
    }
    out
}
