//! The one place that decides what happens to a webhook:
//! verify → map → encode → publish under a deadline, and the outcome that follows.
//!
//! The HTTP layer only reads the request and turns the returned [`Accepted`] or [`PipelineError`] into
//! an answer; metrics for every outcome are recorded here so that ingress and any future callers
//! (reconciler, redrive) count the same way.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::config::{BrokerFailure, SourceConfig};
use crate::dead_letter::{
    DEAD_LETTER_CONTENT_TYPE, DEAD_LETTER_SCHEMA_NAME, DeadLetter, DeadLetterCodec,
    DeadLetterInput, Stage,
};
use crate::dedup::{AnyDedupStore, Claim, DedupError, DedupStore, Revision};
use crate::event::avro::{EncodeError, EventCodec};
use crate::event::cloudevents::CloudEventAttributes;
use crate::event::{CanonicalEvent, EventId};
use crate::metrics::Metrics;
use crate::providers::{MapError, Mapped, Provider, Verified, WebhookRequest};
use crate::publish::topic::TopicVars;
use crate::publish::{NamedPublisher, OutboundMessage, PublishError, Publisher};
use crate::spool::{Spool, SpoolEntry, SpoolError};
use crate::verify::VerifyError;
use rate_limit::RateLimiter;

/// A configured source with the publisher its events go to.
pub struct Source {
    pub config: SourceConfig,
    pub publisher: Arc<NamedPublisher>,
    /// The source's rate limit, when it has one. A reload starts it afresh.
    limiter: Option<RateLimiter>,
}

impl Source {
    pub fn new(config: SourceConfig, publisher: Arc<NamedPublisher>) -> Self {
        Source {
            limiter: config.rate_limit.map(RateLimiter::new),
            config,
            publisher,
        }
    }
}

/// What happened to an accepted webhook.
#[derive(Debug, Clone)]
pub enum Accepted {
    /// The broker acknowledged the event.
    Published { event_id: EventId, topic: String },
    /// Authentic, handled, nothing to publish (an SNS subscription handshake).
    Handled { code: &'static str },
    /// Already published within the source's dedup window: answered 2xx so the provider stops.
    Duplicate { event_id: EventId },
    /// The broker could not take it in time; it is on disk and will be published by the drainer.
    Spooled { event_id: EventId },
    /// Authentic but not mappable, or refused by the broker for good: kept on the dead-letter topic.
    DeadLettered { code: String },
}

impl Accepted {
    /// The `outcome` label of `hookbridge_webhooks_total` (and of the request histogram).
    pub fn outcome(&self) -> &'static str {
        match self {
            Accepted::Published { .. } => "published",
            Accepted::Handled { .. } => "handled",
            Accepted::Duplicate { .. } => "duplicate",
            Accepted::Spooled { .. } => "spooled",
            Accepted::DeadLettered { .. } => "dead_lettered",
        }
    }
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
    /// Another request with the same dedup key is being published right now.
    #[error("the same event is being published by another request; retry shortly")]
    InFlight,
    #[error("the dedup store is unavailable")]
    Dedup(#[from] DedupError),
    #[error("the broker is unavailable and the spool cannot take the event: {0}")]
    Spool(SpoolError),
    /// The source's rate limit is spent; `retry_after` is when there is budget again.
    #[error("this source sends faster than its configured rate limit; retry later")]
    RateLimited { retry_after: std::time::Duration },
}

impl PipelineError {
    /// The stable code: JSON `code`, log field and, for verification, the metric reason.
    pub fn code(&self) -> &'static str {
        match self {
            PipelineError::Verify(e) => e.code(),
            PipelineError::Map(e) => e.code(),
            PipelineError::Encode(_) => "encode_failed",
            PipelineError::Publish(e) => e.code(),
            PipelineError::InFlight => "in_flight",
            PipelineError::Dedup(_) => "dedup_unavailable",
            PipelineError::Spool(SpoolError::Full { .. }) => "spool_full",
            PipelineError::Spool(_) => "spool_unavailable",
            PipelineError::RateLimited { .. } => "rate_limited",
        }
    }

