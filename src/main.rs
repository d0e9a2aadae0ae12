//! `hookbridge`: parse the command line, load the config, run. All wiring lives in `startup`.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use hookbridge::cli::{Cli, Command};
use hookbridge::config::{Config, load_file};
use hookbridge::startup::Application;
use hookbridge::telemetry;

fn main() -> ExitCode {
    let cli = Cli::parse();
    hookbridge::startup::install_crypto_provider();
    let env: HashMap<String, String> = std::env::vars().collect();
    match cli.command {
        Command::CheckConfig { config } => check_config(&config, &env),
        Command::Serve { config } => {
            let config = match load_and_validate(&config, &env) {
                Ok(c) => c,
                Err(code) => return code,
            };
            telemetry::init(config.server.log_format);
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(serve(config))
        }
    }
}

async fn serve(config: Config) -> ExitCode {
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!(error = %e, "startup failed");
            return ExitCode::FAILURE;
        }
    };
    match app.run_until_stopped(hookbridge::shutdown::signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "server stopped with an error");
            ExitCode::FAILURE
        }
    }
}

fn check_config(path: &Path, env: &HashMap<String, String>) -> ExitCode {
    match load_and_validate(path, env) {
        Ok(config) => {
            println!(
                "{}: ok ({} sources, {} publishers)",
                path.display(),
                config.sources.len(),
                config.publishers.len()
            );
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// Loads and validates, printing every problem as `key: reason` on stderr.
fn load_and_validate(path: &Path, env: &HashMap<String, String>) -> Result<Config, ExitCode> {
    let raw = load_file(path, env).map_err(|e| {
        eprintln!("{}: {e}", path.display());
        ExitCode::from(2)
    })?;
    Config::validate(raw, env).map_err(|issues| {
        for issue in &issues {
            eprintln!("{}: {issue}", path.display());
        }
        ExitCode::from(2)
    })
}
