//! Docplanner (Integrations API v3) push notifications.
//!
//! Docplanner signs nothing. A source authenticates it by an agreed API-key header and/or the
//! source's IP allowlist (`[sources.NAME.allow]`); config validation refuses a Docplanner source with
//! neither. Docplanner pushes each notification once whatever we answer, which is why its sources
//! will default to durable acceptance once the spool lands.
//!
//! Payload: `{"name", "data", "created_at"}` for all 17 documented names; an unknown name is
//! published as `docplanner.other`, never refused (the SDK enum lags the API).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{
    MapError, Mapped, Provider, SampleRequest, SampleWebhook, Verified, WebhookRequest,
    resolve_secrets, settings,
};
use crate::event::{Appointment, CanonicalEvent, EventData, EventId};
use crate::secret::{Secret, SecretRef};
use crate::section::ConfigIssue;
use crate::verify::VerifyError;
use crate::verify::token;

pub const KIND: &str = "docplanner";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Header carrying the API key agreed with Docplanner.
    api_key_header: Option<String>,
    api_keys: Option<Vec<SecretRef>>,
}

#[derive(Debug, Clone)]
pub struct Docplanner {
    api_key: Option<(String, Vec<Secret>)>,
}

impl Docplanner {
    pub fn from_config(
        key: &str,
        verify: &toml::Table,
        env: &HashMap<String, String>,
    ) -> Result<Self, Vec<ConfigIssue>> {
        let s: Settings = settings(key, verify)?;
        let api_key = match (s.api_key_header, s.api_keys) {
            (Some(header), Some(keys)) => Some((
                header,
                resolve_secrets(&format!("{key}.api_keys"), &keys, env)?,
            )),
            (None, None) => None,
            _ => {
                return Err(vec![ConfigIssue::new(
                    key,
                    "set both api_key_header and api_keys, or neither",
                )]);
            }
        };
        Ok(Docplanner { api_key })
    }

    /// True when the provider itself checks a credential; otherwise only an IP allowlist protects it.
    pub fn has_credential(&self) -> bool {
        self.api_key.is_some()
    }
}

/// The 17 documented names (providers.md §4.3) and their canonical types.
pub const EVENTS: &[(&str, &str)] = &[
    ("slot-booking", "appointment.requested"),
    ("slot-booked", "appointment.booked"),
    ("booking-canceled", "appointment.cancelled"),
    ("booking-moved", "appointment.moved"),
    ("booking-moving", "appointment.move_requested"),
    ("booking-confirmed", "appointment.confirmed"),
    (
        "booking-payment-status-changed",
        "appointment.payment_status_changed",
    ),
    ("break-created", "schedule.break_created"),
    ("break-moved", "schedule.break_moved"),
    ("break-removed", "schedule.break_removed"),
    ("presence-marked", "appointment.presence_marked"),
    ("address-service-created", "catalog.service_created"),
    ("address-service-deleted", "catalog.service_deleted"),
    ("address-service-changed", "catalog.service_changed"),
    (
        "address-commercial-type-changed",
        "location.commercial_type_changed",
    ),
    ("address-assigned", "location.assigned"),
    ("address-unassigned", "location.unassigned"),
];

fn canonical_type(name: &str) -> &'static str {
    EVENTS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("docplanner.other", |(_, t)| t)
}

