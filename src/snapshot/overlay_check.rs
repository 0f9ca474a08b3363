//! Whether an overlay with its upper and work directories under a given directory mounts.
//!
//! overlayfs being there is not enough: it refuses some upper filesystems only when
//! mounting, overlayfs itself among them (bud's state root on a container's own root
//! filesystem: `EINVAL`), and a user namespace may need options such as `userxattr`. So,
//! as containerd's `overlayutils.Supported` and BuildKit's "auto" snapshotter do, the answer
//! comes from a test mount: two lowers, an upper and a work directory, mounted and unmounted.

use std::path::Path;

use super::overlay::{self, Writable};
use super::{Result, SnapshotError};

/// Test-mounts an overlay whose directories are made in a fresh directory under `dir`, with
/// the extra overlay `options`, and removes it all again. `Err(SnapshotError::Mount)` means
/// overlays do not work there; other errors mean the test itself could not be set up.
pub fn check(dir: &Path, options: &[&str]) -> Result<()> {
    // Named like other work in `tmp/`, so that a process killed here leaves nothing that
    // garbage collection does not remove.
    let scratch = tempfile::Builder::new()
        .prefix(&format!("{}-overlay-check-", std::process::id()))
        .tempdir_in(dir)
        .map_err(|e| SnapshotError::io("creating a directory in", dir, e))?;
    let [lower1, lower2, upper, work, merged] =
        ["lower1", "lower2", "upper", "work", "merged"].map(|d| scratch.path().join(d));
    for d in [&lower1, &lower2, &upper, &work, &merged] {
        std::fs::create_dir(d).map_err(|e| SnapshotError::io("creating", d, e))?;
    }
    let mounted = overlay::mount_with_options(
        &[&lower2, &lower1],
        Some(Writable {
            upper: &upper,
            work: &work,
        }),
        &merged,
        options,
    )?;
    mounted.unmount()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_that_cannot_hold_the_test_is_not_a_mount_failure() {
        let err = check(Path::new("/nonexistent/bud"), &[]).unwrap_err();
        assert!(matches!(err, SnapshotError::Io { .. }), "{err}");
    }
}
