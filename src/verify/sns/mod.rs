//! Amazon SNS message signatures: the shared block for any source that receives SNS HTTP(S)
//! deliveries.
//!
//! SNS signs a canonical string built from selected envelope fields (see [`message`]) with an RSA
//! key whose certificate it publishes at `SigningCertURL`. Verifying a delivery means:
//! refuse raw delivery (no envelope, nothing signed) → parse the envelope → compare it with the
//! `x-amz-sns-*` headers → check the topic allow-list, the signature version and the timestamp
//! window → validate the certificate URL ([`url`]) → take the certificate from the cache, the local
//! directory or an HTTPS fetch ([`cert`]) → check it names SNS (and, optionally, is in date) →
//! verify SHA1withRSA (version "1") or SHA256withRSA (version "2").
//!
//! Cheap checks run first, so a forged or replayed message costs neither a disk read nor a fetch.
//! Nothing here reads the clock: `now` is a parameter, so tests replay fixtures at their own time.

pub mod cert;
pub mod message;
pub mod url;

mod cache;
mod fetch;
mod verifier;

#[cfg(test)]
mod tests;

pub use message::{SnsMessage, SnsType};
pub use verifier::SnsVerifier;

/// Header SNS sets to the envelope's `Type`.
pub const MESSAGE_TYPE_HEADER: &str = "x-amz-sns-message-type";
/// Header SNS sets to the envelope's `TopicArn`.
pub const TOPIC_ARN_HEADER: &str = "x-amz-sns-topic-arn";
/// Header SNS sets to `true` when raw message delivery is on (bare body, no signature).
pub const RAW_DELIVERY_HEADER: &str = "x-amz-sns-rawdelivery";

/// How strictly a source verifies SNS deliveries.
#[derive(Debug, Clone)]
pub struct SnsSettings {
    /// Topic ARNs accepted, compared exactly. Empty refuses every topic (fail closed).
    pub topic_arns: Vec<String>,
    /// Reject a `Timestamp` older than `now - tolerance` or newer than `now + 5 min`; `None` skips
    /// the check. SNS retries keep the original `Timestamp` for up to an hour, so keep this above
    /// one hour plus clock skew.
    pub timestamp_tolerance: Option<std::time::Duration>,
    /// Trusted local certificates, looked up before any fetch. The file name is the last path
    /// segment of `SigningCertURL`, e.g. `SimpleNotificationService-7506….pem`.
    pub cert_dir: Option<std::path::PathBuf>,
    /// Allow an HTTPS GET of a validated `SigningCertURL` (no redirects, 5 s, at most 64 KiB).
    pub fetch_certs: bool,
    /// Check the certificate's notBefore/notAfter against `now`.
    pub check_cert_validity: bool,
}

/// Why an SNS delivery was not accepted. `code()` is stable (metric label, JSON `code`, log
/// field); messages name fields or headers but never echo request values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnsError {
    #[error("invalid SNS envelope: {0}")]
    InvalidEnvelope(&'static str),
    #[error("invalid SNS envelope: the {0} key is missing or null")]
    MissingKey(&'static str),
    #[error("invalid SNS envelope: the {0} key is not a string")]
    NotAString(&'static str),
    #[error(
        "the SNS Type is not SubscriptionConfirmation, Notification or UnsubscribeConfirmation"
    )]
    UnsupportedType,
    #[error("the {0} header disagrees with the SNS envelope")]
    HeaderMismatch(&'static str),
    #[error("the SNS TopicArn is not in the allow-list")]
    TopicNotAllowed,
    #[error("the SNS SignatureVersion is not \"1\" or \"2\"")]
    UnsupportedSignatureVersion,
    #[error("the SigningCertURL is not acceptable: {0}")]
    InvalidCertUrl(&'static str),
    #[error("the SNS signing certificate is unavailable: {0}")]
    CertUnavailable(&'static str),
    #[error("the SNS signing certificate is not acceptable: {0}")]
    InvalidCert(&'static str),
    #[error("the SNS Signature is not valid base64")]
    MalformedSignature,
    #[error("the SNS Signature does not verify")]
    BadSignature,
    #[error("the SNS Timestamp is outside the accepted window")]
    StaleTimestamp,
    #[error("raw message delivery carries no SNS signature")]
    RawDelivery,
    #[error("the SubscribeURL is not acceptable: {0}")]
    InvalidSubscribeUrl(&'static str),
    #[error("the subscription could not be confirmed: {0}")]
    ConfirmFailed(&'static str),
}

impl SnsError {
    pub fn code(&self) -> &'static str {
        match self {
            SnsError::InvalidEnvelope(_) | SnsError::MissingKey(_) | SnsError::NotAString(_) => {
                "invalid_envelope"
            }
            SnsError::UnsupportedType => "unsupported_type",
            SnsError::HeaderMismatch(_) => "header_mismatch",
            SnsError::TopicNotAllowed => "topic_not_allowed",
            SnsError::UnsupportedSignatureVersion => "unsupported_signature_version",
            SnsError::InvalidCertUrl(_) => "invalid_cert_url",
            SnsError::CertUnavailable(_) => "cert_unavailable",
            SnsError::InvalidCert(_) => "invalid_cert",
            SnsError::MalformedSignature => "malformed_signature",
            SnsError::BadSignature => "bad_signature",
            SnsError::StaleTimestamp => "stale_timestamp",
            SnsError::RawDelivery => "raw_delivery",
            SnsError::InvalidSubscribeUrl(_) => "invalid_subscribe_url",
            SnsError::ConfirmFailed(_) => "confirm_failed",
        }
    }
}
