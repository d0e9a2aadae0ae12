//! Where a generic source finds the event's type, id, subject and time: headers, JSON pointers
//! into the body, or a fixed type. The same keys serve every scheme.
//!
//! What a signature does not cover is chosen by whoever replays one signed request, so the
//! unsigned values are fenced in here: an unsigned type header can only take the provider's
//! published names, and an unsigned id header never becomes the dedup key.

use std::collections::{BTreeMap, BTreeSet};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::first_header;
use crate::event::{CanonicalEvent, EventId};
use crate::providers::{MapError, Mapped, WebhookRequest};
use crate::verify::timestamp::parse_unix_seconds;

#[derive(Debug, Clone, Default)]
pub(super) struct Mapping {
    pub(super) type_header: Option<String>,
    /// Set when the type header is not covered by the signature: the names it may take.
    pub(super) unsigned_type_names: Option<BTreeSet<String>>,
    /// The id header is not covered by the signature: the dedup key is the body's hash instead,
    /// and the header's value is kept as the `delivery_id` attribute.
    pub(super) unsigned_id_header: bool,
    pub(super) type_pointer: Option<String>,
    pub(super) event_type: Option<String>,
    pub(super) id_header: Option<String>,
    pub(super) id_pointer: Option<String>,
    pub(super) subject_pointer: Option<String>,
    pub(super) occurred_at_pointer: Option<String>,
}

impl Mapping {
    /// The event of an authentic request; `kind` is the provider kind it is published under.
    pub(super) fn map(
        &self,
        kind: &'static str,
        source: &str,
        request: &WebhookRequest<'_>,
    ) -> Result<Mapped, MapError> {
        // The body is parsed only when a pointer needs it: a token source with header mapping
        // accepts any body, JSON or not.
        let needs_json = self.type_pointer.is_some()
            || self.id_pointer.is_some()
            || self.subject_pointer.is_some()
            || self.occurred_at_pointer.is_some();
        let json: Option<serde_json::Value> = if needs_json {
            Some(serde_json::from_slice(request.body).map_err(|e| MapError::from_json(&e))?)
        } else {
            None
        };
        let pointer = |p: &Option<String>| -> Option<String> {
            let value = json.as_ref()?.pointer(p.as_deref()?)?;
            match value {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        };
        let header = |h: &Option<String>| {
            h.as_deref()
                .and_then(|h| first_header(request, h))
                .map(str::to_owned)
        };
        let unsigned_type = header(&self.type_header).map(|name| match &self.unsigned_type_names {
            Some(known) if !known.contains(&name) => format!("{kind}.other"),
            _ => name,
        });
        let event_type = unsigned_type
            .or_else(|| pointer(&self.type_pointer))
            .or_else(|| self.event_type.clone())
            .ok_or(MapError::MissingField("event type"))?;
        let mut attributes = BTreeMap::new();
        let id = match pointer(&self.id_pointer) {
            Some(raw) => EventId::parse(&raw).map_err(|_| MapError::InvalidField("id"))?,
            None => match header(&self.id_header) {
                // Not signed: a replayed body with a fresh id must still be the same event.
                Some(raw) if self.unsigned_id_header => {
                    let kept: String = raw.chars().take(200).collect();
                    attributes.insert("delivery_id".to_owned(), kept);
                    EventId::from_content(source, &[request.body])
                }
                Some(raw) => EventId::parse(&raw).map_err(|_| MapError::InvalidField("id"))?,
                None => EventId::from_content(source, &[request.body]),
            },
        };
        let occurred_at = match pointer(&self.occurred_at_pointer) {
            Some(t) => Some(
                OffsetDateTime::parse(&t, &Rfc3339)
                    .or_else(|_| parse_unix_seconds(&t).map_err(|_| ()))
                    .map_err(|_| MapError::InvalidField("occurred_at"))?,
            ),
            None => None,
        };
        let subject = pointer(&self.subject_pointer);
        Ok(Mapped::Event(Box::new(CanonicalEvent {
            partition_key: subject.clone().unwrap_or_else(|| id.to_string()),
            id,
            source: source.to_owned(),
            provider: kind,
            event_type: event_type.clone(),
            provider_type: event_type,
            subject,
            occurred_at,
            received_at: request.received_at,
            data: None,
            payload: request.body.clone(),
            payload_content_type: request
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/octet-stream")
                .to_owned(),
            attributes,
        })))
    }
}
