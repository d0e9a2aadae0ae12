//! SNS signing certificates: strict PEM → X.509 → "is this an SNS signing name?" → the RSA key,
//! kept in the PKCS#1 form `ring` verifies with.
//!
//! The certificate chain is not validated here: trust comes from where the PEM was obtained (a
//! trusted local directory, or HTTPS with normal TLS verification from a validated SNS host). The
//! name check is the extra guard the AWS Java v2 validator adds, so that a certificate for some
//! other AWS host is not accepted as a signing key.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{
    RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey,
    VerificationAlgorithm,
};
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION;
use x509_parser::prelude::X509Certificate;

use super::SnsError;

/// A parsed SNS signing certificate: its RSA public key and validity period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnsCert {
    /// PKCS#1 `RSAPublicKey` DER (the SPKI bit string), as `ring` wants it.
    public_key: Vec<u8>,
    /// Validity bounds in Unix seconds, inclusive.
    not_before: i64,
    not_after: i64,
}

impl SnsCert {
    /// Parses one PEM certificate and checks that its subject CN or a SAN DNS name is an SNS
    /// signing name. The PEM must match the shape the Ruby and Java validators enforce:
    /// `\A\s*-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/\n]+={0,2}\n-----END CERTIFICATE-----\s*\z`.
    pub fn from_pem(pem: &str) -> Result<Self, SnsError> {
        let base64 = pem_body(pem).ok_or(SnsError::InvalidCert("not a single PEM certificate"))?;
        let der = STANDARD
            .decode(base64)
            .map_err(|_| SnsError::InvalidCert("the PEM body is not valid base64"))?;
        let (rest, cert) = x509_parser::parse_x509_certificate(&der)
            .map_err(|_| SnsError::InvalidCert("not an X.509 certificate"))?;
        if !rest.is_empty() {
            return Err(SnsError::InvalidCert(
                "trailing bytes after the certificate",
            ));
        }
        if !names(&cert).any(|n| is_sns_signing_name(&n)) {
            return Err(SnsError::InvalidCert(
                "the subject is not an SNS signing name",
            ));
        }
        let spki = cert.public_key();
        if spki.algorithm.algorithm != OID_PKCS1_RSAENCRYPTION {
            return Err(SnsError::InvalidCert("the key is not RSA"));
        }
        let validity = cert.validity();
        Ok(SnsCert {
            public_key: spki.subject_public_key.data.to_vec(),
            not_before: validity.not_before.timestamp(),
            not_after: validity.not_after.timestamp(),
        })
    }

    /// Refuses the certificate outside notBefore..=notAfter.
    pub fn check_validity(&self, now: OffsetDateTime) -> Result<(), SnsError> {
        let now = now.unix_timestamp();
        if now < self.not_before {
            return Err(SnsError::InvalidCert("not yet valid"));
        }
        if now > self.not_after {
            return Err(SnsError::InvalidCert("expired"));
        }
        Ok(())
    }

    /// RSASSA-PKCS1-v1_5 over `message`: SHA-1 for version "1", SHA-256 for "2". `ring` also
    /// refuses keys outside 2048–8192 bits.
    pub fn verify(&self, version: &str, message: &[u8], signature: &[u8]) -> Result<(), SnsError> {
        let algorithm: &'static dyn VerificationAlgorithm = match version {
            // SNS still signs with SHA-1 by default; there is no choice but to accept it.
            "1" => &RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            "2" => &RSA_PKCS1_2048_8192_SHA256,
            _ => return Err(SnsError::UnsupportedSignatureVersion),
        };
        UnparsedPublicKey::new(algorithm, &self.public_key)
            .verify(message, signature)
            .map_err(|_| SnsError::BadSignature)
    }
}

/// The base64 text of a PEM certificate of the expected shape, newlines removed.
fn pem_body(pem: &str) -> Option<String> {
    let inner = pem
        .trim_matches(|c: char| c.is_ascii_whitespace())
        .strip_prefix("-----BEGIN CERTIFICATE-----\n")?
        .strip_suffix("\n-----END CERTIFICATE-----")?;
    let unpadded = inner.trim_end_matches('=');
    let well_formed = inner.len() - unpadded.len() <= 2
        && !unpadded.is_empty()
        && unpadded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'\n'));
    well_formed.then(|| inner.replace('\n', ""))
}

