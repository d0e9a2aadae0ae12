//! Unit tests of `cronofy`.

use super::*;
use crate::secret::Secret;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;

const WELL_KNOWN: &[u8] = br#"{"example":"well-known"}"#;

/// The verified vectors of providers.md §3.4: (client secret, expected header value).
const VECTORS: &[(&str, &str)] = &[
    (
        "pDY0Oi7TJSP2hfNmZNkm5",
        "6r2/HjBkqymGegX0wOfifieeUXbbHwtV/LohHS+jv6c=",
    ),
    (
        "CRN_NggYusqPGLxwjw5FHOJYOqSrTPNXy8WQf14OID",
        "5DxentQi5YSXODEzTVv06sRwJ3pULIz1KrYv20qxEK0=",
    ),
    (
        "CRN_nGlYDFXwfSXgB9rvGNBJyfE454GGPtWIbNuPwr",
        "BmQmWVuZ70ILWjr1CAt5oC7YOolgnku4WZtlrKfx/6k=",
    ),
    (
        "opposable thumbs",
        "38ArsN7+J/O8joGsgirVEdV16a/+eb+5QgHGIiuv4hk=",
    ),
    (
        "aPPwd-ASDFAsdfasdfasdfsadfasdfASDFSADF_asdfasdfasdf",
        "0g6bhIumRlRffctPXuASSl3u6AXOxnYRw+hiTp7IvTg=",
    ),
    (
        "clientSecret",
        "QuGlxxssNDaxUjd6RY4wxGf+5KDrmobMmjkGQPtB3WQ=",
    ),
];

fn cronofy(secrets: &[&str]) -> Cronofy {
    Cronofy::with_secrets(
        secrets
            .iter()
            .map(|s| Secret::from_bytes(s.as_bytes()))
            .collect(),
    )
}

fn check(provider: &Cronofy, body: &'static [u8], header: Option<&str>) -> Result<(), VerifyError> {
    let mut headers = HeaderMap::new();
    if let Some(h) = header {
        headers.insert(
            HeaderName::from_static("cronofy-hmac-sha256"),
            HeaderValue::from_str(h).unwrap(),
        );
    }
    let body = Bytes::from_static(body);
    let request = WebhookRequest {
        method: "POST",
        headers: &headers,
        query: "",
        body: &body,
        peer: None,
        received_at: OffsetDateTime::UNIX_EPOCH,
    };
    super::super::block_on(provider.verify(&request)).map(|_| ())
}

#[test]
fn every_published_vector_verifies_and_signs() {
    for (secret, expected) in VECTORS {
        let p = cronofy(&[secret]);
        assert_eq!(p.sign(WELL_KNOWN), *expected, "signing with {secret}");
        assert_eq!(
            check(&p, WELL_KNOWN, Some(expected)),
            Ok(()),
            "verifying with {secret}"
        );
    }
}

#[test]
fn multi_value_header_during_rotation() {
    let header =
        "5DxentQi5YSXODEzTVv06sRwJ3pULIz1KrYv20qxEK0=,BmQmWVuZ70ILWjr1CAt5oC7YOolgnku4WZtlrKfx/6k=";
    assert_eq!(
        check(
            &cronofy(&["CRN_NggYusqPGLxwjw5FHOJYOqSrTPNXy8WQf14OID"]),
            WELL_KNOWN,
            Some(header)
        ),
        Ok(())
    );
    assert_eq!(
        check(
            &cronofy(&["CRN_nGlYDFXwfSXgB9rvGNBJyfE454GGPtWIbNuPwr"]),
            WELL_KNOWN,
            Some(header)
        ),
        Ok(())
    );
    assert_eq!(
        check(
            &cronofy(&["pDY0Oi7TJSP2hfNmZNkm5"]),
            WELL_KNOWN,
            Some(header)
        ),
        Err(VerifyError::BadSignature(SIGNATURE_HEADER))
    );
    let with_junk = "something-else,6r2/HjBkqymGegX0wOfifieeUXbbHwtV/LohHS+jv6c=";
    assert_eq!(
        check(
            &cronofy(&["pDY0Oi7TJSP2hfNmZNkm5"]),
            WELL_KNOWN,
            Some(with_junk)
        ),
        Ok(())
    );
}

