//! HMAC signatures: N candidate signatures (from one or more header values) against M configured
//! secrets, so that a provider rotating its secret (two signatures in the header) and an operator
//! rotating ours (two secrets in the config) both keep working mid-rotation.
//!
//! Comparison is constant-time over equal-length digests; a candidate that does not decode is simply
//! not a match, which reveals nothing about the secret.

use hmac::{KeyInit, Mac};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};

use crate::secret::Secret;

/// The hash under the HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HmacAlgorithm {
    Sha1,
    Sha256,
    Sha512,
}

/// How the provider writes the digest into the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DigestEncoding {
    /// Lower- or upper-case hex.
    Hex,
    /// Standard alphabet with `=` padding (RFC 4648 §4). The URL-safe alphabet is *not* accepted.
    Base64,
    /// URL-safe alphabet, padding optional (RFC 4648 §5).
    Base64url,
}

/// What could be wrong with the signatures on a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HmacFailure {
    /// No candidate signature was present.
    Missing,
    /// Candidates were present but none decoded to a digest of the right length.
    Malformed,
    /// Well-formed candidates, none made with a configured secret.
    Mismatch,
}

/// One HMAC scheme with its secrets.
#[derive(Debug, Clone)]
pub struct HmacKeyring {
    pub algorithm: HmacAlgorithm,
    pub encoding: DigestEncoding,
    pub secrets: Vec<Secret>,
}

impl HmacAlgorithm {
    pub fn digest_len(self) -> usize {
        match self {
            HmacAlgorithm::Sha1 => 20,
            HmacAlgorithm::Sha256 => 32,
            HmacAlgorithm::Sha512 => 64,
        }
    }

    /// HMAC of the concatenation of `parts` (for `timestamp.body` style messages without copying).
    pub fn mac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        fn run<M: Mac + KeyInit>(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
            // HMAC accepts keys of any length, so this cannot fail; an empty result would never match.
            let Ok(mut mac) = <M as KeyInit>::new_from_slice(key) else {
                return Vec::new();
            };
            for part in parts {
                mac.update(part);
            }
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            HmacAlgorithm::Sha1 => run::<hmac::Hmac<sha1::Sha1>>(key, parts),
            HmacAlgorithm::Sha256 => run::<hmac::Hmac<sha2::Sha256>>(key, parts),
            HmacAlgorithm::Sha512 => run::<hmac::Hmac<sha2::Sha512>>(key, parts),
        }
    }
}

impl DigestEncoding {
    pub fn decode(self, text: &str) -> Option<Vec<u8>> {
        match self {
            DigestEncoding::Hex => {
                // Sized once: `hex::decode` grows its vector as it goes.
                let mut digest = vec![0; text.len() / 2];
                hex::decode_to_slice(text, &mut digest)
                    .ok()
                    .map(|()| digest)
            }
            DigestEncoding::Base64 => STANDARD.decode(text).ok(),
            DigestEncoding::Base64url => URL_SAFE_NO_PAD
                .decode(text)
                .or_else(|_| URL_SAFE.decode(text))
                .ok(),
        }
    }

    pub fn encode(self, digest: &[u8]) -> String {
        match self {
            DigestEncoding::Hex => hex::encode(digest),
            DigestEncoding::Base64 => STANDARD.encode(digest),
            DigestEncoding::Base64url => URL_SAFE_NO_PAD.encode(digest),
        }
    }
}

impl HmacKeyring {
    /// Accepts when any candidate is the MAC of `message` under any secret.
    ///
    /// `candidates` are the encoded signatures exactly as extracted from the request, prefixes
    /// already removed.
    pub fn verify<'a>(
        &self,
        message: &[&[u8]],
        candidates: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), HmacFailure> {
        let want = self.algorithm.digest_len();
        let decoded: Vec<Option<Vec<u8>>> = candidates
            .into_iter()
            .map(|c| self.encoding.decode(c.trim()).filter(|d| d.len() == want))
            .collect();
        if decoded.is_empty() {
            return Err(HmacFailure::Missing);
        }
        if decoded.iter().all(Option::is_none) {
            return Err(HmacFailure::Malformed);
        }
        let mut matched = subtle::Choice::from(0);
        for secret in &self.secrets {
            let expected = self.algorithm.mac(secret.expose(), message);
            for candidate in decoded.iter().flatten() {
                matched |= expected.ct_eq(candidate);
            }
        }
        if bool::from(matched) {
            Ok(())
        } else {
            Err(HmacFailure::Mismatch)
        }
    }

    /// The encoded signature under the first secret: for test clients and the load generator.
    pub fn sign(&self, message: &[&[u8]]) -> String {
        let key = self.secrets.first().map(Secret::expose).unwrap_or_default();
        self.encoding.encode(&self.algorithm.mac(key, message))
    }
}

