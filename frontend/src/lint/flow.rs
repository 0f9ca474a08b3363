//! Rules that follow the build as the conversion does: global ARGs in FROM lines, then
//! each stage's ARG, ENV and SHELL in order, starting from its base image's config or base
//! stage (BuildKit's checks in `buildDispatchStates`, `dispatch` and `validations.go`).

use std::collections::{BTreeSet, HashMap};

use super::{CheckConfig, LintOptions, Linter, keyword_as_written, rules, suggest};
use crate::convert::{ImageResolver, Platform};
use crate::dockerignore::PatternMatcher;
use crate::instructions::{CommandKind, Dockerfile, ShellOrExec, Stage};
use crate::parser::Node;
use crate::shell::{Env, Lexer};

/// Variables BuildKit reads from the build args without them being ARGs.
pub(crate) const NON_ENV_ARGS: [&str; 2] =
    ["BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"];

/// The words a variable name must match (either whole, or as the first or last part
/// between underscores) to look like a secret, and those that clear it.
const SECRET_WORDS: [&str; 10] = [
    "apikey",
    "auth",
    "credential",
    "credentials",
    "key",
    "password",
    "pword",
    "passwd",
    "secret",
    "token",
];
const ALLOWED_WORDS: [&str; 3] = ["public", "file", "version"];

/// Variables in order of definition.
type Vars = Vec<(String, String)>;

/// What a stage has defined by the end of its dispatch, inherited by stages built on it.
#[derive(Debug, Clone, Default)]
pub(crate) struct StageState {
    /// Environment in order of definition (base image's, ENV, ARGs with a value).
    pub(crate) env: Vec<(String, String)>,
    /// ARG names in scope, with or without a value.
    args: BTreeSet<String>,
    /// A SHELL is set (by the base image or an instruction).
    shell: bool,
}

impl StageState {
    pub(crate) fn set(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_string(), value.to_string()));
    }
}

pub(super) fn check(
    linter: &mut Linter,
    file: &Dockerfile,
    nodes: &HashMap<usize, &Node>,
    escape: char,
    opts: &LintOptions<'_>,
    resolver: &dyn ImageResolver,
) {
    let convert = opts.convert;
    let lexer = Lexer::new(escape);
    let target_platform = convert
        .target_platform
        .clone()
        .unwrap_or_else(|| convert.build_platform.clone());
    let platforms = DefaultArgs {
        build: &convert.build_platform,
        target: &target_platform,
    };
    let target_index = target_index(file, convert.target.as_deref());
    let target_name = file.stages.get(target_index).and_then(|s| s.name.clone());
    let defaults = platforms.env(&convert.build_args, target_name.as_deref());

    invalid_default_args(linter, file, &lexer, &defaults);

    let Some((global, declared)) = meta_args(file, &lexer, defaults, &convert.build_args) else {
        return;
    };
    let known: BTreeSet<String> = declared
        .iter()
        .cloned()
        .chain(global.iter().map(|(k, _)| k.clone()))
        .collect();
    let comments = |line: usize| nodes.get(&line).map_or(&[][..], |n| &n.comments[..]);
    let mut bases = Vec::new();
    for stage in &file.stages {
        let config = linter
            .config
            .under_comments(comments(stage.location.start_line));
        bases.push(from_line(linter, &config, stage, &lexer, &global, &known));
    }

    let reachable = reachable(file, &bases, target_index, opts.all_stages);
    let ignore = PatternMatcher::new(convert.excludes.iter())
        .ok()
        .filter(|m| !convert.excludes.is_empty() && !m.exclusions());
    let mut done: Vec<Option<StageState>> = vec![None; file.stages.len()];
    for (i, stage) in file.stages.iter().enumerate() {
        if !reachable.contains(&i) {
            continue;
        }
        let base = &bases[i];
        let mut state = match base_stage(file, i, base) {
            Some(parent) => done[parent].clone().unwrap_or_default(),
            None => base_image_state(base, stage, &target_platform, opts, resolver),
        };
        let mut walk = StageWalk {
            linter: &mut *linter,
            lexer: &lexer,
            global: &global,
            build_args: &convert.build_args,
            ignore: ignore.as_ref(),
            state: &mut state,
            cmd: None,
            entrypoint: None,
            healthcheck: None,
            workdir_set: false,
        };
        for command in &stage.commands {
            let line = command.location.start_line;
            let Some(node) = nodes.get(&line) else {
                continue;
            };
            let config = walk.linter.config.under_comments(&node.comments);
            walk.command(&config, node, &command.kind);
        }
        done[i] = Some(state);
    }
}

