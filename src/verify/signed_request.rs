//! Facebook-style `signed_request` values: `hex(HMAC(secret, payload)) + "." + payload`, where the
//! payload is base64url JSON. The MAC covers the payload *text exactly as received* (SalesKing strips
//! the `=` padding before signing), so it is checked before anything is decoded.

use base64::Engine as _;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};

use super::VerifyError;
use super::hmac::HmacKeyring;

pub const FIELD: &str = "signed_request";

/// Verifies `value` with `keyring` (hex digests) and returns the decoded JSON object.
pub fn verify(
    value: &str,
    keyring: &HmacKeyring,
) -> Result<serde_json::Map<String, serde_json::Value>, VerifyError> {
    let value = value.trim();
    if value.is_empty() {
        return Err(VerifyError::MissingSignature(FIELD));
    }
    let (signature, payload) = value
        .split_once('.')
        .ok_or(VerifyError::MalformedSignature(FIELD))?;
    if signature.len() != keyring.algorithm.digest_len() * 2 || payload.is_empty() {
        return Err(VerifyError::MalformedSignature(FIELD));
    }
    keyring
        .verify(&[payload.as_bytes()], [signature])
        .map_err(|f| VerifyError::from_hmac(f, FIELD))?;
    let json = URL_SAFE_NO_PAD
        .decode(payload)
        .or_else(|_| URL_SAFE.decode(payload))
        .map_err(|_| VerifyError::MalformedSignedPayload)?;
    match serde_json::from_slice(&json) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        _ => Err(VerifyError::MalformedSignedPayload),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::verify::hmac::{DigestEncoding, HmacAlgorithm};

    fn ring(secret: &str) -> HmacKeyring {
        HmacKeyring {
            algorithm: HmacAlgorithm::Sha256,
            encoding: DigestEncoding::Hex,
            secrets: vec![Secret::from_bytes(secret)],
        }
    }

    /// providers.md §5.3 and §5.4: every vector verifies and decodes to its JSON.
    #[test]
    fn published_vectors_verify() {
        let cases = [
            (
                "secret",
                "60673142fdda45f3185cbd51c070596950a9178e20f785703723ad8e0ff04833.eyJrZXkiOiJ2YWx1ZSJ9",
                r#"{"key":"value"}"#,
            ),
            (
                "eb4005858e4947e4228a12a6b7306ee0",
                "cb751596f540a67f29a62be0b9a7c1a63a9c877d42aac4bea7eb8b2bcceb2aa3.eyJoZWxsbyI6ImNvZGVyIiwiYWxnb3JpdGhtIjoiSE1BQy1TSEEyNTYifQ",
                r#"{"hello":"coder","algorithm":"HMAC-SHA256"}"#,
            ),
            (
                "secret",
                "6c670d06024e3b6bcd3a357df9cf87c427d7dc3ffe50a3a21bad5f3eb8b416a7.eyJrZXkiOiJ2YWx1ZTEifQ",
                r#"{"key":"value1"}"#,
            ),
            (
                "secret",
                "b8fb80f96c7ddf32bc787462129ec71f0a3616be7b5770d18fc9d3b2d0dc6128.eyJrZXkiOiJ2YWx1ZTEyIn0",
                r#"{"key":"value12"}"#,
            ),
            (
                "secret",
                "01b90b10f876278f8255a107bc189b303eb94248ae7c12c445e3e988bc942348.eyJhIjoiw7w_Pn4ifQ",
                r#"{"a":"ü?>~"}"#,
            ),
        ];
        for (secret, value, json) in cases {
            let decoded = verify(value, &ring(secret)).unwrap_or_else(|e| panic!("{value}: {e}"));
            let expected: serde_json::Value = serde_json::from_str(json).unwrap();
            assert_eq!(serde_json::Value::Object(decoded), expected);
        }
    }

    #[test]
    fn the_mac_is_over_the_text_as_received_not_a_padded_form() {
        // §5.4 negative: the MAC of the padded form of {"key":"value1"} must not be accepted.
        let padded_mac = "c9b0d3f21008424376769d473bf5cffc178e03213e2ca262f4ca9770e2489d45.eyJrZXkiOiJ2YWx1ZTEifQ";
        assert_eq!(
            verify(padded_mac, &ring("secret")),
            Err(VerifyError::BadSignature(FIELD))
        );
        // The raw-JSON MAC is not it either.
        let raw_json_mac =
            "ee2012a00f1649bc35f4cfe1fa582b2ebda5cbf2ef82713d6dc2ec93d81f96fb.eyJrZXkiOiJ2YWx1ZSJ9";
        assert_eq!(
            verify(raw_json_mac, &ring("secret")),
            Err(VerifyError::BadSignature(FIELD))
        );
    }

    #[test]
    fn malformed_values_fail_with_codes() {
        let r = ring("secret");
        assert_eq!(verify("", &r), Err(VerifyError::MissingSignature(FIELD)));
        assert_eq!(
            verify(
                "60673142fdda45f3185cbd51c070596950a9178e20f785703723ad8e0ff04833eyJrZXkiOiJ2YWx1ZSJ9",
                &r
            ),
            Err(VerifyError::MalformedSignature(FIELD))
        );
        assert_eq!(
            verify(
                "zz673142fdda45f3185cbd51c070596950a9178e20f785703723ad8e0ff04833.eyJrZXkiOiJ2YWx1ZSJ9",
                &r
            ),
            Err(VerifyError::MalformedSignature(FIELD))
        );
        assert_eq!(
            verify("abc.eyJrZXkiOiJ2YWx1ZSJ9", &r),
            Err(VerifyError::MalformedSignature(FIELD))
        );
        // Authentic but not JSON inside.
        let mac = r.sign(&[b"bm90IGpzb24"]);
        assert_eq!(
            verify(&format!("{mac}.bm90IGpzb24"), &r),
            Err(VerifyError::MalformedSignedPayload)
        );
    }
}
