//! ServiceOptimizer (ServicePower ServiceScheduling) push notifications.
//!
//! Authenticity: `Authorization` carries the configured notification token verbatim. It is compared in
//! constant time; when a JWT key is configured the token is validated as a JWT instead (signature,
//! algorithm, `exp`, `iss`, `aud`). ServiceOptimizer reads the reply body, so replies use its shape
//! (`ReplyStyle::ServiceOptimizer`).
//!
//! Payload: `{"Type": "0", "WorkItemType": "1", "WorkItem": {"Id": "...", "WorkStatus": "..."}}`, all
//! strings in the documentation; numbers are accepted too. No id and no time: the dedup key is a
//! hash of the raw body, and the event time is the receive time. ServiceOptimizer resends an
//! undelivered notification as it was, so its resends share the key; the (type, job, status)
//! triple would not do, since a job can go through the same status twice (providers.md §2.4), and
//! the second, genuine notification would be swallowed as a duplicate for the whole window.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Deserialize;

use super::{
    MapError, Mapped, Provider, ReplyStyle, SampleRequest, SampleWebhook, Verified, WebhookRequest,
    resolve_secrets, settings,
};
use crate::event::{Appointment, CanonicalEvent, EventData, EventId};
use crate::secret::{Secret, SecretRef};
use crate::section::ConfigIssue;
use crate::verify::VerifyError;
use crate::verify::jwt::{JwtSettings, JwtVerifier};
use crate::verify::token;

pub const KIND: &str = "service_optimizer";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// The configured notification token(s) (`notification_jwt`), compared as static credentials.
    tokens: Option<Vec<SecretRef>>,
    /// Validate the token as a JWT with this key instead (HMAC secret or public key PEM).
    jwt_key: Option<SecretRef>,
    jwt: Option<JwtSettings>,
}

#[derive(Debug, Clone)]
enum Check {
    Static(Vec<Secret>),
    Jwt(Box<JwtVerifier>),
}

#[derive(Debug, Clone)]
pub struct ServiceOptimizer {
    check: Check,
}

impl ServiceOptimizer {
    pub fn from_config(
        key: &str,
        verify: &toml::Table,
        env: &HashMap<String, String>,
    ) -> Result<Self, Vec<ConfigIssue>> {
        let s: Settings = settings(key, verify)?;
        let check = match (s.tokens, s.jwt_key, s.jwt) {
            (None, Some(jwt_key), Some(jwt)) => {
                let secret = resolve_secrets(&format!("{key}.jwt_key"), &[jwt_key], env)?;
                let verifier = JwtVerifier::new(&jwt, &secret[0])
                    .map_err(|e| vec![ConfigIssue::new(format!("{key}.jwt"), e)])?;
                Check::Jwt(Box::new(verifier))
            }
            (Some(tokens), None, None) => {
                Check::Static(resolve_secrets(&format!("{key}.tokens"), &tokens, env)?)
            }
            _ => {
                return Err(vec![ConfigIssue::new(
                    key,
                    "set either `tokens` (static comparison) or both `jwt_key` and [jwt] (JWT validation)",
                )]);
            }
        };
        Ok(ServiceOptimizer { check })
    }
}

/// A field documented as a string that may also arrive as a number.
#[derive(Deserialize)]
#[serde(untagged)]
enum Text {
    S(String),
    N(serde_json::Number),
}

impl Text {
    fn into_string(self) -> String {
        match self {
            Text::S(s) => s,
            Text::N(n) => n.to_string(),
        }
    }
}

#[derive(Deserialize)]
struct Payload {
    #[serde(rename = "Type")]
    kind: Option<Text>,
    #[serde(rename = "WorkItem")]
    work_item: Option<WorkItem>,
}

#[derive(Deserialize)]
struct WorkItem {
    #[serde(rename = "Id")]
    id: Option<Text>,
    #[serde(rename = "WorkStatus")]
    work_status: Option<Text>,
}

