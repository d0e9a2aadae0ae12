//! One source's request-path metrics, resolved once when the source is built (at start and at
//! every reload) instead of by label values on every request: `with_label_values` hashes the
//! labels and takes a lock each time, several times per webhook.
//!
//! Each method is one metric event, the one place it is recorded (as Vector's `internal_events`).

use std::sync::OnceLock;
use std::time::Duration;

use prometheus::{Histogram, IntCounter};

use super::Metrics;
use super::outcome::Outcome;

/// The handles of one source.
#[derive(Clone)]
pub struct SourceMetrics {
    metrics: Metrics,
    source: String,
    provider: &'static str,
    webhooks: [IntCounter; Outcome::ALL.len()],
    /// Resolved on first use: a histogram per outcome at zero would add a dozen series per
    /// source to every scrape, for outcomes that may never happen.
    request_duration: [OnceLock<Histogram>; Outcome::ALL.len()],
    dedup_hits: IntCounter,
    dedup_unavailable: IntCounter,
}

impl SourceMetrics {
    /// Resolves the handles; this also creates every series at zero, so dashboards and alerts see
    /// a rate of 0 rather than no data before the first webhook.
    /// `reconciles`: the source pulls from its provider, so its reconcile series exist too.
    pub fn new(metrics: &Metrics, source: &str, provider: &'static str, reconciles: bool) -> Self {
        metrics.initialize_source(source, reconciles);
        SourceMetrics {
            webhooks: Outcome::ALL.map(|o| {
                metrics
                    .webhooks
                    .with_label_values(&[source, provider, o.as_str()])
            }),
            request_duration: std::array::from_fn(|_| OnceLock::new()),
            dedup_hits: metrics.dedup_hits.with_label_values(&[source, provider]),
            dedup_unavailable: metrics.dedup_unavailable.with_label_values(&[source]),
            metrics: metrics.clone(),
            source: source.to_owned(),
            provider,
        }
    }

    /// A webhook of this source ended with `outcome` (`hookbridge_webhooks_total`).
    pub fn webhook(&self, outcome: Outcome) {
        self.webhooks[outcome.index()].inc();
    }

    /// The HTTP request carrying it took `elapsed` (`hookbridge_request_duration_seconds`).
    pub fn request_finished(&self, outcome: Outcome, elapsed: Duration) {
        self.request_duration[outcome.index()]
            .get_or_init(|| {
                self.metrics
                    .request_duration
                    .with_label_values(&[&self.source, outcome.as_str()])
            })
            .observe(elapsed.as_secs_f64());
    }

    /// It had already been published within the window (`hookbridge_dedup_hits_total`).
    pub fn duplicate(&self) {
        self.dedup_hits.inc();
    }

    /// The dedup store did not answer in time for it (`hookbridge_dedup_unavailable_total`).
    pub fn dedup_unavailable(&self) {
        self.dedup_unavailable.inc();
    }

    /// It was a handshake, answered (`hookbridge_handshakes_total`). Resolved here: a source
    /// sees a handful in its life.
    pub fn handshake(&self, kind: &str) {
        self.metrics
            .handshakes
            .with_label_values(&[&self.source, kind])
            .inc();
    }

    /// It was refused as not authentic; `reason` is the verification code
    /// (`hookbridge_verification_failures_total`). Resolved here: refusals are the rare path.
    pub fn verification_failed(&self, reason: &str) {
        self.metrics
            .verification_failures
            .with_label_values(&[&self.source, self.provider, reason])
            .inc();
    }
}
