//! End-to-end checks of [`SnsVerifier::verify`] on the real SNS messages in `tests/fixtures/sns`
//! (providers.md §1.10), with certificates from the fixture directory and no network.
//! Each test injects the clock: both fixture certificates have expired by now.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use time::OffsetDateTime;
use time::macros::datetime;

use super::*;

const SET_A: [(&str, &str); 5] = [
    (
        "with-subject",
        include_str!("../../../tests/fixtures/sns/test-notification-with-subject.json"),
    ),
    (
        "no-subject",
        include_str!("../../../tests/fixtures/sns/test-notification-no-subject.json"),
    ),
    (
        "signature-v2",
        include_str!("../../../tests/fixtures/sns/test-notification-signature-v2.json"),
    ),
    (
        "subscription",
        include_str!("../../../tests/fixtures/sns/test-subscription-confirmation.json"),
    ),
    (
        "unsubscribe",
        include_str!("../../../tests/fixtures/sns/test-unsubscribe-confirmation.json"),
    ),
];
const SET_B_HTTP: &str = include_str!("../../../tests/fixtures/sns/http-fixtures.json");
const SET_B_LAMBDA: &str = include_str!("../../../tests/fixtures/sns/lambda-style-fixtures.json");
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

/// (a) Every real message verifies at its own time, with the headers SNS would send.
#[tokio::test]
async fn every_fixture_message_verifies_at_its_own_time() {
    let v = verifier(settings());
    let all = fixtures();
    assert_eq!(all.len(), 15, "5 set-A + 4 http + 6 lambda-style messages");
    for (name, body) in &all {
        let parsed = SnsMessage::parse(body.as_bytes()).unwrap();
        let h = headers(&[
            (MESSAGE_TYPE_HEADER, parsed.kind.as_str()),
            (TOPIC_ARN_HEADER, &parsed.topic_arn),
        ]);
        let verified = v.verify(&h, body.as_bytes(), sent_at(body)).await;
        assert_eq!(verified.as_ref().err(), None, "{name}");
        assert_eq!(verified.unwrap(), parsed, "{name}");
    }
    // Two certificate URLs: the first use of each reads cert_dir, every later one hits the cache.
    assert_eq!(v.cert_stats(), (13, 0));
}

/// (b) Changing any signed field breaks verification.
#[tokio::test]
async fn altering_any_signed_field_is_rejected() {
    let mut s = settings();
    // Let tampered topics through the allow-list so that the signature itself is what fails.
    s.topic_arns = s
        .topic_arns
        .iter()
        .flat_map(|t| [t.clone(), format!("{t}x")])
        .collect();
    let v = verifier(s);
    for (name, body) in fixtures() {
        let original: serde_json::Map<String, Value> = serde_json::from_str(&body).unwrap();
        let now = sent_at(&body);
        let mut altered_any = 0;
        for key in SIGNED_KEYS {
            let Some(Value::String(value)) = original.get(key) else {
                continue;
            };
            let mut tampered = original.clone();
            tampered.insert(key.to_owned(), Value::String(format!("{value}x")));
            let body = Value::Object(tampered).to_string();
            let err = v
                .verify(&HeaderMap::new(), body.as_bytes(), now)
                .await
                .unwrap_err();
            let expected = match key {
                "Type" => "unsupported_type",
                "Timestamp" => "invalid_envelope", // "…Zx" is no longer a time
                _ => "bad_signature",
            };
            assert_eq!(err.code(), expected, "{name}: {key}");
            altered_any += 1;
        }
        assert!(altered_any >= 5, "{name}");
        // The same instant written differently ("…424Z" → "…4240Z") fails too: the signature
        // covers the Timestamp text, not the time.
        let mut tampered = original.clone();
        let ts = original["Timestamp"].as_str().unwrap();
        tampered.insert("Timestamp".into(), ts.replace('Z', "0Z").into());
        let shifted = Value::Object(tampered).to_string();
        let err = v.verify(&HeaderMap::new(), shifted.as_bytes(), now).await;
        assert_eq!(
            err.unwrap_err().code(),
            "bad_signature",
            "{name}: Timestamp"
        );
        // Adding a Subject to a Notification that had none also fails.
        if original["Type"] == "Notification"
            && !original.get("Subject").is_some_and(Value::is_string)
        {
            let mut tampered = original.clone();
            tampered.insert("Subject".into(), "injected".into());
            let body = Value::Object(tampered).to_string();
            let err = v.verify(&HeaderMap::new(), body.as_bytes(), now).await;
            assert_eq!(
                err.unwrap_err().code(),
                "bad_signature",
                "{name}: Subject added"
            );
        }
    }
}

