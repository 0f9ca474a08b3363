//! The client side of fsutil's walk: which entries of a directory the daemon sees, in the
//! order it expects (Go's `filepath.Walk`: names sorted bytewise, each directory before its
//! contents), with the stat fields fsutil sends.

use std::collections::HashMap;
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use bud_frontend::dockerignore::PatternMatcher;
use bud_frontend::gopath::{clean, matches};
use bud_proto::fsutil::Stat;

/// Go's `os.FileMode` type bits; fsutil sends modes in Go's encoding, not `st_mode`.
mod go_mode {
    pub(super) const DIR: u32 = 1 << 31;
    pub(super) const SYMLINK: u32 = 1 << 27;
    pub(super) const DEVICE: u32 = 1 << 26;
    pub(super) const NAMED_PIPE: u32 = 1 << 25;
    pub(super) const SOCKET: u32 = 1 << 24;
    pub(super) const SETUID: u32 = 1 << 23;
    pub(super) const SETGID: u32 = 1 << 22;
    pub(super) const CHAR_DEVICE: u32 = 1 << 21;
    pub(super) const STICKY: u32 = 1 << 20;
    pub(super) const IRREGULAR: u32 = 1 << 19;
}

/// Converts a Unix `st_mode` to Go's `os.FileMode`.
pub(crate) fn go_file_mode(st_mode: u32) -> u32 {
    let mut mode = st_mode & 0o777;
    mode |= match st_mode & libc_mode::S_IFMT {
        libc_mode::S_IFREG => 0,
        libc_mode::S_IFDIR => go_mode::DIR,
        libc_mode::S_IFLNK => go_mode::SYMLINK,
        libc_mode::S_IFBLK => go_mode::DEVICE,
        libc_mode::S_IFCHR => go_mode::DEVICE | go_mode::CHAR_DEVICE,
        libc_mode::S_IFIFO => go_mode::NAMED_PIPE,
        libc_mode::S_IFSOCK => go_mode::SOCKET,
        _ => go_mode::IRREGULAR,
    };
    if st_mode & 0o4000 != 0 {
        mode |= go_mode::SETUID;
    }
    if st_mode & 0o2000 != 0 {
        mode |= go_mode::SETGID;
    }
    if st_mode & 0o1000 != 0 {
        mode |= go_mode::STICKY;
    }
    mode
}

/// Converts Go's `os.FileMode` back to a permission-and-special-bits mode for chmod.
pub(crate) fn unix_perm(go_mode_bits: u32) -> u32 {
    let mut mode = go_mode_bits & 0o777;
    if go_mode_bits & go_mode::SETUID != 0 {
        mode |= 0o4000;
    }
    if go_mode_bits & go_mode::SETGID != 0 {
        mode |= 0o2000;
    }
    if go_mode_bits & go_mode::STICKY != 0 {
        mode |= 0o1000;
    }
    mode
}

pub(crate) fn is_dir(go_mode_bits: u32) -> bool {
    go_mode_bits & go_mode::DIR != 0
}

pub(crate) fn is_symlink(go_mode_bits: u32) -> bool {
    go_mode_bits & go_mode::SYMLINK != 0
}

/// Whether the mode is a regular file (no type bit set).
pub(crate) fn is_regular(go_mode_bits: u32) -> bool {
    go_mode_bits
        & (go_mode::DIR
            | go_mode::SYMLINK
            | go_mode::DEVICE
            | go_mode::NAMED_PIPE
            | go_mode::SOCKET
            | go_mode::IRREGULAR)
        == 0
}

mod libc_mode {
    pub(super) const S_IFMT: u32 = 0o170000;
    pub(super) const S_IFSOCK: u32 = 0o140000;
    pub(super) const S_IFLNK: u32 = 0o120000;
    pub(super) const S_IFREG: u32 = 0o100000;
    pub(super) const S_IFBLK: u32 = 0o060000;
    pub(super) const S_IFDIR: u32 = 0o040000;
    pub(super) const S_IFCHR: u32 = 0o020000;
    pub(super) const S_IFIFO: u32 = 0o010000;
}

