//! `RawConfig -> Config` in one pure step (plus reading referenced secrets). Every problem is collected
//! with its key path, so `check-config` can list them all at once instead of one per run.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use super::{
    RawConfig, RawKafka, RawNats, RawPublisher, RawRegistry, RawServer, RawSource, Secret,
    SecretRef,
};
use crate::pipeline::rate_limit::RateLimit;
use crate::providers::AnyProvider;
use crate::publish::topic::TopicTemplate;
use crate::verify::ip::IpAllowlist;

/// One thing wrong with a config: the key it is about and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub key: String,
    pub reason: String,
}

impl ConfigIssue {
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigIssue {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
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

#[derive(Debug, Clone, PartialEq)]
pub struct SpoolConfig {
    pub path: std::path::PathBuf,
    pub max_bytes: u64,
}

/// A Docplanner source's reconciler.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconcileConfig {
    pub base_url: String,
    pub token_url: String,
    pub client_id: Secret,
    pub client_secret: Secret,
    pub pull: bool,
    pub release: bool,
    pub interval: Duration,
    pub batch: u32,
    pub release_interval: Duration,
}

/// What a source does when its broker does not acknowledge in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerFailure {
    Spool,
    Reject,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DedupConfig {
    Memory {
        capacity: usize,
    },
    Disk {
        path: std::path::PathBuf,
        capacity: usize,
    },
    Nats {
        url: String,
        bucket: String,
        max_age: Duration,
        max_bytes: i64,
        token: Option<Secret>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub workers: usize,
    pub body_limit_bytes: usize,
    pub publish_timeout: Duration,
    pub retry_after_seconds: u32,
    pub health_interval: Duration,
    pub log_format: LogFormat,
    pub max_in_flight: usize,
    pub shutdown_delay: Duration,
    pub shutdown_grace: Duration,
    pub reload_interval: Duration,
    pub request_head_timeout: Duration,
    pub body_timeout: Duration,
    pub keep_alive: Duration,
    pub max_requests_per_connection: u32,
    pub max_connections_per_worker: usize,
    pub max_header_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

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
    pub schema_registry: Option<RegistryConfig>,
    pub max_created_topics: usize,
}

/// A Kafka publisher's schema registry.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryConfig {
    /// Without a trailing slash.
    pub url: String,
    pub credentials: Option<(Secret, Secret)>,
    pub naming: SubjectNaming,
    pub auto_register: bool,
    pub timeout: Duration,
}

/// How a registry subject is named (Confluent's `subject.name.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectNaming {
    /// `<topic>-value` (TopicNameStrategy, the default).
    Topic,
    /// The record's full name (RecordNameStrategy).
    Record,
    /// `<topic>-<record full name>` (TopicRecordNameStrategy).
    TopicRecord,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NatsConfig {
    pub url: String,
    pub stream: String,
    pub subjects: Vec<String>,
    pub duplicate_window: Duration,
    pub storage: NatsStorage,
    pub token: Option<Secret>,
    pub max_message_bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatsStorage {
    File,
    Memory,
}

#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub name: String,
    pub provider: AnyProvider,
    pub publisher: String,
    pub topic: TopicTemplate,
    pub body_limit_bytes: usize,
    pub allow: Option<IpAllowlist>,
    pub reconcile: Option<ReconcileConfig>,
    /// How long a published event's dedup key is remembered.
    pub dedup_window: Duration,
    pub dead_letter_topic: TopicTemplate,
    pub on_broker_failure: BrokerFailure,
    pub rate_limit: Option<RateLimit>,
}

/// librdkafka properties that carry hookbridge's delivery promise; a config may not loosen them.
const PINNED_KAFKA_PROPERTIES: &[&str] = &["acks", "enable.idempotence", "bootstrap.servers"];

impl Config {
    /// Validates a raw config. `env` resolves `env:` secret references.
    pub fn validate(
        raw: RawConfig,
        env: &HashMap<String, String>,
    ) -> Result<Config, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let server = validate_server(&raw.server, &mut issues);
        let mut publishers = BTreeMap::new();
        for (name, raw_pub) in &raw.publishers {
            let key = format!("publishers.{name}");
            check_name(&key, name, &mut issues);
            let publisher = match raw_pub {
                RawPublisher::Kafka(k) => {
                    validate_kafka(&key, k, env, &mut issues).map(PublisherConfig::Kafka)
                }
                RawPublisher::Nats(n) => {
                    validate_nats(&key, n, env, &mut issues).map(PublisherConfig::Nats)
                }
            };
            if let Some(p) = publisher {
                publishers.insert(name.clone(), p);
            }
        }
        let mut sources = BTreeMap::new();
        for (name, raw_src) in &raw.sources {
            let key = format!("sources.{name}");
            check_name(&key, name, &mut issues);
            if let Some(source) =
                validate_source(&key, name, raw_src, &server, &raw, env, &mut issues)
            {
                sources.insert(name.clone(), source);
            }
        }
        if raw.sources.is_empty() {
            issues.push(ConfigIssue::new("sources", "no source is configured"));
        }
        check_body_limits(&sources, &publishers, &raw, &mut issues);
        let dedup = validate_dedup(&raw, env, &mut issues);
        match (server, dedup, issues.is_empty()) {
            (Some(server), Some(dedup), true) => Ok(Config {
                server,
                publishers,
                sources,
                dedup,
                spool: raw.spool.as_ref().map(|s| SpoolConfig {
                    path: s.path.clone(),
                    max_bytes: s.max_bytes,
                }),
            }),
            _ => Err(issues),
        }
    }
}

