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
pub use spec::{DEFAULT_HOSTNAME, oci_spec};

/// One process to run in a container over an already-mounted root filesystem.
#[derive(Debug, Clone)]
pub struct ExecSpec {
    /// The mounted root directory of the container.
    pub rootfs: PathBuf,
    pub args: Vec<String>,
    /// `NAME=value` entries, passed as they are.
    pub env: Vec<String>,
    /// Working directory inside the container (absolute).
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// Defaults to [`DEFAULT_HOSTNAME`] like BuildKit.
    pub hostname: Option<String>,
    pub mounts: Vec<Mount>,
    pub network: Network,
    /// `(host, ip)` pairs added to the generated /etc/hosts (`--add-host`).
    pub extra_hosts: Vec<(String, String)>,
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
    pub name: String,
    pub soft: u64,
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
    pub kind: MountKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountKind {
    /// Recursive bind mount of a host path.
    Bind { source: PathBuf, readonly: bool },
    /// A fresh tmpfs; `size` in bytes, the kernel's default (half of RAM) when unset.
    Tmpfs { size: Option<u64> },
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
    Stdout,
    Stderr,
}

/// A piece of a step's output, as read from the pipe (not split into lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    pub stream: Stream,
    pub data: Vec<u8>,
}

/// Errors of the executor; each carries what a user needs to act on it.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(
        "container runtime `{name}` not found in PATH: install it (`apt-get install {name}`), \
         or build with a BuildKit daemon (`--addr`)"
    )]
    RuntimeNotFound { name: String },
    #[error("unknown container runtime `{0}` (expected `runc` or `crun`)")]
    UnknownRuntime(String),
    #[error("invalid exec spec: {0}")]
    InvalidSpec(String),
    #[error("building the OCI runtime spec")]
    OciSpec(#[from] oci_spec::OciSpecError),
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("running {runtime}")]
    Spawn {
        runtime: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{runtime} was killed by signal {signal}")]
    RuntimeKilled { runtime: PathBuf, signal: i32 },
    #[error("the step was cancelled")]
    Cancelled,
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

pub type Result<T, E = ExecError> = std::result::Result<T, E>;
