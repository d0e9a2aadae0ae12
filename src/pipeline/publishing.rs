//! Turning an event into a message and publishing it under the deadline: shared by requests, the
//! drainer, the reconciler and redrive, so they all count and mark publisher health the same way.

use std::time::Instant;

use super::{Pipeline, Source};
use crate::event::CanonicalEvent;
use crate::event::cloudevents::CloudEventAttributes;
use crate::publish::topic::TopicVars;
use crate::publish::{NamedPublisher, OutboundMessage, PublishError, Publisher};

impl Pipeline {
    /// Avro body, CloudEvents headers, topic and key for one event.
    pub fn encode(&self, source: &Source, event: &CanonicalEvent) -> OutboundMessage {
        let topic = source.config.topic.render(&TopicVars {
            source: &event.source,
            provider: event.provider,
            event_type: &event.event_type,
        });
        OutboundMessage {
            topic,
            // Stable per subject: Kafka keeps one subject's events in order on one partition.
            key: event.partition_key.clone(),
            // Scoped by source like the gateway's own claim: two sources sharing a stream may
            // carry the same provider id, and JetStream would take the second for a duplicate.
            dedup_key: format!("{}/{}", source.config.name, event.id),
            cloudevent: CloudEventAttributes::of(event, self.codec.fingerprint()),
            payload: self.codec.encode(event),
        }
    }

    /// Publishes under the deadline; a failure marks the publisher unhealthy until the next
    /// successful health check or publish, so `/readyz` reacts at once.
    pub(crate) async fn publish(
        &self,
        publisher: &NamedPublisher,
        message: &OutboundMessage,
    ) -> Result<(), PublishError> {
        let started = Instant::now();
        // Our deadline over the client's: a broker that neither acks nor fails must not hold the
        // answer past `publish_timeout`.
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
                publisher.metrics.acknowledged(started.elapsed());
                // As good as a health check: readiness and the request path see the broker back at
                // once.
                publisher.set_healthy(true);
            }
            Err(e) => {
                publisher.metrics.failed(e.code());
                // A refusal for good (too large, not authorised) is about the message, not the
                // broker: it must not send the publisher's other events to the spool or fail
                // readiness.
                if !matches!(e, PublishError::Rejected(_)) {
                    publisher.set_healthy(false);
                }
            }
        }
        result
    }
}
