//! The generic family end to end: presets against their published vectors, the custom schemes,
//! and config mistakes naming their key.

use std::collections::BTreeSet;

use actix_web::http::header::HeaderMap;
use bytes::Bytes;
use time::OffsetDateTime;

use super::*;
use crate::event::EventId;
use crate::providers::{block_on, expect_event};
use crate::verify::test_headers as headers;

fn build(kind: &str, extra: &str, secrets: &[(&str, &str)]) -> Generic {
    let env: HashMap<String, String> = secrets
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let table: toml::Table = extra.parse().unwrap();
    Generic::from_config("sources.t.verify", kind, &table, &env).unwrap_or_else(|e| panic!("{e:?}"))
}

fn request<'a>(
    headers: &'a HeaderMap,
    body: &'a Bytes,
    query: &'a str,
    now: i64,
) -> WebhookRequest<'a> {
    WebhookRequest {
        method: "POST",
        headers,
        query,
        body,
        peer: None,
        received_at: OffsetDateTime::from_unix_timestamp(now).unwrap(),
    }
}

/// One signed GitHub delivery replayed with fresh delivery ids and invented event names: one
/// dedup key, and only GitHub's published names as types (the rest `github.other`).
#[test]
fn unsigned_headers_steer_neither_the_dedup_key_nor_the_type() {
    let g = build(
        "github",
        r#"secrets = ["env:GH"]"#,
        &[("GH", "It's a Secret to Everybody")],
    );
    let body = Bytes::from_static(b"Hello, World!");
    let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    let mut ids = BTreeSet::new();
    let mut types = BTreeSet::new();
    for (n, event) in ["push", "made-up-1", "made-up-2", "issues"]
        .iter()
        .enumerate()
    {
        let delivery = format!("00000000-0000-0000-0000-{n:012}");
        let h = headers(&[
            ("x-hub-signature-256", sig),
            ("x-github-event", event),
            ("x-github-delivery", &delivery),
        ]);
        let req = request(&h, &body, "", 1_700_000_000);
        let verified = block_on(g.verify(&req)).unwrap();
        let mapped = expect_event(block_on(g.map("gh", verified)).unwrap());
        ids.insert(mapped.id.to_string());
        types.insert(mapped.event_type);
    }
    assert_eq!(ids.len(), 1, "one event whatever the delivery id");
    assert_eq!(
        types.into_iter().collect::<Vec<_>>(),
        ["github.other", "issues", "push"]
    );
    // A generic HMAC source reading its type from a header must list the names.
    let env = HashMap::from([("S".to_owned(), "k".to_owned())]);
    let table: toml::Table =
        "scheme = \"hmac\"\nsecrets = [\"env:S\"]\nheader = \"X-Sig\"\ntype_header = \"X-Type\""
            .parse()
            .unwrap();
    let issues = Generic::from_config("sources.t.verify", "generic", &table, &env).unwrap_err();
    assert!(issues[0].key.ends_with("type_names"), "{issues:?}");
}

/// GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!".
#[test]
fn github_preset_verifies_the_documented_vector() {
    let g = build(
        "github",
        r#"secrets = ["env:GH"]"#,
        &[("GH", "It's a Secret to Everybody")],
    );
    let body = Bytes::from_static(b"Hello, World!");
    let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    let h = headers(&[
        ("x-hub-signature-256", sig),
        ("x-github-event", "push"),
        ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
    ]);
    let req = request(&h, &body, "", 1_700_000_000);
    let verified = block_on(g.verify(&req)).unwrap();
    let event = expect_event(block_on(g.map("gh", verified)).unwrap());
    assert_eq!(event.event_type, "push");
    // The delivery id is not signed: kept for tracing, never the dedup key.
    assert_eq!(event.id, EventId::from_content("gh", &[b"Hello, World!"]));
    assert_eq!(
        event.attributes.get("delivery_id").map(String::as_str),
        Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
    );
    let wrong = headers(&[(
        "x-hub-signature-256",
        "sha256=657107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    )]);
    assert_eq!(
        block_on(g.verify(&request(&wrong, &body, "", 0))).err(),
        Some(VerifyError::BadSignature("X-Hub-Signature-256"))
    );
    let no_prefix = headers(&[(
        "x-hub-signature-256",
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    )]);
    assert!(block_on(g.verify(&request(&no_prefix, &body, "", 0))).is_err());
}

/// The Standard Webhooks specification's example (libraries' shared test vector).
#[test]
fn standard_webhooks_preset_verifies_the_spec_vector() {
    let g = build(
        "standard_webhooks",
        r#"secrets = ["env:SW"]"#,
        &[("SW", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")],
    );
    let body = Bytes::from_static(br#"{"test": 2432232314}"#);
    let h = headers(&[
        ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
        ("webhook-timestamp", "1614265330"),
        (
            "webhook-signature",
            "v1,bogus v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        ),
    ]);
    assert!(block_on(g.verify(&request(&h, &body, "", 1_614_265_330))).is_ok());
    // Same request, an hour later: outside the 5-minute window.
    assert_eq!(
        block_on(g.verify(&request(&h, &body, "", 1_614_268_930))).err(),
        Some(VerifyError::TimestampTooOld)
    );
    assert_eq!(
        block_on(g.verify(&request(&h, &body, "", 1_614_261_730))).err(),
        Some(VerifyError::TimestampInFuture)
    );
}

/// Stripe's scheme: `t=<ts>,v1=<hex>`, message `<ts>.<body>`; the digest computed independently.
#[test]
fn stripe_preset_checks_timestamp_and_any_v1() {
    use hmac::{KeyInit, Mac};
    let g = build("stripe", r#"secrets = ["env:ST"]"#, &[("ST", "whsec_test")]);
    let body = Bytes::from_static(br#"{"id":"evt_1","type":"invoice.paid","created":1700000000}"#);
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(b"whsec_test").unwrap();
    mac.update(b"1700000000.");
    mac.update(&body);
    let v1 = hex::encode(mac.finalize().into_bytes());
    let h = headers(&[(
        "stripe-signature",
        &format!("t=1700000000,v1=deadbeef,v1={v1}"),
    )]);
    let req = request(&h, &body, "", 1_700_000_100);
    let verified = block_on(g.verify(&req)).unwrap();
    let event = expect_event(block_on(g.map("st", verified)).unwrap());
    assert_eq!(
        (event.event_type.as_str(), event.id.as_str()),
        ("invoice.paid", "evt_1")
    );
    assert_eq!(
        event.occurred_at.map(|t| t.unix_timestamp()),
        Some(1_700_000_000)
    );
    let tampered = headers(&[("stripe-signature", &format!("t=1700000001,v1={v1}"))]);
    assert_eq!(
        block_on(g.verify(&request(&tampered, &body, "", 1_700_000_100))).err(),
        Some(VerifyError::BadSignature("Stripe-Signature"))
    );
    let missing_t = headers(&[("stripe-signature", &format!("v1={v1}"))]);
    assert_eq!(
        block_on(g.verify(&request(&missing_t, &body, "", 1_700_000_100))).err(),
        Some(VerifyError::MissingTimestamp)
    );
}

#[test]
fn token_in_query_or_header_and_basic_auth() {
    let t = build(
        "generic",
        r#"scheme = "token"
query = "token"
secrets = ["env:T"]
event_type = "ping""#,
        &[("T", "s3cret")],
    );
    let body = Bytes::from_static(b"{}");
    let none = HeaderMap::new();
    assert!(block_on(t.verify(&request(&none, &body, "token=s3cret", 0))).is_ok());
    assert_eq!(
        block_on(t.verify(&request(&none, &body, "token=nope", 0))).err(),
        Some(VerifyError::BadCredential("token"))
    );
    assert_eq!(
        block_on(t.verify(&request(&none, &body, "", 0))).err(),
        Some(VerifyError::MissingCredential("token"))
    );

    let b = build(
        "generic",
        r#"scheme = "basic"
username = "hook"
secrets = ["env:P"]
event_type = "ping""#,
        &[("P", "pw")],
    );
    let ok = headers(&[("authorization", "Basic aG9vazpwdw==")]);
    assert!(block_on(b.verify(&request(&ok, &body, "", 0))).is_ok());
    let bad = headers(&[("authorization", "Basic aG9vazp4")]);
    assert_eq!(
        block_on(b.verify(&request(&bad, &body, "", 0))).err(),
        Some(VerifyError::BadCredential("basic"))
    );
}

#[test]
fn config_mistakes_name_their_key() {
    let table: toml::Table = r#"scheme = "hmac"
secrets = ["env:X"]
message = "{timestamp}.{body}""#
        .parse()
        .unwrap();
    let env = HashMap::from([("X".to_owned(), "x".to_owned())]);
    let err = Generic::from_config("sources.t.verify", "generic", &table, &env).unwrap_err();
    assert_eq!(err[0].key, "sources.t.verify.header");
    let table: toml::Table = r#"secrets = ["env:X"]
colour = "blue""#
        .parse()
        .unwrap();
    let err = Generic::from_config("sources.t.verify", "github", &table, &env).unwrap_err();
    assert!(err[0].key.starts_with("sources.t.verify"), "{err:?}");
}
