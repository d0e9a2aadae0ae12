//! The dead letter's Avro encoding and its checked decoding (for `redrive` and inspection tools).

use std::sync::OnceLock;

use apache_avro::Schema;
use apache_avro::types::Value;
use bytes::Bytes;
use serde::ser::{Serialize, SerializeStruct, Serializer};
use time::OffsetDateTime;

use super::{DEAD_LETTER_AVSC, DeadLetter, Stage};
use crate::event::codec::SchemaCodec;
use crate::event::to_micros;

/// A byte field, which serde would otherwise write as an array of ints.
struct AvroBytes<'a>(&'a [u8]);

impl Serialize for AvroBytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// Encoding failures. They mean a bug (the record does not fit the schema), never bad input.
#[derive(Debug, thiserror::Error)]
#[error("dead letter avro: {0}")]
pub struct EncodeError(String);

/// Bytes that are not one dead letter written with `dead_letter.avsc`.
#[derive(Debug, thiserror::Error)]
#[error("not a dead letter: {0}")]
pub struct DecodeError(String);

/// The dead-letter schema's codec. Its schema and fingerprint come from the [`SchemaCodec`] it
/// derefs to.
pub struct DeadLetterCodec(SchemaCodec);

static SCHEMA: OnceLock<Result<Schema, String>> = OnceLock::new();
static CODEC: OnceLock<Result<DeadLetterCodec, String>> = OnceLock::new();

impl DeadLetterCodec {
    /// The process-wide codec. Fails only if the embedded schema is broken, which the unit tests
    /// catch.
    pub fn get() -> Result<&'static DeadLetterCodec, EncodeError> {
        CODEC
            .get_or_init(|| SchemaCodec::load(DEAD_LETTER_AVSC, &SCHEMA).map(DeadLetterCodec))
            .as_ref()
            .map_err(|e| EncodeError(e.clone()))
    }

    /// Encodes one dead letter as a bare Avro datum (no container header).
    pub fn encode(&self, letter: &DeadLetter) -> Result<Vec<u8>, EncodeError> {
        self.0
            .write(&AvroDeadLetter(letter), letter.body.len() + 512)
            .map_err(EncodeError)
    }

    /// Decodes one bare datum written with the current schema, for redrive and inspection tools.
    /// Any input gives a record or an error, never a panic. Every field's type is checked rather
    /// than trusted: apache-avro returns `null` for a string cut short by the end of input. (In
    /// this schema a later read then fails, but the checks do not rely on that.)
    pub fn decode(&self, bytes: &[u8]) -> Result<DeadLetter, DecodeError> {
        let value = self.0.read_one(bytes).map_err(DecodeError)?;
        let Value::Record(mut fields) = value else {
            return Err(DecodeError("the datum is not a record".into()));
        };
        let f = &mut fields;
        Ok(DeadLetter {
            id: field(f, "id", text)?,
            source: field(f, "source", text)?,
            provider: field(f, "provider", text)?,
            stage: field(f, "stage", |v| match text(v)?.as_str() {
                "map" => Some(Stage::Map),
                "publish" => Some(Stage::Publish),
                _ => None,
            })?,
            reason_code: field(f, "reason_code", text)?,
            reason_message: field(f, "reason_message", text)?,
            received_at: field(f, "received_at", |v| match v {
                Value::TimestampMicros(us) => {
                    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000).ok()
                }
                _ => None,
            })?,
            event_id: field(f, "event_id", optional_text)?,
            topic: field(f, "topic", optional_text)?,
            body: field(f, "body", |v| match v {
                Value::Bytes(b) => Some(Bytes::from(b)),
                _ => None,
            })?,
            body_content_type: field(f, "body_content_type", text)?,
            headers: field(f, "headers", |v| match v {
                Value::Map(m) => m.into_iter().map(|(k, v)| Some((k, text(v)?))).collect(),
                _ => None,
            })?,
        })
    }
}

impl std::ops::Deref for DeadLetterCodec {
    type Target = SchemaCodec;
    fn deref(&self) -> &SchemaCodec {
        &self.0
    }
}

/// Removes the named field and converts it with `read`, which returns `None` for a value of the
/// wrong type. The error names the field, never its value, which may hold payload.
fn field<T>(
    fields: &mut Vec<(String, Value)>,
    name: &str,
    read: impl FnOnce(Value) -> Option<T>,
) -> Result<T, DecodeError> {
    let at = fields.iter().position(|(n, _)| n == name);
    at.and_then(|at| read(fields.swap_remove(at).1))
        .ok_or_else(|| DecodeError(format!("field {name} is missing or invalid")))
}

fn text(value: Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s),
        _ => None,
    }
}

/// A `["null", "string"]` union. The branch must match the value, since a string cut short in
/// branch 1 comes back as `null`.
fn optional_text(value: Value) -> Option<Option<String>> {
    match value {
        Value::Union(0, inner) if *inner == Value::Null => Some(None),
        Value::Union(1, inner) => text(*inner).map(Some),
        _ => None,
    }
}

/// Serializes a [`DeadLetter`] in `dead_letter.avsc` field order.
struct AvroDeadLetter<'a>(&'a DeadLetter);

impl Serialize for AvroDeadLetter<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let d = self.0;
        let mut r = s.serialize_struct("DeadLetter", 12)?;
        r.serialize_field("id", &d.id)?;
        r.serialize_field("source", &d.source)?;
        r.serialize_field("provider", &d.provider)?;
        r.serialize_field("stage", d.stage.as_str())?;
        r.serialize_field("reason_code", &d.reason_code)?;
        r.serialize_field("reason_message", &d.reason_message)?;
        r.serialize_field("received_at", &to_micros(d.received_at))?;
        r.serialize_field("event_id", &d.event_id)?;
        r.serialize_field("topic", &d.topic)?;
        r.serialize_field("body", &AvroBytes(&d.body))?;
        r.serialize_field("body_content_type", &d.body_content_type)?;
        r.serialize_field("headers", &d.headers)?;
        r.end()
    }
}
