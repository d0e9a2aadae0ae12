//! Dead letters: what a verified webhook becomes when it cannot be mapped, or when the broker
//! refuses it for good. Kept on the source's dead-letter topic (spooled if the broker is down),
//! answered 2xx, and recoverable with `hookbridge redrive`.

use super::*;
use crate::event::cloudevents::Envelope;

impl Pipeline {
    /// The dead letter for a webhook: the body with the provider's secrets removed, and only the
    /// headers the provider lists: per-message MACs, so authenticity stays checkable, never static
    /// credentials.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn letter(
        &self,
        source: &Source,
        request: &WebhookRequest<'_>,
        stage: Stage,
        code: &str,
        message: String,
        event_id: Option<&str>,
        topic: Option<&str>,
    ) -> DeadLetter {
        let provider = &source.config.provider;
        DeadLetter::new(DeadLetterInput {
            source: &source.config.name,
            provider: provider.kind(),
            stage,
            reason_code: code,
            reason_message: message,
            received_at: request.received_at,
            body: provider.redact_for_dead_letter(request.body),
            body_content_type: crate::dead_letter::body_content_type(request.headers),
            headers: request.headers,
            provider_headers: provider.dead_letter_headers(),
            event_id,
            topic,
        })
    }

    /// Publishes a dead letter to the source's dead-letter topic (spooling it if the broker is down
    /// and the source spools). Answered 2xx: the webhook is kept, the provider must not resend.
    pub async fn dead_letter(
        &self,
        source: &Source,
        letter: DeadLetter,
    ) -> Result<Accepted, PipelineError> {
        let name = source.config.name.as_str();
        let codec = DeadLetterCodec::get()
            .map_err(|e| PipelineError::Encode(EncodeError::from(e.to_string())))?;
        let payload = codec
            .encode(&letter)
            .map_err(|e| PipelineError::Encode(EncodeError::from(e.to_string())))?;
        let topic = source.config.dead_letter_topic.render(&TopicVars {
            source: name,
            provider: source.config.provider.kind(),
            event_type: "dead_letter",
        });
        let message = OutboundMessage {
            topic,
            // Keyed by source, so one source's dead letters share a Kafka partition and keep their
            // order; the letter's own id is its broker-side dedup key.
            key: name.to_owned(),
            dedup_key: letter.id.clone(),
            cloudevent: CloudEventAttributes::of_envelope(&Envelope {
                id: &letter.id,
                source: name,
                event_type: "dead_letter",
                time: letter.received_at,
                schema_name: DEAD_LETTER_SCHEMA_NAME,
                schema_fingerprint: codec.fingerprint(),
                content_type: DEAD_LETTER_CONTENT_TYPE,
            }),
            payload,
        };
        let stage = letter.stage.as_str();
        let reason = letter.reason_code.clone();
        // Only a transient failure spools, and only for a spooling source. A letter the broker
        // refuses for good has nowhere further to go: an error (503), nothing promised.
        let delivered = match self.publish(&source.publisher, &message).await {
            Ok(()) => Ok(()),
            Err(e) => match (&self.spool, e) {
                (Some(spool), PublishError::Timeout(_) | PublishError::Unavailable(_))
                    if source.config.on_broker_failure == BrokerFailure::Spool =>
                {
                    let entry = SpoolEntry {
                        publisher: source.publisher.name.clone(),
                        source: name.to_owned(),
                        dedup_key: letter.id.clone(),
                        // The drainer publishes it without a claim: dead letters are not in the
                        // dedup store.
                        claim_window: None,
                        message,
                    };
                    let spool = spool.clone();
                    // redb's commit blocks on fsync: off the async workers. A spool task that
                    // panicked is a storage failure (503), never a 2xx for a letter kept nowhere.
                    tokio::task::spawn_blocking(move || spool.push(&entry))
                        .await
                        .unwrap_or_else(|e| Err(SpoolError::Storage(format!("spool task: {e}"))))
                        .map(|_| ())
                        .map_err(PipelineError::Spool)
                }
                (_, e) => Err(PipelineError::Publish(e)),
            },
        };
        delivered?;
        // Counted only once the letter is kept (published or spooled).
        self.metrics.dead_lettered(name, stage, &reason);
        tracing::warn!(source = name, stage, reason = %reason, dead_letter = %letter.id, "dead-lettered");
        Ok(Accepted::DeadLettered {
            code: letter.reason_code,
        })
    }
}
