//! ExecOp: a RUN step. The root filesystem is a writable overlay of the input's layers; the
//! other mounts are binds of read-only views, cache directories, tmpfs and secrets. After
//! the step, the mount points runc created are removed from the upper directory, which then
//! becomes the step's layer.

use std::collections::VecDeque;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::PathBuf;

use bud_proto::pb;
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cache::meta::SnapshotKind;
use crate::executor::{ExecError, ExecSpec, LogChunk, Mount, MountKind, Network, Rlimit, cdi};
use crate::fileop::safe;
use crate::progress::Stream;
use crate::snapshot::stubs::{DEFAULT_TARGETS, MountStubs};

use super::key::output_key;
use super::snapshots::{Ref, View, Workspace, WritableRoot};
use super::{SolveError, Solver, graph::Vertex};

/// How many lines of a failed step's output the error shows.
const TAIL_LINES: usize = 10;

/// Keeps mounts, views and workspaces alive for the duration of the step; dropped in
/// reverse order of creation so that nested mounts come down first.
#[derive(Default)]
struct Held {
    guards: Vec<WritableRoot>,
    views: Vec<View>,
    outputs: Vec<(i64, Ref, Workspace)>,
}

pub(super) async fn run(
    solver: &Solver,
    vertex: &Vertex,
    exec: &pb::ExecOp,
    inputs: &[Ref],
    key: &str,
    cancel: &CancellationToken,
) -> Result<Vec<Ref>, SolveError> {
    let meta = exec
        .meta
        .as_ref()
        .ok_or_else(|| SolveError::InvalidDefinition("exec without meta".into()))?;
    refuse_unsupported(meta)?;
    let devices = step_devices(solver, vertex, exec)?;
    let inputs = Inputs(inputs);
    let root_mount = exec
        .mounts
        .iter()
        .find(|m| m.dest == "/")
        .ok_or_else(|| SolveError::InvalidDefinition("exec without a root mount".into()))?;
    let root_base = inputs.of(root_mount.input)?;
    let root_ws = solver.snapshots.workspace()?;
    let rootfs = root_ws.subdir("rootfs")?;
    let mut held = Held::default();
    held.guards.push(
        solver
            .snapshots
            .mount_writable(&root_base, &root_ws, &rootfs)?,
    );

    let exec_user = crate::userdb::resolve_exec_user(&rootfs, &meta.user)?;
    let targets: Vec<&str> = DEFAULT_TARGETS
        .iter()
        .copied()
        .chain(
            exec.mounts
                .iter()
                .filter(|m| m.dest != "/")
                .map(|m| m.dest.as_str()),
        )
        .collect();
    let stubs = MountStubs::record(&rootfs, targets)?;
    let (mounts, cache_locks) = step_mounts(solver, exec, &inputs, &root_ws, &mut held).await?;
    let mut spec = step_spec(solver, exec, meta, root_mount, rootfs, exec_user, mounts)?;
    spec.devices = devices;

    let (status, output_tail) = run_logged(solver, vertex, &spec, cancel).await;
    drop(cache_locks);

    // Unmount everything before reading the upper directories.
    let Held {
        guards,
        views,
        outputs,
    } = held;
    for g in guards.into_iter().rev() {
        g.finish()?;
    }
    drop(views);

    let code = status?;
    if code != 0 {
        return Err(SolveError::ProcessFailed {
            command: meta.args.join(" "),
            code,
            hint: crate::executor::runtime_failure_hint(&output_tail),
            output_tail,
        });
    }
    stubs.remove_from(&root_ws.upper())?;
    let mut outputs = outputs;
    if root_mount.output >= 0 {
        outputs.insert(0, (root_mount.output, root_base, root_ws));
    }
    commit_outputs(solver, vertex, exec, key, outputs)
}

/// The CDI devices the step asks for (`RUN --device`), with the warning for each optional
/// one that is not registered.
fn step_devices(
    solver: &Solver,
    vertex: &Vertex,
    exec: &pb::ExecOp,
) -> Result<Vec<(String, Vec<cdi::Edits>)>, SolveError> {
    if exec.cdi_devices.is_empty() {
        return Ok(Vec::new());
    }
    let resolved = resolve_devices(exec, &solver.opts)?;
    for name in resolved.skipped {
        solver.progress.warning(
            Some(&vertex.digest),
            format!("optional device {name:?} is not registered: the step runs without it"),
        );
    }
    Ok(resolved.edits)
}

