//! Instruction by instruction: each updates the stage's LLB state and image config.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bud_proto::pb;
use serde_json::{Value, json};

use super::ConvertOptions;
use super::env::EnvList;
use super::error::{ConvertError, ConvertErrorKind};
use super::gofmt;
use super::image::{DEFAULT_PATH, ImageConfig};
use super::platform::Platform;
use super::stages::{Base, Cmd, Graph};
use crate::gopath::clean_abs;
use crate::instructions::{CommandKind, Healthcheck, ShellOrExec};
use crate::llb::{
    self, Chown, Constraints, FileBuilder, MkdirOptions, SourceLocation, SourceMap, State, UserRef,
};
use crate::shell::Lexer;

pub(super) const COMMAND_DESCRIPTION: &str = "com.docker.dockerfile.v1.command";

/// What every stage's dispatch shares.
pub(super) struct Context<'a> {
    pub opts: &'a ConvertOptions,
    pub lexer: &'a Lexer,
    pub global_args: &'a EnvList,
    pub proxy_env: Option<pb::ProxyEnv>,
    /// The Dockerfile, which the ops' locations point into.
    pub source_map: &'a Arc<SourceMap>,
}

/// A stage being dispatched: its filesystem and the metadata later steps use.
#[derive(Debug, Clone)]
pub(super) struct StageState {
    pub state: State,
    pub env: EnvList,
    /// Working directory for RUN and relative paths.
    pub dir: String,
    pub user: String,
    pub platform: Platform,
    pub image: ImageConfig,
    /// ARGs declared in the stage (and its base stages), with their values.
    pub build_args: Vec<(String, Option<String>)>,
    pub cmd_index: usize,
    /// A CMD was given in this stage (ENTRYPOINT then keeps it).
    pub cmd_set: bool,
}

/// All dispatched stages.
pub(super) struct Dispatched {
    stages: Vec<Option<StageState>>,
    /// Context paths read by COPY, ADD and bind mounts.
    pub context_paths: BTreeSet<String>,
    /// ARG names declared by dispatched stages.
    pub declared_args: BTreeSet<String>,
    /// Paths `COPY --from` read, by source stage.
    pub copied_from: BTreeMap<usize, BTreeSet<String>>,
}

impl Dispatched {
    /// Takes a dispatched stage out.
    pub(super) fn take(&mut self, index: usize) -> StageState {
        self.stages
            .get_mut(index)
            .and_then(Option::take)
            .unwrap_or_else(|| StageState {
                state: State::scratch(),
                env: EnvList::default(),
                dir: "/".to_owned(),
                user: String::new(),
                platform: Platform::host(),
                image: ImageConfig::from_json(Value::Null),
                build_args: Vec::new(),
                cmd_index: 0,
                cmd_set: false,
            })
    }

    pub(super) fn state_of(&self, index: usize) -> Option<&StageState> {
        self.stages.get(index).and_then(Option::as_ref)
    }
}

/// Dispatches the reachable stages in order, reading the context from `context`.
pub(super) fn dispatch_all(
    graph: &Graph,
    reachable: &BTreeSet<usize>,
    ctx: &Context<'_>,
    context: &State,
) -> Result<Dispatched, ConvertError> {
    let mut out = Dispatched {
        stages: vec![None; graph.stages.len()],
        context_paths: BTreeSet::new(),
        declared_args: BTreeSet::new(),
        copied_from: BTreeMap::new(),
    };
    for &s in reachable {
        let node = &graph.stages[s];
        let mut st = match node.base {
            Base::Stage(b) => {
                let mut st = out.state_of(b).cloned().ok_or_else(|| {
                    ConvertErrorKind::Copy("base stage was not built").at(node.line)
                })?;
                st.image.remove("OnBuild");
                st.cmd_index = 0;
                st.cmd_set = false;
                st
            }
            _ => {
                let Some(resolved) = &node.resolved else {
                    continue;
                };
                init_from_image(
                    resolved.state.clone(),
                    resolved.image.clone(),
                    resolved.platform.clone(),
                    usize::from(resolved.from_counted),
                )
            }
        };
        let mut stage = Stage {
            ctx,
            graph,
            node_index: s,
            st: &mut st,
            done: &out,
            context,
            context_paths: BTreeSet::new(),
            declared: BTreeSet::new(),
            copied_from: Vec::new(),
            location: None,
        };
        let commands = if node.overridden {
            &[][..]
        } else {
            &node.commands[..]
        };
        for cmd in commands {
            stage
                .dispatch(cmd)
                .map_err(|kind| kind.at(cmd.command.location.start_line))?;
        }
        let (paths, declared, copied) = (stage.context_paths, stage.declared, stage.copied_from);
        out.context_paths.extend(paths);
        out.declared_args.extend(declared);
        for (source, path) in copied {
            out.copied_from.entry(source).or_default().insert(path);
        }
        out.stages[s] = Some(st);
    }
    Ok(out)
}

