//! Avro encoding of [`CanonicalEvent`] with the schema in `schemas/event.avsc`.
//!
//! The schema is embedded at build time and parsed once, for its fingerprint, for readers and for
//! the registry. Events are written by `write_event` with the binary primitives in `binary.rs`,
//! straight from borrowed fields: apache-avro's generic `Value` path cost four times as much per
//! event, and its schema-aware serializer still most of the encode stage (`binary.rs` says why).

use std::sync::OnceLock;

use apache_avro::Schema;

mod binary;

use binary::Datum;

use super::codec::SchemaCodec;
use super::{CanonicalEvent, EventData, to_micros};

/// The canonical envelope schema, as committed.
pub const EVENT_AVSC: &str = include_str!("../../../schemas/event.avsc");
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

/// An Avro failure: the embedded schema did not load (caught before any request is served), or a
/// dead letter did not fit its record (`pipeline/dead_letters.rs`). Either is a bug, never bad
/// input: the event itself is written by `write_event`, which cannot fail.
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
    pub fn encode(&self, event: &CanonicalEvent) -> Vec<u8> {
        let mut datum = Datum(Vec::with_capacity(event.payload.len() + 256));
        write_event(&mut datum, event);
        datum.0
    }
}

impl std::ops::Deref for EventCodec {
    type Target = SchemaCodec;
    fn deref(&self) -> &SchemaCodec {
        &self.0
    }
}

