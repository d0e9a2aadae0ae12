//! `hookbridge-loadgen`: parse the command line, run the load, print the report. What it does is in
//! the library (`hookbridge_loadgen::run`), which `tests/api/loadgen.rs` calls directly.

use std::collections::HashMap;
use std::process::ExitCode;

use clap::Parser;
use hookbridge_loadgen::LoadOptions;

/// jemalloc, as in the gateway: the generator shares the benchmark machine's cores with the gateway
/// and the broker, and it ran with this allocator when it was the gateway's `loadgen` subcommand,
/// so the numbers in docs/performance.md stay comparable.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Send distinct, signed webhooks to a running gateway and report throughput, latency and what
/// reached the broker (see docs/performance.md).
#[derive(Debug, Parser)]
#[command(name = "hookbridge-loadgen", version)]
struct Cli {
    #[command(flatten)]
    options: LoadOptions,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // As `hookbridge` does before every subcommand (this was one): one rustls provider for any TLS
    // the consumer's broker clients open.
    hookbridge::startup::install_crypto_provider();
    let env: HashMap<String, String> = std::env::vars().collect();
    let Ok(runtime) = tokio::runtime::Runtime::new() else {
        eprintln!("cannot start the async runtime");
        return ExitCode::FAILURE;
    };
    match runtime.block_on(hookbridge_loadgen::run(cli.options, &env)) {
        Ok(report) if cli.json => match serde_json::to_string(&report) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("loadgen: {e}");
                ExitCode::FAILURE
            }
        },
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::from(2)
        }
    }
}
