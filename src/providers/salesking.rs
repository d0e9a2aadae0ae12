//! SalesKing PubSub callbacks.
//!
//! Authenticity: a form field `signed_request` = hex(HMAC-SHA256(app secret, payload)) + "." +
//! payload, the payload being base64url JSON (see `verify::signed_request`). When present,
//! `algorithm` must be HMAC-SHA256, `issued_at` must be inside the replay window and `expires` in
//! the future.
//!
//! The payload carries a live OAuth `access_token`: it is removed before anything is published,
//! logged or dead-lettered; the published payload is the decoded JSON without it. The event type is
//! not in the payload: each source is one subscription channel (`client.create`), so it is config.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{
    Facts, MapError, Mapped, Provider, SampleRequest, SampleWebhook, Verified, WebhookRequest,
    resolve_secrets, settings,
};
use crate::event::{CanonicalEvent, CrmRecord, EventData, EventId};
use crate::secret::SecretRef;
use crate::section::ConfigIssue;
use crate::verify::VerifyError;
use crate::verify::hmac::{DigestEncoding, HmacAlgorithm, HmacKeyring};
use crate::verify::signed_request::{self, FIELD};
use crate::verify::timestamp::Window;

pub const KIND: &str = "salesking";
/// Payload keys that are credentials and never leave the gateway.
pub const SECRET_KEYS: &[&str] = &["access_token", "refresh_token", "oauth_token"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// The app secret(s) SalesKing signs with.
    secrets: Vec<SecretRef>,
    /// The subscription channel this source receives, `<object>.<create|update|delete>`.
    channel: String,
    /// Oldest accepted `issued_at`, in seconds (default one hour).
    max_age_secs: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct SalesKing {
    keyring: HmacKeyring,
    object_type: String,
    action: &'static str,
    channel: String,
    window: Window,
}

impl SalesKing {
    pub fn from_config(
        key: &str,
        verify: &toml::Table,
        env: &HashMap<String, String>,
    ) -> Result<Self, Vec<ConfigIssue>> {
        let s: Settings = settings(key, verify)?;
        let secrets = resolve_secrets(&format!("{key}.secrets"), &s.secrets, env)?;
        let bad_channel = || {
            vec![ConfigIssue::new(
                format!("{key}.channel"),
                "expected <object>.<create|update|delete>, such as client.create",
            )]
        };
        let (object, verb) = s.channel.split_once('.').ok_or_else(bad_channel)?;
        let action = match verb {
            "create" => "created",
            "update" => "updated",
            "delete" => "deleted",
            _ => return Err(bad_channel()),
        };
        if object.is_empty() || !object.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            return Err(bad_channel());
        }
        Ok(SalesKing {
            keyring: HmacKeyring {
                algorithm: HmacAlgorithm::Sha256,
                encoding: DigestEncoding::Hex,
                secrets,
            },
            object_type: object.to_owned(),
            action,
            channel: s.channel.clone(),
            window: Window {
                max_age: Duration::from_secs(s.max_age_secs.unwrap_or(3600)),
                max_skew: Duration::from_secs(300),
            },
        })
    }

    /// The `signed_request` value: a form field in the body, or the query string as SDKs also accept.
    fn signed_request(request: &WebhookRequest<'_>) -> Option<String> {
        form_urlencoded::parse(request.body)
            .chain(form_urlencoded::parse(request.query.as_bytes()))
            .find(|(k, _)| k == FIELD)
            .map(|(_, v)| v.into_owned())
    }
}

fn time_field(
    payload: &Map<String, Value>,
    key: &str,
) -> Result<Option<OffsetDateTime>, VerifyError> {
    match payload.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => OffsetDateTime::parse(s, &Rfc3339)
            .map(Some)
            .map_err(|_| VerifyError::MalformedTimestamp),
        Some(_) => Err(VerifyError::MalformedTimestamp),
    }
}

super::any::one_kind!(SalesKing, "salesking");

impl Provider for SalesKing {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn default_dedup_window(&self) -> Duration {
        // signed_request is accepted for an hour after issued_at.
        Duration::from_secs(2 * 3600)
    }

