//! One `build` command line run by the references and by bud, and the images compared as the
//! differential suite compares them (config a Dockerfile decides, history, layers,
//! filesystem): for build contexts the builders fetch themselves (git and http URLs).
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

use super::image::{Daemon, Image};
use super::listing;
use super::{DOCKER, Docker28, stderr_of};

/// Who builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builder {
    /// `/usr/bin/docker build` (Docker 20.10's BuildKit).
    Docker20,
    /// Docker 28.5's buildx, the reference bud follows.
    Docker28,
    /// bud with the embedded solver.
    Bud,
    /// bud with `--addr docker://` (Docker 20.10's BuildKit).
    BudAddr,
}

/// Runs `build ARGS -t TAG` with `builder`; bud keeps its cache in `root`.
pub fn build(
    builder: Builder,
    docker28: &Docker28,
    root: &Path,
    tag: &str,
    args: &[&str],
) -> Output {
    let mut cmd = match builder {
        Builder::Docker20 => {
            let mut cmd = Command::new(DOCKER);
            cmd.env("DOCKER_BUILDKIT", "1").arg("build");
            cmd
        }
        Builder::Docker28 => {
            let mut cmd = docker28.command();
            cmd.arg("build");
            cmd
        }
        Builder::Bud | Builder::BudAddr => {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_bud"));
            cmd.arg("--root").arg(root).args(["--progress", "plain"]);
            if builder == Builder::BudAddr {
                cmd.args(["--addr", "docker://"]);
            }
            cmd
        }
    };
    cmd.args(["-t", tag]).args(args);
    cmd.output().expect("run a build")
}

/// Builds `args` with each of `builders` and asserts that each image is Docker 28.5's.
pub fn assert_same_image(docker28: &Docker28, builders: &[Builder], args: &[&str]) {
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let root = tempfile::tempdir().unwrap();
    // Tests run side by side on the same daemons: each comparison has its own tag.
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let tag = format!(
        "bud-test/remote-context-{}-{call}:latest",
        std::process::id()
    );
    let tag = tag.as_str();
    let read = |builder: Builder| -> Image {
        let out = build(builder, docker28, root.path(), tag, args);
        assert!(
            out.status.success(),
            "{builder:?} build {args:?}: {}",
            stderr_of(&out)
        );
        let daemon = match builder {
            Builder::Docker28 => Daemon::Docker28(docker28),
            _ => Daemon::Docker20,
        };
        let image = Image::read(daemon, tag).unwrap_or_else(|e| panic!("{builder:?}: {e}"));
        daemon.remove(&[tag]);
        image
    };
    let want = read(Builder::Docker28);
    for &builder in builders {
        let got = read(builder);
        assert_eq!(got.config, want.config, "{builder:?} {args:?}: config");
        assert_eq!(got.history, want.history, "{builder:?} {args:?}: history");
        assert_eq!(got.layers, want.layers, "{builder:?} {args:?}: layers");
        let diff = listing::differences(
            &want.filesystem,
            &got.filesystem,
            ("docker 28.5", &format!("{builder:?}")),
            20,
        );
        assert!(
            diff.is_empty(),
            "{builder:?} {args:?}:\n{}",
            diff.join("\n")
        );
    }
}
