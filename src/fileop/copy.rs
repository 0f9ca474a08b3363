//! `FileActionCopy`: Docker's COPY/ADD semantics, after fsutil's copy package.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::error::{Error, Result};
use super::meta::{self, MODE_BITS, io_error};
use super::safe::{self, clean_abs, display, is_absent};
use super::symbolic_mode::SymbolicMode;
use super::{CopyAction, CopyFilter, Owner, unpack, wildcard};

/// At most this much per `copy_file_range` call (the kernel caps one call near 2 GiB).
const COPY_CHUNK: usize = 1 << 30;

/// Mode of destination directories created for a copy when no mode is given.
const DEFAULT_DIR_MODE: u32 = 0o755;

/// Runs a copy action from `src_root` into `dest_root`.
///
/// Destination rules: a `dest` ending in `/`, or naming an existing directory, receives the
/// source inside it under its base name; otherwise `dest` is the new name. With
/// `dir_copy_contents`, a source directory's contents are merged into `dest`.
pub fn copy(src_root: &Path, dest_root: &Path, action: &CopyAction<'_>) -> Result<()> {
    let src_path = clean_path(&action.src);
    let dest_path = clean_path(&action.dest);

    if !action.create_dest_path {
        let resolved = safe::resolve(dest_root, &action.dest)?;
        let parent = match resolved.parent() {
            Some(parent) if resolved != dest_root => parent,
            _ => dest_root,
        };
        if let Err(source) = std::fs::symlink_metadata(parent) {
            return Err(Error::DestParentMissing {
                path: action.dest.clone(),
                error: source,
            });
        }
    }

    let sources = if action.allow_wildcard {
        let found = wildcard::resolve(src_root, &src_path, action.follow_symlinks)?;
        if found.is_empty() {
            if action.allow_empty_wildcard {
                return Ok(());
            }
            return Err(Error::SourceNotFound { path: src_path });
        }
        found
    } else {
        vec![src_path]
    };

    for src in &sources {
        if action.attempt_unpack_docker_compatibility
            && unpack::unpack_if_archive(
                src_root,
                src,
                dest_root,
                &dest_path,
                action.owner,
                action.timestamp,
            )?
        {
            continue;
        }
        copy_one(src_root, src, dest_root, &dest_path, action)?;
    }
    Ok(())
}

/// BuildKit's `cleanPath`: absolute and clean, but a trailing `/` or `/.` is kept since it
/// changes the meaning of a destination.
fn clean_path(path: &str) -> String {
    let mut cleaned = clean_abs(path);
    if path.ends_with("/.") {
        if cleaned != "/" {
            cleaned.push('/');
        }
        cleaned.push('.');
    } else if path.ends_with('/') && cleaned != "/" {
        cleaned.push('/');
    }
    cleaned
}

/// Go's `filepath.Base`: the last element, ignoring trailing slashes.
fn base_name(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/";
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed)
}