fn text(v: &Value, pointer: &str) -> Option<String> {
    match v.pointer(pointer)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The booking a notification is about, if any: the new one for moves.
fn booking(data: &Value) -> Option<&Value> {
    [
        "visit_booking",
        "new_visit_booking",
        "creating_booking",
        "visit_booking_request",
    ]
    .iter()
    .find_map(|k| data.get(*k))
}

super::any::one_kind!(Docplanner, "docplanner");

impl Provider for Docplanner {
    fn kind(&self) -> &'static str {
        KIND
    }

    fn default_dedup_window(&self) -> Duration {
        // Docplanner re-dispatches on release for up to 14 days after creation.
        Duration::from_secs(15 * 24 * 3600)
    }

    fn never_resends(&self) -> bool {
        true
    }

    fn authenticates(&self) -> bool {
        self.has_credential()
    }

    fn supports_reconcile(&self) -> bool {
        true
    }

    fn sample_webhook(&self, request: &SampleRequest<'_>) -> Option<SampleWebhook> {
        let (header, keys) = self.api_key.as_ref()?;
        let key = std::str::from_utf8(keys.first()?.expose()).ok()?;
        let body = format!(
            r#"{{"name":"slot-booked","data":{{"facility":{{"id":"1"}},"doctor":{{"id":"123"}},"address":{{"id":"111"}},"visit_booking":{{"id":"{}","status":"booked","start_at":"2021-05-26T16:00:00+01:00","end_at":"2021-05-26T16:30:00+01:00","duration":30}}}},"created_at":"2021-05-12T10:18:34+01:00"}}"#,
            request.subject
        );
        let extra = vec![(header.to_ascii_lowercase(), key.to_owned())];
        Some(SampleWebhook::json(body, "appointment.booked", extra))
    }

    async fn verify<'a>(
        &self,
        request: &'a WebhookRequest<'a>,
    ) -> Result<Verified<'a>, VerifyError> {
        if let Some((header, keys)) = &self.api_key {
            let presented = request
                .header_values(header)
                .next()
                .filter(|v| !v.is_empty())
                .ok_or(VerifyError::MissingCredential("api key"))?;
            if !token::matches_any(presented.as_bytes(), keys) {
                return Err(VerifyError::BadCredential("api key"));
            }
        }
        Ok(Verified::new(request))
    }

    async fn map(&self, source: &str, verified: Verified<'_>) -> Result<Mapped, MapError> {
        let request = verified.request();
        let body: Value = MapError::parse_json(request.body)?;
        let name = body
            .get("name")
            .and_then(Value::as_str)
            .ok_or(MapError::MissingField("name"))?
            .to_owned();
        let data = body
            .get("data")
            .filter(|d| d.is_object())
            .ok_or(MapError::MissingField("data"))?;
        let created_at_text = body
            .get("created_at")
            .and_then(Value::as_str)
            .ok_or(MapError::MissingField("created_at"))?;
        let created_at = OffsetDateTime::parse(created_at_text, &Rfc3339)
            .map_err(|_| MapError::InvalidField("created_at"))?;

        // Stable fields of one notification, so a pushed and a pulled copy share the key.
        let ids: Vec<String> = [
            "/visit_booking/id",
            "/old_visit_booking/id",
            "/new_visit_booking/id",
            "/canceling_booking/id",
            "/break/id",
            "/address_service/id",
            "/address/id",
            "/doctor/id",
        ]
        .iter()
        .map(|p| text(data, p).unwrap_or_default())
        .collect();
        let mut parts: Vec<&[u8]> = vec![name.as_bytes(), created_at_text.as_bytes()];
        parts.extend(ids.iter().map(|s| s.as_bytes()));
        let id = EventId::from_content(source, &parts);

        let booking = booking(data);
        let subject = booking
            .and_then(|b| text(b, "/id"))
            .or_else(|| text(data, "/break/id"))
            .or_else(|| text(data, "/address_service/id"))
            .or_else(|| text(data, "/address/id"));
        let canonical = canonical_type(&name);
        let appointment = canonical.starts_with("appointment.").then(|| {
            let b = booking.cloned().unwrap_or(Value::Null);
            EventData::Appointment(Appointment {
                appointment_id: text(&b, "/id"),
                action: canonical.trim_start_matches("appointment.").to_owned(),
                status: text(&b, "/status"),
                starts_at: text(&b, "/start_at"),
                ends_at: text(&b, "/end_at"),
                previous_appointment_id: text(data, "/old_visit_booking/id")
                    .or_else(|| text(data, "/canceling_booking/id")),
                location_id: text(data, "/address/id"),
                staff_id: text(data, "/doctor/id"),
                client_id: None,
                service_id: text(&b, "/address_service/id"),
            })
        });
        let mut attributes = BTreeMap::new();
        if let Some(facility) = text(data, "/facility/id") {
            attributes.insert("facility_id".to_owned(), facility);
        }
        Ok(Mapped::Event(Box::new(CanonicalEvent {
            partition_key: subject.clone().unwrap_or_else(|| id.to_string()),
            id,
            source: source.to_owned(),
            provider: KIND,
            event_type: canonical.to_owned(),
            provider_type: name,
            subject,
            occurred_at: Some(created_at),
            received_at: request.received_at,
            data: appointment,
            payload: request.body.clone(),
            payload_content_type: "application/json".into(),
            attributes,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{block_on, expect_event};
    use actix_web::http::header::HeaderMap;
    use bytes::Bytes;

    fn map(body: String) -> Result<CanonicalEvent, String> {
        let p = Docplanner { api_key: None };
        let headers = HeaderMap::new();
        let body = Bytes::from(body);
        let request = WebhookRequest {
            method: "POST",
            headers: &headers,
            query: "",
            body: &body,
            peer: None,
            received_at: OffsetDateTime::UNIX_EPOCH,
        };
        let verified = block_on(p.verify(&request)).map_err(|e| e.code().to_owned())?;
        block_on(p.map("dp", verified))
            .map(expect_event)
            .map_err(|e| e.code().to_owned())
    }

    /// The OpenAPI example `SlotBookedNotification` (providers.md §4.2).
    const SLOT_BOOKED: &str = r#"{ "name": "slot-booked", "data": { "facility": {"id":"1","name":"Sample hospital"}, "doctor": {"id":"123","name":"Sample","surname":"Doctor 123"}, "address": {"id":"111","name":"Example hospital","street":"Some street","post_code":"xx-xxx"}, "visit_booking": { "id":"6263715","status":"booked", "start_at":"2021-05-26T16:00:00+01:00","end_at":"2021-05-26T16:30:00+01:00", "duration":30,"booked_by":"user","canceled_by":"","booked_at":"2021-05-12T10:18:24+01:00", "address_service":{"id":"243665","name":"biopsja nerki","price":50,"is_price_from":false,"is_visible":true}, "patient":{"name":"Abraham","surname":"Lincoln","email":"example@example.com","phone":"+48123123123", "birth_date":"1985-01-01","nin":"894237492","gender":"m","insurance_number":"CARD-7654321"}, "comment":"Additional information about the visit", "insurance":{"id":"1","name":"Sample Insurance 1","plan":"","plan_id":""} } }, "created_at": "2021-05-12T10:18:34+01:00" }"#;

    #[test]
    fn slot_booked_example_maps_to_an_appointment() {
        let e = map(SLOT_BOOKED.to_owned()).unwrap();
        assert_eq!(e.event_type, "appointment.booked");
        assert_eq!(e.subject.as_deref(), Some("6263715"));
        match e.data {
            Some(EventData::Appointment(a)) => {
                assert_eq!(a.starts_at.as_deref(), Some("2021-05-26T16:00:00+01:00"));
                assert_eq!(
                    (
                        a.staff_id.as_deref(),
                        a.location_id.as_deref(),
                        a.service_id.as_deref()
                    ),
                    (Some("123"), Some("111"), Some("243665"))
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            e.occurred_at.map(|t| t.unix_timestamp()),
            Some(1_620_811_114)
        );
    }

    #[test]
    fn all_seventeen_names_map_and_unknown_names_are_generic() {
        assert_eq!(EVENTS.len(), 17);
        for (name, canonical) in EVENTS {
            let body = format!(
                r#"{{"name":"{name}","data":{{"break":{{"id":"9"}}}},"created_at":"2024-01-01T00:00:00+00:00"}}"#
            );
            assert_eq!(map(body).unwrap().event_type, *canonical);
        }
        let body =
            r#"{"name":"something-new","data":{},"created_at":"2024-01-01T00:00:00Z"}"#.to_owned();
        let e = map(body).unwrap();
        assert_eq!(
            (e.event_type.as_str(), e.provider_type.as_str()),
            ("docplanner.other", "something-new")
        );
    }

    #[test]
    fn moves_carry_both_bookings_and_keys_are_stable_across_copies() {
        let body = r#"{"name":"booking-moved","data":{"old_visit_booking":{"id":"1"},"new_visit_booking":{"id":"2"}},"created_at":"2024-01-01T00:00:00Z"}"#;
        let a = map(body.to_owned()).unwrap();
        // The same notification re-serialized (pulled rather than pushed) keeps its dedup key.
        let reordered = r#"{"created_at":"2024-01-01T00:00:00Z","name":"booking-moved","data":{"new_visit_booking":{"id":"2"},"old_visit_booking":{"id":"1"}}}"#;
        assert_eq!(map(reordered.to_owned()).unwrap().id, a.id);
        match a.data {
            Some(EventData::Appointment(x)) => assert_eq!(
                (
                    x.appointment_id.as_deref(),
                    x.previous_appointment_id.as_deref()
                ),
                (Some("2"), Some("1"))
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_notifications_have_codes() {
        assert_eq!(
            map(r#"{"data":{},"created_at":"2024-01-01T00:00:00Z"}"#.into()).unwrap_err(),
            "missing_field"
        );
        assert_eq!(
            map(r#"{"name":"slot-booked","data":[],"created_at":"2024-01-01T00:00:00Z"}"#.into())
                .unwrap_err(),
            "missing_field"
        );
        assert_eq!(
            map(r#"{"name":"slot-booked","data":{},"created_at":"yesterday"}"#.into()).unwrap_err(),
            "invalid_field"
        );
        assert_eq!(map("not json".into()).unwrap_err(), "invalid_json");
    }
}
