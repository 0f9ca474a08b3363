//! `platform-split=` of `type=local` and `type=tar` outputs, as BuildKit's exporters read it.
//!
//! The local exporter puts each platform's files in a directory of its own (`linux_arm64/`)
//! when asked to, and by default when the build has several platforms; with
//! `platform-split=false` every platform's files go into the destination itself, and a file
//! two platforms both have is refused ("cannot overwrite … when split option is disabled")
//! rather than one silently replacing the other. The tar exporter reads the attribute but
//! splits by the number of platforms alone, so a value asking otherwise is refused here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::bail;
use bud_frontend::convert::Platform;

use crate::cli::{Output, OutputKind};

use super::multi::platform_dir;
use super::outputs::Export;

/// Applies `o`'s `platform-split=` to its export `e`, for a build of `platforms` (empty:
/// the host's): a single platform split goes under its platform's directory, several
/// merged are marked so; a tar output asking what BuildKit's tar exporter does not do is
/// refused.
pub(super) fn apply(o: &Output, platforms: &[Platform], e: &mut Export) -> anyhow::Result<()> {
    let several = platforms.len() > 1;
    let Some(split) = o.platform_split() else {
        return Ok(());
    };
    if o.kind == OutputKind::Tar && split != several {
        bail!(
            "platform-split={split}: BuildKit's tar exporter does not honour it (docker build \
             writes a directory per platform into the tarball exactly when the build has \
             several platforms); use type=local,platform-split={split}"
        );
    }
    if let Export::Local {
        dest,
        merge_platforms,
        in_platform_dir,
        ..
    } = e
    {
        match (split, several) {
            (true, false) => {
                let platform = platforms.first().cloned().unwrap_or_else(Platform::host);
                *dest = dest.join(platform_dir(&platform));
                *in_platform_dir = true;
            }
            (false, true) => *merge_platforms = true,
            _ => {}
        }
    }
    Ok(())
}

/// What a path is in a platform's files, for telling which paths two platforms share.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Dir,
    /// A file, symlink or any other non-directory.
    Other,
}

/// Refuses, before anything is written, the platforms' files (`parts`, in the build's
/// order) that cannot all go into one directory: a path that is not a directory in every
/// platform that has it. BuildKit refuses a file two platforms have; a file in one where
/// another has a directory makes its transfer fail part-way, which bud refuses alike.
pub(super) fn check_disjoint(parts: &[(&Platform, &Path)]) -> anyhow::Result<()> {
    let mut seen: BTreeMap<PathBuf, (Kind, &Platform)> = BTreeMap::new();
    for (platform, root) in parts {
        let mut found = Vec::new();
        super::export::collect_paths(root, Path::new(""), &mut found)?;
        for (rel, is_dir) in found {
            let kind = if is_dir { Kind::Dir } else { Kind::Other };
            match seen.get(&rel) {
                Some((Kind::Dir, _)) if kind == Kind::Dir => {}
                Some((_, earlier)) => bail!(
                    "cannot overwrite {} from {earlier} with {platform} when split option is \
                     disabled (platform-split=false)",
                    rel.display()
                ),
                None => {
                    seen.insert(rel, (kind, platform));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platform(p: &str) -> Platform {
        Platform::parse(p).unwrap()
    }

    #[test]
    fn shared_directories_merge_and_shared_files_are_refused() {
        let (amd, arm) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        for (root, name) in [(&amd, "amd"), (&arm, "arm")] {
            std::fs::create_dir_all(root.path().join("out/sub")).unwrap();
            std::fs::write(root.path().join("out/sub").join(name), name).unwrap();
        }
        let (p_amd, p_arm) = (platform("linux/amd64"), platform("linux/arm64"));
        let parts = [(&p_amd, amd.path()), (&p_arm, arm.path())];
        check_disjoint(&parts).unwrap();

        std::fs::write(arm.path().join("out/sub/amd"), "arm").unwrap();
        let err = check_disjoint(&parts).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "cannot overwrite out/sub/amd from linux/amd64 with linux/arm64 when split \
                 option is disabled"
            ),
            "{err}"
        );

        // A directory where the other platform has a file, either way round.
        std::fs::remove_file(arm.path().join("out/sub/amd")).unwrap();
        std::fs::create_dir(arm.path().join("out/sub/amd")).unwrap();
        let err = check_disjoint(&parts).unwrap_err().to_string();
        assert!(err.contains("cannot overwrite out/sub/amd from"), "{err}");
        let err = check_disjoint(&[parts[1], parts[0]])
            .unwrap_err()
            .to_string();
        assert!(err.contains("from linux/arm64 with linux/amd64"), "{err}");
    }
}
