//! `bud --addr docker-container://NAME`: the connection is a Docker exec of
//! `buildctl dial-stdio` in the container, its stdin and stdout carrying HTTP/2 gRPC, and
//! the session tunnelled through Control.Session.
//!
//! There is no BuildKit image in the test environment, so the container is a faithful
//! stand-in: the base image with the Docker socket mounted and a static `buildctl` whose
//! `dial-stdio` relays dockerd's embedded BuildKit (support/buildctl_dial_stdio.c). Every
//! byte bud sends and receives still goes through the exec, as with a real buildkitd.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::*;

const DIAL_STDIO_C: &str = include_str!("support/buildctl_dial_stdio.c");

/// A value unique to this run: names that cannot collide, content the cache cannot answer.
fn nonce() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!("{}-{}", std::process::id(), t.as_nanos())
}

/// Compiles the stand-in `buildctl` into `dir`, or says why it cannot.
fn build_buildctl(dir: &Path) -> Option<PathBuf> {
    let source = dir.join("buildctl.c");
    std::fs::write(&source, DIAL_STDIO_C).unwrap();
    let binary = dir.join("buildctl");
    let built = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(&binary)
        .arg(&source)
        .status()
        .is_ok_and(|s| s.success());
    require(
        "cc with a static libc (to build the stand-in buildctl)",
        built,
    )
    .then_some(binary)
}

/// A container of the base image, removed (with its image, if any) when dropped.
struct Container {
    name: String,
    image: Option<String>,
}

impl Container {
    /// Creates `bud-test-dc-…`; `run` starts it, `socket` mounts Docker's socket in it.
    fn create(socket: bool) -> Self {
        let name = format!("bud-test-dc-{}", nonce());
        let mut args = vec!["create", "--name", &name];
        if socket {
            args.extend(["-v", "/var/run/docker.sock:/var/run/docker.sock"]);
        }
        args.extend([BASE_IMAGE, "sleep", "3600"]);
        docker_ok(&args);
        Self { name, image: None }
    }

    fn start(self) -> Self {
        docker_ok(&["start", &self.name]);
        self
    }

    /// A running container whose `buildctl dial-stdio` reaches dockerd's BuildKit.
    fn builder(buildctl: &Path) -> Self {
        let c = Self::create(true);
        let dest = format!("{}:/bin/buildctl", c.name);
        docker_ok(&["cp", buildctl.to_str().unwrap(), &dest]);
        c.start()
    }

    fn addr(&self) -> String {
        format!("docker-container://{}", self.name)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        docker(&["rm", "-f", &self.name]);
        if let Some(image) = &self.image {
            docker(&["rmi", "-f", image]);
        }
    }
}

fn bud(addr: &str, args: &[&str], docker_host: Option<&str>) -> Output {
    let root = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bud"));
    cmd.arg("--root")
        .arg(root.path())
        .args(["--addr", addr])
        .args(args);
    match docker_host {
        Some(host) => cmd.env("DOCKER_HOST", host),
        None => cmd.env_remove("DOCKER_HOST"),
    };
    cmd.output().expect("run bud")
}

/// bud's stderr for a build at `addr` that must fail before it starts.
fn failed_build(addr: &str, docker_host: Option<&str>) -> String {
    let context = tempfile::tempdir().unwrap();
    small_context(context.path(), "never built\n");
    let out = bud(addr, &[context.path().to_str().unwrap()], docker_host);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "bud succeeded: {stderr}");
    stderr
}

fn small_context(dir: &Path, content: &str) {
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM {BASE_IMAGE}\n\
             COPY app.txt /app/\n\
             RUN cp /app/app.txt /app/ran && echo ran >> /app/ran\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("app.txt"), content).unwrap();
}

