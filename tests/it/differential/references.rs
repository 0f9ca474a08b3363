//! The two reference builds of a case, Docker 20.10's `docker build` and Docker 28.5's (buildx
//! on its BuildKit), made once per case and shared by every bud variant's test: the tests
//! run as threads of one process, and the first to reach a case builds its references while
//! the others wait for them.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, OnceLock};

use super::case::{Case, Reference};
use crate::support::image::{Daemon, Image};
use crate::support::{DOCKER, Docker28, open_to_all};

/// What a build gave: an image, or a rejection with the end of its log.
#[derive(Debug)]
pub enum Outcome {
    Built(Image),
    Rejected(String),
}

/// A case as both references build it.
#[derive(Debug)]
pub struct References {
    pub docker20: Outcome,
    pub docker28: Outcome,
}

impl References {
    pub fn of(&self, reference: Reference) -> &Outcome {
        match reference {
            Reference::Docker20 => &self.docker20,
            Reference::Docker28 => &self.docker28,
        }
    }
}

type Cell = Arc<OnceLock<Result<Arc<References>, String>>>;

/// The references of `case`, built now unless another test already did or is doing it.
pub fn of(case: &Case, docker28: &Docker28) -> Result<Arc<References>, String> {
    static BUILT: OnceLock<Mutex<HashMap<String, Cell>>> = OnceLock::new();
    let cell = BUILT
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(case.name.clone())
        .or_default()
        .clone();
    cell.get_or_init(|| build(case, docker28).map(Arc::new))
        .clone()
}

fn build(case: &Case, docker28: &Docker28) -> Result<References, String> {
    let scratch = tempfile::Builder::new()
        .prefix("bud-diff-ref-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?;
    open_to_all(scratch.path());
    let context = scratch.path().join("context");
    case.prepare(&context)?;
    // The two daemons build side by side: each has its own store and its own BuildKit.
    let (docker20, docker28) = std::thread::scope(|s| {
        let docker20 = s.spawn(|| build_with(case, &context, Daemon::Docker20));
        let docker28 = build_with(case, &context, Daemon::Docker28(docker28));
        (docker20.join(), docker28)
    });
    let docker20 = docker20.map_err(|_| "the Docker 20.10 build panicked".to_string())?;
    Ok(References {
        docker20: docker20?,
        docker28: docker28?,
    })
}

/// Builds the case (its base image first, if it has one) with one daemon and reads the
/// image; the image itself goes, its description stays.
fn build_with(case: &Case, context: &Path, daemon: Daemon<'_>) -> Result<Outcome, String> {
    let name = match daemon {
        Daemon::Docker20 => Reference::Docker20.name(),
        Daemon::Docker28(_) => Reference::Docker28.name(),
    };
    let context_arg = context.to_str().ok_or("non-UTF-8 temp path")?;
    if let Some(base) = case.base_dockerfile() {
        let tag = format!("bud-diff-base/{}", case.name);
        let base = base.to_str().ok_or("non-UTF-8 path")?;
        let out = docker_build(
            case,
            context,
            daemon,
            &["-f", base, "-t", &tag, context_arg],
        );
        if !out.status.success() {
            return Err(format!("{name}: base.Dockerfile: {}", log_end(&out)));
        }
    }
    let tag = format!("bud-diff-ref/{}", case.name);
    let mut args: Vec<&str> = case.args.iter().map(String::as_str).collect();
    args.extend(["-t", &tag, context_arg]);
    let out = docker_build(case, context, daemon, &args);
    if !out.status.success() {
        return Ok(Outcome::Rejected(log_end(&out)));
    }
    let image = Image::read(daemon, &tag).map_err(|e| format!("{name}: {e}"));
    daemon.remove(&[&tag]);
    Ok(Outcome::Built(image?))
}

/// `docker build ARGS…` in the context directory, so that `-f` in `args` is relative to it,
/// with the case's environment.
fn docker_build(case: &Case, context: &Path, daemon: Daemon<'_>, args: &[&str]) -> Output {
    let mut cmd = match daemon {
        Daemon::Docker20 => {
            let mut cmd = Command::new(DOCKER);
            cmd.env("DOCKER_BUILDKIT", "1");
            cmd
        }
        Daemon::Docker28(d) => d.command(),
    };
    cmd.current_dir(context).arg("build").args(args);
    cmd.envs(case.env.iter().map(|(k, v)| (k, v)));
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run docker build: {e}"))
}

/// The last lines of a build's log.
pub fn log_end(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(15);
    lines[start..].join("\n")
}
