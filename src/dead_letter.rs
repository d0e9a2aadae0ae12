//! The dead-letter record (`schemas/dead_letter.avsc`): what hookbridge keeps about an authentic
//! webhook it gave up on, because the payload could not be mapped or the broker refused the event
//! for good.
//!
//! A dead letter holds enough to diagnose the failure and to redrive the request once the cause is
//! fixed: the body (already redacted by the caller), its media type, the error code and message, and
//! an allowlist of request headers. It never holds credentials: see [`select_headers`].
//!
//! Encoding follows [`crate::event::avro`]: the schema is embedded and parsed once, records are
//! written with the schema-aware serde writer, and the fingerprint is the spec-correct one.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use actix_web::http::header::HeaderMap;
use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use bytes::Bytes;
use serde::ser::{Serialize, SerializeStruct, Serializer};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::event::to_micros;

/// The dead-letter schema, as committed.
pub const DEAD_LETTER_AVSC: &str = include_str!("../schemas/dead_letter.avsc");
/// Full name of the dead-letter record; named in the content type.
pub const DEAD_LETTER_SCHEMA_NAME: &str = "io.hookbridge.v1.DeadLetter";
/// Media type of an encoded dead letter.
pub const DEAD_LETTER_CONTENT_TYPE: &str = "application/avro;schema=io.hookbridge.v1.DeadLetter";

/// Longest header value kept, in bytes. Signatures and delivery ids are far shorter; the cap bounds
/// the record when a client sends something odd.
pub const MAX_HEADER_VALUE_BYTES: usize = 1024;

/// Request headers kept in a dead letter, lowercase. Everything else is dropped.
///
/// Kept: what helps diagnose a failure (content type, user agent, and each provider's
/// [`Provider::dead_letter_headers`]: its event type, delivery id and per-message signature). A
/// per-message MAC or signature proves the authenticity of exactly this body at this time, so a
/// redrive can verify the stored request again instead of trusting the dead-letter store; it
/// reveals nothing about the secret that made it.
///
/// Dropped, by not being listed: static credentials (`authorization`, `cookie`, `x-api-key`, any
/// token header) authenticate every request, so anyone reading the dead-letter topic could replay
/// them; and proxy headers (`forwarded`, `x-forwarded-*`, `x-real-ip`), which say nothing about the
/// payload and carry client addresses. An allowlist fails closed when a provider adds a new header.
///
/// [`Provider::dead_letter_headers`]: crate::providers::Provider::dead_letter_headers
const KEPT_HEADERS: &[&str] = &["content-type", "user-agent"];

/// Where processing stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The payload could not be mapped to a canonical event.
    Map,
    /// The broker refused the event permanently.
    Publish,
}

impl Stage {
    /// The value of the record's `stage` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Map => "map",
            Stage::Publish => "publish",
        }
    }
}

/// One dead letter, field for field as in `schemas/dead_letter.avsc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// `dl:<hex sha256>` of source, `received_at` (in microseconds) and body.
    pub id: String,
    pub source: String,
    pub provider: String,
    pub stage: Stage,
    /// The error's stable `code()`.
    pub reason_code: String,
    /// The error's `Display`, which never quotes the payload.
    pub reason_message: String,
    pub received_at: OffsetDateTime,
    /// Set when mapping succeeded.
    pub event_id: Option<String>,
    /// The topic or subject the event would have gone to, when known.
    pub topic: Option<String>,
    /// The request body, redacted by the caller.
    pub body: Bytes,
    pub body_content_type: String,
    /// The output of [`select_headers`].
    pub headers: BTreeMap<String, String>,
}

/// What the caller knows when it gives up on a request. Named fields rather than eleven positional
/// arguments, so that two `&str`s cannot be swapped silently.
pub struct DeadLetterInput<'a> {
    pub source: &'a str,
    pub provider: &'a str,
    pub stage: Stage,
    pub reason_code: &'a str,
    pub reason_message: String,
    pub received_at: OffsetDateTime,
    /// Must already be redacted: this module stores it as given.
    pub body: Bytes,
    pub body_content_type: &'a str,
    /// All request headers; only [`select_headers`] of them are kept.
    pub headers: &'a HeaderMap,
    /// The provider's own headers worth keeping (`Provider::dead_letter_headers`).
    pub provider_headers: &'a [&'static str],
    /// Set when mapping succeeded.
    pub event_id: Option<&'a str>,
    /// Where the event would have gone, when known.
    pub topic: Option<&'a str>,
}