/// The op's CDI devices, from the CDI specs on this host, as BuildKit's worker finds them:
/// an optional device that is not registered is skipped, a required one is an error, and
/// one without the auto-allow annotation needs a `device` entitlement.
pub(super) fn resolve_devices(
    exec: &pb::ExecOp,
    opts: &super::SolveOptions,
) -> Result<cdi::Resolved, SolveError> {
    let dirs: Vec<&std::path::Path> = match &opts.cdi_spec_dirs {
        Some(dirs) => dirs.iter().map(PathBuf::as_path).collect(),
        None => cdi::SPEC_DIRS.iter().map(std::path::Path::new).collect(),
    };
    let registry = cdi::Registry::load(&dirs).map_err(ExecError::from)?;
    let requests: Vec<cdi::Request> = exec
        .cdi_devices
        .iter()
        .map(|d| cdi::Request {
            name: &d.name,
            optional: d.optional,
        })
        .collect();
    Ok(registry
        .resolve(&requests, &opts.devices)
        .map_err(ExecError::from)?)
}

/// Parts of an ExecOp that the embedded solver does not carry out: refused by name rather
/// than dropped. (No Dockerfile instruction writes them.)
fn refuse_unsupported(meta: &pb::Meta) -> Result<(), SolveError> {
    let unsupported = if !meta.cgroup_parent.is_empty() {
        Some("a cgroup parent for a step")
    } else if !meta.valid_exit_codes.is_empty() {
        Some("valid exit codes other than 0 for a step")
    } else {
        None
    };
    match unsupported {
        Some(what) => Err(SolveError::Unsupported(format!(
            "{what}, with the embedded solver (build with --addr to a BuildKit that has it)"
        ))),
        None => Ok(()),
    }
}

/// The op's inputs, looked up by a mount's input index (negative: scratch).
struct Inputs<'a>(&'a [Ref]);

impl Inputs<'_> {
    fn of(&self, index: i64) -> Result<Ref, SolveError> {
        if index < 0 {
            return Ok(Ref::Scratch);
        }
        self.0
            .get(index as usize)
            .cloned()
            .ok_or_else(|| SolveError::InvalidDefinition(format!("mount input {index}")))
    }
}

/// Every mount but the root, made ready: views and overlays of other results (kept in
/// `held`), cache directories (with the locks of `sharing=locked` ones), tmpfs, secrets
/// and ssh agents. Optional secrets and agents that are missing are left out.
async fn step_mounts(
    solver: &Solver,
    exec: &pb::ExecOp,
    inputs: &Inputs<'_>,
    root_ws: &Workspace,
    held: &mut Held,
) -> Result<(Vec<Mount>, Vec<std::fs::File>), SolveError> {
    let mut mounts = Vec::new();
    let mut cache_locks = Vec::new();
    for (i, m) in exec.mounts.iter().enumerate() {
        if m.dest == "/" {
            continue;
        }
        let kind = match pb::MountType::try_from(m.mount_type).unwrap_or(pb::MountType::Bind) {
            pb::MountType::Bind => bind_mount(solver, m, inputs.of(m.input)?, held, i)?,
            pb::MountType::Tmpfs => MountKind::Tmpfs {
                size: m
                    .tmpfs_opt
                    .as_ref()
                    .and_then(|t| u64::try_from(t.size).ok())
                    .filter(|s| *s > 0),
            },
            pb::MountType::Cache => {
                let (source, lock) = cache_dir(solver, m, inputs.of(m.input)?).await?;
                cache_locks.extend(lock);
                MountKind::Bind {
                    source,
                    readonly: false,
                }
            }
            pb::MountType::Secret => match secret_file(solver, m, root_ws, i)? {
                Some(source) => MountKind::Bind {
                    source,
                    readonly: true,
                },
                None => continue,
            },
            pb::MountType::Ssh => match ssh_agent(solver, m)? {
                Some(source) => MountKind::Bind {
                    source,
                    readonly: false,
                },
                None => continue,
            },
        };
        mounts.push(Mount {
            dest: m.dest.clone(),
            kind,
        });
    }
    Ok((mounts, cache_locks))
}