/// How a configured secret is written, when it is not the HMAC key's bytes themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretEncoding {
    /// The secret's bytes are the key.
    #[default]
    Raw,
    /// The key is base64 (standard alphabet) of random bytes, which is how senders that
    /// generate binary keys hand them out.
    Base64,
}

/// Turns secrets as configured into HMAC keys: `prefix` (a type marker some senders put before
/// the key) removed from each secret that starts with it, then decoded per `encoding`. `None`
/// when a secret does not decode, which is a config mistake, never a request's.
pub fn decode_secrets(
    secrets: Vec<Secret>,
    prefix: Option<&str>,
    encoding: SecretEncoding,
) -> Option<Vec<Secret>> {
    // A secret without the marker is kept as written: operators paste keys both ways.
    let unmarked = secrets.into_iter().map(|secret| {
        match prefix.and_then(|p| secret.expose().strip_prefix(p.as_bytes())) {
            Some(rest) => Secret::from_bytes(rest.to_vec()),
            None => secret,
        }
    });
    match encoding {
        SecretEncoding::Raw => Some(unmarked.collect()),
        SecretEncoding::Base64 => unmarked
            .map(|secret| {
                STANDARD
                    .decode(secret.expose())
                    .ok()
                    .map(Secret::from_bytes)
            })
            .collect(),
    }
}

/// Splits a header that may carry several signatures (`a,b` during rotation), dropping empty items.
pub fn split_list(value: &str, separator: char) -> impl Iterator<Item = &str> {
    value
        .split(separator)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(secrets: &[&str]) -> HmacKeyring {
        HmacKeyring {
            algorithm: HmacAlgorithm::Sha256,
            encoding: DigestEncoding::Base64,
            secrets: secrets
                .iter()
                .map(|s| Secret::from_bytes(s.as_bytes()))
                .collect(),
        }
    }

    #[test]
    fn sha512_and_sha1_produce_their_lengths() {
        assert_eq!(HmacAlgorithm::Sha512.mac(b"k", &[b"m"]).len(), 64);
        assert_eq!(HmacAlgorithm::Sha1.mac(b"k", &[b"m"]).len(), 20);
        // RFC 2202 test case 2 for HMAC-SHA1.
        assert_eq!(
            hex::encode(HmacAlgorithm::Sha1.mac(b"Jefe", &[b"what do ya want ", b"for nothing?"])),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
    }

    #[test]
    fn missing_malformed_and_mismatch_are_told_apart() {
        let r = ring(&["secret"]);
        assert_eq!(r.verify(&[b"body"], []), Err(HmacFailure::Missing));
        assert_eq!(
            r.verify(&[b"body"], ["not base64!"]),
            Err(HmacFailure::Malformed)
        );
        let wrong = r.sign(&[b"other body"]);
        assert_eq!(
            r.verify(&[b"body"], [wrong.as_str()]),
            Err(HmacFailure::Mismatch)
        );
        let right = r.sign(&[b"body"]);
        assert_eq!(r.verify(&[b"body"], [right.as_str()]), Ok(()));
    }

    #[test]
    fn hex_digests_decode_only_when_whole() {
        assert_eq!(DigestEncoding::Hex.decode("0aFf"), Some(vec![0x0a, 0xff]));
        assert_eq!(DigestEncoding::Hex.decode(""), Some(vec![]));
        for bad in ["0aF", "0g", "é1", "0a "] {
            assert_eq!(DigestEncoding::Hex.decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn stored_secrets_lose_their_marker_and_decode() {
        let stored = vec![Secret::from_bytes("key_aGk="), Secret::from_bytes("aGk=")];
        let keys = decode_secrets(stored.clone(), Some("key_"), SecretEncoding::Base64).unwrap();
        assert!(keys.iter().all(|k| k.expose() == b"hi"));
        let raw = decode_secrets(stored.clone(), None, SecretEncoding::Raw).unwrap();
        assert_eq!(raw[0].expose(), b"key_aGk=");
        assert!(decode_secrets(stored, None, SecretEncoding::Base64).is_none());
    }

    #[test]
    fn split_list_trims_and_drops_empty_items() {
        let items: Vec<&str> = split_list(" a, ,b ,", ',').collect();
        assert_eq!(items, ["a", "b"]);
    }
}
