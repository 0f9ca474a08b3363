//! What a build of the target takes from its user (BuildKit's `Outline` subrequest, what
//! `--call=outline` prints): the build args its stages declare or its FROM lines use, with
//! their values and `# NAME …` descriptions, and the secrets and SSH sockets its RUN
//! mounts ask for.

use std::collections::{BTreeSet, HashMap};

use crate::convert::{ConvertOptions, ImageResolver, Platform};
use crate::instructions::{CommandKind, MountType, Stage, parse_mount};
use crate::lint::flow::{self, Base, DefaultArgs, StageState};
use crate::lint::{LintError, LintOptions};
use crate::shell::Lexer;
use crate::targets::doc_comment;

/// The outline of one target.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outline {
    /// The target stage's name (empty for an unnamed stage).
    pub name: String,
    /// Its `# name …` description.
    pub description: String,
    /// Build args in the order of their lines.
    pub args: Vec<OutlineArg>,
    /// Secret mounts, by id.
    pub secrets: Vec<Requirement>,
    /// SSH mounts, by id.
    pub ssh: Vec<Requirement>,
}

/// A build arg.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutlineArg {
    /// The arg's name.
    pub name: String,
    /// The comment above its ARG, as BuildKit reads descriptions.
    pub description: String,
    /// The value the build uses: `--build-arg`, else the expanded default.
    pub value: String,
    /// 1-based first and last lines of its ARG.
    pub lines: (usize, usize),
}

/// A secret or SSH socket a RUN mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The secret's or SSH socket's ID.
    pub name: String,
    /// Whether the mount says `required=true`.
    pub required: bool,
    /// 1-based first and last lines of the first RUN mounting it.
    pub lines: (usize, usize),
}

