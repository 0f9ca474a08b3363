//! With `--addr` and no `--platform`: the platform the daemon builds for is its default
//! worker's (the first platform of the first worker ListWorkers gives, as BuildKit's frontend
//! takes it), not bud's host's. A `platform-split=true` local output's directory is named
//! after it, as BuildKit's local exporter names it after the result's platform; the two
//! differ only on a daemon of another architecture.

use std::path::PathBuf;

use bud_frontend::convert::Platform;
use bud_proto::types::WorkerRecord;

use crate::cli::BuildOptions;
use crate::remote::RemoteSolver;

use super::multi::platform_dir;
use super::outputs::Export;

/// `exports` with each single-platform split local output's directory named after the
/// daemon's default platform, when `--platform` names none (`outputs` named it after the
/// host's). The daemon is asked for its workers only when there is such an output.
pub(super) async fn name_platform_dirs(
    solver: &RemoteSolver,
    opts: &BuildOptions,
    exports: &[Export],
) -> anyhow::Result<Vec<Export>> {
    let mut exports = exports.to_vec();
    let split = |e: &Export| {
        matches!(
            e,
            Export::Local {
                in_platform_dir: true,
                ..
            }
        )
    };
    if !opts.platforms.is_empty() || !exports.iter().any(split) {
        return Ok(exports);
    }
    let workers = solver.list_workers().await?;
    let Some(daemon) = default_platform(&workers) else {
        return Ok(exports);
    };
    for e in &mut exports {
        rename_platform_dir(e, &Platform::host(), &daemon);
    }
    Ok(exports)
}

/// The daemon's default platform: its first worker's first platform, normalised as BuildKit
/// normalises it (`arm64/v8` is `arm64`).
fn default_platform(workers: &[WorkerRecord]) -> Option<Platform> {
    let p = workers.first()?.platforms.first()?;
    if p.os.is_empty() || p.architecture.is_empty() {
        return None;
    }
    Some(Platform::new(&p.os, &p.architecture, &p.variant))
}

/// Moves a split local output from `from`'s platform directory to `to`'s.
fn rename_platform_dir(e: &mut Export, from: &Platform, to: &Platform) {
    if let Export::Local {
        dest,
        in_platform_dir: true,
        ..
    } = e
        && dest.file_name() == Some(std::ffi::OsStr::new(&platform_dir(from)))
    {
        let parent = dest.parent().map(PathBuf::from).unwrap_or_default();
        *dest = parent.join(platform_dir(to));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bud_proto::pb;

    fn worker(platforms: &[(&str, &str, &str)]) -> WorkerRecord {
        WorkerRecord {
            platforms: platforms
                .iter()
                .map(|(os, architecture, variant)| pb::Platform {
                    os: os.to_string(),
                    architecture: architecture.to_string(),
                    variant: variant.to_string(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_daemon_s_default_platform_is_its_first_worker_s_first() {
        let arm = worker(&[("linux", "arm64", "v8"), ("linux", "amd64", "")]);
        let amd = worker(&[("linux", "amd64", "")]);
        let p = default_platform(&[arm.clone(), amd.clone()]).unwrap();
        assert_eq!(p.to_string(), "linux/arm64");
        assert_eq!(
            default_platform(&[amd, arm]).unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(default_platform(&[]), None);
        assert_eq!(default_platform(&[worker(&[])]), None);
    }

    #[test]
    fn a_split_local_output_is_named_after_the_daemon_s_platform() {
        let host = Platform::new("linux", "amd64", "");
        let daemon = Platform::new("linux", "arm", "v7");
        let local = |dir: &str, in_platform_dir| Export::Local {
            dest: PathBuf::from(dir),
            merge_platforms: false,
            in_platform_dir,
            epoch: None,
        };
        let mut split = local("out/linux_amd64", true);
        rename_platform_dir(&mut split, &host, &daemon);
        assert_eq!(split, local("out/linux_arm_v7", true));
        // A destination the user named so, not split, stays.
        let mut plain = local("out/linux_amd64", false);
        rename_platform_dir(&mut plain, &host, &daemon);
        assert_eq!(plain, local("out/linux_amd64", false));
    }
}
