//! Configuration: the file format ([`RawConfig`]), loading with environment overrides ([`load`]),
//! secret references ([`secret`]) and the one pure validation step that turns raw input into the
//! [`Config`] the rest of the gateway runs on ([`validate`]).
//!
//! Every table rejects unknown keys: a misspelt option must fail `check-config`, not be ignored.

pub mod load;
pub mod secret;
pub mod validate;

use std::collections::BTreeMap;

use serde::Deserialize;

pub use load::{LoadError, load_file, load_str};
pub use secret::{Secret, SecretRef};
pub use validate::{
    BrokerFailure, Config, ConfigIssue, DedupConfig, KafkaConfig, LogFormat, NatsConfig,
    NatsStorage, PublisherConfig, ReconcileConfig, RegistryConfig, ServerConfig, SourceConfig,
    SpoolConfig, SubjectNaming,
};

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

/// `[spool]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpool {
    /// Directory of the spool file. In Kubernetes: a PersistentVolume per replica (StatefulSet).
    pub path: std::path::PathBuf,
    /// Most bytes spooled; when full the gateway answers 503 (never drops).
    #[serde(default = "default_spool_bytes")]
    pub max_bytes: u64,
}

fn default_spool_bytes() -> u64 {
    1024 * 1024 * 1024
}

/// `[dedup]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDedup {
    /// `memory` (one replica), `disk` (one replica, survives restarts, windows of days) or `nats`
    /// (a JetStream key-value bucket shared by every replica).
    pub store: String,
    /// Most keys the memory (default 1 M) or disk (default 50 M) store holds; the keys closest to
    /// their end are evicted first, counted in `hookbridge_dedup_evictions_total`.
    pub capacity: Option<usize>,
    /// Directory of the `disk` store.
    pub path: Option<std::path::PathBuf>,
    /// NATS server URL(s) for the `nats` store.
    pub url: Option<String>,
    /// Key-value bucket of the `nats` store; created when missing.
    pub bucket: String,
    /// How long the bucket keeps keys at most: at least the longest source window.
    pub max_age_secs: u64,
    /// The bucket's bound in bytes; beyond it the oldest keys are dropped.
    pub max_bytes: i64,
    /// Token for the `nats` store, as a secret reference.
    pub token: Option<SecretRef>,
}

impl Default for RawDedup {
    fn default() -> Self {
        RawDedup {
            store: "memory".into(),
            capacity: None,
            path: None,
            url: None,
            bucket: "hookbridge_dedup".into(),
            max_age_secs: 15 * 24 * 3600,
            max_bytes: 1024 * 1024 * 1024,
            token: None,
        }
    }
}

/// `[server]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    /// Address to listen on, `host:port`. Port 0 picks a free port (tests).
    pub listen: String,
    /// actix-web worker threads; defaults to the number of CPUs.
    pub workers: Option<usize>,
    /// Largest accepted request body in bytes; larger bodies get 413. Sources may lower or raise it.
    pub body_limit_bytes: usize,
    /// How long to wait for the broker's acknowledgement before answering 503.
    /// Well under Cronofy's 5 s and SNS's 15 s response deadlines.
    pub publish_timeout_ms: u64,
    /// Value of the `Retry-After` header on 503 answers, in seconds.
    pub retry_after_seconds: u32,
    /// How often each publisher's health check runs (feeds `/readyz`).
    pub health_interval_ms: u64,
    /// `text` for people, `json` for log pipelines.
    pub log_format: String,
    /// Most webhook requests handled at once; past it, 503 with `Retry-After` at once (no queue).
    pub max_in_flight: usize,
    /// After SIGTERM, how long to answer `/readyz` with 503 before refusing connections, so load
    /// balancers stop sending first (Kubernetes endpoints take a few seconds to update).
    pub shutdown_delay_ms: u64,
    /// After that, how long in-flight requests get to finish before the process exits anyway.
    pub shutdown_grace_secs: u64,
    /// How often to look for a changed config file or `file:` secret (0: only on SIGHUP).
    pub reload_interval_ms: u64,
    /// Time a client has to send a request's line and headers (slowloris); 408 and close after.
    pub request_head_timeout_ms: u64,
    /// Time a client has to send a request's whole body once its headers are in; 408 after.
    pub body_timeout_ms: u64,
    /// How long an idle keep-alive connection stays open.
    pub keep_alive_secs: u64,
    /// Requests served on one connection before it is closed (`Connection: close`), so no client
    /// holds a connection, and the worker it landed on, forever.
    pub max_requests_per_connection: u32,
    /// Open connections per worker; past it, new connections wait in the listen backlog.
    pub max_connections_per_worker: usize,
    /// Largest header block (names and values) a webhook may carry; 431 past it. The HTTP codec's
    /// own ceiling is 128 KiB; real providers send under 8 KiB.
    pub max_header_bytes: usize,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: "0.0.0.0:8080".into(),
            workers: None,
            // With the event's fields and a dead letter's envelope, fits the brokers' defaults.
            body_limit_bytes: 900 * 1024,
            publish_timeout_ms: 2_000,
            retry_after_seconds: 5,
            health_interval_ms: 1_000,
            log_format: "text".into(),
            max_in_flight: 4096,
            shutdown_delay_ms: 0,
            shutdown_grace_secs: 20,
            reload_interval_ms: 2_000,
            request_head_timeout_ms: 5_000,
            body_timeout_ms: 10_000,
            keep_alive_secs: 15,
            max_requests_per_connection: 10_000,
            max_connections_per_worker: 10_000,
            max_header_bytes: 32 * 1024,
        }
    }
}

