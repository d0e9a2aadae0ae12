#![allow(clippy::unwrap_used, clippy::expect_used)] // benchmark code: a panic is a failed run
//! The in-process pipeline per provider: verify + parse + map + dedup key + Avro encode + CloudEvents
//! attributes + topic, for one webhook, on one thread, with no broker, with criterion:
//! `cargo bench --bench pipeline` prints the time per webhook of each provider; numbers go into
//! docs/performance.md. (Speed is measured here, never asserted in tests.)

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use hookbridge::event::avro::EventCodec;
use hookbridge::event::cloudevents::CloudEventAttributes;
use hookbridge::providers::{AnyProvider, Mapped, Provider, WebhookRequest};
use hookbridge::publish::topic::{TopicTemplate, TopicVars};
use time::OffsetDateTime;

/// The gateway's allocator (`src/main.rs`), so this measures the code as it runs there: with
/// glibc's malloc, a tenth of the Cronofy case's instructions were malloc and free.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

struct Case {
    name: &'static str,
    provider: AnyProvider,
    headers: HeaderMap,
    query: String,
    body: Bytes,
    received_at: OffsetDateTime,
}

fn hmac_b64(secret: &[u8], parts: &[&[u8]]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .encode(hookbridge::verify::hmac::HmacAlgorithm::Sha256.mac(secret, parts))
}

