//! Which platforms this machine runs build steps for: its own, and those whose binaries the
//! kernel hands to an emulator registered in binfmt_misc (QEMU user emulation).
//!
//! As BuildKit does, bud does not trust the registrations it can read but runs a test
//! program for the platform (`elf`), once per process and only when a build needs that
//! platform. The program runs in a chroot holding nothing else: a container's root hides
//! the emulator's own file too, so this passes exactly when the handler was registered with
//! flag F (the interpreter opened at registration), which is what a RUN step needs.

mod elf;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use bud_frontend::convert::Platform;

/// The foreign platforms worth testing on this machine, in the order `bud debug workers`
/// lists them.
const CANDIDATES: &[&str] = &[
    "linux/amd64",
    "linux/386",
    "linux/arm64",
    "linux/arm/v7",
    "linux/arm/v6",
    "linux/riscv64",
    "linux/ppc64le",
];

/// A platform whose steps cannot run here, and what to do about it.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot run {platform} binaries on this machine ({reason}): install QEMU user emulation \
     registered with flag F (`apt-get install qemu-user-static`), or build on a {platform} \
     node with --addr"
)]
pub struct NoEmulator {
    /// The platform a step needs (`linux/arm64`).
    pub platform: String,
    /// What the test program's run showed.
    pub reason: String,
}

/// Whether steps for `platform` run here, testing its emulator (once per process) when it
/// is not this machine's own. `tmp` is a directory bud may write and execute programs in.
pub fn check(platform: &Platform, tmp: &Path) -> Result<(), NoEmulator> {
    let refuse = |reason: String| NoEmulator {
        platform: platform.to_string(),
        reason,
    };
    if platform.os != "linux" {
        return Err(refuse(format!("{} is not Linux", platform.os)));
    }
    if platform.architecture == Platform::host().architecture {
        return Ok(());
    }
    static TESTED: OnceLock<Mutex<HashMap<String, Result<(), String>>>> = OnceLock::new();
    let mut tested = TESTED
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    tested
        .entry(platform.architecture.clone())
        .or_insert_with(|| test_program(&platform.architecture, tmp))
        .clone()
        .map_err(refuse)
}

/// This machine's platform, then every candidate whose test program runs.
pub fn runnable(tmp: &Path) -> Vec<Platform> {
    let host = Platform::host();
    let mut platforms = vec![host.clone()];
    for candidate in CANDIDATES {
        let Ok(platform) = Platform::parse(candidate) else {
            continue;
        };
        if platform != host && check(&platform, tmp).is_ok() {
            platforms.push(platform);
        }
    }
    platforms
}

/// Runs the exit-0 program of `architecture` alone in a chroot under `tmp`.
fn test_program(architecture: &str, tmp: &Path) -> Result<(), String> {
    let program = elf::exit_zero(architecture)
        .ok_or_else(|| format!("bud has no test program for {architecture}"))?;
    let dir = TestDir(tmp.join(crate::solver::snapshots::unique_name()));
    std::fs::create_dir_all(&dir.0).map_err(|e| format!("{}: {e}", dir.0.display()))?;
    let path = dir.0.join("exit0");
    write_executable(&path, &program).map_err(|e| format!("{}: {e}", path.display()))?;
    let output = Command::new(chroot_binary())
        .arg(&dir.0)
        .arg("/exit0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("running chroot: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&output.stderr);
    let said = said.trim();
    tracing::debug!("the {architecture} test program: {} {said}", output.status);
    Err(match output.status.code() {
        // chroot's own codes: the program could not be executed at all.
        Some(126 | 127) => "no binfmt_misc handler with flag F runs its binaries".to_string(),
        _ if said.is_empty() => format!("its test program ended with {}", output.status),
        _ => format!("its test program ended with {}: {said}", output.status),
    })
}

fn write_executable(path: &Path, program: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o755)
        .open(path)?
        .write_all(program)
}

/// coreutils' chroot, where Debian puts it even when PATH lacks the sbin directories.
fn chroot_binary() -> PathBuf {
    ["/usr/sbin/chroot", "/usr/bin/chroot"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("chroot"))
}

struct TestDir(PathBuf);

impl Drop for TestDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            tracing::debug!("removing {}: {e}", self.0.display());
        }
    }
}