/// Source and publisher names appear in URLs, metric labels and topic names: keep them plain.
fn check_name(key: &str, name: &str, issues: &mut Vec<ConfigIssue>) {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        issues.push(ConfigIssue::new(
            key,
            "names use 1 to 64 of a-z, 0-9, - and _",
        ));
    }
}

fn validate_server(raw: &RawServer, issues: &mut Vec<ConfigIssue>) -> Option<ServerConfig> {
    let listen = raw
        .listen
        .parse::<SocketAddr>()
        .map_err(|_| {
            issues.push(ConfigIssue::new(
                "server.listen",
                "expected host:port, such as 0.0.0.0:8080",
            ))
        })
        .ok();
    if raw.body_limit_bytes == 0 {
        issues.push(ConfigIssue::new(
            "server.body_limit_bytes",
            "must be greater than 0",
        ));
    }
    if raw.publish_timeout_ms == 0 || raw.publish_timeout_ms > 60_000 {
        issues.push(ConfigIssue::new(
            "server.publish_timeout_ms",
            "must be between 1 and 60000",
        ));
    }
    // Lower bounds, one row each.
    for (key, value, min) in [
        ("server.health_interval_ms", raw.health_interval_ms, 50),
        ("server.max_in_flight", raw.max_in_flight as u64, 1),
        (
            "server.max_requests_per_connection",
            u64::from(raw.max_requests_per_connection),
            1,
        ),
        ("server.max_header_bytes", raw.max_header_bytes as u64, 1024),
        (
            "server.max_connections_per_worker",
            raw.max_connections_per_worker as u64,
            1,
        ),
    ] {
        if value < min {
            issues.push(ConfigIssue::new(key, format!("must be at least {min}")));
        }
    }
    for (key, value) in [
        (
            "server.request_head_timeout_ms",
            raw.request_head_timeout_ms,
        ),
        ("server.body_timeout_ms", raw.body_timeout_ms),
    ] {
        if value == 0 || value > 300_000 {
            issues.push(ConfigIssue::new(key, "must be between 1 and 300000"));
        }
    }
    if raw.workers == Some(0) {
        issues.push(ConfigIssue::new("server.workers", "must be at least 1"));
    }
    let log_format = match raw.log_format.as_str() {
        "text" => Some(LogFormat::Text),
        "json" => Some(LogFormat::Json),
        _ => {
            issues.push(ConfigIssue::new(
                "server.log_format",
                "expected `text` or `json`",
            ));
            None
        }
    };
    Some(ServerConfig {
        listen: listen?,
        workers: raw
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        body_limit_bytes: raw.body_limit_bytes,
        publish_timeout: Duration::from_millis(raw.publish_timeout_ms),
        retry_after_seconds: raw.retry_after_seconds,
        health_interval: Duration::from_millis(raw.health_interval_ms),
        log_format: log_format?,
        max_in_flight: raw.max_in_flight,
        shutdown_delay: Duration::from_millis(raw.shutdown_delay_ms),
        shutdown_grace: Duration::from_secs(raw.shutdown_grace_secs),
        reload_interval: Duration::from_millis(raw.reload_interval_ms),
        request_head_timeout: Duration::from_millis(raw.request_head_timeout_ms),
        body_timeout: Duration::from_millis(raw.body_timeout_ms),
        keep_alive: Duration::from_secs(raw.keep_alive_secs),
        max_requests_per_connection: raw.max_requests_per_connection,
        max_connections_per_worker: raw.max_connections_per_worker,
        max_header_bytes: raw.max_header_bytes,
    })
}

