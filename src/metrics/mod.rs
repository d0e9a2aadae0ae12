//! Prometheus metrics, registered into a registry that is passed in (never the process-global one),
//! so two gateways in one test process keep separate counts.
//!
//! Label values are bounded: configured source and publisher names, provider kinds, and the fixed
//! outcome and reason codes. Never ids, paths or anything a sender chose.

mod events;
pub mod outcome;
mod publisher;
pub mod sns;
mod source;

pub use outcome::Outcome;
pub use publisher::PublisherMetrics;
pub use source::SourceMetrics;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Request and publish latency buckets, in seconds: dense below the providers' 5 s deadline.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `hookbridge_webhooks_total{source, provider, outcome}`
    pub webhooks: IntCounterVec,
    /// `hookbridge_verification_failures_total{source, provider, reason}`
    pub verification_failures: IntCounterVec,
    /// `hookbridge_dedup_hits_total{source, provider}`: webhooks recognised as already published.
    pub dedup_hits: IntCounterVec,
    /// `hookbridge_dead_letters_total{source, stage, reason}`: events sent to the dead-letter topic.
    pub dead_letters: IntCounterVec,
    /// `hookbridge_unknown_source_requests_total`: requests to a source that is not configured.
    pub unknown_source: IntCounter,
    /// `hookbridge_request_duration_seconds{source, outcome}`
    pub request_duration: HistogramVec,
    /// `hookbridge_publish_duration_seconds{publisher, broker}`: successful publishes, ack included.
    pub publish_duration: HistogramVec,
    /// `hookbridge_broker_errors_total{publisher, broker, reason}`
    pub broker_errors: IntCounterVec,
    /// `hookbridge_publisher_up{publisher, broker}`: 1 when the last health check passed.
    pub publisher_up: IntGaugeVec,
    /// `hookbridge_in_flight_requests`
    pub in_flight: IntGauge,
    /// `hookbridge_spool_events`: events accepted and waiting in the spool for their broker.
    pub spool_events: IntGauge,
    /// `hookbridge_spool_bytes`: bytes those events take on disk.
    pub spool_bytes: IntGauge,
    /// `hookbridge_spool_capacity_bytes`: the spool's configured bound (`[spool] max_bytes`).
    pub spool_capacity: IntGauge,
    /// `hookbridge_spool_drained_total{source}`: spooled events later delivered to the broker.
    pub spool_drained: IntCounterVec,
    /// `hookbridge_spool_duplicates_total{source}`: events spooled without a dedup claim (the store
    /// was down) that the drainer found already published, and dropped.
    pub spool_duplicates: IntCounterVec,
    /// `hookbridge_spool_quarantined`: entries moved aside because they can never be delivered as
    /// they are (see `hookbridge spool quarantine`).
    pub spool_quarantined: IntGauge,
    /// `hookbridge_spool_quarantined_total{reason}`: entries moved to the quarantine, by reason.
    pub spool_quarantined_total: IntCounterVec,
    /// `hookbridge_dedup_unavailable_total{source}`: events that could not be checked against the
    /// dedup store in time (spooled unclaimed, or answered 503).
    pub dedup_unavailable: IntCounterVec,
    /// `hookbridge_handshakes_total{source,handshake}`: handshakes answered (never published).
    pub handshakes: IntCounterVec,
    /// `hookbridge_dedup_evictions_total{store}`: keys forgotten before their window ended because
    /// the store was at its bound (a later resend of one would be published again).
    pub dedup_evictions: IntCounterVec,
    /// `hookbridge_dedup_keys{store}` and `hookbridge_dedup_bytes{store}`: what the store holds.
    pub dedup_keys: IntGaugeVec,
    pub dedup_bytes: IntGaugeVec,
    /// `hookbridge_schema_registry_errors_total{publisher, reason}`: registry calls that failed
    /// (`unavailable`, `incompatible`, `not_registered`, `wrong_answer`).
    pub schema_registry_errors: IntCounterVec,
    /// `hookbridge_topics_created_total{publisher}`: Kafka topics this process created (bounded
    /// by the publisher's `max_created_topics`).
    pub topics_created: IntCounterVec,
    /// `hookbridge_reconcile_notifications_total{source, outcome}`: notifications pulled from the
    /// provider's API (`pulled`) and what became of each (`published`, `duplicate`, ...).
    pub reconcile_notifications: IntCounterVec,
    /// `hookbridge_reconcile_releases_total{source, outcome}`: re-delivery requests.
    pub reconcile_releases: IntCounterVec,
    /// `hookbridge_reconcile_errors_total{source, operation}`: failed provider API calls.
    pub reconcile_errors: IntCounterVec,
    /// `hookbridge_config_reloads_total{outcome}`: configuration reloads (`success`, `failure`).
    pub config_reloads: IntCounterVec,
    /// `hookbridge_build_info{version}`: always 1.
    pub build_info: IntGaugeVec,
}

