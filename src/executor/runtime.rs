//! Drives an OCI runtime binary (`runc run`) for one step and cleans up after it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{ExecError, ExecSpec, LogChunk, Result, Stream, etc, spec};
use crate::cache::meta::LeaseOwner;

/// The OCI runtimes bud knows how to drive; both take runc's command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuntimeKind {
    /// runc, the default, as Docker's and BuildKit's.
    #[default]
    Runc,
    /// crun, chosen with `BUD_RUNTIME=crun` or `[worker] runtime`.
    Crun,
}

impl RuntimeKind {
    /// The executable's file name, looked up on `PATH` and then the sbin directories.
    pub fn binary_name(self) -> &'static str {
        match self {
            Self::Runc => "runc",
            Self::Crun => "crun",
        }
    }
}

impl FromStr for RuntimeKind {
    type Err = ExecError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "runc" => Ok(Self::Runc),
            "crun" => Ok(Self::Crun),
            other => Err(ExecError::UnknownRuntime(other.to_owned())),
        }
    }
}

/// Directories searched after PATH: runc is installed in /usr/sbin, often not in a user's PATH.
const EXTRA_BIN_DIRS: [&str; 4] = ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/local/bin"];

fn find_binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_BIN_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| {
            rustix::fs::access(candidate, rustix::fs::Access::EXEC_OK).is_ok()
                && candidate.is_file()
        })
}

/// While a step runs, retry `kill` this often until the container exists.
const KILL_RETRY: Duration = Duration::from_millis(20);
/// How many times a dead build's container is killed and deleted before giving up.
const ORPHAN_TRIES: usize = 50;

/// An OCI runtime with its own state directory, so that several bud processes (and tests)
/// never see each other's containers.
#[derive(Debug, Clone)]
pub struct Runtime {
    binary: PathBuf,
    state_dir: PathBuf,
}

impl Runtime {
    /// Finds `kind`'s binary; containers' state and bundles go under `state_dir`.
    pub fn new(kind: RuntimeKind, state_dir: impl Into<PathBuf>) -> Result<Self> {
        let name = kind.binary_name();
        let binary = find_binary(name).ok_or_else(|| ExecError::RuntimeNotFound {
            name: name.to_owned(),
        })?;
        Ok(Self::with_binary(binary, state_dir))
    }

    /// Uses the runtime binary at `binary` (runc-compatible command line).
    pub fn with_binary(binary: impl Into<PathBuf>, state_dir: impl Into<PathBuf>) -> Self {
        Self {
            binary: binary.into(),
            state_dir: state_dir.into(),
        }
    }

    /// Full path of the runtime's executable (named in errors and by `bud debug workers`).
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// The runtime's `--root`: where it keeps the state of running containers.
    pub fn state_root(&self) -> PathBuf {
        self.state_dir.join("runtime")
    }

    fn bundles_dir(&self) -> PathBuf {
        self.state_dir.join("bundles")
    }

    /// Removes the containers and bundles that a bud process killed with SIGKILL left
    /// behind (their IDs carry the owner's pid and start time), so that a later build starts
    /// clean.
    pub async fn reap_orphans(&self) {
        // The runtime keeps a directory per container under its root, named by its ID (runc's
        // layout and crun's): read those rather than `runc list`, which was seen to list
        // nothing, under load, while a killed build's container still ran.
        for id in dir_names(&self.state_root()) {
            if owner_is_gone(&id) {
                tracing::info!("removing container {id} of a bud process that is gone");
                self.remove_orphan(&id).await;
            }
        }
        for bundle in dir_names(&self.bundles_dir()) {
            if owner_is_gone(&bundle) {
                let _ = std::fs::remove_dir_all(self.bundles_dir().join(bundle));
            }
        }
    }

    /// Kills and deletes a container whose bud is gone. Its `runc run`, orphaned too, deletes
    /// it as well once its process dies: until the container's state is gone, kill and
    /// delete again (a few times, then say so).
    async fn remove_orphan(&self, id: &str) {
        let state = self.state_root().join(id);
        for _ in 0..ORPHAN_TRIES {
            for args in [["kill", id, "KILL"].as_slice(), &["delete", "--force", id]] {
                let _ = self.command().args(args).output().await;
            }
            if !state.exists() {
                return;
            }
            tokio::time::sleep(KILL_RETRY).await;
        }
        tracing::warn!("container {id} of a bud process that is gone could not be removed");
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root").arg(self.state_root());
        cmd
    }

