//! Shared by the executor tests: a busybox root filesystem and the checks for root and runc.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use bud::executor::{ExecSpec, LogChunk, Runtime, RuntimeKind, Stream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub const BUSYBOX: &str = "/bin/busybox";

const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "id", "ls", "touch", "rm", "mkdir", "sleep", "pwd", "hostname", "test",
    "true", "false", "printf", "stat", "ln", "mknod",
];

/// Returns false (after saying why) when the machine cannot run containers; panics instead
/// when `CI` is set, so CI never silently skips.
pub fn can_run_containers() -> bool {
    let missing = if !rustix::process::geteuid().is_root() {
        Some("not running as root".to_owned())
    } else if !Path::new(BUSYBOX).is_file() {
        Some(format!(
            "{BUSYBOX} missing (apt-get install busybox-static)"
        ))
    } else if let Err(e) = Runtime::new(RuntimeKind::Runc, "/nonexistent") {
        Some(e.to_string())
    } else {
        None
    };
    match missing {
        None => true,
        Some(why) if std::env::var_os("CI").is_some() => panic!("cannot run containers: {why}"),
        Some(why) => {
            eprintln!("skipping: {why}");
            false
        }
    }
}

/// A minimal root filesystem: busybox, its applets, a `builder` user (1000:1000).
pub fn busybox_rootfs(dir: &Path) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(BUSYBOX, bin.join("busybox")).unwrap();
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nbuilder:x:1000:1000::/home/builder:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("etc/group"),
        "root:x:0:\nsudo:x:27:builder\nbuilder:x:1000:\n",
    )
    .unwrap();
}

pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub runtime: Runtime,
}

impl Sandbox {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        busybox_rootfs(&dir.path().join("rootfs"));
        let runtime = Runtime::new(RuntimeKind::Runc, dir.path().join("state")).unwrap();
        Self { dir, runtime }
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    pub fn spec(&self, script: &str) -> ExecSpec {
        ExecSpec::new(
            self.rootfs(),
            vec!["/bin/sh".into(), "-c".into(), script.into()],
        )
    }

    /// Runs `exec` and returns its exit code, stdout and stderr.
    pub async fn run(&self, exec: &ExecSpec) -> (i32, String, String) {
        let (tx, mut rx) = mpsc::channel(16);
        let collect = tokio::spawn(async move {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            while let Some(LogChunk { stream, data }) = rx.recv().await {
                match stream {
                    Stream::Stdout => out.extend(data),
                    Stream::Stderr => err.extend(data),
                }
            }
            (out, err)
        });
        let code = self
            .runtime
            .run(exec, tx, &CancellationToken::new())
            .await
            .unwrap();
        let (out, err) = collect.await.unwrap();
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }
}
