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

use std::collections::HashMap;
use std::net::IpAddr;

use actix_web::http::header::HeaderMap;
use bytes::Bytes;
use time::OffsetDateTime;

use crate::event::CanonicalEvent;
use crate::section::ConfigIssue;
use crate::verify::VerifyError;

/// What a provider sees of an HTTP request.
pub struct WebhookRequest<'a> {
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
}

/// How a provider wants to be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyStyle {
    /// hookbridge's `{"status", "code", ...}` body.
    Standard,
    /// ServiceOptimizer reads the body: `{"Success": bool, "Code": "0" | "<non-zero>", "Message": ...}`.
    ServiceOptimizer,
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
    fn reply_style(&self) -> ReplyStyle {
        ReplyStyle::Standard
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

/// Every provider kind hookbridge knows, built from a source's `verify` table.
#[derive(Debug, Clone)]
pub enum AnyProvider {
    Cronofy(cronofy::Cronofy),
    Generic(Box<generic::Generic>),
    ServiceOptimizer(service_optimizer::ServiceOptimizer),
    Docplanner(docplanner::Docplanner),
    SalesKing(salesking::SalesKing),
    TimeTap(timetap::TimeTap),
}

/// Provider kinds accepted in `sources.*.provider`.
pub const PROVIDER_KINDS: &[&str] = &[
    "cronofy",
    "timetap",
    "service_optimizer",
    "docplanner",
    "salesking",
    "generic",
    "github",
    "stripe",
    "standard_webhooks",
];

/// Calls the same method on whichever provider this is (static dispatch: no boxed futures).
macro_rules! dispatch {
    ($self:expr, $p:ident => $body:expr) => {
        match $self {
            AnyProvider::Cronofy($p) => $body,
            AnyProvider::Generic($p) => $body,
            AnyProvider::ServiceOptimizer($p) => $body,
            AnyProvider::Docplanner($p) => $body,
            AnyProvider::SalesKing($p) => $body,
            AnyProvider::TimeTap($p) => $body,
        }
    };
}

impl AnyProvider {
    /// Builds a provider from its config. `key` is the path of the `verify` table, for error messages;
    /// an issue with an empty key is about the provider kind itself.
    pub fn from_config(
        key: &str,
        kind: &str,
        verify: &toml::Table,
        env: &HashMap<String, String>,
    ) -> Result<Self, Vec<ConfigIssue>> {
        match kind {
            "cronofy" => cronofy::Cronofy::from_config(key, verify, env).map(AnyProvider::Cronofy),
            "service_optimizer" => {
                service_optimizer::ServiceOptimizer::from_config(key, verify, env)
                    .map(AnyProvider::ServiceOptimizer)
            }
            "docplanner" => {
                docplanner::Docplanner::from_config(key, verify, env).map(AnyProvider::Docplanner)
            }
            "salesking" => {
                salesking::SalesKing::from_config(key, verify, env).map(AnyProvider::SalesKing)
            }
            "timetap" => timetap::TimeTap::from_config(key, verify, env).map(AnyProvider::TimeTap),
            "generic" | "github" | "stripe" | "standard_webhooks" => {
                generic::Generic::from_config(key, kind, verify, env)
                    .map(|g| AnyProvider::Generic(Box::new(g)))
            }
            other => Err(vec![ConfigIssue::new(
                "",
                format!(
                    "unknown provider `{other}`; expected one of: {}",
                    PROVIDER_KINDS.join(", ")
                ),
            )]),
        }
    }
}

impl AnyProvider {
    /// False when, as configured, the provider checks no credential of its own (Docplanner without
    /// an API key): such a source must have an IP allowlist.
    /// How long this provider may resend one notification: the default dedup window.
    pub fn default_dedup_window(&self) -> std::time::Duration {
        const HOUR: u64 = 3600;
        std::time::Duration::from_secs(match self {
            // SNS retries for at most an hour; keep margin for clock skew.
            AnyProvider::TimeTap(_) => 2 * HOUR,
            // Cronofy retries for 24 h, then closes the channel.
            AnyProvider::Cronofy(_) => 25 * HOUR,
            // Docplanner re-dispatches on release for up to 14 days after creation.
            AnyProvider::Docplanner(_) => 15 * 24 * HOUR,
            // ServiceOptimizer keeps undelivered notifications `notification_days_before` days.
            AnyProvider::ServiceOptimizer(_) => 7 * 24 * HOUR,
            // signed_request is accepted for an hour after issued_at.
            AnyProvider::SalesKing(_) => 2 * HOUR,
            AnyProvider::Generic(_) => 72 * HOUR,
        })
    }

    /// True for providers that push each event once whatever we answer (Docplanner): they need
    /// durable acceptance rather than a 503.
    pub fn never_resends(&self) -> bool {
        matches!(self, AnyProvider::Docplanner(_))
    }

    /// True for providers with an API to pull missed events from and ask for re-delivery.
    pub fn supports_reconcile(&self) -> bool {
        matches!(self, AnyProvider::Docplanner(_))
    }

    pub fn authenticates(&self) -> bool {
        match self {
            AnyProvider::Docplanner(d) => d.has_credential(),
            AnyProvider::TimeTap(t) => t.has_credential(),
            _ => true,
        }
    }
}

impl Provider for AnyProvider {
    fn kind(&self) -> &'static str {
        dispatch!(self, p => p.kind())
    }

    async fn verify<'a>(
        &self,
        request: &'a WebhookRequest<'a>,
    ) -> Result<Verified<'a>, VerifyError> {
        dispatch!(self, p => p.verify(request).await)
    }

    async fn map(&self, source: &str, verified: Verified<'_>) -> Result<Mapped, MapError> {
        dispatch!(self, p => p.map(source, verified).await)
    }

    fn reply_style(&self) -> ReplyStyle {
        dispatch!(self, p => p.reply_style())
    }

    fn redact_for_dead_letter(&self, body: &Bytes) -> Bytes {
        dispatch!(self, p => p.redact_for_dead_letter(body))
    }

    fn redrive_facts(&self, body: &Bytes) -> Facts {
        dispatch!(self, p => p.redrive_facts(body))
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
    }
}
