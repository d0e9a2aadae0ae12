//! `[publishers.NAME] kind = "kafka"`: the producer's settings, and the properties no config may
//! loosen because hookbridge's delivery promise rests on them.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use super::registry::{self, RawRegistry, RegistryConfig};
use crate::secret::{Secret, SecretRef};
use crate::section::ConfigIssue;

/// `[publishers.NAME] kind = "kafka"`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKafka {
    /// Comma-separated `host:port` list.
    pub bootstrap_servers: String,
    /// Extra librdkafka properties (for example `security.protocol`). Properties that hookbridge's
    /// guarantees depend on (`acks`, `enable.idempotence`) cannot be overridden.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// librdkafka properties whose values are secrets (for example `sasl.password`), as references.
    #[serde(default)]
    pub secret_properties: BTreeMap<String, SecretRef>,
    /// Create a topic the first time an event is routed to it (off when topics are managed elsewhere).
    #[serde(default = "default_true")]
    pub create_topics: bool,
    /// Partitions for topics hookbridge creates.
    #[serde(default = "default_partitions")]
    pub topic_partitions: i32,
    /// Replication factor for topics hookbridge creates.
    #[serde(default = "default_replication")]
    pub topic_replication: i32,
    /// librdkafka `linger.ms`. Keep it small: batching happens anyway with many requests in flight,
    /// and every millisecond here is added to the provider's response time.
    #[serde(default = "default_linger_ms")]
    pub linger_ms: u32,
    /// The largest message the broker takes (librdkafka's `message.max.bytes`, and the broker's
    /// `message.max.bytes`): bodies must fit with their event and dead-letter envelope.
    #[serde(default = "default_kafka_max_message")]
    pub max_message_bytes: usize,
    /// Write the Confluent wire format with ids from this registry (bare Avro datums without it).
    pub schema_registry: Option<RawRegistry>,
    /// The most topics this process creates (`create_topics`); beyond it events are dead-lettered.
    #[serde(default = "default_max_created_topics")]
    pub max_created_topics: usize,
}

/// `[publishers.NAME] kind = "kafka"`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct KafkaConfig {
    pub bootstrap_servers: String,
    pub properties: BTreeMap<String, String>,
    pub secret_properties: BTreeMap<String, Secret>,
    pub create_topics: bool,
    pub topic_partitions: i32,
    pub topic_replication: i32,
    pub linger_ms: u32,
    pub max_message_bytes: usize,
    /// Credentials resolved; the URL without its trailing slash.
    pub schema_registry: Option<RegistryConfig>,
    pub max_created_topics: usize,
}

/// librdkafka properties that carry hookbridge's delivery promise; a config may not loosen them.
/// `bootstrap.servers` too, which has its own key.
const PINNED_KAFKA_PROPERTIES: &[&str] = &["acks", "enable.idempotence", "bootstrap.servers"];

/// Checks `[publishers.NAME] kind = "kafka"`.
pub(super) fn validate(
    key: &str,
    raw: &RawKafka,
    env: &HashMap<String, String>,
    issues: &mut Vec<ConfigIssue>,
) -> Option<KafkaConfig> {
    // Every check runs before the verdict, so check-config lists every problem at once.
    let before = issues.len();
    if raw.bootstrap_servers.trim().is_empty() {
        issues.push(ConfigIssue::new(
            format!("{key}.bootstrap_servers"),
            "must not be empty",
        ));
    }
    for name in raw.properties.keys().chain(raw.secret_properties.keys()) {
        if PINNED_KAFKA_PROPERTIES.contains(&name.as_str()) {
            issues.push(ConfigIssue::new(
                format!("{key}.properties.{name}"),
                "is set by hookbridge (idempotent producer, acks=all) and cannot be overridden",
            ));
        }
    }
    if raw.topic_partitions < 1 {
        issues.push(ConfigIssue::new(
            format!("{key}.topic_partitions"),
            "must be at least 1",
        ));
    }
    if raw.topic_replication < 1 {
        issues.push(ConfigIssue::new(
            format!("{key}.topic_replication"),
            "must be at least 1",
        ));
    }
    let mut secret_properties = BTreeMap::new();
    for (name, reference) in &raw.secret_properties {
        match reference.resolve(env) {
            Ok(secret) => {
                secret_properties.insert(name.clone(), secret);
            }
            Err(reason) => issues.push(ConfigIssue::new(
                format!("{key}.secret_properties.{name}"),
                reason,
            )),
        }
    }
    let schema_registry = raw
        .schema_registry
        .as_ref()
        .and_then(|r| registry::validate(&format!("{key}.schema_registry"), r, env, issues));
    (issues.len() == before).then(|| KafkaConfig {
        schema_registry,
        max_created_topics: raw.max_created_topics,
        bootstrap_servers: raw.bootstrap_servers.clone(),
        properties: raw.properties.clone(),
        secret_properties,
        create_topics: raw.create_topics,
        topic_partitions: raw.topic_partitions,
        topic_replication: raw.topic_replication,
        linger_ms: raw.linger_ms,
        max_message_bytes: raw.max_message_bytes,
    })
}

fn default_true() -> bool {
    true
}
fn default_partitions() -> i32 {
    3
}
fn default_replication() -> i32 {
    1
}
/// librdkafka's own default `message.max.bytes`, below the broker's 1,048,588.
fn default_kafka_max_message() -> usize {
    1_000_000
}
fn default_linger_ms() -> u32 {
    1
}
fn default_max_created_topics() -> usize {
    1000
}
