//! Exec ops: run a process over a set of mounts.

use std::collections::BTreeSet;

use bud_proto::pb::{self, caps};

use super::constraints::Constraints;
use super::error::LlbError;
use super::state::{InputList, Output, State, Vertex};

/// One mount of an exec besides the root filesystem.
#[derive(Clone, Debug)]
pub struct Mount {
    /// Absolute path in the container.
    pub dest: String,
    /// What is mounted there.
    pub kind: MountKind,
}

/// What an exec [`Mount`] puts at its destination (`RUN --mount`'s types).
#[derive(Clone, Debug)]
pub enum MountKind {
    /// A state, read-write unless `readonly`. A read-write bind mount is an
    /// output of the exec unless `discard_output`.
    Bind {
        /// The state mounted.
        source: State,
        /// Mount this path of `source` instead of its root.
        selector: String,
        /// Mounted read-only (`RUN --mount=type=bind` without `rw`).
        readonly: bool,
        /// Writes are not kept as an output of the exec (`rw` bind mounts, when the daemon
        /// can run them so).
        discard_output: bool,
    },
    /// A persistent cache directory, seeded from `source` when it is new.
    Cache {
        /// The cache's name: steps naming the same id share its directory.
        id: String,
        /// How concurrent steps share it (`shared`, `private`, `locked`).
        sharing: pb::CacheSharingOpt,
        /// What a new cache directory starts with (`from=`; scratch for none).
        source: State,
        /// The path of `source` to seed from (`source=`).
        selector: String,
    },
    /// An empty tmpfs; `size` 0 leaves the kernel's default.
    Tmpfs {
        /// Upper bound in bytes.
        size: i64,
    },
    /// A session secret as a file.
    Secret(pb::SecretOpt),
    /// The session's SSH agent socket.
    Ssh(pb::SshOpt),
}

/// Everything an exec op needs; `meta.args` and `meta.cwd` must be set.
#[derive(Clone, Debug, Default)]
pub struct ExecBuilder {
    /// Command, environment, working directory, user, hosts, ulimits, proxy variables.
    pub meta: pb::Meta,
    /// The root filesystem, mounted read-write at `/`.
    pub root: State,
    /// Mounts over the root, each at a different path.
    pub mounts: Vec<Mount>,
    /// `RUN --network`; `Unset` is the daemon's default (and declares no capability).
    pub network: pb::NetMode,
    /// `RUN --security`; `Insecure` needs the `security.insecure` entitlement.
    pub security: pb::SecurityMode,
    /// Secrets given as environment variables (`--mount=type=secret,env=`).
    pub secret_env: Vec<pb::SecretEnv>,
    /// CDI devices the process is given (`RUN --device`).
    pub cdi_devices: Vec<pb::CdiDevice>,
    /// Platform, progress name, cache and source-map settings of the op.
    pub constraints: Constraints,
}

/// What an exec produces: the root filesystem and each output mount.
#[derive(Clone, Debug)]
pub struct ExecOutputs {
    /// The root filesystem after the exec.
    pub root: State,
    mounts: Vec<(String, State)>,
}

impl ExecOutputs {
    /// The state of the mount at `dest` after the exec: its output for a
    /// read-write bind, its unchanged source for a read-only one, and `None`
    /// for mounts that produce nothing (caches, tmpfs, secrets, discarded).
    pub fn mount(&self, dest: &str) -> Option<&State> {
        self.mounts.iter().find(|(d, _)| d == dest).map(|(_, s)| s)
    }
}

