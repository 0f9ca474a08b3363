//! The stage graph: bases, `COPY --from` and `RUN --mount=from=` edges, the target and
//! what it needs, and the base images of the stages it needs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::ConvertOptions;
use super::args::Platforms;
use super::dispatch::prefix_command;
use super::env::EnvList;
use super::error::{ConvertError, ConvertErrorKind};
use super::image::ImageConfig;
use super::named::{self, NamedContext};
use super::platform::Platform;
use crate::instructions::{self, Command, CommandKind, Dockerfile};
use crate::llb::{self, Constraints, ImageOptions, SourceMap, State};
use crate::shell::{EmptyEnv, Lexer};

const SCRATCH: &str = "scratch";
const COMMAND_DESCRIPTION: &str = "com.docker.dockerfile.v1.command";

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Base {
    Scratch,
    Image,
    /// An earlier stage.
    Stage(usize),
}

/// A command and the stages it reads from.
#[derive(Debug, Clone)]
pub(super) struct Cmd {
    pub command: Command,
    /// `COPY --from`.
    pub copy_from: Option<usize>,
    /// One per `--mount` of a RUN.
    pub mount_sources: Vec<usize>,
    /// Comes from an ONBUILD trigger of the base.
    pub onbuild: bool,
}

/// A base image after resolution.
#[derive(Debug, Clone)]
pub(super) struct ResolvedBase {
    pub state: State,
    pub image: ImageConfig,
    pub platform: Platform,
    /// The FROM line used the first progress number.
    pub from_counted: bool,
}

/// A stage, or an image used by `--from` without a stage (`unregistered`).
#[derive(Debug, Clone)]
pub(super) struct StageNode {
    pub name: Option<String>,
    pub index: usize,
    /// Name in progress output: the stage name or `stage-N`; empty for a lone stage.
    pub display: String,
    pub base_name: String,
    pub base: Base,
    pub platform: Option<Platform>,
    pub line: usize,
    /// The FROM's last line (it may continue over several).
    pub end_line: usize,
    pub source_code: String,
    pub commands: Vec<Cmd>,
    pub deps: Vec<(usize, usize)>,
    pub unregistered: bool,
    pub cmd_total: usize,
    pub ignore_cache: bool,
    pub resolved: Option<ResolvedBase>,
    /// A named context of the stage's name replaces it: its instructions are not run.
    pub overridden: bool,
    /// The named context the stage starts from, by its name.
    pub named: Option<(String, NamedContext)>,
    onbuild_done: bool,
}

impl StageNode {
    /// The stage's name as a target.
    pub(super) fn display_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("stage-{}", self.index))
    }
}

/// All stages, in Dockerfile order, then the unregistered image sources.
#[derive(Debug)]
pub(super) struct Graph {
    pub stages: Vec<StageNode>,
    registered: usize,
    /// The Dockerfile, which the base images' locations point into.
    source_map: Arc<SourceMap>,
}

impl Graph {
    pub(super) fn build(
        file: &Dockerfile,
        global_args: &EnvList,
        lexer: &Lexer,
        opts: &ConvertOptions,
        source_map: &Arc<SourceMap>,
    ) -> Result<Self, ConvertError> {
        let mut graph = Graph {
            stages: Vec::new(),
            registered: file.stages.len(),
            source_map: source_map.clone(),
        };
        for (i, st) in file.stages.iter().enumerate() {
            let line = st.location.start_line;
            let base_name = lexer
                .process_word(&st.base, global_args)
                .map_err(|e| ConvertErrorKind::Expansion(e.to_string()).at(line))?
                .result;
            if base_name.is_empty() {
                return Err(ConvertErrorKind::BlankBaseName(st.base.clone()).at(line));
            }
            let platform = match &st.platform {
                None => None,
                Some(text) => {
                    let expanded = lexer
                        .process_word(text, global_args)
                        .map_err(|e| ConvertErrorKind::Expansion(e.to_string()).at(line))?
                        .result;
                    let parsed = Platform::parse(&expanded).map_err(|reason| {
                        ConvertErrorKind::Platform {
                            text: text.clone(),
                            reason,
                        }
                        .at(line)
                    })?;
                    Some(parsed)
                }
            };
            let overridden = st
                .name
                .as_deref()
                .is_some_and(|name| named::lookup(opts, name).is_some());
            let base = if overridden {
                Base::Image
            } else {
                graph.base_of(&base_name)
            };
            let mut total = usize::from(base_name != SCRATCH && !matches!(base, Base::Stage(_)));
            total += st.commands.iter().filter(|c| counts(&c.kind)).count();
            graph.stages.push(StageNode {
                name: st.name.clone(),
                index: i,
                display: st.name.clone().unwrap_or_else(|| format!("stage-{i}")),
                base_name,
                base,
                platform,
                line,
                end_line: st.location.end_line,
                source_code: st.location.original.trim().to_owned(),
                commands: Vec::new(),
                deps: Vec::new(),
                unregistered: false,
                cmd_total: total,
                ignore_cache: opts.no_cache.applies_to(st.name.as_deref()),
                resolved: None,
                overridden,
                named: None,
                onbuild_done: false,
            });
        }
        for (i, st) in file.stages.iter().enumerate() {
            for command in &st.commands {
                let cmd = graph.command(command.clone(), false, lexer)?;
                graph.add_command(i, cmd, false);
            }
        }
        if graph.stages.len() == 1 {
            graph.stages[0].display.clear();
        }
        Ok(graph)
    }

