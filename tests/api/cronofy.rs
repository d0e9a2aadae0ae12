//! Cronofy end to end: a signed webhook becomes one Avro event on NATS JetStream and on Kafka, with
//! every field and CloudEvents header checked by a real consumer.

use std::time::Duration;

use apache_avro::types::Value;

use crate::brokers::{KafkaBroker, NatsServer};
use crate::consumers::{Consumed, read_kafka, read_nats};
use crate::helpers::{
    AppOptions, CRONOFY_OLD_SECRET, CRONOFY_SECRET, cronofy_change, cronofy_sign, spawn_app,
};

const WAIT: Duration = Duration::from_secs(10);

/// Fields and headers every Cronofy `change` event must carry, whatever the broker.
fn assert_change_event(event: &Consumed, channel: &str, body: &str) {
    assert_eq!(event.string("source"), "cronofy");
    assert_eq!(event.string("provider"), "cronofy");
    assert_eq!(event.string("type"), "calendar.changed");
    assert_eq!(event.string("provider_type"), "change");
    assert_eq!(event.string("subject"), channel);
    let id = event.string("id");
    assert!(id.starts_with("sha256:") && id.len() == 7 + 64, "{id}");
    // 2024-10-14T09:24:16Z in microseconds.
    assert_eq!(
        event.field("occurred_at"),
        &Value::Union(1, Box::new(Value::TimestampMicros(1_728_897_856_000_000)))
    );
    match event.field("received_at") {
        Value::TimestampMicros(t) => assert!(*t > 1_728_897_856_000_000, "received_at {t}"),
        other => panic!("received_at is {other:?}"),
    }
    assert_eq!(
        event.field("payload"),
        &Value::Bytes(body.as_bytes().to_vec())
    );
    assert_eq!(event.string("payload_content_type"), "application/json");
    match event.field("data") {
        Value::Union(1, record) => match record.as_ref() {
            Value::Record(fields) => {
                let f: std::collections::BTreeMap<_, _> = fields.iter().cloned().collect();
                assert_eq!(f["kind"], Value::String("change".into()));
                assert_eq!(
                    f["channel_id"],
                    Value::Union(1, Box::new(Value::String(channel.into())))
                );
                assert_eq!(
                    f["calendar_ids"],
                    Value::Array(vec![Value::String("cal_n23kjnwrw2_sakdnawerd3".into())])
                );
            }
            other => panic!("data branch is {other:?}"),
        },
        other => panic!("data is {other:?}, expected the CalendarChange branch"),
    }
}

/// CloudEvents attributes under a binding's prefix (`ce_` Kafka, `ce-` NATS).
fn assert_cloudevents(event: &Consumed, prefix: &str) {
    let h = |name: &str| event.header(&format!("{prefix}{name}")).to_owned();
    assert_eq!(h("specversion"), "1.0");
    assert_eq!(h("id"), event.string("id"));
    assert_eq!(h("source"), "/hookbridge/sources/cronofy");
    assert_eq!(h("type"), "io.hookbridge.calendar.changed");
    assert_eq!(h("time"), "2024-10-14T09:24:16Z");
    assert_eq!(h("subject"), event.string("subject"));
    assert!(
        h("dataschema").starts_with("urn:avro:io.hookbridge.v1.Event:rabin:"),
        "{}",
        h("dataschema")
    );
    assert_eq!(
        event.header("content-type"),
        "application/avro;schema=io.hookbridge.v1.Event"
    );
}

