//! Providers: how each webhook sender proves authenticity and how its payload becomes a
//! [`CanonicalEvent`]. Each provider is one file, assembled from the blocks in `crate::verify`.
//!
//! A provider sees a [`WebhookRequest`] and can hand the mapper only a [`Verified`] one, which only
//! its own `verify` can build: an unverified request cannot reach a broker by construction.

pub mod cronofy;
pub mod docplanner;
pub mod generic;
pub mod salesking;
pub mod service_optimizer;
pub mod timetap;

pub mod any;
pub mod sample;

pub use any::{AnyProvider, kinds};
pub use sample::{SampleRequest, SampleWebhook};

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use actix_web::http::header::HeaderMap;
use bytes::Bytes;
use time::OffsetDateTime;

use crate::event::CanonicalEvent;
use crate::section::ConfigIssue;
use crate::verify::VerifyError;

/// What a provider sees of an HTTP request.
pub struct WebhookRequest<'a> {
    /// Upper case, as received: `POST`, or a handshake's `GET`.
    pub method: &'a str,
    pub headers: &'a HeaderMap,
    /// The raw query string, without `?`.
    pub query: &'a str,
    pub body: &'a Bytes,
    pub peer: Option<IpAddr>,
    pub received_at: OffsetDateTime,
}

impl<'a> WebhookRequest<'a> {
    /// Every value of a header that is valid text, in order (a repeated header is a list, RFC 9110 §5.3).
    pub fn header_values(&self, name: &str) -> impl Iterator<Item = &'a str> + use<'a, '_> {
        self.headers.get_all(name).filter_map(|v| v.to_str().ok())
    }
}

/// A request whose authenticity a provider has checked. Constructed only by `verify` functions,
/// which may attach what they parsed on the way (so the mapper does not parse it again).
pub struct Verified<'a> {
    request: &'a WebhookRequest<'a>,
    facts: Facts,
}

/// What verification learned about the request.
pub enum Facts {
    None,
    /// A decoded, authenticated JSON object (SalesKing's `signed_request` payload).
    Json(serde_json::Map<String, serde_json::Value>),
    /// A verified SNS envelope.
    Sns(Box<crate::verify::sns::SnsMessage>),
    /// The request was a handshake; this is its answer.
    Handshake(Box<crate::verify::handshake::HandshakeReply>),
}

impl<'a> Verified<'a> {
    fn new(request: &'a WebhookRequest<'a>) -> Self {
        Verified {
            request,
            facts: Facts::None,
        }
    }

    fn with_facts(request: &'a WebhookRequest<'a>, facts: Facts) -> Self {
        Verified { request, facts }
    }

    /// A notification pulled from the provider's own API, over TLS with our OAuth credentials:
    /// authentic by how it was obtained.
    pub(crate) fn pulled(request: &'a WebhookRequest<'a>) -> Self {
        Verified {
            request,
            facts: Facts::None,
        }
    }

    /// A dead letter being redriven: verified when it was received (see `redrive_facts`).
    pub(crate) fn for_redrive(request: &'a WebhookRequest<'a>, facts: Facts) -> Self {
        Verified { request, facts }
    }

    pub fn request(&self) -> &'a WebhookRequest<'a> {
        self.request
    }

    pub fn into_facts(self) -> Facts {
        self.facts
    }
}

