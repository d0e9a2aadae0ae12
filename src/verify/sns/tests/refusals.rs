//! What is refused before a signature is checked, or instead of it: expired certificates, topics
//! outside the allow-list, raw delivery, stale timestamps, mismatched headers, certificate sources
//! and URLs, and subscription confirmations.

use actix_web::http::header::HeaderMap;
use time::macros::datetime;

use super::*;

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
