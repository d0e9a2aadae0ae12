//! The canonical event every provider's webhook is mapped to (`schemas/event.avsc`), and the newtype
//! for its id, which is the dedup key.

pub mod avro;
pub mod cloudevents;
pub mod codec;
pub mod fingerprint;

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// The dedup key: stable across a provider's retries of one notification. Printable ASCII only,
/// because it travels in Kafka headers, `Nats-Msg-Id` and the CloudEvents `id`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(String);

impl EventId {
    pub const MAX_LEN: usize = 200;

    /// Accepts an id supplied by the provider (SNS `MessageId`), refusing anything unfit for a header.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.is_empty() || raw.len() > Self::MAX_LEN {
            return Err(format!("id must be 1 to {} characters", Self::MAX_LEN));
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("id must be printable ASCII without spaces".into());
        }
        Ok(EventId(raw.to_owned()))
    }

    /// An id derived from content, for providers that send none: `sha256:<hex>` of the source name
    /// and the given parts, each length-prefixed so that ("ab","c") and ("a","bc") differ. The source
    /// is included so that two sources receiving the same bytes (two tenants, or one account
    /// routed twice) never collapse into one event where they share a stream.
    pub fn from_content(source: &str, parts: &[&[u8]]) -> Self {
        let mut hasher = Sha256::new();
        for part in std::iter::once(&source.as_bytes()).chain(parts) {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        EventId(format!("sha256:{}", hex::encode(hasher.finalize())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({})", self.0)
    }
}

/// A verified, mapped webhook, ready to encode.
#[derive(Debug, Clone)]
pub struct CanonicalEvent {
    pub id: EventId,
    pub source: String,
    pub provider: &'static str,
    /// Canonical `<domain>.<action>` type.
    pub event_type: String,
    /// The provider's own event name.
    pub provider_type: String,
    pub subject: Option<String>,
    /// Kafka record key: stable per subject so one subject's events stay in order.
    pub partition_key: String,
    pub occurred_at: Option<OffsetDateTime>,
    pub received_at: OffsetDateTime,
    pub data: Option<EventData>,
    /// The payload as received, minus secrets.
    pub payload: Bytes,
    pub payload_content_type: String,
    pub attributes: BTreeMap<String, String>,
}

/// The typed part of an event: one branch of the `data` union in `event.avsc`.
#[derive(Debug, Clone, PartialEq)]
pub enum EventData {
    CalendarChange(CalendarChange),
    Appointment(Appointment),
    CrmRecord(CrmRecord),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct CalendarChange {
    pub kind: String,
    pub channel_id: Option<String>,
    pub changes_since: Option<OffsetDateTime>,
    pub calendar_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Appointment {
    pub appointment_id: Option<String>,
    pub action: String,
    pub status: Option<String>,
    pub starts_at: Option<String>,
    pub ends_at: Option<String>,
    pub previous_appointment_id: Option<String>,
    pub location_id: Option<String>,
    pub staff_id: Option<String>,
    pub client_id: Option<String>,
    pub service_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct CrmRecord {
    pub object_type: String,
    pub object_id: Option<String>,
    pub action: String,
    pub account_id: Option<String>,
}

/// Microseconds since the Unix epoch, as Avro `timestamp-micros` wants.
pub fn to_micros(t: OffsetDateTime) -> i64 {
    let nanos = t.unix_timestamp_nanos() / 1_000;
    i64::try_from(nanos).unwrap_or(if nanos < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_refuse_header_unsafe_text() {
        assert!(EventId::parse("26858270-545e-5848-82a2-e05566af3dcf").is_ok());
        assert!(EventId::parse("").is_err());
        assert!(EventId::parse("a b").is_err());
        assert!(EventId::parse("a\r\nX-Injected: 1").is_err());
        assert!(EventId::parse(&"x".repeat(201)).is_err());
    }

    #[test]
    fn content_ids_are_length_prefixed_and_scoped_by_source() {
        let id = EventId::from_content;
        assert_ne!(id("s", &[b"ab", b"c"]), id("s", &[b"a", b"bc"]));
        assert_ne!(id("s1", &[b"x"]), id("s2", &[b"x"]));
        assert!(id("s", &[b"x"]).as_str().starts_with("sha256:"));
    }
}