impl DeadLetter {
    /// Builds the record: computes the id and keeps only the allowlisted headers.
    pub fn new(input: DeadLetterInput<'_>) -> Self {
        DeadLetter {
            id: dead_letter_id(input.source, input.received_at, &input.body),
            source: input.source.to_owned(),
            provider: input.provider.to_owned(),
            stage: input.stage,
            reason_code: input.reason_code.to_owned(),
            reason_message: input.reason_message,
            received_at: input.received_at,
            event_id: input.event_id.map(str::to_owned),
            topic: input.topic.map(str::to_owned),
            body: input.body,
            body_content_type: input.body_content_type.to_owned(),
            headers: select_headers(input.headers, input.provider_headers),
        }
    }
}

/// The id hashes the time in microseconds, the precision the record stores, so a consumer can
/// recompute it from a decoded record. Parts are length-prefixed, as in `EventId::from_content`.
fn dead_letter_id(source: &str, received_at: OffsetDateTime, body: &[u8]) -> String {
    let micros = to_micros(received_at).to_be_bytes();
    let mut hasher = Sha256::new();
    for part in [source.as_bytes(), &micros, body] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    format!("dl:{}", hex::encode(hasher.finalize()))
}

/// The headers worth keeping (see [`KEPT_HEADERS`] for which and why), lowercase. Values that are
/// not UTF-8 are dropped, each value is capped at [`MAX_HEADER_VALUE_BYTES`], and a repeated header
/// becomes one entry joined with `", "` (RFC 9110 §5.3).
pub fn select_headers(headers: &HeaderMap, provider_headers: &[&str]) -> BTreeMap<String, String> {
    let mut kept = BTreeMap::new();
    for name in KEPT_HEADERS.iter().chain(provider_headers) {
        let values: Vec<&str> = headers
            .get_all(*name)
            // Not `HeaderValue::to_str`, which also refuses valid non-ASCII text.
            .filter_map(|v| std::str::from_utf8(v.as_bytes()).ok())
            .map(cap)
            .collect();
        if !values.is_empty() {
            kept.insert((*name).to_owned(), values.join(", "));
        }
    }
    kept
}

/// `value` cut to at most [`MAX_HEADER_VALUE_BYTES`], on a character boundary.
fn cap(value: &str) -> &str {
    let mut end = value.len().min(MAX_HEADER_VALUE_BYTES);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value.get(..end).unwrap_or_default()
}

/// Encoding failures. They mean a bug (the record does not fit the schema), never bad input.
#[derive(Debug, thiserror::Error)]
#[error("dead letter avro: {0}")]
pub struct EncodeError(String);

/// Bytes that are not one dead letter written with `dead_letter.avsc`.
#[derive(Debug, thiserror::Error)]
#[error("not a dead letter: {0}")]
pub struct DecodeError(String);

/// The parsed schema, with a writer and a reader bound to it, shared by every caller.
pub struct DeadLetterCodec {
    schema: &'static Schema,
    writer: GenericDatumWriter<'static>,
    reader: GenericDatumReader<'static>,
    fingerprint: String,
}

static SCHEMA: OnceLock<Result<Schema, String>> = OnceLock::new();
static CODEC: OnceLock<Result<DeadLetterCodec, String>> = OnceLock::new();

impl DeadLetterCodec {
    /// The process-wide codec. Fails only if the embedded schema is broken, which the unit tests
    /// catch.
    pub fn get() -> Result<&'static DeadLetterCodec, EncodeError> {
        CODEC
            .get_or_init(|| {
                let (schema, writer, fingerprint) =
                    crate::event::avro::load_schema(DEAD_LETTER_AVSC, &SCHEMA)?;
                let reader = GenericDatumReader::builder(schema)
                    .build()
                    .map_err(|e| e.to_string())?;
                Ok(DeadLetterCodec {
                    schema,
                    writer,
                    reader,
                    fingerprint,
                })
            })
            .as_ref()
            .map_err(|e| EncodeError(e.clone()))
    }

    pub fn schema(&self) -> &'static Schema {
        self.schema
    }

    /// Rabin fingerprint of the schema's canonical form (hex), as the Avro spec defines it.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Encodes one dead letter as a bare Avro datum (no container header).
    pub fn encode(&self, letter: &DeadLetter) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(letter.body.len() + 512);
        self.writer
            .write_ser(&mut out, &AvroDeadLetter(letter))
            .map_err(|e| EncodeError(e.to_string()))?;
        Ok(out)
    }

    /// Decodes one bare datum written with the current schema, for redrive and inspection tools.
    /// Any input gives a record or an error, never a panic. Every field's type is checked rather
    /// than trusted: apache-avro returns `null` for a string cut short by the end of input. (In
    /// this schema a later read then fails, but the checks do not rely on that.)
    pub fn decode(&self, bytes: &[u8]) -> Result<DeadLetter, DecodeError> {
        // A bogus length prefix costs at most apache-avro's allocation cap (512 MiB by default,
        // zeroed lazily) and then fails on the first read past the input.
        let mut input = bytes;
        let value = self
            .reader
            .read_value(&mut input)
            .map_err(|e| DecodeError(e.to_string()))?;
        if !input.is_empty() {
            let extra = input.len();
            return Err(DecodeError(format!("{extra} bytes after the record")));
        }
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

/// `bytes`, not an array of ints, which is how serde would write a `&[u8]`.
struct AvroBytes<'a>(&'a [u8]);