fn validate_dedup(
    raw: &RawConfig,
    env: &HashMap<String, String>,
    issues: &mut Vec<ConfigIssue>,
) -> Option<DedupConfig> {
    let d = &raw.dedup;
    match d.store.as_str() {
        "memory" | "disk" => {
            let capacity = d.capacity.unwrap_or(if d.store == "memory" {
                1_000_000
            } else {
                50_000_000
            });
            if capacity == 0 {
                issues.push(ConfigIssue::new("dedup.capacity", "must be greater than 0"));
                return None;
            }
            if d.store == "memory" {
                return Some(DedupConfig::Memory { capacity });
            }
            let Some(path) = d.path.clone() else {
                issues.push(ConfigIssue::new(
                    "dedup.path",
                    "the disk store needs a directory (a volume of its own in Kubernetes)",
                ));
                return None;
            };
            Some(DedupConfig::Disk { path, capacity })
        }
        "nats" => {
            let Some(url) = d.url.clone() else {
                issues.push(ConfigIssue::new(
                    "dedup.url",
                    "the nats store needs the server URL",
                ));
                return None;
            };
            let longest = raw
                .sources
                .values()
                .filter_map(|s| s.dedup_window_secs)
                .max()
                .unwrap_or(0);
            if d.max_age_secs < longest {
                issues.push(ConfigIssue::new(
                    "dedup.max_age_secs",
                    format!("must be at least the longest dedup_window_secs ({longest})"),
                ));
            }
            let token = match &d.token {
                Some(r) => Some(
                    r.resolve(env)
                        .map_err(|e| issues.push(ConfigIssue::new("dedup.token", e)))
                        .ok()?,
                ),
                None => None,
            };
            if d.max_bytes < 1024 * 1024 {
                issues.push(ConfigIssue::new(
                    "dedup.max_bytes",
                    "must be at least 1 MiB",
                ));
                return None;
            }
            Some(DedupConfig::Nats {
                url,
                bucket: d.bucket.clone(),
                max_age: Duration::from_secs(d.max_age_secs),
                max_bytes: d.max_bytes,
                token,
            })
        }
        _ => {
            issues.push(ConfigIssue::new(
                "dedup.store",
                "expected `memory`, `disk` or `nats`",
            ));
            None
        }
    }
}

fn validate_kafka(
    key: &str,
    raw: &RawKafka,
    env: &HashMap<String, String>,
    issues: &mut Vec<ConfigIssue>,
) -> Option<KafkaConfig> {
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
        .and_then(|r| validate_registry(&format!("{key}.schema_registry"), r, env, issues));
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

fn validate_registry(
    key: &str,
    raw: &RawRegistry,
    env: &HashMap<String, String>,
    issues: &mut Vec<ConfigIssue>,
) -> Option<RegistryConfig> {
    let before = issues.len();
    if !(raw.url.starts_with("https://") || raw.url.starts_with("http://")) {
        issues.push(ConfigIssue::new(
            format!("{key}.url"),
            "expected an http(s) URL",
        ));
    }
    let naming = match raw.subject_naming.as_str() {
        "topic" => Some(SubjectNaming::Topic),
        "record" => Some(SubjectNaming::Record),
        "topic_record" => Some(SubjectNaming::TopicRecord),
        _ => {
            issues.push(ConfigIssue::new(
                format!("{key}.subject_naming"),
                "expected `topic`, `record` or `topic_record`",
            ));
            None
        }
    };
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
        naming: naming.unwrap_or(SubjectNaming::Topic),
        auto_register: raw.auto_register,
        timeout: Duration::from_millis(raw.timeout_ms),
    })
}

