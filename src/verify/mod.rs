//! Shared verification pieces. Nothing in here knows a provider's name: providers (in
//! the `providers` folder) are presets assembled from these blocks.
//!
//! A sender that signs an HMAC is [`signed_message`] composed of [`message_template`] (what is
//! signed), [`signature_format`] (where the signatures sit), [`hmac`] (the keyring, with
//! rotation on both sides) and [`timestamp`] (the replay window).

use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};

pub mod handshake;
pub mod hmac;
pub mod ip;
pub mod jwt;
pub mod message_template;
pub mod public_key;
pub mod signature_format;
pub mod signed_message;
pub mod signed_request;
pub mod sns;
pub mod timestamp;
pub mod token;

/// A configured header name for the life of the process, so [`VerifyError`]s can name it while
/// staying `&'static` (and cheap to copy into replies, logs and metrics labels). Each distinct
/// name is leaked once and then reused: a config reload (SIGHUP, or every change of the file)
/// builds the sources again, and leaking on each pass grew memory without bound (found by
/// `fuzz/`).
pub fn intern(name: String) -> &'static str {
    static NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut names = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(known) = names.get(name.as_str()) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.into_boxed_str());
    names.insert(leaked);
    leaked
}

/// The parts of a request the blocks read: what a signature can cover and what a handshake is
/// recognised by.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// Upper case, as received.
    pub method: &'a str,
    pub headers: &'a actix_web::http::header::HeaderMap,
    /// The raw query string, without `?`.
    pub query: &'a str,
    pub body: &'a [u8],
    pub received_at: time::OffsetDateTime,
}

/// Why a request was not accepted as authentic. The `code()` is stable: it is the JSON `code` in the
/// reply, the `reason` label of `hookbridge_verification_failures_total` and the log field.
/// Messages never contain secrets or echo request values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the {0} signature is missing or empty")]
    MissingSignature(&'static str),
    #[error("the {0} signature is not well-formed")]
    MalformedSignature(&'static str),
    #[error("no signature in {0} matches a configured secret")]
    BadSignature(&'static str),
    #[error("the signed timestamp is missing")]
    MissingTimestamp,
    #[error("the signed timestamp is not a valid time")]
    MalformedTimestamp,
    #[error("the signed timestamp is too old (replay window exceeded)")]
    TimestampTooOld,
    #[error("the signed timestamp is in the future")]
    TimestampInFuture,
    /// A signed value (timestamp, message id) sent twice with different values: which one was
    /// signed is ambiguous, so neither is believed.
    #[error("the {0} is repeated with different values")]
    Conflicting(&'static str),
    #[error("the {0} credential is missing")]
    MissingCredential(&'static str),
    #[error("the {0} credential does not match")]
    BadCredential(&'static str),
    #[error("the client address is not in the source's allowlist")]
    IpNotAllowed,
    #[error("the token was refused ({0})")]
    Jwt(&'static str),
    #[error("the signed payload is not base64url JSON")]
    MalformedSignedPayload,
    #[error("the signed payload names an algorithm other than HMAC-SHA256")]
    UnsupportedAlgorithm,
    #[error("the signed request has expired")]
    Expired,
    /// A handshake request that cannot be answered as its sender documents.
    #[error("the handshake cannot be answered: {0}")]
    BadHandshake(&'static str),
    /// A method other than POST, on a source whose handshake does not use it.
    #[error("only the source's handshake may use this method")]
    MethodNotAllowed,
    #[error(transparent)]
    Sns(#[from] sns::SnsError),
}

impl VerifyError {
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::MissingSignature(_) => "missing_signature",
            VerifyError::MalformedSignature(_) => "malformed_signature",
            VerifyError::BadSignature(_) => "bad_signature",
            VerifyError::MissingTimestamp => "missing_timestamp",
            VerifyError::MalformedTimestamp => "malformed_timestamp",
            VerifyError::TimestampTooOld => "timestamp_too_old",
            VerifyError::TimestampInFuture => "timestamp_in_future",
            VerifyError::Conflicting(_) => "conflicting_values",
            VerifyError::MissingCredential(_) => "missing_credential",
            VerifyError::BadCredential(_) => "bad_credential",
            VerifyError::IpNotAllowed => "ip_not_allowed",
            VerifyError::Jwt(code) => code,
            VerifyError::MalformedSignedPayload => "malformed_signed_payload",
            VerifyError::UnsupportedAlgorithm => "unsupported_algorithm",
            VerifyError::Expired => "expired",
            VerifyError::BadHandshake(_) => "bad_handshake",
            VerifyError::MethodNotAllowed => "method_not_allowed",
            VerifyError::Sns(e) => e.code(),
        }
    }

    /// Builds the error for an HMAC failure on `what` (a header or field name).
    pub fn from_hmac(failure: hmac::HmacFailure, what: &'static str) -> Self {
        match failure {
            hmac::HmacFailure::Missing => VerifyError::MissingSignature(what),
            hmac::HmacFailure::Malformed => VerifyError::MalformedSignature(what),
            hmac::HmacFailure::Mismatch => VerifyError::BadSignature(what),
        }
    }
}

/// A header map from name/value pairs (repeats kept), for unit tests of the blocks and the
/// providers built from them.
#[cfg(test)]
pub(crate) fn test_headers(pairs: &[(&str, &str)]) -> actix_web::http::header::HeaderMap {
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Validating the same config again (a reload) leaks no new header name.
    #[test]
    fn a_header_name_is_leaked_once_however_often_configs_are_built() {
        let first = intern("X-Fuzz-Leak-Once".to_owned());
        let again = intern("X-Fuzz-Leak-Once".to_owned());
        assert!(std::ptr::eq(first, again));
        assert!(!std::ptr::eq(first, intern("X-Fuzz-Leak-Other".to_owned())));
    }
}
