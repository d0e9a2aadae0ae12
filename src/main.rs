//! `hookbridge`: parse the command line, load the config, run. All wiring lives in `startup`.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use hookbridge::cli::{Cli, Command};
use hookbridge::config::{Config, load_file};
use hookbridge::redrive::{self, Filter};
use hookbridge::startup::Application;
use hookbridge::telemetry;
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// jemalloc instead of glibc's malloc: each webhook makes several allocations over 1 KiB (the
/// handler future actix boxes, the body, the Avro record), and glibc answered each by consolidating
/// its fast bins, a third of the gateway's CPU under load. mimalloc fixed the CPU but cost 10 MiB
/// of idle RSS; jemalloc did better on both (docs/performance.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    hookbridge::startup::install_crypto_provider();
    let env: HashMap<String, String> = std::env::vars().collect();
    match cli.command {
        Command::CheckConfig { config } => check_config(&config, &env),
        Command::Presets { name, markdown } => presets(name.as_deref(), markdown),
        Command::Redrive {
            config,
            source,
            since,
            until,
            reason,
            idle_ms,
        } => {
            let config = match load_and_validate(&config, &env) {
                Ok(c) => c,
                Err(code) => return code,
            };
            telemetry::init(config.server.log_format);
            let parse = |t: Option<String>| {
                t.map(|t| OffsetDateTime::parse(&t, &Rfc3339).map_err(|e| format!("{t}: {e}")))
                    .transpose()
            };
            let filter = match (parse(since), parse(until)) {
                (Ok(since), Ok(until)) => Filter {
                    since,
                    until,
                    reason,
                },
                (Err(e), _) | (_, Err(e)) => {
                    eprintln!("redrive: {e}");
                    return ExitCode::from(2);
                }
            };
            let Ok(runtime) = tokio::runtime::Runtime::new() else {
                eprintln!("cannot start the async runtime");
                return ExitCode::FAILURE;
            };
            match runtime.block_on(redrive::run(
                config,
                &source,
                &filter,
                Duration::from_millis(idle_ms),
            )) {
                Ok(report) => {
                    println!("redrive {source}: {report}");
                    if report.failed == 0 {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("redrive {source}: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Quarantine {
            config,
            requeue,
            seq,
        } => {
            let config = match load_and_validate(&config, &env) {
                Ok(c) => c,
                Err(code) => return code,
            };
            quarantine(&config, requeue, seq)
        }
        Command::Serve { config } => {
            let path = config;
            let config = match load_and_validate(&path, &env) {
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
            runtime.block_on(serve(config, path, env))
        }
    }
}

async fn serve(config: Config, path: std::path::PathBuf, env: HashMap<String, String>) -> ExitCode {
    // The config is loaded: from here to "listening" is connecting to the brokers, which a slow
    // start can then be told apart from.
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "starting");
    let app = match Application::build(config).await {
        Ok(app) => app.watch_config(path, env),
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

/// Lists the spool's quarantine, or requeues it.
fn quarantine(config: &Config, requeue: bool, seq: Option<u64>) -> ExitCode {
    let Some(spool) = &config.spool else {
        eprintln!("quarantine: the config has no [spool]");
        return ExitCode::from(2);
    };
    let opened = hookbridge::spool::Spool::open(&spool.path, spool.max_bytes);
    let spool = match opened {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "quarantine: cannot open the spool at {} ({e}); a running gateway holds it: stop it first",
                spool.path.display()
            );
            return ExitCode::FAILURE;
        }
    };
    if requeue {
        return match spool.requeue_quarantined(seq) {
            Ok(n) => {
                println!("requeued {n} entries; the next start delivers them");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("quarantine: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match spool.quarantined() {
        Ok(entries) => {
            for (seq, reason, entry) in &entries {
                match entry {
                    Ok(e) => println!(
                        "{seq}\t{reason}\tsource={}\tpublisher={}\ttopic={}\tkey={}\tbytes={}",
                        e.source,
                        e.publisher,
                        e.message.topic,
                        e.dedup_key,
                        e.message.payload.len()
                    ),
                    Err(err) => println!("{seq}\t{reason}\t{err}"),
                }
            }
            println!("{} entries in quarantine", entries.len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("quarantine: {e}");
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

fn presets(name: Option<&str>, markdown: bool) -> ExitCode {
    use hookbridge::providers::generic::{PRESETS, catalogue};
    match name {
        None if markdown => print!("{}", catalogue::markdown_table()),
        None => print!("{}", catalogue::listing()),
        Some(name) => match catalogue::source_table(name) {
            Some(table) => print!("{table}"),
            None => {
                let names: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
                eprintln!("no preset `{name}`; the presets are: {}", names.join(", "));
                return ExitCode::from(2);
            }
        },
    }
    ExitCode::SUCCESS
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
