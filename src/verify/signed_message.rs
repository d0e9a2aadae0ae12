//! The signed-message engine: an HMAC over a message assembled from the request, checked the way
//! most webhook senders sign.
//!
//! One pass over the blocks, each a setting: the signatures are read from one header in a
//! [`SignatureFormat`]; the signed timestamp (from that header or its own) must fall inside a
//! [`Window`]; the [`MessageTemplate`] is filled with the body, the timestamp and the signed id;
//! and any candidate must be the MAC of that message under any key of the [`HmacKeyring`].
//! A sender that signs this way needs settings, not code.

use super::hmac::{HmacFailure, HmacKeyring};
use super::message_template::{MessageTemplate, Piece, Values};
use super::public_key::PublicKeyring;
use super::signature_format::{Extracted, SignatureFormat};
use super::timestamp::{TimestampFormat, Window};
use super::{RequestParts, VerifyError};
use actix_web::http::header::HeaderMap;

/// One signing scheme, ready to check requests.
#[derive(Debug, Clone)]
pub struct SignedMessage {
    /// Where the signatures are.
    pub signature: SignatureSource,
    pub format: SignatureFormat,
    pub message: MessageTemplate,
    pub keyring: Keyring,
    /// Where the signed timestamp is, when the signature header does not carry it.
    pub timestamp: Option<ValueSource>,
    pub timestamp_format: TimestampFormat,
    /// Header carrying the signed message id, for `{id}`.
    pub id_header: Option<String>,
    /// The URL the sender calls, for `{url}`.
    pub url: Option<String>,
    pub window: Window,
}

/// Where a request carries its signatures.
#[derive(Debug, Clone)]
pub enum SignatureSource {
    /// One or more headers (Box sends a primary and a secondary signature in two), each in the
    /// [`SignatureFormat`]. Names are interned (see [`super::intern`]) so errors can name them.
    Headers(Vec<&'static str>),
    /// A string inside the JSON body, at `pointer` (Mailgun).
    Field { pointer: &'static str },
}

/// Where a signed value other than the signature is read.
#[derive(Debug, Clone)]
pub enum ValueSource {
    Header(String),
    /// A JSON pointer into the body.
    Field(String),
}

/// The keys the signatures are checked with.
#[derive(Debug, Clone)]
pub enum Keyring {
    /// Shared secrets: the signature is an HMAC.
    Hmac(HmacKeyring),
    /// The sender's public keys: Ed25519 or ECDSA.
    PublicKey(PublicKeyring),
}

impl Keyring {
    fn verify<'a>(
        &self,
        message: &[&[u8]],
        candidates: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), HmacFailure> {
        match self {
            Keyring::Hmac(ring) => ring.verify(message, candidates),
            Keyring::PublicKey(ring) => ring.verify(message, candidates),
        }
    }
}

impl SignatureSource {
    /// What errors name: the first header, or the field's pointer.
    pub fn name(&self) -> &'static str {
        match self {
            SignatureSource::Headers(names) => names.first().copied().unwrap_or("signature"),
            SignatureSource::Field { pointer } => pointer,
        }
    }
}

impl SignedMessage {
    /// A piece the message signs but no setting says where to find. Such a scheme would refuse
    /// every request, so it is a config mistake to report before serving.
    pub fn unsourced(&self) -> Option<Piece> {
        let has_timestamp = self.timestamp.is_some() || self.format.carries_timestamp();
        if self.message.uses(Piece::Timestamp) && !has_timestamp {
            Some(Piece::Timestamp)
        } else if self.message.uses(Piece::Id) && self.id_header.is_none() {
            Some(Piece::Id)
        } else if self.message.uses(Piece::Url) && self.url.is_none() {
            Some(Piece::Url)
        } else {
            None
        }
    }

    /// True when `piece` is covered by the signature. What is not covered (an id header outside
    /// the message, any other header) is whatever a replayer of one signed request wants it to
    /// be.
    pub fn signs(&self, piece: Piece) -> bool {
        self.message.uses(piece)
    }

    /// True when every byte of the body is signed.
    pub fn signs_body(&self) -> bool {
        self.message.covers_body()
    }

    /// The JSON pointers the signature covers (`{field:...}` pieces).
    pub fn signed_fields(&self) -> Vec<&str> {
        self.message.fields()
    }

    /// The HMAC keyring, when the signatures are HMACs (a handshake may sign its answer).
    pub fn hmac(&self) -> Option<&HmacKeyring> {
        match &self.keyring {
            Keyring::Hmac(ring) => Some(ring),
            Keyring::PublicKey(_) => None,
        }
    }