    /// The `outcome` label of `hookbridge_webhooks_total`.
    pub fn outcome(&self) -> &'static str {
        match self {
            PipelineError::Verify(_) => "rejected",
            PipelineError::Map(_) => "invalid",
            PipelineError::Encode(_)
            | PipelineError::Publish(_)
            | PipelineError::InFlight
            | PipelineError::Dedup(_)
            | PipelineError::Spool(_) => "failed",
            PipelineError::RateLimited { .. } => "rate_limited",
        }
    }
}

/// How much longer than the publish deadline a pending dedup mark holds before another attempt
/// may take it over (the claimer is presumed dead).
const PENDING_MARGIN: Duration = Duration::from_secs(5);

mod dead_letters;
pub mod rate_limit;
mod spooling;

pub struct Pipeline {
    /// Swapped whole on a config reload; requests keep the `Arc<Source>` they started with.
    sources: RwLock<Arc<HashMap<String, Arc<Source>>>>,
    publishers: Vec<Arc<NamedPublisher>>,
    metrics: Metrics,
    codec: &'static EventCodec,
    publish_timeout: Duration,
    dedup: AnyDedupStore,
    spool: Option<Arc<Spool>>,
}

impl Pipeline {
    pub fn new(
        sources: HashMap<String, Arc<Source>>,
        publishers: Vec<Arc<NamedPublisher>>,
        metrics: Metrics,
        publish_timeout: Duration,
        dedup: AnyDedupStore,
        spool: Option<Arc<Spool>>,
    ) -> Result<Self, EncodeError> {
        Ok(Pipeline {
            sources: RwLock::new(Arc::new(sources)),
            publishers,
            metrics,
            codec: EventCodec::get()?,
            publish_timeout,
            dedup,
            spool,
        })
    }

    pub fn source(&self, name: &str) -> Option<Arc<Source>> {
        self.sources.read().ok().and_then(|s| s.get(name).cloned())
    }