    fn sample_webhook(&self, request: &SampleRequest<'_>) -> Option<SampleWebhook> {
        let issued_at = OffsetDateTime::from_unix_timestamp(request.now_unix)
            .ok()?
            .format(&Rfc3339)
            .ok()?;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
            r#"{{"obj":{{"{}":{{"id":"{}"}}}},"company_id":"loadgen","issued_at":"{issued_at}","algorithm":"HMAC-SHA256"}}"#,
            self.object_type, request.subject
        ));
        let signature = self.keyring.sign(&[payload.as_bytes()]);
        Some(SampleWebhook {
            headers: vec![(
                "content-type".to_owned(),
                "application/x-www-form-urlencoded".to_owned(),
            )],
            body: format!("signed_request={signature}.{payload}"),
            event_type: format!("crm.record_{}", self.action),
        })
    }

    /// The raw body holds the access token in base64: keep only the decoded payload without its
    /// secrets, or nothing if it does not decode.
    fn redact_for_dead_letter(&self, body: &Bytes) -> Bytes {
        use base64::Engine as _;
        let payload = form_urlencoded::parse(body)
            .find(|(k, _)| k == FIELD)
            .and_then(|(_, v)| v.split_once('.').map(|(_, p)| p.to_owned()))
            .and_then(|p| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(&p)
                    .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(&p))
                    .ok()
            })
            .and_then(|json| serde_json::from_slice::<Map<String, Value>>(&json).ok());
        match payload {
            Some(mut map) => {
                for key in SECRET_KEYS {
                    map.remove(*key);
                }
                serde_json::to_vec(&Value::Object(map))
                    .map(Bytes::from)
                    .unwrap_or_default()
            }
            None => Bytes::new(),
        }
    }

    fn redrive_facts(&self, body: &Bytes) -> Facts {
        match serde_json::from_slice(body) {
            Ok(Value::Object(map)) => Facts::Json(map),
            _ => Facts::None,
        }
    }

    async fn verify<'a>(
        &self,
        request: &'a WebhookRequest<'a>,
    ) -> Result<Verified<'a>, VerifyError> {
        let value = Self::signed_request(request).ok_or(VerifyError::MissingSignature(FIELD))?;
        let payload = signed_request::verify(&value, &self.keyring)?;
        let algorithm = payload.get("algorithm");
        if algorithm.is_some_and(|a| {
            !a.as_str()
                .is_some_and(|a| a.eq_ignore_ascii_case("HMAC-SHA256"))
        }) {
            return Err(VerifyError::UnsupportedAlgorithm);
        }
        if let Some(issued_at) = time_field(&payload, "issued_at")? {
            self.window.check(issued_at, request.received_at)?;
        }
        if time_field(&payload, "expires")?.is_some_and(|expires| expires < request.received_at) {
            return Err(VerifyError::Expired);
        }
        Ok(Verified::with_facts(request, Facts::Json(payload)))
    }

    async fn map(&self, source: &str, verified: Verified<'_>) -> Result<Mapped, MapError> {
        let request = verified.request();
        let value = Self::signed_request(request).unwrap_or_default();
        let Facts::Json(mut payload) = verified.into_facts() else {
            return Err(MapError::MissingField("signed_request"));
        };
        for key in SECRET_KEYS {
            payload.remove(*key);
        }
        let object_id = payload
            .get("obj")
            .and_then(|o| o.get(&self.object_type))
            .and_then(|o| o.get("id"))
            .and_then(|id| {
                id.as_str()
                    .map(str::to_owned)
                    .or_else(|| id.as_i64().map(|n| n.to_string()))
            });
        let issued_at =
            time_field(&payload, "issued_at").map_err(|_| MapError::InvalidField("issued_at"))?;
        let account_id = payload
            .get("company_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        // The redacted JSON is what travels; the raw body holds the token in base64.
        let redacted = serde_json::to_vec(&Value::Object(payload))
            .map_err(|_| MapError::InvalidField("signed_request"))?;
        // A redriven dead letter has the redacted JSON instead of the signed_request.
        let id = if value.is_empty() {
            EventId::from_content(source, &[&redacted])
        } else {
            EventId::from_content(source, &[value.as_bytes()])
        };
        Ok(Mapped::Event(Box::new(CanonicalEvent {
            partition_key: object_id.clone().unwrap_or_else(|| id.to_string()),
            id,
            source: source.to_owned(),
            provider: KIND,
            event_type: format!("crm.record_{}", self.action),
            provider_type: self.channel.clone(),
            subject: object_id.clone(),
            occurred_at: issued_at,
            received_at: request.received_at,
            data: Some(EventData::CrmRecord(CrmRecord {
                object_type: self.object_type.clone(),
                object_id,
                action: self.action.to_owned(),
                account_id,
            })),
            payload: Bytes::from(redacted),
            payload_content_type: "application/json".into(),
            attributes: BTreeMap::new(),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{block_on, expect_event};
    use actix_web::http::header::HeaderMap;

    /// providers.md §5.4 "realistic notification", secret `app-secret`.
    const REALISTIC: &str = "signed_request=26fd15078e0a1edc98c1e760ecea056857b27f6979beadddd647d2caca9a6dc7.eyJvYmoiOnsiY2xpZW50Ijp7ImlkIjoiYWJjIn0sImxpbmtzIjpbXX0sImNvbXBhbnlfaWQiOiJjMmV3NG1TbENyNGxFTmFieGZwR01sIiwidXNlcl9pZCI6ImMxMzM5S1NsQ3I0bEVOYWJ4ZnBHTWwiLCJzdWJfZG9tYWluIjoiNzI5ODMxOTM5IiwiaXNzdWVkX2F0IjoiMjAxMS0wNy0xN1QyMTowMzo0OFoiLCJhY2Nlc3NfdG9rZW4iOiJiZjc3YjAzYzMxZjAwM2YxZDg1MmIzZTBiYWM4NzM0NSIsImV4cGlyZXMiOiIyMDExLTA3LTE3VDIxOjU5OjUwWiIsImFsZ29yaXRobSI6IkhNQUMtU0hBMjU2In0";

    fn provider() -> SalesKing {
        let env = HashMap::from([("SK".to_owned(), "app-secret".to_owned())]);
        SalesKing::from_config(
            "k",
            &r#"secrets = ["env:SK"]
channel = "client.create""#
                .parse()
                .unwrap(),
            &env,
        )
        .unwrap()
    }

    fn run(body: &str, now: &str) -> Result<CanonicalEvent, String> {
        let p = provider();
        let headers = HeaderMap::new();
        let body = Bytes::from(body.to_owned());
        let received_at = OffsetDateTime::parse(now, &Rfc3339).unwrap();
        let request = WebhookRequest {
            method: "POST",
            headers: &headers,
            query: "",
            body: &body,
            peer: None,
            received_at,
        };
        let verified = block_on(p.verify(&request)).map_err(|e| e.code().to_owned())?;
        block_on(p.map("sk", verified))
            .map(expect_event)
            .map_err(|e| e.code().to_owned())
    }

    #[test]
    fn realistic_vector_is_published_without_the_access_token() {
        let e = run(REALISTIC, "2011-07-17T21:04:00Z").unwrap();
        assert_eq!(e.event_type, "crm.record_created");
        assert_eq!(e.subject.as_deref(), Some("abc"));
        let payload = String::from_utf8(e.payload.to_vec()).unwrap();
        assert!(
            !payload.contains("access_token")
                && !payload.contains("bf77b03c31f003f1d852b3e0bac87345"),
            "{payload}"
        );
        assert!(
            payload.contains("c2ew4mSlCr4lENabxfpGMl"),
            "the rest is kept: {payload}"
        );
        match e.data {
            Some(EventData::CrmRecord(r)) => assert_eq!(
                (r.object_type.as_str(), r.action.as_str()),
                ("client", "created")
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn replay_expiry_and_algorithm_are_enforced() {
        assert_eq!(
            run(REALISTIC, "2011-07-17T23:30:00Z").unwrap_err(),
            "timestamp_too_old"
        );
        assert_eq!(
            run(REALISTIC, "2011-07-17T20:00:00Z").unwrap_err(),
            "timestamp_in_future"
        );
        // Signed with `algorithm: HMAC-SHA1` (JSON {"algorithm":"HMAC-SHA1"}), MAC made with app-secret.
        let keyring = provider().keyring;
        let payload = "eyJhbGdvcml0aG0iOiJITUFDLVNIQTEifQ";
        let body = format!(
            "signed_request={}.{payload}",
            keyring.sign(&[payload.as_bytes()])
        );
        assert_eq!(
            run(&body, "2011-07-17T21:04:00Z").unwrap_err(),
            "unsupported_algorithm"
        );
        // Expired: {"expires":"2011-07-17T21:00:00Z"}
        let payload = "eyJleHBpcmVzIjoiMjAxMS0wNy0xN1QyMTowMDowMFoifQ";
        let body = format!(
            "signed_request={}.{payload}",
            keyring.sign(&[payload.as_bytes()])
        );
        assert_eq!(run(&body, "2011-07-17T21:04:00Z").unwrap_err(), "expired");
    }

    #[test]
    fn missing_field_and_bad_channels() {
        assert_eq!(
            run("other=1", "2011-07-17T21:04:00Z").unwrap_err(),
            "missing_signature"
        );
        let env = HashMap::from([("SK".to_owned(), "x".to_owned())]);
        for channel in ["client", "client.explode", ".create", "Client.create"] {
            let table: toml::Table = format!("secrets = [\"env:SK\"]\nchannel = \"{channel}\"")
                .parse()
                .unwrap();
            assert!(
                SalesKing::from_config("k", &table, &env).is_err(),
                "{channel}"
            );
        }
    }
}
