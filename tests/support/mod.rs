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