    /// A name is a stage if an earlier stage has it, exactly as written.
    fn base_of(&self, base_name: &str) -> Base {
        if let Some(i) = self
            .stages
            .iter()
            .rposition(|s| !s.unregistered && s.name.as_deref() == Some(base_name))
        {
            return Base::Stage(i);
        }
        if base_name == SCRATCH {
            Base::Scratch
        } else {
            Base::Image
        }
    }

    fn find_by_name(&self, name: &str) -> Option<usize> {
        let lower = name.to_lowercase();
        self.stages
            .iter()
            .rposition(|s| s.name.as_deref() == Some(lower.as_str()))
    }

    fn unregistered(&mut self, base_name: &str, line: usize) -> usize {
        let index = self.stages.len();
        let base = if base_name == SCRATCH {
            Base::Scratch
        } else {
            Base::Image
        };
        self.stages.push(StageNode {
            name: None,
            index,
            display: format!("stage-{index}"),
            base_name: base_name.to_owned(),
            base,
            platform: None,
            line,
            end_line: line,
            source_code: String::new(),
            commands: Vec::new(),
            deps: Vec::new(),
            unregistered: true,
            cmd_total: 0,
            ignore_cache: false,
            resolved: None,
            overridden: false,
            named: None,
            onbuild_done: false,
        });
        index
    }

    /// Finds the stages a command reads from, adding image sources as needed.
    fn command(
        &mut self,
        command: Command,
        onbuild: bool,
        lexer: &Lexer,
    ) -> Result<Cmd, ConvertError> {
        let line = command.location.start_line;
        let mut cmd = Cmd {
            command,
            copy_from: None,
            mount_sources: Vec::new(),
            onbuild,
        };
        match &cmd.command.kind {
            CommandKind::Copy(copy) => {
                if let Some(from) = &copy.from {
                    let unexpanded = lexer
                        .process_word(from, &EmptyEnv)
                        .map_err(|e| ConvertErrorKind::Expansion(e.to_string()).at(line))?;
                    if &unexpanded.result != from {
                        return Err(ConvertErrorKind::VariableInFrom.at(line));
                    }
                    let source = match from.parse::<i64>() {
                        Ok(index) => {
                            if index < 0 || index as usize >= self.stages.len() {
                                return Err(ConvertErrorKind::StageIndex(index).at(line));
                            }
                            index as usize
                        }
                        Err(_) => match self.find_by_name(from) {
                            Some(i) => i,
                            None => self.unregistered(from, line),
                        },
                    };
                    cmd.copy_from = Some(source);
                }
            }
            CommandKind::Run(run) => {
                let froms: Vec<String> = run
                    .mounts
                    .iter()
                    .map(|m| m.from.clone().unwrap_or_else(|| SCRATCH.to_owned()))
                    .collect();
                for from in froms {
                    let source = match self.find_by_name(&from) {
                        Some(i) => i,
                        None => self.unregistered(&from, line),
                    };
                    cmd.mount_sources.push(source);
                }
            }
            _ => {}
        }
        Ok(cmd)
    }

    fn add_command(&mut self, stage: usize, cmd: Cmd, front: bool) {
        let line = cmd.command.location.start_line;
        let sources: Vec<usize> = cmd
            .copy_from
            .iter()
            .chain(&cmd.mount_sources)
            .copied()
            .collect();
        let node = &mut self.stages[stage];
        for s in sources {
            if !node.deps.iter().any(|(d, _)| *d == s) {
                node.deps.push((s, line));
            }
        }
        if front {
            node.commands.insert(0, cmd);
        } else {
            node.commands.push(cmd);
        }
    }

    /// The stage to build.
    pub(super) fn target(&self, name: Option<&str>) -> Result<usize, ConvertError> {
        match name {
            None => Ok(self.registered - 1),
            Some(name) => {
                let lower = name.to_lowercase();
                self.stages[..self.registered]
                    .iter()
                    .rposition(|s| s.name.as_deref() == Some(lower.as_str()))
                    .ok_or_else(|| ConvertError::TargetNotFound(name.to_owned()))
            }
        }
    }

