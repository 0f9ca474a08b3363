//! The command line: `docker build` / `docker buildx build` flags, spelled the same way.
//!
//! Flags are declared once here; `--help`, the shell completions in `completions/` and the
//! typed options the rest of bud consumes all come from these definitions. A first word that
//! is not a command means `bud build`, as `docker build` is typed.
//!
//! Nothing accepted is passed over: `tests/it/cli.rs` holds every flag (`FLAG_EVIDENCE`) and
//! every instruction flag, `RUN --mount` key and parser directive (`DOCKERFILE_EVIDENCE`) to
//! a named test, and `options`' unit tests hold every output attribute to "honoured or
//! refused" (`UNHONOURED_ATTRS`).

mod options;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use options::{
    AddHost, BuildArg, BuildContext, CacheOption, KeyValue, Output, OutputKind, Progress,
    SecretSource, SecretSpec, SshSpec, TlsOptions, Ulimit, csv_fields, parse_go_bool, parse_size,
};

use crate::attest::flags::Attest;

/// The words that are subcommands; anything else as the first word means `build`.
const SUBCOMMANDS: &[&str] = &["build", "du", "prune", "debug", "completion", "help"];

/// Flags that may stand before the subcommand word and take a value, so that
/// `bud --root /x du` still sees `du` as the subcommand.
const GLOBAL_FLAGS_WITH_VALUE: &[&str] = &[
    "--root",
    "--addr",
    "--tlscacert",
    "--tlscert",
    "--tlskey",
    "--tlsservername",
    "--tlsdir",
];

/// The whole command line, parsed by [`Cli::parse_with_implied_build`].
#[derive(Debug, Parser)]
#[command(
    name = "bud",
    version,
    about = "Build an image from a Dockerfile, faster: a drop-in for `docker build`",
    override_usage = "bud [build] [OPTIONS] PATH | URL | -\n       bud <COMMAND> [OPTIONS]",
    after_help = "`bud ARGS` is `bud build ARGS` unless the first word is a command.\n\
                  Run `bud build --help` for every build flag."
)]
pub struct Cli {
    /// Options before or after the command word.
    #[command(flatten)]
    pub global: GlobalOptions,
    /// The command, `build` when the first word names none.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts, before or after the command word.
#[derive(Debug, Clone, Args)]
pub struct GlobalOptions {
    /// Build on a BuildKit daemon instead of the embedded solver
    /// (docker://, unix://PATH, tcp://HOST:PORT, docker-container://NAME, kube-pod://POD)
    #[arg(
        long,
        env = "BUD_HOST",
        global = true,
        value_name = "ADDRESS",
        help_heading = "Global options"
    )]
    pub addr: Option<String>,
    /// TLS material for a `tcp://` address.
    #[command(flatten)]
    pub tls: TlsOptions,
    /// Directory of bud's state: cache, snapshots, content store
    /// [default: /var/lib/bud for root, ~/.local/share/bud otherwise]
    #[arg(
        long,
        env = "BUD_ROOT",
        global = true,
        value_name = "DIR",
        help_heading = "Global options"
    )]
    pub root: Option<PathBuf>,
    /// Print debug logs (RUST_LOG gives finer control)
    #[arg(short = 'D', long, global = true, help_heading = "Global options")]
    pub debug: bool,
}

/// bud's commands; each variant's doc is its line in `bud help`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build an image from a Dockerfile (the default command)
    Build(Box<BuildOptions>),
    /// Show the disk usage of the build cache
    Du(DuOptions),
    /// Remove build cache
    Prune(PruneOptions),
    /// Look inside a build: the LLB graph, the worker
    #[command(subcommand)]
    Debug(DebugCommand),
    /// Print a shell completion script
    Completion {
        /// The shell to write the script for (not clap's help: the value list says it).
        #[arg(value_enum, help = None::<&str>)]
        shell: clap_complete::Shell,
    },
}

