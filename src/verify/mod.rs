//! Shared verification pieces. Nothing in here knows a provider's name: providers (in
//! `crate::providers`) are presets assembled from these blocks.

pub mod hmac;

/// Why a request was not accepted as authentic. The `code()` is stable: it is the JSON `code` in the
/// reply, the `reason` label of `hookbridge_verification_failures_total` and the log field.
/// Messages never contain secrets or echo request values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the {0} header is missing or empty")]
    MissingSignature(&'static str),
    #[error("the {0} header holds no well-formed signature")]
    MalformedSignature(&'static str),
    #[error("no signature in {0} matches a configured secret")]
    BadSignature(&'static str),
}

impl VerifyError {
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::MissingSignature(_) => "missing_signature",
            VerifyError::MalformedSignature(_) => "malformed_signature",
            VerifyError::BadSignature(_) => "bad_signature",
        }
    }

    /// Builds the error for an HMAC failure on `header`.
    pub fn from_hmac(failure: hmac::HmacFailure, header: &'static str) -> Self {
        match failure {
            hmac::HmacFailure::Missing => VerifyError::MissingSignature(header),
            hmac::HmacFailure::Malformed => VerifyError::MalformedSignature(header),
            hmac::HmacFailure::Mismatch => VerifyError::BadSignature(header),
        }
    }
}
