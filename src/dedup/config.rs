//! `[dedup]`: which store remembers dedup keys, and its bounds.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;

use crate::secret::{Secret, SecretRef};
use crate::section::{ConfigIssue, resolve_optional};

/// `dedup.store`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DedupStore {
    /// One replica; keys are lost on restart.
    Memory,
    /// One replica; survives restarts, windows of days (redb on a volume of its own).
    Disk,
    /// A JetStream key-value bucket shared by every replica.
    Nats,
}

/// `[dedup]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawDedup {
    /// Which store remembers the keys.
    pub store: DedupStore,
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
            store: DedupStore::Memory,
            capacity: None,
            path: None,
            url: None,
            bucket: "hookbridge_dedup".into(),
            // Docplanner's window (it re-dispatches for 14 days), the longest any provider sets.
            max_age_secs: 15 * 24 * 3600,
            max_bytes: 1024 * 1024 * 1024,
            token: None,
        }
    }
}

/// `[dedup]`, validated.
#[derive(Debug, Clone, PartialEq)]
pub enum DedupConfig {
    Memory {
        /// The in-memory store's bound on keys, and so on the pod's memory.
        capacity: usize,
    },
    /// The redb store in `path`, at most `capacity` keys.
    Disk {
        path: std::path::PathBuf,
        capacity: usize,
    },
    /// The shared bucket, bounded by age and by bytes (see `nats_kv`).
    Nats {
        url: String,
        bucket: String,
        max_age: Duration,
        max_bytes: i64,
        token: Option<Secret>,
    },
}

/// Checks `[dedup]`. `longest_window` is the longest `dedup_window_secs` any source sets: a shared
/// bucket that forgot keys sooner would let a late retry through as new.
pub fn validate(
    d: &RawDedup,
    longest_window: u64,
    env: &HashMap<String, String>,
    issues: &mut Vec<ConfigIssue>,
) -> Option<DedupConfig> {
    match d.store {
        DedupStore::Memory | DedupStore::Disk => {
            let memory = d.store == DedupStore::Memory;
            // A memory store lives in the pod's RAM; a disk store holds a 14-day window of keys.
            let capacity = d
                .capacity
                .unwrap_or(if memory { 1_000_000 } else { 50_000_000 });
            // Refused, not rounded up: the stores' `max(1)` would keep one key, dedup in name only.
            if capacity == 0 {
                issues.push(ConfigIssue::new("dedup.capacity", "must be greater than 0"));
                return None;
            }
            if memory {
                if capacity > super::memory::MAX_CAPACITY {
                    issues.push(ConfigIssue::new(
                        "dedup.capacity",
                        format!(
                            "the memory store holds at most {} keys (about 52 GiB); use the disk store for more",
                            super::memory::MAX_CAPACITY
                        ),
                    ));
                    return None;
                }
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
        DedupStore::Nats => {
            let Some(url) = d.url.clone() else {
                issues.push(ConfigIssue::new(
                    "dedup.url",
                    "the nats store needs the server URL",
                ));
                return None;
            };
            // Reported without returning, so check-config lists this with the checks below.
            if d.max_age_secs < longest_window {
                issues.push(ConfigIssue::new(
                    "dedup.max_age_secs",
                    format!("must be at least the longest dedup_window_secs ({longest_window})"),
                ));
            }
            let token = resolve_optional("dedup.token", &d.token, env, issues).ok()?;
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
    }
}