/// `[publishers.NAME]`, tagged by `kind`.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RawPublisher {
    Kafka(RawKafka),
    Nats(RawNats),
}

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

/// `[publishers.NAME.schema_registry]`: a Confluent-compatible schema registry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegistry {
    /// Base URL of the Confluent API (Apicurio: `.../apis/ccompat/v7`).
    pub url: String,
    /// Basic-auth user and password (Confluent Cloud: API key and secret), as references.
    pub username: Option<SecretRef>,
    pub password: Option<SecretRef>,
    /// `topic` (`<topic>-value`, Confluent's default), `record` or `topic_record`.
    #[serde(default = "default_subject_naming")]
    pub subject_naming: String,
    /// Register the schemas (on) or only look them up (off, for registries managed elsewhere).
    #[serde(default = "default_true")]
    pub auto_register: bool,
    #[serde(default = "default_registry_timeout")]
    pub timeout_ms: u64,
}

fn default_max_created_topics() -> usize {
    1000
}
fn default_subject_naming() -> String {
    "topic".into()
}
fn default_registry_timeout() -> u64 {
    2_000
}

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
    #[serde(default = "default_storage")]
    pub storage: String,
    /// Authentication token, as a secret reference.
    pub token: Option<SecretRef>,
    /// The server's `max_payload` (or the stream's `max_msg_size`, if smaller).
    #[serde(default = "default_nats_max_message")]
    pub max_message_bytes: usize,
}

/// `[sources.NAME]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    /// Provider kind, for example `cronofy`.
    pub provider: String,
    /// Name of the `[publishers.*]` entry that receives this source's events.
    pub publisher: String,
    /// Topic (Kafka) or subject (NATS) template. Placeholders: `{source}`, `{provider}`, `{type}`.
    #[serde(default = "default_topic")]
    pub topic: String,
    /// Per-source body limit in bytes; defaults to `server.body_limit_bytes`.
    pub body_limit_bytes: Option<usize>,
    /// Provider-specific verification settings; their keys depend on `provider`.
    #[serde(default)]
    pub verify: toml::Table,
    /// Source IP allowlist, checked before the provider's own verification.
    pub allow: Option<RawAllow>,
    /// Docplanner only: pull what the push missed and ask for re-delivery. Off when absent.
    pub reconcile: Option<RawReconcile>,
    /// Where this source's dead letters go (same publisher), a template like `topic`.
    #[serde(default = "default_dead_letter_topic")]
    pub dead_letter_topic: String,
    /// When the broker does not acknowledge in time: `spool` (accept durably, 2xx, publish later;
    /// the default for Docplanner, which never retries, when a spool is configured) or `reject`
    /// (503 with `Retry-After`, for providers that retry).
    pub on_broker_failure: Option<String>,
    /// How long a delivered event's key is remembered, in seconds; defaults to the provider's
    /// retry horizon (SNS about an hour, Cronofy 24 h, Docplanner's 14-day re-dispatch).
    pub dedup_window_secs: Option<u64>,
    /// Authentic webhooks accepted per second from this source; past it, 429 with `Retry-After`.
    /// Off when absent. Not for providers that never resend (Docplanner) without reconciliation.
    pub rate_limit: Option<RawRateLimit>,
}

/// `[sources.NAME.rate_limit]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    /// Sustained webhooks per second (may be fractional: 0.5 is one every two seconds).
    pub per_second: f64,
    /// Webhooks allowed at once above the sustained rate; defaults to one second's worth.
    pub burst: Option<u32>,
}

/// `[sources.NAME.reconcile]` (Docplanner Integrations API v3)
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReconcile {
    /// API base, for example `https://www.znanylekarz.pl/api/v3/integration`.
    pub base_url: String,
    /// OAuth2 token endpoint, for example `https://www.znanylekarz.pl/oauth/v2/token`.
    pub token_url: String,
    pub client_id: SecretRef,
    pub client_secret: SecretRef,
    /// Pull `/notifications/multiple` until nothing remains, every `interval_secs`.
    #[serde(default = "default_true")]
    pub pull: bool,
    /// Call `/notifications/release` (at most once an hour) so Docplanner pushes again what it
    /// considers unprocessed.
    #[serde(default)]
    pub release: bool,
    #[serde(default = "default_reconcile_interval")]
    pub interval_secs: u64,
    /// Notifications per pull request, 1 to 100.
    #[serde(default = "default_reconcile_batch")]
    pub batch: u32,
    /// Seconds between releases; Docplanner allows one an hour.
    #[serde(default = "default_release_interval")]
    pub release_interval_secs: u64,
}

fn default_reconcile_interval() -> u64 {
    60
}
fn default_reconcile_batch() -> u32 {
    100
}
fn default_release_interval() -> u64 {
    3600
}

/// `[sources.NAME.allow]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAllow {
    /// Addresses or CIDRs the provider sends from.
    pub ips: Vec<String>,
    /// Our own proxies / load balancers, whose forwarding header is believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// The header those proxies put the client address in, such as `X-Forwarded-For`.
    pub forwarded_header: Option<String>,
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
/// nats-server's default `max_payload`.
fn default_nats_max_message() -> usize {
    1024 * 1024
}
fn default_linger_ms() -> u32 {
    1
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
fn default_storage() -> String {
    "file".into()
}
fn default_dead_letter_topic() -> String {
    "webhooks.dead_letter.{source}".into()
}
fn default_topic() -> String {
    "webhooks.{provider}.{type}".into()
}