/// A signed Cronofy change notification reaches NATS JetStream exactly once, with the dedup key
/// as `Nats-Msg-Id`.
#[tokio::test]
async fn cronofy_change_is_published_to_nats_with_every_field_and_header() {
    let nats = NatsServer::start();
    let app = spawn_app(AppOptions {
        nats_url: Some(nats.url()),
        ..Default::default()
    })
    .await;
    let body = cronofy_change("chn_nats_1");

    let response = app
        .post_cronofy("cronofy", &body, Some(&cronofy_sign(CRONOFY_SECRET, &body)))
        .await;

    assert_eq!(response.status().as_u16(), 200);
    let reply: serde_json::Value = response.json().await.unwrap();
    assert_eq!(reply["status"], "published");
    let events = read_nats(
        &nats.url(),
        &app.stream,
        &app.cronofy_topic("calendar.changed"),
        1,
        WAIT,
    )
    .await;
    assert_eq!(events.len(), 1, "exactly one event: {events:?}");
    let event = &events[0];
    assert_eq!(event.destination, app.cronofy_topic("calendar.changed"));
    assert_change_event(event, "chn_nats_1", &body);
    assert_cloudevents(event, "ce-");
    // Scoped by source: another source sharing the stream may carry the same provider id.
    assert_eq!(
        event.header("Nats-Msg-Id"),
        format!("cronofy/{}", event.string("id"))
    );
    assert_eq!(reply["event_id"], event.string("id"));
    assert_eq!(
        app.metric(
            "hookbridge_webhooks_total",
            &[("source", "cronofy"), ("outcome", "published")]
        ),
        1.0
    );
}

/// The same path through Kafka: idempotent producer, record key = subject, `ce_*` headers.
#[tokio::test]
async fn cronofy_change_is_published_to_kafka_with_every_field_and_header() {
    let kafka = KafkaBroker::shared();
    let app = spawn_app(AppOptions {
        kafka_bootstrap: Some(kafka.bootstrap()),
        publisher: "kafka",
        publish_timeout_ms: 5_000,
        ..Default::default()
    })
    .await;
    let body = cronofy_change("chn_kafka_1");

    let response = app
        .post_cronofy("cronofy", &body, Some(&cronofy_sign(CRONOFY_SECRET, &body)))
        .await;

    assert_eq!(
        response.status().as_u16(),
        200,
        "{:?}",
        response.text().await
    );
    let events = read_kafka(
        &kafka.bootstrap(),
        &app.cronofy_topic("calendar.changed"),
        1,
        WAIT,
    )
    .await;
    assert_eq!(events.len(), 1, "exactly one event: {events:?}");
    let event = &events[0];
    assert_eq!(event.destination, app.cronofy_topic("calendar.changed"));
    assert_change_event(event, "chn_kafka_1", &body);
    assert_cloudevents(event, "ce_");
    assert_eq!(
        event.key.as_deref(),
        Some("chn_kafka_1"),
        "record key is the partition key"
    );
    assert_eq!(event.header("ce_partitionkey"), "chn_kafka_1");
    assert_eq!(
        event.header("hookbridge_dedup_key"),
        format!("cronofy/{}", event.string("id"))
    );
}

/// During a rotation Cronofy sends one signature per active secret, and we may hold two secrets:
/// a header whose only valid value is made with our *second* secret is accepted.
#[tokio::test]
async fn cronofy_webhook_signed_with_rotated_secret_is_published_once() {
    let nats = NatsServer::start();
    let app = spawn_app(AppOptions {
        nats_url: Some(nats.url()),
        ..Default::default()
    })
    .await;
    let body = cronofy_change("chn_rotation");
    let header = format!(
        "{},{}",
        cronofy_sign("retired-secret", &body),
        cronofy_sign(CRONOFY_OLD_SECRET, &body)
    );

    let response = app.post_cronofy("cronofy", &body, Some(&header)).await;

    assert_eq!(response.status().as_u16(), 200);
    let events = read_nats(
        &nats.url(),
        &app.stream,
        &app.cronofy_topic("calendar.changed"),
        1,
        WAIT,
    )
    .await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].string("subject"), "chn_rotation");
}