/// `bud build`'s arguments, typed as docker build and buildx read them; each field's doc is
/// its flag's help.
#[derive(Debug, Clone, Args)]
#[command(
    override_usage = "bud [build] [OPTIONS] PATH | URL | -",
    about = "Build an image from a Dockerfile",
    after_help = "Other commands: du, prune, debug dump-llb, debug workers, completion (see `bud help`)."
)]
pub struct BuildOptions {
    /// Build context: a directory, a git or https URL, or - to read a tar or a Dockerfile from stdin
    #[arg(value_name = "PATH | URL | -")]
    pub context: String,

    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host", value_name = "HOST:IP", value_parser = AddHost::parse)]
    pub add_hosts: Vec<AddHost>,
    /// Allow extra privileged entitlement (network.host, security.insecure, device[=NAME[,alias=ALIAS]])
    #[arg(long = "allow", value_name = "ENTITLEMENT", value_parser = parse_entitlement)]
    pub allow: Vec<String>,
    /// Add an annotation to the image (KEY=VALUE, or TYPE[PLATFORM]:KEY=VALUE with TYPE
    /// manifest or manifest-descriptor)
    #[allow(
        rustdoc::broken_intra_doc_links,
        reason = "clap prints this text as the flag's help: the brackets are its syntax, not a link, and an escape would show"
    )]
    #[arg(long = "annotation", value_name = "[TYPE:]KEY=VALUE", value_parser = crate::exporter::annotations::parse_flag)]
    pub annotations: Vec<crate::exporter::annotations::Annotation>,
    /// Attestation parameters (type=provenance[,mode=min|max], type=sbom; disabled=true)
    #[arg(long = "attest", value_name = "SPEC", value_parser = Attest::parse)]
    pub attests: Vec<Attest>,
    /// Set build-time variables (KEY=VALUE, or KEY to take it from the environment)
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]", value_parser = BuildArg::parse)]
    pub build_args: Vec<BuildArg>,
    /// Additional build contexts (NAME=DIR|https://URL|docker-image://REF)
    #[arg(long = "build-context", value_name = "NAME=VALUE", value_parser = BuildContext::parse)]
    pub build_contexts: Vec<BuildContext>,
    /// External cache sources (type=registry,ref=IMAGE, or IMAGE)
    #[arg(long = "cache-from", value_name = "SPEC", value_parser = CacheOption::parse_from)]
    pub cache_from: Vec<CacheOption>,
    /// Cache export destinations (type=inline|registry|local,...)
    #[arg(long = "cache-to", value_name = "SPEC", value_parser = CacheOption::parse_to)]
    pub cache_to: Vec<CacheOption>,
    /// Evaluate the build another way: check, outline, targets (METHOD[,format=json])
    #[arg(long, value_name = "METHOD", default_value = "build", value_parser = CallMethod::parse, hide_default_value = true)]
    pub call: CallMethod,
    /// Run the build checks only (shorthand for --call=check)
    #[arg(long)]
    pub check: bool,
    /// After the build, list the steps that ran and why each was not cached (bud's own
    /// solver only: BuildKit, with --addr, does not report it)
    #[arg(long)]
    pub explain: bool,
    /// Name of the Dockerfile (default: PATH/Dockerfile; - reads it from stdin)
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub file: Option<String>,
    /// Write the image ID to the file
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Set metadata for an image (KEY=VALUE)
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = KeyValue::parse_label)]
    pub labels: Vec<KeyValue>,
    /// Load the result into Docker (shorthand for --output=type=docker)
    #[arg(long)]
    pub load: bool,
    /// Write build result metadata (image digest, config digest, names) to the file, as JSON
    #[arg(long = "metadata-file", value_name = "FILE")]
    pub metadata_file: Option<PathBuf>,
    /// Networking mode for the RUN instructions (default, none, host)
    #[arg(long, value_name = "MODE", default_value = "default", value_parser = ["default", "none", "host"], hide_possible_values = true, hide_default_value = true)]
    pub network: String,
    /// Do not use cache when building the image
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    /// Do not cache the named stages
    #[arg(long = "no-cache-filter", value_name = "STAGE", value_delimiter = ',')]
    pub no_cache_filter: Vec<String>,
    /// Output destination (type=docker|image|registry|oci|tar|local,KEY=VALUE...; DIR for local; - for a tar on stdout)
    #[arg(short = 'o', long = "output", value_name = "SPEC", value_parser = Output::parse)]
    pub outputs: Vec<Output>,
    /// Set the target platform(s) of the build (os/arch[/variant])
    #[arg(long = "platform", value_name = "PLATFORM", value_delimiter = ',')]
    pub platforms: Vec<String>,
    /// Shorthand for --attest=type=provenance (true, false, or mode=min|max[,...])
    #[arg(long, value_name = "VALUE", value_parser = |v: &str| Attest::shorthand("provenance", v))]
    pub provenance: Option<Attest>,
    /// Set the type of progress output (auto, tty, plain, rawjson, quiet)
    #[arg(long, value_enum, default_value_t = Progress::Auto, env = "BUILDKIT_PROGRESS", hide_possible_values = true)]
    pub progress: Progress,
    /// Always attempt to pull all referenced images
    #[arg(long)]
    pub pull: bool,
    /// Push the result to a registry (shorthand for --output=type=registry)
    #[arg(long)]
    pub push: bool,
    /// Suppress the build output and print the image ID on success
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Shorthand for --attest=type=sbom (true, false, or attributes)
    #[arg(long, value_name = "VALUE", value_parser = |v: &str| Attest::shorthand("sbom", v))]
    pub sbom: Option<Attest>,
    /// Secret to expose to the build (id=ID[,src=PATH|env=VAR])
    #[arg(long = "secret", value_name = "SPEC", value_parser = SecretSpec::parse)]
    pub secrets: Vec<SecretSpec>,
    /// Size of /dev/shm for RUN steps (e.g. 64m)
    #[arg(long = "shm-size", value_name = "BYTES", value_parser = parse_size)]
    pub shm_size: Option<u64>,
    /// SSH agent socket or keys to expose to the build (default|ID[=SOCKET|KEY,...])
    #[arg(long = "ssh", value_name = "SPEC", value_parser = SshSpec::parse)]
    pub ssh: Vec<SshSpec>,
    /// Name and optionally a tag in the 'name:tag' format
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]", value_parser = parse_tag)]
    pub tags: Vec<String>,
    /// Set the target build stage to build
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
    /// Write a Chrome trace (JSON, for chrome://tracing or Perfetto) of the build's steps
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Ulimit options for RUN steps (NAME=SOFT[:HARD])
    #[allow(
        rustdoc::broken_intra_doc_links,
        reason = "clap prints this text as the flag's help: the brackets are its syntax, not a link, and an escape would show"
    )]
    #[arg(long = "ulimit", value_name = "ULIMIT", value_parser = Ulimit::parse)]
    pub ulimits: Vec<Ulimit>,

    /// Remove intermediate containers after a successful build (always the case with bud)
    #[arg(long, hide = true, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    pub rm: Option<bool>,
    /// Always remove intermediate containers (always the case with bud)
    #[arg(long = "force-rm", hide = true)]
    pub force_rm: bool,
}

