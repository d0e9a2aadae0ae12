//! Where a generic source finds the event's type, id, subject and time: headers, JSON pointers
//! into the body, or a fixed type. The same keys serve every scheme.
//!
//! What a signature does not cover is chosen by whoever replays one signed request, so the
//! unsigned values are fenced in here: an unsigned type header can only take the provider's
//! published names, and an unsigned id header never becomes the dedup key.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::first_header;
use crate::event::{CanonicalEvent, EventId};
use crate::providers::{MapError, Mapped, WebhookRequest};
use crate::section::ConfigIssue;
use crate::verify::message_template::Piece;
use crate::verify::signed_message::SignedMessage;
use crate::verify::timestamp::parse_unix_seconds;

/// The mapping keys of `[sources.NAME.verify]`, whatever the scheme.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MappingSettings {
    /// Header holding the event type (GitHub's `X-GitHub-Event`).
    type_header: Option<String>,
    /// The provider's published event names. An HMAC over the body does not sign a header, so a
    /// type from `type_header` is kept only when it is one of these; anything else becomes
    /// `<provider>.other` (an attacker replaying a signed body cannot mint topics or types).
    type_names: Option<Vec<String>>,
    /// JSON pointer to the event type in the body (`/type`).
    type_pointer: Option<String>,
    /// Fixed event type when the request does not say.
    event_type: Option<String>,
    /// Header holding the event id; with an HMAC scheme also what `{id}` in the message is.
    pub id_header: Option<String>,
    /// JSON pointer to the event id (dedup key); else `id_header`; else a hash of the body.
    id_pointer: Option<String>,
    /// JSON pointer to what the event is about.
    subject_pointer: Option<String>,
    /// JSON pointer to when it happened (RFC 3339 text or Unix seconds).
    occurred_at_pointer: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub(super) struct Mapping {
    type_header: Option<String>,
    /// Set when the type header is not covered by the signature: the names it may take.
    unsigned_type_names: Option<BTreeSet<String>>,
    /// The id header is not covered by the signature: the dedup key is the body's hash instead,
    /// and the header's value is kept as the `delivery_id` attribute.
    unsigned_id_header: bool,
    type_pointer: Option<String>,
    event_type: Option<String>,
    id_header: Option<String>,
    id_pointer: Option<String>,
    subject_pointer: Option<String>,
    occurred_at_pointer: Option<String>,
}

impl Mapping {
    /// `signed` is the scheme's signed message when it has one. A token, password or JWT
    /// authenticates the sender instead: nothing is signed there, and nothing is steerable by
    /// anyone without the credential, so no header needs fencing in.
    pub(super) fn new(
        key: &str,
        s: MappingSettings,
        signed: Option<&SignedMessage>,
    ) -> Result<Self, Vec<ConfigIssue>> {
        let (unsigned_type_names, unsigned_id_header) = match signed {
            Some(signed) => {
                let names = match (&s.type_header, &s.type_names) {
                    (None, _) => None,
                    (Some(_), Some(names)) => Some(names.iter().cloned().collect()),
                    (Some(_), None) => {
                        return Err(vec![ConfigIssue::new(
                            format!("{key}.type_names"),
                            "type_header is not covered by the signature: list the provider's event names (any other becomes <provider>.other)",
                        )]);
                    }
                };
                (names, s.id_header.is_some() && !signed.signs(Piece::Id))
            }
            None => (None, false),
        };
        Ok(Mapping {
            type_header: s.type_header,
            unsigned_type_names,
            unsigned_id_header,
            type_pointer: s.type_pointer,
            event_type: s.event_type,
            id_header: s.id_header,
            id_pointer: s.id_pointer,
            subject_pointer: s.subject_pointer,
            occurred_at_pointer: s.occurred_at_pointer,
        })
    }

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
                    // Bounded: unsigned text goes into every copy of the event.
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
