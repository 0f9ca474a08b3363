//! The `bud` command: privilege mode first, then the command, its errors as exit codes.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use bud::cli::{BuildOptions, Cli, Command, DebugCommand, GlobalOptions};
use clap::CommandFactory;
use tokio_util::sync::CancellationToken;

/// Exit codes: 0 success, 1 a failed build or command, 2 a usage error (as clap's own).
const EXIT_FAILURE: u8 = 1;

fn main() -> ExitCode {
    let cli = match Cli::parse_with_implied_build() {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // Whatever works on bud's own state root (the embedded solver, du, prune, an image a
    // daemon built read back from Docker) needs the privilege for it first, before any
    // thread starts.
    // A rootless bud's user namespace is mapped by two helper processes: begun here, at
    // once, it is finished (`run`) once the build has read what it can on this one thread
    // while they run.
    let owns_state_root = match &cli.command {
        Command::Completion { .. } => false,
        Command::Build(opts) if cli.global.addr.is_some() => {
            bud::build::may_import_built_image(opts)
        }
        _ => cli.global.addr.is_none(),
    };
    let entry = owns_state_root.then(bud::privilege::begin);
    init_tracing(cli.global.debug);
    match run(cli, entry) {
        Ok(()) => ExitCode::SUCCESS,
        // The findings are printed already; like buildx, exit 1 without more.
        Err(e) if e.downcast_ref::<bud::build::ChecksFailed>().is_some() => {
            ExitCode::from(EXIT_FAILURE)
        }
        Err(e) => {
            bud::report!("error: {}", bud::error_chain::error_chain(e.as_ref()));
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn run(cli: Cli, entry: Option<bud::privilege::Entry>) -> Result<()> {
    // A build reads its inputs and opens its state root before finishing the entry; every
    // other command finishes it first.
    let entry = match cli.command {
        Command::Build(_) => entry,
        _ => {
            finish(entry);
            None
        }
    };
    let state_root = || bud::commands::state_root(cli.global.root.as_deref());
    match cli.command {
        Command::Completion { shell } => {
            let mut out = std::io::stdout().lock();
            clap_complete::generate(shell, &mut Cli::command(), "bud", &mut out);
            Ok(out.flush()?)
        }
        Command::Build(ref opts) => {
            let prepared = bud::build::prepare(opts, &cli.global)?;
            finish(entry);
            build(prepared, opts, &cli.global)
        }
        Command::Du(ref opts) if let Some(addr) = &cli.global.addr => block_on(async {
            bud::commands::remote::du(addr, &cli.global.tls, opts, &mut std::io::stdout().lock())
                .await
        }),
        Command::Prune(ref opts) if let Some(addr) = &cli.global.addr => block_on(async {
            bud::commands::remote::prune(addr, &cli.global.tls, opts, &mut std::io::stdout().lock())
                .await
        }),
        Command::Debug(DebugCommand::Workers) if let Some(addr) = &cli.global.addr => {
            block_on(async {
                bud::commands::remote::workers(addr, &cli.global.tls, &mut std::io::stdout().lock())
                    .await
            })
        }
        Command::Du(opts) => Ok(state_root()
            .and_then(|s| bud::commands::du::run(&s, &opts, &mut std::io::stdout().lock()))
            .map_err(anyhow::Error::from)?),
        Command::Prune(opts) => Ok(state_root()
            .and_then(|s| {
                bud::commands::prune::run(
                    &s,
                    &opts,
                    &mut std::io::stdin().lock(),
                    &mut std::io::stdout().lock(),
                )
            })
            .map_err(anyhow::Error::from)?),
        Command::Debug(DebugCommand::DumpLlb(opts)) => {
            block_on(bud::build::dump_llb::run(&opts, &cli.global))
        }
        Command::Debug(DebugCommand::Workers) => Ok(state_root()
            .and_then(|s| bud::commands::workers::run(&s, &mut std::io::stdout().lock()))
            .map_err(anyhow::Error::from)?),
    }
}

fn finish(entry: Option<bud::privilege::Entry>) {
    if let Some(entry) = entry {
        entry.finish();
    }
}

fn build(
    prepared: bud::build::Prepared,
    opts: &BuildOptions,
    global: &GlobalOptions,
) -> Result<()> {
    let cancel = CancellationToken::new();
    bud::signals::watch(cancel.clone(), EXIT_FAILURE)?;
    let built = block_on(bud::build::run(prepared, opts, global, cancel.clone()));
    if !cancel.is_cancelled() {
        return built;
    }
    // Interrupted: the build fails even if it got to its end meanwhile, as docker build's
    // does once its context is cancelled.
    Err(match built {
        Ok(()) => anyhow::anyhow!("the build was interrupted"),
        Err(e) => e.context("the build was interrupted"),
    })
}

fn block_on(work: impl std::future::Future<Output = Result<()>>) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(work)
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
