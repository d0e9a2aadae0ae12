//! CloudEvents 1.0 attributes of a [`CanonicalEvent`], in binary content mode: the Avro record is the
//! message body and the attributes travel as headers. Each publisher applies its protocol binding's
//! header prefix (`ce_` for Kafka, `ce-` for NATS); `datacontenttype` becomes `content-type`.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::CanonicalEvent;
use super::avro::{EVENT_CONTENT_TYPE, EVENT_SCHEMA_NAME};

/// Prefix of CloudEvents `type` values: `io.hookbridge.calendar.changed`.
pub const TYPE_PREFIX: &str = "io.hookbridge.";

/// Every attribute hookbridge writes: its name, then its header under the Kafka binding (`ce_`)
/// and under the NATS binding (`ce-`). Spelled out here so that no publish formats a header name,
/// and the spool maps a name read from disk back to one of these.
const ATTRIBUTES: [(&str, &str, &str); 8] = [
    ("specversion", "ce_specversion", "ce-specversion"),
    ("id", "ce_id", "ce-id"),
    ("source", "ce_source", "ce-source"),
    ("type", "ce_type", "ce-type"),
    ("time", "ce_time", "ce-time"),
    ("dataschema", "ce_dataschema", "ce-dataschema"),
    ("partitionkey", "ce_partitionkey", "ce-partitionkey"),
    ("subject", "ce_subject", "ce-subject"),
];

/// A CloudEvents protocol binding: where the attributes go, and under which header names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binding {
    Kafka,
    Nats,
}

fn attribute(name: &str) -> Option<&'static (&'static str, &'static str, &'static str)> {
    ATTRIBUTES.iter().find(|a| a.0 == name)
}

/// The attribute named `name`, as its `&'static` name (for values read back from disk).
pub fn known_attribute(name: &str) -> Option<&'static str> {
    attribute(name).map(|a| a.0)
}

/// The header that carries attribute `name` under `binding`; `None` for a name hookbridge does
/// not write.
pub fn header_name(name: &str, binding: Binding) -> Option<&'static str> {
    let attribute = attribute(name)?;
    Some(match binding {
        Binding::Kafka => attribute.1,
        Binding::Nats => attribute.2,
    })
}

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
        // Room for the two `of` adds, so a webhook's attributes are one allocation.
        let mut attributes = Vec::with_capacity(ATTRIBUTES.len());
        attributes.extend([
            ("specversion", "1.0".to_owned()),
            ("id", (*id).to_owned()),
            ("source", format!("/hookbridge/sources/{source}")),
            ("type", format!("{TYPE_PREFIX}{event_type}")),
            ("time", time.format(&Rfc3339).unwrap_or_default()),
            (
                "dataschema",
                format!("urn:avro:{schema_name}:rabin:{schema_fingerprint}"),
            ),
        ]);
        CloudEventAttributes {
            attributes,
            content_type,
        }
    }

    /// Each attribute's header under `binding`, with its value.
    pub fn headers(&self, binding: Binding) -> impl Iterator<Item = (&'static str, &str)> {
        self.attributes
            .iter()
            .filter_map(move |(name, value)| Some((header_name(name, binding)?, value.as_str())))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_attribute_written_has_a_header_under_both_bindings() {
        let event = CanonicalEvent {
            id: crate::event::EventId::parse("evt-1").unwrap(),
            source: "shop".into(),
            provider: "generic",
            event_type: "order.created".into(),
            provider_type: "order.created".into(),
            subject: Some("order/1".into()),
            partition_key: "order/1".into(),
            occurred_at: None,
            received_at: OffsetDateTime::UNIX_EPOCH,
            data: None,
            payload: bytes::Bytes::new(),
            payload_content_type: "application/json".into(),
            attributes: Default::default(),
        };
        let attributes = CloudEventAttributes::of(&event, "00");
        for binding in [Binding::Kafka, Binding::Nats] {
            let prefix = match binding {
                Binding::Kafka => "ce_",
                Binding::Nats => "ce-",
            };
            let headers: Vec<_> = attributes.headers(binding).collect();
            assert_eq!(
                headers.len(),
                attributes.attributes.len(),
                "none is dropped"
            );
            for ((name, value), (header, header_value)) in attributes.attributes.iter().zip(headers)
            {
                assert_eq!(header, format!("{prefix}{name}"));
                assert_eq!(header_value, value);
            }
        }
        assert_eq!(header_name("unknown", Binding::Nats), None);
    }
}
