//! Command line: `serve`, `check-config`, `redrive`, `loadgen`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

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
    /// Send distinct, signed webhooks to a running gateway and report throughput, latency and
    /// what reached the broker (see docs/performance.md).
    Loadgen {
        /// The gateway's config file: sources, secrets and publishers come from here.
        #[arg(long, short)]
        config: PathBuf,
        /// The gateway's address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        target: SocketAddr,
        /// A source to send to, optionally weighted (`cronofy_kafka=3`); repeat for a mix.
        #[arg(long = "source", required = true, value_parser = parse_weighted)]
        sources: Vec<(String, u32)>,
        /// Concurrent keep-alive connections.
        #[arg(long, default_value_t = 256)]
        connections: usize,
        /// Open loop at this many requests per second (default: closed loop).
        #[arg(long)]
        rate: Option<f64>,
        /// Measured seconds.
        #[arg(long, default_value = "10", value_parser = parse_seconds)]
        duration: Duration,
        /// Unmeasured seconds first.
        #[arg(long, default_value = "2", value_parser = parse_seconds)]
        warmup: Duration,
        /// Approximate size of generated Cronofy bodies, in bytes.
        #[arg(long, default_value_t = 1024)]
        body_bytes: usize,
        /// Do not read the topics back (for servers that publish nothing, like the HTTP ceiling).
        #[arg(long)]
        no_consume: bool,
        /// Print the report as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

fn parse_weighted(raw: &str) -> Result<(String, u32), String> {
    match raw.split_once('=') {
        None => Ok((raw.to_owned(), 1)),
        Some((name, weight)) => weight
            .parse()
            .map(|w| (name.to_owned(), w))
            .map_err(|_| format!("{weight:?} is not a whole-number weight")),
    }
}

fn parse_seconds(raw: &str) -> Result<Duration, String> {
    raw.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{raw:?} is not a number of seconds"))
}
