//! Command line: `serve`, `check-config`.

use std::path::PathBuf;

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
}
