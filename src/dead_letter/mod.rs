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

use actix_web::http::header::HeaderMap;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::event::to_micros;

pub use codec::{DeadLetterCodec, DecodeError, EncodeError};

mod codec;

/// The dead-letter schema, as committed.
pub const DEAD_LETTER_AVSC: &str = include_str!("../../schemas/dead_letter.avsc");
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

impl DeadLetter {
    /// The request headers as a redrive replays them: the kept ones, and the body's content type
    /// (a name or value that does not parse is skipped: it cannot have come from a request).
    pub fn request_headers(&self) -> HeaderMap {
        use actix_web::http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.insert(n, v);
            }
        }
        if let Ok(v) = HeaderValue::from_str(&self.body_content_type) {
            headers.insert(CONTENT_TYPE, v);
        }
        headers
    }
}

/// The media type a dead letter records for a request's body. No usable content type is no
/// reason to lose the letter: it is kept as opaque bytes.
pub fn body_content_type(headers: &HeaderMap) -> &str {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
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

/// The headers worth keeping (see `KEPT_HEADERS` for which and why), lowercase. Values that are
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

#[cfg(test)]
mod tests;
