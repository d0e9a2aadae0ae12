//! Command line: `serve`, `check-config`, `redrive`, `quarantine`, `loadgen`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::loadgen::LoadOptions;

#[derive(Debug, Parser)]
#[command(
    name = "hookbridge",
    version,
    about = "Webhook gateway: verify, map to Avro, publish to Kafka or NATS JetStream"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve {
        /// Path of the TOML config file.
        #[arg(long, short, default_value = "hookbridge.toml")]
        config: PathBuf,
    },
    /// Validate a config file (secrets included) without starting anything; exits non-zero listing
    /// every problem with its key.
    CheckConfig {
        /// Path of the TOML config file.
        config: PathBuf,
    },
    /// Read a source's dead letters back and publish them again with the current (fixed) config.
    Redrive {
        /// Path of the TOML config file.
        #[arg(long, short)]
        config: PathBuf,
        /// The source whose dead-letter topic to read.
        #[arg(long)]
        source: String,
        /// Only dead letters received at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// Only dead letters received at or before this time (RFC 3339).
        #[arg(long)]
        until: Option<String>,
        /// Only dead letters with this reason code (for example `missing_field`).
        #[arg(long)]
        reason: Option<String>,
        /// Stop reading when nothing arrives for this long, in milliseconds.
        #[arg(long, default_value_t = 2000)]
        idle_ms: u64,
    },
    /// The spool's quarantine: entries that could never be delivered as they were. Works on the
    /// spool of a stopped gateway (redb allows one process per file).
    Quarantine {
        /// Path of the TOML config file (its `[spool] path` is used).
        #[arg(long, short)]
        config: PathBuf,
        /// Move the entries back to the queue (all, or the one given with --seq), for the next
        /// start to deliver once what made them undeliverable is fixed.
        #[arg(long)]
        requeue: bool,
        /// Only this entry (its sequence number, as listed).
        #[arg(long, requires = "requeue")]
        seq: Option<u64>,
    },
    /// Send distinct, signed webhooks to a running gateway and report throughput, latency and
    /// what reached the broker (see docs/performance.md).
    Loadgen {
        #[command(flatten)]
        options: LoadOptions,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn parse_weighted(raw: &str) -> Result<(String, u32), String> {
    match raw.split_once('=') {
        None => Ok((raw.to_owned(), 1)),
        Some((name, weight)) => weight
            .parse()
            .map(|w| (name.to_owned(), w))
            .map_err(|_| format!("{weight:?} is not a whole-number weight")),
    }
}

pub(crate) fn parse_seconds(raw: &str) -> Result<Duration, String> {
    raw.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{raw:?} is not a number of seconds"))
}