/// What the runtime is asked to run: the op's process, environment (proxy variables in both
/// cases, as BuildKit sets them, then secrets asked for as variables), user, network and
/// limits.
fn step_spec(
    solver: &Solver,
    exec: &pb::ExecOp,
    meta: &pb::Meta,
    root_mount: &pb::Mount,
    rootfs: PathBuf,
    exec_user: crate::userdb::ExecUser,
    mounts: Vec<Mount>,
) -> Result<ExecSpec, SolveError> {
    let mut env = meta.env.clone();
    if let Some(proxy) = &meta.proxy_env {
        for (name, value) in [
            ("HTTP_PROXY", &proxy.http_proxy),
            ("HTTPS_PROXY", &proxy.https_proxy),
            ("FTP_PROXY", &proxy.ftp_proxy),
            ("NO_PROXY", &proxy.no_proxy),
            ("ALL_PROXY", &proxy.all_proxy),
        ] {
            if !value.is_empty() {
                env.push(format!("{name}={value}"));
                env.push(format!("{}={value}", name.to_ascii_lowercase()));
            }
        }
    }
    for secret in &exec.secretenv {
        match solver.opts.secrets.get(&secret.id) {
            Some(value) => env.push(format!(
                "{}={}",
                secret.name,
                String::from_utf8_lossy(value)
            )),
            // BuildKit sets the variable, empty, for an optional secret that is absent.
            None if secret.optional => env.push(format!("{}=", secret.name)),
            None => return Err(missing_secret(&secret.id)),
        }
    }
    let extra_hosts = meta
        .extra_hosts
        .iter()
        .map(|h| (h.host.clone(), h.ip.clone()))
        .collect();
    Ok(ExecSpec {
        rootfs,
        args: meta.args.clone(),
        env,
        cwd: if meta.cwd.is_empty() {
            "/".into()
        } else {
            meta.cwd.clone()
        },
        uid: exec_user.uid,
        gid: exec_user.gid,
        additional_gids: exec_user.additional_gids,
        hostname: (!meta.hostname.is_empty()).then(|| meta.hostname.clone()),
        mounts,
        network: if exec.network == pb::NetMode::None as i32
            || (exec.network == pb::NetMode::Unset as i32 && solver.opts.network_none)
        {
            Network::None
        } else {
            Network::Host
        },
        extra_hosts,
        readonly_rootfs: root_mount.readonly,
        rlimits: meta.ulimit.iter().map(rlimit).collect(),
        // Granted beforehand: the solve refuses it without `--allow security.insecure`.
        privileged: exec.security == pb::SecurityMode::Insecure as i32,
        devices: Vec::new(),
    })
}

/// Runs the step, its output going to the progress view as it comes; returns the exit
/// status and the output's last lines.
async fn run_logged(
    solver: &Solver,
    vertex: &Vertex,
    spec: &ExecSpec,
    cancel: &CancellationToken,
) -> (Result<i32, SolveError>, Vec<String>) {
    let (tx, mut rx) = mpsc::channel::<LogChunk>(64);
    let progress = solver.progress.clone();
    let digest = vertex.digest.clone();
    let forward = tokio::spawn(async move {
        let mut tail = Tail::default();
        while let Some(chunk) = rx.recv().await {
            let stream = match chunk.stream {
                crate::executor::Stream::Stdout => Stream::Stdout,
                crate::executor::Stream::Stderr => Stream::Stderr,
            };
            tail.push(&chunk.data);
            progress.log(&digest, stream, &chunk.data);
        }
        tail.lines()
    });
    let status = solver.runtime.run(spec, tx, cancel).await;
    let output_tail = forward.await.unwrap_or_default();
    (status.map_err(Into::into), output_tail)
}

/// Commits the root overlay and the writable bind mounts the op declares as outputs
/// (`(output index, base, workspace)`), each under its own output key.
fn commit_outputs(
    solver: &Solver,
    vertex: &Vertex,
    exec: &pb::ExecOp,
    key: &str,
    outputs: Vec<(i64, Ref, Workspace)>,
) -> Result<Vec<Ref>, SolveError> {
    let count = super::key::output_count(&pb::op::Op::Exec(exec.clone()));
    let mut results: Vec<Option<Ref>> = vec![None; count];
    for (output, base, ws) in outputs {
        let r = solver.commit_step(vertex, ws, &base, &output_key(key, output as usize))?;
        if let Some(slot) = results.get_mut(output as usize) {
            *slot = Some(r);
        }
    }
    results
        .into_iter()
        .map(|r| {
            r.ok_or_else(|| SolveError::InvalidDefinition("exec output without a mount".into()))
        })
        .collect()
}