    /// Accepts the request when a signature in it matches.
    pub fn verify(&self, request: RequestParts<'_>) -> Result<(), VerifyError> {
        let headers = request.headers;
        let name = self.signature.name();
        // The body is parsed only where a signed value lives in it.
        let needs_json = matches!(self.signature, SignatureSource::Field { .. })
            || matches!(self.timestamp, Some(ValueSource::Field(_)))
            || self.message.uses(Piece::Field);
        // A body that is not JSON has none of them: each is then reported missing, in order.
        let json: Option<serde_json::Value> = if needs_json {
            serde_json::from_slice(request.body).ok()
        } else {
            None
        };
        let field = |pointer: &str| json.as_ref().and_then(|j| text_at(j, pointer));
        // Outlives `candidates`, which may borrow from it.
        let in_body: Option<String>;
        let Extracted {
            candidates,
            timestamp: carried,
        } = match &self.signature {
            SignatureSource::Headers(names) => {
                let values: Vec<&str> = names
                    .iter()
                    .flat_map(|n| header_values(headers, n))
                    .collect();
                self.format.extract(&values)?
            }
            SignatureSource::Field { pointer } => {
                in_body = field(pointer);
                Extracted {
                    candidates: in_body.as_deref().into_iter().collect(),
                    timestamp: None,
                }
            }
        };
        if candidates.is_empty() {
            return Err(VerifyError::MissingSignature(name));
        }
        // The window is checked only where the timestamp is signed: an unsigned one proves
        // nothing about when the request was made.
        // A timestamp inside a wholly signed body is signed too (Linear).
        let signed_in_body =
            matches!(self.timestamp, Some(ValueSource::Field(_))) && self.message.covers_body();
        let timestamp: Option<String> = if self.message.uses(Piece::Timestamp) || signed_in_body {
            let elsewhere = match &self.timestamp {
                Some(ValueSource::Header(h)) => {
                    single_header(headers, h, "signed timestamp")?.map(str::to_owned)
                }
                Some(ValueSource::Field(p)) => field(p),
                None => None,
            };
            let text = carried
                .map(str::to_owned)
                .or(elsewhere)
                .ok_or(VerifyError::MissingTimestamp)?;
            self.window
                .check(self.timestamp_format.parse(&text)?, request.received_at)?;
            Some(text)
        } else {
            None
        };
        let id = match (&self.id_header, self.message.uses(Piece::Id)) {
            (Some(h), true) => Some(
                single_header(headers, h, "signed message id")?
                    .ok_or(VerifyError::MissingCredential("id header"))?,
            ),
            _ => None,
        };
        let url = match (&self.url, self.message.uses(Piece::Url)) {
            (Some(url), true) if !request.query.is_empty() => format!("{url}?{}", request.query),
            (Some(url), true) => url.clone(),
            _ => String::new(),
        };
        let form_sorted = if self.message.uses(Piece::FormSorted) {
            form_sorted(request.body)
        } else {
            Vec::new()
        };
        let fields: Vec<String> = self
            .message
            .fields()
            .into_iter()
            .map(|p| field(p).unwrap_or_default())
            .collect();
        let parts = self.message.parts(Values {
            body: request.body,
            timestamp: timestamp.as_deref().unwrap_or_default(),
            id: id.unwrap_or_default(),
            method: request.method,
            url: &url,
            form_sorted: &form_sorted,
            fields: &fields,
        });
        self.keyring
            .verify(&parts, candidates)
            .map_err(|f| VerifyError::from_hmac(f, name))
    }
}

/// A string or number in a JSON document, as text.
fn text_at(json: &serde_json::Value, pointer: &str) -> Option<String> {
    match json.pointer(pointer)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A form body's parameters sorted by name (byte order, as Twilio's "Unix-style case-sensitive
/// sorting"), each name followed by its value, all decoded. Repeated names keep their order.
fn form_sorted(body: &[u8]) -> Vec<u8> {
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs
        .into_iter()
        .flat_map(|(k, v)| [k.into_bytes(), v.into_bytes()])
        .flatten()
        .collect()
}

/// Every value of a header that is valid text, in order (as `WebhookRequest::header_values`).
fn header_values<'h>(headers: &'h HeaderMap, name: &str) -> impl Iterator<Item = &'h str> {
    headers.get_all(name).filter_map(|v| v.to_str().ok())
}