fn init_from_image(
    state: State,
    mut image: ImageConfig,
    platform: Platform,
    cmd_index: usize,
) -> StageState {
    let mut env_list = image.env();
    if !env_list.iter().any(|e| e.split('=').next() == Some("PATH")) && platform.os != "windows" {
        image.add_env("PATH", DEFAULT_PATH);
        env_list = image.env();
    }
    let mut env = EnvList::default();
    for entry in &env_list {
        let (k, v) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
        env.set(k, v);
    }
    let working_dir = image.working_dir();
    let mut dir = "/".to_owned();
    if !working_dir.is_empty() {
        dir = normalize_workdir("/", &working_dir);
        image.set("WorkingDir", json!(dir));
    }
    let user = image.user();
    StageState {
        state,
        env,
        dir,
        user,
        platform,
        image,
        build_args: Vec::new(),
        cmd_index,
        cmd_set: false,
    }
}

/// `[stage 2/5] RUN …`: the progress name of a step.
/// A step's platform in a multi-platform build's progress, as BuildKit writes it: the
/// stage's platform, then `->arch` when the stage declares a target ARG naming another
/// (a cross-compiling stage: `linux/amd64->arm64`). `declared` gives an ARG's value.
pub(super) fn platform_label(
    platform: &Platform,
    declared: &dyn Fn(&str) -> Option<String>,
) -> String {
    let base = platform.to_string();
    let mut target = declared("TARGETPLATFORM")
        .and_then(|p| Platform::parse(&p).ok())
        .map(|p| (p.os, p.architecture, p.variant));
    for (name, slot) in [("TARGETOS", 0), ("TARGETARCH", 1), ("TARGETVARIANT", 2)] {
        if let Some(value) = declared(name) {
            let t = target.get_or_insert_with(Default::default);
            *[&mut t.0, &mut t.1, &mut t.2][slot] = value;
        }
    }
    let Some((os, arch, variant)) = target else {
        return base;
    };
    let os = if os.is_empty() {
        platform.os.clone()
    } else {
        os
    };
    let arch = if arch.is_empty() {
        platform.architecture.clone()
    } else {
        arch
    };
    let target = Platform::new(&os, &arch, &variant);
    if target.os == platform.os && target.architecture != platform.architecture {
        let arch_variant = if target.variant.is_empty() {
            target.architecture
        } else {
            format!("{}/{}", target.architecture, target.variant)
        };
        format!("{base}->{arch_variant}")
    } else if target.os != platform.os {
        format!("{base}->{target}")
    } else {
        base
    }
}

pub(super) fn prefix_command(
    stage: &str,
    total: usize,
    index: usize,
    onbuild: bool,
    text: &str,
) -> String {
    if total == 0 {
        return text.to_owned();
    }
    let width = total.to_string().len();
    let mut out = String::from("[");
    if !stage.is_empty() {
        out.push_str(stage);
        out.push(' ');
    }
    out.push_str(&format!("{index:>width$}/{total}] "));
    if onbuild {
        out.push_str("ONBUILD ");
    }
    out.push_str(text);
    out
}

/// The working directory after `WORKDIR requested` in `current`, as BuildKit's
/// `NormalizeWorkdir` makes it: an absolute path is taken as written (`/tmp/` keeps its
/// slash in the image config, `/a//b` its double one); a relative one is joined to the
/// current directory and cleaned.
pub(super) fn normalize_workdir(current: &str, requested: &str) -> String {
    if requested.starts_with('/') {
        return requested.to_owned();
    }
    clean_abs(&format!(
        "{}/{requested}",
        if current.is_empty() { "/" } else { current }
    ))
}

