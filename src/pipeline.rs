//! The one place that decides what happens to a webhook:
//! verify → map → encode → publish under a deadline, and the outcome that follows.
//!
//! The HTTP layer only reads the request and turns the returned [`Accepted`] or [`PipelineError`] into
//! an answer; metrics for every outcome are recorded here so that ingress and any future callers
//! (reconciler, redrive) count the same way.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::SourceConfig;
use crate::event::avro::{EncodeError, EventCodec};
use crate::event::cloudevents::CloudEventAttributes;
use crate::event::{CanonicalEvent, EventId};
use crate::metrics::Metrics;
use crate::providers::{MapError, Mapped, Provider, WebhookRequest};
use crate::publish::topic::TopicVars;
use crate::publish::{NamedPublisher, OutboundMessage, PublishError, Publisher};
use crate::verify::VerifyError;

/// A configured source with the publisher its events go to.
pub struct Source {
    pub config: SourceConfig,
    pub publisher: Arc<NamedPublisher>,
}

/// What happened to an accepted webhook.
#[derive(Debug, Clone)]
pub enum Accepted {
    /// The broker acknowledged the event.
    Published { event_id: EventId, topic: String },
    /// Authentic, handled, nothing to publish (an SNS subscription handshake).
    Handled { code: &'static str },
}

/// Why a webhook was not published. Each variant has its own HTTP answer (see `http::error`).
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Verify(#[from] VerifyError),
    #[error(transparent)]
    Map(#[from] MapError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error(transparent)]
    Publish(#[from] PublishError),
}

impl PipelineError {
    /// The stable code: JSON `code`, log field and, for verification, the metric reason.
    pub fn code(&self) -> &'static str {
        match self {
            PipelineError::Verify(e) => e.code(),
            PipelineError::Map(e) => e.code(),
            PipelineError::Encode(_) => "encode_failed",
            PipelineError::Publish(e) => e.code(),
        }
    }

    /// The `outcome` label of `hookbridge_webhooks_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            PipelineError::Verify(_) => "rejected",
            PipelineError::Map(_) => "invalid",
            PipelineError::Encode(_) | PipelineError::Publish(_) => "failed",
        }
    }
}

pub struct Pipeline {
    sources: HashMap<String, Arc<Source>>,
    publishers: Vec<Arc<NamedPublisher>>,
    metrics: Metrics,
    codec: &'static EventCodec,
    publish_timeout: Duration,
}

impl Pipeline {
    pub fn new(
        sources: HashMap<String, Arc<Source>>,
        publishers: Vec<Arc<NamedPublisher>>,
        metrics: Metrics,
        publish_timeout: Duration,
    ) -> Result<Self, EncodeError> {
        Ok(Pipeline {
            sources,
            publishers,
            metrics,
            codec: EventCodec::get()?,
            publish_timeout,
        })
    }

    pub fn source(&self, name: &str) -> Option<&Arc<Source>> {
        self.sources.get(name)
    }

    pub fn publishers(&self) -> &[Arc<NamedPublisher>] {
        &self.publishers
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Runs one webhook through the whole path and records its outcome.
    pub async fn process(
        &self,
        source: &Source,
        request: &WebhookRequest<'_>,
    ) -> Result<Accepted, PipelineError> {
        let result = self.run(source, request).await;
        let provider = source.config.provider.kind();
        let name = source.config.name.as_str();
        let outcome = match &result {
            Ok(Accepted::Published { event_id, topic }) => {
                tracing::info!(source = name, %event_id, %topic, "published");
                "published"
            }
            Ok(Accepted::Handled { code }) => {
                tracing::info!(source = name, code, "handled without publishing");
                "handled"
            }
            Err(e) => {
                if let PipelineError::Verify(v) = e {
                    self.metrics
                        .verification_failures
                        .with_label_values(&[name, provider, v.code()])
                        .inc();
                }
                tracing::warn!(source = name, code = e.code(), error = %e, "webhook not published");
                e.outcome()
            }
        };
        self.metrics
            .webhooks
            .with_label_values(&[name, provider, outcome])
            .inc();
        result
    }

    async fn run(
        &self,
        source: &Source,
        request: &WebhookRequest<'_>,
    ) -> Result<Accepted, PipelineError> {
        let provider = &source.config.provider;
        if let Some(allow) = &source.config.allow {
            allow.check(request.peer, request.headers)?;
        }
        let verified = provider.verify(request).await?;
        let event = match provider.map(&source.config.name, verified).await? {
            Mapped::Event(event) => event,
            Mapped::Handled { code } => return Ok(Accepted::Handled { code }),
        };
        let message = self.encode(source, &event)?;
        self.publish(&source.publisher, &message).await?;
        Ok(Accepted::Published {
            event_id: event.id,
            topic: message.topic,
        })
    }

    /// Avro body, CloudEvents headers, topic and key for one event.
    pub fn encode(
        &self,
        source: &Source,
        event: &CanonicalEvent,
    ) -> Result<OutboundMessage, EncodeError> {
        let topic = source.config.topic.render(&TopicVars {
            source: &event.source,
            provider: event.provider,
            event_type: &event.event_type,
        });
        Ok(OutboundMessage {
            topic,
            key: event.partition_key.clone(),
            dedup_key: event.id.as_str().to_owned(),
            cloudevent: CloudEventAttributes::of(event, self.codec.fingerprint()),
            payload: self.codec.encode(event)?,
        })
    }

    /// Publishes under the deadline; a failure marks the publisher unhealthy until the next
    /// successful health check or publish, so `/readyz` reacts at once.
    async fn publish(
        &self,
        publisher: &NamedPublisher,
        message: &OutboundMessage,
    ) -> Result<(), PublishError> {
        let started = Instant::now();
        let broker = publisher.inner.broker();
        let result = match tokio::time::timeout(
            self.publish_timeout,
            publisher.inner.publish(message),
        )
        .await
        {
            Ok(result) => result,
            Err(_elapsed) => Err(PublishError::Timeout(self.publish_timeout)),
        };
        match &result {
            Ok(()) => {
                self.metrics
                    .publish_duration
                    .with_label_values(&[&publisher.name, broker])
                    .observe(started.elapsed().as_secs_f64());
                publisher.set_healthy(true);
            }
            Err(e) => {
                self.metrics
                    .broker_errors
                    .with_label_values(&[&publisher.name, broker, e.code()])
                    .inc();
                if !matches!(e, PublishError::Rejected(_)) {
                    publisher.set_healthy(false);
                }
            }
        }
        result
    }
}
