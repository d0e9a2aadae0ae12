//! A configured source: one `[sources.NAME]` table, validated. This is where a provider (how it
//! proves authenticity), a publisher and topic (where its events go) and the source's limits and
//! failure policy meet, and where the rules that span them are checked: a provider that never
//! resends must not be configured to refuse what it cannot push again.

mod limits;
mod reconcile;

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

pub use limits::{RateLimit, RawAllow, RawRateLimit};
pub use reconcile::{RawReconcile, ReconcileConfig};

use crate::providers::{AnyProvider, Provider};
use crate::publish::topic::TopicTemplate;
use crate::section::ConfigIssue;
use crate::verify::ip::IpAllowlist;

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
    pub on_broker_failure: Option<BrokerFailure>,
    /// How long a delivered event's key is remembered, in seconds; defaults to the provider's
    /// retry horizon (SNS about an hour, Cronofy 24 h, Docplanner's 14-day re-dispatch).
    pub dedup_window_secs: Option<u64>,
    /// Authentic webhooks accepted per second from this source; past it, 429 with `Retry-After`.
    /// Off when absent. Not for providers that never resend (Docplanner) without reconciliation.
    pub rate_limit: Option<RawRateLimit>,
}

fn default_dead_letter_topic() -> String {
    "webhooks.dead_letter.{source}".into()
}
fn default_topic() -> String {
    "webhooks.{provider}.{type}".into()
}

/// What a source does when its broker does not acknowledge in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BrokerFailure {
    /// Accept durably (2xx), publish later.
    Spool,
    /// 503 with `Retry-After`: the provider retries.
    Reject,
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

/// What a source's validation needs from the rest of the config.
#[derive(Debug, Clone, Copy)]
pub struct SourceContext<'a> {
    /// Names of the configured publishers.
    pub publishers: &'a [&'a str],
    /// `server.body_limit_bytes`, when `[server]` was valid.
    pub server_body_limit: Option<usize>,
    /// Whether a `[spool]` section exists.
    pub spool_configured: bool,
}

/// Checks one `[sources.NAME]` table. `None` when an issue was recorded.
pub fn validate(
    key: &str,
    name: &str,
    raw: &RawSource,
    context: &SourceContext<'_>,
    env: &HashMap<String, String>,
    issues: &mut Vec<ConfigIssue>,
) -> Option<SourceConfig> {
    let SourceContext {
        publishers,
        server_body_limit,
        spool_configured,
    } = *context;
    let before = issues.len();
    if !publishers.contains(&raw.publisher.as_str()) {
        let known = publishers;
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
    let allow = raw
        .allow
        .as_ref()
        .and_then(|a| limits::validate_allow(&format!("{key}.allow"), a, issues));
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
        Some(r) => Some(reconcile::validate(
            &format!("{key}.reconcile"),
            r,
            provider.supports_reconcile(),
            env,
            issues,
        )?),
    };
    let dead_letter_topic = match TopicTemplate::parse(&raw.dead_letter_topic) {
        Ok(t) => t,
        Err(reason) => {
            issues.push(ConfigIssue::new(format!("{key}.dead_letter_topic"), reason));
            return None;
        }
    };
    let on_broker_failure = match raw.on_broker_failure {
        Some(BrokerFailure::Spool) if !spool_configured => {
            issues.push(ConfigIssue::new(
                format!("{key}.on_broker_failure"),
                "`spool` needs a [spool] section",
            ));
            return None;
        }
        Some(policy) => policy,
        // Providers that never resend get durable acceptance whenever a spool exists.
        None if spool_configured && provider.never_resends() => BrokerFailure::Spool,
        None => BrokerFailure::Reject,
    };
    let rate_limit = match &raw.rate_limit {
        None => None,
        Some(r) => Some(limits::validate_rate_limit(
            &format!("{key}.rate_limit"),
            r,
            issues,
        )?),
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
            .or(server_body_limit)
            .unwrap_or(900 * 1024),
    })
}