impl Serialize for AvroBytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};
    use time::macros::datetime;

    /// A record whose `headers` map claims 4 million entries in a few bytes: refused, and
    /// apache-avro may allocate at most hookbridge's cap on the way (its default let it reserve
    /// 650 MB; `fuzz/regressions/dead_letter/` keeps the input the fuzzer found).
    #[test]
    fn a_huge_length_prefix_is_refused_within_the_allocation_cap() {
        let codec = DeadLetterCodec::get().unwrap();
        assert_eq!(
            apache_avro::util::max_allocation_bytes(usize::MAX),
            crate::event::avro::MAX_DECODE_ALLOCATION_BYTES
        );
        let letter = DeadLetter::new(DeadLetterInput {
            source: "s",
            provider: "p",
            stage: Stage::Map,
            reason_code: "c",
            reason_message: "m".into(),
            received_at: datetime!(2026-03-07 00:00 UTC),
            body: Bytes::from_static(b"{}"),
            body_content_type: "application/json",
            headers: &HeaderMap::new(),
            provider_headers: &[],
            event_id: None,
            topic: None,
        });
        let mut bytes = codec.encode(&letter).unwrap();
        // The empty `headers` map is the last byte (a zero block count): claim 2^22 entries,
        // 300 MB of them: under apache-avro's default cap, over ours.
        assert_eq!(bytes.pop(), Some(0));
        bytes.extend_from_slice(&[0x80, 0x80, 0x80, 0x04]);
        assert!(codec.decode(&bytes).is_err());
    }

    /// A provider's own kept headers, as `Provider::dead_letter_headers` gives them.
    const PROVIDER_HEADERS: &[&str] = &["x-github-event", "webhook-id", "stripe-signature"];

    fn headers(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            let value = HeaderValue::from_bytes(value).unwrap();
            map.append(HeaderName::from_static(name), value);
        }
        map
    }

    fn letter(stage: Stage, body: &'static [u8], event: Option<(&str, &str)>) -> DeadLetter {
        let request_headers = headers(&[
            ("content-type", b"application/json"),
            ("cronofy-hmac-sha256", b"abc="),
            ("authorization", b"Bearer secret"),
        ]);
        DeadLetter::new(DeadLetterInput {
            source: "cronofy-eu",
            provider: "cronofy",
            stage,
            reason_code: "invalid_json",
            reason_message: "payload is not valid JSON (line 1, column 2)".into(),
            received_at: datetime!(2024-10-14 09:24:17.123456 UTC),
            body: Bytes::from_static(body),
            body_content_type: "application/json",
            headers: &request_headers,
            provider_headers: &["cronofy-hmac-sha256"],
            event_id: event.map(|(id, _)| id),
            topic: event.map(|(_, topic)| topic),
        })
    }

    #[test]
    fn every_field_round_trips_for_both_stages_with_and_without_an_event() {
        let codec = DeadLetterCodec::get().unwrap();
        for stage in [Stage::Map, Stage::Publish] {
            for event in [None, Some(("sha256:ab", "webhooks.cronofy"))] {
                let original = letter(stage, b"{\"a\":\xff}", event);
                let decoded = codec.decode(&codec.encode(&original).unwrap()).unwrap();
                assert_eq!(decoded, original);
                assert_eq!(decoded.headers.len(), 2, "{:?}", decoded.headers);
            }
        }
    }

    /// Redrive tools feed this whatever is on the topic: every bad input is an error, including each
    /// strict prefix of a valid record, trailing bytes and an unknown stage.
    #[test]
    fn garbage_truncated_or_padded_bytes_are_errors_not_panics() {
        let codec = DeadLetterCodec::get().unwrap();
        let valid = codec
            .encode(&letter(Stage::Map, b"{}", Some(("e", "t"))))
            .unwrap();
        let mut cases: Vec<Vec<u8>> = vec![vec![], vec![0x80], vec![0x01], vec![0xff; 16]];
        cases.extend((0..valid.len()).map(|n| valid[..n].to_vec()));
        cases.push([valid.as_slice(), &[0]].concat());
        for seed in 1..=8u64 {
            // A fixed LCG (Knuth's MMIX constants): the same "random" bytes on every run.
            let lcg = |s: &u64| Some(s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
            let noise = std::iter::successors(Some(seed), lcg).skip(1).take(1000);
            cases.push(noise.map(|s| (s >> 56) as u8).collect());
        }
        // The stage string "map": length 3 (zigzag 6), then the text; "mop" is no stage.
        let map = valid.windows(4).position(|w| w == b"\x06map").unwrap();
        let mut bad_stage = valid.clone();
        bad_stage[map + 2] = b'o';
        cases.push(bad_stage);
        for case in &cases {
            assert!(codec.decode(case).is_err(), "decoded {case:?}");
        }
    }

    #[test]
    fn only_allowlisted_headers_are_kept() {
        let allowed: Vec<&str> = KEPT_HEADERS
            .iter()
            .chain(PROVIDER_HEADERS)
            .copied()
            .collect();
        let kept: Vec<(&str, &[u8])> = allowed.iter().map(|n| (*n, &b"v"[..])).collect();
        let dropped: &[(&str, &[u8])] = &[
            ("authorization", b"Basic dTpw"),
            ("proxy-authorization", b"Basic dTpw"),
            ("cookie", b"session=1"),
            ("x-api-key", b"k"),
            ("x-timetap-token", b"t"),
            ("x-auth-token", b"t"),
            ("x-forwarded-for", b"10.0.0.1"),
            ("forwarded", b"for=10.0.0.1"),
            ("x-real-ip", b"10.0.0.1"),
        ];
        let selected = select_headers(
            &headers(&[kept.as_slice(), dropped].concat()),
            PROVIDER_HEADERS,
        );
        let expected: BTreeMap<String, String> = allowed
            .iter()
            .map(|n| ((*n).to_owned(), "v".to_owned()))
            .collect();
        assert_eq!(selected, expected);
    }

    #[test]
    fn repeats_are_joined_long_values_capped_and_non_utf8_dropped() {
        let long = format!("a{}", "é".repeat(600));
        let selected = select_headers(
            &headers(&[
                ("x-github-event", b"push"),
                ("x-github-event", b"\xff"),
                ("x-github-event", b"ping"),
                ("webhook-id", b"\xc3\x28"),
                ("user-agent", "Bot/é".as_bytes()),
                ("stripe-signature", long.as_bytes()),
            ]),
            PROVIDER_HEADERS,
        );
        assert_eq!(selected["x-github-event"], "push, ping");
        assert!(!selected.contains_key("webhook-id"));
        assert_eq!(selected["user-agent"], "Bot/é");
        // 1024 falls inside an "é": the cut moves back to the boundary before it.
        assert_eq!(selected["stripe-signature"].len(), 1023);
    }

    #[test]
    fn the_id_is_stable_and_depends_on_the_body() {
        let a = letter(Stage::Map, b"{}", None);
        assert_eq!(a.id, letter(Stage::Map, b"{}", None).id);
        assert_eq!(a.id, letter(Stage::Publish, b"{}", Some(("e", "t"))).id);
        assert_ne!(a.id, letter(Stage::Map, b"{ }", None).id);
        assert!(a.id.starts_with("dl:") && a.id.len() == 67, "{}", a.id);
    }

    /// Computed by fastavro (`fastavro.schema.fingerprint(..., "CRC-64-AVRO")`) for the committed
    /// schema: a schema change must update this value deliberately.
    #[test]
    fn schema_fingerprint_matches_fastavro() {
        let codec = DeadLetterCodec::get().unwrap();
        assert_eq!(codec.fingerprint(), "9a42a4e2aa7ff906");
        assert_eq!(
            codec.schema().name().unwrap().fullname(None),
            DEAD_LETTER_SCHEMA_NAME
        );
    }
}
