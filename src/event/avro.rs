//! Avro encoding of [`CanonicalEvent`] with the schema in `schemas/event.avsc`.
//!
//! The schema is embedded at build time and parsed once. Records are written with apache-avro's
//! schema-aware serde serializer straight from borrowed fields: the generic `Value` path costs four
//! times as much per event and allocates a tree we would throw away.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use apache_avro::Schema;
use serde::ser::{Serialize, Serializer};

use super::codec::SchemaCodec;
use super::{Appointment, CalendarChange, CanonicalEvent, CrmRecord, EventData, to_micros};

/// The canonical envelope schema, as committed.
pub const EVENT_AVSC: &str = include_str!("../../schemas/event.avsc");
/// Full name of the envelope record; named in every message's content type.
pub const EVENT_SCHEMA_NAME: &str = "io.hookbridge.v1.Event";
/// Media type of every published payload (CloudEvents `datacontenttype`).
pub const EVENT_CONTENT_TYPE: &str = "application/avro;schema=io.hookbridge.v1.Event";

/// The most apache-avro may allocate for one value it decodes (its own default is 512 MiB, and a
/// map's hash table may take twice that): without a lower cap, a corrupt length prefix of a few
/// bytes made `redrive`'s dead-letter decoder allocate 650 MB (found by `fuzz/`). No record
/// hookbridge writes comes near it: brokers refuse far smaller messages (NATS at most 64 MiB,
/// Kafka 1 MB by default).
pub const MAX_DECODE_ALLOCATION_BYTES: usize = 64 * 1024 * 1024;

/// Encoding failures. They mean a bug (the event does not fit the schema), never bad input.
#[derive(Debug, thiserror::Error)]
#[error("avro: {0}")]
pub struct EncodeError(String);

impl From<String> for EncodeError {
    fn from(message: String) -> Self {
        EncodeError(message)
    }
}

/// The event schema's codec, shared by every request. Its schema and fingerprint come from the
/// [`SchemaCodec`] it derefs to.
pub struct EventCodec(SchemaCodec);

static SCHEMA: OnceLock<Result<Schema, String>> = OnceLock::new();
static CODEC: OnceLock<Result<EventCodec, String>> = OnceLock::new();

impl EventCodec {
    /// The process-wide codec. Fails only if the embedded schema is broken, which the unit tests and
    /// `Application::build` catch before any request is served.
    pub fn get() -> Result<&'static EventCodec, EncodeError> {
        CODEC
            .get_or_init(|| SchemaCodec::load(EVENT_AVSC, &SCHEMA).map(EventCodec))
            .as_ref()
            .map_err(|e| EncodeError(e.clone()))
    }

    /// Encodes one event as a bare Avro datum (no container header): consumers decode it with
    /// `schemas/event.avsc`, which the content type names.
    pub fn encode(&self, event: &CanonicalEvent) -> Result<Vec<u8>, EncodeError> {
        self.0
            .write(&AvroEvent(event), event.payload.len() + 256)
            .map_err(EncodeError)
    }
}

impl std::ops::Deref for EventCodec {
    type Target = SchemaCodec;
    fn deref(&self) -> &SchemaCodec {
        &self.0
    }
}

/// Serializes a [`CanonicalEvent`] in `event.avsc` field order.
struct AvroEvent<'a>(&'a CanonicalEvent);

impl Serialize for AvroEvent<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let e = self.0;
        let mut r = s.serialize_struct("Event", 12)?;
        r.serialize_field("id", e.id.as_str())?;
        r.serialize_field("source", &e.source)?;
        r.serialize_field("provider", e.provider)?;
        r.serialize_field("type", &e.event_type)?;
        r.serialize_field("provider_type", &e.provider_type)?;
        r.serialize_field("subject", &e.subject)?;
        r.serialize_field("occurred_at", &e.occurred_at.map(to_micros))?;
        r.serialize_field("received_at", &to_micros(e.received_at))?;
        r.serialize_field("data", &AvroData(e.data.as_ref()))?;
        r.serialize_field("payload", &AvroBytes(&e.payload))?;
        r.serialize_field("payload_content_type", &e.payload_content_type)?;
        r.serialize_field("attributes", &e.attributes as &BTreeMap<String, String>)?;
        r.end()
    }
}

pub(crate) struct AvroBytes<'a>(pub(crate) &'a [u8]);

impl Serialize for AvroBytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// The `data` union: the variant index is the union branch (0 = null, then the records in schema order).
struct AvroData<'a>(Option<&'a EventData>);

impl Serialize for AvroData<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            None => s.serialize_newtype_variant("data", 0, "null", &()),
            Some(EventData::CalendarChange(c)) => {
                s.serialize_newtype_variant("data", 1, "CalendarChange", &AvroCalendar(c))
            }
            Some(EventData::Appointment(a)) => {
                s.serialize_newtype_variant("data", 2, "Appointment", &AvroAppointment(a))
            }
            Some(EventData::CrmRecord(r)) => {
                s.serialize_newtype_variant("data", 3, "CrmRecord", &AvroCrm(r))
            }
        }
    }
}

struct AvroCalendar<'a>(&'a CalendarChange);

impl Serialize for AvroCalendar<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let c = self.0;
        let mut r = s.serialize_struct("CalendarChange", 4)?;
        r.serialize_field("kind", &c.kind)?;
        r.serialize_field("channel_id", &c.channel_id)?;
        r.serialize_field("changes_since", &c.changes_since.map(to_micros))?;
        r.serialize_field("calendar_ids", &c.calendar_ids)?;
        r.end()
    }
}

struct AvroAppointment<'a>(&'a Appointment);

