//! Shared by the integration tests: what the test environment (scripts/test-env) provides,
//! and the rule that a test needing it fails under CI instead of passing by skipping.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The Debian client; the `docker` earlier on PATH may be a newer one that wants buildx.
pub const DOCKER: &str = "/usr/bin/docker";
/// The base image scripts/test-env builds from busybox-static, in Docker and the open registry.
pub const BASE_IMAGE: &str = "bud-test/busybox:latest";
pub const OPEN_REGISTRY: &str = "127.0.0.1:5000";
pub const AUTH_REGISTRY: &str = "127.0.0.1:5001";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn testdata(case: &str) -> PathBuf {
    repo_root().join("testdata").join(case)
}

/// `bud --root ROOT ARGS…`, run to its end.
pub fn bud_at(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bud"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("run bud")
}

pub fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// What the builds of the test environment need: its base image and runc.
pub fn build_ready() -> bool {
    require_base_image() && require_runc()
}

/// Whether a prerequisite is there. Missing under `CI`, the test fails; elsewhere it says
/// why it did nothing and the caller returns.
pub fn require(what: &str, present: bool) -> bool {
    if present {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{what} is required under CI: run scripts/test-env up");
    }
    eprintln!("skipping: {what} is not available (run scripts/test-env up)");
    false
}

pub fn docker_available() -> bool {
    Path::new(DOCKER).exists()
        && Command::new(DOCKER)
            .args(["version", "--format", "{{.Server.Version}}"])
            .output()
            .is_ok_and(|o| o.status.success())
}

pub fn require_docker() -> bool {
    require("a running Docker daemon", docker_available())
}

pub fn require_base_image() -> bool {
    require_docker()
        && require(
            "the test base image",
            docker(&["image", "inspect", BASE_IMAGE]).status.success(),
        )
}

pub fn require_runc() -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join("runc").is_file()));
    require("runc", found)
}

/// Runs the Debian docker client with BuildKit on.
pub fn docker(args: &[&str]) -> Output {
    Command::new(DOCKER)
        .args(args)
        .env("DOCKER_BUILDKIT", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {DOCKER}: {e}"))
}

/// Runs docker and returns its stdout, failing the test with its stderr otherwise.
pub fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    assert!(
        out.status.success(),
        "docker {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The second reference Docker (Docker 28 with buildx, from Debian unstable's packages, set up
/// by scripts/test-env beside the first): its client, and the daemon and config it uses.
pub struct Docker28 {
    cli: PathBuf,
    host: String,
    config: PathBuf,
}

impl Docker28 {
    /// Where it is: `BUD_TEST_DOCKER28_CLI`, `_HOST` and `_CONFIG` from the environment, else
    /// what `scripts/test-env env` says; or why it is not there.
    fn find() -> Result<Self, String> {
        let settings = match std::env::var("BUD_TEST_DOCKER28_HOST") {
            Ok(_) => std::env::vars().collect(),
            Err(_) => test_env_settings()?,
        };
        if let Some(why) = settings.get("BUD_TEST_DOCKER28_UNAVAILABLE") {
            return Err(why.clone());
        }
        let setting = |name: &str| {
            settings
                .get(name)
                .cloned()
                .ok_or_else(|| format!("{name} is not set (run scripts/test-env up)"))
        };
        let docker = Docker28 {
            cli: setting("BUD_TEST_DOCKER28_CLI")?.into(),
            host: setting("BUD_TEST_DOCKER28_HOST")?,
            config: setting("BUD_TEST_DOCKER28_CONFIG")?.into(),
        };
        if !docker.cli.is_file() {
            return Err(format!(
                "its client {} is missing (run scripts/test-env up)",
                docker.cli.display()
            ));
        }
        let version = docker.run(&["version", "--format", "{{.Server.Version}}"]);
        if !version.status.success() {
            return Err(format!(
                "its daemon at {} does not answer (run scripts/test-env up): {}",
                docker.host,
                stderr_of(&version).trim()
            ));
        }
        Ok(docker)
    }

    /// Its client, reaching its daemon and its buildx plugin whatever the caller's environment.
    pub fn command(&self) -> Command {
        let mut command = Command::new(&self.cli);
        command
            .env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", &self.config)
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .env_remove("DOCKER_CERT_PATH")
            .env_remove("BUILDX_BUILDER");
        command
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.cli.display()))
    }

    /// `docker build ARGS…` (buildx, on the daemon's BuildKit).
    pub fn build(&self, args: &[&str]) -> Output {
        self.command()
            .arg("build")
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.cli.display()))
    }

    /// Runs its client and returns stdout, failing the test with its stderr otherwise.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "docker (second reference) {} failed: {}",
            args.join(" "),
            stderr_of(&out)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