fn copy_one(
    src_root: &Path,
    src: &str,
    dest_root: &Path,
    dest: &str,
    action: &CopyAction<'_>,
) -> Result<()> {
    let dir_mode = action.mode.unwrap_or(DEFAULT_DIR_MODE) & 0o777;
    let mut created = Vec::new();

    // The directory part of `dest` (all of it when it ends in `/` or `/.`) must exist.
    let ensure = match dest.rfind('/') {
        Some(cut) if !matches!(&dest[cut + 1..], "" | ".") => &dest[..=cut],
        _ => dest,
    };
    if !ensure.is_empty() {
        let resolved = safe::resolve(dest_root, ensure)?;
        created.extend(meta::mkdir_all(
            dest_root,
            &resolved,
            dir_mode,
            action.owner,
            action.timestamp,
        )?);
    }

    let dest_resolved = safe::resolve(dest_root, clean_abs(dest))?;
    let src_followed = if action.follow_symlinks {
        safe::resolve(src_root, src)?
    } else {
        safe::resolve_parent(src_root, src)?
    };

    let src_meta = match std::fs::symlink_metadata(&src_followed) {
        Ok(meta) => meta,
        Err(err) if is_absent(&err) => {
            return Err(Error::SourceNotFound {
                path: clean_abs(src),
            });
        }
        Err(source) => return Err(io_error("lstat", src_root, &src_followed)(source)),
    };
    let dest_meta = match std::fs::metadata(&dest_resolved) {
        Ok(meta) => Some(meta),
        Err(err) if is_absent(&err) => None,
        Err(source) => return Err(io_error("stat", dest_root, &dest_resolved)(source)),
    };

    let src_is_dir = src_meta.is_dir();
    let dest_is_dir = dest_meta.as_ref().is_some_and(Metadata::is_dir);
    let mut target = dest_resolved;
    if (!action.dir_copy_contents && src_is_dir && dest_meta.is_some())
        || (!src_is_dir && dest_is_dir)
    {
        let base = base_name(src);
        if base != "/" && base != "." {
            target.push(base);
        }
    }
    let target_parent = if action.dir_copy_contents && src_is_dir && dest_meta.is_none() {
        target.clone()
    } else {
        match target.parent() {
            Some(parent) if target != dest_root => parent.to_path_buf(),
            _ => dest_root.to_path_buf(),
        }
    };
    created.extend(meta::mkdir_all(
        dest_root,
        &target_parent,
        dir_mode,
        action.owner,
        action.timestamp,
    )?);

    let mut copier = Copier {
        src_root,
        dest_root,
        owner: action.owner.or(action.source_owner),
        mode: action.mode,
        symbolic_mode: action.symbolic_mode.as_ref(),
        timestamp: action.timestamp,
        filter: action.filter,
        always_replace: action.always_replace_existing_dest_paths,
        inodes: HashMap::new(),
        pending_dirs: Vec::new(),
        try_reflink: true,
        try_copy_range: true,
    };
    copier.copy_entry(&src_followed, "", &target, false, false)?;

    // Creating entries inside the parents changed their mtime after it was stamped.
    if let Some(ts) = action.timestamp {
        for dir in created.iter().rev() {
            meta::set_timestamp(dest_root, dir, ts)?;
        }
    }
    Ok(())
}

/// A source directory whose destination is created only once something below it is
/// copied (include patterns such as `a/*/c` must not create `a/b` for nothing).
struct PendingDir {
    src: PathBuf,
    dest: PathBuf,
    copied: bool,
}

struct Copier<'a> {
    src_root: &'a Path,
    dest_root: &'a Path,
    owner: Option<Owner>,
    mode: Option<u32>,
    symbolic_mode: Option<&'a SymbolicMode>,
    timestamp: Option<i64>,
    filter: CopyFilter<'a>,
    always_replace: bool,
    /// Source (device, inode) of multiply-linked files to their first copy, so hardlinks
    /// inside the copied tree stay hardlinks.
    inodes: HashMap<(u64, u64), PathBuf>,
    pending_dirs: Vec<PendingDir>,
    /// Cleared once the file systems refuse a reflink, so that it is not asked per file.
    try_reflink: bool,
    /// Cleared once `copy_file_range` fails with an error that means "never for this pair".
    try_copy_range: bool,
}