/// The one value of a header that carries a signed value; `Conflicting` when it is repeated with
/// different values (a proxy or client smuggling a second timestamp or id next to the signed one).
fn single_header<'h>(
    headers: &'h HeaderMap,
    name: &str,
    what: &'static str,
) -> Result<Option<&'h str>, VerifyError> {
    let mut values = header_values(headers, name);
    let first = values.next();
    if values.any(|v| Some(v) != first) {
        return Err(VerifyError::Conflicting(what));
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::verify::hmac::{DigestEncoding, HmacAlgorithm};
    use crate::verify::test_headers as headers;
    use std::time::Duration;
    use time::OffsetDateTime;

    fn engine(message: &str, timestamp_header: Option<&str>) -> SignedMessage {
        SignedMessage {
            signature: SignatureSource::Headers(vec!["x-sig"]),
            format: SignatureFormat::List {
                prefix: String::new(),
                separator: ",".into(),
            },
            message: MessageTemplate::parse(message).unwrap(),
            keyring: Keyring::Hmac(ring()),
            timestamp: timestamp_header.map(|h| ValueSource::Header(h.to_owned())),
            timestamp_format: TimestampFormat::Unix,
            id_header: None,
            url: None,
            window: Window {
                max_age: Duration::from_secs(300),
                max_skew: Duration::from_secs(300),
            },
        }
    }

    fn ring() -> HmacKeyring {
        HmacKeyring {
            algorithm: HmacAlgorithm::Sha256,
            encoding: DigestEncoding::Hex,
            secrets: vec![Secret::from_bytes("k")],
        }
    }

    fn at(t: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(t).unwrap()
    }

    fn post<'a>(
        headers: &'a HeaderMap,
        body: &'a [u8],
        query: &'a str,
        now: i64,
    ) -> RequestParts<'a> {
        RequestParts {
            method: "POST",
            headers,
            query,
            body,
            received_at: at(now),
        }
    }

    #[test]
    fn a_signed_timestamp_must_be_single_and_recent() {
        let e = engine("{timestamp}.{body}", Some("x-ts"));
        let sig = ring().sign(&[b"100.", b"{}"]);
        let ok = headers(&[("x-sig", &sig), ("x-ts", "100")]);
        assert_eq!(e.verify(post(&ok, b"{}", "", 100)), Ok(()));
        assert_eq!(
            e.verify(post(&ok, b"{}", "", 1000)),
            Err(VerifyError::TimestampTooOld)
        );
        let twice = headers(&[("x-sig", &sig), ("x-ts", "100"), ("x-ts", "101")]);
        assert_eq!(
            e.verify(post(&twice, b"{}", "", 100)),
            Err(VerifyError::Conflicting("signed timestamp"))
        );
        assert_eq!(
            e.verify(post(&headers(&[]), b"{}", "", 100)),
            Err(VerifyError::MissingSignature("x-sig"))
        );
    }

    /// `{url}` is the configured URL plus the request's query; `{form_sorted}` the sorted form.
    #[test]
    fn url_and_sorted_form_are_what_is_signed() {
        let mut e = engine("{url}{form_sorted}", None);
        e.url = Some("https://h/webhooks/t".into());
        let sig = ring().sign(&[b"https://h/webhooks/t?x=1", b"AbToa+b"]);
        let h = headers(&[("x-sig", &sig)]);
        assert_eq!(e.verify(post(&h, b"To=a%2Bb&Ab=", "x=1", 0)), Ok(()));
        assert_eq!(
            e.verify(post(&h, b"To=a%2Bc&Ab=", "x=1", 0)),
            Err(VerifyError::BadSignature("x-sig"))
        );
        assert_eq!(
            e.verify(post(&h, b"To=a%2Bb&Ab=", "", 0)),
            Err(VerifyError::BadSignature("x-sig"))
        );
    }

    /// A signature inside the body, over fields of the body.
    #[test]
    fn a_signature_can_sit_in_the_body_over_its_fields() {
        let mut e = engine("{field:/s/t}{field:/s/n}", None);
        e.signature = SignatureSource::Field { pointer: "/s/sig" };
        e.timestamp = Some(ValueSource::Field("/s/t".into()));
        e.message = MessageTemplate::parse("{timestamp}{field:/s/n}").unwrap();
        let sig = ring().sign(&[b"100", b"nonce"]);
        let body = format!(r#"{{"s":{{"t":"100","n":"nonce","sig":"{sig}"}}}}"#);
        let none = headers(&[]);
        assert_eq!(e.verify(post(&none, body.as_bytes(), "", 100)), Ok(()));
        assert_eq!(
            e.verify(post(
                &none,
                body.replace("nonce", "other").as_bytes(),
                "",
                100
            )),
            Err(VerifyError::BadSignature("/s/sig"))
        );
        assert_eq!(
            e.verify(post(&none, body.as_bytes(), "", 10_000)),
            Err(VerifyError::TimestampTooOld)
        );
        assert_eq!(
            e.verify(post(&none, b"not json", "", 100)),
            Err(VerifyError::MissingSignature("/s/sig"))
        );
    }

    #[test]
    fn a_piece_without_a_source_is_reported() {
        assert_eq!(
            engine("{timestamp}.{body}", None).unsourced(),
            Some(Piece::Timestamp)
        );
        assert_eq!(engine("{id}.{body}", None).unsourced(), Some(Piece::Id));
        assert_eq!(engine("{timestamp}.{body}", Some("x-ts")).unsourced(), None);
    }
}
