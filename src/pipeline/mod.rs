//! The one place that decides what happens to a webhook:
//! verify → map → encode → publish under a deadline, and the outcome that follows.
//!
//! The HTTP layer only reads the request and turns the returned [`Accepted`] or [`PipelineError`]
//! into an answer; metrics for every outcome are recorded here so that ingress and any future
//! callers (reconciler, redrive) count the same way.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::dead_letter::{
    DEAD_LETTER_CONTENT_TYPE, DEAD_LETTER_SCHEMA_NAME, DeadLetter, DeadLetterCodec,
    DeadLetterInput, Stage,
};
use crate::dedup::{AnyDedupStore, Claim, Revision};
use crate::event::EventId;
use crate::event::avro::{EncodeError, EventCodec};
use crate::event::cloudevents::CloudEventAttributes;
use crate::metrics::Metrics;
use crate::providers::{MapError, Mapped, Provider, Verified, WebhookRequest};
use crate::publish::topic::TopicVars;
use crate::publish::{NamedPublisher, OutboundMessage, PublishError};
use crate::source::BrokerFailure;
use crate::spool::{Spool, SpoolEntry, SpoolError};

mod claims;
mod dead_letters;
mod draining;
mod outcome;
mod publishing;
pub mod rate_limit;
mod source;
mod spooling;

pub use outcome::{Accepted, PipelineError};
pub use source::Source;

/// The webhook path and its promises, shared (`Arc`) by the HTTP handlers, the spool's drainer,
/// the reconcilers and `redrive`. Whoever calls, 2xx means the event is safe (acknowledged,
/// spooled or dead-lettered), and every answer comes within the publish deadline.
pub struct Pipeline {
    /// Swapped whole on a config reload; requests keep the `Arc<Source>` they started with.
    sources: RwLock<Arc<HashMap<String, Arc<Source>>>>,
    /// Set up once at start: a reload that changes them is `restart_required`, not applied.
    publishers: Vec<Arc<NamedPublisher>>,
    metrics: Metrics,
    /// The embedded schemas, parsed once in `new`: a broken schema stops start-up, not a request.
    codec: &'static EventCodec,
    /// `server.publish_timeout_ms`: every publish is held to it, and each dedup store call to a
    /// quarter of it.
    publish_timeout: Duration,
    dedup: AnyDedupStore,
    /// When the store last failed: for a second after, requests do not wait on it again.
    dedup_health: claims::StoreHealth,
    /// `None` without a `[spool]`; only `on_broker_failure = "spool"` sources use it.
    spool: Option<Arc<Spool>>,
    /// The source table's generation, bumped by every reload.
    reloads: tokio::sync::watch::Sender<u64>,
}