    pub fn sources(&self) -> Vec<Arc<Source>> {
        self.sources
            .read()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Installs a new source table (config reload). In-flight requests finish with the old one.
    pub fn replace_sources(&self, sources: HashMap<String, Arc<Source>>) {
        if let Ok(mut current) = self.sources.write() {
            *current = Arc::new(sources);
        }
    }

    pub fn publishers(&self) -> &[Arc<NamedPublisher>] {
        &self.publishers
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn spool(&self) -> Option<&Arc<Spool>> {
        self.spool.as_ref()
    }

    pub fn publish_timeout(&self) -> Duration {
        self.publish_timeout
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
        match &result {
            Ok(Accepted::Published { event_id, topic }) => {
                tracing::info!(source = name, %event_id, %topic, "published");
            }
            Ok(Accepted::DeadLettered { code }) => {
                tracing::warn!(source = name, code = %code, "dead-lettered instead of published");
            }
            Ok(Accepted::Spooled { event_id }) => {
                tracing::warn!(source = name, %event_id, "broker unavailable: accepted into the spool");
            }
            Ok(Accepted::Duplicate { event_id }) => {
                self.metrics
                    .dedup_hits
                    .with_label_values(&[name, provider])
                    .inc();
                tracing::info!(source = name, %event_id, "duplicate: already published");
            }
            Ok(Accepted::Handled { code }) => {
                tracing::info!(source = name, code, "handled without publishing");
            }
            Err(e) => {
                if let PipelineError::Verify(v) = e {
                    self.metrics
                        .verification_failures
                        .with_label_values(&[name, provider, v.code()])
                        .inc();
                }
                tracing::warn!(source = name, code = e.code(), error = %e, "webhook not published");
            }
        }
        let outcome = result
            .as_ref()
            .map_or_else(PipelineError::outcome, Accepted::outcome);
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
        // After verification, so only authentic webhooks spend the source's budget.
        if let Some(limiter) = &source.limiter {
            limiter
                .acquire(std::time::Instant::now())
                .map_err(|retry_after| PipelineError::RateLimited { retry_after })?;
        }
        self.map_and_deliver(source, request, verified).await
    }

    /// Everything after verification: shared by webhooks and `redrive`.
    pub async fn map_and_deliver(
        &self,
        source: &Source,
        request: &WebhookRequest<'_>,
        verified: Verified<'_>,
    ) -> Result<Accepted, PipelineError> {
        let event = match source
            .config
            .provider
            .map(&source.config.name, verified)
            .await
        {
            Ok(Mapped::Event(event)) => event,
            Ok(Mapped::Handled { code }) => return Ok(Accepted::Handled { code }),
            // Transient: the provider should resend, nothing to keep.
            Err(e @ MapError::Upstream(_)) => return Err(e.into()),
            // Authentic but not mappable: kept for a fixed mapping and `redrive`, never dropped.
            Err(e) => {
                let letter = self.letter(
                    source,
                    request,
                    Stage::Map,
                    e.code(),
                    e.to_string(),
                    None,
                    None,
                );
                return self.dead_letter(source, letter).await;
            }
        };
        let message = self.encode(source, &event)?;
        // Keys are scoped by source: two sources may legitimately carry the same provider id.
        let key = format!("{}/{}", source.config.name, event.id);
        let revision = match self
            .dedup
            .claim(
                &key,
                source.config.dedup_window,
                self.publish_timeout + PENDING_MARGIN,
            )
            .await?
        {
            Claim::New(revision) => revision,
            Claim::Duplicate => return Ok(Accepted::Duplicate { event_id: event.id }),
            Claim::InFlight => return Err(PipelineError::InFlight),
        };
        let spool = match (&self.spool, source.config.on_broker_failure) {
            (Some(spool), BrokerFailure::Spool) => Some(spool),
            _ => None,
        };
        // While earlier events for this publisher wait in the spool, new ones queue behind them,
        // so the broker receives them in the order they were accepted.
        if let Some(spool) = spool
            && spool.pending_for(&source.publisher.name) > 0
        {
            return self
                .spool_event(spool, source, key, revision, message, event.id)
                .await;
        }
        match self.publish(&source.publisher, &message).await {
            Ok(()) => {
                self.confirm(&key, revision).await;
                Ok(Accepted::Published {
                    event_id: event.id,
                    topic: message.topic,
                })
            }
            // Refused for good (too large, not authorised): retrying cannot help, keep it.
            Err(e @ PublishError::Rejected(_)) => {
                let letter = self.letter(
                    source,
                    request,
                    Stage::Publish,
                    e.code(),
                    e.to_string(),
                    Some(event.id.as_str()),
                    Some(&message.topic),
                );
                let result = self.dead_letter(source, letter).await;
                match &result {
                    Ok(_) => self.confirm(&key, revision).await,
                    Err(_) => self.release(&key).await,
                }
                result
            }
            Err(e) => {
                if let Some(spool) = spool {
                    return self
                        .spool_event(spool, source, key, revision, message, event.id)
                        .await;
                }
                // Not published: the provider's retry must not be taken for a duplicate.
                self.release(&key).await;
                Err(e.into())
            }
        }
    }

    async fn confirm(&self, key: &str, revision: Revision) {
        if let Err(e) = self.dedup.confirm(key, revision).await {
            // The event is safe all the same; at worst a retry is published again, which the
            // broker-side id (Nats-Msg-Id, hookbridge_dedup_key) lets consumers drop.
            tracing::warn!(%key, error = %e, "could not confirm a dedup key");
        }
    }

    async fn release(&self, key: &str) {
        if let Err(e) = self.dedup.release(key).await {
            tracing::warn!(%key, error = %e, "could not release a dedup key after a failed publish");
        }
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
