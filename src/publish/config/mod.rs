//! `[publishers.NAME]`: the brokers sources publish to, one file per kind.

mod kafka;
mod nats;
mod registry;

use std::collections::HashMap;

use serde::de::{self, DeserializeOwned};
use serde::{Deserialize, Deserializer};

pub use kafka::{KafkaConfig, RawKafka};
pub use nats::{NatsConfig, NatsStorage, RawNats};
pub use registry::{RawRegistry, RegistryConfig, SubjectNaming};

use crate::section::ConfigIssue;

/// `[publishers.NAME]`, tagged by `kind`.
#[derive(Debug)]
pub enum RawPublisher {
    Kafka(RawKafka),
    Nats(RawNats),
}

impl<'de> Deserialize<'de> for RawPublisher {
    /// serde's internally tagged enums buffer the table and lose the key path of a mistake inside
    /// it ("publishers.n: unknown variant"); reading `kind` first keeps it ("... storage: ...").
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut table = toml::Table::deserialize(deserializer)?;
        let kind = match table.remove("kind") {
            Some(toml::Value::String(kind)) => kind,
            Some(_) => return Err(de::Error::custom("`kind` must be a string")),
            None => return Err(de::Error::missing_field("kind")),
        };
        match kind.as_str() {
            "kafka" => body(table).map(RawPublisher::Kafka),
            "nats" => body(table).map(RawPublisher::Nats),
            other => Err(de::Error::unknown_variant(other, &["kafka", "nats"])),
        }
    }
}

/// A publisher's table without its `kind`, with the path of the offending key in the message.
fn body<T: DeserializeOwned, E: de::Error>(table: toml::Table) -> Result<T, E> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let path = e.path().to_string();
        E::custom(format!("{path}: {}", e.into_inner()))
    })
}

/// `[publishers.NAME]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub enum PublisherConfig {
    Kafka(KafkaConfig),
    Nats(NatsConfig),
}

impl PublisherConfig {
    /// The largest message this publisher's broker takes.
    pub fn max_message_bytes(&self) -> usize {
        match self {
            PublisherConfig::Kafka(k) => k.max_message_bytes,
            PublisherConfig::Nats(n) => n.max_message_bytes,
        }
    }
}

/// Checks one `[publishers.NAME]` table; `key` is its path.
pub fn validate(
    key: &str,
    raw: &RawPublisher,
    env: &HashMap<String, String>,
    issues: &mut Vec<ConfigIssue>,
) -> Option<PublisherConfig> {
    match raw {
        RawPublisher::Kafka(k) => kafka::validate(key, k, env, issues).map(PublisherConfig::Kafka),
        RawPublisher::Nats(n) => nats::validate(key, n, env, issues).map(PublisherConfig::Nats),
    }
}