/// What an authentic webhook turned into.
#[derive(Debug)]
pub enum Mapped {
    /// An event to publish.
    Event(Box<CanonicalEvent>),
    /// Authentic and handled, with nothing to publish (SNS subscription handshakes). `code` says what
    /// was done and becomes the reply's `code`.
    Handled { code: &'static str },
    /// A handshake, answered as its sender documents; nothing to publish.
    Answer(Box<crate::verify::handshake::HandshakeReply>),
}

/// How a provider wants to be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyStyle {
    /// hookbridge's `{"status", "code", ...}` body.
    Standard,
    /// ServiceOptimizer reads the body: `{"Success": bool, "Code": "0" | "<non-zero>", "Message": ...}`.
    ServiceOptimizer,
    /// A fixed JSON body on every 2xx, as the sender requires (a Discord interaction is answered
    /// `{"type":5}`, "deferred"); refusals keep the standard body.
    Fixed(&'static str),
    /// Status only, with an empty body, whatever happened (Xero, Airtable).
    Empty,
}

/// Why a verified payload could not be mapped to a canonical event. Messages never quote the payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("payload is not valid JSON (line {line}, column {column})")]
    InvalidJson { line: usize, column: usize },
    #[error("payload has no {0}")]
    MissingField(&'static str),
    #[error("payload field {0} has an invalid value")]
    InvalidField(&'static str),
    /// A step after verification needs a service that failed; the provider should resend.
    #[error("{0}")]
    Upstream(&'static str),
}

impl MapError {
    pub fn code(&self) -> &'static str {
        match self {
            MapError::InvalidJson { .. } => "invalid_json",
            MapError::MissingField(_) => "missing_field",
            MapError::InvalidField(_) => "invalid_field",
            MapError::Upstream(_) => "upstream_unavailable",
        }
    }

    pub fn from_json(e: &serde_json::Error) -> Self {
        MapError::InvalidJson {
            line: e.line(),
            column: e.column(),
        }
    }

    /// Parses a JSON body. Its UTF-8 is checked once, up front, so serde_json does not check
    /// every string again (a tenth of a Cronofy mapping's instructions). A body that is not
    /// UTF-8 goes to serde_json as bytes, which says where it breaks.
    pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, MapError> {
        match std::str::from_utf8(body) {
            Ok(text) => serde_json::from_str(text),
            Err(_) => serde_json::from_slice(body),
        }
        .map_err(|e| MapError::from_json(&e))
    }
}

/// One provider kind: verification plus mapping.
pub trait Provider {
    /// The provider kind as written in config and in events (`cronofy`).
    fn kind(&self) -> &'static str;
    /// Checks authenticity. Async because some schemes fetch keys (SNS certificates).
    fn verify<'a>(
        &self,
        request: &'a WebhookRequest<'a>,
    ) -> impl Future<Output = Result<Verified<'a>, VerifyError>>;
    /// Maps an authentic request. Async because a subscription handshake is answered here.
    fn map(
        &self,
        source: &str,
        verified: Verified<'_>,
    ) -> impl Future<Output = Result<Mapped, MapError>>;
    /// How long this provider may resend one notification: the default dedup window.
    fn default_dedup_window(&self) -> Duration;
    /// True for providers that push each event once whatever we answer (Docplanner): they need
    /// durable acceptance rather than a 503.
    fn never_resends(&self) -> bool {
        false
    }
    /// False when, as configured, the provider checks no credential of its own (Docplanner without
    /// an API key): such a source must have an IP allowlist.
    fn authenticates(&self) -> bool {
        true
    }
    /// True for providers with an API to pull missed events from and ask for re-delivery.
    fn supports_reconcile(&self) -> bool {
        false
    }
    /// Request headers a dead letter keeps besides `content-type` and `user-agent`: the ones that
    /// say what the delivery was, never a credential (a signature is not one: it is over this body
    /// and cannot be replayed on another).
    fn dead_letter_headers(&self) -> &'static [&'static str] {
        &[]
    }
    /// (certificate cache hits, certificate fetches) since start, for providers whose scheme
    /// fetches signing certificates (SNS).
    fn certificate_counts(&self) -> Option<(u64, u64)> {
        None
    }
    /// A webhook as this provider sends it, signed with the source's first secret: what a load
    /// generator sends. `None` where only the provider can sign (SNS) or the source is
    /// configured without a secret to sign with.
    fn sample_webhook(&self, _request: &SampleRequest<'_>) -> Option<SampleWebhook> {
        None
    }
    fn reply_style(&self) -> ReplyStyle {
        ReplyStyle::Standard
    }
    /// The HTTP methods this provider sends with: `POST`, and a handshake's `GET` for some.
    fn accepts_method(&self, method: &str) -> bool {
        method == "POST"
    }
    /// The body as a dead letter may keep it: secrets carried inside it removed.
    fn redact_for_dead_letter(&self, body: &Bytes) -> Bytes {
        body.clone()
    }
    /// For redrive: what `verify` would have attached, rebuilt from a dead letter's body. The
    /// dead-letter topic is written only by hookbridge after verification, so it is trusted.
    fn redrive_facts(&self, _body: &Bytes) -> Facts {
        Facts::None
    }
}

/// Deserializes a provider's `verify` table, naming the offending key on error.
pub(crate) use crate::section::parse_table as settings;

/// Resolves a list of secret references, naming each one that fails.
pub(crate) fn resolve_secrets(
    key: &str,
    refs: &[crate::secret::SecretRef],
    env: &HashMap<String, String>,
) -> Result<Vec<crate::secret::Secret>, Vec<ConfigIssue>> {
    if refs.is_empty() {
        return Err(vec![ConfigIssue::new(key, "at least one secret is needed")]);
    }
    let mut issues = Vec::new();
    let mut secrets = Vec::new();
    for (i, r) in refs.iter().enumerate() {
        match r.resolve(env) {
            Ok(s) => secrets.push(s),
            Err(reason) => issues.push(ConfigIssue::new(format!("{key}[{i}]"), reason)),
        }
    }
    if issues.is_empty() {
        Ok(secrets)
    } else {
        Err(issues)
    }
}

/// Runs a provider future to completion in unit tests.
#[cfg(test)]
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("test runtime")
        .block_on(future)
}

/// The event of a `Mapped`, for unit tests.
#[cfg(test)]
pub(crate) fn expect_event(mapped: Mapped) -> CanonicalEvent {
    match mapped {
        Mapped::Event(e) => *e,
        Mapped::Handled { code } => panic!("expected an event, got handled: {code}"),
        Mapped::Answer(reply) => panic!("expected an event, got a handshake: {reply:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::MapError;

    #[test]
    fn json_bodies_parse_and_bad_bytes_are_located() {
        let v: serde_json::Value = MapError::parse_json(br#"{"a":"\u00e9\u00e9"}"#).unwrap();
        assert_eq!(v["a"], "éé");
        // A lone continuation byte inside a string on line 2.
        let bad = b"{\n\"a\":\"\x80\"}";
        assert_eq!(
            MapError::parse_json::<serde_json::Value>(bad),
            Err(MapError::InvalidJson { line: 2, column: 6 })
        );
        assert!(matches!(
            MapError::parse_json::<serde_json::Value>(b"{\"a\":"),
            Err(MapError::InvalidJson { .. })
        ));
    }
}