impl Serialize for AvroAppointment<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let a = self.0;
        let mut r = s.serialize_struct("Appointment", 10)?;
        r.serialize_field("appointment_id", &a.appointment_id)?;
        r.serialize_field("action", &a.action)?;
        r.serialize_field("status", &a.status)?;
        r.serialize_field("starts_at", &a.starts_at)?;
        r.serialize_field("ends_at", &a.ends_at)?;
        r.serialize_field("previous_appointment_id", &a.previous_appointment_id)?;
        r.serialize_field("location_id", &a.location_id)?;
        r.serialize_field("staff_id", &a.staff_id)?;
        r.serialize_field("client_id", &a.client_id)?;
        r.serialize_field("service_id", &a.service_id)?;
        r.end()
    }
}

struct AvroCrm<'a>(&'a CrmRecord);

impl Serialize for AvroCrm<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let c = self.0;
        let mut r = s.serialize_struct("CrmRecord", 4)?;
        r.serialize_field("object_type", &c.object_type)?;
        r.serialize_field("object_id", &c.object_id)?;
        r.serialize_field("action", &c.action)?;
        r.serialize_field("account_id", &c.account_id)?;
        r.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{CalendarChange, EventId};
    use apache_avro::types::Value;
    use time::macros::datetime;

    fn sample(data: Option<EventData>) -> CanonicalEvent {
        CanonicalEvent {
            id: EventId::parse("abc").unwrap(),
            source: "cronofy".into(),
            provider: "cronofy",
            event_type: "calendar.changed".into(),
            provider_type: "change".into(),
            subject: Some("chn_1".into()),
            partition_key: "chn_1".into(),
            occurred_at: Some(datetime!(2024-10-14 09:24:16 UTC)),
            received_at: datetime!(2024-10-14 09:24:17.5 UTC),
            data,
            payload: bytes::Bytes::from_static(b"{}"),
            payload_content_type: "application/json".into(),
            attributes: BTreeMap::from([("k".into(), "v".into())]),
        }
    }

    fn decode(bytes: &[u8]) -> Vec<(String, Value)> {
        let codec = EventCodec::get().unwrap();
        let reader = apache_avro::reader::datum::GenericDatumReader::builder(codec.schema())
            .build()
            .unwrap();
        match reader.read_value(&mut &bytes[..]).unwrap() {
            Value::Record(fields) => fields,
            other => panic!("not a record: {other:?}"),
        }
    }

    #[test]
    fn every_data_branch_round_trips_through_the_schema() {
        let codec = EventCodec::get().unwrap();
        let calendar = EventData::CalendarChange(CalendarChange {
            kind: "change".into(),
            channel_id: Some("chn_1".into()),
            changes_since: Some(datetime!(2024-10-14 09:24:16 UTC)),
            calendar_ids: vec!["cal_1".into()],
        });
        let appointment = EventData::Appointment(Appointment {
            action: "booked".into(),
            ..Default::default()
        });
        let crm = EventData::CrmRecord(CrmRecord {
            object_type: "client".into(),
            action: "created".into(),
            ..Default::default()
        });
        for (data, branch) in [
            (None, 0),
            (Some(calendar), 1),
            (Some(appointment), 2),
            (Some(crm), 3),
        ] {
            let fields = decode(&codec.encode(&sample(data)).unwrap());
            let (_, value) = fields.iter().find(|(n, _)| n == "data").unwrap();
            match value {
                Value::Union(index, _) => assert_eq!(*index, branch),
                other => panic!("data is not a union: {other:?}"),
            }
            let (_, received) = fields.iter().find(|(n, _)| n == "received_at").unwrap();
            assert_eq!(*received, Value::TimestampMicros(1_728_897_857_500_000));
        }
    }

    #[test]
    fn fingerprint_is_stable_hex() {
        let fp = EventCodec::get().unwrap().fingerprint().to_owned();
        assert_eq!(fp.len(), 16, "{fp}");
        assert!(fp.chars().all(|c| c.is_ascii_hexdigit()));
    }

    /// Schemas evolve compatibly: the current schema must read everything written with any released
    /// version kept in `schemas/history/` (BACKWARD, as a schema registry would enforce). Releasing
    /// a new version means copying `event.avsc` there as the next `event.vN.avsc`.
    #[test]
    fn current_schema_reads_every_released_version() {
        use apache_avro::schema_compatibility::SchemaCompatibility;
        let current = EventCodec::get().unwrap().schema();
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/history");
        let mut checked = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let old = Schema::parse_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            if let Err(e) = SchemaCompatibility::can_read(&old, current) {
                panic!(
                    "event.avsc cannot read data written with {}: {e}",
                    path.display()
                );
            }
            checked += 1;
        }
        assert!(checked >= 1, "no released schema in {dir}");
    }

    /// The check above has teeth: a new required field, or a field retyped, is refused.
    #[test]
    fn incompatible_changes_are_detected() {
        use apache_avro::schema_compatibility::SchemaCompatibility;
        let current = EventCodec::get().unwrap().schema();
        let required = EVENT_AVSC.replacen(
            r#"{"name": "id", "type": "string","#,
            r#"{"name": "tenant", "type": "string"}, {"name": "id", "type": "string","#,
            1,
        );
        assert_ne!(required, EVENT_AVSC, "the edit applied");
        let required = Schema::parse_str(&required).unwrap();
        assert!(SchemaCompatibility::can_read(current, &required).is_err());
        let retyped = EVENT_AVSC.replacen(
            r#"{"name": "provider", "type": "string","#,
            r#"{"name": "provider", "type": "int","#,
            1,
        );
        assert_ne!(retyped, EVENT_AVSC, "the edit applied");
        let retyped = Schema::parse_str(&retyped).unwrap();
        assert!(SchemaCompatibility::can_read(current, &retyped).is_err());
    }
}