/// Writes `e` as an `io.hookbridge.v1.Event` datum: the fields in `event.avsc` order, each union
/// as its branch index then the value. A change to the schema must change this too; the test
/// `written_like_apache_avro_writes_it` compares it with apache-avro's schema-driven writer.
fn write_event(out: &mut Datum, e: &CanonicalEvent) {
    out.string(e.id.as_str());
    out.string(&e.source);
    out.string(e.provider);
    out.string(&e.event_type);
    out.string(&e.provider_type);
    out.optional_string(e.subject.as_deref());
    out.optional_long(e.occurred_at.map(to_micros));
    out.long(to_micros(e.received_at));
    // `data`: null, then the records in the schema's order.
    match &e.data {
        None => out.branch(0),
        Some(EventData::CalendarChange(c)) => {
            out.branch(1);
            out.string(&c.kind);
            out.optional_string(c.channel_id.as_deref());
            out.optional_long(c.changes_since.map(to_micros));
            out.string_array(c.calendar_ids.iter().map(String::as_str));
        }
        Some(EventData::Appointment(a)) => {
            out.branch(2);
            out.optional_string(a.appointment_id.as_deref());
            out.string(&a.action);
            for field in [
                &a.status,
                &a.starts_at,
                &a.ends_at,
                &a.previous_appointment_id,
                &a.location_id,
                &a.staff_id,
                &a.client_id,
                &a.service_id,
            ] {
                out.optional_string(field.as_deref());
            }
        }
        Some(EventData::CrmRecord(r)) => {
            out.branch(3);
            out.string(&r.object_type);
            out.optional_string(r.object_id.as_deref());
            out.string(&r.action);
            out.optional_string(r.account_id.as_deref());
        }
    }
    out.bytes(&e.payload);
    out.string(&e.payload_content_type);
    out.string_map(e.attributes.iter());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Appointment, CrmRecord};
    use crate::event::{CalendarChange, EventId};
    use apache_avro::types::Value;
    use std::collections::BTreeMap;
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
            let fields = decode(&codec.encode(&sample(data)));
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

    /// The event as apache-avro's generic `Value`, built from the schema's field names, the
    /// independent reference `write_event` is held to.
    fn reference(e: &CanonicalEvent) -> Value {
        let s = |v: &str| Value::String(v.to_owned());
        let opt = |v: &Option<String>| match v {
            None => Value::Union(0, Box::new(Value::Null)),
            Some(v) => Value::Union(1, Box::new(s(v))),
        };
        let time = |t: Option<time::OffsetDateTime>| match t {
            None => Value::Union(0, Box::new(Value::Null)),
            Some(t) => Value::Union(1, Box::new(Value::TimestampMicros(to_micros(t)))),
        };
        let record = |fields: Vec<(&str, Value)>| {
            Value::Record(fields.into_iter().map(|(n, v)| (n.to_owned(), v)).collect())
        };
        let data = match &e.data {
            None => Value::Union(0, Box::new(Value::Null)),
            Some(EventData::CalendarChange(c)) => Value::Union(
                1,
                Box::new(record(vec![
                    ("kind", s(&c.kind)),
                    ("channel_id", opt(&c.channel_id)),
                    ("changes_since", time(c.changes_since)),
                    (
                        "calendar_ids",
                        Value::Array(c.calendar_ids.iter().map(|v| s(v)).collect()),
                    ),
                ])),
            ),
            Some(EventData::Appointment(a)) => Value::Union(
                2,
                Box::new(record(vec![
                    ("appointment_id", opt(&a.appointment_id)),
                    ("action", s(&a.action)),
                    ("status", opt(&a.status)),
                    ("starts_at", opt(&a.starts_at)),
                    ("ends_at", opt(&a.ends_at)),
                    ("previous_appointment_id", opt(&a.previous_appointment_id)),
                    ("location_id", opt(&a.location_id)),
                    ("staff_id", opt(&a.staff_id)),
                    ("client_id", opt(&a.client_id)),
                    ("service_id", opt(&a.service_id)),
                ])),
            ),
            Some(EventData::CrmRecord(r)) => Value::Union(
                3,
                Box::new(record(vec![
                    ("object_type", s(&r.object_type)),
                    ("object_id", opt(&r.object_id)),
                    ("action", s(&r.action)),
                    ("account_id", opt(&r.account_id)),
                ])),
            ),
        };
        record(vec![
            ("id", s(e.id.as_str())),
            ("source", s(&e.source)),
            ("provider", s(e.provider)),
            ("type", s(&e.event_type)),
            ("provider_type", s(&e.provider_type)),
            ("subject", opt(&e.subject)),
            ("occurred_at", time(e.occurred_at)),
            (
                "received_at",
                Value::TimestampMicros(to_micros(e.received_at)),
            ),
            ("data", data),
            ("payload", Value::Bytes(e.payload.to_vec())),
            ("payload_content_type", s(&e.payload_content_type)),
            (
                "attributes",
                Value::Map(
                    e.attributes
                        .iter()
                        .map(|(k, v)| (k.clone(), s(v)))
                        .collect(),
                ),
            ),
        ])
    }

    /// Byte for byte what apache-avro writes for the same event, schema-validated, in every
    /// branch of every union, with empty and multi-block-length values, times before 1970 and
    /// non-ASCII text.
    #[test]
    fn written_like_apache_avro_writes_it() {
        let codec = EventCodec::get().unwrap();
        let long = "ü".repeat(200);
        let full_appointment = Appointment {
            appointment_id: Some("a1".into()),
            action: "booked".into(),
            status: Some("confirmed".into()),
            starts_at: Some("2024-10-14T09:00:00Z".into()),
            ends_at: Some(long.clone()),
            previous_appointment_id: Some("a0".into()),
            location_id: Some("l".into()),
            staff_id: Some("s".into()),
            client_id: Some("c".into()),
            service_id: Some(String::new()),
        };
        let mut events = Vec::new();
        for data in [
            None,
            Some(EventData::CalendarChange(CalendarChange::default())),
            Some(EventData::CalendarChange(CalendarChange {
                kind: "change".into(),
                channel_id: Some("chn_1".into()),
                changes_since: Some(datetime!(1969-07-20 20:17:40.123456 UTC)),
                calendar_ids: (0..70).map(|i| format!("cal_{i}")).collect(),
            })),
            Some(EventData::Appointment(Appointment::default())),
            Some(EventData::Appointment(full_appointment)),
            Some(EventData::CrmRecord(CrmRecord::default())),
            Some(EventData::CrmRecord(CrmRecord {
                object_type: "invoice".into(),
                object_id: Some("i1".into()),
                action: "updated".into(),
                account_id: Some("acc".into()),
            })),
        ] {
            let mut e = sample(data);
            events.push(e.clone());
            e.subject = None;
            e.occurred_at = None;
            e.attributes = (0..3).map(|i| (format!("k{i}"), long.clone())).collect();
            e.payload = bytes::Bytes::from(vec![7u8; 5_000]);
            events.push(e.clone());
            e.attributes.clear();
            e.payload = bytes::Bytes::new();
            e.received_at = datetime!(1900-01-01 00:00:00 UTC);
            events.push(e);
        }
        let writer = apache_avro::writer::datum::GenericDatumWriter::builder(codec.schema())
            .build()
            .unwrap();
        for (i, e) in events.iter().enumerate() {
            let written = codec.encode(e);
            let want = reference(e);
            if e.attributes.len() > 1 {
                // apache-avro writes a map in its `HashMap`'s order: compare what is read back.
                assert_eq!(codec.read_one(&written).unwrap(), want, "event {i}: {e:?}");
            } else {
                let bytes = writer.write_value_to_vec(want).unwrap();
                assert_eq!(written, bytes, "event {i}: {e:?}");
            }
        }
    }
}
