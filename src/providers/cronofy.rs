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

use super::{
    MapError, Mapped, Provider, SampleRequest, SampleWebhook, Verified, WebhookRequest,
    resolve_secrets, settings,
};
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

super::any::one_kind!(Cronofy, "cronofy");

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

    fn sample_webhook(&self, request: &SampleRequest<'_>) -> Option<SampleWebhook> {
        // A `change` notification, padded with calendar ids to about the asked size (the
        // envelope without ids is ~190 bytes; each id adds 27).
        let ids = request.body_bytes.saturating_sub(190) / 27;
        let calendars: Vec<String> = (0..ids.max(1))
            .map(|i| format!("\"cal_{i:020}\""))
            .collect();
        let body = format!(
            r#"{{"notification":{{"type":"change","changes_since":"2024-10-14T09:24:16Z"}},"channel":{{"channel_id":"{}","callback_url":"https://example.com/cronofy","filters":{{"calendar_ids":[{}]}}}}}}"#,
            request.subject,
            calendars.join(",")
        );
        let signature = self.keyring.sign(&[body.as_bytes()]);
        let header = vec![("cronofy-hmac-sha256".to_owned(), signature)];
        Some(SampleWebhook::json(body, "calendar.changed", header))
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
        let payload: Payload = MapError::parse_json(request.body)?;
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
mod tests;
