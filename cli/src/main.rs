//! The `verinfer` binary: thin shell over the library crates.

mod bench;
mod run;

use clap::{Parser, Subcommand};

/// Verinfer: an optimistic rollup for verifiable ML inference.
#[derive(Debug, Parser)]
#[command(name = "verinfer", version, about, propagate_version = true)]
struct Cli {
    /// Log filter (e.g. `info`, `verinfer=debug`); also `RUST_LOG`.
    #[arg(long, global = true, env = "VERINFER_LOG", default_value = "warn")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a model once with the canonical executor and print its roots.
    Run(run::RunArgs),
    /// Time single-threaded inferences (fast executor; `--compare` for the
    /// engine comparison).
    Bench(bench::BenchArgs),
}

fn main() {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cli.log));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Bench(args) => bench::bench(args),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
