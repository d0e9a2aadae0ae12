//! `[publishers.NAME.schema_registry]`: a Confluent-compatible schema registry for a Kafka
//! publisher.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use crate::secret::{Secret, SecretRef};
use crate::section::ConfigIssue;

/// `[publishers.NAME.schema_registry]`: a Confluent-compatible schema registry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegistry {
    /// Base URL of the Confluent API (Apicurio: `.../apis/ccompat/v7`).
    pub url: String,
    /// Basic-auth user and password (Confluent Cloud: API key and secret), as references.
    pub username: Option<SecretRef>,
    /// Goes with `username`: one without the other is refused.
    pub password: Option<SecretRef>,
    /// `topic` (`<topic>-value`, Confluent's default), `record` or `topic_record`.
    #[serde(default)]
    pub subject_naming: SubjectNaming,
    /// Register the schemas (on) or only look them up (off, for registries managed elsewhere).
    #[serde(default = "default_true")]
    pub auto_register: bool,
    /// Per request to the registry. A first message to a new subject waits for it inside its
    /// publish deadline.
    #[serde(default = "default_registry_timeout")]
    pub timeout_ms: u64,
}

/// A Kafka publisher's schema registry.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryConfig {
    /// Without a trailing slash.
    pub url: String,
    /// User and password: both or neither.
    pub credentials: Option<(Secret, Secret)>,
    pub naming: SubjectNaming,
    pub auto_register: bool,
    pub timeout: Duration,
}

/// How a registry subject is named (Confluent's `subject.name.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectNaming {
    /// `<topic>-value` (TopicNameStrategy, the default).
    #[default]
    Topic,
    /// The record's full name (RecordNameStrategy).
    Record,
    /// `<topic>-<record full name>` (TopicRecordNameStrategy).
    TopicRecord,
}

/// Checks `[publishers.NAME.schema_registry]`.
pub(super) fn validate(
    key: &str,
    raw: &RawRegistry,
    env: &HashMap<String, String>,
    issues: &mut Vec<ConfigIssue>,
) -> Option<RegistryConfig> {
    // Every check runs before the verdict, so check-config lists every problem at once.
    let before = issues.len();
    if !(raw.url.starts_with("https://") || raw.url.starts_with("http://")) {
        issues.push(ConfigIssue::new(
            format!("{key}.url"),
            "expected an http(s) URL",
        ));
    }
    let mut resolve = |field: &str, r: &Option<SecretRef>| {
        r.as_ref().and_then(|r| {
            r.resolve(env)
                .map_err(|e| issues.push(ConfigIssue::new(format!("{key}.{field}"), e)))
                .ok()
        })
    };
    let user = resolve("username", &raw.username);
    let password = resolve("password", &raw.password);
    let credentials = match (user, password) {
        (Some(u), Some(p)) => Some((u, p)),
        (None, None) => None,
        _ => {
            issues.push(ConfigIssue::new(
                format!("{key}.password"),
                "username and password go together",
            ));
            None
        }
    };
    if raw.timeout_ms == 0 {
        issues.push(ConfigIssue::new(
            format!("{key}.timeout_ms"),
            "must be at least 1",
        ));
    }
    (issues.len() == before).then(|| RegistryConfig {
        url: raw.url.trim_end_matches('/').to_owned(),
        credentials,
        naming: raw.subject_naming,
        auto_register: raw.auto_register,
        timeout: Duration::from_millis(raw.timeout_ms),
    })
}

fn default_true() -> bool {
    true
}
fn default_registry_timeout() -> u64 {
    2_000
}
