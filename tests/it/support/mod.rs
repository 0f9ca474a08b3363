//! Shared by the integration tests: what the test environment (scripts/test-env) provides,
//! and the rule that a test needing it fails under CI instead of passing by skipping.
#![allow(dead_code)]

pub mod context_servers;
pub mod daemon_proxy;
pub mod executor;
pub mod fileop;
pub mod image;
pub mod listing;
pub mod registry_proxy;
pub mod same_image;
pub mod users_copy;

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

/// Removes the images `tags` name from Docker 20.10. Two removals of tags of one image at
/// once can fail in dockerd with "unrecognized image ID" although both tags go: the test
/// fails only if a tag is still there.
pub fn remove_images(tags: &[&str]) {
    let mut args = vec!["image", "rm"];
    args.extend_from_slice(tags);
    let out = docker(&args);
    if out.status.success() {
        return;
    }
    for tag in tags {
        assert!(
            !docker(&["image", "inspect", tag]).status.success(),
            "docker image rm {tag} failed and the image is still there: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
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
    /// Its daemon's address, a DOCKER_HOST value.
    pub host: String,
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

    /// The third daemon: Docker 28.5 with the containerd image store (BuildKit's own image
    /// exporters, an index of several platforms under one tag), reached with the same client
    /// at `BUD_TEST_DOCKER28C8D_HOST`; or why it is not there.
    fn find_containerd_store() -> Result<Self, String> {
        let settings = match std::env::var("BUD_TEST_DOCKER28C8D_HOST") {
            Ok(_) => std::env::vars().collect(),
            Err(_) => test_env_settings()?,
        };
        let host = settings
            .get("BUD_TEST_DOCKER28C8D_HOST")
            .cloned()
            .ok_or("BUD_TEST_DOCKER28C8D_HOST is not set (run scripts/test-env up)")?;
        let docker = Docker28 {
            host,
            ..Docker28::find()?
        };
        let store = docker.run(&["info", "--format", "{{json .DriverStatus}}"]);
        if !store.status.success() {
            return Err(format!(
                "its daemon at {} does not answer (run scripts/test-env up): {}",
                docker.host,
                stderr_of(&store).trim()
            ));
        }
        if !String::from_utf8_lossy(&store.stdout).contains("io.containerd.snapshotter.v1") {
            return Err(format!(
                "its daemon at {} does not keep its images in containerd (run scripts/test-env \
                 down, then up)",
                docker.host
            ));
        }
        Ok(docker)
    }

    /// Its daemon's address (`DOCKER_HOST`), for bud's `--addr docker://`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Its client's `DOCKER_CONFIG` (whose `cli-plugins/` has buildx).
    pub fn config(&self) -> &Path {
        &self.config
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

/// Docker 28.5 with the containerd image store, as [`require_docker28`] requires the second
/// reference: missing under `CI`, the test fails with the reason.
pub fn require_docker28_containerd() -> Option<Docker28> {
    match Docker28::find_containerd_store() {
        Ok(docker) => Some(docker),
        Err(why) => {
            if std::env::var_os("CI").is_some() {
                panic!("Docker 28.5 with the containerd image store is required under CI: {why}");
            }
            eprintln!(
                "skipping: Docker 28.5 with the containerd image store is not available: {why}"
            );
            None
        }
    }
}

/// The daemon of the test environment whose BuildKit runs `oci-layout://` sources:
/// BuildKit's own workers register that source, moby's classic one does not, so it is the
/// Docker 28.5 with the containerd image store. The one place to change when another daemon
/// can. Missing under `CI`, the test fails.
pub fn require_oci_layout_daemon() -> Option<Docker28> {
    require_docker28_containerd()
}

/// Starts `bud --root ROOT … CONTEXT` and returns once the build printed `marker`: the step
/// that prints it is then surely running.
pub fn spawn_bud_until(root: &Path, context: &Path, marker: &str) -> std::process::Child {
    spawn_until(
        Command::new(env!("CARGO_BIN_EXE_bud")),
        root,
        context,
        marker,
    )
}

/// [`spawn_bud_until`] with `bud` started by `cmd` (as another user, say).
pub fn spawn_until(
    mut cmd: Command,
    root: &Path,
    context: &Path,
    marker: &str,
) -> std::process::Child {
    use std::io::{BufRead, BufReader};
    let mut child = cmd
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

/// Starts `bud --root ROOT --progress plain ARGS…` (with `env` added) and returns once its
/// progress printed `marker`, with the lines read so far.
pub fn spawn_bud_args_until(
    root: &Path,
    args: &[&str],
    env: &[(&str, &Path)],
    marker: &str,
) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_bud"))
        .arg("--root")
        .arg(root)
        .args(["--progress", "plain"])
        .args(args)
        .envs(env.iter().copied())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run bud");
    let stderr = child.stderr.take().expect("piped stderr");
    let mut seen = String::new();
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        seen.push_str(&line);
        seen.push('\n');
        if line.contains(marker) {
            break;
        }
    }
    (child, seen)
}

/// Waits for `child`, killing it first if it is still running after `limit`: a test of a
/// hang fails instead of hanging. Not a measure of time: `limit` is far beyond what the
/// process should take.
pub fn wait_or_kill(
    mut child: std::process::Child,
    limit: std::time::Duration,
) -> std::process::ExitStatus {
    let _watchdog = Watchdog::new(child.id(), limit);
    child.wait().expect("wait for bud")
}

/// `bud --root ROOT --progress plain ARGS…` with `env` added, run to its end, or killed
/// after `limit` (see [`wait_or_kill`]).
pub fn bud_within(
    root: &Path,
    args: &[&str],
    env: &[(&str, &Path)],
    limit: std::time::Duration,
) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_bud"))
        .arg("--root")
        .arg(root)
        .args(["--progress", "plain"])
        .args(args)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run bud");
    let _watchdog = Watchdog::new(child.id(), limit);
    child.wait_with_output().expect("wait for bud")
}

/// Kills a process with SIGKILL unless dropped within its limit.
struct Watchdog {
    done: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    fn new(pid: u32, limit: std::time::Duration) -> Watchdog {
        let (done, waiting) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = waiting.recv_timeout(limit) {
                eprintln!("process {pid} still runs after {limit:?}: killing it");
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        });
        Watchdog {
            done: Some(done),
            thread: Some(thread),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        if let Some(done) = self.done.take() {
            let _ = done.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A TCP listener on the loopback interface that accepts connections and never answers:
/// a registry (or web server) that hangs. Its connections stay open while the process runs.
pub fn silent_listener() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    addr
}

/// A `bud.toml` for `BUD_CONFIG` with short network timeouts, so that a test of a silent
/// server ends soon.
pub fn short_timeouts_config(dir: &Path) -> PathBuf {
    let path = dir.join("bud.toml");
    std::fs::write(
        &path,
        "[network]\nconnect_timeout = \"2s\"\nresponse_timeout = \"2s\"\nidle_timeout = \"2s\"\n",
    )
    .unwrap();
    path
}

/// The OCI bundles left in a state root's runtime directory.
pub fn leftover_bundles(root: &Path) -> Vec<String> {
    match std::fs::read_dir(root.join("tmp/runtime/bundles")) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
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

/// Builds tests/it/support/list_identities.c, a static SSH agent client for the steps, to
/// `out`; or says why it cannot.
/// Builds tests/it/support/namespace_probe.c into `out`, statically.
pub fn build_namespace_probe(out: &Path) -> bool {
    let built = Command::new("cc")
        .args(["-static", "-O2", "-o"])
        .arg(out)
        .arg(repo_root().join("tests/it/support/namespace_probe.c"))
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
        .arg(repo_root().join("tests/it/support/list_identities.c"))
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

/// The test environment's ordinary users (scripts/test-env): one in the `docker` group with
/// subordinate ids, so bud runs rootless; one in `docker` without them, so bud falls back to
/// Docker's BuildKit.
pub const ROOTLESS_USER: &str = "bud-alice";
pub const PLAIN_USER: &str = "bud-bob";

/// A user's uid and home directory, from /etc/passwd.
pub fn user_entry(name: &str) -> Option<(u32, PathBuf)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.len() >= 7 && fields[0] == name)
            .then(|| Some((fields[2].parse().ok()?, PathBuf::from(fields[5]))))
            .flatten()
    })
}

pub fn require_user(name: &str) -> bool {
    require(
        &format!("the test user {name}"),
        user_entry(name).is_some() && Path::new("/usr/bin/setpriv").exists(),
    )
}

/// `program` run as `user` with its groups and home, the rest of the environment kept (as a
/// user's shell would have it, minus root's XDG directories).
pub fn command_as(user: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let (_, home) = user_entry(user).unwrap_or_else(|| panic!("no user {user}"));
    let mut cmd = Command::new("/usr/bin/setpriv");
    cmd.args(["--reuid", user, "--regid", user, "--init-groups", "--"])
        .arg(program)
        .env("HOME", home)
        .env("USER", user)
        .env("LOGNAME", user)
        .env_remove("XDG_DATA_HOME")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_RUNTIME_DIR");
    cmd
}

/// `bud ARGS…` as `user`, run to its end.
pub fn bud_as(user: &str, args: &[&str]) -> Output {
    bud_command_as(user).args(args).output().expect("run bud")
}

/// A command running bud as `user`.
pub fn bud_command_as(user: &str) -> Command {
    command_as(user, bud_for_users())
}

/// The bud under test where any user can run it: the build's own may sit below a directory
/// only root may enter (a clone in /root). One copy per build of bud, kept while a test
/// process uses it (`users_copy`).
pub fn bud_for_users() -> &'static Path {
    static COPY: std::sync::OnceLock<(PathBuf, std::fs::File)> = std::sync::OnceLock::new();
    let (copy, _lock) = COPY.get_or_init(|| {
        let dir = std::env::temp_dir().join("bud-for-users");
        std::fs::create_dir_all(&dir).expect("create the users' bud directory");
        open_to_all(&dir);
        users_copy::shared_copy(Path::new(env!("CARGO_BIN_EXE_bud")), &dir)
    });
    copy
}

/// A temporary directory `user` owns, for a state root, a context or an output.
pub fn user_dir(user: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    open_to_all(dir.path());
    chown_to(user, dir.path());
    dir
}

/// A copy of `testdata/CASE` that `user` owns.
pub fn user_context(user: &str, case: &str) -> tempfile::TempDir {
    let dir = user_dir(user);
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", testdata(case).display()))
        .arg(dir.path())
        .status()
        .expect("run cp");
    assert!(status.success(), "copy testdata/{case}");
    chown_to(user, dir.path());
    dir
}

/// Gives `path` (recursively) to `user`, so that its bud can write there.
pub fn chown_to(user: &str, path: &Path) {
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{user}:{user}"))
        .arg(path)
        .status()
        .expect("run chown");
    assert!(status.success(), "chown {user} {}", path.display());
}

/// Lets every user into `path` (a temporary directory is private to root).
pub fn open_to_all(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Whether the tests run as root; needed to mount filesystems. Not root under `CI`, the test
/// fails.
pub fn require_root(why: &str) -> bool {
    require(
        &format!("root ({why})"),
        rustix::process::geteuid().is_root(),
    )
}

/// A filesystem mounted by a test, detached when dropped (also when the test fails).
pub struct Mounted {
    target: PathBuf,
}

impl Mounted {
    /// A tmpfs of `size` bytes on `target`: a small disk the test can fill.
    pub fn tmpfs(target: &Path, size: u64) -> Self {
        std::fs::create_dir_all(target).unwrap();
        let options = std::ffi::CString::new(format!("size={size}")).unwrap();
        rustix::mount::mount(
            "bud-test",
            target,
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            options.as_c_str(),
        )
        .unwrap_or_else(|e| panic!("mounting a tmpfs on {}: {e}", target.display()));
        Self {
            target: target.to_owned(),
        }
    }

    /// A ramfs on `target`: a filesystem without xattrs.
    pub fn ramfs(target: &Path) -> Self {
        std::fs::create_dir_all(target).unwrap();
        rustix::mount::mount(
            "bud-test",
            target,
            "ramfs",
            rustix::mount::MountFlags::empty(),
            c"",
        )
        .unwrap_or_else(|e| panic!("mounting a ramfs on {}: {e}", target.display()));
        Self {
            target: target.to_owned(),
        }
    }

    /// An overlay of an empty lower directory with upper and work directories in `scratch`,
    /// on `target`: a filesystem like a container's own root.
    pub fn overlay(scratch: &Path, target: &Path) -> Self {
        let dirs = ["lower", "upper", "work"].map(|d| scratch.join(d));
        for d in dirs.iter().chain([&target.to_path_buf()]) {
            std::fs::create_dir_all(d).unwrap();
        }
        let options = std::ffi::CString::new(format!(
            "lowerdir={},upperdir={},workdir={}",
            dirs[0].display(),
            dirs[1].display(),
            dirs[2].display()
        ))
        .unwrap();
        rustix::mount::mount(
            "bud-test",
            target,
            "overlay",
            rustix::mount::MountFlags::empty(),
            options.as_c_str(),
        )
        .unwrap_or_else(|e| panic!("mounting an overlay on {}: {e}", target.display()));
        Self {
            target: target.to_owned(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.target
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = rustix::mount::unmount(&self.target, rustix::mount::UnmountFlags::DETACH);
    }
}

/// Fills the filesystem of `file`'s directory by writing `file` until no byte fits.
pub fn fill_disk(file: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(file).unwrap();
    for chunk in [1 << 20, 4096, 1] {
        let data = vec![0u8; chunk];
        loop {
            match f.write_all(&data) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("filling {}: {e}", file.display()),
            }
        }
    }
    let st = rustix::fs::statvfs(file.parent().unwrap()).unwrap();
    assert_eq!(st.f_bfree, 0, "{} is not full", file.display());
}

/// `GET http://127.0.0.1:5000/v2/PATH` (a manifest, an index or a blob) with curl, as a
/// registry client reads what was pushed; manifests are asked for in any of their types.
pub fn registry_get(path: &str) -> Vec<u8> {
    let out = Command::new("curl")
        .args(["-fsSL", "-H"])
        .arg(
            "Accept: application/vnd.oci.image.index.v1+json, \
             application/vnd.oci.image.manifest.v1+json, \
             application/vnd.docker.distribution.manifest.list.v2+json, \
             application/vnd.docker.distribution.manifest.v2+json",
        )
        .arg(format!("http://{OPEN_REGISTRY}/v2/{path}"))
        .output()
        .expect("run curl");
    assert!(out.status.success(), "GET /v2/{path}: {}", stderr_of(&out));
    out.stdout
}

/// The JSON document at `/v2/PATH` of the open registry.
pub fn registry_json(path: &str) -> serde_json::Value {
    serde_json::from_slice(&registry_get(path))
        .unwrap_or_else(|e| panic!("/v2/{path} is not JSON: {e}"))
}

/// The content of the file at `path` (as the layer names it, without a leading `/`) in the
/// gzip layer blob `blob`; None when the layer has no such file.
pub fn file_in_gzip_layer(blob: &[u8], path: &str) -> Option<Vec<u8>> {
    let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(blob));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap().to_string_lossy() == path {
            let mut content = Vec::new();
            std::io::Read::read_to_end(&mut entry, &mut content).unwrap();
            return Some(content);
        }
    }
    None
}

/// The SHA-256 of `bytes`, in hex (a digest without its `sha256:`).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Checks that `entry`, a descriptor of an image index, is the attestation manifest of the
/// image manifest `image_digest` as BuildKit lists it: an OCI manifest for the platform
/// `unknown/unknown` whose `vnd.docker.reference.type` annotation is `attestation-manifest`
/// and whose `vnd.docker.reference.digest` is the image's.
pub fn assert_attestation_entry(entry: &serde_json::Value, image_digest: &str) {
    assert_eq!(
        entry["mediaType"], "application/vnd.oci.image.manifest.v1+json",
        "{entry}"
    );
    assert_eq!(entry["platform"]["os"], "unknown", "{entry}");
    assert_eq!(entry["platform"]["architecture"], "unknown", "{entry}");
    let annotations = &entry["annotations"];
    assert_eq!(
        annotations["vnd.docker.reference.type"], "attestation-manifest",
        "{entry}"
    );
    assert_eq!(
        annotations["vnd.docker.reference.digest"], image_digest,
        "{entry}"
    );
}

/// `bud --root ROOT --addr docker:// build --progress plain ARGS… CONTEXT` on `host`.
pub fn bud_addr(host: &str, root: &Path, args: &[&str], context: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bud"))
        .arg("--root")
        .arg(root)
        .args(["--addr", "docker://", "build", "--progress", "plain"])
        .args(args)
        .arg(context)
        .env("DOCKER_HOST", host)
        .output()
        .expect("run bud")
}