/// The `NAME='VALUE'` lines of `scripts/test-env env`.
fn test_env_settings() -> Result<std::collections::HashMap<String, String>, String> {
    let script = repo_root().join("scripts/test-env");
    let out = Command::new(&script)
        .arg("env")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} env failed: {}",
            script.display(),
            stderr_of(&out).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| {
            let value = value.strip_prefix('\'').unwrap_or(value);
            let value = value.strip_suffix('\'').unwrap_or(value);
            (name.to_string(), value.to_string())
        })
        .collect())
}

/// The second reference Docker; missing under `CI`, the test fails with the reason
/// scripts/test-env gives; elsewhere it says why it did nothing and the caller returns.
pub fn require_docker28() -> Option<Docker28> {
    match Docker28::find() {
        Ok(docker) => Some(docker),
        Err(why) => {
            if std::env::var_os("CI").is_some() {
                panic!("the second reference Docker is required under CI: {why}");
            }
            eprintln!("skipping: the second reference Docker is not available: {why}");
            None
        }
    }
}

/// Starts `bud --root ROOT … CONTEXT` and returns once the build printed `marker`: the step
/// that prints it is then surely running.
pub fn spawn_bud_until(root: &Path, context: &Path, marker: &str) -> std::process::Child {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_bud"))
        .arg("--root")
        .arg(root)
        .args(["--progress", "plain", "-o", "type=tar,dest=/dev/null"])
        .arg(context)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run bud");
    let stderr = child.stderr.take().expect("piped stderr");
    for line in BufReader::new(stderr).lines() {
        if line.map_or(true, |l| l.contains(marker)) {
            break;
        }
    }
    child
}

/// The containers runc knows in a state root's runtime directory.
pub fn runc_containers(root: &Path) -> String {
    let runc_root = root.join("tmp/runtime/runtime");
    if !runc_root.exists() {
        return String::new();
    }
    let list = Command::new("runc")
        .arg("--root")
        .arg(&runc_root)
        .args(["list", "-q"])
        .output()
        .expect("run runc list");
    String::from_utf8_lossy(&list.stdout).trim().to_string()
}

/// Work in flight left in a state root's `tmp/` (the runtime's state directory aside).
pub fn leftover_work(root: &Path) -> Vec<String> {
    std::fs::read_dir(root.join("tmp"))
        .expect("read tmp/")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n != "runtime")
        .collect()
}

/// Builds tests/support/list_identities.c, a static SSH agent client for the steps, to
/// `out`; or says why it cannot.
/// Builds tests/support/namespace_probe.c into `out`, statically.
pub fn build_namespace_probe(out: &Path) -> bool {
    let built = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(out)
        .arg(repo_root().join("tests/support/namespace_probe.c"))
        .status()
        .is_ok_and(|s| s.success());
    require(
        "cc with a static libc (to build the namespace probe)",
        built,
    )
}

pub fn build_list_identities(out: &Path) -> bool {
    let built = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(out)
        .arg(repo_root().join("tests/support/list_identities.c"))
        .status()
        .is_ok_and(|s| s.success());
    require(
        "cc with a static libc (to build the in-step agent client)",
        built,
    )
}

/// Allocated bytes as coreutils' du counts them: an independent measure.
pub fn du_bytes(path: &Path) -> u64 {
    let out = Command::new("du")
        .arg("-s")
        .arg("-B1")
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace().next().unwrap().parse().unwrap()
}
