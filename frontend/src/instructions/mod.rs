//! Parser nodes to typed build stages and commands.
//!
//! The second stage of the frontend, BuildKit's `frontend/dockerfile/instructions`:
//! argument counts, flags (`--mount`, `--from`, `--chown`…) and their values are checked
//! here. Words are not expanded: every value is kept as written so that the converter
//! can expand it with the build arguments and environment in scope.

mod device;
mod duration;
mod error;
mod flags;
mod mount;

pub use device::{DEVICE_KEYS, Device, parse_device};
pub use error::{InstructionError, InstructionErrorKind};
pub use mount::{MOUNT_KEYS, MountSpec, MountType, Sharing, parse_mount};

use std::time::Duration;

use crate::parser::{Heredoc, Node, Parsed, parse_heredoc_word};
use flags::{Flags, Kind};

/// A Dockerfile as build stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// ARG instructions before the first FROM: usable in FROM lines.
    pub meta_args: Vec<MetaArg>,
    /// The stages, in order.
    pub stages: Vec<Stage>,
}

/// Where an instruction comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// 1-based first line.
    pub start_line: usize,
    /// 1-based last line (heredoc bodies included).
    pub end_line: usize,
    /// The logical line as written (`RUN echo hi`), for progress output.
    pub original: String,
}

/// A global ARG (before the first FROM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaArg {
    /// The names and defaults it declares.
    pub args: Vec<ArgDef>,
    /// Its source.
    pub location: Location,
}

/// One `name[=default]` of an ARG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDef {
    /// The variable name.
    pub name: String,
    /// The default value, unexpanded; `None` for a bare `ARG name`.
    pub default: Option<String>,
}

/// One `key=value` of ENV or LABEL, both unexpanded (quotes included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The name.
    pub key: String,
    /// The value.
    pub value: String,
}

/// A FROM and the commands that follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// `AS name`, lower-cased.
    pub name: Option<String>,
    /// The base image or stage, unexpanded.
    pub base: String,
    /// `--platform`, unexpanded.
    pub platform: Option<String>,
    /// The stage's commands, in order.
    pub commands: Vec<Command>,
    /// The FROM line.
    pub location: Location,
}

/// A command with its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// What the command does.
    pub kind: CommandKind,
    /// Where it comes from.
    pub location: Location,
}

/// A command line in shell form (run through the stage's SHELL) or exec form (JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellOrExec {
    /// Shell form: the text as written, unexpanded.
    Shell(String),
    /// Exec form: the JSON array's strings.
    Exec(Vec<String>),
}

/// The typed commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandKind {
    /// RUN.
    Run(Run),
    /// CMD.
    Cmd(ShellOrExec),
    /// ENTRYPOINT.
    Entrypoint(ShellOrExec),
    /// SHELL (always exec form).
    Shell(Vec<String>),
    /// ENV.
    Env(Vec<KeyValue>),
    /// LABEL.
    Label(Vec<KeyValue>),
    /// MAINTAINER.
    Maintainer(String),
    /// EXPOSE: ports as written, sorted as strings like BuildKit.
    Expose(Vec<String>),
    /// ADD.
    Add(Add),
    /// COPY.
    Copy(Copy),
    /// VOLUME.
    Volume(Vec<String>),
    /// USER.
    User(String),
    /// WORKDIR.
    Workdir(String),
    /// ARG inside a stage.
    Arg(Vec<ArgDef>),
    /// ONBUILD: the trigger instruction's text (heredoc bodies appended), stored in
    /// the image config and parsed when a later build uses the image.
    Onbuild(String),
    /// STOPSIGNAL.
    StopSignal(String),
    /// HEALTHCHECK.
    Healthcheck(Healthcheck),
}

/// RUN's network mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetworkMode {
    /// The builder's default network.
    #[default]
    Default,
    /// No network.
    None,
    /// The host's network.
    Host,
}

/// RUN's security mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Security {
    /// The usual sandbox.
    #[default]
    Sandbox,
    /// All privileges (needs an entitlement).
    Insecure,
}

/// RUN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The command line.
    pub cmd: ShellOrExec,
    /// `--mount`s, in order.
    pub mounts: Vec<MountSpec>,
    /// `--network`.
    pub network: NetworkMode,
    /// `--security`.
    pub security: Security,
    /// `--device`s.
    pub devices: Vec<Device>,
    /// Heredoc bodies from the line, in order.
    pub heredocs: Vec<Heredoc>,
    /// The flags given that only BuildKit's labs frontend has.
    pub labs_flags: Vec<&'static str>,
}