    /// Runs `exec` to completion and returns its exit code. Output is sent to `logs` as it
    /// comes; a closed receiver only discards it. When `cancel` fires the container is killed
    /// and [`ExecError::Cancelled`] returned. The container and its bundle are removed in all
    /// cases.
    pub async fn run(
        &self,
        exec: &ExecSpec,
        logs: mpsc::Sender<LogChunk>,
        cancel: &CancellationToken,
    ) -> Result<i32> {
        if cancel.is_cancelled() {
            return Err(ExecError::Cancelled);
        }
        let id = container_id();
        let bundle = self.bundles_dir().join(&id);
        let mut container = ContainerGuard::new(
            LiveContainer {
                binary: self.binary.clone(),
                state_root: self.state_root(),
                bundle: bundle.clone(),
            },
            &id,
        );
        write_bundle(&bundle, exec)?;

        let mut child = self
            .command()
            .arg("run")
            .arg("--bundle")
            .arg(&bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| ExecError::Spawn {
                runtime: self.binary.clone(),
                source,
            })?;
        let pumps = [
            child
                .stdout
                .take()
                .map(|out| tokio::spawn(pump(out, Stream::Stdout, logs.clone()))),
            child
                .stderr
                .take()
                .map(|err| tokio::spawn(pump(err, Stream::Stderr, logs))),
        ];

        let waited = tokio::select! {
            status = child.wait() => Some(status),
            () = cancel.cancelled() => None,
        };
        let cancelled = waited.is_none();
        let status = match waited {
            Some(status) => status,
            None => {
                self.kill(&id, &mut child).await;
                child.wait().await
            }
        };
        for pump in pumps.into_iter().flatten() {
            // A pump only ends at EOF; a panic in it is not the step's failure.
            let _ = pump.await;
        }
        container.armed = false;
        self.delete(&id).await;
        remove_bundle(&bundle);

        let status = status.map_err(|source| ExecError::Spawn {
            runtime: self.binary.clone(),
            source,
        })?;
        if cancelled {
            return Err(ExecError::Cancelled);
        }
        match status.code() {
            Some(code) => Ok(code),
            None => Err(ExecError::RuntimeKilled {
                runtime: self.binary.clone(),
                signal: std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0),
            }),
        }
    }

    /// Kills the container's processes. `runc kill` fails until the container is created, so
    /// it is retried until it succeeds or `runc run` has exited on its own.
    async fn kill(&self, id: &str, child: &mut tokio::process::Child) {
        loop {
            let killed = self
                .command()
                .args(["kill", id, "KILL"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await
                .is_ok_and(|s| s.success());
            if killed {
                return;
            }
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) => tokio::time::sleep(KILL_RETRY).await,
            }
        }
    }

    async fn delete(&self, id: &str) {
        // `runc run` deletes the container when it exits normally; this covers the rest.
        let _ = self
            .command()
            .args(["delete", "--force", id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
    }
}

/// Whether the bud process that made container (or bundle) `id` is gone: its pid no longer
/// runs, or runs a later process (pids wrap around, at 32,768 by default, within hours on a
/// busy CI machine), told by the start time the id carries.
fn owner_is_gone(id: &str) -> bool {
    let mut parts = id.strip_prefix("bud-").unwrap_or_default().split('-');
    let Some(pid) = parts.next().and_then(|pid| pid.parse::<u32>().ok()) else {
        return false;
    };
    if pid == std::process::id() {
        return false;
    }
    match parts.next().and_then(|s| s.strip_prefix('s')) {
        Some(start) => match start.parse::<i64>() {
            Ok(start_time) => !LeaseOwner {
                pid: i64::from(pid),
                start_time,
            }
            .is_alive(),
            Err(_) => false,
        },
        // An id of an earlier bud, which carried no start time.
        None => !Path::new(&format!("/proc/{pid}")).exists(),
    }
}

/// The names of the entries of `dir` (none if it cannot be read).
fn dir_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `bud-PID-sSTART-NANOS-N`: this process's pid and start time (so that a later build can
/// tell that it is gone), then what makes the id unique within it.
fn container_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static OWNER: std::sync::OnceLock<LeaseOwner> = std::sync::OnceLock::new();
    let owner = OWNER.get_or_init(LeaseOwner::current);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "bud-{}-s{}-{:08x}-{}",
        owner.pid,
        owner.start_time,
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn write_bundle(bundle: &Path, exec: &ExecSpec) -> Result<()> {
    std::fs::create_dir_all(bundle).map_err(|e| ExecError::io("creating", bundle, e))?;
    let hosts = bundle.join("hosts");
    let hostname = exec.hostname.as_deref().unwrap_or(spec::DEFAULT_HOSTNAME);
    std::fs::write(&hosts, etc::hosts_file(hostname, &exec.extra_hosts))
        .map_err(|e| ExecError::io("writing", &hosts, e))?;
    let resolv_conf = bundle.join("resolv.conf");
    std::fs::write(&resolv_conf, etc::resolv_conf(exec.network))
        .map_err(|e| ExecError::io("writing", &resolv_conf, e))?;
    let config = bundle.join("config.json");
    spec::oci_spec(exec, &hosts, &resolv_conf)?
        .save(&config)
        .map_err(|e| ExecError::io("writing", &config, std::io::Error::other(e)))
}

fn remove_bundle(bundle: &Path) {
    if let Err(e) = std::fs::remove_dir_all(bundle) {
        tracing::warn!("removing bundle {}: {e}", bundle.display());
    }
}

async fn pump(mut pipe: impl AsyncRead + Unpin, stream: Stream, logs: mpsc::Sender<LogChunk>) {
    let mut buf = vec![0u8; 32 * 1024];
    let mut open = true;
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                // Keep draining after the receiver is gone so the process never blocks on a
                // full pipe.
                if open {
                    let chunk = LogChunk {
                        stream,
                        data: buf[..n].to_vec(),
                    };
                    open = logs.send(chunk).await.is_ok();
                }
            }
        }
    }
}