    /// Fails on a stage that (indirectly) copies from itself.
    pub(super) fn check_cycles(&self) -> Result<(), ConvertError> {
        let mut visited = vec![false; self.stages.len()];
        for start in 0..self.stages.len() {
            let mut path = Vec::new();
            if let Some(line) = self.visit(start, &mut visited, &mut path) {
                return Err(ConvertErrorKind::CircularDependency(
                    self.stages[start].display_name(),
                )
                .at(line));
            }
        }
        Ok(())
    }

    fn visit(&self, stage: usize, visited: &mut [bool], path: &mut Vec<usize>) -> Option<usize> {
        if visited[stage] {
            return None;
        }
        visited[stage] = true;
        path.push(stage);
        for &(dep, line) in &self.stages[stage].deps {
            if path.contains(&dep) {
                return Some(line);
            }
            if let Some(line) = self.visit(dep, visited, path) {
                return Some(line);
            }
        }
        path.pop();
        None
    }

    /// Stages the target needs, in order.
    pub(super) fn reachable(&self, target: usize) -> BTreeSet<usize> {
        let mut out = BTreeSet::new();
        let mut todo = vec![target];
        while let Some(s) = todo.pop() {
            if !out.insert(s) {
                continue;
            }
            if let Base::Stage(b) = self.stages[s].base {
                todo.push(b);
            }
            todo.extend(self.stages[s].deps.iter().map(|(d, _)| *d));
        }
        out
    }

    /// Resolves the base images the target needs and adds the ONBUILD triggers of
    /// their bases, until no trigger adds a dependency.
    pub(super) fn resolve(
        &mut self,
        target: usize,
        resolver: &dyn super::ImageResolver,
        platforms: &Platforms,
        lexer: &Lexer,
        opts: &ConvertOptions,
    ) -> Result<BTreeSet<usize>, ConvertError> {
        loop {
            let reachable = self.reachable(target);
            for &s in &reachable {
                if self.stages[s].resolved.is_none()
                    && !matches!(self.stages[s].base, Base::Stage(_))
                {
                    if let Some(resolved) = self.resolve_base(s, resolver, platforms, opts)? {
                        self.stages[s].resolved = Some(resolved);
                    }
                }
            }
            let mut new_deps = false;
            for &s in &reachable {
                if self.stages[s].onbuild_done {
                    continue;
                }
                self.stages[s].onbuild_done = true;
                if self.stages[s].overridden {
                    continue;
                }
                let triggers: Vec<String> = match self.stages[s].base {
                    Base::Stage(b) => self.stages[b]
                        .commands
                        .iter()
                        .filter_map(|c| match &c.command.kind {
                            CommandKind::Onbuild(expr) if !c.onbuild => Some(expr.clone()),
                            _ => None,
                        })
                        .collect(),
                    _ => match &mut self.stages[s].resolved {
                        Some(r) => {
                            let triggers = r.image.onbuild();
                            r.image.remove("OnBuild");
                            triggers
                        }
                        None => Vec::new(),
                    },
                };
                let line = self.stages[s].line;
                let mut cmds = Vec::new();
                for trigger in &triggers {
                    let command = parse_trigger(trigger, line)?;
                    let cmd = self.command(command, true, lexer)?;
                    new_deps |= cmd.copy_from.is_some() || !cmd.mount_sources.is_empty();
                    cmds.push(cmd);
                }
                self.stages[s].cmd_total += cmds.len();
                for cmd in cmds.into_iter().rev() {
                    self.add_command(s, cmd, true);
                }
            }
            if !new_deps {
                self.check_cycles()?;
                return Ok(reachable);
            }
        }
    }

