use std::io::Write;
use std::process::ExitCode;

use bud::cli::{BuildOptions, Cli, Command, DebugCommand};
use clap::CommandFactory;

/// Exit codes: 0 success, 1 a failed build or command, 2 a usage error (as clap's own).
const EXIT_FAILURE: u8 = 1;
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::parse_with_implied_build() {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    init_tracing(cli.global.debug);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(Failure::Command(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

enum Failure {
    Usage(String),
    Command(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Command(e)
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Completion { shell } => {
            let mut out = std::io::stdout().lock();
            clap_complete::generate(shell, &mut Cli::command(), "bud", &mut out);
            out.flush().map_err(|e| Failure::Command(e.into()))
        }
        Command::Build(opts) => build(&opts),
        Command::Du(opts) => Ok(bud::commands::state_root(cli.global.root.as_deref())
            .and_then(|s| bud::commands::du::run(&s, &opts, &mut std::io::stdout().lock()))
            .map_err(anyhow::Error::from)?),
        Command::Prune(opts) => Ok(bud::commands::state_root(cli.global.root.as_deref())
            .and_then(|s| {
                bud::commands::prune::run(
                    &s,
                    &opts,
                    &mut std::io::stdin().lock(),
                    &mut std::io::stdout().lock(),
                )
            })
            .map_err(anyhow::Error::from)?),
        Command::Debug(DebugCommand::DumpLlb(_)) => Err(not_supported("bud debug dump-llb")),
        Command::Debug(DebugCommand::Workers) => {
            Ok(bud::commands::state_root(cli.global.root.as_deref())
                .and_then(|s| bud::commands::workers::run(&s, &mut std::io::stdout().lock()))
                .map_err(anyhow::Error::from)?)
        }
    }
}

fn build(opts: &BuildOptions) -> Result<(), Failure> {
    if let Some(flag) = bud::cli::unsupported_flags(opts).first() {
        return Err(not_supported(flag));
    }
    Err(not_supported("building"))
}

fn not_supported(what: &str) -> Failure {
    Failure::Usage(format!("{what} is not supported yet"))
}

fn init_tracing(debug: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if debug { "debug" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
