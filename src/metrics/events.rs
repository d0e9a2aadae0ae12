//! The background tasks' metric events, one method each, so that a metric is recorded in one
//! place and its label set is written once (as Vector's `internal_events`). The request path's
//! events are on [`super::SourceMetrics`] and [`super::PublisherMetrics`], whose handles are
//! resolved ahead.

use prometheus::IntCounter;

use super::Metrics;

impl Metrics {
    /// A webhook of `source` was kept as a dead letter (`hookbridge_dead_letters_total`).
    pub fn dead_lettered(&self, source: &str, stage: &str, reason: &str) {
        self.dead_letters
            .with_label_values(&[source, stage, reason])
            .inc();
    }

    /// The dedup store holds `keys` keys in `bytes` (`hookbridge_dedup_keys`, `..._bytes`).
    pub fn dedup_usage(&self, store: &str, keys: u64, bytes: u64) {
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.dedup_keys.with_label_values(&[store]).set(gauge(keys));
        self.dedup_bytes
            .with_label_values(&[store])
            .set(gauge(bytes));
    }

    /// The counter a dedup store bumps when it evicts a key inside its window.
    pub fn dedup_evictions_of(&self, store: &str) -> IntCounter {
        self.dedup_evictions.with_label_values(&[store])
    }

    /// The counter of topics a Kafka publisher created (`hookbridge_topics_created_total`).
    pub fn topics_created_of(&self, publisher: &str) -> IntCounter {
        self.topics_created.with_label_values(&[publisher])
    }

    /// The drainer delivered a spooled event of `source`, or found it already published
    /// (`hookbridge_spool_drained_total`, `hookbridge_spool_duplicates_total`).
    pub fn spool_delivered(&self, source: &str, duplicate: bool) {
        let counter = if duplicate {
            &self.spool_duplicates
        } else {
            &self.spool_drained
        };
        counter.with_label_values(&[source]).inc();
    }

    /// A spooled event went to the quarantine (`hookbridge_spool_quarantined_total`).
    pub fn spool_quarantined(&self, reason: &str) {
        self.spool_quarantined_total
            .with_label_values(&[reason])
            .inc();
    }

    /// A config reload ended with `outcome` (`hookbridge_config_reloads_total`).
    pub fn config_reloaded(&self, outcome: &str) {
        self.config_reloads.with_label_values(&[outcome]).inc();
    }

    /// `n` pulled notifications of `source` ended with `outcome`
    /// (`hookbridge_reconcile_notifications_total`).
    pub fn reconcile_notifications(&self, source: &str, outcome: &str, n: u64) {
        self.reconcile_notifications
            .with_label_values(&[source, outcome])
            .inc_by(n);
    }

    /// A release request for `source` ended with `outcome` (`hookbridge_reconcile_releases_total`).
    pub fn reconcile_release(&self, source: &str, outcome: &str) {
        self.reconcile_releases
            .with_label_values(&[source, outcome])
            .inc();
    }

    /// A reconcile `operation` (`pull`, `release`) of `source` failed
    /// (`hookbridge_reconcile_errors_total`).
    pub fn reconcile_error(&self, source: &str, operation: &str) {
        self.reconcile_errors
            .with_label_values(&[source, operation])
            .inc();
    }

    /// A schema-registry call of `publisher` failed with `reason`
    /// (`hookbridge_schema_registry_errors_total`).
    pub fn registry_error(&self, publisher: &str, reason: &str) {
        self.schema_registry_errors
            .with_label_values(&[publisher, reason])
            .inc();
    }
}
