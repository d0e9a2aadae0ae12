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

use bytes::Bytes;

use super::extract::Pointers;
use super::first_header;
use super::settings::OneOrMany;
use crate::event::{CanonicalEvent, EventId};
use crate::providers::ReplyStyle;
use crate::providers::{MapError, Mapped, WebhookRequest};
use crate::section::ConfigIssue;
use crate::verify::handshake::Handshake;
use crate::verify::message_template::Piece;
use crate::verify::signed_message::SignedMessage;
use crate::verify::timestamp::{TimestampFormat, parse_unix_seconds};

/// The keys of `[sources.NAME.verify]` that go with every scheme: the mapping, the handshake and
/// the reply.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MappingSettings {
    /// Header holding the event type (GitHub's `X-GitHub-Event`).
    type_header: Option<String>,
    /// The provider's published event names. An HMAC over the body does not sign a header, so a
    /// type from `type_header` is kept only when it is one of these; anything else becomes
    /// `<provider>.other` (an attacker replaying a signed body cannot mint topics or types).
    type_names: Option<Vec<String>>,
    /// JSON pointer to the event type in the body (`/type`); several are joined with `.`
    /// (Pipedrive's `["/meta/action", "/meta/entity"]` gives `create.deal`).
    type_pointer: Option<OneOrMany>,
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
    /// How that time is written: by default RFC 3339 or Unix seconds, whichever parses;
    /// `unix_ms` for milliseconds.
    #[serde(default, deserialize_with = "super::settings::optional_choice")]
    occurred_at_format: Option<TimestampFormat>,
    /// `json` (default) or `form`: what the pointers above read. A form body reads as an object
    /// of its parameters (`/MessageSid`).
    body_format: Option<BodyFormat>,
    /// The handshake the sender makes before events flow (`slack`, `zoom`, `dropbox`, ...).
    pub handshake: Option<Handshake>,
    /// How to answer: `standard` (default), `empty` (status only, for senders that require an
    /// empty body), or a fixed JSON body for every 2xx (Discord interactions' `{"type":5}`).
    reply: Option<String>,
}

/// `body_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum BodyFormat {
    Json,
    Form,
}

#[derive(Debug, Clone)]
pub(super) struct Mapping {
    reply: ReplyStyle,
    form: bool,
    /// A pointer to a credential inside the body (a token scheme's `pointer`): blanked in what
    /// is published and dead-lettered.
    redact: Option<String>,
    type_header: Option<String>,
    /// Set when the type header is not covered by the signature: the names it may take.
    unsigned_type_names: Option<BTreeSet<String>>,
    /// The id header is not covered by the signature: the dedup key is the body's hash instead,
    /// and the header's value is kept as the `delivery_id` attribute.
    unsigned_id_header: bool,
    type_pointer: Vec<String>,
    event_type: Option<String>,
    id_header: Option<String>,
    id_pointer: Option<String>,
    subject_pointer: Option<String>,
    occurred_at_pointer: Option<String>,
    occurred_at_format: Option<TimestampFormat>,
    /// Every pointer above, in one list, and the reader that finds them all in one pass.
    body_pointers: Vec<String>,
    extractor: Pointers,
}

impl Mapping {
    /// `signed` is the scheme's signed message when it has one. A token, password or JWT
    /// authenticates the sender instead: nothing is signed there, and nothing is steerable by
    /// anyone without the credential, so no header needs fencing in.
    pub(super) fn new(
        key: &str,
        s: MappingSettings,
        signed: Option<&SignedMessage>,
        redact: Option<String>,
    ) -> Result<Self, Vec<ConfigIssue>> {
        let issue =
            |field: &str, reason: &str| vec![ConfigIssue::new(format!("{key}.{field}"), reason)];
        let reply = match s.reply.as_deref() {
            None | Some("standard") => ReplyStyle::Standard,
            Some("empty") => ReplyStyle::Empty,
            Some(text) => match serde_json::from_str::<serde_json::Value>(text) {
                Ok(serde_json::Value::Object(_)) => {
                    ReplyStyle::Fixed(crate::verify::intern(text.to_owned()))
                }
                _ => {
                    return Err(issue(
                        "reply",
                        "reply is `standard`, `empty` or a JSON object",
                    ));
                }
            },
        };
        // Signed fields inside the body are the one signature that may leave the body's other
        // bytes unsigned (Mailgun): then the dedup key must be signed, so a replay with other
        // content is a duplicate, never a second event.
        if let Some(signed) = signed.filter(|m| !m.signs_body()) {
            let fields = signed.signed_fields();
            if !s.id_pointer.as_deref().is_some_and(|p| fields.contains(&p)) {
                return Err(issue(
                    "id_pointer",
                    "the message does not sign the whole body: id_pointer must be one of its signed {field:...} pieces",
                ));
            }
        }
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
        let type_pointer = s.type_pointer.map(OneOrMany::into_vec).unwrap_or_default();
        let body_pointers: Vec<String> = type_pointer
            .iter()
            .chain(&s.id_pointer)
            .chain(&s.subject_pointer)
            .chain(&s.occurred_at_pointer)
            .cloned()
            .collect();
        let extractor = Pointers::new(body_pointers.iter().map(String::as_str));
        Ok(Mapping {
            body_pointers,
            extractor,
            reply,
            form: s.body_format == Some(BodyFormat::Form),
            redact,
            type_header: s.type_header,
            unsigned_type_names,
            unsigned_id_header,
            type_pointer,
            event_type: s.event_type,
            id_header: s.id_header,
            id_pointer: s.id_pointer,
            subject_pointer: s.subject_pointer,
            occurred_at_pointer: s.occurred_at_pointer,
            occurred_at_format: s.occurred_at_format,
        })
    }