/// A bind mount of another result. Read-only binds see a view; writable ones get their own
/// overlay, kept as an output when the op declares one and thrown away otherwise.
fn bind_mount(
    solver: &Solver,
    m: &pb::Mount,
    base: Ref,
    held: &mut Held,
    index: usize,
) -> Result<MountKind, SolveError> {
    let snapshots = &solver.snapshots;
    let selector = m.selector.trim_start_matches('/');
    if m.readonly {
        let view = snapshots.mount_view(&base)?;
        let source = if selector.is_empty() {
            view.path.clone()
        } else {
            safe::resolve(&view.path, selector)?
        };
        if let Ref::Context(ctx) = &base
            && !selector.is_empty()
            && ctx.excluded(selector)
        {
            return Err(SolveError::Other(format!(
                "{selector} is excluded by .dockerignore"
            )));
        }
        held.views.push(view);
        return Ok(MountKind::Bind {
            source,
            readonly: true,
        });
    }
    let ws = snapshots.workspace()?;
    let target = ws.subdir(&format!("mount-{index}"))?;
    held.guards
        .push(snapshots.mount_writable(&base, &ws, &target)?);
    let source = if selector.is_empty() {
        target
    } else {
        safe::resolve(&target, selector)?
    };
    if m.output >= 0 {
        held.outputs.push((m.output, base, ws));
    } else {
        // Writes to a read-write bind without an output are discarded with the workspace;
        // keep it alive until the step ends.
        held.outputs_discarded(ws);
    }
    Ok(MountKind::Bind {
        source,
        readonly: false,
    })
}

impl Held {
    fn outputs_discarded(&mut self, ws: Workspace) {
        self.views.push(View::holding(ws));
    }
}

/// A persistent directory for `--mount=type=cache`, by id. `locked` sharing serialises
/// its users across processes with an exclusive lock on the directory.
async fn cache_dir(
    solver: &Solver,
    m: &pb::Mount,
    base: Ref,
) -> Result<(PathBuf, Option<std::fs::File>), SolveError> {
    let opt = m.cache_opt.clone().unwrap_or_default();
    let id = if opt.id.is_empty() { &m.dest } else { &opt.id };
    // As BuildKit keys a cache: by id and, when the mount has an input (the directory the
    // frontend makes for `uid`, `gid` or `mode`), by that input too, so that the same id
    // with other ownership is another cache rather than one made for someone else.
    let name = match base.snapshot_id() {
        None => hex::encode(Sha256::digest(id.as_bytes())),
        Some(seed) => hex::encode(Sha256::digest(format!("{id}\0{seed}").as_bytes())),
    };
    let seed = imported_cache_mount(solver, id, &name, m, &base).await?;
    let sharing = pb::CacheSharingOpt::try_from(opt.sharing).unwrap_or(pb::CacheSharingOpt::Shared);
    let prepare_cache_dir = |solver: &Solver, name: &str, id: &str, m: &pb::Mount, base: &Ref| {
        prepare_cache_dir(solver, name, id, m, base, seed.as_deref())
    };
    match sharing {
        pb::CacheSharingOpt::Shared => Ok((prepare_cache_dir(solver, &name, id, m, &base)?, None)),
        pb::CacheSharingOpt::Locked => {
            let dir = prepare_cache_dir(solver, &name, id, m, &base)?;
            let file = std::fs::File::open(&dir).map_err(SolveError::io("opening", &dir))?;
            let file = tokio::task::spawn_blocking(move || {
                rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive).map(|()| file)
            })
            .await
            .map_err(SolveError::failed("locking a cache mount"))?
            .map_err(|e| SolveError::io("locking", &dir)(e.into()))?;
            Ok((dir, Some(file)))
        }
        // A writer that finds the directory in use gets another one of the same id, as
        // BuildKit does; the copies live on for the next users.
        pb::CacheSharingOpt::Private => {
            const MAX_COPIES: usize = 64;
            for n in 0..MAX_COPIES {
                let copy = if n == 0 {
                    name.clone()
                } else {
                    format!("{name}-{n}")
                };
                let dir = prepare_cache_dir(solver, &copy, id, m, &base)?;
                let file = std::fs::File::open(&dir).map_err(SolveError::io("opening", &dir))?;
                match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
                {
                    Ok(()) => return Ok((dir, Some(file))),
                    Err(rustix::io::Errno::WOULDBLOCK) => continue,
                    Err(e) => return Err(SolveError::io("locking", &dir)(e.into())),
                }
            }
            Err(SolveError::Other(format!(
                "cache mount {id}: more than {MAX_COPIES} private users at once"
            )))
        }
    }
}