impl Copier<'_> {
    /// Copies `src` to `target`. `rel` is the path below the copied source (empty for the
    /// source itself), which the filter decides on. `overwrite_meta` is false only for the
    /// top-level entry, whose existing destination directory keeps its metadata.
    /// `in_new_dir` says that `target`'s parent was created empty by this copy, so nothing
    /// can be at `target` yet.
    fn copy_entry(
        &mut self,
        src: &Path,
        rel: &str,
        target: &Path,
        overwrite_meta: bool,
        in_new_dir: bool,
    ) -> Result<()> {
        let (include, excluded) = if rel.is_empty() {
            (true, false)
        } else {
            let included = self.filter.include.is_none_or(|f| f(rel));
            let excluded = self.filter.exclude.is_some_and(|f| f(rel));
            (included && !excluded, excluded)
        };
        if !include && self.filter.include.is_none() && !self.filter.descend_excluded_dirs {
            return Ok(());
        }

        let src_meta =
            std::fs::symlink_metadata(src).map_err(io_error("lstat", self.src_root, src))?;
        let file_type = src_meta.file_type();
        if !include && !file_type.is_dir() {
            return Ok(());
        }
        let mut target_meta = if in_new_dir {
            None
        } else {
            match std::fs::symlink_metadata(target) {
                Ok(meta) => Some(meta),
                Err(err) if is_absent(&err) => None,
                Err(source) => return Err(io_error("lstat", self.dest_root, target)(source)),
            }
        };

        if include {
            if self.remove_target_if_needed(target, &src_meta, target_meta.as_ref())? {
                target_meta = None;
            }
            self.create_pending_dirs(overwrite_meta)?;
        }
        if !file_type.is_dir() {
            // Only included entries get here, and nothing else writes below the target's
            // parent meanwhile: what was seen above is what is there.
            self.ensure_empty_file_target(target, target_meta.as_ref())?;
        }

        let mut copy_info = include;
        let mut restore_times = false;
        if file_type.is_dir() {
            let created = self.copy_directory(
                src,
                rel,
                target,
                &src_meta,
                overwrite_meta,
                include,
                excluded,
            )?;
            if !overwrite_meta {
                copy_info = created;
                restore_times = !created;
            }
        } else if file_type.is_file() {
            if self.copy_file(src, target, &src_meta)? {
                copy_info = false;
            }
        } else if file_type.is_symlink() {
            let link = std::fs::read_link(src).map_err(io_error("readlink", self.src_root, src))?;
            std::os::unix::fs::symlink(&link, target).map_err(io_error(
                "symlink",
                self.dest_root,
                target,
            ))?;
        } else if file_type.is_block_device()
            || file_type.is_char_device()
            || file_type.is_fifo()
            || file_type.is_socket()
        {
            make_node(self.dest_root, target, &src_meta)?;
        }

        if copy_info {
            self.apply_metadata(src, target, &src_meta)?;
        } else if restore_times && target_meta.is_some() {
            self.apply_times(target, &src_meta)?;
        }
        Ok(())
    }

    /// Returns whether `target` was removed.
    fn remove_target_if_needed(
        &self,
        target: &Path,
        src: &Metadata,
        existing: Option<&Metadata>,
    ) -> Result<bool> {
        let Some(existing) = existing else {
            return Ok(false);
        };
        if !self.always_replace || (src.is_dir() && existing.is_dir()) {
            return Ok(false);
        }
        remove_all(self.dest_root, target, existing)?;
        Ok(true)
    }

    /// A file replaces an existing file or symlink (never writing through it), but not a
    /// directory. `existing` is what `lstat(target)` returned.
    fn ensure_empty_file_target(&self, target: &Path, existing: Option<&Metadata>) -> Result<()> {
        match existing {
            Some(meta) if meta.is_dir() => Err(Error::ReplaceDirWithFile {
                path: display(self.dest_root, target),
            }),
            Some(_) => {
                std::fs::remove_file(target).map_err(io_error("remove", self.dest_root, target))
            }
            None => Ok(()),
        }
    }

    fn create_pending_dirs(&mut self, overwrite_meta: bool) -> Result<()> {
        for i in 0..self.pending_dirs.len() {
            if self.pending_dirs[i].copied {
                continue;
            }
            let src = self.pending_dirs[i].src.clone();
            let dest = self.pending_dirs[i].dest.clone();
            let src_meta =
                std::fs::metadata(&src).map_err(io_error("stat", self.src_root, &src))?;
            if copy_directory_only(self.dest_root, &dest, &src_meta, overwrite_meta)? {
                self.apply_metadata(&src, &dest, &src_meta)?;
            }
            self.pending_dirs[i].copied = true;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn copy_directory(
        &mut self,
        src: &Path,
        rel: &str,
        dest: &Path,
        src_meta: &Metadata,
        overwrite_meta: bool,
        include: bool,
        excluded: bool,
    ) -> Result<bool> {
        let mut created = false;
        if include {
            created = copy_directory_only(self.dest_root, dest, src_meta, overwrite_meta)?;
        }
        if excluded && !self.filter.descend_excluded_dirs {
            return Ok(false);
        }
        self.pending_dirs.push(PendingDir {
            src: src.to_path_buf(),
            dest: dest.to_path_buf(),
            copied: include,
        });

        let mut names = Vec::new();
        for entry in std::fs::read_dir(src).map_err(io_error("open", self.src_root, src))? {
            names.push(
                entry
                    .map_err(io_error("readdirent", self.src_root, src))?
                    .file_name(),
            );
        }
        // Go's ReadDir order, so that the first of a set of hardlinks is the same one.
        names.sort();
        let result = names.iter().try_for_each(|name| {
            let child_rel = match name.to_str() {
                Some(name) if rel.is_empty() => name.to_owned(),
                Some(name) => format!("{rel}/{name}"),
                None => {
                    let lossy = name.to_string_lossy();
                    if rel.is_empty() {
                        lossy.into_owned()
                    } else {
                        format!("{rel}/{lossy}")
                    }
                }
            };
            self.copy_entry(&src.join(name), &child_rel, &dest.join(name), true, created)
        });
        self.pending_dirs.pop();
        result?;
        Ok(created)
    }

    /// Copies a regular file's content. Returns whether its metadata was applied too (the
    /// usual case, through the open descriptors); a hardlink to an earlier copy gets it by
    /// path from the caller.
    fn copy_file(&mut self, src: &Path, target: &Path, meta: &Metadata) -> Result<bool> {
        if meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.inodes.get(&key) {
                std::fs::hard_link(first, target).map_err(io_error(
                    "link",
                    self.dest_root,
                    target,
                ))?;
                return Ok(false);
            }
            self.inodes.insert(key, target.to_path_buf());
        }
        let mut input = std::fs::File::open(src).map_err(io_error("open", self.src_root, src))?;
        // create_new: the target was just removed, so anything there now is not ours to
        // write through.
        let mut output = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(target)
            .map_err(io_error("open", self.dest_root, target))?;
        self.copy_content(&mut input, &mut output, meta.len())
            .map_err(io_error("copy", self.dest_root, target))?;

        let owner = match self.owner {
            Some(owner) => (owner.uid, owner.gid),
            None => (meta.uid(), meta.gid()),
        };
        let mode = self.mode_of(meta);
        let times = match self.timestamp {
            Some(ts) => {
                let ts = meta::timespec_from_nanos(ts);
                (ts, ts)
            }
            None => meta::times_of(meta),
        };
        meta::set_file_info(self.dest_root, target, &output, owner, mode, times)?;
        meta::copy_xattrs_fd(&input, &output, target);
        Ok(true)
    }

    /// Copies `input` into the empty `output`: a reflink where the file system shares
    /// extents (btrfs, XFS), else `copy_file_range` (in-kernel, and server-side on NFS),
    /// else `sendfile`; each is given up for the rest of the copy once it says it cannot
    /// work between these file systems (an overlay destination over another file system
    /// gives EXDEV). `len` is only a hint: a file that grows or shrinks is copied to its
    /// end.
    fn copy_content(&mut self, input: &mut File, output: &mut File, len: u64) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        if self.try_reflink {
            match rustix::fs::ioctl_ficlone(&*output, &*input) {
                Ok(()) => return Ok(()),
                Err(e) if unsupported_between(e) => self.try_reflink = false,
                // Anything else (e.g. ranges not aligned to blocks) leaves the copy to the
                // next method.
                Err(_) => {}
            }
        }
        if self.try_copy_range {
            let mut copied = 0u64;
            loop {
                match rustix::fs::copy_file_range(&*input, None, &*output, None, COPY_CHUNK) {
                    Ok(0) => return Ok(()),
                    Ok(n) => copied += n as u64,
                    Err(e) if copied == 0 && unsupported_between(e) => {
                        self.try_copy_range = false;
                        break;
                    }
                    Err(rustix::io::Errno::INTR) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        // Both descriptors are still at offset 0 here.
        let mut copied = 0u64;
        loop {
            match rustix::fs::sendfile(&*output, &*input, None, COPY_CHUNK) {
                Ok(0) => return Ok(()),
                Ok(n) => copied += n as u64,
                Err(e) if copied == 0 && unsupported_between(e) => break,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        io::copy(input, output).map(drop)
    }

    /// The mode of the copy of an entry whose source has `src_meta`.
    fn mode_of(&self, src_meta: &Metadata) -> u32 {
        let source = src_meta.mode() & MODE_BITS;
        match (self.symbolic_mode, self.mode) {
            (Some(symbolic), _) => symbolic.apply(source, src_meta.is_dir()),
            (None, Some(mode)) => mode & MODE_BITS,
            (None, None) => source,
        }
    }

    /// Owner, mode, times and xattrs of a copied entry (`copyFileInfo` + `copyXAttrs`).
    fn apply_metadata(&self, src: &Path, target: &Path, src_meta: &Metadata) -> Result<()> {
        let (uid, gid) = match self.owner {
            Some(owner) => (owner.uid, owner.gid),
            None => (src_meta.uid(), src_meta.gid()),
        };
        meta::lchown(self.dest_root, target, uid, gid)?;
        if !src_meta.file_type().is_symlink() {
            meta::chmod(self.dest_root, target, self.mode_of(src_meta))?;
        }
        self.apply_times(target, src_meta)?;
        meta::copy_xattrs(src, target);
        Ok(())
    }

    fn apply_times(&self, target: &Path, src_meta: &Metadata) -> Result<()> {
        match self.timestamp {
            Some(ts) => meta::set_timestamp(self.dest_root, target, ts),
            None => meta::copy_times(self.dest_root, target, src_meta),
        }
    }
}

/// Creates directory `dest` for a source directory. Returns whether it was created; an
/// existing directory only takes the source mode when `overwrite_meta` is set.
fn copy_directory_only(
    root: &Path,
    dest: &Path,
    src_meta: &Metadata,
    overwrite_meta: bool,
) -> Result<bool> {
    match std::fs::symlink_metadata(dest) {
        Ok(existing) if !existing.is_dir() => Err(Error::CopyToNonDir {
            path: display(root, dest),
        }),
        Ok(_) => {
            if overwrite_meta {
                meta::chmod(root, dest, src_meta.mode())?;
            }
            Ok(false)
        }
        Err(err) if is_absent(&err) => {
            std::fs::create_dir(dest).map_err(io_error("mkdir", root, dest))?;
            Ok(true)
        }
        Err(source) => Err(io_error("lstat", root, dest)(source)),
    }
}

/// Errors of reflink and `copy_file_range` that mean the pair of file systems (or the kernel)
/// does not do it, as opposed to a failure of this one file.
fn unsupported_between(e: rustix::io::Errno) -> bool {
    use rustix::io::Errno;
    matches!(
        e,
        Errno::XDEV | Errno::OPNOTSUPP | Errno::NOSYS | Errno::NOTTY | Errno::INVAL | Errno::PERM
    )
}

fn remove_all(root: &Path, path: &Path, meta: &Metadata) -> Result<()> {
    // remove_dir_all does not follow symlinks, and a symlink is not a directory here.
    if meta.is_dir() {
        std::fs::remove_dir_all(path).map_err(io_error("remove", root, path))
    } else {
        std::fs::remove_file(path).map_err(io_error("remove", root, path))
    }
}

pub(crate) fn make_node(root: &Path, target: &Path, meta: &Metadata) -> Result<()> {
    let mode = meta.mode();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        target,
        rustix::fs::FileType::from_raw_mode(mode),
        rustix::fs::Mode::from_raw_mode(mode & MODE_BITS),
        meta.rdev(),
    )
    .map_err(|errno| io_error("mknod", root, target)(errno.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_path_keeps_directory_markers() {
        assert_eq!(clean_path("a/b/"), "/a/b/");
        assert_eq!(clean_path("a/b/."), "/a/b/.");
        assert_eq!(clean_path("/"), "/");
        assert_eq!(clean_path("/."), "/.");
        assert_eq!(clean_path("../x"), "/x");
    }

    #[test]
    fn base_name_like_go() {
        assert_eq!(base_name("/a/b/"), "b");
        assert_eq!(base_name("/a/b/."), ".");
        assert_eq!(base_name("/"), "/");
        assert_eq!(base_name("f.txt"), "f.txt");
    }
}