/// What the daemon asked for in the DiffCopy metadata.
#[derive(Debug, Default, Clone)]
pub(crate) struct WalkOptions {
    pub include_patterns: Vec<String>,
    pub exclude_patterns: Vec<String>,
    pub follow_paths: Vec<String>,
}

/// One walked entry: what is sent, and where its content is read from.
#[derive(Debug)]
pub(crate) struct Entry {
    pub stat: Stat,
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum WalkError {
    #[error("invalid exclude patterns: {0}")]
    Patterns(String),
    #[error("{}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: file name is not UTF-8, which the daemon's protocol cannot carry", path.display())]
    NotUtf8 { path: PathBuf },
}

/// Walks `root` and returns the entries to send, in order.
pub(crate) fn walk(root: &Path, opts: &WalkOptions) -> Result<Vec<Entry>, WalkError> {
    let excludes = if opts.exclude_patterns.is_empty() {
        None
    } else {
        Some(
            PatternMatcher::new(&opts.exclude_patterns)
                .map_err(|e| WalkError::Patterns(e.to_string()))?,
        )
    };
    let mut includes: Vec<String> = opts.include_patterns.iter().map(|p| clean(p)).collect();
    if !opts.follow_paths.is_empty() {
        // fsutil adds the follow paths and the targets of their symlinks to the includes,
        // so a symlinked Dockerfile arrives together with the file it points to.
        includes.extend(follow_links(root, &opts.follow_paths));
    }
    let mut walker = Walker {
        includes: (!includes.is_empty()).then_some(includes),
        excludes,
        last_included_dir: None,
        pending_dirs: Vec::new(),
        hardlinks: HashMap::new(),
        entries: Vec::new(),
    };
    walker.walk_dir(root, "")?;
    Ok(walker.entries)
}

struct PendingDir {
    rel: String,
    path: PathBuf,
    meta: Metadata,
    emitted: bool,
}

struct Walker {
    includes: Option<Vec<String>>,
    excludes: Option<PatternMatcher>,
    /// A directory an include pattern matched whole: everything under it is included.
    last_included_dir: Option<String>,
    /// Excluded directories being walked for exceptions: sent only if something inside is.
    pending_dirs: Vec<PendingDir>,
    hardlinks: HashMap<(u64, u64), String>,
    entries: Vec<Entry>,
}

impl Walker {
    fn walk_dir(&mut self, dir: &Path, rel_dir: &str) -> Result<(), WalkError> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| WalkError::Io { path, source }
        };
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            let name = entry.file_name();
            let Ok(name) = name.into_string() else {
                return Err(WalkError::NotUtf8 { path: entry.path() });
            };
            names.push(name);
        }
        // Go sorts names as byte strings; Rust's String order is the same.
        names.sort_unstable();

        for name in names {
            let path = dir.join(&name);
            let rel = if rel_dir.is_empty() {
                name
            } else {
                format!("{rel_dir}/{name}")
            };
            let meta = std::fs::symlink_metadata(&path).map_err(io_err(&path))?;
            let is_dir = meta.is_dir();

            if !self.included(&rel, is_dir) {
                continue;
            }
            if let Some(excludes) = &self.excludes
                && excludes.matches(&rel)
            {
                if is_dir && !excludes.can_skip_excluded_dir(&rel) {
                    self.pending_dirs.push(PendingDir {
                        rel: rel.clone(),
                        path: path.clone(),
                        meta,
                        emitted: false,
                    });
                    self.walk_dir(&path, &rel)?;
                    self.pending_dirs.pop();
                }
                continue;
            }
            self.emit_pending()?;
            self.emit(&rel, &path, &meta)?;
            if is_dir {
                self.walk_dir(&path, &rel)?;
            }
        }
        Ok(())
    }

    /// fsutil's include rule: a path is walked if an include pattern matches it, one of its
    /// parents, or (for a directory) a prefix of the pattern.
    fn included(&mut self, rel: &str, is_dir: bool) -> bool {
        let Some(includes) = &self.includes else {
            return true;
        };
        if let Some(dir) = &self.last_included_dir
            && rel
                .strip_prefix(dir.as_str())
                .is_some_and(|r| r.starts_with('/'))
        {
            return true;
        }
        let mut matched = false;
        let mut partial = true;
        for pattern in includes {
            if let Some(is_partial) = match_prefix(pattern, rel) {
                matched = true;
                if !is_partial {
                    partial = false;
                    break;
                }
            }
        }
        if matched && !partial && is_dir {
            self.last_included_dir = Some(rel.to_string());
        }
        matched
    }

    fn emit_pending(&mut self) -> Result<(), WalkError> {
        for i in 0..self.pending_dirs.len() {
            if self.pending_dirs[i].emitted {
                continue;
            }
            self.pending_dirs[i].emitted = true;
            let PendingDir {
                rel, path, meta, ..
            } = &self.pending_dirs[i];
            let entry = stat(&mut self.hardlinks, rel, path, meta)?;
            self.entries.push(entry);
        }
        Ok(())
    }

    fn emit(&mut self, rel: &str, path: &Path, meta: &Metadata) -> Result<(), WalkError> {
        let entry = stat(&mut self.hardlinks, rel, path, meta)?;
        self.entries.push(entry);
        Ok(())
    }
}

