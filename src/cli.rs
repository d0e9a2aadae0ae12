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
}
