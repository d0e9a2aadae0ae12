//! Command line: `serve`, `check-config`, `presets`, `redrive`, `quarantine`. (The load generator is its own
//! binary, `hookbridge-loadgen`, in tools/loadgen.)

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
    /// The provider presets: every one with its scheme, what it signs, the headers it reads, where
    /// the type and dedup key come from and its documentation; or, given a NAME, a ready
    /// `[sources.NAME]` table with secret references.
    Presets {
        /// A preset to print a source table for.
        name: Option<String>,
        /// Print the README's Markdown table instead.
        #[arg(long, conflicts_with = "name")]
        markdown: bool,
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
}