/// Why no outline could be made.
#[derive(Debug, thiserror::Error)]
pub enum OutlineError {
    /// The Dockerfile could not be read as the checks read it.
    #[error(transparent)]
    Lint(#[from] LintError),
    /// No stage has the target's name.
    #[error("target stage {0:?} could not be found")]
    NoTarget(String),
    /// A word could not be expanded.
    #[error("line {line}: {message}")]
    Word {
        /// The 1-based line of the instruction.
        line: usize,
        /// What the expansion found wrong.
        message: String,
    },
}

/// An ARG as the outline knows it, with the global ARGs its default expanded.
#[derive(Debug, Clone)]
struct ArgInfo {
    arg: OutlineArg,
    /// Order within its line, so that `ARG A B` lists A first.
    index: usize,
    deps: BTreeSet<String>,
}

/// What one dispatched stage contributes.
#[derive(Debug, Default)]
struct StageOutline {
    all_args: HashMap<String, ArgInfo>,
    used: BTreeSet<String>,
    secrets: Vec<Requirement>,
    ssh: Vec<Requirement>,
    base: Option<usize>,
    deps: BTreeSet<usize>,
}

/// The outline of `convert.target` (or the last stage).
pub fn outline(
    dockerfile: &str,
    convert: &ConvertOptions,
    resolver: &dyn ImageResolver,
) -> Result<Outline, OutlineError> {
    let parsed = crate::parser::parse(dockerfile).map_err(LintError::from)?;
    let file = crate::instructions::parse(&parsed).map_err(LintError::from)?;
    let comments = |line: usize| {
        parsed
            .nodes
            .iter()
            .find(|n| n.start_line == line)
            .map_or(&[][..], |n| &n.comments[..])
    };
    let word_error = |line: usize| {
        move |e: crate::shell::ShellError| OutlineError::Word {
            line,
            message: e.to_string(),
        }
    };
    let lexer = Lexer::new(parsed.directives.escape);
    let target_platform = convert
        .target_platform
        .clone()
        .unwrap_or_else(|| convert.build_platform.clone());
    let target = match &convert.target {
        Some(name) => {
            let lower = name.to_lowercase();
            file.stages
                .iter()
                .rposition(|s| s.name.as_deref() == Some(lower.as_str()))
                .ok_or_else(|| OutlineError::NoTarget(name.clone()))?
        }
        None => flow::target_index(&file, None),
    };
    let Some(target_stage) = file.stages.get(target) else {
        return Ok(Outline::default());
    };
    let platforms = DefaultArgs {
        build: &convert.build_platform,
        target: &target_platform,
    };
    let mut global_env = platforms.env(&convert.build_args, target_stage.name.as_deref());

    // The global ARGs, evaluated in order as `buildMetaArgs` does.
    let mut globals: HashMap<String, ArgInfo> = HashMap::new();
    for meta in &file.meta_args {
        let lines = (meta.location.start_line, meta.location.end_line);
        for (index, def) in meta.args.iter().enumerate() {
            let mut deps = BTreeSet::new();
            let value = match (convert.build_args.get(&def.name), &def.default) {
                (Some(given), _) => Some(given.clone()),
                (None, Some(default)) => {
                    let word = lexer
                        .process_word(default, &global_env)
                        .map_err(word_error(lines.0))?;
                    deps = word.matched;
                    if deps.remove(&def.name)
                        && let Some(old) = globals.get(&def.name)
                    {
                        deps.extend(old.deps.iter().cloned());
                    }
                    Some(word.result)
                }
                (None, None) => None,
            };
            if let Some(value) = &value {
                global_env.retain(|(k, _)| *k != def.name);
                global_env.push((def.name.clone(), value.clone()));
            }
            let arg = OutlineArg {
                name: def.name.clone(),
                description: doc_comment(comments(lines.0), &def.name),
                value: value.unwrap_or_default(),
                lines,
            };
            globals.insert(def.name.clone(), ArgInfo { arg, index, deps });
        }
    }

    let bases: Vec<(Base, BTreeSet<String>)> = file
        .stages
        .iter()
        .map(|stage| from_line(stage, &lexer, &global_env))
        .collect::<Result<_, _>>()?;
    let lint_opts = LintOptions {
        convert,
        all_stages: false,
    };
    let mut states: Vec<Option<StageState>> = vec![None; file.stages.len()];
    let mut outlines: Vec<StageOutline> = Vec::new();
    for (i, stage) in file.stages.iter().enumerate() {
        let (base, used) = &bases[i];
        let base_index = flow::base_stage(&file, i, base);
        let mut state = match base_index {
            Some(parent) => states[parent].clone().unwrap_or_default(),
            None => flow::base_image_state(base, stage, &target_platform, &lint_opts, resolver),
        };
        let mut out = StageOutline {
            all_args: globals.clone(),
            used: used.clone(),
            base: base_index,
            ..StageOutline::default()
        };
        for command in &stage.commands {
            let line = command.location.start_line;
            let lines = (line, command.location.end_line);
            match &command.kind {
                CommandKind::Env(pairs) => {
                    for pair in pairs {
                        let value = lexer
                            .process_word(&pair.value, &state.env)
                            .map_err(word_error(line))?
                            .result;
                        state.set(&pair.key, &value);
                    }
                }
                CommandKind::Arg(defs) => {
                    for (index, def) in defs.iter().enumerate() {
                        let given = convert.build_args.get(&def.name);
                        let inherited = global_env
                            .iter()
                            .find(|(k, _)| *k == def.name)
                            .map(|(_, v)| v.clone())
                            .filter(|_| def.default.is_none() && given.is_none());
                        let value = match (given, &def.default, &inherited) {
                            (Some(given), _, _) => Some(given.clone()),
                            (None, Some(default), _) => Some(
                                lexer
                                    .process_word(default, &state.env)
                                    .map_err(word_error(line))?
                                    .result,
                            ),
                            (None, None, inherited) => inherited.clone(),
                        };
                        if let Some(value) = &value
                            && !flow::NON_ENV_ARGS.contains(&def.name.as_str())
                        {
                            state.set(&def.name, value);
                        }
                        // An ARG that only brings a global one into the stage keeps the
                        // global's line and description.
                        if inherited.is_none() {
                            let arg = OutlineArg {
                                name: def.name.clone(),
                                description: doc_comment(comments(line), &def.name),
                                value: value.unwrap_or_default(),
                                lines,
                            };
                            let info = ArgInfo {
                                arg,
                                index,
                                deps: BTreeSet::new(),
                            };
                            out.all_args.insert(def.name.clone(), info);
                        }
                        out.used.insert(def.name.clone());
                    }
                }
                CommandKind::Run(run) => {
                    for raw in &run.mounts {
                        let mount = parse_mount(&raw.raw, |v| {
                            lexer
                                .process_word(v, &state.env)
                                .map(|w| w.result)
                                .map_err(|e| e.to_string())
                        })
                        .map_err(|message| OutlineError::Word { line, message })?;
                        let nonempty = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
                        let (list, id) = match mount.mount_type {
                            MountType::Secret => {
                                let id = nonempty(&mount.source)
                                    .or_else(|| nonempty(&mount.id))
                                    .or_else(|| nonempty(&mount.target).map(|t| base_name(&t)))
                                    .ok_or_else(|| OutlineError::Word {
                                        line,
                                        message: "one of source, target required".into(),
                                    })?;
                                (&mut out.secrets, id)
                            }
                            MountType::Ssh => {
                                let id =
                                    nonempty(&mount.id).unwrap_or_else(|| "default".to_string());
                                (&mut out.ssh, id)
                            }
                            _ => {
                                if let Some(from) = &mount.from {
                                    out.deps.extend(flow::stage_named(&file, from));
                                }
                                continue;
                            }
                        };
                        if !list.iter().any(|r| r.name == id) {
                            list.push(Requirement {
                                name: id,
                                required: mount.required,
                                lines,
                            });
                        }
                    }
                }
                CommandKind::Copy(copy) => {
                    if let Some(from) = &copy.from {
                        out.deps.extend(flow::stage_named(&file, from));
                    }
                }
                _ => {}
            }
        }
        states[i] = Some(state);
        outlines.push(out);
    }

    let mut args = Vec::new();
    let mut secrets = Vec::new();
    let mut ssh = Vec::new();
    collect(
        &outlines,
        target,
        &mut Visited::default(),
        &mut args,
        &mut secrets,
        &mut ssh,
    );
    args.sort_by_key(|a| (a.arg.lines.0, a.index));
    secrets.sort_by_key(|r| r.lines.0);
    ssh.sort_by_key(|r| r.lines.0);
    Ok(Outline {
        name: target_stage.name.clone().unwrap_or_default(),
        description: match &target_stage.name {
            Some(name) => doc_comment(comments(target_stage.location.start_line), name),
            None => String::new(),
        },
        args: args.into_iter().map(|a| a.arg).collect(),
        secrets,
        ssh,
    })
}

/// A FROM line's base and the global ARGs it uses.
fn from_line(
    stage: &Stage,
    lexer: &Lexer,
    global: &[(String, String)],
) -> Result<(Base, BTreeSet<String>), OutlineError> {
    let line = stage.location.start_line;
    let error = |e: crate::shell::ShellError| OutlineError::Word {
        line,
        message: e.to_string(),
    };
    let word = lexer.process_word(&stage.base, &global).map_err(error)?;
    let mut used = word.matched;
    let mut base = Base {
        name: word.result,
        platform: None,
    };
    if let Some(platform) = &stage.platform {
        let word = lexer.process_word(platform, &global).map_err(error)?;
        used.extend(word.matched);
        base.platform = Some(word.result).filter(|p| Platform::parse(p).is_ok());
    }
    Ok((base, used))
}

#[derive(Default)]
struct Visited {
    stages: BTreeSet<usize>,
    args: BTreeSet<String>,
    secrets: BTreeSet<String>,
    ssh: BTreeSet<String>,
}

/// The stage's own, then its base's, then its dependencies' (BuildKit's
/// `dispatchState.args`, `.secrets`, `.ssh`): the first stage to name one wins.
fn collect(
    outlines: &[StageOutline],
    index: usize,
    visited: &mut Visited,
    args: &mut Vec<ArgInfo>,
    secrets: &mut Vec<Requirement>,
    ssh: &mut Vec<Requirement>,
) {
    if !visited.stages.insert(index) {
        return;
    }
    let Some(stage) = outlines.get(index) else {
        return;
    };
    let mut used = BTreeSet::new();
    let mut todo: Vec<String> = stage.used.iter().cloned().collect();
    while let Some(name) = todo.pop() {
        if used.insert(name.clone())
            && let Some(info) = stage.all_args.get(&name)
        {
            todo.extend(info.deps.iter().cloned());
        }
    }
    for name in used {
        if let Some(info) = stage.all_args.get(&name)
            && visited.args.insert(name)
        {
            args.push(info.clone());
        }
    }
    for s in &stage.secrets {
        if visited.secrets.insert(s.name.clone()) {
            secrets.push(s.clone());
        }
    }
    for s in &stage.ssh {
        if visited.ssh.insert(s.name.clone()) {
            ssh.push(s.clone());
        }
    }
    let next: Vec<usize> = stage
        .base
        .into_iter()
        .chain(stage.deps.iter().copied())
        .collect();
    for i in next {
        collect(outlines, i, visited, args, secrets, ssh);
    }
}

fn base_name(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rsplit_once('/') {
        Some((_, last)) if !last.is_empty() => last.to_string(),
        _ if trimmed.is_empty() => "/".to_string(),
        _ => trimmed.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::convert::ResolvedImage;

    /// Every image has a PATH.
    struct Images;

    impl ImageResolver for Images {
        fn resolve(
            &self,
            _: &str,
            _: &Platform,
        ) -> Result<ResolvedImage, crate::convert::ResolveError> {
            Ok(ResolvedImage {
                digest: "sha256:00".into(),
                config: json!({"config": {"Env": ["PATH=/usr/bin:/bin"]}}),
            })
        }
    }

    fn outline_of(dockerfile: &str, target: Option<&str>) -> Outline {
        let convert = ConvertOptions {
            target: target.map(str::to_string),
            build_platform: Platform::new("linux", "amd64", ""),
            ..ConvertOptions::default()
        };
        outline(dockerfile, &convert, &Images).unwrap()
    }

    #[test]
    fn defaults_expand_with_the_base_image_env_and_the_global_args_used() {
        let o = outline_of(
            "ARG B=busybox\nARG NOT_USED\nFROM $B AS one\n# P is the path\nARG P=$PATH:/x\n",
            None,
        );
        let args: Vec<(&str, &str, &str)> = o
            .args
            .iter()
            .map(|a| (a.name.as_str(), a.value.as_str(), a.description.as_str()))
            .collect();
        assert_eq!(
            args,
            [
                ("B", "busybox", ""),
                ("P", "/usr/bin:/bin:/x", "is the path")
            ]
        );
        assert_eq!(o.name, "one");
    }

    #[test]
    fn the_target_stage_names_a_secret_first_then_its_base_and_dependencies() {
        let o = outline_of(
            "FROM busybox AS a\nRUN --mount=type=secret,id=s true\n\
             FROM busybox AS b\nRUN --mount=type=ssh true\n\
             FROM a\nCOPY --from=b /x /x\nRUN --mount=type=secret,id=s,required true\n",
            None,
        );
        assert_eq!(
            o.secrets,
            [Requirement {
                name: "s".into(),
                required: true,
                lines: (7, 7)
            }]
        );
        assert_eq!(o.ssh.len(), 1);
        assert!(matches!(
            outline(
                "FROM busybox\n",
                &ConvertOptions {
                    target: Some("x".into()),
                    ..ConvertOptions::default()
                },
                &Images
            ),
            Err(OutlineError::NoTarget(_))
        ));
    }
}
