//! CloudEvents 1.0 attributes of a [`CanonicalEvent`], in binary content mode: the Avro record is the
//! message body and the attributes travel as headers. Each publisher applies its protocol binding's
//! header prefix (`ce_` for Kafka, `ce-` for NATS); `datacontenttype` becomes `content-type`.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::CanonicalEvent;
use super::avro::{EVENT_CONTENT_TYPE, EVENT_SCHEMA_NAME};

/// Prefix of CloudEvents `type` values: `io.hookbridge.calendar.changed`.
pub const TYPE_PREFIX: &str = "io.hookbridge.";

/// The attributes as (name without prefix, value) pairs, plus the content type.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudEventAttributes {
    pub attributes: Vec<(&'static str, String)>,
    pub content_type: &'static str,
}

/// What every message hookbridge writes says about itself, events and dead letters alike.
pub struct Envelope<'a> {
    pub id: &'a str,
    /// The configured source name.
    pub source: &'a str,
    /// Without [`TYPE_PREFIX`]: `calendar.changed`, `dead_letter`.
    pub event_type: &'a str,
    pub time: OffsetDateTime,
    /// Full name of the Avro record and its schema's Rabin fingerprint (hex).
    pub schema_name: &'a str,
    pub schema_fingerprint: &'a str,
    pub content_type: &'static str,
}

impl CloudEventAttributes {
    /// The required attributes and `dataschema`, which names the exact schema (by fingerprint) so
    /// that a consumer can tell schema versions apart without a registry.
    pub fn of_envelope(envelope: &Envelope<'_>) -> Self {
        let Envelope {
            id,
            source,
            event_type,
            time,
            schema_name,
            schema_fingerprint,
            content_type,
        } = envelope;
        CloudEventAttributes {
            attributes: vec![
                ("specversion", "1.0".to_owned()),
                ("id", (*id).to_owned()),
                ("source", format!("/hookbridge/sources/{source}")),
                ("type", format!("{TYPE_PREFIX}{event_type}")),
                ("time", time.format(&Rfc3339).unwrap_or_default()),
                (
                    "dataschema",
                    format!("urn:avro:{schema_name}:rabin:{schema_fingerprint}"),
                ),
            ],
            content_type,
        }
    }

    pub fn of(event: &CanonicalEvent, schema_fingerprint: &str) -> Self {
        let mut attributes = Self::of_envelope(&Envelope {
            id: event.id.as_str(),
            source: &event.source,
            event_type: &event.event_type,
            // When the occurrence happened; providers that do not say get the receive time.
            time: event.occurred_at.unwrap_or(event.received_at),
            schema_name: EVENT_SCHEMA_NAME,
            schema_fingerprint,
            content_type: EVENT_CONTENT_TYPE,
        });
        // Partitioning extension: the same value as the Kafka record key.
        attributes
            .attributes
            .push(("partitionkey", event.partition_key.clone()));
        if let Some(subject) = &event.subject {
            attributes.attributes.push(("subject", subject.clone()));
        }
        attributes
    }
}
