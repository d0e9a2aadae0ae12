//! TimeTap appointment notifications, in both of TimeTap's delivery generations:
//!
//! - **via Amazon SNS** (the original push notifications): the body is an SNS envelope, verified with
//!   the `verify::sns` block. A `Notification` carries the appointment JSON as a string in
//!   `Message`; a `SubscriptionConfirmation` for an allow-listed topic is confirmed by fetching its
//!   (validated) `SubscribeURL`; an `UnsubscribeConfirmation` is logged and never visited (visiting
//!   it would re-subscribe).
//! - **direct** (the current "Integrating Webhooks" page): the bare appointment JSON, with no
//!   documented signature. It is accepted only when the source configures a secret token (in a
//!   header or the URL's query) or relies on its IP allowlist (`direct = "ip"`).
//!
//! TimeTap names no event: any booking, edit or cancellation fires. The action is inferred from the
//! appointment's status where it says so (cancelled, completed, no-show), else `changed`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use super::{
    Facts, MapError, Mapped, Provider, Verified, WebhookRequest, resolve_secrets, settings,
};
use crate::event::{Appointment, CanonicalEvent, EventData, EventId};
use crate::secret::{Secret, SecretRef};
use crate::section::ConfigIssue;
use crate::verify::VerifyError;
use crate::verify::sns::{MESSAGE_TYPE_HEADER, SnsMessage, SnsSettings, SnsType, SnsVerifier};
use crate::verify::token;

pub const KIND: &str = "timetap";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// SNS topics this source accepts (exact ARNs). Empty refuses every SNS delivery.
    #[serde(default)]
    topic_arns: Vec<String>,
    /// Oldest accepted SNS `Timestamp`, in seconds. SNS retries keep the original timestamp for up
    /// to an hour, so the default is an hour and five minutes.
    timestamp_tolerance_secs: Option<u64>,
    /// Directory of trusted SNS signing certificates (air-gapped clusters, tests).
    cert_dir: Option<PathBuf>,
    /// Fetch certificates from validated `SigningCertURL`s (default true).
    fetch_certs: Option<bool>,
    /// Check certificate validity dates (default true).
    check_cert_validity: Option<bool>,
    /// Confirm subscriptions to allow-listed topics (default true).
    confirm_subscriptions: Option<bool>,
    /// Direct (non-SNS) webhooks: `off` (default), `token` or `ip` (the source's allowlist).
    #[serde(default)]
    direct: DirectMode,
    /// Tokens accepted on direct webhooks.
    direct_tokens: Option<Vec<SecretRef>>,
    /// Header carrying the direct token (default `X-TimeTap-Token`).
    direct_token_header: Option<String>,
    /// Query parameter carrying the direct token (default `token`).
    direct_token_query: Option<String>,
}

/// `direct`, as written.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
enum DirectMode {
    #[default]
    Off,
    Token,
    Ip,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Direct {
    Off,
    Token {
        tokens: Vec<Secret>,
        header: String,
        query: String,
    },
    Ip,
}

#[derive(Clone)]
pub struct TimeTap {
    sns: Arc<SnsVerifier>,
    confirm_subscriptions: bool,
    direct: Direct,
}

impl std::fmt::Debug for TimeTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TimeTap")
            .field("direct", &matches!(self.direct, Direct::Off))
            .finish_non_exhaustive()
    }
}

impl TimeTap {
    pub fn from_config(
        key: &str,
        verify: &toml::Table,
        env: &HashMap<String, String>,
    ) -> Result<Self, Vec<ConfigIssue>> {
        let s: Settings = settings(key, verify)?;
        let direct = match s.direct {
            DirectMode::Off => Direct::Off,
            DirectMode::Ip => Direct::Ip,
            DirectMode::Token => Direct::Token {
                tokens: resolve_secrets(
                    &format!("{key}.direct_tokens"),
                    s.direct_tokens.as_deref().unwrap_or_default(),
                    env,
                )?,
                header: s
                    .direct_token_header
                    .clone()
                    .unwrap_or_else(|| "X-TimeTap-Token".into()),
                query: s
                    .direct_token_query
                    .clone()
                    .unwrap_or_else(|| "token".into()),
            },
        };
        if s.topic_arns.is_empty() && direct == Direct::Off {
            return Err(vec![ConfigIssue::new(
                format!("{key}.topic_arns"),
                "list the SNS topic ARNs to accept (or enable direct webhooks)",
            )]);
        }
        let sns = SnsVerifier::new(SnsSettings {
            topic_arns: s.topic_arns,
            timestamp_tolerance: Some(Duration::from_secs(
                s.timestamp_tolerance_secs.unwrap_or(3900),
            )),
            cert_dir: s.cert_dir,
            fetch_certs: s.fetch_certs.unwrap_or(true),
            check_cert_validity: s.check_cert_validity.unwrap_or(true),
        })
        .map_err(|e| vec![ConfigIssue::new(key, e)])?;
        Ok(TimeTap {
            sns: Arc::new(sns),
            confirm_subscriptions: s.confirm_subscriptions.unwrap_or(true),
            direct,
        })
    }