fn headers(pairs: &[(&str, String)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn provider(kind: &str, verify: &str, env: &[(&str, &str)]) -> AnyProvider {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    AnyProvider::from_config("bench", kind, &verify.parse().unwrap(), &env).unwrap()
}

/// A Cronofy `change` padded with calendar ids to about `size` bytes.
fn cronofy_body(size: usize) -> String {
    let mut ids = Vec::new();
    let mut body = String::new();
    while body.len() < size {
        ids.push(format!("\"cal_{:020}\"", ids.len()));
        body = format!(
            r#"{{"notification":{{"type":"change","changes_since":"2024-10-14T09:24:16Z"}},"channel":{{"channel_id":"chn_54cf7c7cb4ad4c1027000001","callback_url":"https://example.com/cronofy","filters":{{"calendar_ids":[{}]}}}}}}"#,
            ids.join(",")
        );
    }
    body
}

fn cases() -> Vec<Case> {
    let now = OffsetDateTime::now_utc();
    let secret = "pDY0Oi7TJSP2hfNmZNkm5";
    let cronofy = cronofy_body(1024);
    let docplanner = r#"{"name":"slot-booked","data":{"facility":{"id":"1","name":"Sample hospital"},"doctor":{"id":"123","name":"Sample","surname":"Doctor 123"},"address":{"id":"111","name":"Example hospital","street":"Some street","post_code":"xx-xxx"},"visit_booking":{"id":"6263715","status":"booked","start_at":"2021-05-26T16:00:00+01:00","end_at":"2021-05-26T16:30:00+01:00","duration":30,"booked_by":"user","canceled_by":"","booked_at":"2021-05-12T10:18:24+01:00","address_service":{"id":"243665","name":"biopsja nerki","price":50,"is_price_from":false,"is_visible":true},"patient":{"name":"Abraham","surname":"Lincoln","email":"example@example.com","phone":"+48123123123","birth_date":"1985-01-01","nin":"894237492","gender":"m","insurance_number":"CARD-7654321"},"comment":"Additional information about the visit","insurance":{"id":"1","name":"Sample Insurance 1","plan":"","plan_id":""}}},"created_at":"2021-05-12T10:18:34+01:00"}"#;
    let sns_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sns");
    let sns =
        std::fs::read_to_string(format!("{sns_dir}/test-notification-signature-v2.json")).unwrap();
    let sk_payload = {
        use base64::Engine as _;
        let json = format!(
            r#"{{"obj":{{"client":{{"id":"abc"}},"links":[]}},"company_id":"c2ew4mSlCr4lENabxfpGMl","issued_at":"{}","access_token":"bf77b03c31f003f1d852b3e0bac87345","algorithm":"HMAC-SHA256"}}"#,
            now.format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        );
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    };
    let sk_sig = hex::encode(
        hookbridge::verify::hmac::HmacAlgorithm::Sha256
            .mac(b"app-secret", &[sk_payload.as_bytes()]),
    );
    let ts = now.unix_timestamp().to_string();
    let sw_body = r#"{"type":"invoice.paid","data":{"id":"in_1","amount":1200}}"#;
    let sw_key = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .unwrap()
    };
    vec![
        Case {
            name: "cronofy (1 KiB)",
            provider: provider("cronofy", r#"client_secrets = ["env:S"]"#, &[("S", secret)]),
            headers: headers(&[("cronofy-hmac-sha256", hmac_b64(secret.as_bytes(), &[cronofy.as_bytes()]))]),
            query: String::new(),
            body: Bytes::from(cronofy),
            received_at: now,
        },
        Case {
            name: "timetap SNS (cached cert)",
            provider: provider(
                "timetap",
                &format!(
                    "topic_arns = [\"arn:aws:sns:us-west-2:131990247566:dongie-standard-topic\"]\ncert_dir = \"{sns_dir}\"\nfetch_certs = false\ncheck_cert_validity = false\ntimestamp_tolerance_secs = 315360000"
                ),
                &[],
            ),
            headers: headers(&[("x-amz-sns-message-type", "Notification".into())]),
            query: String::new(),
            body: Bytes::from(sns),
            received_at: now,
        },
        Case {
            name: "service_optimizer",
            provider: provider("service_optimizer", r#"tokens = ["env:T"]"#, &[("T", "so-token-123")]),
            headers: headers(&[("authorization", "so-token-123".into())]),
            query: String::new(),
            body: Bytes::from_static(br#"{ "Type": "0", "WorkItemType": "1", "WorkItem": { "Id": "J-1001", "WorkStatus": "10" } }"#),
            received_at: now,
        },
        Case {
            name: "docplanner",
            provider: provider("docplanner", r#"api_key_header = "X-Api-Key"
api_keys = ["env:K"]"#, &[("K", "dp-key")]),
            headers: headers(&[("x-api-key", "dp-key".into())]),
            query: String::new(),
            body: Bytes::from_static(docplanner.as_bytes()),
            received_at: now,
        },
        Case {
            name: "salesking",
            provider: provider("salesking", r#"secrets = ["env:K"]
channel = "client.create""#, &[("K", "app-secret")]),
            headers: HeaderMap::new(),
            query: String::new(),
            body: Bytes::from(format!("signed_request={sk_sig}.{sk_payload}")),
            received_at: now,
        },
        Case {
            name: "standard_webhooks",
            provider: provider("standard_webhooks", r#"secrets = ["env:K"]"#, &[("K", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]),
            headers: headers(&[
                ("webhook-id", "msg_1".into()),
                ("webhook-timestamp", ts.clone()),
                ("webhook-signature", format!("v1,{}", hmac_b64(&sw_key, &[format!("msg_1.{ts}.").as_bytes(), sw_body.as_bytes()]))),
            ]),
            query: String::new(),
            body: Bytes::from_static(sw_body.as_bytes()),
            received_at: now,
        },
    ]
}

/// verify → map → encode → CloudEvents → topic, the in-process part of a webhook.
async fn once(case: &Case, codec: &EventCodec, topic: &TopicTemplate) -> usize {
    let request = WebhookRequest {
        method: "POST",
        headers: &case.headers,
        query: &case.query,
        body: &case.body,
        peer: None,
        received_at: case.received_at,
    };
    let verified = case
        .provider
        .verify(&request)
        .await
        .expect("the case verifies");
    let Mapped::Event(event) = case
        .provider
        .map("bench", verified)
        .await
        .expect("the case maps")
    else {
        panic!("{} did not map to an event", case.name)
    };
    let payload = codec.encode(&event);
    let attributes = CloudEventAttributes::of(&event, codec.fingerprint());
    let topic = topic.render(&TopicVars {
        source: "bench",
        provider: event.provider,
        event_type: &event.event_type,
    });
    payload.len() + attributes.attributes.len() + topic.len()
}

/// One criterion benchmark per provider. Under `cargo test --all-targets` criterion runs each once
/// (test mode), which checks that every case still verifies and maps.
fn pipeline(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let codec = EventCodec::get().unwrap();
    let topic = TopicTemplate::parse("webhooks.{provider}.{type}").unwrap();
    let mut group = c.benchmark_group("pipeline");
    for case in &cases() {
        group.throughput(Throughput::Elements(1));
        group.bench_function(case.name, |b| {
            // One runtime entry per batch, not per webhook: the futures never wait, and entering
            // the runtime would otherwise be a good part of what is measured.
            b.iter_custom(|iterations| {
                runtime.block_on(async {
                    let started = Instant::now();
                    for _ in 0..iterations {
                        black_box(once(case, codec, &topic).await);
                    }
                    started.elapsed()
                })
            });
        });
    }
    group.finish();
}

/// The Cronofy case stage by stage, so the profile's split is on record: each stage includes the
/// ones before it.
fn cronofy_stages(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let codec = EventCodec::get().unwrap();
    let cases = cases();
    let case = &cases[0];
    let request = WebhookRequest {
        method: "POST",
        headers: &case.headers,
        query: &case.query,
        body: &case.body,
        peer: None,
        received_at: case.received_at,
    };
    let mut group = c.benchmark_group("cronofy stages");
    let mut stage = |name: &str, upto: u8| {
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                runtime.block_on(async {
                    let started = Instant::now();
                    for _ in 0..iterations {
                        let verified = case.provider.verify(&request).await.unwrap();
                        if upto == 0 {
                            black_box(verified);
                            continue;
                        }
                        let mapped = case.provider.map("bench", verified).await.unwrap();
                        if let (Mapped::Event(event), 2) = (&mapped, upto) {
                            black_box(codec.encode(event));
                        }
                        black_box(mapped);
                    }
                    started.elapsed()
                })
            });
        });
    };
    stage("1 verify (HMAC-SHA256)", 0);
    stage("2 + map (JSON parse, dedup key)", 1);
    stage("3 + Avro encode", 2);
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = pipeline, cronofy_stages
}
criterion_main!(benches);
