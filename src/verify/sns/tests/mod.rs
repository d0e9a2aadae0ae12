//! End-to-end checks of [`SnsVerifier::verify`] on the real SNS messages in `tests/fixtures/sns`
//! (providers.md §1.10), with certificates from the fixture directory and no network.
//! Each test injects the clock: both fixture certificates have expired by now.
//!
//! The fixtures and helpers are here; the tests are in `signatures.rs` (what the signature
//! covers), `refusals.rs` (what is refused before or instead of verifying) and `fetches.rs`
//! (certificate fetches under concurrency).

mod fetches;
mod refusals;
mod signatures;

use std::path::PathBuf;
use std::time::Duration;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use time::OffsetDateTime;

use super::*;

const SET_A: [(&str, &str); 5] = [
    (
        "with-subject",
        include_str!("../../../../tests/fixtures/sns/test-notification-with-subject.json"),
    ),
    (
        "no-subject",
        include_str!("../../../../tests/fixtures/sns/test-notification-no-subject.json"),
    ),
    (
        "signature-v2",
        include_str!("../../../../tests/fixtures/sns/test-notification-signature-v2.json"),
    ),
    (
        "subscription",
        include_str!("../../../../tests/fixtures/sns/test-subscription-confirmation.json"),
    ),
    (
        "unsubscribe",
        include_str!("../../../../tests/fixtures/sns/test-unsubscribe-confirmation.json"),
    ),
];
const SET_B_HTTP: &str = include_str!("../../../../tests/fixtures/sns/http-fixtures.json");
const SET_B_LAMBDA: &str =
    include_str!("../../../../tests/fixtures/sns/lambda-style-fixtures.json");
const CERT_A_ID: &str = "7506a1e35b36ef5a444dd1a8e7cc3ed8";
const CERT_B_ID: &str = "7ff5318490ec183fbaddaa2a969abfda";
/// The keys SNS signs, in signing order.
const SIGNED_KEYS: [&str; 8] = [
    "Message",
    "MessageId",
    "Subject",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
];

/// Every fixture as (name, raw body). Set A is used byte for byte; the set B arrays are split into
/// one body per element.
fn fixtures() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = SET_A
        .iter()
        .map(|(n, b)| (format!("A/{n}"), (*b).to_owned()))
        .collect();
    for (file, text) in [("http", SET_B_HTTP), ("lambda", SET_B_LAMBDA)] {
        let items: Vec<Value> = serde_json::from_str(text).unwrap();
        for (i, item) in items.iter().enumerate() {
            out.push((format!("B/{file}[{i}]"), item.to_string()));
        }
    }
    out
}

fn settings() -> SnsSettings {
    let mut topic_arns: Vec<String> = fixtures()
        .iter()
        .map(|(_, b)| SnsMessage::parse(b.as_bytes()).unwrap().topic_arn)
        .collect();
    topic_arns.dedup();
    SnsSettings {
        topic_arns,
        timestamp_tolerance: Some(Duration::from_secs(3600)),
        cert_dir: Some(PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/sns"
        ))),
        fetch_certs: false,
        check_cert_validity: true,
    }
}

fn verifier(settings: SnsSettings) -> SnsVerifier {
    SnsVerifier::new(settings).unwrap()
}

/// The message's own Timestamp: the moment SNS sent it, when its certificate was in date.
fn sent_at(body: &str) -> OffsetDateTime {
    SnsMessage::parse(body.as_bytes()).unwrap().timestamp_parsed
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for &(name, value) in pairs {
        map.append(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, data))
}