#[test]
fn several_configured_secrets_any_may_match() {
    let p = cronofy(&["old-secret", "pDY0Oi7TJSP2hfNmZNkm5"]);
    assert_eq!(
        check(
            &p,
            WELL_KNOWN,
            Some("6r2/HjBkqymGegX0wOfifieeUXbbHwtV/LohHS+jv6c=")
        ),
        Ok(())
    );
}

#[test]
fn missing_junk_and_base64url_headers_are_rejected() {
    let p = cronofy(&["pDY0Oi7TJSP2hfNmZNkm5"]);
    assert_eq!(
        check(&p, WELL_KNOWN, None),
        Err(VerifyError::MissingSignature(SIGNATURE_HEADER))
    );
    assert_eq!(
        check(&p, WELL_KNOWN, Some("")),
        Err(VerifyError::MissingSignature(SIGNATURE_HEADER))
    );
    assert_eq!(
        check(&p, WELL_KNOWN, Some("something-else")),
        Err(VerifyError::MalformedSignature(SIGNATURE_HEADER))
    );
    // The URL-safe spelling of a digest that contains `/` must not pass.
    let p2 = cronofy(&["CRN_nGlYDFXwfSXgB9rvGNBJyfE454GGPtWIbNuPwr"]);
    let url_safe = "BmQmWVuZ70ILWjr1CAt5oC7YOolgnku4WZtlrKfx_6k=";
    assert!(check(&p2, WELL_KNOWN, Some(url_safe)).is_err());
}

#[test]
fn own_change_vector_verifies_and_maps() {
    const BODY: &[u8] = br#"{"notification":{"type":"change","changes_since":"2024-10-14T09:24:16Z"},"channel":{"channel_id":"chn_54cf7c7cb4ad4c1027000001","callback_url":"https://example.com/cronofy","filters":{}}}"#;
    let p = cronofy(&["pDY0Oi7TJSP2hfNmZNkm5"]);
    assert_eq!(
        check(
            &p,
            BODY,
            Some("1m55YS09E3z1eXZmnkzVgm881xtbo/xqPeAj785SHXY=")
        ),
        Ok(())
    );
    let headers = HeaderMap::new();
    let body = Bytes::from_static(BODY);
    let request = WebhookRequest {
        method: "POST",
        headers: &headers,
        query: "",
        body: &body,
        peer: None,
        received_at: OffsetDateTime::UNIX_EPOCH,
    };
    let event = crate::providers::expect_event(
        crate::providers::block_on(p.map("cal", Verified::new(&request))).unwrap(),
    );
    assert_eq!(event.event_type, "calendar.changed");
    assert_eq!(event.provider_type, "change");
    assert_eq!(
        event.subject.as_deref(),
        Some("chn_54cf7c7cb4ad4c1027000001")
    );
    assert_eq!(event.partition_key, "chn_54cf7c7cb4ad4c1027000001");
    assert_eq!(
        event.occurred_at,
        Some(time::macros::datetime!(2024-10-14 09:24:16 UTC))
    );
    assert_eq!(event.id, EventId::from_content("cal", &[BODY]));
}

#[test]
fn malformed_payloads_are_map_errors_not_panics() {
    let p = cronofy(&["x"]);
    for (body, code) in [
        (&b"{"[..], "invalid_json"),
        (b"[]", "invalid_json"),
        (b"{}", "missing_field"),
        (br#"{"notification":{}}"#, "missing_field"),
        (
            br#"{"notification":{"type":"change","changes_since":"yesterday"}}"#,
            "invalid_field",
        ),
        (b"\xff\xfe", "invalid_json"),
    ] {
        let headers = HeaderMap::new();
        let body = Bytes::copy_from_slice(body);
        let request = WebhookRequest {
            method: "POST",
            headers: &headers,
            query: "",
            body: &body,
            peer: None,
            received_at: OffsetDateTime::UNIX_EPOCH,
        };
        let err = crate::providers::block_on(p.map("cal", Verified::new(&request))).unwrap_err();
        assert_eq!(err.code(), code, "{err}");
    }
}

#[test]
fn unknown_notification_types_are_published_as_other() {
    assert_eq!(canonical_type("something_new"), "calendar.other");
    assert_eq!(
        canonical_type("verification"),
        "calendar.channel_verification"
    );
}