/// Runs `builder.meta.args` with `builder.root` at `/` and the other mounts.
pub fn exec(builder: ExecBuilder) -> Result<ExecOutputs, LlbError> {
    let ExecBuilder {
        mut meta,
        root,
        mut mounts,
        network,
        security,
        secret_env,
        cdi_devices,
        constraints,
    } = builder;
    if meta.args.is_empty() {
        return Err(LlbError::EmptyArgs);
    }
    if meta.cwd.is_empty() {
        return Err(LlbError::EmptyCwd);
    }
    // As Go's client does: a step with an SSH agent finds the first one through
    // SSH_AUTH_SOCK unless it sets the variable itself.
    let first_ssh = mounts
        .iter()
        .find(|m| matches!(m.kind, MountKind::Ssh(_)))
        .map(|m| m.dest.clone());
    if let Some(dest) = first_ssh
        && !meta.env.iter().any(|e| e.starts_with("SSH_AUTH_SOCK="))
    {
        meta.env.push(format!("SSH_AUTH_SOCK={dest}"));
    }
    let mut seen = BTreeSet::from(["/".to_owned()]);
    for m in &mounts {
        if !seen.insert(m.dest.clone()) {
            return Err(LlbError::DuplicateMount(m.dest.clone()));
        }
    }

    let mut needs = vec![caps::EXEC_META_BASE];
    if network != pb::NetMode::Unset {
        needs.push(caps::EXEC_META_NETWORK);
    }
    if security == pb::SecurityMode::Insecure {
        needs.push(caps::EXEC_META_SECURITY);
    }
    if meta.proxy_env.is_some() {
        needs.push(caps::EXEC_META_PROXY);
    }
    if !meta.ulimit.is_empty() {
        needs.push(caps::EXEC_META_ULIMIT);
    }
    if !cdi_devices.is_empty() {
        needs.push(caps::EXEC_META_CDI);
    }
    if !meta.cgroup_parent.is_empty() {
        needs.push(caps::EXEC_META_CGROUP_PARENT);
    }
    if meta.remove_mount_stubs_recursive {
        needs.push(caps::EXEC_META_REMOVE_MOUNT_STUBS_RECURSIVE);
    }
    if !meta.valid_exit_codes.is_empty() {
        needs.push(caps::EXEC_VALID_EXIT_CODE);
    }

    // BuildKit orders filesystem mounts by destination ("/" first) and puts
    // secret and SSH mounts after them in the order given.
    mounts.insert(
        0,
        Mount {
            dest: "/".to_owned(),
            kind: MountKind::Bind {
                source: root,
                selector: String::new(),
                readonly: false,
                discard_output: false,
            },
        },
    );
    let (mut fs_mounts, session_mounts): (Vec<_>, Vec<_>) = mounts
        .into_iter()
        .partition(|m| !matches!(m.kind, MountKind::Secret(_) | MountKind::Ssh(_)));
    fs_mounts.sort_by(|a, b| a.dest.cmp(&b.dest));

    let mut inputs = InputList::default();
    let mut pb_mounts = Vec::new();
    // Per mount: Some(output index) for a fresh output, or the state to hand back.
    let mut results: Vec<(String, MountResult)> = Vec::new();
    let mut next_output = 0;
    for m in fs_mounts.iter().chain(&session_mounts) {
        let mut pm = pb::Mount {
            dest: m.dest.clone(),
            output: -1,
            input: -1,
            ..Default::default()
        };
        match &m.kind {
            MountKind::Bind {
                source,
                selector,
                readonly,
                discard_output,
            } => {
                pm.input = inputs.add(source);
                pm.selector = selector.clone();
                pm.readonly = *readonly;
                if !source.is_scratch() {
                    needs.push(caps::EXEC_MOUNT_BIND);
                }
                if *readonly {
                    results.push((m.dest.clone(), MountResult::Unchanged(source.clone())));
                } else if *discard_output {
                    needs.push(caps::EXEC_MOUNT_BIND_READ_WRITE_NO_OUTPUT);
                } else {
                    pm.output = next_output;
                    results.push((m.dest.clone(), MountResult::Output(next_output)));
                    next_output += 1;
                }
            }
            MountKind::Cache {
                id,
                sharing,
                source,
                selector,
            } => {
                pm.input = inputs.add(source);
                pm.selector = selector.clone();
                pm.mount_type = pb::MountType::Cache as i32;
                pm.cache_opt = Some(pb::CacheOpt {
                    id: id.clone(),
                    sharing: *sharing as i32,
                });
                needs.extend([caps::EXEC_MOUNT_CACHE, caps::EXEC_MOUNT_CACHE_SHARING]);
            }
            MountKind::Tmpfs { size } => {
                pm.mount_type = pb::MountType::Tmpfs as i32;
                pm.tmpfs_opt = Some(pb::TmpfsOpt { size: *size });
                needs.push(caps::EXEC_MOUNT_TMPFS);
                if *size > 0 {
                    needs.push(caps::EXEC_MOUNT_TMPFS_SIZE);
                }
            }
            MountKind::Secret(opt) => {
                pm.mount_type = pb::MountType::Secret as i32;
                pm.secret_opt = Some(opt.clone());
                needs.push(caps::EXEC_MOUNT_SECRET);
            }
            MountKind::Ssh(opt) => {
                pm.mount_type = pb::MountType::Ssh as i32;
                pm.ssh_opt = Some(opt.clone());
                needs.push(caps::EXEC_MOUNT_SSH);
            }
        }
        if !pm.selector.is_empty() {
            needs.push(caps::EXEC_MOUNT_SELECTOR);
        }
        pb_mounts.push(pm);
    }
    if !secret_env.is_empty() {
        needs.extend([caps::EXEC_MOUNT_SECRET, caps::EXEC_SECRET_ENV]);
    }
    needs.sort_unstable();
    needs.dedup();

    let op = pb::op::Op::Exec(pb::ExecOp {
        meta: Some(meta),
        mounts: pb_mounts,
        network: network as i32,
        security: security as i32,
        secretenv: secret_env,
        cdi_devices,
    });
    let vertex = Vertex::new(inputs.into_outputs(), op, &constraints, &needs, true);

    let mut root = State::scratch();
    let mut mounts = Vec::new();
    for (dest, result) in results {
        let state = match result {
            MountResult::Output(index) => State::from_output(Output::new(vertex.clone(), index)),
            MountResult::Unchanged(state) => state,
        };
        if dest == "/" {
            root = state;
        } else {
            mounts.push((dest, state));
        }
    }
    Ok(ExecOutputs { root, mounts })
}

enum MountResult {
    Output(i64),
    Unchanged(State),
}