/// The predefined platform ARGs.
pub(crate) struct DefaultArgs<'a> {
    pub(crate) build: &'a Platform,
    pub(crate) target: &'a Platform,
}

impl DefaultArgs<'_> {
    pub(crate) fn env(
        &self,
        build_args: &std::collections::BTreeMap<String, String>,
        target: Option<&str>,
    ) -> Vec<(String, String)> {
        let (b, t) = (self.build, self.target);
        let values = [
            ("BUILDPLATFORM", b.to_string()),
            ("BUILDOS", b.os.clone()),
            ("BUILDOSVERSION", String::new()),
            ("BUILDARCH", b.architecture.clone()),
            ("BUILDVARIANT", b.variant.clone()),
            ("TARGETPLATFORM", t.to_string()),
            ("TARGETOS", t.os.clone()),
            ("TARGETOSVERSION", String::new()),
            ("TARGETARCH", t.architecture.clone()),
            ("TARGETVARIANT", t.variant.clone()),
            ("TARGETSTAGE", target.unwrap_or("default").to_string()),
        ];
        values
            .into_iter()
            .map(|(k, v)| (k.to_string(), build_args.get(k).cloned().unwrap_or(v)))
            .collect()
    }
}

pub(crate) fn target_index(file: &Dockerfile, target: Option<&str>) -> usize {
    let last = file.stages.len().saturating_sub(1);
    let Some(target) = target else { return last };
    let lower = target.to_lowercase();
    file.stages
        .iter()
        .rposition(|s| s.name.as_deref() == Some(lower.as_str()))
        .unwrap_or(last)
}

/// The global ARGs evaluated in order; `None` when one cannot be (the conversion reports it).
fn meta_args(
    file: &Dockerfile,
    lexer: &Lexer,
    mut env: Vec<(String, String)>,
    build_args: &std::collections::BTreeMap<String, String>,
) -> Option<(Vars, BTreeSet<String>)> {
    let mut declared = BTreeSet::new();
    for meta in &file.meta_args {
        for arg in &meta.args {
            declared.insert(arg.name.clone());
            let value = match (build_args.get(&arg.name), &arg.default) {
                (Some(given), _) => Some(given.clone()),
                (None, Some(default)) => Some(lexer.process_word(default, &env).ok()?.result),
                (None, None) => None,
            };
            if let Some(value) = value {
                env.retain(|(k, _)| *k != arg.name);
                env.push((arg.name.clone(), value));
            }
        }
    }
    Some((env, declared))
}

/// InvalidDefaultArgInFrom: with no build args, every base name must still be an image
/// reference.
fn invalid_default_args(
    linter: &mut Linter,
    file: &Dockerfile,
    lexer: &Lexer,
    defaults: &[(String, String)],
) {
    let no_args = std::collections::BTreeMap::new();
    let Some((env, _)) = meta_args(file, lexer, defaults.to_vec(), &no_args) else {
        return;
    };
    let config = linter.config.clone();
    for stage in &file.stages {
        let Ok(word) = lexer.process_word(&stage.base, &env) else {
            return;
        };
        if crate::reference::Reference::parse(&word.result).is_err() {
            linter.report(
                &config,
                &rules::INVALID_DEFAULT_ARG_IN_FROM,
                format!(
                    "Default value for ARG {} results in empty or invalid base image name",
                    stage.base
                ),
                lines(&stage.location),
            );
        }
    }
}

/// A FROM line's expanded base name and platform.
#[derive(Debug, Clone, Default)]
pub(crate) struct Base {
    pub(crate) name: String,
    pub(crate) platform: Option<String>,
}