fn stat(
    hardlinks: &mut HashMap<(u64, u64), String>,
    rel: &str,
    path: &Path,
    meta: &Metadata,
) -> Result<Entry, WalkError> {
    let mut stat = Stat {
        path: rel.to_string(),
        mode: go_file_mode(meta.mode()),
        // The daemon owns what it receives: ownership is reset as BuildKit's client does.
        uid: 0,
        gid: 0,
        size: 0,
        mod_time: meta
            .mtime()
            .saturating_mul(1_000_000_000)
            .saturating_add(meta.mtime_nsec()),
        ..Default::default()
    };
    let file_type = meta.file_type();
    if !file_type.is_dir() {
        stat.size = i64::try_from(meta.len()).unwrap_or(i64::MAX);
        if file_type.is_symlink() {
            let target = std::fs::read_link(path).map_err(|source| WalkError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            stat.linkname =
                target
                    .into_os_string()
                    .into_string()
                    .map_err(|_| WalkError::NotUtf8 {
                        path: path.to_path_buf(),
                    })?;
        } else if meta.nlink() > 1 {
            match hardlinks.get(&(meta.dev(), meta.ino())) {
                Some(first) => {
                    stat.linkname = first.clone();
                    stat.size = 0;
                }
                None => {
                    hardlinks.insert((meta.dev(), meta.ino()), rel.to_string());
                }
            }
        }
        if file_type.is_block_device() || file_type.is_char_device() {
            stat.devmajor = i64::from(rustix::fs::major(meta.rdev()));
            stat.devminor = i64::from(rustix::fs::minor(meta.rdev()));
        }
    }
    Ok(Entry {
        stat,
        path: path.to_path_buf(),
    })
}

/// Matches `path` against an include pattern component by component: `None` for no match,
/// `Some(true)` when `path` is a directory on the way to what the pattern names, and
/// `Some(false)` when the pattern matches `path` or one of its parents.
fn match_prefix(pattern: &str, path: &str) -> Option<bool> {
    let pattern_parts: Vec<&str> = pattern.split('/').collect();
    let path_parts: Vec<&str> = path.split('/').collect();
    for (i, part) in path_parts.iter().enumerate() {
        let Some(pat) = pattern_parts.get(i) else {
            return Some(false);
        };
        if !matches(pat, part).unwrap_or(false) {
            return None;
        }
    }
    Some(path_parts.len() < pattern_parts.len())
}

/// The follow paths plus every path their symlink chains pass through, relative to `root`.
fn follow_links(root: &Path, follow: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for p in follow {
        let mut rel = clean(p);
        // A bound on the chain, as the kernel's ELOOP limit is.
        for _ in 0..40 {
            if escapes_root(&rel) {
                break;
            }
            out.push(rel.clone());
            let Ok(target) = std::fs::read_link(root.join(&rel)) else {
                break;
            };
            let Some(target) = target.to_str() else {
                break;
            };
            rel = if let Some(abs) = target.strip_prefix('/') {
                clean(abs)
            } else {
                match rel.rsplit_once('/') {
                    Some((parent, _)) => clean(&format!("{parent}/{target}")),
                    None => clean(target),
                }
            };
            if rel == "." {
                break;
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// A cleaned relative path that leaves the root (`..`, `../x`): fsutil follows no link there.
fn escapes_root(rel: &str) -> bool {
    rel == ".." || rel.starts_with("../")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn paths(entries: &[Entry]) -> Vec<&str> {
        entries.iter().map(|e| e.stat.path.as_str()).collect()
    }

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for d in ["a", "a/b", "c"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        for f in ["a.txt", "a/b/x", "a/y", "c/keep", "c/drop", "z"] {
            std::fs::write(dir.path().join(f), f).unwrap();
        }
        dir
    }

    #[test]
    fn walks_in_go_order_with_parents_first() {
        let dir = tree();
        let entries = walk(dir.path(), &WalkOptions::default()).unwrap();
        assert_eq!(
            paths(&entries),
            [
                "a", "a/b", "a/b/x", "a/y", "a.txt", "c", "c/drop", "c/keep", "z"
            ]
        );
        assert!(is_dir(entries[0].stat.mode));
        assert_eq!(
            entries[0].stat.mode & 0o777,
            std::fs::metadata(dir.path().join("a")).unwrap().mode() & 0o777
        );
        assert!(is_regular(entries[2].stat.mode));
        assert_eq!(entries[2].stat.size, 5);
        assert_eq!(entries[0].stat.size, 0);
    }

    #[test]
    fn excludes_with_exceptions_keep_the_parent() {
        let dir = tree();
        let opts = WalkOptions {
            exclude_patterns: vec!["c".into(), "!c/keep".into(), "a/b".into()],
            ..Default::default()
        };
        let entries = walk(dir.path(), &opts).unwrap();
        assert_eq!(paths(&entries), ["a", "a/y", "a.txt", "c", "c/keep", "z"]);
    }

    #[test]
    fn includes_select_paths_and_their_parents() {
        let dir = tree();
        let opts = WalkOptions {
            include_patterns: vec!["a/b".into(), "*.txt".into()],
            ..Default::default()
        };
        let entries = walk(dir.path(), &opts).unwrap();
        assert_eq!(paths(&entries), ["a", "a/b", "a/b/x", "a.txt"]);
    }

    #[test]
    fn follow_paths_bring_symlink_targets() {
        let dir = tree();
        symlink("a/y", dir.path().join("Dockerfile")).unwrap();
        let opts = WalkOptions {
            include_patterns: vec!["Dockerfile".into()],
            follow_paths: vec!["Dockerfile".into()],
            ..Default::default()
        };
        let entries = walk(dir.path(), &opts).unwrap();
        assert_eq!(paths(&entries), ["Dockerfile", "a", "a/y"]);
        assert!(is_symlink(entries[0].stat.mode));
        assert_eq!(entries[0].stat.linkname, "a/y");
    }

    #[test]
    fn follow_paths_stop_at_links_leaving_the_root() {
        // `../a/y` names a file outside the context, not the context's own `a/y`.
        let dir = tree();
        symlink("../a/y", dir.path().join("Dockerfile")).unwrap();
        let opts = WalkOptions {
            include_patterns: vec!["Dockerfile".into()],
            follow_paths: vec!["Dockerfile".into()],
            ..Default::default()
        };
        let entries = walk(dir.path(), &opts).unwrap();
        assert_eq!(paths(&entries), ["Dockerfile"]);
    }

    #[test]
    fn hardlinks_name_the_first_path() {
        let dir = tree();
        std::fs::hard_link(dir.path().join("z"), dir.path().join("zz")).unwrap();
        let entries = walk(dir.path(), &WalkOptions::default()).unwrap();
        let zz = entries.iter().find(|e| e.stat.path == "zz").unwrap();
        assert_eq!(zz.stat.linkname, "z");
        assert_eq!(zz.stat.size, 0);
    }

    #[test]
    fn go_modes_round_trip_special_bits() {
        assert_eq!(go_file_mode(0o104755), 0o755 | go_mode::SETUID);
        assert_eq!(
            go_file_mode(0o041777),
            0o777 | go_mode::DIR | go_mode::STICKY
        );
        assert_eq!(
            go_file_mode(0o020666),
            0o666 | go_mode::DEVICE | go_mode::CHAR_DEVICE
        );
        assert_eq!(unix_perm(go_file_mode(0o106755)), 0o6755);
    }
}