/// The contents an imported cache holds for a cache mount this machine does not have yet,
/// as a tar in the content store; and the mount noted, under a name that means the same on
/// any machine (its id, and its seed's owner and mode: never a snapshot id), for
/// `--cache-to …,cache-mounts=true`.
async fn imported_cache_mount(
    solver: &Solver,
    id: &str,
    name: &str,
    m: &pb::Mount,
    base: &Ref,
) -> Result<Option<PathBuf>, SolveError> {
    let mut portable = Sha256::new_with_prefix(id.as_bytes());
    if let Ref::Snapshot(seed) = base {
        // The seed is the directory the frontend made for the mount's uid, gid and mode.
        use std::os::unix::fs::MetadataExt;
        let selector = m.selector.trim_start_matches('/');
        let seeded = solver
            .snapshots
            .lowers(&seed.id)?
            .into_iter()
            .find_map(|layer| {
                let path = safe::resolve(&layer, selector).ok()?;
                std::fs::symlink_metadata(path).ok()
            });
        if let Some(md) = seeded {
            portable.update(format!("\0{}:{}:{:o}", md.uid(), md.gid(), md.mode()));
        }
    }
    let portable = hex::encode(portable.finalize());
    let dir = solver.snapshots.state.cache_mounts_dir().join(name);
    solver.note_cache_mount(portable.clone(), dir.clone());
    let Some(import) = solver.cache_import().await else {
        return Ok(None);
    };
    if dir.exists() {
        return Ok(None);
    }
    let content = &solver.snapshots.content;
    let started = std::time::Instant::now();
    let tar = import.cache_mount(content, &portable).await;
    tracing::debug!(
        id,
        found = tar.is_some(),
        elapsed = ?started.elapsed(),
        "cache mount looked up in the imported caches (downloaded, decompressed, verified)"
    );
    Ok(tar.map(|d| content.path(&d)))
}

/// The directory of one cache mount, created (seeded from the mount's input) if new, and
/// recorded and leased before it exists, so that garbage collection (in this process after
/// the build, or in another) neither takes it for an orphan nor removes it in use.
fn prepare_cache_dir(
    solver: &Solver,
    name: &str,
    id: &str,
    m: &pb::Mount,
    base: &Ref,
    imported: Option<&std::path::Path>,
) -> Result<PathBuf, SolveError> {
    let dir = solver.snapshots.state.cache_mounts_dir().join(name);
    let meta = &solver.snapshots.meta;
    meta.lease(&solver.snapshots.owner, &[name])?;
    let key = format!("cache-mount:{name}");
    if meta.lookup(&key)?.is_none() {
        let now = crate::cache::meta::now();
        meta.commit(
            &crate::cache::meta::SnapshotRecord {
                id: name.to_string(),
                parent: None,
                kind: SnapshotKind::CacheMount,
                size: 0,
                diff_id: None,
                description: format!("cache mount {id}"),
                created: now,
                last_used: now,
                usage_count: 1,
                tar_format: 0,
            },
            &[&key],
        )?;
    }
    if !dir.exists() {
        // A new cache starts as a copy of the mount's input (the frontend seeds it with the
        // directory owner and mode the Dockerfile asked for).
        let staging = solver
            .snapshots
            .state
            .tmp_dir()
            .join(super::snapshots::unique_name());
        std::fs::create_dir_all(&staging).map_err(SolveError::io("creating", &staging))?;
        if !matches!(base, Ref::Scratch) {
            let view = solver.snapshots.view(base)?;
            let selector = m.selector.trim_start_matches('/');
            let src = if selector.is_empty() {
                view.path.clone()
            } else {
                safe::resolve(&view.path, selector)?
            };
            if let Ok(md) = std::fs::metadata(&src) {
                use std::os::unix::fs::MetadataExt;
                std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(md.mode()))
                    .map_err(SolveError::io("setting the mode of", &staging))?;
                chown(&staging, Some(md.uid()), Some(md.gid()))
                    .map_err(SolveError::io("chowning", &staging))?;
            }
        }
        // `--cache-from … ` brought this cache's contents from elsewhere.
        if let Some(tar) = imported {
            // Timed under --debug: the profile of a restore (issue 15's benchmark).
            let started = std::time::Instant::now();
            let file = std::fs::File::open(tar).map_err(SolveError::io("opening", tar))?;
            crate::snapshot::apply::extract_layer(std::io::BufReader::new(file), &staging)?;
            tracing::debug!(
                id,
                elapsed = ?started.elapsed(),
                "cache mount unpacked from the imported cache"
            );
        }
        if std::fs::rename(&staging, &dir).is_err() {
            // Another build created it first.
            let _ = std::fs::remove_dir_all(&staging);
        }
    }
    Ok(dir)
}

