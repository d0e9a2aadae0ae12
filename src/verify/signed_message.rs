//! The signed-message engine: an HMAC over a message assembled from the request, checked the way
//! most webhook senders sign.
//!
//! One pass over the blocks, each a setting: the signatures are read from one header in a
//! [`SignatureFormat`]; the signed timestamp (from that header or its own) must fall inside a
//! [`Window`]; the [`MessageTemplate`] is filled with the body, the timestamp and the signed id;
//! and any candidate must be the MAC of that message under any key of the [`HmacKeyring`].
//! A sender that signs this way needs settings, not code.

use actix_web::http::header::HeaderMap;
use time::OffsetDateTime;

use super::VerifyError;
use super::hmac::HmacKeyring;
use super::message_template::{MessageTemplate, Piece, Values};
use super::signature_format::SignatureFormat;
use super::timestamp::{Window, parse_unix_seconds};

/// One signing scheme, ready to check requests.
#[derive(Debug, Clone)]
pub struct SignedMessage {
    /// The header carrying the signatures; interned (see [`super::intern`]) so errors can name
    /// it.
    pub header: &'static str,
    pub format: SignatureFormat,
    pub message: MessageTemplate,
    pub keyring: HmacKeyring,
    /// Header carrying the signed timestamp, when the signature header does not.
    pub timestamp_header: Option<String>,
    /// Header carrying the signed message id, for `{id}`.
    pub id_header: Option<String>,
    pub window: Window,
}

impl SignedMessage {
    /// A piece the message signs but no setting says where to find. Such a scheme would refuse
    /// every request, so it is a config mistake to report before serving.
    pub fn unsourced(&self) -> Option<Piece> {
        let has_timestamp = self.timestamp_header.is_some() || self.format.carries_timestamp();
        if self.message.uses(Piece::Timestamp) && !has_timestamp {
            Some(Piece::Timestamp)
        } else if self.message.uses(Piece::Id) && self.id_header.is_none() {
            Some(Piece::Id)
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

    /// Accepts the request when a signature in it matches; `now` is when it was received.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: OffsetDateTime,
    ) -> Result<(), VerifyError> {
        let values: Vec<&str> = header_values(headers, self.header).collect();
        let extracted = self.format.extract(&values)?;
        if extracted.candidates.is_empty() {
            return Err(VerifyError::MissingSignature(self.header));
        }
        // The window is checked only where the timestamp is signed: an unsigned one proves
        // nothing about when the request was made.
        let timestamp = if self.message.uses(Piece::Timestamp) {
            let from_header = match self.timestamp_header.as_deref() {
                Some(h) => single_header(headers, h, "signed timestamp")?,
                None => None,
            };
            let text = extracted
                .timestamp
                .or(from_header)
                .ok_or(VerifyError::MissingTimestamp)?;
            self.window.check(parse_unix_seconds(text)?, now)?;
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
        let parts = self.message.parts(Values {
            body,
            timestamp: timestamp.unwrap_or_default(),
            id: id.unwrap_or_default(),
        });
        self.keyring
            .verify(&parts, extracted.candidates)
            .map_err(|f| VerifyError::from_hmac(f, self.header))
    }
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
    use actix_web::http::header::{HeaderName, HeaderValue};
    use std::time::Duration;

    fn engine(message: &str, timestamp_header: Option<&str>) -> SignedMessage {
        SignedMessage {
            header: "x-sig",
            format: SignatureFormat::List {
                prefix: String::new(),
                separator: ",".into(),
            },
            message: MessageTemplate::parse(message).unwrap(),
            keyring: HmacKeyring {
                algorithm: HmacAlgorithm::Sha256,
                encoding: DigestEncoding::Hex,
                secrets: vec![Secret::from_bytes("k")],
            },
            timestamp_header: timestamp_header.map(str::to_owned),
            id_header: None,
            window: Window {
                max_age: Duration::from_secs(300),
                max_skew: Duration::from_secs(300),
            },
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn a_signed_timestamp_must_be_single_and_recent() {
        let e = engine("{timestamp}.{body}", Some("x-ts"));
        let sig = e.keyring.sign(&[b"100.", b"{}"]);
        let at = |t: i64| OffsetDateTime::from_unix_timestamp(t).unwrap();
        let ok = headers(&[("x-sig", &sig), ("x-ts", "100")]);
        assert_eq!(e.verify(&ok, b"{}", at(100)), Ok(()));
        assert_eq!(
            e.verify(&ok, b"{}", at(1000)),
            Err(VerifyError::TimestampTooOld)
        );
        let twice = headers(&[("x-sig", &sig), ("x-ts", "100"), ("x-ts", "101")]);
        assert_eq!(
            e.verify(&twice, b"{}", at(100)),
            Err(VerifyError::Conflicting("signed timestamp"))
        );
        assert_eq!(
            e.verify(&headers(&[]), b"{}", at(100)),
            Err(VerifyError::MissingSignature("x-sig"))
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
