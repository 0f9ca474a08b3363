//! RUN: an exec op over the stage, with its mounts.

use bud_proto::pb;

use super::dispatch::{COMMAND_DESCRIPTION, Stage};
use super::error::ConvertErrorKind;
use super::stages::Cmd;
use crate::gopath::{self, clean_abs};
use crate::instructions::{
    MountSpec, MountType, NetworkMode, Run, Security, Sharing, ShellOrExec, parse_mount,
};
use crate::llb::{
    self, Chown, ExecBuilder, FileBuilder, MkdirOptions, Mount, MountKind, State, UserRef,
};
use crate::parser::parse_heredoc_word;
use crate::shell::Lexer;

type Result<T, E = ConvertErrorKind> = std::result::Result<T, E>;

impl Stage<'_, '_> {
    pub(super) fn run(&mut self, run: &Run, cmd: &Cmd, original: &str) -> Result<()> {
        let mut custom = original.to_owned();
        let mut mounts = Vec::new();
        let mut args = match &run.cmd {
            ShellOrExec::Exec(args) => args.clone(),
            ShellOrExec::Shell(text) => vec![text.clone()],
        };
        if !run.heredocs.is_empty() {
            let single = matches!(&run.cmd, ShellOrExec::Shell(t)
                if matches!(parse_heredoc_word(t), Ok(Some(ref w)) if w.name == run.heredocs[0].name));
            if single {
                let doc = &run.heredocs[0];
                let data = doc.body();
                if self.st.image.os() != "windows" && data.starts_with("#!") {
                    // A script with its interpreter: run it as a file.
                    let script = llb::file(
                        FileBuilder::new(State::scratch())
                            .constraints(
                                llb::Constraints::default()
                                    .with_custom_name("[internal] preparing inline document"),
                            )
                            .mkfile(
                                format!("/{}", doc.name),
                                0o755,
                                data.clone(),
                                Default::default(),
                            ),
                    )?;
                    mounts.push(Mount {
                        dest: "/dev/pipes/".to_owned(),
                        kind: MountKind::Bind {
                            source: script,
                            selector: "/".to_owned(),
                            readonly: true,
                            discard_output: false,
                        },
                    });
                    args = vec![format!("/dev/pipes/{}", doc.name)];
                } else {
                    args = vec![data.clone()];
                }
                custom.push_str(&format!(" ({})", summarize_heredoc(&doc.content)));
            } else {
                let mut text = args.concat();
                for doc in &run.heredocs {
                    text.push('\n');
                    text.push_str(&doc.content);
                    text.push_str(&doc.name);
                }
                args = vec![text];
            }
        }
        if let ShellOrExec::Shell(_) = run.cmd {
            args = self.with_shell(&args.concat());
        }

        let (extra, secret_env, secret_names) = self.run_mounts(run, cmd)?;
        mounts.extend(extra);
        // `--shm-size` is a sized tmpfs over the default /dev/shm; solvers without sized
        // tmpfs mounts keep their default, as with BuildKit's frontend.
        if let Some(size) = self.ctx.opts.shm_size.filter(|s| *s > 0)
            && self.ctx.opts.caps.tmpfs_size
            && !mounts.iter().any(|m| m.dest == "/dev/shm")
        {
            mounts.push(Mount {
                dest: "/dev/shm".to_owned(),
                kind: MountKind::Tmpfs { size },
            });
        }

        let env_for_name = {
            let mut env = self.st.env.clone();
            for name in &secret_names {
                env.set(name, "****");
            }
            env
        };
        let name_lexer = Lexer::new(self.ctx.lexer.escape())
            .raw_quotes(true)
            .skip_unset_env(true);
        let expanded = name_lexer
            .process_word(&custom, &env_for_name)
            .map(|w| w.result)
            .unwrap_or(custom);
        let expanded = match expanded.split_once(' ') {
            Some((kw, rest)) => format!("{} {rest}", kw.to_uppercase()),
            None => expanded.to_uppercase(),
        };
        let name = self.next_name(&expanded, cmd.onbuild);

        let constraints = self
            .constraints()
            .with_platform(self.st.platform.to_pb())
            .with_custom_name(name)
            .with_description(COMMAND_DESCRIPTION, original);
        let meta = pb::Meta {
            args: args.clone(),
            env: self.st.env.to_strings(),
            cwd: self.st.dir.clone(),
            user: self.st.user.clone(),
            proxy_env: self.ctx.proxy_env.clone(),
            ulimit: self.ctx.opts.ulimits.clone(),
            extra_hosts: self.ctx.opts.extra_hosts.clone(),
            ..Default::default()
        };
        let outputs = llb::exec(ExecBuilder {
            meta,
            root: self.st.state.clone(),
            mounts,
            network: match run.network {
                NetworkMode::Default => pb::NetMode::Unset,
                NetworkMode::None => pb::NetMode::None,
                NetworkMode::Host => pb::NetMode::Host,
            },
            security: match run.security {
                Security::Sandbox => pb::SecurityMode::Sandbox,
                Security::Insecure => pb::SecurityMode::Insecure,
            },
            secret_env,
            cdi_devices: run
                .devices
                .iter()
                .map(|d| pb::CdiDevice {
                    name: d.name.clone(),
                    optional: !d.required,
                })
                .collect(),
            constraints,
        })?;
        self.st.state = outputs.root;
        let history = format!("RUN {} # buildkit", self.run_history(&args));
        self.st.image.commit(history, true);
        Ok(())
    }