/// (c) The canonical strings match the SHA-256 values recorded in providers.md §1.3.
#[test]
fn canonical_strings_match_the_recorded_digests() {
    let cases = [
        (
            SET_A[0].1,
            236,
            "3ed598eefedbe672e5470c5282d595a0ba8f8d1a0eb7def1821919dffd0ed372",
        ),
        (
            SET_A[3].1,
            1033,
            "9aec1d9a2cac3ebdf7b36ad5b1b0ae28afa659eea3c88731ab7c53800306b643",
        ),
        (
            SET_A[4].1,
            1096,
            "6d438f1e5bc6bd18f38fe4db1a20f8f053027159247f9986938fc1fb7098fc4c",
        ),
    ];
    for (body, len, digest) in cases {
        let canonical = SnsMessage::parse(body.as_bytes()).unwrap().string_to_sign();
        assert_eq!(canonical.len(), len);
        assert_eq!(sha256_hex(canonical.as_bytes()), digest);
    }
    let subject = SnsMessage::parse(SET_A[0].1.as_bytes())
        .unwrap()
        .string_to_sign();
    assert!(subject.starts_with("Message\nHello! This message has a subject.\nMessageId\n"));
}

/// (d) Set A does not verify with set B's key, nor set B with set A's.
#[tokio::test]
async fn messages_do_not_verify_against_the_other_sets_certificate() {
    let mut s = settings();
    s.check_cert_validity = false; // the two certificates were never valid at the same time
    let v = verifier(s);
    for (name, body) in fixtures() {
        let swapped = if body.contains(CERT_A_ID) {
            body.replace(CERT_A_ID, CERT_B_ID)
        } else {
            body.replace(CERT_B_ID, CERT_A_ID)
        };
        let err = v
            .verify(&HeaderMap::new(), swapped.as_bytes(), sent_at(&body))
            .await;
        assert_eq!(err, Err(SnsError::BadSignature), "{name}");
    }
}

