//! Which solver runs a build, and who decided: `--addr` names a BuildKit daemon; else the
//! native nodes of `[[builder.nodes]]` in bud.toml, if any; otherwise
//! the embedded solver, when bud owns its state root (root, or rootless in a user namespace:
//! `privilege`) and finds an OCI runtime. Where it cannot run, the build goes to the
//! BuildKit of the Docker the docker CLI would use, as with `--addr docker://`, with one
//! line saying why, unless `[worker] fallback = "never"` in bud.toml.

use std::fmt;

use anyhow::bail;

use crate::config::{BuilderConfig, Fallback, NodeConfig, WorkerConfig};
use crate::docker_host::DockerUnavailable;
use crate::executor::{ExecError, Runtime, RuntimeKind};
use crate::privilege::{self, Mode, UsernsError};
use crate::state::StateRoot;

/// The solver a build goes to.
pub enum Worker {
    /// bud's own solver, with the OCI runtime that runs its steps.
    Embedded(Runtime),
    /// A BuildKit daemon at this address (`--addr`, or `docker://` for the fallback).
    Daemon(String),
    /// bud.toml's `[[builder.nodes]]`: each platform on the node that builds it.
    Nodes(Vec<NodeConfig>),
}

/// Why the embedded solver cannot run here.
#[derive(Debug)]
pub enum Unavailable {
    /// Neither root nor a user namespace bud can make (no subordinate ids, no
    /// newuidmap, user namespaces off), as `privilege` found when bud started.
    Privilege(&'static UsernsError),
    /// No OCI runtime where none was named (runc or crun not installed).
    Runtime(ExecError),
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Privilege(e) => f.write_str(&crate::error_chain::error_chain(*e)),
            Self::Runtime(ExecError::RuntimeNotFound { name }) => write!(
                f,
                "{name} is not installed: install it with `apt-get install {name}`, or set \
                 [worker] runtime in bud.toml"
            ),
            Self::Runtime(e) => f.write_str(&crate::error_chain::error_chain(e)),
        }
    }
}

/// The embedded solver's runtime, or why it cannot run: no privilege for it, or no runc
/// where none was asked for. A runtime the user named that cannot be used is an error of
/// its own (`Ok(Err(..))`), never a reason to build elsewhere.
pub fn embedded(
    config: &WorkerConfig,
    state: &StateRoot,
) -> Result<Result<Runtime, ExecError>, Unavailable> {
    if let Mode::Unprivileged(e) = privilege::mode() {
        return Err(Unavailable::Privilege(e));
    }
    match runtime(config, state) {
        Err(e @ ExecError::RuntimeNotFound { .. }) if runtime_choice(config).is_none() => {
            Err(Unavailable::Runtime(e))
        }
        chosen => Ok(chosen),
    }
}

/// Decides where the build runs; `docker` is the Docker the CLI would use, or why none.
pub fn choose(
    addr: Option<&str>,
    builder: &BuilderConfig,
    config: &WorkerConfig,
    state: &StateRoot,
    docker: Result<&bollard::Docker, &DockerUnavailable>,
) -> anyhow::Result<Worker> {
    if let Some(addr) = addr {
        return Ok(Worker::Daemon(addr.to_string()));
    }
    if !builder.nodes.is_empty() {
        return Ok(Worker::Nodes(builder.nodes.clone()));
    }
    let why = match embedded(config, state) {
        Ok(runtime) => return Ok(Worker::Embedded(runtime?)),
        Err(why) => why,
    };
    if config.fallback == Fallback::Never {
        bail!(
            "the embedded solver cannot run: {why} ([worker] fallback = \"never\" keeps the \
             build off Docker)"
        );
    }
    if let Err(docker) = docker {
        bail!(
            "the embedded solver cannot run: {why}; and no Docker answers to build with \
             instead ({docker})",
            docker = crate::error_chain::error_chain(docker)
        );
    }
    crate::report!("note: building with Docker's BuildKit (as with --addr docker://): {why}");
    Ok(Worker::Daemon("docker://".to_string()))
}

/// The runtime the user asked for: `BUD_RUNTIME`, else `[worker] runtime`.
fn runtime_choice(config: &WorkerConfig) -> Option<String> {
    std::env::var("BUD_RUNTIME")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| config.runtime.clone())
}

/// The OCI runtime: `BUD_RUNTIME`, else `[worker] runtime` of bud.toml, else runc; a name
/// (`runc`, `crun`) is looked up in PATH, a path is used as it is.
fn runtime(config: &WorkerConfig, state: &StateRoot) -> Result<Runtime, ExecError> {
    let dir = state.tmp_dir().join("runtime");
    Ok(match runtime_choice(config) {
        Some(path) if path.contains('/') => Runtime::with_binary(path, dir),
        Some(name) => Runtime::new(name.parse::<RuntimeKind>()?, dir)?,
        None => Runtime::new(RuntimeKind::Runc, dir)?,
    })
}

/// What `bud debug workers` shows: the solver a build would use here, and why.
pub fn describe(builder: &BuilderConfig, config: &WorkerConfig, state: &StateRoot) -> String {
    if !builder.nodes.is_empty() {
        let nodes: Vec<String> = builder
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let name = n.name_at(i);
                let platforms = match n.platforms.is_empty() {
                    true => "any other platform".to_owned(),
                    false => n.platforms.join(", "),
                };
                format!("{name} at {} ({platforms})", n.addr)
            })
            .collect();
        return format!("the nodes of [[builder.nodes]]: {}", nodes.join("; "));
    }
    let privilege = match privilege::mode() {
        Mode::Root => "root".to_string(),
        Mode::Rootless(maps) => format!(
            "rootless (a user namespace: uid {} and {} subordinate uids, gid {} and {} \
             subordinate gids)",
            maps.uid,
            maps.uid_count() - 1,
            maps.gid,
            maps.gid_count() - 1
        ),
        Mode::Unprivileged(_) => "unprivileged".to_string(),
    };
    match embedded(config, state) {
        Ok(Ok(_)) => format!("embedded, {privilege}"),
        Ok(Err(e)) => format!(
            "embedded, {privilege}; its runtime cannot be used: {e}",
            e = crate::error_chain::error_chain(&e)
        ),
        Err(why) if config.fallback == Fallback::Never => {
            format!("none: {why} ([worker] fallback = \"never\")")
        }
        Err(why) => format!("Docker's BuildKit (as with --addr docker://): {why}"),
    }
}