/// COPY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// Source paths (or URLs, or stage paths), unexpanded; heredoc sources excluded.
    pub sources: Vec<String>,
    /// Heredoc sources, in the order they are named (use [`Heredoc::body`]).
    pub heredocs: Vec<Heredoc>,
    /// Destination, unexpanded.
    pub dest: String,
    /// `--from`: stage, image or context name.
    pub from: Option<String>,
    /// `--chown`.
    pub chown: Option<String>,
    /// `--chmod`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--parents`.
    pub parents: bool,
    /// `--exclude` patterns.
    pub excludes: Vec<String>,
    /// The flags given that only BuildKit's labs frontend has.
    pub labs_flags: Vec<&'static str>,
}

/// ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Add {
    /// Source paths or URLs, unexpanded; heredoc sources excluded.
    pub sources: Vec<String>,
    /// Heredoc sources, in the order they are named (use [`Heredoc::body`]).
    pub heredocs: Vec<Heredoc>,
    /// Destination, unexpanded.
    pub dest: String,
    /// `--chown`.
    pub chown: Option<String>,
    /// `--chmod`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--exclude` patterns.
    pub excludes: Vec<String>,
    /// `--checksum`: expected digest of a remote source.
    pub checksum: Option<String>,
    /// `--keep-git-dir`, when given.
    pub keep_git_dir: Option<bool>,
    /// `--unpack`, when given.
    pub unpack: Option<bool>,
}

/// HEALTHCHECK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable any inherited check.
    Disable,
    /// `HEALTHCHECK [options] CMD …`.
    Check(HealthConfig),
}

/// The options of `HEALTHCHECK CMD`; zero durations and retries mean "inherit".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConfig {
    /// The test command (shell form becomes `CMD-SHELL`).
    pub cmd: ShellOrExec,
    /// `--interval`.
    pub interval: Duration,
    /// `--timeout`.
    pub timeout: Duration,
    /// `--start-period`.
    pub start_period: Duration,
    /// `--start-interval`.
    pub start_interval: Duration,
    /// `--retries`.
    pub retries: u32,
}

impl Command {
    /// The instruction as written, for progress output (`RUN echo hi`).
    pub fn description(&self) -> &str {
        self.location.original.trim()
    }
}

/// Turns parsed nodes into stages.
pub fn parse(parsed: &Parsed) -> Result<Dockerfile, InstructionError> {
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for node in &parsed.nodes {
        let located = |kind| InstructionError {
            line: node.start_line,
            end_line: node.end_line,
            text: node.original.clone(),
            kind,
        };
        let location = Location {
            start_line: node.start_line,
            end_line: node.end_line,
            original: node.original.clone(),
        };
        if node.keyword == "from" {
            stages.push(parse_from(node, location).map_err(located)?);
            continue;
        }
        let kind = parse_command(node).map_err(located)?;
        match (stages.last_mut(), kind) {
            (Some(stage), kind) => stage.commands.push(Command { kind, location }),
            (None, CommandKind::Arg(args)) => meta_args.push(MetaArg { args, location }),
            (None, _) => return Err(located(InstructionErrorKind::NoStage)),
        }
    }
    Ok(Dockerfile { meta_args, stages })
}

type Result<T, E = InstructionErrorKind> = std::result::Result<T, E>;

type FlagDefs = &'static [(&'static str, Kind)];

const FROM_FLAGS: FlagDefs = &[("platform", Kind::String)];
const RUN_FLAGS: FlagDefs = &[
    ("mount", Kind::Strings),
    ("network", Kind::String),
    ("security", Kind::String),
    ("device", Kind::Strings),
];
const COPY_FLAGS: FlagDefs = &[
    ("chown", Kind::String),
    ("from", Kind::String),
    ("chmod", Kind::String),
    ("link", Kind::Bool),
    ("exclude", Kind::Strings),
    ("parents", Kind::Bool),
];
const ADD_FLAGS: FlagDefs = &[
    ("chown", Kind::String),
    ("chmod", Kind::String),
    ("link", Kind::Bool),
    ("keep-git-dir", Kind::Bool),
    ("checksum", Kind::String),
    ("unpack", Kind::Bool),
    ("exclude", Kind::Strings),
];
const HEALTHCHECK_FLAGS: FlagDefs = &[
    ("interval", Kind::String),
    ("timeout", Kind::String),
    ("start-period", Kind::String),
    ("start-interval", Kind::String),
    ("retries", Kind::String),
];

