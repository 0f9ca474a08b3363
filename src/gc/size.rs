//! Disk usage of a directory tree, as `du` counts it: allocated blocks, hard links once.

use std::collections::HashSet;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Bytes allocated to `root` and everything under it (st_blocks × 512), without following
/// symlinks, counting each hard-linked inode once and staying on `root`'s filesystem (a
/// mount left in a dead process's work is not what that work takes). A missing `root` uses
/// nothing.
pub fn disk_usage(root: &Path) -> io::Result<u64> {
    let meta = match std::fs::symlink_metadata(root) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let root_dev = meta.dev();
    let mut seen = HashSet::new();
    let mut total = allocated(&meta, &mut seen);
    if !meta.is_dir() {
        return Ok(total);
    }
    let mut stack: Vec<PathBuf> = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let meta = entry.metadata()?;
            total += allocated(&meta, &mut seen);
            if meta.is_dir() && meta.dev() == root_dev {
                stack.push(entry.path());
            }
        }
    }
    Ok(total)
}

fn allocated(meta: &std::fs::Metadata, seen: &mut HashSet<(u64, u64)>) -> u64 {
    if !meta.is_dir() && meta.nlink() > 1 && !seen.insert((meta.dev(), meta.ino())) {
        return 0;
    }
    meta.blocks() * 512
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_blocks_and_hard_links_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("t");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a"), vec![1u8; 10_000]).unwrap();
        std::fs::hard_link(root.join("sub/a"), root.join("b")).unwrap();
        std::os::unix::fs::symlink("/usr", root.join("link")).unwrap();
        let expected: u64 = [
            root.clone(),
            root.join("sub"),
            root.join("sub/a"),
            root.join("link"),
        ]
        .iter()
        .map(|p| std::fs::symlink_metadata(p).unwrap().blocks() * 512)
        .sum();
        assert_eq!(disk_usage(&root).unwrap(), expected);
        assert!(expected >= 10_000);
        assert_eq!(disk_usage(&dir.path().join("missing")).unwrap(), 0);
    }
}