    /// False when direct webhooks rely on the source's IP allowlist alone.
    pub fn has_credential(&self) -> bool {
        self.direct != Direct::Ip
    }

    /// (certificate cache hits, certificate fetches) since start.
    pub fn cert_stats(&self) -> (u64, u64) {
        self.sns.cert_stats()
    }

    /// An SNS delivery says so in a header, or has the envelope's signature keys in its body.
    fn is_sns(request: &WebhookRequest<'_>) -> bool {
        request.headers.contains_key(MESSAGE_TYPE_HEADER)
            || (contains(request.body, b"\"SigningCertURL\"")
                || contains(request.body, b"\"SigningCertUrl\""))
                && contains(request.body, b"\"Signature\"")
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Lenient appointment fields: ids may be numbers or strings, both spellings of each key.
fn text(v: &Value, pointers: &[&str]) -> Option<String> {
    pointers.iter().find_map(|p| match v.pointer(p)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

fn appointment(json: &Value) -> Appointment {
    let status = text(json, &["/status", "/appointmentStatus"]);
    let upper = status.as_deref().unwrap_or("").to_ascii_uppercase();
    let action = if upper.contains("CANCEL") {
        "cancelled"
    } else if upper.contains("NO_SHOW") || upper.contains("NOSHOW") {
        "no_show"
    } else if upper.contains("COMPLETE") {
        "completed"
    } else {
        "changed"
    };
    Appointment {
        appointment_id: text(json, &["/calendarid", "/calendarId"]),
        action: action.to_owned(),
        status,
        starts_at: text(json, &["/startDateTime", "/startTime"]),
        ends_at: text(json, &["/endDateTime", "/endTime"]),
        previous_appointment_id: None,
        location_id: text(json, &["/location/locationId"]),
        staff_id: text(
            json,
            &[
                "/professional/professionalId",
                "/staff/professionalId",
                "/staff/staffId",
            ],
        ),
        client_id: text(json, &["/client/clientId"]),
        service_id: text(json, &["/reason/reasonId"]),
    }
}

super::any::one_kind!(TimeTap, "timetap");

impl Provider for TimeTap {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn default_dedup_window(&self) -> Duration {
        // SNS retries for at most an hour; keep margin for clock skew.
        Duration::from_secs(2 * 3600)
    }

    fn authenticates(&self) -> bool {
        self.has_credential()
    }

    fn dead_letter_headers(&self) -> &'static [&'static str] {
        // The signature is inside the message body; these say which message it was.
        &[
            "x-amz-sns-message-type",
            "x-amz-sns-message-id",
            "x-amz-sns-topic-arn",
            "x-amz-sns-subscription-arn",
        ]
    }

    fn certificate_counts(&self) -> Option<(u64, u64)> {
        Some(self.cert_stats())
    }

    fn redrive_facts(&self, body: &Bytes) -> Facts {
        match SnsMessage::parse(body) {
            Ok(message) => Facts::Sns(Box::new(message)),
            Err(_) => Facts::None,
        }
    }

    async fn verify<'a>(
        &self,
        request: &'a WebhookRequest<'a>,
    ) -> Result<Verified<'a>, VerifyError> {
        if Self::is_sns(request) {
            let message = self
                .sns
                .verify(request.headers, request.body, request.received_at)
                .await?;
            return Ok(Verified::with_facts(request, Facts::Sns(Box::new(message))));
        }
        match &self.direct {
            Direct::Off => Err(VerifyError::MissingSignature("SNS envelope")),
            // The source's allowlist already passed in the pipeline.
            Direct::Ip => Ok(Verified::new(request)),
            Direct::Token {
                tokens,
                header,
                query,
            } => {
                let presented = request
                    .header_values(header)
                    .next()
                    .map(str::to_owned)
                    .or_else(|| token::query_param(request.query, query))
                    .filter(|t| !t.is_empty())
                    .ok_or(VerifyError::MissingCredential("token"))?;
                if token::matches_any(presented.as_bytes(), tokens) {
                    Ok(Verified::new(request))
                } else {
                    Err(VerifyError::BadCredential("token"))
                }
            }
        }
    }

    async fn map(&self, source: &str, verified: Verified<'_>) -> Result<Mapped, MapError> {
        let request = verified.request();
        match verified.into_facts() {
            Facts::Sns(message) => self.map_sns(source, request, *message).await,
            _ => {
                let json: Value = MapError::parse_json(request.body)?;
                if !json.is_object() {
                    return Err(MapError::MissingField("appointment object"));
                }
                let id = EventId::from_content(source, &[request.body]);
                Ok(Mapped::Event(Box::new(event(
                    source,
                    request,
                    id,
                    &json,
                    request.body.clone(),
                    None,
                    BTreeMap::new(),
                ))))
            }
        }
    }
}

impl TimeTap {
    async fn map_sns(
        &self,
        source: &str,
        request: &WebhookRequest<'_>,
        message: SnsMessage,
    ) -> Result<Mapped, MapError> {
        match message.kind {
            SnsType::SubscriptionConfirmation if self.confirm_subscriptions => {
                // The topic passed the allow-list during verification, so confirming is wanted.
                self.sns.confirm_subscription(&message).await.map_err(|e| {
                    tracing::warn!(source, topic_arn = %message.topic_arn, error = %e, "SNS subscription not confirmed");
                    MapError::Upstream("the SNS subscription could not be confirmed; SNS will resend")
                })?;
                Ok(Mapped::Handled {
                    code: "subscription_confirmed",
                })
            }
            SnsType::SubscriptionConfirmation => {
                tracing::warn!(source, topic_arn = %message.topic_arn, "SNS subscription confirmation received; confirm_subscriptions is off");
                Ok(Mapped::Handled {
                    code: "subscription_not_confirmed",
                })
            }
            SnsType::UnsubscribeConfirmation => {
                tracing::warn!(source, topic_arn = %message.topic_arn, "SNS unsubscribe confirmation received; not visiting its URL");
                Ok(Mapped::Handled {
                    code: "unsubscribe_noted",
                })
            }
            SnsType::Notification => {
                let id = EventId::parse(&message.message_id)
                    .map_err(|_| MapError::InvalidField("MessageId"))?;
                let mut attributes =
                    BTreeMap::from([("sns_topic_arn".to_owned(), message.topic_arn.clone())]);
                if let Some(subject) = &message.subject {
                    attributes.insert("sns_subject".to_owned(), subject.clone());
                }
                // The appointment is JSON in a string; TimeTap's own samples are not always valid
                // JSON, so a Message that does not parse is published as it is, untyped, not lost.
                let json: Value = serde_json::from_str(&message.message).unwrap_or(Value::Null);
                let payload = Bytes::from(message.message.into_bytes());
                let occurred_at = Some(message.timestamp_parsed);
                Ok(Mapped::Event(Box::new(event(
                    source,
                    request,
                    id,
                    &json,
                    payload,
                    occurred_at,
                    attributes,
                ))))
            }
        }
    }
}

fn event(
    source: &str,
    request: &WebhookRequest<'_>,
    id: EventId,
    json: &Value,
    payload: Bytes,
    occurred_at: Option<time::OffsetDateTime>,
    attributes: BTreeMap<String, String>,
) -> CanonicalEvent {
    let typed = json.is_object().then(|| appointment(json));
    let event_type = typed.as_ref().map_or_else(
        || "appointment.notification".to_owned(),
        |a| format!("appointment.{}", a.action),
    );
    let subject = typed.as_ref().and_then(|a| a.appointment_id.clone());
    CanonicalEvent {
        partition_key: subject.clone().unwrap_or_else(|| id.to_string()),
        id,
        source: source.to_owned(),
        provider: KIND,
        provider_type: if occurred_at.is_some() {
            "Notification".into()
        } else {
            "webhook".into()
        },
        event_type,
        subject,
        occurred_at,
        received_at: request.received_at,
        payload_content_type: if typed.is_some() {
            "application/json".into()
        } else {
            "text/plain".into()
        },
        data: typed.map(EventData::Appointment),
        payload,
        attributes,
    }
}

#[cfg(test)]
mod tests;
