//! `[sources.NAME.reconcile]`: pulling what a provider's push missed and asking it to push again
//! (Docplanner's Integrations API v3, the one provider that offers both).

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use crate::secret::{Secret, SecretRef};
use crate::section::ConfigIssue;

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

fn default_true() -> bool {
    true
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

/// Checks a source's `[reconcile]` table; `supported` says whether its provider has an API to
/// reconcile with. `None` when an issue was recorded.
pub(super) fn validate(
    key: &str,
    r: &RawReconcile,
    supported: bool,
    env: &HashMap<String, String>,
    issues: &mut Vec<ConfigIssue>,
) -> Option<ReconcileConfig> {
    let mut ok = true;
    if !supported {
        issues.push(ConfigIssue::new(
            key,
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
                format!("{key}.{field}"),
                "expected an https URL (http only to 127.0.0.1, localhost or [::1])",
            ));
            ok = false;
        }
    }
    if !(1..=100).contains(&r.batch) {
        issues.push(ConfigIssue::new(
            format!("{key}.batch"),
            "must be between 1 and 100",
        ));
        ok = false;
    }
    if r.release_interval_secs < 3600 {
        issues.push(ConfigIssue::new(
            format!("{key}.release_interval_secs"),
            "Docplanner allows one release an hour",
        ));
        ok = false;
    }
    if r.interval_secs == 0 {
        issues.push(ConfigIssue::new(
            format!("{key}.interval_secs"),
            "must be at least 1",
        ));
        ok = false;
    }
    let id = r
        .client_id
        .resolve(env)
        .map_err(|e| issues.push(ConfigIssue::new(format!("{key}.client_id"), e)))
        .ok();
    let secret = r
        .client_secret
        .resolve(env)
        .map_err(|e| issues.push(ConfigIssue::new(format!("{key}.client_secret"), e)))
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
        _ => None,
    }
}