/// Canonical action per notification type (providers.md §2.2); `2` is Job Rebook before 13.0.
fn action(kind: &str) -> &'static str {
    match kind {
        "0" => "booked",
        "-1" => "cancelled",
        "5" => "status_changed",
        "6" => "reminder",
        "7" => "confirmed",
        "8" => "changed",
        "9" | "2" => "rebooked",
        _ => "other",
    }
}

super::any::one_kind!(ServiceOptimizer, "service_optimizer");

impl Provider for ServiceOptimizer {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn default_dedup_window(&self) -> Duration {
        // ServiceOptimizer keeps undelivered notifications `notification_days_before` days.
        Duration::from_secs(7 * 24 * 3600)
    }

    fn sample_webhook(&self, request: &SampleRequest<'_>) -> Option<SampleWebhook> {
        // A static token only: a JWT would need the issuer's private key.
        let Check::Static(tokens) = &self.check else {
            return None;
        };
        let token = std::str::from_utf8(tokens.first()?.expose()).ok()?;
        let body = format!(
            r#"{{"Type":"0","WorkItemType":"1","WorkItem":{{"Id":"{}","WorkStatus":"10"}}}}"#,
            request.subject
        );
        let extra = vec![("authorization".to_owned(), token.to_owned())];
        Some(SampleWebhook::json(body, "appointment.booked", extra))
    }

    fn reply_style(&self) -> ReplyStyle {
        ReplyStyle::ServiceOptimizer
    }

