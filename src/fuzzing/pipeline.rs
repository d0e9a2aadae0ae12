//! The pipeline's steps up to the broker, as the harnesses run them: no dedup, no broker, no clock,
//! and one current-thread runtime for the providers' futures.

use std::sync::OnceLock;

use crate::config::SourceConfig;
use crate::dead_letter::{DeadLetter, DeadLetterCodec, DeadLetterInput, Stage};
use crate::event::avro::EventCodec;
use crate::event::cloudevents::CloudEventAttributes;
use crate::providers::{Mapped, Provider, Verified, WebhookRequest};
use crate::publish::topic::TopicVars;

/// The pipeline's path for one source up to the broker: allowlist → verify → map → encode (or the
/// dead letter a mapping failure becomes). Returns what happened, for the regression test.
pub(super) async fn verify_and_map(source: &SourceConfig, request: &WebhookRequest<'_>) -> String {
    if let Some(allow) = &source.allow
        && let Err(e) = allow.check(request.peer, request.headers)
    {
        return e.code().to_owned();
    }
    match source.provider.verify(request).await {
        Ok(verified) => map_and_encode(source, request, verified).await,
        Err(e) => e.code().to_owned(),
    }
}

/// `Pipeline::map_and_deliver` without dedup and the broker: the event encoded as it would be
/// published, or a mapping failure built into its dead letter and encoded.
pub(super) async fn map_and_encode(
    source: &SourceConfig,
    request: &WebhookRequest<'_>,
    verified: Verified<'_>,
) -> String {
    match source.provider.map(&source.name, verified).await {
        Ok(Mapped::Event(event)) => {
            let topic = source.topic.render(&TopicVars {
                source: &event.source,
                provider: event.provider,
                event_type: &event.event_type,
            });
            if let Ok(codec) = EventCodec::get() {
                let _attributes = CloudEventAttributes::of(&event, codec.fingerprint());
                // The hand-written encoder against apache-avro's schema-driven reader, on
                // whatever the mapping made of the fuzzer's bytes.
                if let Err(e) = codec.read_one(&codec.encode(&event)) {
                    return format!("encode_failed ({topic}): {e}");
                }
            }
            "event".to_owned()
        }
        Ok(Mapped::Handled { code }) => format!("handled: {code}"),
        Ok(Mapped::Answer(reply)) => format!("handshake: {}", reply.kind),
        Err(e) => {
            let letter = DeadLetter::new(DeadLetterInput {
                source: &source.name,
                provider: source.provider.kind(),
                stage: Stage::Map,
                reason_code: e.code(),
                reason_message: e.to_string(),
                received_at: request.received_at,
                body: source.provider.redact_for_dead_letter(request.body),
                body_content_type: crate::dead_letter::body_content_type(request.headers),
                headers: request.headers,
                provider_headers: source.provider.dead_letter_headers(),
                event_id: None,
                topic: None,
            });
            if let Ok(codec) = DeadLetterCodec::get()
                && codec.encode(&letter).is_err()
            {
                return "dead_letter_encode_failed".to_owned();
            }
            e.code().to_owned()
        }
    }
}

/// Runs a provider future on one current-thread runtime, built on first use. Nothing the harnesses
/// run spawns tasks or waits on timers, so `block_on` returns as soon as the future does.
pub(super) fn block_on<F: Future<Output = String>>(future: F) -> String {
    static RUNTIME: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()
    });
    match runtime {
        Some(runtime) => runtime.block_on(future),
        None => "no_runtime".to_owned(),
    }
}