/// `user[:group]` as LLB owners: numbers are IDs, anything else a name.
pub(super) fn parse_chown(spec: &str) -> Chown {
    let id = |s: &str| match s.parse::<u32>() {
        Ok(n) => UserRef::Id(n),
        Err(_) => UserRef::Name(s.to_owned()),
    };
    match spec.split_once(':') {
        Some((u, g)) => Chown {
            user: Some(id(u)),
            group: Some(id(g)),
        },
        None => Chown {
            user: Some(id(spec)),
            group: None,
        },
    }
}

/// One stage's dispatch.
pub(super) struct Stage<'a, 'c> {
    pub ctx: &'a Context<'c>,
    pub graph: &'a Graph,
    pub node_index: usize,
    pub st: &'a mut StageState,
    pub done: &'a Dispatched,
    pub context: &'a State,
    pub context_paths: BTreeSet<String>,
    pub declared: BTreeSet<String>,
    /// `(source stage, path)` read by `COPY --from`.
    pub copied_from: Vec<(usize, String)>,
    /// The lines of the instruction being dispatched, given to the ops it makes.
    pub location: Option<SourceLocation>,
}

type Result<T, E = ConvertErrorKind> = std::result::Result<T, E>;

impl Stage<'_, '_> {
    pub(super) fn node(&self) -> &super::stages::StageNode {
        &self.graph.stages[self.node_index]
    }

    /// Expands one word with the stage's environment.
    pub(super) fn expand(&self, word: &str) -> Result<String> {
        self.ctx
            .lexer
            .process_word(word, &self.st.env)
            .map(|w| w.result)
            .map_err(|e| ConvertErrorKind::Expansion(e.to_string()))
    }

    /// The progress name of the next numbered step.
    pub(super) fn next_name(&mut self, text: &str, onbuild: bool) -> String {
        let node = &self.graph.stages[self.node_index];
        if node.cmd_total > 0 {
            self.st.cmd_index += 1;
        }
        let stage = if self.ctx.opts.multi_platform {
            let declared = |name: &str| {
                self.st
                    .build_args
                    .iter()
                    .find(|(n, _)| n == name)
                    .and_then(|(_, v)| v.clone())
            };
            let label = platform_label(&self.st.platform, &declared);
            [label, node.display.clone()]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            node.display.clone()
        };
        prefix_command(&stage, node.cmd_total, self.st.cmd_index, onbuild, text)
    }

    /// The instruction text with variables expanded, keyword upper-cased, as progress shows it.
    pub(super) fn display_text(&self, original: &str, lexer: &Lexer) -> String {
        let text = lexer
            .process_word(original, &self.st.env)
            .map(|w| w.result)
            .unwrap_or_else(|_| original.to_owned());
        match text.split_once(' ') {
            Some((kw, rest)) => format!("{} {rest}", kw.to_uppercase()),
            None => text.to_uppercase(),
        }
    }

    pub(super) fn constraints(&self) -> Constraints {
        let constraints = Constraints::default().with_ignore_cache(self.node().ignore_cache);
        match &self.location {
            Some(location) => constraints.with_location(location.clone()),
            None => constraints,
        }
    }