/// UndefinedArgInFrom, RedundantTargetPlatform and FromPlatformFlagConstDisallowed.
fn from_line(
    linter: &mut Linter,
    config: &CheckConfig,
    stage: &Stage,
    lexer: &Lexer,
    global: &dyn Env,
    known: &BTreeSet<String>,
) -> Base {
    let at = lines(&stage.location);
    let undefined = |linter: &mut Linter, unmatched: &BTreeSet<String>| {
        for name in unmatched.iter().filter(|n| !known.contains(*n)) {
            let hint = suggest::search(name, known.iter().map(String::as_str))
                .map(|s| format!(" (did you mean {s}?)"))
                .unwrap_or_default();
            linter.report(
                config,
                &rules::UNDEFINED_ARG_IN_FROM,
                format!("FROM argument '{name}' is not declared{hint}"),
                at,
            );
        }
    };
    let mut base = Base::default();
    if let Ok(word) = lexer.process_word(&stage.base, global) {
        undefined(linter, &word.unmatched);
        base.name = word.result;
    }
    let Some(platform) = &stage.platform else {
        return base;
    };
    let Ok(word) = lexer.process_word(platform, global) else {
        return base;
    };
    undefined(linter, &word.unmatched);
    if word.matched.len() == 1
        && word.unmatched.is_empty()
        && word.matched.contains("TARGETPLATFORM")
        && global.get("TARGETPLATFORM").as_deref() == Some(word.result.as_str())
    {
        linter.report(
            config,
            &rules::REDUNDANT_TARGET_PLATFORM,
            format!(
                "Setting platform to predefined {platform} in FROM is redundant as this is the default behavior"
            ),
            at,
        );
    }
    if word.matched.is_empty()
        && word.unmatched.is_empty()
        && let Ok(p) = Platform::parse(&word.result)
    {
        let name = stage.name.as_deref().unwrap_or_default();
        if !name.contains(p.os.as_str()) && !name.contains(p.architecture.as_str()) {
            linter.report(
                config,
                &rules::FROM_PLATFORM_FLAG_CONST_DISALLOWED,
                format!(
                    "FROM --platform flag should not use constant value {:?}",
                    word.result
                ),
                at,
            );
        }
    }
    base.platform = Some(word.result);
    base
}

/// The earlier stage a stage is built on, if its base names one.
pub(crate) fn base_stage(file: &Dockerfile, index: usize, base: &Base) -> Option<usize> {
    let lower = base.name.to_lowercase();
    file.stages[..index]
        .iter()
        .rposition(|s| s.name.as_deref() == Some(lower.as_str()))
}

/// A stage named by `--from` or `--mount=from=`: by name or by index.
pub(crate) fn stage_named(file: &Dockerfile, name: &str) -> Option<usize> {
    let lower = name.to_lowercase();
    file.stages
        .iter()
        .rposition(|s| s.name.as_deref() == Some(lower.as_str()))
        .or_else(|| {
            name.parse::<usize>()
                .ok()
                .filter(|i| *i < file.stages.len())
        })
}

/// The stages a build of the target dispatches (all of them for `--check`).
fn reachable(file: &Dockerfile, bases: &[Base], target: usize, all: bool) -> BTreeSet<usize> {
    if all {
        return (0..file.stages.len()).collect();
    }
    let mut seen = BTreeSet::new();
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if i >= file.stages.len() || !seen.insert(i) {
            continue;
        }
        todo.extend(base_stage(file, i, &bases[i]));
        for command in &file.stages[i].commands {
            let froms: Vec<&str> = match &command.kind {
                CommandKind::Copy(c) => c.from.as_deref().into_iter().collect(),
                CommandKind::Run(r) => r.mounts.iter().filter_map(|m| m.from.as_deref()).collect(),
                _ => Vec::new(),
            };
            todo.extend(froms.into_iter().filter_map(|f| stage_named(file, f)));
        }
    }
    seen
}