/// What it takes to remove a container of this process.
#[derive(Clone)]
struct LiveContainer {
    binary: PathBuf,
    state_root: PathBuf,
    bundle: PathBuf,
}

impl LiveContainer {
    /// Kills and deletes the container and removes its bundle; blocking.
    fn remove_now(&self, id: &str) {
        for args in [vec!["kill", id, "KILL"], vec!["delete", "--force", id]] {
            let _ = std::process::Command::new(&self.binary)
                .arg("--root")
                .arg(&self.state_root)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        if self.bundle.exists() {
            remove_bundle(&self.bundle);
        }
    }
}

/// The containers of this process, by ID, from their creation until their step's end, so
/// that a process that must exit before its steps have ended removes them first.
static LIVE_CONTAINERS: Mutex<BTreeMap<String, LiveContainer>> = Mutex::new(BTreeMap::new());

/// Kills and deletes every container this process still runs, and removes their bundles.
/// For a process about to exit without waiting for its steps (a second signal, a build
/// that did not stop in time): a container outlives `runc run`, so it would keep running
/// under init otherwise. Blocking.
pub fn remove_live_containers() {
    let live = std::mem::take(
        &mut *LIVE_CONTAINERS
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
    );
    for (id, container) in live {
        tracing::info!("removing container {id}");
        container.remove_now(&id);
    }
}

/// Keeps a container in [`LIVE_CONTAINERS`] while it exists, and removes it if `run`'s
/// future is dropped mid-way (the caller gave up on it without the cancellation token);
/// blocking, but only on that abnormal path.
struct ContainerGuard {
    id: String,
    container: LiveContainer,
    armed: bool,
}

impl ContainerGuard {
    fn new(container: LiveContainer, id: &str) -> ContainerGuard {
        LIVE_CONTAINERS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.to_owned(), container.clone());
        ContainerGuard {
            id: id.to_owned(),
            container,
            armed: true,
        }
    }
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        LIVE_CONTAINERS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
        if self.armed {
            self.container.remove_now(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_s_owner_is_gone_when_its_pid_runs_another_process_or_none() {
        assert!(!owner_is_gone(&container_id()), "this process");
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let owner = LeaseOwner::of(child.id());
        let id = |start: i64| format!("bud-{}-s{start}-0000abcd-0", owner.pid);
        assert!(!owner_is_gone(&id(owner.start_time)), "running");
        assert!(
            owner_is_gone(&id(owner.start_time - 1)),
            "its pid taken by a later process"
        );
        let earlier_form = format!("bud-{}-0000abcd-0", owner.pid);
        assert!(
            !owner_is_gone(&earlier_form),
            "an earlier bud's id, running"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(owner_is_gone(&id(owner.start_time)), "exited");
        assert!(owner_is_gone(&earlier_form), "an earlier bud's id, exited");
        assert!(!owner_is_gone("someone-else-1"), "not bud's");
    }
}
