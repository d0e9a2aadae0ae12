//! The seeds of the targets that decode what hookbridge writes or reads: dead letters, spool
//! entries and configs.

use hookbridge::dead_letter::{DeadLetter, DeadLetterCodec, DeadLetterInput, Stage};
use hookbridge::event::avro::EVENT_CONTENT_TYPE;
use hookbridge::event::cloudevents::CloudEventAttributes;
use hookbridge::fuzzing::{self, Framed};
use hookbridge::publish::OutboundMessage;
use hookbridge::spool::SpoolEntry;

use super::Seeds;

/// One dead letter for each of `requests`.
pub(super) fn dead_letter_seeds(requests: &[(String, Vec<u8>)], out: &mut Seeds) {
    // Dead letters as the pipeline writes them, one per request, for the source it came to.
    let codec = DeadLetterCodec::get().unwrap();
    for (name, data) in requests {
        let source = match name.split('-').next().unwrap() {
            "cronofy" => "cronofy",
            "timetap" => "timetap",
            "service_optimizer" => "service-optimizer",
            "docplanner" => "docplanner",
            "salesking" => "salesking",
            _ => "github",
        };
        let request = Framed::parse(data);
        let publish = name.len() % 2 == 0;
        let letter = DeadLetter::new(DeadLetterInput {
            source,
            provider: "fuzz",
            stage: if publish { Stage::Publish } else { Stage::Map },
            reason_code: "missing_field",
            reason_message: "payload has no id".into(),
            received_at: fuzzing::NOW,
            body: request.body.clone(),
            body_content_type: "application/json",
            headers: &request.headers,
            // Every header some provider keeps, as the one global list of old did.
            provider_headers: &[
                "x-amz-sns-message-type",
                "x-amz-sns-message-id",
                "x-amz-sns-topic-arn",
                "x-amz-sns-subscription-arn",
                "x-github-event",
                "x-github-delivery",
                "x-hub-signature-256",
                "cronofy-hmac-sha256",
                "stripe-signature",
                "webhook-id",
                "webhook-timestamp",
                "webhook-signature",
            ],
            event_id: publish.then_some("sha256:0123"),
            topic: publish.then_some("webhooks.fuzz.thing"),
        });
        out.push(("dead_letter", name.clone(), codec.encode(&letter).unwrap()));
    }
}

/// Spool entries.
pub(super) fn spool_entry_seeds(out: &mut Seeds) {
    // Spool entries: an event and a dead letter.
    for (name, content_type) in [
        ("event", EVENT_CONTENT_TYPE),
        (
            "dead-letter",
            hookbridge::dead_letter::DEAD_LETTER_CONTENT_TYPE,
        ),
    ] {
        let entry = SpoolEntry {
            publisher: "nats".into(),
            source: "docplanner".into(),
            dedup_key: "docplanner/sha256:ab".into(),
            claim_window: None,
            message: OutboundMessage {
                topic: "webhooks.docplanner.appointment.booked".into(),
                key: "6263715".into(),
                dedup_key: "sha256:ab".into(),
                cloudevent: CloudEventAttributes {
                    attributes: vec![
                        ("specversion", "1.0".into()),
                        ("id", "sha256:ab".into()),
                        ("type", "appointment.booked".into()),
                        ("x-unknown", "dropped".into()),
                    ],
                    content_type,
                },
                payload: vec![0, 2, 4, 0xff, 0x80],
            },
        };
        out.push(("spool_entry", name.to_owned(), entry.encode()));
    }
}

/// Configs.
pub(super) fn config_seeds(out: &mut Seeds) {
    // Configs: the harness's own (with a directory that exists everywhere for cert_dir), plus
    // environment overrides. `scripts/fuzz` adds hookbridge.example.toml as it is on each run, so
    // that editing the example does not make these seeds stale.
    let harness = fuzzing::HARNESS_CONFIG.replace("{sns}", "/");
    out.push(("config", "harness".into(), harness.clone().into_bytes()));
    out.push((
        "config",
        "env-overrides".into(),
        format!(
            "#env HOOKBRIDGE__SERVER__LISTEN=127.0.0.1:9\n#env HOOKBRIDGE__SERVER__PUBLISH_TIMEOUT_MS=250\n#env HOOKBRIDGE__SOURCES__GITHUB__VERIFY__SECRETS=[\"env:G_ST\"]\n{harness}"
        )
        .into_bytes(),
    ));
}
