//! `[publishers.NAME] kind = "nats"`: the JetStream stream hookbridge publishes into.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use crate::secret::{Secret, SecretRef};
use crate::section::{ConfigIssue, resolve_optional};

/// `[publishers.NAME] kind = "nats"`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNats {
    /// Server URL(s), comma-separated, for example `nats://127.0.0.1:4222`.
    pub url: String,
    /// JetStream stream that captures the subjects hookbridge publishes to; created when missing.
    #[serde(default = "default_stream")]
    pub stream: String,
    /// Subjects of that stream. Every subject a source's template renders must fall under one.
    #[serde(default = "default_subjects")]
    pub subjects: Vec<String>,
    /// JetStream's `Nats-Msg-Id` de-duplication window, in seconds.
    #[serde(default = "default_duplicate_window")]
    pub duplicate_window_secs: u64,
    /// `file` (survives a broker restart) or `memory`.
    #[serde(default)]
    pub storage: NatsStorage,
    /// Authentication token, as a secret reference.
    pub token: Option<SecretRef>,
    /// The server's `max_payload` (or the stream's `max_msg_size`, if smaller).
    #[serde(default = "default_nats_max_message")]
    pub max_message_bytes: usize,
}

/// `[publishers.NAME] kind = "nats"`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct NatsConfig {
    pub url: String,
    pub stream: String,
    pub subjects: Vec<String>,
    /// How long JetStream remembers a `Nats-Msg-Id`.
    pub duplicate_window: Duration,
    pub storage: NatsStorage,
    pub token: Option<Secret>,
    pub max_message_bytes: usize,
}

/// `storage`: where the stream keeps its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NatsStorage {
    /// Survives a broker restart.
    #[default]
    File,
    /// Lost on a broker restart, and with it events already answered 2xx.
    Memory,
}

/// Checks `[publishers.NAME] kind = "nats"`.
pub(super) fn validate(
    key: &str,
    raw: &RawNats,
    env: &HashMap<String, String>,
    issues: &mut Vec<ConfigIssue>,
) -> Option<NatsConfig> {
    // Every check runs before the verdict, so check-config lists every problem at once.
    let before = issues.len();
    if raw.url.trim().is_empty() {
        issues.push(ConfigIssue::new(format!("{key}.url"), "must not be empty"));
    }
    // Stream names appear in JetStream's API subjects, so `.`, `*`, `>` and whitespace are out;
    // this is the conservative subset.
    let stream_ok = !raw.stream.is_empty()
        && raw
            .stream
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !stream_ok {
        issues.push(ConfigIssue::new(
            format!("{key}.stream"),
            "stream names use A-Z, a-z, 0-9, - and _",
        ));
    }
    // A stream without subjects captures nothing: every publish would find no stream.
    if raw.subjects.is_empty() {
        issues.push(ConfigIssue::new(
            format!("{key}.subjects"),
            "at least one subject is needed",
        ));
    }
    let token = resolve_optional(&format!("{key}.token"), &raw.token, env, issues)
        .ok()
        .flatten();
    (issues.len() == before).then(|| NatsConfig {
        url: raw.url.clone(),
        stream: raw.stream.clone(),
        subjects: raw.subjects.clone(),
        duplicate_window: Duration::from_secs(raw.duplicate_window_secs),
        storage: raw.storage,
        token,
        max_message_bytes: raw.max_message_bytes,
    })
}

/// nats-server's default `max_payload`.
fn default_nats_max_message() -> usize {
    1024 * 1024
}
fn default_stream() -> String {
    "HOOKBRIDGE".into()
}
fn default_subjects() -> Vec<String> {
    vec!["webhooks.>".into()]
}
fn default_duplicate_window() -> u64 {
    // SNS retries for up to an hour; JetStream keeps ids in memory per stream, which is cheap.
    2 * 60 * 60
}