    /// The `--mount`s, expanded with the stage's environment.
    fn run_mounts(
        &mut self,
        run: &Run,
        cmd: &Cmd,
    ) -> Result<(Vec<Mount>, Vec<pb::SecretEnv>, Vec<String>)> {
        let mut mounts = Vec::new();
        let mut secret_env = Vec::new();
        let mut secret_names = Vec::new();
        let mut ssh_count = 0;
        for (i, raw) in run.mounts.iter().enumerate() {
            let env = self.st.env.clone();
            let lexer = self.ctx.lexer;
            let m: MountSpec = parse_mount(&raw.raw, |v| {
                lexer
                    .process_word(v, &env)
                    .map(|w| w.result)
                    .map_err(|e| e.to_string())
            })
            .map_err(ConvertErrorKind::Mount)?;
            match m.mount_type {
                MountType::Secret => {
                    let id = match (&m.id, &m.source, &m.target) {
                        (_, Some(src), _) if !src.is_empty() => src.clone(),
                        (Some(id), _, _) if !id.is_empty() => id.clone(),
                        (_, _, Some(t)) if !t.is_empty() => base_name(t),
                        _ => {
                            return Err(ConvertErrorKind::Mount(
                                "one of source, target required".into(),
                            ));
                        }
                    };
                    let target = match (&m.target, &m.env) {
                        (Some(t), _) if !t.is_empty() => Some(t.clone()),
                        (_, None) => Some(format!("/run/secrets/{}", base_name(&id))),
                        _ => None,
                    };
                    if let Some(name) = &m.env {
                        secret_env.push(pb::SecretEnv {
                            id: id.clone(),
                            name: name.clone(),
                            optional: !m.required,
                        });
                        secret_names.push(name.clone());
                    }
                    if let Some(dest) = target {
                        mounts.push(Mount {
                            dest,
                            kind: MountKind::Secret(pb::SecretOpt {
                                id,
                                uid: m.uid.unwrap_or(0),
                                gid: m.gid.unwrap_or(0),
                                mode: m.mode.unwrap_or(0o400),
                                optional: !m.required,
                            }),
                        });
                    }
                    continue;
                }
                MountType::Ssh => {
                    if m.source.is_some() {
                        return Err(ConvertErrorKind::Mount(
                            "ssh does not support source".into(),
                        ));
                    }
                    let dest = m
                        .target
                        .clone()
                        .filter(|t| !t.is_empty())
                        .unwrap_or_else(|| format!("/run/buildkit/ssh_agent.{ssh_count}"));
                    ssh_count += 1;
                    mounts.push(Mount {
                        dest,
                        kind: MountKind::Ssh(pb::SshOpt {
                            id: m
                                .id
                                .clone()
                                .filter(|s| !s.is_empty())
                                .unwrap_or_else(|| "default".to_owned()),
                            uid: m.uid.unwrap_or(0),
                            gid: m.gid.unwrap_or(0),
                            mode: m.mode.unwrap_or(0o600),
                            optional: !m.required,
                        }),
                    });
                    continue;
                }
                _ => {}
            }
            let target = m.target.clone().unwrap_or_default();
            let mut dest = clean_abs(&if target.starts_with('/') {
                target.clone()
            } else {
                format!("{}/{target}", self.st.dir)
            });
            if target.is_empty() {
                dest = "/".to_owned();
            }
            if dest == "/" {
                return Err(ConvertErrorKind::MountTarget(dest));
            }
            let from_stage = m.from.is_some() || m.mount_type == MountType::Cache;
            let mut source = if from_stage {
                let src = cmd.mount_sources.get(i).copied();
                let dispatched = src.and_then(|s| self.done.state_of(s));
                match dispatched {
                    Some(s) => s.state.clone(),
                    None if src.is_some_and(|s| self.graph.stages[s].unregistered) => src
                        .and_then(|s| self.graph.stages[s].resolved.as_ref())
                        .map(|r| r.state.clone())
                        .unwrap_or_default(),
                    None => {
                        return Err(ConvertErrorKind::MountFromLaterStage {
                            from: m.from.clone().unwrap_or_else(|| "scratch".into()),
                            target: target.clone(),
                        });
                    }
                }
            } else {
                self.context.clone()
            };
            let src_path = clean_abs(m.source.as_deref().unwrap_or(""));
            let mut selector = String::new();
            if src_path != "/" {
                selector = src_path.clone();
            } else if m.uid.is_some() || m.gid.is_some() || m.mode.is_some() {
                source = llb::file(
                    FileBuilder::new(source)
                        .constraints(
                            llb::Constraints::default()
                                .with_custom_name("[internal] setting cache mount permissions"),
                        )
                        .mkdir(
                            "/cache",
                            m.mode.unwrap_or(0o755),
                            MkdirOptions {
                                make_parents: false,
                                owner: Some(Chown {
                                    user: Some(UserRef::Id(m.uid.unwrap_or(0))),
                                    group: Some(UserRef::Id(m.gid.unwrap_or(0))),
                                }),
                                timestamp: None,
                            },
                        ),
                )?;
                selector = "/cache".to_owned();
            }
            let kind = match m.mount_type {
                MountType::Tmpfs => MountKind::Tmpfs {
                    size: m.size.map_or(0, |s| s as i64),
                },
                MountType::Cache => MountKind::Cache {
                    id: format!(
                        "{}/{}",
                        self.ctx.opts.cache_id_namespace,
                        m.id.clone()
                            .filter(|s| !s.is_empty())
                            .unwrap_or_else(|| gopath::clean(&target))
                    ),
                    sharing: match m.sharing {
                        Some(Sharing::Private) => pb::CacheSharingOpt::Private,
                        Some(Sharing::Locked) => pb::CacheSharingOpt::Locked,
                        _ => pb::CacheSharingOpt::Shared,
                    },
                    source,
                    selector,
                },
                _ => MountKind::Bind {
                    source,
                    selector,
                    readonly: m.readonly,
                    discard_output: !m.readonly && self.ctx.opts.caps.bind_read_write_no_output,
                },
            };
            mounts.push(Mount { dest, kind });
            if m.from.is_none() && m.mount_type != MountType::Cache {
                self.context_paths.insert(src_path);
            }
        }
        Ok((mounts, secret_env, secret_names))
    }
}

fn base_name(p: &str) -> String {
    let trimmed = p.trim_end_matches('/');
    match trimmed.rsplit('/').next() {
        Some("") | None => "/".to_owned(),
        Some(b) => b.to_owned(),
    }
}

/// The first line of a heredoc, with `...` when there are more.
fn summarize_heredoc(doc: &str) -> String {
    let doc = doc.trim();
    let normalized = doc.replace("\r\n", "\n");
    let mut lines = normalized.split('\n');
    let first = lines.next().unwrap_or_default().to_owned();
    if lines.next().is_some() {
        format!("{first}...")
    } else {
        first
    }
}