/// Writes a secret to a private file for a read-only bind. `None` when an optional secret
/// is absent.
fn secret_file(
    solver: &Solver,
    m: &pb::Mount,
    ws: &Workspace,
    index: usize,
) -> Result<Option<PathBuf>, SolveError> {
    let opt = m.secret_opt.clone().unwrap_or_default();
    let Some(data) = solver.opts.secrets.get(&opt.id) else {
        if opt.optional {
            return Ok(None);
        }
        return Err(missing_secret(&opt.id));
    };
    let dir = ws.subdir(&format!("secret-{index}"))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .map_err(SolveError::io("securing", &dir))?;
    let path = dir.join("secret");
    std::fs::write(&path, data).map_err(SolveError::io("writing", &path))?;
    let mode = if opt.mode == 0 {
        0o400
    } else {
        opt.mode & 0o7777
    };
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
        .map_err(SolveError::io("setting the mode of", &path))?;
    chown(&path, Some(opt.uid), Some(opt.gid)).map_err(SolveError::io("chowning", &path))?;
    Ok(Some(path))
}

fn missing_secret(id: &str) -> SolveError {
    SolveError::Other(format!(
        "secret {id} not found: pass it with --secret id={id},src=PATH"
    ))
}

/// The agent socket for `--mount=type=ssh`, bound into the step as it is (its owner and
/// mode are the host's). `None` when an optional agent was not given.
fn ssh_agent(solver: &Solver, m: &pb::Mount) -> Result<Option<PathBuf>, SolveError> {
    let opt = m.ssh_opt.clone().unwrap_or_default();
    let id = if opt.id.is_empty() {
        "default"
    } else {
        &opt.id
    };
    match solver.opts.ssh_agents.get(id) {
        Some(socket) => Ok(Some(socket.clone())),
        None if opt.optional => Ok(None),
        None => Err(SolveError::Other(format!(
            "no SSH agent for id {id:?}: pass one with --ssh {id}[=SOCKET|KEYFILE[,KEYFILE...]]"
        ))),
    }
}

/// The last lines of a step's output.
#[derive(Default)]
struct Tail {
    lines: VecDeque<String>,
    partial: Vec<u8>,
}

impl Tail {
    fn push(&mut self, data: &[u8]) {
        self.partial.extend_from_slice(data);
        while let Some(i) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            self.lines
                .push_back(String::from_utf8_lossy(&line).trim_end().to_string());
            if self.lines.len() > TAIL_LINES {
                self.lines.pop_front();
            }
        }
    }

    fn lines(mut self) -> Vec<String> {
        if !self.partial.is_empty() {
            self.lines.push_back(
                String::from_utf8_lossy(&self.partial)
                    .trim_end()
                    .to_string(),
            );
            if self.lines.len() > TAIL_LINES {
                self.lines.pop_front();
            }
        }
        self.lines.into()
    }
}

/// `Meta.ulimit` to a process limit; docker writes unlimited as `-1`, which BuildKit
/// turns into RLIM_INFINITY by its conversion to uint64; any negative value is unlimited here.
fn rlimit(u: &pb::Ulimit) -> Rlimit {
    let value = |v: i64| u64::try_from(v).unwrap_or(u64::MAX);
    Rlimit {
        name: u.name.clone(),
        soft: value(u.soft),
        hard: value(u.hard),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_not_carried_out_are_refused_by_name() {
        assert!(refuse_unsupported(&pb::Meta::default()).is_ok());

        let cgroup = pb::Meta {
            cgroup_parent: "/custom".into(),
            ..Default::default()
        };
        let exit_codes = pb::Meta {
            valid_exit_codes: vec![0, 1],
            ..Default::default()
        };
        for (meta, named) in [
            (&cgroup, "cgroup parent"),
            (&exit_codes, "valid exit codes"),
        ] {
            let err = refuse_unsupported(meta).unwrap_err().to_string();
            assert!(err.contains(named), "{err}");
            assert!(err.contains("not supported yet"), "{err}");
        }
    }
}
