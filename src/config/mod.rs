//! Configuration: the file as written ([`RawConfig`]), loading it with environment overrides
//! ([`load`]), and the one pure step that turns it into the [`Config`] the gateway runs on.
//!
//! Each section is owned by the module whose knowledge it holds: `[server]` here
//! ([`server`]), `[publishers.*]` in [`crate::publish::config`], `[dedup]` in
//! [`crate::dedup::config`], `[spool]` in [`crate::spool::config`], `[sources.*]` in
//! [`crate::source`] (which hands each `verify` table to its provider). This module only
//! assembles them and checks what spans sections. Every problem is collected with its key path,
//! so `check-config` lists them all at once instead of one per run.
//!
//! Every table rejects unknown keys: a misspelt option must fail `check-config`, not be ignored.

pub mod load;
pub mod server;

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

pub use crate::dedup::config::{DedupConfig, DedupStore, RawDedup};
pub use crate::publish::config::{
    KafkaConfig, NatsConfig, NatsStorage, PublisherConfig, RawKafka, RawNats, RawPublisher,
    RawRegistry, RegistryConfig, SubjectNaming,
};
pub use crate::secret::{Secret, SecretRef};
pub use crate::section::ConfigIssue;
pub use crate::source::{BrokerFailure, RawSource, ReconcileConfig, SourceConfig, SourceContext};
pub use crate::spool::config::{RawSpool, SpoolConfig};
pub use load::{LoadError, load_file, load_str};
pub use server::{LogFormat, RawServer, ServerConfig};

use crate::section::check_name;

/// The config file as written (`hookbridge.toml`), before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// HTTP server and request-handling settings.
    #[serde(default)]
    pub server: RawServer,
    /// Named brokers; each source publishes to one of them.
    #[serde(default)]
    pub publishers: BTreeMap<String, RawPublisher>,
    /// Webhook sources, one per `POST /webhooks/{source}` path.
    #[serde(default)]
    pub sources: BTreeMap<String, RawSource>,
    /// Where dedup keys are remembered.
    #[serde(default)]
    pub dedup: RawDedup,
    /// Durable acceptance while a broker is down; off when absent.
    pub spool: Option<RawSpool>,
}

/// A validated config: everything the gateway needs, with secrets resolved.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub publishers: BTreeMap<String, PublisherConfig>,
    pub sources: BTreeMap<String, SourceConfig>,
    pub dedup: DedupConfig,
    pub spool: Option<SpoolConfig>,
}

impl Config {
    /// Validates a raw config. `env` resolves `env:` secret references.
    pub fn validate(
        raw: RawConfig,
        env: &HashMap<String, String>,
    ) -> Result<Config, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let server = server::validate(&raw.server, &mut issues);
        let mut publishers = BTreeMap::new();
        for (name, raw_pub) in &raw.publishers {
            let key = format!("publishers.{name}");
            check_name(&key, name, &mut issues);
            if let Some(p) = crate::publish::config::validate(&key, raw_pub, env, &mut issues) {
                publishers.insert(name.clone(), p);
            }
        }
        // Sources are checked against the publishers as written, so that a publisher with a
        // mistake of its own does not also make every source naming it "unknown".
        let publisher_names: Vec<&str> = raw.publishers.keys().map(String::as_str).collect();
        let context = SourceContext {
            publishers: &publisher_names,
            server_body_limit: server.as_ref().map(|s| s.body_limit_bytes),
            spool_configured: raw.spool.is_some(),
        };
        let mut sources = BTreeMap::new();
        for (name, raw_src) in &raw.sources {
            let key = format!("sources.{name}");
            check_name(&key, name, &mut issues);
            if let Some(source) =
                crate::source::validate(&key, name, raw_src, &context, env, &mut issues)
            {
                sources.insert(name.clone(), source);
            }
        }
        if raw.sources.is_empty() {
            issues.push(ConfigIssue::new("sources", "no source is configured"));
        }
        check_body_limits(&sources, &publishers, &raw, &mut issues);
        let longest_window = raw
            .sources
            .values()
            .filter_map(|s| s.dedup_window_secs)
            .max()
            .unwrap_or(0);
        let dedup = crate::dedup::config::validate(&raw.dedup, longest_window, env, &mut issues);
        match (server, dedup, issues.is_empty()) {
            (Some(server), Some(dedup), true) => Ok(Config {
                server,
                publishers,
                sources,
                dedup,
                spool: raw.spool.as_ref().map(SpoolConfig::from),
            }),
            _ => Err(issues),
        }
    }
}

/// What an event adds to its body (ids, subject, attributes, CloudEvents headers), and what a dead
/// letter adds (reason, kept headers, which `max_header_bytes` bounds at 32 KiB by default).
pub const ENVELOPE_RESERVE: usize = 64 * 1024;

/// A body the broker could take neither as an event nor as a dead letter would be lost the day
/// one arrives: refuse the limit instead.
fn check_body_limits(
    sources: &BTreeMap<String, SourceConfig>,
    publishers: &BTreeMap<String, PublisherConfig>,
    raw: &RawConfig,
    issues: &mut Vec<ConfigIssue>,
) {
    for (name, source) in sources {
        let Some(publisher) = publishers.get(&source.publisher) else {
            continue;
        };
        let max = publisher.max_message_bytes();
        if source.body_limit_bytes + ENVELOPE_RESERVE > max {
            let key = if raw
                .sources
                .get(name)
                .is_some_and(|s| s.body_limit_bytes.is_some())
            {
                format!("sources.{name}.body_limit_bytes")
            } else {
                "server.body_limit_bytes".to_owned()
            };
            // The server-wide limit is reported once per publisher, not once per source.
            let publisher_named = format!("publisher {}'", source.publisher);
            if issues
                .iter()
                .any(|i| i.key == key && i.reason.contains(&publisher_named))
            {
                continue;
            }
            issues.push(ConfigIssue::new(
                key,
                format!(
                    "{} bytes plus the event and dead-letter envelope ({ENVELOPE_RESERVE}) exceed publisher {}'s max_message_bytes ({max}): such a body could be neither published nor dead-lettered; lower the limit to {} or raise the broker's limit and max_message_bytes",
                    source.body_limit_bytes,
                    source.publisher,
                    max.saturating_sub(ENVELOPE_RESERVE)
                ),
            ));
        }
    }
}