/// (f) Only the strings "1" and "2" are signature versions.
#[tokio::test]
async fn signature_version_3_and_numeric_1_are_rejected() {
    let v = verifier(settings());
    let body = SET_A[1].1;
    let v3 = body.replace(r#""SignatureVersion" : "1""#, r#""SignatureVersion" : "3""#);
    let numeric = body.replace(r#""SignatureVersion" : "1""#, r#""SignatureVersion" : 1"#);
    assert_ne!(v3, body);
    let now = sent_at(body);
    let err = v.verify(&HeaderMap::new(), v3.as_bytes(), now).await;
    assert_eq!(err, Err(SnsError::UnsupportedSignatureVersion));
    let err = v.verify(&HeaderMap::new(), numeric.as_bytes(), now).await;
    assert_eq!(err, Err(SnsError::NotAString("SignatureVersion")));
    assert_eq!(err.unwrap_err().code(), "invalid_envelope");
}

/// (g) With today's clock both fixture certificates are expired.
#[tokio::test]
async fn expired_certificates_are_rejected_with_todays_clock() {
    let mut s = settings();
    s.timestamp_tolerance = None;
    let v = verifier(s);
    let today = datetime!(2026-11-24 12:00 UTC);
    for (name, body) in fixtures() {
        let err = v.verify(&HeaderMap::new(), body.as_bytes(), today).await;
        assert_eq!(err, Err(SnsError::InvalidCert("expired")), "{name}");
    }
}

/// (h) The topic allow-list is exact, and empty means nothing is accepted.
#[tokio::test]
async fn topics_outside_the_allow_list_are_rejected() {
    let body = SET_A[0].1;
    for topics in [
        vec![],
        vec!["arn:aws:sns:us-west-2:131990247566:other".to_owned()],
    ] {
        let v = verifier(SnsSettings {
            topic_arns: topics,
            ..settings()
        });
        let err = v
            .verify(&HeaderMap::new(), body.as_bytes(), sent_at(body))
            .await;
        assert_eq!(err, Err(SnsError::TopicNotAllowed));
    }
}

/// (i) Raw message delivery has no envelope to verify.
#[tokio::test]
async fn raw_delivery_is_rejected() {
    let v = verifier(settings());
    let body = SET_A[0].1;
    let h = headers(&[(RAW_DELIVERY_HEADER, "True")]);
    let err = v.verify(&h, body.as_bytes(), sent_at(body)).await;
    assert_eq!(err.unwrap_err().code(), "raw_delivery");
}

/// (j) Replays outside the window, and messages from the future, are rejected.
#[tokio::test]
async fn timestamps_outside_the_window_are_rejected() {
    let v = verifier(settings()); // tolerance: one hour
    let body = SET_A[0].1;
    let sent = sent_at(body);
    let h = HeaderMap::new();
    let at = |offset: time::Duration| v.verify(&h, body.as_bytes(), sent + offset);
    assert!(at(time::Duration::minutes(59)).await.is_ok());
    assert!(at(time::Duration::minutes(-4)).await.is_ok());
    assert_eq!(
        at(time::Duration::minutes(61)).await,
        Err(SnsError::StaleTimestamp)
    );
    assert_eq!(
        at(time::Duration::minutes(-6)).await,
        Err(SnsError::StaleTimestamp)
    );
}

/// (k) The x-amz-sns-* headers must agree with the body.
#[tokio::test]
async fn headers_that_disagree_with_the_body_are_rejected() {
    let v = verifier(settings());
    let body = SET_A[0].1;
    let now = sent_at(body);
    let wrong_type = headers(&[(MESSAGE_TYPE_HEADER, "SubscriptionConfirmation")]);
    let err = v.verify(&wrong_type, body.as_bytes(), now).await;
    assert_eq!(err, Err(SnsError::HeaderMismatch(MESSAGE_TYPE_HEADER)));
    let wrong_topic = headers(&[(TOPIC_ARN_HEADER, "arn:aws:sns:us-west-2:1:other")]);
    let err = v.verify(&wrong_topic, body.as_bytes(), now).await;
    assert_eq!(err.unwrap_err().code(), "header_mismatch");
}

/// Certificates come only from cert_dir or a permitted fetch; the URL is checked first.
#[tokio::test]
async fn certificate_sources_and_urls_are_enforced() {
    let body = SET_A[0].1;
    let now = sent_at(body);
    let h = HeaderMap::new();
    let no_dir = verifier(SnsSettings {
        cert_dir: None,
        ..settings()
    });
    assert_eq!(
        no_dir
            .verify(&h, body.as_bytes(), now)
            .await
            .unwrap_err()
            .code(),
        "cert_unavailable"
    );
    let v = verifier(settings());
    let unknown = body.replace(CERT_A_ID, "00000000000000000000000000000000");
    assert_eq!(
        v.verify(&h, unknown.as_bytes(), now)
            .await
            .unwrap_err()
            .code(),
        "cert_unavailable"
    );
    let plain_http = body.replace("https://sns.us-west-2", "http://sns.us-west-2");
    assert_eq!(
        v.verify(&h, plain_http.as_bytes(), now)
            .await
            .unwrap_err()
            .code(),
        "invalid_cert_url"
    );
    let bad_b64 = body.replace("jvNSgHVOF9KUOKI3", "jvNSgHVOF9KUOKI!");
    assert_eq!(
        v.verify(&h, bad_b64.as_bytes(), now).await,
        Err(SnsError::MalformedSignature)
    );
}

/// Confirmation refuses anything but a SubscriptionConfirmation with an SNS SubscribeURL, before
/// any request is made.
#[tokio::test]
async fn confirmation_is_refused_without_network_for_bad_input() {
    let v = verifier(settings());
    let note = SnsMessage::parse(SET_A[0].1.as_bytes()).unwrap();
    assert_eq!(
        v.confirm_subscription(&note).await.unwrap_err().code(),
        "confirm_failed"
    );
    let mut sub = SnsMessage::parse(SET_A[3].1.as_bytes()).unwrap();
    sub.subscribe_url = Some("https://169.254.169.254/latest/meta-data/".to_owned());
    let err = v.confirm_subscription(&sub).await.unwrap_err();
    assert_eq!(err.code(), "invalid_subscribe_url");
}

/// A forgery of a public topic that names a certificate host of another region is refused before
/// anything is fetched: SNS signs with its own region's certificate.
#[tokio::test]
async fn a_certificate_host_of_another_region_is_refused_before_any_fetch() {
    let body = SET_A[0]
        .1
        .replace("sns.us-west-2.amazonaws.com", "sns.us-east-1.amazonaws.com");
    let parsed = SnsMessage::parse(body.as_bytes()).unwrap();
    let h = headers(&[
        (MESSAGE_TYPE_HEADER, parsed.kind.as_str()),
        (TOPIC_ARN_HEADER, &parsed.topic_arn),
    ]);
    let v = verifier(settings());
    assert_eq!(
        v.verify(&h, body.as_bytes(), sent_at(&body)).await.err(),
        Some(SnsError::InvalidCertUrl(
            "the certificate host is not the topic's region"
        ))
    );
    assert_eq!(v.cert_stats(), (0, 0), "nothing fetched");
}

/// Forgeries naming a certificate URL nobody serves: concurrent misses share one fetch, a failed
/// fetch is remembered (no second fetch for a minute), and fetches have their own small budget,
/// so a stream of forgeries cannot hold the gateway's in-flight permits on 5-second fetches.
#[tokio::test]
async fn certificate_fetches_are_coalesced_remembered_when_failed_and_budgeted() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let mut s = settings();
    s.cert_dir = None;
    let v = Arc::new(SnsVerifier::with_fetcher(
        s,
        Box::new(move |_url| {
            counted.fetch_add(1, Ordering::SeqCst);
            Box::pin(async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                Err("unreachable in this test")
            })
        }),
    ));
    let forged = |n: usize| SET_A[0].1.replace(CERT_A_ID, &format!("{n:032x}"));
    let attempt = |body: String| {
        let v = Arc::clone(&v);
        tokio::spawn(async move {
            let parsed = SnsMessage::parse(body.as_bytes()).unwrap();
            let h = headers(&[
                (MESSAGE_TYPE_HEADER, parsed.kind.as_str()),
                (TOPIC_ARN_HEADER, &parsed.topic_arn),
            ]);
            v.verify(&h, body.as_bytes(), sent_at(&body)).await.err()
        })
    };
    // Eight forgeries naming one URL at once: one fetch.
    let same: Vec<_> = (0..8).map(|_| attempt(forged(1))).collect();
    for task in same {
        assert!(matches!(
            task.await.unwrap(),
            Some(SnsError::CertUnavailable(_))
        ));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "coalesced");
    // The failure is remembered.
    assert!(matches!(
        attempt(forged(1)).await.unwrap(),
        Some(SnsError::CertUnavailable(_))
    ));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "no second fetch for a failed URL"
    );
    // Ten new URLs at once: at most the budget is fetched, the rest refused at once.
    let many: Vec<_> = (2..12).map(|n| attempt(forged(n))).collect();
    let mut refused_at_once = 0;
    for task in many {
        if task.await.unwrap()
            == Some(SnsError::CertUnavailable(
                "too many certificate fetches at once",
            ))
        {
            refused_at_once += 1;
        }
    }
    let fetched = calls.load(Ordering::SeqCst) - 1;
    assert!(fetched <= 4, "{fetched} fetches in flight at once");
    assert_eq!(fetched + refused_at_once, 10);
}

/// A certificate fetched once serves every concurrent request for it.
#[tokio::test]
async fn concurrent_requests_for_a_new_certificate_share_one_fetch() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let mut s = settings();
    s.cert_dir = None;
    let pem = include_str!(
        "../../../tests/fixtures/sns/SimpleNotificationService-7506a1e35b36ef5a444dd1a8e7cc3ed8.pem"
    );
    let v = Arc::new(SnsVerifier::with_fetcher(
        s,
        Box::new(move |_url| {
            counted.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok(pem.as_bytes().to_vec())
            })
        }),
    ));
    let body = SET_A[0].1;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let v = Arc::clone(&v);
            tokio::spawn(async move {
                let parsed = SnsMessage::parse(body.as_bytes()).unwrap();
                let h = headers(&[
                    (MESSAGE_TYPE_HEADER, parsed.kind.as_str()),
                    (TOPIC_ARN_HEADER, &parsed.topic_arn),
                ]);
                v.verify(&h, body.as_bytes(), sent_at(body)).await.err()
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), None);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
