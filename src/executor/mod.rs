//! Runs one `RUN` step in a container with an OCI runtime (runc or crun).
//!
//! The caller mounts the root filesystem (see [`crate::snapshot`]); this module writes an OCI
//! bundle next to it (config.json, /etc/hosts, /etc/resolv.conf), runs `runc run`, streams the
//! process output to a [`LogChunk`] channel and always deletes the container and the bundle.

pub mod cdi;
mod diagnose;
mod etc;
mod runtime;
mod seccomp;
mod spec;

use std::path::PathBuf;

pub use diagnose::runtime_failure_hint;
pub use runtime::{Runtime, RuntimeKind, remove_live_containers};
pub use spec::DEFAULT_HOSTNAME;

/// One process to run in a container over an already-mounted root filesystem.
#[derive(Debug, Clone)]
pub struct ExecSpec {
    /// The mounted root directory of the container.
    pub rootfs: PathBuf,
    /// The command and its arguments, run as they are (no shell added here; the frontend
    /// wraps a shell-form RUN in the image's shell).
    pub args: Vec<String>,
    /// `NAME=value` entries, passed as they are.
    pub env: Vec<String>,
    /// Working directory inside the container (absolute).
    pub cwd: String,
    /// User the process runs as, already resolved from `USER` (see [`crate::userdb`]).
    pub uid: u32,
    /// Primary group the process runs as.
    pub gid: u32,
    /// Supplementary groups, as `USER`'s user has them in the image's /etc/group.
    pub additional_gids: Vec<u32>,
    /// Defaults to [`DEFAULT_HOSTNAME`] like BuildKit.
    pub hostname: Option<String>,
    /// Mounts over the root filesystem, applied in this order (a later one may cover an
    /// earlier one).
    pub mounts: Vec<Mount>,
    /// The step's network namespace.
    pub network: Network,
    /// `(host, ip)` pairs added to the generated /etc/hosts (`--add-host`).
    pub extra_hosts: Vec<(String, String)>,
    /// Mount the root filesystem read-only (the LLB root mount is marked readonly).
    pub readonly_rootfs: bool,
    /// Resource limits of the process (`--ulimit`); empty keeps bud's defaults.
    pub rlimits: Vec<Rlimit>,
    /// `RUN --security=insecure`: every capability, the host's devices, writable /sys,
    /// nothing masked, as BuildKit runs such a step.
    pub privileged: bool,
    /// CDI devices (`RUN --device`): each device's name and container edits.
    pub devices: Vec<(String, Vec<cdi::Edits>)>,
}

/// One resource limit, named as `ulimit` and `--ulimit` name it (`nofile`, `nproc`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rlimit {
    /// The limit's `ulimit` name, without the `RLIMIT_` prefix.
    pub name: String,
    /// Soft limit, in the limit's own unit (files, processes, bytes…).
    pub soft: u64,
    /// Hard limit, at least `soft` (runc refuses otherwise).
    pub hard: u64,
}

impl ExecSpec {
    /// A spec running `args` as root in `/` with host networking.
    pub fn new(rootfs: impl Into<PathBuf>, args: Vec<String>) -> Self {
        Self {
            rootfs: rootfs.into(),
            args,
            env: Vec::new(),
            cwd: "/".to_owned(),
            uid: 0,
            gid: 0,
            additional_gids: Vec::new(),
            hostname: None,
            mounts: Vec::new(),
            network: Network::Host,
            extra_hosts: Vec::new(),
            readonly_rootfs: false,
            rlimits: Vec::new(),
            privileged: false,
            devices: Vec::new(),
        }
    }
}

/// A mount added on top of the root filesystem (`RUN --mount`, secrets, caches...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Absolute path inside the container.
    pub dest: String,
    /// What is mounted there.
    pub kind: MountKind,
}

/// What a [`Mount`] puts at its destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountKind {
    /// Recursive bind mount of a host path.
    Bind {
        /// Host path (a snapshot, a cache mount's directory, a secret's file…).
        source: PathBuf,
        /// Bound with `ro`, so the step cannot write through it.
        readonly: bool,
    },
    /// A fresh tmpfs; `size` in bytes, the kernel's default (half of RAM) when unset.
    Tmpfs {
        /// Upper bound in bytes; `None` is the kernel's default.
        size: Option<u64>,
    },
}

/// Network mode of a step (`RUN --network`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// Share the host's network namespace (BuildKit's default for the embedded worker).
    #[default]
    Host,
    /// A new network namespace with only the loopback interface.
    None,
}

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The process's standard output (file descriptor 1).
    Stdout,
    /// The process's standard error (file descriptor 2).
    Stderr,
}

/// A piece of a step's output, as read from the pipe (not split into lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    /// The stream the bytes were read from.
    pub stream: Stream,
    /// The bytes as read, possibly ending inside a line or a UTF-8 sequence.
    pub data: Vec<u8>,
}

/// Errors of the executor; each carries what a user needs to act on it.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The chosen runtime's binary is not on `PATH`.
    #[error(
        "container runtime `{name}` not found in PATH: install it (`apt-get install {name}`), \
         or build with a BuildKit daemon (`--addr`)"
    )]
    RuntimeNotFound {
        /// The binary looked for (`runc` or `crun`).
        name: String,
    },
    /// `BUD_RUNTIME` or the configuration names a runtime bud does not drive.
    #[error("unknown container runtime `{0}` (expected `runc` or `crun`)")]
    UnknownRuntime(String),
    /// The step cannot be turned into a spec (no command, an unknown `--ulimit`, bad CDI
    /// edits); the message says which.
    #[error("invalid exec spec: {0}")]
    InvalidSpec(String),
    /// oci-spec refused a value while building config.json.
    #[error("building the OCI runtime spec")]
    OciSpec(#[from] oci_spec::OciSpecError),
    /// Writing the bundle or reading the output failed.
    #[error("{action} {path}")]
    Io {
        /// What was being done, as a verb phrase (`"writing"`, `"creating"`…).
        action: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The runtime's process could not be started.
    #[error("running {runtime}")]
    Spawn {
        /// Full path of the runtime binary.
        runtime: PathBuf,
        /// Why the spawn failed.
        #[source]
        source: std::io::Error,
    },
    /// The runtime itself (not the step's process) died of a signal, so no exit code exists.
    #[error("{runtime} was killed by signal {signal}")]
    RuntimeKilled {
        /// Full path of the runtime binary.
        runtime: PathBuf,
        /// The signal's number.
        signal: i32,
    },
    /// The build's cancellation token fired; the container was killed and deleted.
    #[error("the step was cancelled")]
    Cancelled,
    /// A `RUN --device` request could not be resolved from the CDI specs.
    #[error(transparent)]
    Cdi(#[from] cdi::CdiError),
}

impl ExecError {
    fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// The executor's result, [`ExecError`] by default.
pub(crate) type Result<T, E = ExecError> = std::result::Result<T, E>;