impl Metrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let webhooks = IntCounterVec::new(
            Opts::new(
                "hookbridge_webhooks_total",
                "Webhooks handled, by source and outcome.",
            ),
            &["source", "provider", "outcome"],
        )?;
        let verification_failures = IntCounterVec::new(
            Opts::new(
                "hookbridge_verification_failures_total",
                "Webhooks rejected as not authentic, by reason.",
            ),
            &["source", "provider", "reason"],
        )?;
        let dedup_hits = IntCounterVec::new(
            Opts::new(
                "hookbridge_dedup_hits_total",
                "Webhooks already published within the source's dedup window (answered 2xx, not published again).",
            ),
            &["source", "provider"],
        )?;
        let dead_letters = IntCounterVec::new(
            Opts::new(
                "hookbridge_dead_letters_total",
                "Verified webhooks that could not be mapped or published, kept on the dead-letter topic.",
            ),
            &["source", "stage", "reason"],
        )?;
        let unknown_source = IntCounter::new(
            "hookbridge_unknown_source_requests_total",
            "Requests to /webhooks/{source} for a source that is not configured.",
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "hookbridge_request_duration_seconds",
                "Time from request to answer.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["source", "outcome"],
        )?;
        let publish_duration = HistogramVec::new(
            HistogramOpts::new(
                "hookbridge_publish_duration_seconds",
                "Broker publish latency, acknowledgement included.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["publisher", "broker"],
        )?;
        let broker_errors = IntCounterVec::new(
            Opts::new(
                "hookbridge_broker_errors_total",
                "Failed publishes, by reason.",
            ),
            &["publisher", "broker", "reason"],
        )?;
        let publisher_up = IntGaugeVec::new(
            Opts::new(
                "hookbridge_publisher_up",
                "1 when the publisher's last health check passed.",
            ),
            &["publisher", "broker"],
        )?;
        let spool_events = IntGauge::new(
            "hookbridge_spool_events",
            "Events accepted (answered 2xx) and waiting in the spool for their broker.",
        )?;
        let spool_bytes = IntGauge::new(
            "hookbridge_spool_bytes",
            "Bytes the spooled events take on disk.",
        )?;
        let spool_capacity = IntGauge::new(
            "hookbridge_spool_capacity_bytes",
            "The spool's bound in bytes; full means 503 (0 when no spool is configured).",
        )?;
        let spool_drained = IntCounterVec::new(
            Opts::new(
                "hookbridge_spool_drained_total",
                "Spooled events delivered to their broker.",
            ),
            &["source"],
        )?;
        let spool_duplicates = IntCounterVec::new(
            Opts::new(
                "hookbridge_spool_duplicates_total",
                "Events spooled without a dedup claim that were already published when drained, and dropped.",
            ),
            &["source"],
        )?;
        let spool_quarantined = IntGauge::new(
            "hookbridge_spool_quarantined",
            "Spool entries in quarantine: they can never be delivered as they are.",
        )?;
        let spool_quarantined_total = IntCounterVec::new(
            Opts::new(
                "hookbridge_spool_quarantined_total",
                "Spool entries moved to the quarantine, by reason.",
            ),
            &["reason"],
        )?;
        let dedup_unavailable = IntCounterVec::new(
            Opts::new(
                "hookbridge_dedup_unavailable_total",
                "Events the dedup store could not check in time (spooled unclaimed, or answered 503).",
            ),
            &["source"],
        )?;
        let handshakes = IntCounterVec::new(
            Opts::new(
                "hookbridge_handshakes_total",
                "Handshakes answered as their sender documents (Slack url_verification, Dropbox challenge, ...); never published.",
            ),
            &["source", "handshake"],
        )?;
        let dedup_evictions = IntCounterVec::new(
            Opts::new(
                "hookbridge_dedup_evictions_total",
                "Dedup keys forgotten before their window ended because the store was at its bound.",
            ),
            &["store"],
        )?;
        let dedup_keys = IntGaugeVec::new(
            Opts::new("hookbridge_dedup_keys", "Keys the dedup store holds."),
            &["store"],
        )?;
        let dedup_bytes = IntGaugeVec::new(
            Opts::new(
                "hookbridge_dedup_bytes",
                "Bytes the dedup store takes (memory, file or key-value bucket).",
            ),
            &["store"],
        )?;
        let schema_registry_errors = IntCounterVec::new(
            Opts::new(
                "hookbridge_schema_registry_errors_total",
                "Schema registry calls that failed, by reason; the publisher is unready until it answers.",
            ),
            &["publisher", "reason"],
        )?;
        let topics_created = IntCounterVec::new(
            Opts::new(
                "hookbridge_topics_created_total",
                "Kafka topics this process created, bounded by max_created_topics.",
            ),
            &["publisher"],
        )?;
        let in_flight = IntGauge::new(
            "hookbridge_in_flight_requests",
            "Webhook requests being handled.",
        )?;
        let reconcile_notifications = IntCounterVec::new(
            Opts::new(
                "hookbridge_reconcile_notifications_total",
                "Notifications pulled by reconciliation, by outcome.",
            ),
            &["source", "outcome"],
        )?;
        let reconcile_releases = IntCounterVec::new(
            Opts::new(
                "hookbridge_reconcile_releases_total",
                "Re-delivery (release) requests, by outcome.",
            ),
            &["source", "outcome"],
        )?;
        let reconcile_errors = IntCounterVec::new(
            Opts::new(
                "hookbridge_reconcile_errors_total",
                "Failed calls to a provider's API during reconciliation.",
            ),
            &["source", "operation"],
        )?;
        let config_reloads = IntCounterVec::new(
            Opts::new(
                "hookbridge_config_reloads_total",
                "Configuration reloads (SIGHUP or a changed file), by outcome; a failure keeps the running config.",
            ),
            &["outcome"],
        )?;
        let build_info = IntGaugeVec::new(
            Opts::new("hookbridge_build_info", "Build information; always 1."),
            &["version"],
        )?;
        registry.register(Box::new(webhooks.clone()))?;
        registry.register(Box::new(verification_failures.clone()))?;
        registry.register(Box::new(unknown_source.clone()))?;
        registry.register(Box::new(dedup_hits.clone()))?;
        registry.register(Box::new(dead_letters.clone()))?;
        registry.register(Box::new(request_duration.clone()))?;
        registry.register(Box::new(publish_duration.clone()))?;
        registry.register(Box::new(broker_errors.clone()))?;
        registry.register(Box::new(publisher_up.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(spool_events.clone()))?;
        registry.register(Box::new(spool_bytes.clone()))?;
        registry.register(Box::new(spool_drained.clone()))?;
        registry.register(Box::new(spool_capacity.clone()))?;
        registry.register(Box::new(spool_duplicates.clone()))?;
        registry.register(Box::new(spool_quarantined.clone()))?;
        registry.register(Box::new(spool_quarantined_total.clone()))?;
        registry.register(Box::new(dedup_unavailable.clone()))?;
        registry.register(Box::new(handshakes.clone()))?;
        registry.register(Box::new(dedup_evictions.clone()))?;
        registry.register(Box::new(dedup_keys.clone()))?;
        registry.register(Box::new(dedup_bytes.clone()))?;
        registry.register(Box::new(schema_registry_errors.clone()))?;
        registry.register(Box::new(topics_created.clone()))?;
        registry.register(Box::new(reconcile_notifications.clone()))?;
        registry.register(Box::new(reconcile_releases.clone()))?;
        registry.register(Box::new(reconcile_errors.clone()))?;
        registry.register(Box::new(config_reloads.clone()))?;
        registry.register(Box::new(build_info.clone()))?;
        for reason in [
            "unreadable",
            "publisher_gone",
            "source_gone",
            "dead_letter_refused",
        ] {
            spool_quarantined_total.with_label_values(&[reason]);
        }
        for outcome in ["success", "failure", "restart_required"] {
            config_reloads.with_label_values(&[outcome]);
        }
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        Ok(Metrics {
            registry: registry.clone(),
            webhooks,
            verification_failures,
            unknown_source,
            dedup_hits,
            dead_letters,
            request_duration,
            publish_duration,
            broker_errors,
            publisher_up,
            in_flight,
            spool_events,
            spool_bytes,
            spool_drained,
            spool_capacity,
            spool_duplicates,
            spool_quarantined,
            spool_quarantined_total,
            dedup_unavailable,
            handshakes,
            dedup_evictions,
            dedup_keys,
            dedup_bytes,
            schema_registry_errors,
            topics_created,
            reconcile_notifications,
            reconcile_releases,
            reconcile_errors,
            config_reloads,
            build_info,
        })
    }

    /// Creates the label sets a source will use, at zero, so `rate()` and alerts see them before
    /// the first event (Prometheus treats a missing series differently from a zero).
    /// Called by [`SourceMetrics::new`], which also creates the series it holds handles to.
    fn initialize_source(&self, source: &str, reconciles: bool) {
        self.spool_drained.with_label_values(&[source]);
        self.spool_duplicates.with_label_values(&[source]);
        if reconciles {
            for outcome in [
                "pulled",
                "published",
                "duplicate",
                "spooled",
                "dead_lettered",
                "failed",
            ] {
                self.reconcile_notifications
                    .with_label_values(&[source, outcome]);
            }
            for outcome in ["released", "rate_limited", "failed"] {
                self.reconcile_releases
                    .with_label_values(&[source, outcome]);
            }
            for operation in ["pull", "release"] {
                self.reconcile_errors
                    .with_label_values(&[source, operation]);
            }
        }
    }

    /// The same for a Kafka publisher that creates topics.
    pub fn initialize_topics(&self, publisher: &str) {
        self.topics_created.with_label_values(&[publisher]);
    }

    /// The same for a Kafka publisher's schema registry.
    pub fn initialize_registry(&self, publisher: &str) {
        for reason in [
            "unavailable",
            "incompatible",
            "not_registered",
            "wrong_answer",
        ] {
            self.schema_registry_errors
                .with_label_values(&[publisher, reason]);
        }
    }

    /// The same for a publisher.
    pub fn initialize_publisher(&self, publisher: &str, broker: &str) {
        for reason in ["publish_timeout", "broker_unavailable", "broker_rejected"] {
            self.broker_errors
                .with_label_values(&[publisher, broker, reason]);
        }
        self.publisher_up.with_label_values(&[publisher, broker]);
    }

    /// The registry these metrics live in, for collectors registered after the pipeline exists.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every registered metric.
    pub fn render(&self) -> Result<String, prometheus::Error> {
        let mut out = Vec::with_capacity(8 * 1024);
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}