/// The flags each instruction takes, the tables the parser reads them by (every other
/// instruction takes none): what the test holding each flag to "honoured, with a test, or
/// refused" enumerates.
pub fn instruction_flags() -> Vec<(&'static str, Vec<&'static str>)> {
    [
        ("FROM", FROM_FLAGS),
        ("RUN", RUN_FLAGS),
        ("COPY", COPY_FLAGS),
        ("ADD", ADD_FLAGS),
        ("HEALTHCHECK", HEALTHCHECK_FLAGS),
    ]
    .into_iter()
    .map(|(instruction, defs)| (instruction, defs.iter().map(|(name, _)| *name).collect()))
    .collect()
}

fn no_flags(node: &Node) -> Result<()> {
    Flags::parse(&[], &node.flags).map(|_| ())
}

fn exactly_one(node: &Node, name: &'static str) -> Result<String> {
    match node.values.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(InstructionErrorKind::ExactlyOneArgument(name)),
    }
}

fn parse_from(node: &Node, location: Location) -> Result<Stage> {
    let name = match node.values.as_slice() {
        [_] => None,
        [_, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => {
            let lower = name.to_lowercase();
            let mut chars = lower.chars();
            let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
                && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
            if !valid {
                return Err(InstructionErrorKind::InvalidStageName(name.clone()));
            }
            Some(lower)
        }
        _ => return Err(InstructionErrorKind::FromArguments),
    };
    let flags = Flags::parse(FROM_FLAGS, &node.flags)?;
    Ok(Stage {
        name,
        base: node.values[0].clone(),
        platform: flags.string("platform"),
        commands: Vec::new(),
        location,
    })
}

fn parse_command(node: &Node) -> Result<CommandKind> {
    let values = &node.values;
    Ok(match node.keyword.as_str() {
        "run" => CommandKind::Run(parse_run(node)?),
        "cmd" => {
            no_flags(node)?;
            CommandKind::Cmd(command_line(node))
        }
        "entrypoint" => {
            no_flags(node)?;
            CommandKind::Entrypoint(command_line(node))
        }
        "shell" => {
            no_flags(node)?;
            if values.is_empty() {
                return Err(InstructionErrorKind::AtLeastOneArgument("SHELL"));
            }
            if !node.json {
                return Err(InstructionErrorKind::ShellNotJson);
            }
            CommandKind::Shell(values.clone())
        }
        "env" => {
            no_flags(node)?;
            CommandKind::Env(key_values(values, "ENV")?)
        }
        "label" => {
            no_flags(node)?;
            CommandKind::Label(key_values(values, "LABEL")?)
        }
        "maintainer" => {
            let who = exactly_one(node, "MAINTAINER")?;
            no_flags(node)?;
            CommandKind::Maintainer(who)
        }
        "expose" => {
            if values.is_empty() {
                return Err(InstructionErrorKind::AtLeastOneArgument("EXPOSE"));
            }
            no_flags(node)?;
            let mut ports = values.clone();
            ports.sort();
            CommandKind::Expose(ports)
        }
        "add" => CommandKind::Add(parse_add(node)?),
        "copy" => CommandKind::Copy(parse_copy(node)?),
        "volume" => {
            if values.is_empty() {
                return Err(InstructionErrorKind::AtLeastOneArgument("VOLUME"));
            }
            no_flags(node)?;
            let volumes = values
                .iter()
                .map(|v| {
                    let v = v.trim();
                    if v.is_empty() {
                        Err(InstructionErrorKind::EmptyVolume)
                    } else {
                        Ok(v.to_string())
                    }
                })
                .collect::<Result<_>>()?;
            CommandKind::Volume(volumes)
        }
        "user" => {
            let user = exactly_one(node, "USER")?;
            no_flags(node)?;
            CommandKind::User(user)
        }
        "workdir" => {
            let dir = exactly_one(node, "WORKDIR")?;
            no_flags(node)?;
            CommandKind::Workdir(dir)
        }
        // BuildKit never validates ARG's and STOPSIGNAL's flags; neither do we, so that
        // whatever builds with docker builds here.
        "arg" => CommandKind::Arg(arg_defs(values)?),
        "stopsignal" => CommandKind::StopSignal(exactly_one(node, "STOPSIGNAL")?),
        "onbuild" => CommandKind::Onbuild(parse_onbuild(node)?),
        "healthcheck" => CommandKind::Healthcheck(parse_healthcheck(node)?),
        // FROM is handled by the caller; the parser produces no other keyword, but
        // nodes can be built by hand.
        other => return Err(InstructionErrorKind::UnknownInstruction(other.to_string())),
    })
}

fn command_line(node: &Node) -> ShellOrExec {
    if node.json {
        ShellOrExec::Exec(node.values.clone())
    } else {
        ShellOrExec::Shell(node.values.join(" "))
    }
}

fn key_values(values: &[String], name: &'static str) -> Result<Vec<KeyValue>> {
    if values.is_empty() {
        return Err(InstructionErrorKind::AtLeastOneArgument(name));
    }
    values
        .chunks(3)
        .map(|triple| match triple {
            [key, ..] if key.is_empty() => Err(InstructionErrorKind::BlankName(name)),
            [key, value, _] => Ok(KeyValue {
                key: key.clone(),
                value: value.clone(),
            }),
            _ => Err(InstructionErrorKind::AtLeastOneArgument(name)),
        })
        .collect()
}

fn arg_defs(values: &[String]) -> Result<Vec<ArgDef>> {
    if values.is_empty() {
        return Err(InstructionErrorKind::AtLeastOneArgument("ARG"));
    }
    values
        .iter()
        .map(|arg| match arg.split_once('=') {
            Some(("", _)) => Err(InstructionErrorKind::BlankName("ARG")),
            Some((name, default)) => Ok(ArgDef {
                name: name.to_string(),
                default: Some(default.to_string()),
            }),
            None => Ok(ArgDef {
                name: arg.clone(),
                default: None,
            }),
        })
        .collect()
}

fn parse_run(node: &Node) -> Result<Run> {
    let flags = Flags::parse(RUN_FLAGS, &node.flags)?;
    let network = match flags.string("network").as_deref() {
        None | Some("default") => NetworkMode::Default,
        Some("none") => NetworkMode::None,
        Some("host") => NetworkMode::Host,
        Some(other) => return Err(InstructionErrorKind::InvalidNetwork(other.to_string())),
    };
    let security = match flags.string("security").as_deref() {
        None | Some("sandbox") => Security::Sandbox,
        Some("insecure") => Security::Insecure,
        Some(other) => return Err(InstructionErrorKind::InvalidSecurity(other.to_string())),
    };
    let mounts = flags
        .strings("mount")
        .iter()
        .map(|raw| parse_mount(raw, |v| Ok(v.to_string())).map_err(InstructionErrorKind::Mount))
        .collect::<Result<_>>()?;
    Ok(Run {
        cmd: command_line(node),
        mounts,
        network,
        security,
        devices: flags
            .strings("device")
            .iter()
            .map(|raw| parse_device(raw).map_err(InstructionErrorKind::Device))
            .collect::<Result<_>>()?,
        heredocs: node.heredocs.clone(),
        labs_flags: labs_flags(&flags, RUN_LABS_FLAGS),
    })
}

/// Splits COPY/ADD arguments into path sources, heredoc sources and destination.
fn sources_and_dest(
    node: &Node,
    name: &'static str,
) -> Result<(Vec<String>, Vec<Heredoc>, String)> {
    let Some((dest, sources)) = node.values.split_last().filter(|(_, s)| !s.is_empty()) else {
        return Err(InstructionErrorKind::NoDestination(name));
    };
    if matches!(parse_heredoc_word(dest), Ok(Some(_))) {
        return Err(InstructionErrorKind::HeredocDestination(name));
    }
    let mut paths = Vec::new();
    let mut heredocs = Vec::new();
    for source in sources {
        match parse_heredoc_word(source) {
            Ok(Some(word)) => {
                let content = node
                    .heredocs
                    .iter()
                    .find(|h| h.name == word.name)
                    .map(|h| h.content.clone())
                    .unwrap_or_default();
                heredocs.push(Heredoc {
                    name: word.name,
                    fd: word.fd,
                    content,
                    expand: word.expand,
                    chomp: word.chomp,
                });
            }
            _ => paths.push(source.clone()),
        }
    }
    Ok((paths, heredocs, dest.clone()))
}

fn parse_copy(node: &Node) -> Result<Copy> {
    if node.values.len() < 2 {
        return Err(InstructionErrorKind::NoDestination("COPY"));
    }
    let flags = Flags::parse(COPY_FLAGS, &node.flags)?;
    let (sources, heredocs, dest) = sources_and_dest(node, "COPY")?;
    Ok(Copy {
        sources,
        heredocs,
        dest,
        from: flags.string("from"),
        chown: flags.string("chown"),
        chmod: flags.string("chmod"),
        link: flags.bool("link"),
        parents: flags.bool("parents"),
        excludes: flags.strings("exclude"),
        labs_flags: labs_flags(&flags, COPY_LABS_FLAGS),
    })
}

/// RUN flags of BuildKit's labs Dockerfile frontend only (Docker 28.5's built-in one says
/// "unknown flag" to them, or for `--device` that it needs 1.14.0-labs).
pub const RUN_LABS_FLAGS: &[&str] = &["security", "device"];
/// COPY flags of the labs frontend only.
pub const COPY_LABS_FLAGS: &[&str] = &["parents"];

fn labs_flags(flags: &Flags, labs: &[&'static str]) -> Vec<&'static str> {
    labs.iter()
        .copied()
        .filter(|name| flags.is_given(name))
        .collect()
}

fn parse_add(node: &Node) -> Result<Add> {
    if node.values.len() < 2 {
        return Err(InstructionErrorKind::NoDestination("ADD"));
    }
    let flags = Flags::parse(ADD_FLAGS, &node.flags)?;
    let (sources, heredocs, dest) = sources_and_dest(node, "ADD")?;
    Ok(Add {
        sources,
        heredocs,
        dest,
        chown: flags.string("chown"),
        chmod: flags.string("chmod"),
        link: flags.bool("link"),
        excludes: flags.strings("exclude"),
        checksum: flags.string("checksum"),
        keep_git_dir: flags.bool_given("keep-git-dir"),
        unpack: flags.bool_given("unpack"),
    })
}

fn parse_onbuild(node: &Node) -> Result<String> {
    let Some(trigger) = node.sub_command.as_deref() else {
        return Err(InstructionErrorKind::AtLeastOneArgument("ONBUILD"));
    };
    no_flags(node)?;
    match trigger.keyword.as_str() {
        "onbuild" => return Err(InstructionErrorKind::OnbuildChain),
        "maintainer" | "from" => {
            return Err(InstructionErrorKind::OnbuildTrigger(
                trigger.keyword.to_uppercase(),
            ));
        }
        _ => {}
    }
    let mut expression = strip_onbuild_keyword(&node.original).to_string();
    for heredoc in &node.heredocs {
        expression.push('\n');
        expression.push_str(&heredoc.content);
        expression.push_str(&heredoc.name);
    }
    Ok(expression)
}

/// BuildKit's `(?i)^\s*ONBUILD\s*` removal.
fn strip_onbuild_keyword(original: &str) -> &str {
    let is_space = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c');
    let text = original.trim_start_matches(is_space);
    match text.get(..7) {
        Some(kw) if kw.eq_ignore_ascii_case("onbuild") => text[7..].trim_start_matches(is_space),
        _ => original,
    }
}

fn parse_healthcheck(node: &Node) -> Result<Healthcheck> {
    let Some((typ, args)) = node.values.split_first() else {
        return Err(InstructionErrorKind::AtLeastOneArgument("HEALTHCHECK"));
    };
    let typ = typ.to_uppercase();
    if typ == "NONE" {
        // As in BuildKit, flags are not looked at for NONE.
        if !args.is_empty() {
            return Err(InstructionErrorKind::HealthcheckNoneArguments);
        }
        return Ok(Healthcheck::Disable);
    }
    let flags = Flags::parse(HEALTHCHECK_FLAGS, &node.flags)?;
    if typ != "CMD" {
        return Err(InstructionErrorKind::HealthcheckType(typ));
    }
    if args.is_empty() {
        return Err(InstructionErrorKind::HealthcheckMissingCommand);
    }
    let cmd = if node.json {
        ShellOrExec::Exec(args.to_vec())
    } else {
        ShellOrExec::Shell(args.join(" "))
    };
    let retries = match flags.string("retries") {
        None => 0,
        Some(r) => {
            let n: i64 = r
                .parse::<i32>()
                .map_err(|_| InstructionErrorKind::InvalidRetries(r.clone()))?
                .into();
            u32::try_from(n).map_err(|_| InstructionErrorKind::NegativeRetries(n))?
        }
    };
    Ok(Healthcheck::Check(HealthConfig {
        cmd,
        interval: interval(&flags, "interval")?,
        timeout: interval(&flags, "timeout")?,
        start_period: interval(&flags, "start-period")?,
        start_interval: interval(&flags, "start-interval")?,
        retries,
    }))
}

/// An optional health check interval: zero when absent or zero, at least 1ms otherwise.
fn interval(flags: &Flags, name: &'static str) -> Result<Duration> {
    let Some(text) = flags.string(name) else {
        return Ok(Duration::ZERO);
    };
    let nanos = duration::parse_go_duration(&text)
        .ok_or_else(|| InstructionErrorKind::InvalidDuration(text.clone()))?;
    match u64::try_from(nanos) {
        Ok(0) => Ok(Duration::ZERO),
        Ok(n) if n >= 1_000_000 => Ok(Duration::from_nanos(n)),
        _ => Err(InstructionErrorKind::IntervalTooSmall(name)),
    }
}

#[cfg(test)]
mod tests;
