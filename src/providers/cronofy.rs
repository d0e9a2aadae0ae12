//! Cronofy push notifications.
//!
//! Authenticity: `Cronofy-HMAC-SHA256` is base64(HMAC-SHA256(client secret, raw body)); during a
//! secret rotation Cronofy sends one value per active secret, comma-separated. Nothing time-bound is
//! signed, so there is no replay window to check: the dedup key (a hash of the body) absorbs replays.
//!
//! Payload: `notification.type` is the event, `notification.changes_since` its time (only on
//! `change`), `channel.channel_id` the subject. Unknown types are accepted (Cronofy's documentation
//! says more will come) and published as `calendar.other`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::any::FromVerifyTable;
use super::{MapError, Mapped, Provider, Verified, WebhookRequest, resolve_secrets, settings};
use crate::event::{CalendarChange, CanonicalEvent, EventData, EventId};
use crate::secret::SecretRef;
use crate::section::ConfigIssue;
use crate::verify::VerifyError;
use crate::verify::hmac::{DigestEncoding, HmacAlgorithm, HmacKeyring, split_list};

pub const KIND: &str = "cronofy";
pub const SIGNATURE_HEADER: &str = "Cronofy-HMAC-SHA256";

/// `[sources.NAME.verify]` for `provider = "cronofy"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// The OAuth client secret(s) Cronofy signs with; two during a rotation.
    client_secrets: Vec<SecretRef>,
}

#[derive(Debug, Clone)]
pub struct Cronofy {
    keyring: HmacKeyring,
}

impl Cronofy {
    pub fn from_config(
        key: &str,
        verify: &toml::Table,
        env: &HashMap<String, String>,
    ) -> Result<Self, Vec<ConfigIssue>> {
        let s: Settings = settings(key, verify)?;
        let secrets = resolve_secrets(&format!("{key}.client_secrets"), &s.client_secrets, env)?;
        Ok(Cronofy::with_secrets(secrets))
    }

    pub fn with_secrets(secrets: Vec<crate::secret::Secret>) -> Self {
        Cronofy {
            keyring: HmacKeyring {
                algorithm: HmacAlgorithm::Sha256,
                encoding: DigestEncoding::Base64,
                secrets,
            },
        }
    }

    /// The header value Cronofy would send for `body` (first secret): for tests and load generation.
    pub fn sign(&self, body: &[u8]) -> String {
        self.keyring.sign(&[body])
    }
}

#[derive(Deserialize)]
struct Payload {
    notification: Option<Notification>,
    channel: Option<Channel>,
}

#[derive(Deserialize)]
struct Notification {
    #[serde(rename = "type")]
    kind: Option<String>,
    changes_since: Option<String>,
}

#[derive(Deserialize)]
struct Channel {
    channel_id: Option<String>,
    filters: Option<Filters>,
}

#[derive(Deserialize)]
struct Filters {
    #[serde(default)]
    calendar_ids: Vec<String>,
}

/// Canonical type for each documented notification type.
fn canonical_type(kind: &str) -> &'static str {
    match kind {
        "change" => "calendar.changed",
        "verification" => "calendar.channel_verification",
        "profile_disconnected" => "calendar.profile_disconnected",
        "conferencing_profile_disconnected" => "calendar.conferencing_profile_disconnected",
        "profile_initial_sync_completed" => "calendar.profile_initial_sync_completed",
        "gdpr_requested" => "calendar.gdpr_requested",
        _ => "calendar.other",
    }
}

impl FromVerifyTable for Cronofy {
    const KINDS: &'static [&'static str] = &["cronofy"];
    fn from_verify_table(
        key: &str,
        _kind: &str,
        verify: &toml::Table,
        env: &HashMap<String, String>,
    ) -> Result<Self, Vec<ConfigIssue>> {
        Self::from_config(key, verify, env)
    }
}

impl Provider for Cronofy {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn default_dedup_window(&self) -> Duration {
        // Cronofy retries for 24 h, then closes the channel.
        Duration::from_secs(25 * 3600)
    }

    fn dead_letter_headers(&self) -> &'static [&'static str] {
        &["cronofy-hmac-sha256"]
    }

    async fn verify<'a>(
        &self,
        request: &'a WebhookRequest<'a>,
    ) -> Result<Verified<'a>, VerifyError> {
        let candidates = request
            .header_values(SIGNATURE_HEADER)
            .flat_map(|v| split_list(v, ','));
        self.keyring
            .verify(&[request.body], candidates)
            .map_err(|f| VerifyError::from_hmac(f, SIGNATURE_HEADER))?;
        Ok(Verified::new(request))
    }

    async fn map(&self, source: &str, verified: Verified<'_>) -> Result<Mapped, MapError> {
        let request = verified.request();
        let payload: Payload =
            serde_json::from_slice(request.body).map_err(|e| MapError::from_json(&e))?;
        let notification = payload
            .notification
            .ok_or(MapError::MissingField("notification"))?;
        let kind = notification
            .kind
            .ok_or(MapError::MissingField("notification.type"))?;
        let changes_since = notification
            .changes_since
            .map(|t| OffsetDateTime::parse(&t, &Rfc3339))
            .transpose()
            .map_err(|_| MapError::InvalidField("notification.changes_since"))?;
        let (channel_id, calendar_ids) = match payload.channel {
            Some(c) => (
                c.channel_id,
                c.filters.map(|f| f.calendar_ids).unwrap_or_default(),
            ),
            None => (None, Vec::new()),
        };
        // Cronofy sends no notification id; retries resend the same bytes, so the body hash is stable.
        let id = EventId::from_content(source, &[request.body]);
        Ok(Mapped::Event(Box::new(CanonicalEvent {
            partition_key: channel_id.clone().unwrap_or_else(|| id.to_string()),
            id,
            source: source.to_owned(),
            provider: KIND,
            event_type: canonical_type(&kind).to_owned(),
            subject: channel_id.clone(),
            occurred_at: changes_since,
            received_at: request.received_at,
            data: Some(EventData::CalendarChange(CalendarChange {
                kind: kind.clone(),
                channel_id,
                changes_since,
                calendar_ids,
            })),
            provider_type: kind,
            payload: request.body.clone(),
            payload_content_type: "application/json".into(),
            attributes: BTreeMap::new(),
        })))
    }
}

#[cfg(test)]
mod tests {
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

    fn check(
        provider: &Cronofy,
        body: &'static [u8],
        header: Option<&str>,
    ) -> Result<(), VerifyError> {
        let mut headers = HeaderMap::new();
        if let Some(h) = header {
            headers.insert(
                HeaderName::from_static("cronofy-hmac-sha256"),
                HeaderValue::from_str(h).unwrap(),
            );
        }
        let body = Bytes::from_static(body);
        let request = WebhookRequest {
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
        let header = "5DxentQi5YSXODEzTVv06sRwJ3pULIz1KrYv20qxEK0=,BmQmWVuZ70ILWjr1CAt5oC7YOolgnku4WZtlrKfx/6k=";
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
                headers: &headers,
                query: "",
                body: &body,
                peer: None,
                received_at: OffsetDateTime::UNIX_EPOCH,
            };
            let err =
                crate::providers::block_on(p.map("cal", Verified::new(&request))).unwrap_err();
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
}
