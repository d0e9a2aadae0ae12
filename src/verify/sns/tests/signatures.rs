//! What the signature covers: every real message verifies, and no signed field, canonical string
//! or certificate can be changed without breaking it.

use actix_web::http::header::HeaderMap;
use serde_json::Value;

use super::*;

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