    /// The state and config a stage starts from, unless its base is a stage.
    fn resolve_base(
        &mut self,
        s: usize,
        resolver: &dyn super::ImageResolver,
        platforms: &Platforms,
        opts: &ConvertOptions,
    ) -> Result<Option<ResolvedBase>, ConvertError> {
        let node = &self.stages[s];
        let platform = node
            .platform
            .clone()
            .unwrap_or_else(|| platforms.target.clone());
        if !matches!(node.base, Base::Stage(_)) {
            let name = match &node.name {
                Some(name) if node.overridden => name,
                _ => &node.base_name,
            };
            if let Some((key, context)) = named::lookup(opts, name) {
                let resolved = named::load(context, key, &platform, opts, resolver, node.line)?;
                self.stages[s].named = Some((key.to_owned(), context.clone()));
                return Ok(Some(resolved));
            }
        }
        match node.base {
            Base::Stage(_) => Ok(None),
            Base::Scratch => Ok(Some(ResolvedBase {
                state: State::scratch(),
                image: ImageConfig::empty(&platforms.target),
                platform: platforms.target.clone(),
                from_counted: false,
            })),
            Base::Image => {
                let line = node.line;
                let normalized = llb::normalize_image_ref(&node.base_name).map_err(|_| {
                    ConvertErrorKind::InvalidReference(node.base_name.clone()).at(line)
                })?;
                let resolved = resolver.resolve(&normalized, &platform).map_err(|source| {
                    ConvertErrorKind::ResolveImage {
                        reference: node.base_name.clone(),
                        source,
                    }
                    .at(line)
                })?;
                let image = ImageConfig::from_json(resolved.config);
                let name = normalized.split('@').next().unwrap_or(&normalized);
                let pinned = if resolved.digest.is_empty() {
                    normalized.clone()
                } else {
                    format!("{name}@{}", resolved.digest)
                };
                if image.has_no_layers() {
                    return Ok(Some(ResolvedBase {
                        state: State::scratch(),
                        image,
                        platform,
                        from_counted: false,
                    }));
                }
                let node = &self.stages[s];
                let stage = if opts.multi_platform {
                    format!("{platform} {}", node.display).trim_end().to_owned()
                } else {
                    node.display.clone()
                };
                let custom =
                    prefix_command(&stage, node.cmd_total, 1, false, &format!("FROM {pinned}"));
                let mut constraints = Constraints::default()
                    .with_platform(platform.to_pb())
                    .with_custom_name(custom)
                    .with_description(COMMAND_DESCRIPTION, node.source_code.clone());
                // An image a `--from` names without a stage has no FROM line, as in BuildKit.
                if !node.unregistered {
                    constraints = constraints.with_location(
                        self.source_map
                            .location(vec![llb::line_range(node.line, node.end_line)]),
                    );
                }
                let state = llb::image(
                    &pinned,
                    ImageOptions {
                        constraints,
                        ..Default::default()
                    },
                )
                .map_err(|e| ConvertErrorKind::Llb(e).at(line))?;
                Ok(Some(ResolvedBase {
                    state,
                    image,
                    platform,
                    from_counted: node.cmd_total > 0,
                }))
            }
        }
    }

    /// Narrows each directory context that only `COPY --from` reads to the paths read, as
    /// BuildKit does; one that a RUN may read, a mount, a later stage or the result is sent
    /// whole.
    pub(super) fn narrow_named_locals(
        &mut self,
        target: usize,
        copied_from: &BTreeMap<usize, BTreeSet<String>>,
        opts: &ConvertOptions,
    ) {
        for s in 0..self.stages.len() {
            let Some((
                name,
                NamedContext::Local {
                    name: local,
                    excludes,
                },
            )) = &self.stages[s].named
            else {
                continue;
            };
            let node = &self.stages[s];
            let runs = !node.overridden
                && node
                    .commands
                    .iter()
                    .any(|c| matches!(c.command.kind, CommandKind::Run(_)));
            let read_whole = s == target
                || runs
                || self.stages.iter().any(|n| {
                    n.base == Base::Stage(s)
                        || n.commands.iter().any(|c| c.mount_sources.contains(&s))
                });
            let Some(paths) = copied_from.get(&s).filter(|_| !read_whole) else {
                continue;
            };
            let state = named::local_state(name, local, excludes, super::follow_paths(paths), opts);
            if let Some(resolved) = &mut self.stages[s].resolved {
                resolved.state = state;
            }
        }
    }
}

/// Whether an instruction takes a progress number (`[2/5]`).
fn counts(kind: &CommandKind) -> bool {
    matches!(
        kind,
        CommandKind::Add(_) | CommandKind::Copy(_) | CommandKind::Run(_) | CommandKind::Workdir(_)
    )
}

/// Parses an ONBUILD trigger as an instruction of the stage on `line`.
fn parse_trigger(trigger: &str, line: usize) -> Result<Command, ConvertError> {
    let onbuild = |msg: String| ConvertErrorKind::Onbuild(msg).at(line);
    let parsed = crate::parser::parse(&format!("FROM scratch\n{trigger}"))
        .map_err(|e| onbuild(e.to_string()))?;
    let file = instructions::parse(&parsed).map_err(|e| onbuild(e.to_string()))?;
    let mut commands = file
        .stages
        .into_iter()
        .next()
        .map(|s| s.commands)
        .unwrap_or_default();
    if commands.len() != 1 {
        return Err(onbuild(
            "onbuild trigger should be a single expression".to_owned(),
        ));
    }
    let mut command = commands.remove(0);
    command.location.start_line = line;
    command.location.end_line = line;
    Ok(command)
}