/// `bud du`'s flags.
#[derive(Debug, Clone, Args)]
pub struct DuOptions {
    /// Show every cache record
    #[arg(short, long)]
    pub verbose: bool,
    /// Filter records (type=..., until=DURATION, description~=TEXT)
    #[arg(long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
}

/// `bud prune`'s flags.
#[derive(Debug, Clone, Args)]
pub struct PruneOptions {
    /// Remove all unused build cache, not just dangling entries
    #[arg(short, long)]
    pub all: bool,
    /// Keep this much storage (e.g. 10GB)
    #[arg(long = "keep-storage", value_name = "SIZE", value_parser = parse_size)]
    pub keep_storage: Option<u64>,
    /// Filter what is pruned (until=DURATION, type=...)
    #[arg(long = "filter", value_name = "FILTER")]
    pub filters: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

/// `bud debug`'s commands.
#[derive(Debug, Subcommand)]
pub enum DebugCommand {
    /// Print the LLB graph a Dockerfile converts to
    DumpLlb(DumpLlbOptions),
    /// Show the worker: platforms, runtime, snapshotter, state root, GC policy
    Workers,
}

/// `bud debug dump-llb`'s arguments.
#[derive(Debug, Clone, Args)]
pub struct DumpLlbOptions {
    /// Build context (for .dockerignore and the default Dockerfile location)
    #[arg(value_name = "PATH", default_value = ".")]
    pub context: PathBuf,
    /// Name of the Dockerfile (default: PATH/Dockerfile; - reads stdin)
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    pub file: Option<String>,
    /// Set the target build stage
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
    /// Set build-time variables
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]", value_parser = BuildArg::parse)]
    pub build_args: Vec<BuildArg>,
    /// Output format
    #[arg(long, value_enum, default_value_t = DumpFormat::Json, conflicts_with = "dot")]
    pub format: DumpFormat,
    /// Print a Graphviz graph (same as --format=dot)
    #[arg(long)]
    pub dot: bool,
}

