//! One publisher's metrics, resolved once when it is connected: every publish observes its
//! latency, and a label lookup per publish was a hash and a lock on the hot path.

use std::time::Duration;

use prometheus::{Histogram, IntGauge};

use super::Metrics;

/// The handles of one publisher.
pub struct PublisherMetrics {
    metrics: Metrics,
    publisher: String,
    broker: &'static str,
    publish_duration: Histogram,
    up: IntGauge,
}

impl PublisherMetrics {
    pub fn new(metrics: &Metrics, publisher: &str, broker: &'static str) -> Self {
        PublisherMetrics {
            publish_duration: metrics
                .publish_duration
                .with_label_values(&[publisher, broker]),
            up: metrics.publisher_up.with_label_values(&[publisher, broker]),
            metrics: metrics.clone(),
            publisher: publisher.to_owned(),
            broker,
        }
    }

    /// The broker acknowledged a message after `elapsed` (`hookbridge_publish_duration_seconds`).
    pub fn acknowledged(&self, elapsed: Duration) {
        self.publish_duration.observe(elapsed.as_secs_f64());
    }

    /// A publish failed with `code` (`hookbridge_broker_errors_total`). The rare path: resolved
    /// here rather than held per code.
    pub fn failed(&self, code: &str) {
        self.metrics
            .broker_errors
            .with_label_values(&[&self.publisher, self.broker, code])
            .inc();
    }

    /// A health check found the broker up or down (`hookbridge_publisher_up`).
    pub fn health_checked(&self, up: bool) {
        self.up.set(i64::from(up));
    }
}