/// The subject common names and SAN DNS names.
fn names<'a>(cert: &'a X509Certificate<'_>) -> impl Iterator<Item = String> + 'a {
    let common = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_owned));
    let san = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                    _ => None,
                })
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    common.chain(san)
}

/// The names SNS signing certificates carry in the partitions whose hosts `url.rs` accepts
/// (`amazonaws.com` and `amazonaws.com.cn`; see the AWS Java v2 `SnsHostProvider`):
/// `sns.amazonaws.com[.cn]`, `sns-signing.<region>.amazonaws.com` (newer opt-in regions),
/// `sns-cn-<region-rest>.amazonaws.com.cn` and `sns-us-gov-<region-rest>.amazonaws.com`.
fn is_sns_signing_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let is_label =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if name == "sns.amazonaws.com" || name == "sns.amazonaws.com.cn" {
        return true;
    }
    if let Some(region) = name
        .strip_prefix("sns-signing.")
        .and_then(|r| r.strip_suffix(".amazonaws.com"))
    {
        return is_label(region);
    }
    if let Some(rest) = name
        .strip_prefix("sns-cn-")
        .and_then(|r| r.strip_suffix(".amazonaws.com.cn"))
    {
        return is_label(rest);
    }
    if let Some(rest) = name
        .strip_prefix("sns-us-gov-")
        .and_then(|r| r.strip_suffix(".amazonaws.com"))
    {
        return is_label(rest);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const CERT_A: &str = include_str!(
        "../../../tests/fixtures/sns/SimpleNotificationService-7506a1e35b36ef5a444dd1a8e7cc3ed8.pem"
    );
    const CERT_B: &str = include_str!(
        "../../../tests/fixtures/sns/SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem"
    );

    /// Self-signed, RSA 2048, CN=s3.amazonaws.com (made with `openssl req -x509`): a well-formed
    /// certificate for an AWS name that is not an SNS signing name.
    const NOT_SNS: &str = "\
-----BEGIN CERTIFICATE-----\n\
MIIDFzCCAf+gAwIBAgIUP2zXsoy3mHmHQE9xF65N011qCUowDQYJKoZIhvcNAQEL\n\
BQAwGzEZMBcGA1UEAwwQczMuYW1hem9uYXdzLmNvbTAeFw0yNjExMjQwMjMzMzda\n\
Fw0zNjExMjEwMjMzMzdaMBsxGTAXBgNVBAMMEHMzLmFtYXpvbmF3cy5jb20wggEi\n\
MA0GCSqGSIb3DQEBAQUAA4IBDwAwggEKAoIBAQDwnnZ9RfWSPK6SI1oBLfDvR51c\n\
SsZO/dK/s7tTlhJ4H8p6+PWZ1eyxreiT/MY8LC1H9qxQZ9l6wdlediycHGEd5u7E\n\
S1CwVVKav8xWjD1XZ1kfSv8eliAiE1STlau9/9mcOknLtm4AkdfAoKNyvQPY6PGc\n\
amm8plmG7HwAZL1Tym40wKW7szmox++rE5mVi9qFvDf9fhajs2JdEF/mInb8Qu7O\n\
yrXMD9X8cNOTMofn4yjjTbIjlfrcj3CQNwhOe62Cj3gGFc9ZMHHYDLgzRjlISxgp\n\
9qMVpTSTd7cOQRzO6ivfL1gajVhTatwoIhSFJOR42TBIo9WIUJm9YmeYWv/tAgMB\n\
AAGjUzBRMB0GA1UdDgQWBBTOSOsaEdruVh9e4W6fMPlircFHmTAfBgNVHSMEGDAW\n\
gBTOSOsaEdruVh9e4W6fMPlircFHmTAPBgNVHRMBAf8EBTADAQH/MA0GCSqGSIb3\n\
DQEBCwUAA4IBAQDFMdwVKPfGjMb22T1+S58ZDJAfG5dk/iL/iC0GnG8C2ti+dQN2\n\
nzbW7oCtYUSMHtmE3CX3sNbhurTLDtTyB4s5JpSE1b+uFN4xvkrnWf7LS+Y8Xvoy\n\
8zcpvq0va59vZKg5sWYqXW5+WfDLB7ixlEBIJ6dNBR8mCVC/UsgWhXMOXJyV1BmP\n\
F4Z85xodqtNHCx+L8wObQrGiBobjrUP5wASY2gN9/N0yhBLCYfwrVZbSpZqcQidL\n\
7X1wvcHs0I/hSEK8pnMTMxENtnPwdA2fX/kY6ZA2TEx88XjIm2ZbRhtt7cBM0Gn1\n\
NynERORifhqjX7WdL/VuKSO9yEHogdMoWb4S\n\
-----END CERTIFICATE-----\n";

    #[test]
    fn a_certificate_for_another_name_is_refused() {
        assert_eq!(
            SnsCert::from_pem(NOT_SNS),
            Err(SnsError::InvalidCert(
                "the subject is not an SNS signing name"
            ))
        );
    }

    #[test]
    fn fixture_certificates_parse_with_their_validity_periods() {
        let a = SnsCert::from_pem(CERT_A).unwrap();
        assert_eq!(a.check_validity(datetime!(2026-03-06 19:53 UTC)), Ok(()));
        assert_eq!(a.check_validity(datetime!(2025-11-10 00:00 UTC)), Ok(()));
        assert_eq!(a.check_validity(datetime!(2026-10-14 23:59:59 UTC)), Ok(()));
        assert_eq!(
            a.check_validity(datetime!(2026-11-24 12:00 UTC)),
            Err(SnsError::InvalidCert("expired"))
        );
        assert_eq!(
            a.check_validity(datetime!(2025-11-09 23:59:59 UTC)),
            Err(SnsError::InvalidCert("not yet valid"))
        );
        let b = SnsCert::from_pem(CERT_B).unwrap();
        assert_eq!(b.check_validity(datetime!(2022-07-28 21:23 UTC)), Ok(()));
        assert_eq!(
            b.check_validity(datetime!(2026-11-24 12:00 UTC)),
            Err(SnsError::InvalidCert("expired"))
        );
        // 2048-bit RSA: a 270-byte PKCS#1 RSAPublicKey.
        assert_eq!(a.public_key.len(), 270);
    }

    #[test]
    fn pem_shape_is_enforced() {
        let crlf = CERT_A.replace('\n', "\r\n");
        let xml = format!("<cert>{CERT_A}</cert>");
        let key_label = CERT_A.replace("CERTIFICATE", "PUBLIC KEY");
        let two = format!("{CERT_A}{CERT_B}");
        let junk_body = CERT_A.replace("MIIFxTCC", "MIIF!TCC");
        for bad in [
            crlf.as_str(),
            &xml,
            &key_label,
            &two,
            &junk_body,
            "",
            "-----BEGIN",
        ] {
            assert_eq!(
                SnsCert::from_pem(bad).unwrap_err().code(),
                "invalid_cert",
                "{bad:.40}"
            );
        }
        // Surrounding whitespace is allowed by the shape.
        assert!(SnsCert::from_pem(&format!("\n  {CERT_A}\n\n")).is_ok());
    }

    #[test]
    fn only_sns_signing_names_are_accepted() {
        for good in [
            "sns.amazonaws.com",
            "SNS.amazonaws.com",
            "sns.amazonaws.com.cn",
            "sns-signing.ap-east-1.amazonaws.com",
            "sns-cn-north-1.amazonaws.com.cn",
            "sns-us-gov-west-1.amazonaws.com",
        ] {
            assert!(is_sns_signing_name(good), "{good}");
        }
        for bad in [
            "s3.amazonaws.com",
            "sns.amazonaws.com.evil.com",
            "sns-signing..amazonaws.com",
            "sns-signing.a.b.amazonaws.com",
            "sns-cn-north-1.amazonaws.com",
            "evil-sns.amazonaws.com",
            "*.amazonaws.com",
        ] {
            assert!(!is_sns_signing_name(bad), "{bad}");
        }
    }

    #[test]
    fn unknown_signature_versions_are_refused_before_any_crypto() {
        let a = SnsCert::from_pem(CERT_A).unwrap();
        assert_eq!(
            a.verify("3", b"m", &[0; 256]),
            Err(SnsError::UnsupportedSignatureVersion)
        );
        assert_eq!(a.verify("1", b"m", &[0; 256]), Err(SnsError::BadSignature));
    }
}
