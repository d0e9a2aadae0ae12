//! CloudEvents 1.0 attributes of a [`CanonicalEvent`], in binary content mode: the Avro record is the
//! message body and the attributes travel as headers. Each publisher applies its protocol binding's
//! header prefix (`ce_` for Kafka, `ce-` for NATS); `datacontenttype` becomes `content-type`.

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

impl CloudEventAttributes {
    pub fn of(event: &CanonicalEvent, schema_fingerprint: &str) -> Self {
        // `time` is when the occurrence happened; providers that do not say get the receive time.
        let time = event.occurred_at.unwrap_or(event.received_at);
        let mut attributes = vec![
            ("specversion", "1.0".to_owned()),
            ("id", event.id.as_str().to_owned()),
            ("source", format!("/hookbridge/sources/{}", event.source)),
            ("type", format!("{TYPE_PREFIX}{}", event.event_type)),
            ("time", time.format(&Rfc3339).unwrap_or_default()),
            (
                "dataschema",
                format!("urn:avro:{EVENT_SCHEMA_NAME}:rabin:{schema_fingerprint}"),
            ),
            // Partitioning extension: the same value as the Kafka record key.
            ("partitionkey", event.partition_key.clone()),
        ];
        if let Some(subject) = &event.subject {
            attributes.push(("subject", subject.clone()));
        }
        CloudEventAttributes {
            attributes,
            content_type: EVENT_CONTENT_TYPE,
        }
    }
}