/// Forged, missing or malformed signatures: 401 with a reason code, a counted failure, and
/// nothing on the broker. The body never echoes the signature or the secret.
#[tokio::test]
async fn cronofy_webhook_with_bad_signature_is_401_and_not_published() {
    let nats = NatsServer::start();
    let app = spawn_app(AppOptions {
        nats_url: Some(nats.url()),
        ..Default::default()
    })
    .await;
    let body = cronofy_change("chn_forged");
    let forged = cronofy_sign("not-the-secret", &body);
    let cases: [(Option<&str>, &str); 4] = [
        (Some(forged.as_str()), "bad_signature"),
        (None, "missing_signature"),
        (Some("not base64 at all"), "malformed_signature"),
        // The right digest under the URL-safe alphabet is still not Cronofy's encoding.
        (
            Some("6r2_HjBkqymGegX0wOfifieeUXbbHwtV_LohHS-jv6c="),
            "malformed_signature",
        ),
    ];
    for (signature, code) in cases {
        let response = app.post_cronofy("cronofy", &body, signature).await;
        assert_eq!(response.status().as_u16(), 401, "signature {signature:?}");
        let text = response.text().await.unwrap();
        let reply: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(reply["code"], code, "signature {signature:?}: {text}");
        assert!(
            !text.contains(CRONOFY_SECRET) && !text.contains(&forged),
            "reply echoes secrets: {text}"
        );
        assert!(
            app.metric(
                "hookbridge_verification_failures_total",
                &[("source", "cronofy"), ("reason", code)]
            ) >= 1.0,
            "failure counted under {code}"
        );
    }
    assert_eq!(
        app.metric(
            "hookbridge_webhooks_total",
            &[("source", "cronofy"), ("outcome", "rejected")]
        ),
        4.0
    );
    let events = read_nats(
        &nats.url(),
        &app.stream,
        &format!("{}.>", app.prefix),
        0,
        Duration::from_millis(500),
    )
    .await;
    assert!(events.is_empty(), "nothing may be published: {events:?}");
}

/// An authentic webhook whose payload is not a Cronofy notification is not lost: it is answered 202
/// and kept on the source's dead-letter topic with the reason, while nothing reaches the event topic.
#[tokio::test]
async fn cronofy_webhook_with_malformed_payload_is_dead_lettered_not_published() {
    let nats = NatsServer::start();
    let app = spawn_app(AppOptions {
        nats_url: Some(nats.url()),
        ..Default::default()
    })
    .await;
    let cases = [
        ("{\"notification\":", "invalid_json"),
        ("{\"channel\":{}}", "missing_field"),
    ];
    for (body, code) in cases {
        let response = app
            .post_cronofy("cronofy", body, Some(&cronofy_sign(CRONOFY_SECRET, body)))
            .await;
        assert_eq!(response.status().as_u16(), 202);
        let reply: serde_json::Value = response.json().await.unwrap();
        assert_eq!(
            (reply["status"].as_str(), reply["code"].as_str()),
            (Some("dead_lettered"), Some(code))
        );
    }
    assert_eq!(
        app.metric(
            "hookbridge_webhooks_total",
            &[("source", "cronofy"), ("outcome", "dead_lettered")]
        ),
        2.0
    );
    assert_eq!(
        app.metric(
            "hookbridge_dead_letters_total",
            &[
                ("source", "cronofy"),
                ("stage", "map"),
                ("reason", "invalid_json")
            ]
        ),
        1.0
    );
    let letters = crate::consumers::read_raw_nats(
        &nats.url(),
        &app.stream,
        &format!("{}.dead_letter.cronofy", app.prefix),
        2,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(letters.len(), 2);
    let codec = hookbridge::dead_letter::DeadLetterCodec::get().unwrap();
    for ((body, code), raw) in cases.iter().zip(&letters) {
        let letter = codec.decode(&raw.payload).unwrap();
        assert_eq!(
            (
                letter.source.as_str(),
                letter.stage.as_str(),
                letter.reason_code.as_str()
            ),
            ("cronofy", "map", *code)
        );
        assert_eq!(
            &letter.body[..],
            body.as_bytes(),
            "the body is kept for a redrive"
        );
        assert!(
            letter.headers.contains_key("cronofy-hmac-sha256"),
            "per-message signature kept: {:?}",
            letter.headers
        );
        assert_eq!(
            raw.headers.get("content-type").map(String::as_str),
            Some(hookbridge::dead_letter::DEAD_LETTER_CONTENT_TYPE)
        );
    }
    let events = read_nats(
        &nats.url(),
        &app.stream,
        &app.cronofy_topic(">"),
        0,
        Duration::from_millis(500),
    )
    .await;
    assert!(
        events.is_empty(),
        "nothing may be published as an event: {events:?}"
    );
}