    async fn verify<'a>(
        &self,
        request: &'a WebhookRequest<'a>,
    ) -> Result<Verified<'a>, VerifyError> {
        let value = request
            .header_values("Authorization")
            .next()
            .map(token::strip_bearer)
            .filter(|v| !v.is_empty())
            .ok_or(VerifyError::MissingCredential("Authorization"))?;
        match &self.check {
            Check::Static(tokens) if token::matches_any(value.as_bytes(), tokens) => {}
            Check::Static(_) => return Err(VerifyError::BadCredential("Authorization")),
            Check::Jwt(verifier) => {
                verifier.verify(value)?;
            }
        }
        Ok(Verified::new(request))
    }

    async fn map(&self, source: &str, verified: Verified<'_>) -> Result<Mapped, MapError> {
        let request = verified.request();
        let payload: Payload = MapError::parse_json(request.body)?;
        let kind = payload
            .kind
            .ok_or(MapError::MissingField("Type"))?
            .into_string();
        let item = payload
            .work_item
            .ok_or(MapError::MissingField("WorkItem"))?;
        let job = item
            .id
            .ok_or(MapError::MissingField("WorkItem.Id"))?
            .into_string();
        let status = item.work_status.map(Text::into_string);
        let action = action(&kind);
        let id = EventId::from_content(source, &[request.body]);
        Ok(Mapped::Event(Box::new(CanonicalEvent {
            id,
            source: source.to_owned(),
            provider: KIND,
            event_type: format!("appointment.{action}"),
            provider_type: kind,
            subject: Some(job.clone()),
            partition_key: job.clone(),
            occurred_at: None,
            received_at: request.received_at,
            data: Some(EventData::Appointment(Appointment {
                appointment_id: Some(job),
                action: action.to_owned(),
                status,
                ..Default::default()
            })),
            payload: request.body.clone(),
            payload_content_type: "application/json".into(),
            attributes: BTreeMap::new(),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{block_on, expect_event};
    use actix_web::http::header::{AUTHORIZATION, HeaderMap, HeaderValue};
    use bytes::Bytes;
    use time::OffsetDateTime;

    fn provider() -> ServiceOptimizer {
        let env = HashMap::from([(
            "SO".to_owned(),
            "eyJhbGciOiJIUzI1NiJ9.configured.token".to_owned(),
        )]);
        ServiceOptimizer::from_config("k", &r#"tokens = ["env:SO"]"#.parse().unwrap(), &env)
            .unwrap()
    }

    fn run(p: &ServiceOptimizer, auth: Option<&str>, body: &'static str) -> Result<Mapped, String> {
        let mut headers = HeaderMap::new();
        if let Some(a) = auth {
            headers.insert(AUTHORIZATION, HeaderValue::from_str(a).unwrap());
        }
        let body = Bytes::from_static(body.as_bytes());
        let request = WebhookRequest {
            method: "POST",
            headers: &headers,
            query: "",
            body: &body,
            peer: None,
            received_at: OffsetDateTime::UNIX_EPOCH,
        };
        let verified = block_on(p.verify(&request)).map_err(|e| e.code().to_owned())?;
        block_on(p.map("so", verified)).map_err(|e| e.code().to_owned())
    }

    const CREATE: &str = r#"{ "Type": "0", "WorkItemType": "1", "WorkItem": { "Id": "J-1001", "WorkStatus": "10" } }"#;

    #[test]
    fn job_create_maps_to_appointment_booked() {
        let e = expect_event(
            run(
                &provider(),
                Some("eyJhbGciOiJIUzI1NiJ9.configured.token"),
                CREATE,
            )
            .unwrap(),
        );
        assert_eq!(e.event_type, "appointment.booked");
        assert_eq!(e.subject.as_deref(), Some("J-1001"));
        // Bearer prefix tolerated; numbers accepted.
        let e = expect_event(
            run(
                &provider(),
                Some("Bearer eyJhbGciOiJIUzI1NiJ9.configured.token"),
                r#"{"Type": 9, "WorkItem": {"Id": 7}}"#,
            )
            .unwrap(),
        );
        assert_eq!(e.event_type, "appointment.rebooked");
    }

    #[test]
    fn wrong_missing_token_and_bad_payload_have_codes() {
        let p = provider();
        assert_eq!(
            run(&p, Some("other"), CREATE).unwrap_err(),
            "bad_credential"
        );
        assert_eq!(run(&p, None, CREATE).unwrap_err(), "missing_credential");
        assert_eq!(
            run(
                &p,
                Some("eyJhbGciOiJIUzI1NiJ9.configured.token"),
                r#"{"Type":"0"}"#
            )
            .unwrap_err(),
            "missing_field"
        );
        assert_eq!(
            run(&p, Some("eyJhbGciOiJIUzI1NiJ9.configured.token"), "{").unwrap_err(),
            "invalid_json"
        );
    }

    #[test]
    fn resends_share_a_key_and_a_second_genuine_notification_does_not() {
        let p = provider();
        let token = Some("eyJhbGciOiJIUzI1NiJ9.configured.token");
        let first = expect_event(run(&p, token, CREATE).unwrap());
        let resend = expect_event(run(&p, token, CREATE).unwrap());
        assert_eq!(first.id, resend.id, "a resend is recognised");
        // The same job back in the same status later: same triple, different notification.
        let again = expect_event(
            run(
                &p,
                token,
                r#"{ "Type": "0", "WorkItemType": "1", "WorkItem": { "Id": "J-1001", "WorkStatus": "10", "Seq": 2 } }"#,
            )
            .unwrap(),
        );
        assert_eq!(again.subject, first.subject);
        assert_eq!(again.event_type, first.event_type);
        assert_ne!(
            again.id, first.id,
            "a genuine second notification is not a duplicate"
        );
    }

    #[test]
    fn every_documented_type_has_an_action() {
        for (t, a) in [
            ("0", "booked"),
            ("-1", "cancelled"),
            ("5", "status_changed"),
            ("6", "reminder"),
            ("7", "confirmed"),
            ("8", "changed"),
            ("9", "rebooked"),
            ("2", "rebooked"),
            ("42", "other"),
        ] {
            assert_eq!(action(t), a);
        }
    }
}