/// `bud debug dump-llb --format`. The variants' docs are not shown as help for the values
/// (`help = None`), so that `--help` keeps listing them on one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DumpFormat {
    /// One JSON object per op: digest, op, metadata (as `buildctl debug dump-llb`).
    #[value(help = None::<&str>)]
    Json,
    /// A Graphviz graph.
    #[value(help = None::<&str>)]
    Dot,
    /// The binary `pb.Definition`.
    #[value(help = None::<&str>)]
    Pb,
}

/// What `--call` asks for instead of (or as) the build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// `build` (the default): build as without `--call`.
    Build,
    /// `check` (or `lint`, `--check`): run the build checks only and report their findings.
    Check,
    /// `outline`: the target's build arguments, secrets and SSH mounts.
    Outline,
    /// `targets`: the stages that can be built, with their descriptions.
    Targets,
}

/// `--call=METHOD[,format=json|text]`, as buildx reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallMethod {
    /// What is asked for.
    pub method: Call,
    /// `format=json`: JSON as buildx prints it, rather than text.
    pub json: bool,
}

impl CallMethod {
    fn parse(value: &str) -> Result<Self, String> {
        let mut parts = value.split(',');
        let method = match parts.next().unwrap_or_default().trim() {
            "build" => Call::Build,
            "check" | "lint" => Call::Check,
            "outline" => Call::Outline,
            "targets" => Call::Targets,
            other => {
                return Err(format!(
                    "invalid call method {other:?}; accepted: build, check, outline, targets"
                ));
            }
        };
        let mut json = false;
        for part in parts {
            match part.trim().split_once('=') {
                Some(("format", "json")) => json = true,
                Some(("format", "text" | "")) => json = false,
                _ => {
                    return Err(format!(
                        "invalid call option {part:?}; accepted: format=json|text"
                    ));
                }
            }
        }
        Ok(CallMethod { method, json })
    }
}

impl BuildOptions {
    /// `--call`, with `--check` standing for `--call=check`.
    pub fn call(&self) -> CallMethod {
        if self.check {
            CallMethod {
                method: Call::Check,
                json: self.call.json,
            }
        } else {
            self.call
        }
    }
}

/// The entitlements a build can be granted, as BuildKit names them.
pub const ENTITLEMENTS: [&str; 3] = ["device", "network.host", "security.insecure"];

/// One `--allow`: a `device=NAME[,alias=ALIAS]` grant whole (its commas are its own, as
/// buildx reads it), otherwise entitlements separated by commas.
fn parse_entitlement(value: &str) -> Result<String, String> {
    for e in split_entitlements(value) {
        if let Some(device) = e.strip_prefix("device=") {
            crate::executor::cdi::parse_grant(device)?;
        } else if !ENTITLEMENTS.contains(&e) {
            return Err(format!(
                "invalid entitlement {e:?}; accepted: {}, device=NAME[,alias=ALIAS]",
                ENTITLEMENTS.join(", ")
            ));
        }
    }
    Ok(value.to_string())
}

fn split_entitlements(value: &str) -> Vec<&str> {
    if value.starts_with("device=") {
        vec![value]
    } else {
        value.split(',').collect()
    }
}

impl BuildOptions {
    /// The entitlements the build asks for: `--allow`, and `network.host` with
    /// `--network host`, as docker build asks for it then.
    pub fn entitlements(&self) -> Vec<String> {
        let mut granted: Vec<String> = self
            .allow
            .iter()
            .flat_map(|v| split_entitlements(v))
            .map(str::to_owned)
            .collect();
        if self.network == "host" {
            granted.push("network.host".into());
        }
        granted.sort();
        granted.dedup();
        granted
    }
}