    fn dispatch(&mut self, cmd: &Cmd) -> Result<()> {
        let lines = &cmd.command.location;
        self.location = Some(
            self.ctx
                .source_map
                .location(vec![llb::line_range(lines.start_line, lines.end_line)]),
        );
        let original = cmd.command.description().to_owned();
        match &cmd.command.kind {
            CommandKind::Run(run) => self.run(run, cmd, &original),
            CommandKind::Copy(copy) => self.copy(copy, cmd, &original),
            CommandKind::Add(add) => self.add(add, cmd, &original),
            CommandKind::Workdir(path) => {
                let path = self.expand(path)?;
                self.workdir(&path, &original, cmd.onbuild)
            }
            CommandKind::Env(pairs) => {
                let mut msg = String::from("ENV");
                let expanded = pairs
                    .iter()
                    .map(|kv| Ok((self.expand(&kv.key)?, self.expand(&kv.value)?)))
                    .collect::<Result<Vec<_>>>()?;
                for (k, v) in expanded {
                    msg.push_str(&format!(" {k}={v}"));
                    self.st.env.set(&k, &v);
                    self.st.image.add_env(&k, &v);
                }
                self.st.image.commit(msg, false);
                Ok(())
            }
            CommandKind::Label(pairs) => {
                let mut msg = String::from("LABEL");
                let expanded = pairs
                    .iter()
                    .map(|kv| Ok((self.expand(&kv.key)?, self.expand(&kv.value)?)))
                    .collect::<Result<Vec<_>>>()?;
                for (k, v) in &expanded {
                    msg.push_str(&format!(" {k}={v}"));
                }
                self.st
                    .image
                    .add_labels(expanded.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                self.st.image.commit(msg, false);
                Ok(())
            }
            CommandKind::Maintainer(who) => {
                self.st.image.set_top("author", json!(who));
                self.st.image.commit(format!("MAINTAINER {who}"), false);
                Ok(())
            }
            CommandKind::Cmd(line) => {
                let args = self.command_line(line);
                self.st.image.set("Cmd", json!(args));
                self.st.image.set("ArgsEscaped", json!(true));
                self.st.cmd_set = true;
                self.st
                    .image
                    .commit(format!("CMD {}", gofmt::quote_list(&args)), false);
                Ok(())
            }
            CommandKind::Entrypoint(line) => {
                let args = self.command_line(line);
                self.st.image.set("Entrypoint", json!(args));
                if !self.st.cmd_set {
                    self.st.image.remove("Cmd");
                }
                self.st
                    .image
                    .commit(format!("ENTRYPOINT {}", gofmt::quote_list(&args)), false);
                Ok(())
            }
            CommandKind::Shell(shell) => {
                self.st.image.set("Shell", json!(shell));
                self.st
                    .image
                    .commit(format!("SHELL {}", gofmt::plain_list(shell)), false);
                Ok(())
            }
            CommandKind::User(user) => {
                let user = self.expand(user)?;
                self.st.user = user.clone();
                self.st.image.set("User", json!(user));
                self.st.image.commit(format!("USER {user}"), false);
                Ok(())
            }
            CommandKind::Volume(volumes) => {
                let volumes = volumes
                    .iter()
                    .map(|v| self.expand(v))
                    .collect::<Result<Vec<_>>>()?;
                if volumes.iter().any(String::is_empty) {
                    return Err(ConvertErrorKind::Copy(
                        "VOLUME specified can not be an empty string",
                    ));
                }
                self.st.image.add_set_members("Volumes", &volumes);
                self.st
                    .image
                    .commit(format!("VOLUME {}", gofmt::plain_list(&volumes)), false);
                Ok(())
            }
            CommandKind::StopSignal(signal) => {
                let signal = self.expand(signal)?;
                if !valid_signal(&signal) {
                    return Err(ConvertErrorKind::Signal(signal));
                }
                self.st.image.set("StopSignal", json!(signal));
                self.st.image.commit(format!("STOPSIGNAL {signal}"), false);
                Ok(())
            }
            CommandKind::Expose(ports) => {
                let mut words = Vec::new();
                for p in ports {
                    words.extend(
                        self.ctx
                            .lexer
                            .process_words(p, &self.st.env)
                            .map_err(|e| ConvertErrorKind::Expansion(e.to_string()))?,
                    );
                }
                let mut specs = Vec::new();
                for w in &words {
                    specs.extend(parse_port(w)?);
                }
                self.st.image.add_set_members("ExposedPorts", &specs);
                self.st
                    .image
                    .commit(format!("EXPOSE {}", gofmt::plain_list(&specs)), false);
                Ok(())
            }
            CommandKind::Healthcheck(check) => {
                self.healthcheck(check);
                Ok(())
            }
            CommandKind::Onbuild(expr) => {
                let mut list = self.st.image.onbuild();
                list.push(expr.clone());
                self.st.image.set("OnBuild", json!(list));
                Ok(())
            }
            CommandKind::Arg(args) => self.arg(args),
        }
    }

    /// CMD/ENTRYPOINT/RUN arguments: shell form runs through the stage's SHELL.
    pub(super) fn command_line(&self, line: &ShellOrExec) -> Vec<String> {
        match line {
            ShellOrExec::Exec(args) => args.clone(),
            ShellOrExec::Shell(text) => self.with_shell(text),
        }
    }

    pub(super) fn with_shell(&self, text: &str) -> Vec<String> {
        let mut shell = self.st.image.shell();
        if shell.is_empty() {
            shell = if self.st.image.os() == "windows" {
                vec!["cmd".to_owned(), "/S".to_owned(), "/C".to_owned()]
            } else {
                vec!["/bin/sh".to_owned(), "-c".to_owned()]
            };
        }
        shell.push(text.to_owned());
        shell
    }

    fn workdir(&mut self, path: &str, original: &str, onbuild: bool) -> Result<()> {
        let wd = normalize_workdir(&self.st.image.working_dir(), path);
        self.st.image.set("WorkingDir", json!(wd));
        self.st.dir = wd.clone();
        let with_layer = wd != "/";
        if with_layer {
            let text = self.display_text(original, self.ctx.lexer);
            let name = self.next_name(&text, onbuild);
            let owner = (!self.st.user.is_empty()).then(|| parse_chown(&self.st.user));
            let builder = FileBuilder::new(self.st.state.clone())
                .constraints(self.constraints().with_custom_name(name))
                // LLB cleans a file action's path (the config keeps it as written).
                .mkdir(
                    clean_abs(&wd),
                    0o755,
                    MkdirOptions {
                        make_parents: true,
                        owner,
                        timestamp: None,
                    },
                );
            self.st.state = llb::file(builder)?;
        }
        self.st.image.commit(format!("WORKDIR {wd}"), with_layer);
        Ok(())
    }

    fn healthcheck(&mut self, check: &Healthcheck) {
        let (value, text) = match check {
            Healthcheck::Disable => (
                json!({"Test": ["NONE"]}),
                r#"&{["NONE"] "0s" "0s" "0s" "0s" '\x00'}"#.to_owned(),
            ),
            Healthcheck::Check(c) => {
                let test: Vec<String> = match &c.cmd {
                    ShellOrExec::Shell(s) => vec!["CMD-SHELL".to_owned(), s.clone()],
                    ShellOrExec::Exec(args) => std::iter::once("CMD".to_owned())
                        .chain(args.iter().cloned())
                        .collect(),
                };
                let mut map = serde_json::Map::new();
                map.insert("Test".into(), json!(test));
                for (key, d) in [
                    ("Interval", c.interval),
                    ("Timeout", c.timeout),
                    ("StartPeriod", c.start_period),
                    ("StartInterval", c.start_interval),
                ] {
                    if !d.is_zero() {
                        map.insert(key.into(), json!(d.as_nanos() as u64));
                    }
                }
                if c.retries != 0 {
                    map.insert("Retries".into(), json!(c.retries));
                }
                // Docker 28.5's frontend writes `%q` of the config: quoted durations, and the
                // retry count as a character literal.
                let text = format!(
                    "&{{{} {} {} {} {} {}}}",
                    gofmt::quote_list(&test),
                    gofmt::quote(&gofmt::duration(c.interval)),
                    gofmt::quote(&gofmt::duration(c.timeout)),
                    gofmt::quote(&gofmt::duration(c.start_period)),
                    gofmt::quote(&gofmt::duration(c.start_interval)),
                    gofmt::quote_rune(i64::from(c.retries))
                );
                (Value::Object(map), text)
            }
        };
        self.st.image.set("Healthcheck", value);
        self.st.image.commit(format!("HEALTHCHECK {text}"), false);
    }

    fn arg(&mut self, args: &[crate::instructions::ArgDef]) -> Result<()> {
        let mut parts = Vec::new();
        for arg in args {
            self.declared.insert(arg.name.clone());
            let given = self.ctx.opts.build_args.get(&arg.name);
            let value = match (given, &arg.default) {
                (Some(v), _) => Some(v.clone()),
                (None, Some(default)) => Some(self.expand(default)?),
                (None, None) => self.ctx.global_args.lookup(&arg.name).map(str::to_owned),
            };
            if let Some(v) = &value {
                self.st.env.set(&arg.name, v);
            }
            parts.push(match &value {
                Some(v) => format!("{}={v}", arg.name),
                None => arg.name.clone(),
            });
            self.st.build_args.push((arg.name.clone(), value));
        }
        self.st
            .image
            .commit(format!("ARG {}", parts.join(" ")), false);
        Ok(())
    }

    /// `RUN`'s history text: the ARG values it saw, then its arguments.
    pub(super) fn run_history(&self, args: &[String]) -> String {
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        let mut vars: Vec<String> = Vec::new();
        for (key, default) in &self.st.build_args {
            let v = self
                .st
                .env
                .lookup(key)
                .map(str::to_owned)
                .unwrap_or_else(|| default.clone().unwrap_or_default());
            let entry = format!("{key}={v}");
            match seen.get(key.as_str()) {
                Some(&i) => vars[i] = entry,
                None => {
                    seen.insert(key, vars.len());
                    vars.push(entry);
                }
            }
        }
        let mut parts = Vec::new();
        if !vars.is_empty() {
            parts.push(format!("|{}", vars.len()));
            parts.extend(vars);
        }
        parts.extend(args.iter().cloned());
        parts.join(" ")
    }
}

fn valid_signal(signal: &str) -> bool {
    if let Ok(n) = signal.parse::<u32>() {
        return n > 0;
    }
    let name = signal.strip_prefix("SIG").unwrap_or(signal).to_uppercase();
    const NAMES: [&str; 34] = [
        "ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT",
        "KILL", "PIPE", "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM",
        "TRAP", "TSTP", "TTIN", "TTOU", "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ",
    ];
    NAMES.contains(&name.as_str())
        || name
            .strip_prefix("RTMIN")
            .is_some_and(|r| r.is_empty() || r.starts_with('+'))
        || name
            .strip_prefix("RTMAX")
            .is_some_and(|r| r.is_empty() || r.starts_with('-'))
}

/// `[ip:][host:]port[-end][/proto]` → `port/proto` for each port of the range.
fn parse_port(raw: &str) -> Result<Vec<String>> {
    let bad = || ConvertErrorKind::Port(raw.to_owned());
    let container = raw.rsplit(':').next().unwrap_or(raw);
    let (ports, proto) = match container.split_once('/') {
        Some((p, proto)) if !proto.is_empty() => (p, proto.to_lowercase()),
        Some(_) => return Err(bad()),
        None => (container, "tcp".to_owned()),
    };
    let (start, end) = match ports.split_once('-') {
        Some((a, b)) => (
            a.parse::<u16>().map_err(|_| bad())?,
            b.parse::<u16>().map_err(|_| bad())?,
        ),
        None => {
            let p = ports.parse::<u16>().map_err(|_| bad())?;
            (p, p)
        }
    };
    if end < start {
        return Err(bad());
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_names_pad_the_index() {
        assert_eq!(prefix_command("", 3, 1, false, "RUN x"), "[1/3] RUN x");
        assert_eq!(
            prefix_command("build", 12, 2, true, "RUN x"),
            "[build  2/12] ONBUILD RUN x"
        );
        assert_eq!(prefix_command("s", 0, 0, false, "FROM x"), "FROM x");
    }

    #[test]
    fn platform_labels_show_a_cross_compiling_target() {
        let amd64 = Platform::new("linux", "amd64", "");
        let none = |_: &str| None;
        assert_eq!(platform_label(&amd64, &none), "linux/amd64");
        let arm = |name: &str| (name == "TARGETPLATFORM").then(|| "linux/arm/v7".to_owned());
        assert_eq!(platform_label(&amd64, &arm), "linux/amd64->arm/v7");
        let same = |name: &str| (name == "TARGETARCH").then(|| "amd64".to_owned());
        assert_eq!(platform_label(&amd64, &same), "linux/amd64");
    }

    #[test]
    fn ports_expand_ranges() {
        assert_eq!(
            parse_port("8000-8002").unwrap(),
            ["8000/tcp", "8001/tcp", "8002/tcp"]
        );
        assert_eq!(parse_port("53/UDP").unwrap(), ["53/udp"]);
        assert!(parse_port("x").is_err());
    }

    #[test]
    fn workdirs_join_and_clean() {
        assert_eq!(normalize_workdir("/a", "b/../c"), "/a/c");
        assert_eq!(normalize_workdir("", "rel"), "/rel");
        assert_eq!(normalize_workdir("/a", "/x/"), "/x/");
        assert_eq!(normalize_workdir("/a", "/x//y/./"), "/x//y/./");
        assert_eq!(normalize_workdir("/tmp/", "sub/"), "/tmp/sub");
        assert_eq!(normalize_workdir("/tmp/", "./x/../y/"), "/tmp/y");
    }
}