    /// How the source answers a 2xx.
    pub(super) fn reply_style(&self) -> ReplyStyle {
        self.reply
    }

    /// `body` without the credential it carries (a token scheme's `pointer`), for what leaves the
    /// gateway. Unchanged when there is none or the body is not JSON (then it was refused anyway).
    pub(super) fn redact(&self, body: &Bytes) -> Bytes {
        let Some(pointer) = &self.redact else {
            return body.clone();
        };
        let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(body) else {
            return body.clone();
        };
        blank(&mut json, pointer);
        serde_json::to_vec(&json).map_or_else(|_| body.clone(), Bytes::from)
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
        let needs_json = !self.type_pointer.is_empty()
            || self.id_pointer.is_some()
            || self.subject_pointer.is_some()
            || self.occurred_at_pointer.is_some();
        // The text at each of `body_pointers`, in order.
        let values: Vec<Option<String>> = match (needs_json, self.form) {
            (false, _) => Vec::new(),
            // One pass over the body for just these values (`extract.rs`).
            (true, false) => self
                .extractor
                .extract(request.body)
                .map_err(|e| MapError::from_json(&e))?,
            // A form as an object of its parameters; a repeated name keeps its first value.
            (true, true) => {
                let mut object = serde_json::Map::new();
                for (k, v) in form_urlencoded::parse(request.body) {
                    object
                        .entry(k.into_owned())
                        .or_insert_with(|| serde_json::Value::String(v.into_owned()));
                }
                let object = serde_json::Value::Object(object);
                self.body_pointers
                    .iter()
                    .map(|p| {
                        object
                            .pointer(p)
                            .and_then(|v| v.as_str().map(str::to_owned))
                    })
                    .collect()
            }
        };
        let pointer = |p: Option<&str>| -> Option<String> {
            let p = p?;
            let at = self.body_pointers.iter().position(|known| known == p)?;
            values.get(at).cloned().flatten()
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
            .or_else(|| {
                let parts: Option<Vec<String>> =
                    self.type_pointer.iter().map(|p| pointer(Some(p))).collect();
                parts.filter(|p| !p.is_empty()).map(|p| p.join("."))
            })
            .or_else(|| self.event_type.clone())
            .ok_or(MapError::MissingField("event type"))?;
        let mut attributes = BTreeMap::new();
        let id = match pointer(self.id_pointer.as_deref()) {
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
        let occurred_at = match pointer(self.occurred_at_pointer.as_deref()) {
            Some(t) => Some(
                match self.occurred_at_format {
                    Some(format) => format.parse(&t).map_err(|_| ()),
                    None => OffsetDateTime::parse(&t, &Rfc3339)
                        .or_else(|_| parse_unix_seconds(&t).map_err(|_| ())),
                }
                .map_err(|_| MapError::InvalidField("occurred_at"))?,
            ),
            None => None,
        };
        let subject = pointer(self.subject_pointer.as_deref());
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
            payload: self.redact(request.body),
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

/// Replaces the strings at `pointer` (`*` for every array element) with `"[redacted]"`.
fn blank(json: &mut serde_json::Value, pointer: &str) {
    match pointer.split_once("/*") {
        Some((head, tail)) => {
            if let Some(items) = json.pointer_mut(head).and_then(|v| v.as_array_mut()) {
                for item in items {
                    blank(item, tail);
                }
            }
        }
        None => {
            if let Some(value) = json.pointer_mut(pointer).filter(|v| v.is_string()) {
                *value = serde_json::Value::String("[redacted]".into());
            }
        }
    }
}