fn parse_tag(value: &str) -> Result<String, String> {
    bud_frontend::reference::Reference::parse(value)
        .map(|_| value.to_string())
        .map_err(|e| format!("invalid reference format: {e}"))
}

impl Cli {
    /// Parses the process arguments, with `build` implied when the first word is not a command.
    pub fn parse_with_implied_build() -> Result<Self, clap::Error> {
        Self::try_parse_implied(std::env::args_os())
    }

    /// [`Cli::parse_with_implied_build`] on given arguments (the program name first).
    pub fn try_parse_implied<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        Self::try_parse_from(insert_implied_build(args))
    }
}

/// `bud -t x .` is `bud build -t x .`, and `bud --help` is the build's help, as people reach
/// for it expecting `docker build --help`; `bud help` and `bud` alone list the commands.
fn insert_implied_build(mut args: Vec<OsString>) -> Vec<OsString> {
    let mut i = 1;
    while i < args.len() {
        let Some(word) = args[i].to_str() else { break };
        if GLOBAL_FLAGS_WITH_VALUE.contains(&word) {
            i += 2;
            continue;
        }
        if word == "--debug"
            || word == "-D"
            || GLOBAL_FLAGS_WITH_VALUE.iter().any(|f| {
                word.strip_prefix(f)
                    .is_some_and(|rest| rest.starts_with('='))
            })
        {
            i += 1;
            continue;
        }
        break;
    }
    let Some(word) = args.get(i).and_then(|w| w.to_str()) else {
        return args;
    };
    if SUBCOMMANDS.contains(&word) || matches!(word, "-V" | "--version") {
        return args;
    }
    args.insert(i, OsString::from("build"));
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_implied(std::iter::once("bud").chain(line.split_whitespace()))
    }

    #[test]
    fn build_is_implied() {
        let cli = parse("-t app:1 -f Dockerfile.dev .").unwrap();
        let Command::Build(b) = cli.command else {
            panic!("expected build")
        };
        assert_eq!(b.tags, ["app:1"]);
        assert_eq!(b.file.as_deref(), Some("Dockerfile.dev"));
        assert_eq!(b.context, ".");
    }

    #[test]
    fn subcommands_are_not_contexts() {
        assert!(matches!(parse("du -v").unwrap().command, Command::Du(_)));
        assert!(matches!(
            parse("--root /tmp/x prune --all").unwrap().command,
            Command::Prune(_)
        ));
        assert!(matches!(
            parse("--root=/tmp/x --debug debug workers")
                .unwrap()
                .command,
            Command::Debug(DebugCommand::Workers)
        ));
    }

    #[test]
    fn global_flags_before_implied_build() {
        let cli = parse("--root /tmp/r -t a .").unwrap();
        assert_eq!(cli.global.root, Some(PathBuf::from("/tmp/r")));
        assert!(matches!(cli.command, Command::Build(_)));
    }

    #[test]
    fn allow_takes_comma_lists_and_whole_device_grants() {
        let cli = parse(
            "--allow network.host,security.insecure --allow device=a.com/b=c,alias=gpu \
             --allow device .",
        )
        .unwrap();
        let Command::Build(b) = cli.command else {
            panic!("expected build")
        };
        assert_eq!(
            b.entitlements(),
            [
                "device",
                "device=a.com/b=c,alias=gpu",
                "network.host",
                "security.insecure"
            ]
        );
        for bad in ["device.all", "network.host,bogus", "device=a.com/b,size=2"] {
            let err = parse(&format!("--allow {bad} .")).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}");
        }
    }

    #[test]
    fn bad_tag_is_a_usage_error_naming_the_flag() {
        let err = parse("-t UPPER:case .").unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("--tag"), "{err}");
    }

    #[test]
    fn help_is_the_build_help() {
        let err = parse("--help").unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::DisplayHelp);
        assert!(err.to_string().contains("--build-arg"), "{err}");
        let err = parse("help").unwrap_err();
        assert!(err.to_string().contains("completion"), "{err}");
    }

    #[test]
    fn context_is_required() {
        assert_eq!(parse("-t a").unwrap_err().exit_code(), 2);
    }
}
