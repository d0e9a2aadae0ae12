//! Publishing: one [`Publisher`] trait, a Kafka and a NATS JetStream implementation, and the
//! classification of broker errors that decides between "retry later" (503) and "this message will
//! never be accepted" (a dead letter, once the delivery issue lands).
//!
//! Every publish waits for the broker's acknowledgement under a deadline: the gateway answers 2xx
//! only when the event is safe.

pub mod config;
pub mod kafka;
pub mod nats;
pub mod registry;
pub mod topic;

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::event::cloudevents::CloudEventAttributes;
use crate::metrics::{Metrics, PublisherMetrics};
use crate::publish::config::PublisherConfig;

/// One encoded event on its way to a broker.
#[derive(Debug, Clone)]
pub struct OutboundMessage {
    /// Kafka topic or NATS subject, rendered from the source's template.
    pub topic: String,
    /// Kafka record key (stable per subject).
    /// One subject's events share a key, so Kafka's partitioner keeps them in one partition, in
    /// order.
    pub key: String,
    /// The event id: Kafka header `hookbridge_dedup_key`, NATS `Nats-Msg-Id`.
    /// `<source>/<event id>`: scoped by source because two sources sharing a stream may carry
    /// the same provider id, and must not suppress each other's events.
    pub dedup_key: String,
    /// Sent as headers (CloudEvents binary mode: `ce_*` on Kafka, `ce-*` on NATS), beside the
    /// datum rather than inside it.
    pub cloudevent: CloudEventAttributes,
    /// The Avro datum.
    pub payload: Vec<u8>,
}

/// How a publish failed, which decides what the gateway answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// No acknowledgement within the deadline; the broker may still store the event later, which
    /// the dedup key makes harmless.
    #[error("the broker did not acknowledge within {0:?}")]
    Timeout(Duration),
    /// Transient: broker down, connection lost, leader election. Retrying later should work.
    #[error("the broker is unavailable: {0}")]
    Unavailable(String),
    /// Permanent for this message: too large, topic not authorised, invalid topic.
    #[error("the broker refused the message: {0}")]
    Rejected(String),
}

impl PublishError {
    /// The stable code: the JSON body's `code`, the log field and the metric reason label.
    pub fn code(&self) -> &'static str {
        match self {
            PublishError::Timeout(_) => "publish_timeout",
            PublishError::Unavailable(_) => "broker_unavailable",
            PublishError::Rejected(_) => "broker_rejected",
        }
    }
}

/// A broker client that can store one event and say when it has.
///
/// Classifying errors is the implementation's job, since only it knows its broker's answers; a
/// wrong `Unavailable` costs retries, a wrong `Rejected` dead-letters an event the broker would
/// have taken.
pub trait Publisher {
    /// `kafka` or `nats`: the `broker` metric label.
    fn broker(&self) -> &'static str;
    /// Stores `message`, resolving once the broker acknowledged it. Callers add the deadline.
    fn publish(&self, message: &OutboundMessage) -> impl Future<Output = Result<(), PublishError>>;
    /// Checks that the broker can be reached (backs `/readyz`). May do I/O; bounded by `timeout`.
    fn health_check(
        &self,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), PublishError>> + Send;
    /// Waits up to `timeout` for messages still in flight (shutdown).
    fn flush(&self, timeout: Duration) -> impl Future<Output = ()> + Send;
}

/// Every publisher kind, so sources can hold any of them without boxing futures.
pub enum AnyPublisher {
    /// Boxed like NATS: both clients hold hundreds of bytes of state.
    Kafka(Box<kafka::KafkaPublisher>),
    Nats(Box<nats::NatsPublisher>),
}

impl AnyPublisher {
    /// Connects to the broker. Failure to reach it is not an error here: the publisher starts
    /// unhealthy and `/readyz` says so until it recovers, which is what Kubernetes expects.
    pub async fn connect(
        name: &str,
        config: &PublisherConfig,
        publish_timeout: Duration,
        metrics: &crate::metrics::Metrics,
    ) -> Result<Self, String> {
        Ok(match config {
            PublisherConfig::Kafka(k) => AnyPublisher::Kafka(Box::new(kafka::KafkaPublisher::new(
                name,
                k,
                publish_timeout,
                metrics,
            )?)),
            PublisherConfig::Nats(n) => {
                AnyPublisher::Nats(Box::new(nats::NatsPublisher::connect(n).await?))
            }
        })
    }
}

impl Publisher for AnyPublisher {
    fn broker(&self) -> &'static str {
        match self {
            AnyPublisher::Kafka(p) => p.broker(),
            AnyPublisher::Nats(p) => p.broker(),
        }
    }

    async fn publish(&self, message: &OutboundMessage) -> Result<(), PublishError> {
        match self {
            AnyPublisher::Kafka(p) => p.publish(message).await,
            AnyPublisher::Nats(p) => p.publish(message).await,
        }
    }

    async fn health_check(&self, timeout: Duration) -> Result<(), PublishError> {
        match self {
            AnyPublisher::Kafka(p) => p.health_check(timeout).await,
            AnyPublisher::Nats(p) => p.health_check(timeout).await,
        }
    }

    async fn flush(&self, timeout: Duration) {
        match self {
            AnyPublisher::Kafka(p) => p.flush(timeout).await,
            AnyPublisher::Nats(p) => p.flush(timeout).await,
        }
    }
}

/// A publisher with its name and last known health, as the rest of the gateway sees it.
pub struct NamedPublisher {
    pub name: String,
    /// The broker client; shared by the request path, the spool's drainer and the health loop.
    pub inner: AnyPublisher,
    /// Starts false: `/readyz` answers 503 until the first health check or publish succeeds.
    /// Relaxed everywhere: the flag guards no other memory, it is a hint for readiness and
    /// spooling.
    healthy: AtomicBool,
    /// Its metric handles.
    pub metrics: PublisherMetrics,
}

impl NamedPublisher {
    /// `name` is the `[publishers.NAME]` key: the metric label and the spool's publisher name.
    pub fn new(name: String, inner: AnyPublisher, metrics: &Metrics) -> Arc<Self> {
        Arc::new(NamedPublisher {
            metrics: PublisherMetrics::new(metrics, &name, inner.broker()),
            name,
            inner,
            healthy: AtomicBool::new(false),
        })
    }

    /// Last known health. A spooling source that finds it false spools at once instead of waiting
    /// out the deadline; `/readyz` reports it.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Records the result of a health check or a publish. Returns the previous state.
    pub fn set_healthy(&self, healthy: bool) -> bool {
        // The previous state lets the health loop act on a change only (log it, resume the spool).
        self.healthy.swap(healthy, Ordering::Relaxed)
    }
}

/// Header values carry text that came (verified) from a provider; strip anything that could break
/// a protocol's header framing.
pub(crate) fn header_safe(value: &str) -> Cow<'_, str> {
    // Borrowed when clean, which is nearly always: only a value that needs it pays for a copy.
    if value.chars().all(|c| !c.is_control()) {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(
            value
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect(),
        )
    }
}