fn validate_nats(
    key: &str,
    raw: &RawNats,
    env: &HashMap<String, String>,
    issues: &mut Vec<ConfigIssue>,
) -> Option<NatsConfig> {
    let before = issues.len();
    if raw.url.trim().is_empty() {
        issues.push(ConfigIssue::new(format!("{key}.url"), "must not be empty"));
    }
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
    if raw.subjects.is_empty() {
        issues.push(ConfigIssue::new(
            format!("{key}.subjects"),
            "at least one subject is needed",
        ));
    }
    let storage = match raw.storage.as_str() {
        "file" => NatsStorage::File,
        "memory" => NatsStorage::Memory,
        _ => {
            issues.push(ConfigIssue::new(
                format!("{key}.storage"),
                "expected `file` or `memory`",
            ));
            NatsStorage::File
        }
    };
    let token = match &raw.token {
        Some(reference) => reference
            .resolve(env)
            .map_err(|reason| issues.push(ConfigIssue::new(format!("{key}.token"), reason)))
            .ok(),
        None => None,
    };
    (issues.len() == before).then(|| NatsConfig {
        url: raw.url.clone(),
        stream: raw.stream.clone(),
        subjects: raw.subjects.clone(),
        duplicate_window: Duration::from_secs(raw.duplicate_window_secs),
        storage,
        token,
        max_message_bytes: raw.max_message_bytes,
    })
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

fn validate_source(
    key: &str,
    name: &str,
    raw: &RawSource,
    server: &Option<ServerConfig>,
    whole: &RawConfig,
    env: &HashMap<String, String>,
    issues: &mut Vec<ConfigIssue>,
) -> Option<SourceConfig> {
    let before = issues.len();
    if !whole.publishers.contains_key(&raw.publisher) {
        let known: Vec<&str> = whole.publishers.keys().map(String::as_str).collect();
        issues.push(ConfigIssue::new(
            format!("{key}.publisher"),
            format!(
                "no publisher named `{}` (configured: {})",
                raw.publisher,
                known.join(", ")
            ),
        ));
    }
    let topic = TopicTemplate::parse(&raw.topic)
        .map_err(|reason| issues.push(ConfigIssue::new(format!("{key}.topic"), reason)))
        .ok();
    if raw.body_limit_bytes == Some(0) {
        issues.push(ConfigIssue::new(
            format!("{key}.body_limit_bytes"),
            "must be greater than 0",
        ));
    }
    let provider =
        AnyProvider::from_config(&format!("{key}.verify"), &raw.provider, &raw.verify, env)
            .map_err(|mut errs| {
                // An unknown provider is reported against `provider`, not `verify`.
                for e in &mut errs {
                    if e.key.is_empty() {
                        e.key = format!("{key}.provider");
                    }
                }
                issues.extend(errs);
            })
            .ok();
    let allow = raw.allow.as_ref().and_then(|a| {
        let ips = IpAllowlist::parse_nets(&a.ips)
            .map_err(|e| issues.push(ConfigIssue::new(format!("{key}.allow.ips"), e)))
            .ok()?;
        let proxies = IpAllowlist::parse_nets(&a.trusted_proxies)
            .map_err(|e| issues.push(ConfigIssue::new(format!("{key}.allow.trusted_proxies"), e)))
            .ok()?;
        if a.forwarded_header.is_some() && proxies.is_empty() {
            issues.push(ConfigIssue::new(
                format!("{key}.allow.forwarded_header"),
                "is only believed from trusted_proxies; list them",
            ));
        }
        Some(IpAllowlist {
            allowed: ips,
            trusted_proxies: proxies,
            forwarded_header: a.forwarded_header.clone(),
        })
    });
    if let Some(p) = &provider
        && !p.authenticates()
        && raw.allow.is_none()
    {
        issues.push(ConfigIssue::new(
            format!("{key}.allow"),
            "this provider sends no credential as configured: set an api key or an IP allowlist",
        ));
    }
    if issues.len() != before {
        return None;
    }
    if raw.dedup_window_secs == Some(0) {
        issues.push(ConfigIssue::new(
            format!("{key}.dedup_window_secs"),
            "must be greater than 0",
        ));
        return None;
    }
    let provider = provider?;
    let reconcile = match &raw.reconcile {
        None => None,
        Some(r) => {
            let k = format!("{key}.reconcile");
            let mut ok = true;
            if !matches!(provider, AnyProvider::Docplanner(_)) {
                issues.push(ConfigIssue::new(
                    &k,
                    "reconciliation exists for docplanner sources only",
                ));
                ok = false;
            }
            for (field, url) in [("base_url", &r.base_url), ("token_url", &r.token_url)] {
                // The client credentials and patients' data travel here: plain http only to this
                // machine (a local proxy, or the tests' model of the API).
                let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
                    .iter()
                    .any(|local| {
                        url.strip_prefix(local)
                            .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']))
                    });
                if !(url.starts_with("https://") || loopback) {
                    issues.push(ConfigIssue::new(
                        format!("{k}.{field}"),
                        "expected an https URL (http only to 127.0.0.1, localhost or [::1])",
                    ));
                    ok = false;
                }
            }
            if !(1..=100).contains(&r.batch) {
                issues.push(ConfigIssue::new(
                    format!("{k}.batch"),
                    "must be between 1 and 100",
                ));
                ok = false;
            }
            if r.release_interval_secs < 3600 {
                issues.push(ConfigIssue::new(
                    format!("{k}.release_interval_secs"),
                    "Docplanner allows one release an hour",
                ));
                ok = false;
            }
            if r.interval_secs == 0 {
                issues.push(ConfigIssue::new(
                    format!("{k}.interval_secs"),
                    "must be at least 1",
                ));
                ok = false;
            }
            let id = r
                .client_id
                .resolve(env)
                .map_err(|e| issues.push(ConfigIssue::new(format!("{k}.client_id"), e)))
                .ok();
            let secret = r
                .client_secret
                .resolve(env)
                .map_err(|e| issues.push(ConfigIssue::new(format!("{k}.client_secret"), e)))
                .ok();
            match (ok, id, secret) {
                (true, Some(client_id), Some(client_secret)) => Some(ReconcileConfig {
                    base_url: r.base_url.trim_end_matches('/').to_owned(),
                    token_url: r.token_url.clone(),
                    client_id,
                    client_secret,
                    pull: r.pull,
                    release: r.release,
                    interval: Duration::from_secs(r.interval_secs),
                    batch: r.batch,
                    release_interval: Duration::from_secs(r.release_interval_secs),
                }),
                _ => return None,
            }
        }
    };
    let dead_letter_topic = match TopicTemplate::parse(&raw.dead_letter_topic) {
        Ok(t) => t,
        Err(reason) => {
            issues.push(ConfigIssue::new(format!("{key}.dead_letter_topic"), reason));
            return None;
        }
    };
    let on_broker_failure = match raw.on_broker_failure.as_deref() {
        Some("spool") if whole.spool.is_some() => BrokerFailure::Spool,
        Some("spool") => {
            issues.push(ConfigIssue::new(
                format!("{key}.on_broker_failure"),
                "`spool` needs a [spool] section",
            ));
            return None;
        }
        Some("reject") => BrokerFailure::Reject,
        Some(_) => {
            issues.push(ConfigIssue::new(
                format!("{key}.on_broker_failure"),
                "expected `spool` or `reject`",
            ));
            return None;
        }
        // Providers that never resend get durable acceptance whenever a spool exists.
        None if whole.spool.is_some() && provider.never_resends() => BrokerFailure::Spool,
        None => BrokerFailure::Reject,
    };
    let rate_limit = match &raw.rate_limit {
        None => None,
        Some(r) if r.per_second.is_finite() && r.per_second > 0.0 && r.per_second <= 1e6 => {
            Some(RateLimit {
                per_second: r.per_second,
                burst: r.burst.unwrap_or(r.per_second.ceil() as u32).max(1),
            })
        }
        Some(_) => {
            issues.push(ConfigIssue::new(
                format!("{key}.rate_limit.per_second"),
                "must be greater than 0 and at most 1000000",
            ));
            return None;
        }
    };
    // A provider that pushes each event once loses whatever we refuse, unless something recovers
    // it: only a release makes Docplanner push again what it was refused (pulling finds only what
    // is still queued, and a refused push is not).
    let refuses = on_broker_failure == BrokerFailure::Reject || rate_limit.is_some();
    let recovers = reconcile.as_ref().is_some_and(|r| r.release);
    if provider.never_resends() && refuses && !recovers {
        let why = if rate_limit.is_some() {
            "a rate limit refuses pushes"
        } else {
            "`on_broker_failure = \"reject\"` refuses pushes while the broker is down"
        };
        issues.push(ConfigIssue::new(
            format!("{key}.reconcile.release"),
            format!(
                "this provider never resends a refused push and {why}: set \
                 `on_broker_failure = \"spool\"` without a rate limit, or \
                 `[{key}.reconcile] release = true` so that what is refused is pushed again"
            ),
        ));
        return None;
    }
    Some(SourceConfig {
        rate_limit,
        reconcile,
        dead_letter_topic,
        on_broker_failure,
        dedup_window: raw
            .dedup_window_secs
            .map_or_else(|| provider.default_dedup_window(), Duration::from_secs),
        allow,
        name: name.to_owned(),
        provider,
        publisher: raw.publisher.clone(),
        topic: topic?,
        body_limit_bytes: raw
            .body_limit_bytes
            .or(server.as_ref().map(|s| s.body_limit_bytes))
            .unwrap_or(900 * 1024),
    })
}