#[test]
fn builds_into_docker_through_the_container() {
    if !require_base_image() {
        return;
    }
    let tools = tempfile::tempdir().unwrap();
    let Some(buildctl) = build_buildctl(tools.path()) else {
        return;
    };
    let mut builder = Container::builder(&buildctl);
    let tag = format!("bud-test-dc-img:{}", nonce());
    builder.image = Some(tag.clone());

    let context = tempfile::tempdir().unwrap();
    let content = format!("built through the exec {}\n", nonce());
    small_context(context.path(), &content);
    // DOCKER_HOST, when set, names the API the exec goes through.
    let out = bud(
        &builder.addr(),
        &[
            "--progress",
            "plain",
            "-t",
            &tag,
            context.path().to_str().unwrap(),
        ],
        Some("unix:///var/run/docker.sock"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bud failed: {stderr}");
    // The RUN step ran on the daemon, after the context came through the session.
    assert!(stderr.contains("RUN cp /app/app.txt"), "{stderr}");

    let ran = docker_ok(&["run", "--rm", &tag, "cat", "/app/ran"]);
    assert_eq!(ran, format!("{content}ran"));
}

#[test]
fn a_missing_container_is_named() {
    if !require_docker() {
        return;
    }
    let addr = format!("docker-container://bud-test-dc-absent-{}", nonce());
    let err = failed_build(&addr, None);
    assert!(err.contains(&format!("{addr}: no such container")), "{err}");
}

#[test]
fn a_stopped_container_is_refused() {
    if !require_base_image() {
        return;
    }
    let stopped = Container::create(true);
    let err = failed_build(&stopped.addr(), None);
    assert!(
        err.contains(&format!("{}: the container is not running", stopped.addr())),
        "{err}"
    );
    assert!(
        err.contains(&format!("docker start {}", stopped.name)),
        "{err}"
    );
}

#[test]
fn a_container_without_buildctl_is_refused() {
    if !require_base_image() {
        return;
    }
    let plain = Container::create(false).start();
    let err = failed_build(&plain.addr(), None);
    assert!(
        err.contains(&format!(
            "{}: buildctl is not installed in the container",
            plain.addr()
        )),
        "{err}"
    );
    // Docker's own words come along.
    assert!(err.contains("executable file not found"), "{err}");
}

#[test]
fn docker_host_names_the_docker_api() {
    if !require_base_image() {
        return;
    }
    let tools = tempfile::tempdir().unwrap();
    let Some(buildctl) = build_buildctl(tools.path()) else {
        return;
    };
    // The container exists on the default socket; a DOCKER_HOST elsewhere is still obeyed.
    let builder = Container::builder(&buildctl);
    let missing = tools.path().join("no-docker.sock");
    let host = format!("unix://{}", missing.display());
    let err = failed_build(&builder.addr(), Some(&host));
    assert!(err.contains(&format!("DOCKER_HOST={host}")), "{err}");

    // tcp:// too: nothing listens on this port, and the error says where bud looked.
    let err = failed_build(&builder.addr(), Some("tcp://127.0.0.1:1"));
    assert!(
        err.contains("cannot reach Docker at DOCKER_HOST=tcp://127.0.0.1:1"),
        "{err}"
    );
    assert!(err.contains("Connection refused"), "{err}");
}

/// A directory holding a `kubectl` stand-in (a shell script running `body`), for PATH.
fn fake_kubectl(dir: &Path, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt as _;
    let script = dir.join("kubectl");
    std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = std::env::var("PATH").unwrap_or_default();
    format!("{}:{path}", dir.display())
}

fn bud_with_path(addr: &str, path: &str, args: &[&str]) -> Output {
    let root = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_bud"))
        .arg("--root")
        .arg(root.path())
        .args(["--addr", addr])
        .args(args)
        .env("PATH", path)
        .output()
        .expect("run bud")
}

/// `kube-pod://` runs `kubectl exec -i POD -- buildctl dial-stdio` with buildx's arguments
/// and speaks HTTP/2 over it. No cluster here: the `kubectl` stand-in records its arguments
/// and runs the stand-in `buildctl dial-stdio`, which relays dockerd's BuildKit, as the
/// real one in the pod relays buildkitd's socket.
#[test]
fn builds_through_kubectl_exec_in_a_pod() {
    if !require_base_image() {
        return;
    }
    let tools = tempfile::tempdir().unwrap();
    let Some(buildctl) = build_buildctl(tools.path()) else {
        return;
    };
    let args_file = tools.path().join("kubectl.args");
    let path = fake_kubectl(
        tools.path(),
        &format!(
            "printf '%s\\n' \"$@\" >> {}\nexec {} dial-stdio",
            args_file.display(),
            buildctl.display()
        ),
    );
    let context = tempfile::tempdir().unwrap();
    let content = format!("built through kubectl {}\n", nonce());
    small_context(context.path(), &content);
    let out_dir = tempfile::tempdir().unwrap();
    let dest = format!("type=local,dest={}", out_dir.path().display());
    let out = bud_with_path(
        "kube-pod://buildkitd-0?context=ci&namespace=builds&container=buildkitd",
        &path,
        &[
            "--progress",
            "plain",
            "-o",
            &dest,
            context.path().to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bud failed: {stderr}");
    // The RUN step ran on the daemon, after the context came through the session.
    assert_eq!(
        std::fs::read_to_string(out_dir.path().join("app/ran")).unwrap(),
        format!("{content}ran\n")
    );
    let recorded = std::fs::read_to_string(&args_file).unwrap();
    let first: Vec<&str> = recorded.lines().take(9).collect();
    assert_eq!(
        first,
        [
            "--context=ci",
            "--namespace=builds",
            "exec",
            "-i",
            "--container=buildkitd",
            "buildkitd-0",
            "--",
            "buildctl",
            "dial-stdio"
        ],
        "{recorded}"
    );
}

/// What kubectl says when it cannot reach the pod comes with the error, and the build
/// fails at once.
#[test]
fn kubectl_s_own_error_is_shown() {
    let tools = tempfile::tempdir().unwrap();
    let path = fake_kubectl(
        tools.path(),
        "echo 'Error from server (NotFound): pods \"gone\" not found' >&2\nexit 1",
    );
    let context = tempfile::tempdir().unwrap();
    small_context(context.path(), "never built\n");
    let out = bud_with_path(
        "kube-pod://gone",
        &path,
        &[context.path().to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("kube-pod://gone: kubectl ended before the daemon answered: Error from server (NotFound): pods \"gone\" not found"),
        "{stderr}"
    );
}