impl Pipeline {
    /// Fails only if the embedded Avro schemas do not parse, which start-up reports before serving.
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
            dedup_health: claims::StoreHealth::new(),
            spool,
            reloads: tokio::sync::watch::Sender::new(0),
        })
    }

    /// The source as the current table has it. The `Arc` outlives a reload, so a request finishes
    /// with the config (and secrets) it started with.
    pub fn source(&self, name: &str) -> Option<Arc<Source>> {
        self.sources.read().ok().and_then(|s| s.get(name).cloned())
    }

    /// A snapshot of every source, for metrics and the reconcile supervisor.
    pub fn sources(&self) -> Vec<Arc<Source>> {
        self.sources
            .read()
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Installs a new source table (config reload). In-flight requests finish with the old one;
    /// tasks that hold source config (reconcilers) are told through [`Self::subscribe_reloads`].
    pub fn replace_sources(&self, sources: HashMap<String, Arc<Source>>) {
        if let Ok(mut current) = self.sources.write() {
            *current = Arc::new(sources);
        }
        self.reloads.send_modify(|generation| *generation += 1);
    }

    /// Changes each time the source table is replaced.
    pub fn subscribe_reloads(&self) -> tokio::sync::watch::Receiver<u64> {
        self.reloads.subscribe()
    }

    /// Every publisher, ordered by name: the health loop and the shutdown flush walk them.
    pub fn publishers(&self) -> &[Arc<NamedPublisher>] {
        &self.publishers
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The spool, if configured: `/readyz` stays green (degraded) while it has room, and the health
    /// loop wakes its drainer when a publisher is back.
    pub fn spool(&self) -> Option<&Arc<Spool>> {
        self.spool.as_ref()
    }

    /// Sets the dedup store's key and byte gauges (the health loop calls this).
    pub async fn export_dedup_usage(&self) {
        if let Some((keys, bytes)) = self.dedup.usage().await {
            self.metrics.dedup_usage(self.dedup.kind(), keys, bytes);
        }
    }

    /// The deadline every publish is held to (`server.publish_timeout_ms`).
    /// Makes the dedup store's writes durable (shutdown).
    pub async fn flush_dedup(&self) {
        if let Err(e) = self.dedup.flush().await {
            tracing::warn!(error = %e, "could not make the dedup store durable at shutdown");
        }
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
        // Logged and counted here, not in the handler, which only turns the result into an answer:
        // the status and the metric come from one result and cannot disagree.
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
                source.metrics.duplicate();
                tracing::info!(source = name, %event_id, "duplicate: already published");
            }
            Ok(Accepted::Handled { code }) => {
                tracing::info!(source = name, code, "handled without publishing");
            }
            Ok(Accepted::Answered(reply)) => {
                source.metrics.handshake(reply.kind);
                tracing::info!(source = name, handshake = reply.kind, "handshake answered");
            }
            Err(e) => {
                // Forgeries are counted and logged, never dead-lettered: keeping them would let
                // anyone fill the dead-letter topic.
                if let PipelineError::Verify(v) = e {
                    source.metrics.verification_failed(v.code());
                }
                tracing::warn!(source = name, code = e.code(), error = %e, "webhook not published");
            }
        }
        let outcome = result
            .as_ref()
            .map_or_else(PipelineError::outcome, Accepted::outcome);
        source.metrics.webhook(outcome);
        result
    }

    async fn run(
        &self,
        source: &Source,
        request: &WebhookRequest<'_>,
    ) -> Result<Accepted, PipelineError> {
        let provider = &source.config.provider;
        // For a provider that signs nothing, the allowlist (with or without an agreed API key) is
        // what makes a webhook authentic.
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
            Ok(Mapped::Answer(reply)) => return Ok(Accepted::Answered(reply)),
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
        let message = self.encode(source, &event);
        let key = message.dedup_key.clone();
        let spool = self.spool_for(source);
        let revision = match self.claim(&key, source.config.dedup_window).await {
            Ok(Claim::New(revision)) => revision,
            // Already published within the window: 2xx, so the provider stops resending.
            Ok(Claim::Duplicate) => return Ok(Accepted::Duplicate { event_id: event.id }),
            // Another request (or replica) holds the key. A spooling source cannot let the
            // provider retry, and the holder may be a replica that died: spool it unclaimed, so
            // the drainer publishes it unless the holder did.
            Ok(Claim::InFlight) => {
                return match spool {
                    Some(spool) => {
                        self.spool_unclaimed(spool, source, key, message, event.id)
                            .await
                    }
                    // 2xx here would lose the event if the holder's publish failed: 503, and the
                    // provider's retry finds the key released or confirmed.
                    None => Err(PipelineError::InFlight),
                };
            }
            Err(e) => {
                source.metrics.dedup_unavailable();
                // A spooling source promised never to refuse for want of a broker; the dedup
                // store being down is the same kind of outage.
                return match spool {
                    Some(spool) => {
                        tracing::warn!(source = %source.config.name, error = %e, "dedup store unavailable: spooling unclaimed");
                        self.spool_unclaimed(spool, source, key, message, event.id)
                            .await
                    }
                    // A `reject` source answers 503 `dedup_unavailable`; its provider resends.
                    None => Err(e.into()),
                };
            }
        };
        // While earlier events for this publisher wait in the spool, new ones queue behind them,
        // so the broker receives them in the order they were accepted; while the publisher is known
        // to be down there is no point in waiting out the deadline before spooling.
        if let Some(spool) = spool
            && (spool.pending_for(&source.publisher.name) > 0 || !source.publisher.is_healthy())
        {
            return self
                .spool_event(spool, source, key, None, Some(revision), message, event.id)
                .await;
        }
        match self.publish(&source.publisher, &message).await {
            Ok(()) => {
                // Confirmed only after the ack: from now on a retry is answered `duplicate`.
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
                // The key follows the letter: confirmed once it is kept (a resend is a duplicate),
                // released when it is not (the provider resends after the 503, and that resend
                // must be published).
                match &result {
                    Ok(_) => self.confirm(&key, revision).await,
                    Err(_) => self.release(&key).await,
                }
                result
            }
            Err(e) => {
                // Timeout or unavailable. A timed-out publish may still be stored by the broker
                // afterwards; the drainer's copy carries the same dedup key, which NATS drops and
                // Kafka consumers can (README, "Duplicates on Kafka").
                if let Some(spool) = spool {
                    return self
                        .spool_event(spool, source, key, None, Some(revision), message, event.id)
                        .await;
                }
                // Not published: the provider's retry must not be taken for a duplicate.
                self.release(&key).await;
                Err(e.into())
            }
        }
    }

    /// The spool, when this source uses one on a broker failure.
    /// `reject` sources, and every source without a `[spool]`, answer 503 instead: their
    /// providers resend.
    fn spool_for(&self, source: &Source) -> Option<&Arc<Spool>> {
        match (&self.spool, source.config.on_broker_failure) {
            (Some(spool), BrokerFailure::Spool) => Some(spool),
            _ => None,
        }
    }
}

// Read at scrape time from each SNS verifier, so the shared verify block stays free of Prometheus
// and a reload (new verifiers, counts from zero) shows as an ordinary counter reset.
impl crate::metrics::sns::CertificateCounts for Pipeline {
    fn certificate_counts(&self) -> Vec<(String, u64, u64)> {
        self.sources()
            .iter()
            .filter_map(|s| {
                let (hits, fetches) = s.config.provider.certificate_counts()?;
                Some((s.config.name.clone(), hits, fetches))
            })
            .collect()
    }
}
