//! The `verinfer` binary: thin shell over the library crates.

mod bench;
mod challenger;
mod client;
mod compile;
mod node;
mod run;

use clap::{Parser, Subcommand};

/// Verinfer: an optimistic rollup for verifiable ML inference.
#[derive(Debug, Parser)]
#[command(name = "verinfer", version, about, propagate_version = true)]
struct Cli {
    /// Log filter (e.g. `info`, `verinfer=debug`); also `RUST_LOG`.
    /// Default: `info` for `node`, `warn` otherwise.
    #[arg(long, global = true, env = "VERINFER_LOG")]
    log: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a model once with the canonical executor and print its roots.
    Run(run::RunArgs),
    /// Compile a model to its canonical program and print its roots (no
    /// execution).
    Compile(compile::CompileArgs),
    /// Time single-threaded inferences (fast executor; `--compare` for the
    /// engine comparison).
    Bench(bench::BenchArgs),
    /// Run the sequencer node (JSON-RPC over HTTP and WebSocket).
    Node(node::NodeArgs),
    /// Run the challenger bot: re-execute every batch, dispute wrong
    /// records, play the games.
    Challenger(challenger::ChallengerArgs),
    /// Submit one inference to a node.
    Submit(client::SubmitArgs),
    /// Show a request's receipt and check its inclusion proof.
    Receipt(client::ReceiptArgs),
    /// Show a batch (default: the newest).
    Batch(client::BatchArgs),
    /// List the models a node has registered.
    Models(client::ModelsArgs),
}

fn init_logs(filter: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(filter));
    // Colours only on a terminal: logs piped to a file or a collector get
    // plain text (and `NO_COLOR` turns them off everywhere, per no-color.org).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let fmt = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if json {
        fmt.json().init();
    } else {
        fmt.init();
    }
    // Panics go to the same log, as one structured event, instead of the
    // default hook's lines on stderr. Most are caught (tract panicking on a
    // malformed model becomes that registration's error), hence a warning.
    std::panic::set_hook(Box::new(|info| {
        let p = info.payload();
        let msg = p.downcast_ref::<&str>().copied().or_else(|| p.downcast_ref::<String>().map(String::as_str));
        let at = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
        let thread = std::thread::current().name().unwrap_or("unnamed").to_string();
        tracing::warn!(
            panic = msg.unwrap_or("(not a string)"),
            at,
            thread,
            "a panic (if caught, it is answered as an error)"
        );
    }));
}

fn client_rt() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Node(mut args) => {
            args.log = cli.log.clone();
            match node::effective_config(&args) {
                Ok(cfg) => {
                    init_logs(&cfg.log.filter, cfg.log.format == verinfer_sequencer::config::LogFormat::Json);
                    node::run(args)
                }
                Err(e) => Err(e),
            }
        }
        Command::Challenger(args) => match challenger::effective_config(&args) {
            Ok(cfg) => {
                let filter = cli.log.clone().unwrap_or(cfg.log_filter.clone());
                init_logs(&filter, cfg.log_format == "json");
                challenger::run(args, cfg)
            }
            Err(e) => Err(e),
        },
        cmd => {
            init_logs(cli.log.as_deref().unwrap_or("warn"), false);
            match cmd {
                Command::Run(args) => run::run(args),
                Command::Bench(args) => bench::bench(args),
                Command::Compile(args) => compile::compile(args),
                Command::Submit(a) => client_rt().and_then(|rt| rt.block_on(client::submit(a))),
                Command::Receipt(a) => client_rt().and_then(|rt| rt.block_on(client::receipt(a))),
                Command::Batch(a) => client_rt().and_then(|rt| rt.block_on(client::batch(a))),
                Command::Models(a) => client_rt().and_then(|rt| rt.block_on(client::models(a))),
                Command::Node(_) | Command::Challenger(_) => unreachable!("handled above"),
            }
        }
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        // 2: `verinfer compile` refused the model itself (the node's
        // registration guard tells that apart from a failure to run).
        std::process::exit(if e.downcast_ref::<compile::ModelRefused>().is_some() { 2 } else { 1 });
    }
}