/// The variables and SHELL a stage starts with when its base is an image (or scratch).
pub(crate) fn base_image_state(
    base: &Base,
    stage: &Stage,
    target_platform: &Platform,
    opts: &LintOptions<'_>,
    resolver: &dyn ImageResolver,
) -> StageState {
    let mut state = StageState::default();
    if base.name == "scratch" {
        state.set("PATH", crate::convert::DEFAULT_PATH);
        return state;
    }
    let overridden = stage
        .name
        .as_deref()
        .is_some_and(|n| opts.convert.named_contexts.contains_key(n))
        || opts.convert.named_contexts.contains_key(&base.name);
    let Ok(reference) = crate::reference::Reference::parse(&base.name) else {
        return state;
    };
    if overridden {
        return state;
    }
    let platform = base
        .platform
        .as_deref()
        .and_then(|p| Platform::parse(p).ok())
        .unwrap_or_else(|| target_platform.clone());
    // The reference the conversion resolves (tag included): the daemon resolves no bare name.
    let Ok(image) = resolver.resolve(&reference.with_default_tag().to_string(), &platform) else {
        return state;
    };
    let config = &image.config["config"];
    for entry in config["Env"].as_array().into_iter().flatten() {
        if let Some((k, v)) = entry.as_str().and_then(|e| e.split_once('=')) {
            state.set(k, v);
        }
    }
    state.shell = config["Shell"].as_array().is_some_and(|s| !s.is_empty());
    state
}

/// One stage's commands in order.
struct StageWalk<'a> {
    linter: &'a mut Linter,
    lexer: &'a Lexer,
    global: &'a [(String, String)],
    build_args: &'a std::collections::BTreeMap<String, String>,
    ignore: Option<&'a PatternMatcher>,
    state: &'a mut StageState,
    /// Where CMD, ENTRYPOINT and HEALTHCHECK were last set in this stage.
    cmd: Option<(usize, usize)>,
    entrypoint: Option<(usize, usize)>,
    healthcheck: Option<(usize, usize)>,
    workdir_set: bool,
}

impl StageWalk<'_> {
    fn command(&mut self, config: &CheckConfig, node: &Node, kind: &CommandKind) {
        let at = (node.start_line, node.end_line);
        let name = keyword_as_written(node);
        match kind {
            CommandKind::Env(kvs) => {
                for kv in kvs {
                    self.expand(config, at, &kv.key);
                    self.expand(config, at, &kv.value);
                }
                for (i, kv) in kvs.iter().enumerate() {
                    if legacy_pair(node, i) {
                        self.legacy_format(config, at, name);
                    }
                    secret_name(self.linter, config, at, "ENV", &kv.key);
                }
                for kv in kvs {
                    let key = self.word(&kv.key);
                    let value = self.word(&kv.value);
                    self.state.set(&key, &value);
                }
            }
            CommandKind::Label(kvs) => {
                for kv in kvs {
                    self.expand(config, at, &kv.key);
                    self.expand(config, at, &kv.value);
                }
                for i in 0..kvs.len() {
                    if legacy_pair(node, i) {
                        self.legacy_format(config, at, name);
                    }
                }
            }
            CommandKind::Copy(c) => {
                for word in c.chown.iter().chain(&c.chmod) {
                    self.expand(config, at, word);
                }
                let sources: Vec<String> = c
                    .sources
                    .iter()
                    .map(|s| self.expand(config, at, s))
                    .collect();
                self.expand(config, at, &c.dest);
                if c.from.is_none() {
                    self.ignored_sources(config, at, "Copy", &sources);
                }
            }
            CommandKind::Add(a) => {
                for word in a.chown.iter().chain(&a.chmod).chain(&a.checksum) {
                    self.expand(config, at, word);
                }
                let sources: Vec<String> = a
                    .sources
                    .iter()
                    .map(|s| self.expand(config, at, s))
                    .collect();
                self.expand(config, at, &a.dest);
                let local: Vec<String> = sources.into_iter().filter(|s| !is_remote(s)).collect();
                self.ignored_sources(config, at, "Add", &local);
            }
            CommandKind::Workdir(path) => {
                let path = self.expand(config, at, path);
                if !self.workdir_set && !path.starts_with('/') {
                    self.linter.report(
                        config,
                        &rules::WORKDIR_RELATIVE_PATH,
                        format!(
                            "Relative workdir {path:?} can have unexpected results if the base image changes"
                        ),
                        at,
                    );
                }
                self.workdir_set = true;
            }
            CommandKind::User(word) | CommandKind::StopSignal(word) => {
                self.expand(config, at, word);
            }
            CommandKind::Volume(words) => {
                for word in words {
                    self.expand(config, at, word);
                }
            }
            CommandKind::Arg(defs) => {
                for def in defs {
                    secret_name(self.linter, config, at, "ARG", &def.name);
                    let value = match (self.build_args.get(&def.name), &def.default) {
                        (Some(given), _) => Some(given.clone()),
                        (None, Some(default)) => Some(self.expand(config, at, default)),
                        (None, None) => self
                            .global
                            .iter()
                            .rev()
                            .find(|(k, _)| *k == def.name)
                            .map(|(_, v)| v.clone()),
                    };
                    if let Some(value) = value {
                        self.state.set(&def.name, &value);
                    }
                    self.state.args.insert(def.name.clone());
                }
            }
            CommandKind::Cmd(form) => {
                used_once(self.linter, config, &mut self.cmd, at, name);
                self.json_args(config, at, name, form);
            }
            CommandKind::Entrypoint(form) => {
                used_once(self.linter, config, &mut self.entrypoint, at, name);
                self.json_args(config, at, name, form);
            }
            CommandKind::Healthcheck(_) => {
                used_once(self.linter, config, &mut self.healthcheck, at, name);
            }
            CommandKind::Shell(_) => self.state.shell = true,
            CommandKind::Expose(ports) => {
                for raw in ports {
                    let Ok(words) = self.lexer.process_words(raw, &self.state.env) else {
                        continue;
                    };
                    for port in words {
                        expose(self.linter, config, at, &port);
                    }
                }
            }
            CommandKind::Run(_) | CommandKind::Maintainer(_) | CommandKind::Onbuild(_) => {}
        }
    }

    /// A word expanded in the stage's environment, without checks.
    fn word(&self, word: &str) -> String {
        self.lexer
            .process_word(word, &self.state.env)
            .map_or_else(|_| word.to_string(), |w| w.result)
    }

    /// Expands a word as the conversion does, reporting UndefinedVar for each variable
    /// that is neither set nor a declared ARG.
    fn expand(&mut self, config: &CheckConfig, at: (usize, usize), word: &str) -> String {
        let Ok(processed) = self.lexer.process_word(word, &self.state.env) else {
            return word.to_string();
        };
        for name in &processed.unmatched {
            if self.state.args.contains(name) || NON_ENV_ARGS.contains(&name.as_str()) {
                continue;
            }
            let hint = suggest::search(name, self.state.env.iter().map(|(k, _)| k.as_str()))
                .map(|s| format!(" (did you mean ${s}?)"))
                .unwrap_or_default();
            self.linter.report(
                config,
                &rules::UNDEFINED_VAR,
                format!("Usage of undefined variable '${name}'{hint}"),
                at,
            );
        }
        processed.result
    }

    fn legacy_format(&mut self, config: &CheckConfig, at: (usize, usize), name: &str) {
        self.linter.report(
            config,
            &rules::LEGACY_KEY_VALUE_FORMAT,
            format!(
                "\"{name} key=value\" should be used instead of legacy \"{name} key value\" format"
            ),
            at,
        );
    }

    /// JSONArgsRecommended: CMD and ENTRYPOINT in shell form, with no SHELL set.
    fn json_args(
        &mut self,
        config: &CheckConfig,
        at: (usize, usize),
        name: &str,
        form: &ShellOrExec,
    ) {
        if matches!(form, ShellOrExec::Shell(_)) && !self.state.shell {
            self.linter.report(
                config,
                &rules::JSON_ARGS_RECOMMENDED,
                format!(
                    "JSON arguments recommended for {name} to prevent unintended behavior related to OS signals"
                ),
                at,
            );
        }
    }

    /// CopyIgnoredFile: a source from the context that `.dockerignore` excludes.
    fn ignored_sources(
        &mut self,
        config: &CheckConfig,
        at: (usize, usize),
        cmd: &str,
        sources: &[String],
    ) {
        let Some(matcher) = self.ignore else { return };
        for source in sources {
            let clean = clean_path(source);
            if (clean == "." || clean == "/") && !root_ignored(matcher) {
                continue;
            }
            if matcher.matches_or_parent_matches(&clean) {
                self.linter.report(
                    config,
                    &rules::COPY_IGNORED_FILE,
                    format!("Attempting to {cmd} file {clean:?} that is excluded by .dockerignore"),
                    at,
                );
            }
        }
    }
}

/// MultipleInstructionsDisallowed: reported on the earlier instruction, the one ignored.
fn used_once(
    linter: &mut Linter,
    config: &CheckConfig,
    last: &mut Option<(usize, usize)>,
    at: (usize, usize),
    name: &str,
) {
    if let Some(previous) = last.replace(at) {
        linter.report(
            config,
            &rules::MULTIPLE_INSTRUCTIONS_DISALLOWED,
            format!(
                "Multiple {name} instructions should not be used in the same stage because only the last one will be used"
            ),
            previous,
        );
    }
}

/// SecretsUsedInArgOrEnv.
fn secret_name(
    linter: &mut Linter,
    config: &CheckConfig,
    at: (usize, usize),
    instruction: &str,
    key: &str,
) {
    if looks_secret(key) {
        linter.report(
            config,
            &rules::SECRETS_USED_IN_ARG_OR_ENV,
            format!(
                "Do not use ARG or ENV instructions for sensitive data ({instruction} {key:?})"
            ),
            at,
        );
    }
}

/// Whether a variable's name says it holds a secret (SecretsUsedInArgOrEnv's rule): also
/// what keeps a build arg's value out of bud's explanations of why a step ran.
pub fn looks_secret(name: &str) -> bool {
    looks_like(name, &SECRET_WORDS) && !looks_like(name, &ALLOWED_WORDS)
}

/// Whether one of `words` is the whole name, or a part of it between underscores at
/// either end or inside (BuildKit's `(?i)(?:_|^)(?:word)(?:_|$)`).
fn looks_like(name: &str, words: &[&str]) -> bool {
    let lower = name.to_lowercase();
    let parts: Vec<&str> = lower.split('_').collect();
    parts.iter().any(|p| words.contains(p))
}

/// ExposeProtoCasing and ExposeInvalidFormat for one port spec.
fn expose(linter: &mut Linter, config: &CheckConfig, at: (usize, usize), raw: &str) {
    // `[ip:]host:container`, the IP itself possibly holding colons.
    let mut parts = raw.rsplitn(3, ':');
    let container = parts.next().unwrap_or_default();
    let host = parts.next().unwrap_or_default();
    let ip = parts.next().unwrap_or_default();
    let proto = container.split_once('/').map_or("", |(_, p)| p);
    if proto != proto.to_lowercase() {
        linter.report(
            config,
            &rules::EXPOSE_PROTO_CASING,
            format!("Defined protocol '{raw}' in EXPOSE instruction should be lowercase"),
            at,
        );
    }
    if !ip.is_empty() || !host.is_empty() {
        linter.report(
            config,
            &rules::EXPOSE_INVALID_FORMAT,
            format!("EXPOSE instruction should not define an IP address or host-port mapping, found '{raw}'"),
            at,
        );
    }
}

/// Whether the `index`th pair of an ENV or LABEL node was written `key value`.
fn legacy_pair(node: &Node, index: usize) -> bool {
    node.values
        .get(index * 3 + 2)
        .is_some_and(|sep| sep.is_empty())
}

fn is_remote(source: &str) -> bool {
    source.starts_with("http://")
        || source.starts_with("https://")
        || source.starts_with("git@")
        || source.contains(".git#")
        || source.ends_with(".git")
}

/// Go's `filepath.Clean` for slash paths.
fn clean_path(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|p| *p != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            p => out.push(p),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// A pattern that excludes every entry at the root.
fn root_ignored(matcher: &PatternMatcher) -> bool {
    matcher
        .patterns()
        .iter()
        .any(|p| !p.is_exclusion() && matches!(p.as_str(), "*" | "**" | "**/*"))
}

fn lines(location: &crate::instructions::Location) -> (usize, usize) {
    (location.start_line, location.end_line)
}
