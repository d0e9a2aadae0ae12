//! Public-key signatures: Ed25519 (Discord) and ECDSA P-256 with SHA-256 (SendGrid). The sender
//! keeps the private key; the gateway holds only public keys, so nothing here is a secret.
//!
//! Verification is `ring`'s, already in the tree for TLS. Several keys may be configured for a
//! sender's key rotation, and every candidate signature is tried against every key, as the HMAC
//! keyring does.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use serde::Deserialize;

use super::hmac::{DigestEncoding, HmacFailure};

/// The signature algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PublicKeyAlgorithm {
    /// RFC 8032 Ed25519; 32-byte keys, 64-byte signatures.
    Ed25519,
    /// ECDSA over P-256 with SHA-256, the signature DER-encoded (RFC 3279 `Ecdsa-Sig-Value`).
    EcdsaP256Sha256,
}

/// One sender's public keys.
#[derive(Debug, Clone)]
pub struct PublicKeyring {
    pub algorithm: PublicKeyAlgorithm,
    /// How the signature is written in the request.
    pub encoding: DigestEncoding,
    /// Raw keys: 32 bytes for Ed25519, the 65-byte uncompressed point for P-256.
    keys: Vec<Vec<u8>>,
}

/// `SubjectPublicKeyInfo` DER up to the key bytes: the algorithm identifier is fixed for each
/// algorithm, so a prefix comparison is a complete parse.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

impl PublicKeyAlgorithm {
    fn ring(self) -> &'static dyn VerificationAlgorithm {
        match self {
            PublicKeyAlgorithm::Ed25519 => &signature::ED25519,
            PublicKeyAlgorithm::EcdsaP256Sha256 => &signature::ECDSA_P256_SHA256_ASN1,
        }
    }

    /// A key as providers publish it: hex or base64 of the raw key, base64 DER
    /// `SubjectPublicKeyInfo`, or that in PEM. The error is a sentence for a config issue.
    pub fn parse_key(self, text: &str) -> Result<Vec<u8>, String> {
        let text = text.trim();
        let der: String = text
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::trim)
            .collect();
        let bytes = hex::decode(&der)
            .ok()
            .or_else(|| STANDARD.decode(&der).ok())
            .ok_or("a public key is neither hex, base64 nor PEM")?;
        let (prefix, raw_len): (&[u8], usize) = match self {
            PublicKeyAlgorithm::Ed25519 => (&ED25519_SPKI_PREFIX, 32),
            PublicKeyAlgorithm::EcdsaP256Sha256 => (&P256_SPKI_PREFIX, 65),
        };
        let raw = match bytes.strip_prefix(prefix) {
            Some(raw) => raw.to_vec(),
            None => bytes,
        };
        // P-256 points are uncompressed (0x04 ‖ x ‖ y): what ring and every SPKI here carry.
        let shaped = raw.len() == raw_len
            && (self == PublicKeyAlgorithm::Ed25519 || raw.first() == Some(&0x04));
        if !shaped {
            return Err(format!(
                "a public key is not a {} key",
                match self {
                    PublicKeyAlgorithm::Ed25519 => "32-byte Ed25519",
                    PublicKeyAlgorithm::EcdsaP256Sha256 => "P-256 (uncompressed point or SPKI)",
                }
            ));
        }
        Ok(raw)
    }
}

impl PublicKeyring {
    /// Parses every key; the error is a sentence for a config issue.
    pub fn new(
        algorithm: PublicKeyAlgorithm,
        encoding: DigestEncoding,
        keys: &[String],
    ) -> Result<Self, String> {
        if keys.is_empty() {
            return Err("at least one public key is needed".into());
        }
        let keys = keys
            .iter()
            .map(|k| algorithm.parse_key(k))
            .collect::<Result<_, _>>()?;
        Ok(PublicKeyring {
            algorithm,
            encoding,
            keys,
        })
    }

    /// Accepts when any candidate is a signature of the concatenated `message` under any key.
    pub fn verify<'a>(
        &self,
        message: &[&[u8]],
        candidates: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), HmacFailure> {
        let decoded: Vec<Option<Vec<u8>>> = candidates
            .into_iter()
            .map(|c| self.encoding.decode(c.trim()).filter(|d| !d.is_empty()))
            .collect();
        if decoded.is_empty() {
            return Err(HmacFailure::Missing);
        }
        if decoded.iter().all(Option::is_none) {
            return Err(HmacFailure::Malformed);
        }
        // ring verifies one contiguous message; signatures are checked in the open anyway (a
        // public-key check leaks nothing secret), so the copy is the only cost.
        let message = message.concat();
        let algorithm = self.algorithm.ring();
        let matched = self.keys.iter().any(|key| {
            let key = UnparsedPublicKey::new(algorithm, key);
            decoded
                .iter()
                .flatten()
                .any(|sig| key.verify(&message, sig).is_ok())
        });
        if matched {
            Ok(())
        } else {
            Err(HmacFailure::Mismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};

    /// RFC 8032 §7.1, test 2: the one-byte message 0x72.
    #[test]
    fn ed25519_accepts_the_rfc_vector_and_nothing_else() {
        let ring = PublicKeyring::new(
            PublicKeyAlgorithm::Ed25519,
            DigestEncoding::Hex,
            &["3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c".into()],
        )
        .unwrap();
        let sig = "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da\
                   085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00";
        assert_eq!(ring.verify(&[b"\x72"], [sig]), Ok(()));
        assert_eq!(ring.verify(&[b"\x73"], [sig]), Err(HmacFailure::Mismatch));
        assert_eq!(ring.verify(&[b"\x72"], ["zz"]), Err(HmacFailure::Malformed));
        assert_eq!(ring.verify(&[b"\x72"], []), Err(HmacFailure::Missing));
    }

    /// A P-256 key given as base64 SPKI (how SendGrid shows it), with the message in pieces.
    #[test]
    fn ecdsa_p256_takes_spki_keys_and_pieced_messages() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let spki = [&P256_SPKI_PREFIX[..], pair.public_key().as_ref()].concat();
        let ring = PublicKeyring::new(
            PublicKeyAlgorithm::EcdsaP256Sha256,
            DigestEncoding::Base64,
            &[STANDARD.encode(spki)],
        )
        .unwrap();
        let sig = STANDARD.encode(pair.sign(&rng, b"1700000000{}").unwrap());
        assert_eq!(ring.verify(&[b"1700000000", b"{}"], [sig.as_str()]), Ok(()));
        assert_eq!(
            ring.verify(&[b"1700000001", b"{}"], [sig.as_str()]),
            Err(HmacFailure::Mismatch)
        );
    }

    #[test]
    fn keys_of_the_wrong_shape_are_config_errors() {
        let ed = PublicKeyAlgorithm::Ed25519;
        assert!(ed.parse_key("abcd").unwrap_err().contains("32-byte"));
        assert!(ed.parse_key("not a key!").unwrap_err().contains("neither"));
        let pair = Ed25519KeyPair::from_seed_unchecked(&[7; 32]).unwrap();
        let spki = [&ED25519_SPKI_PREFIX[..], pair.public_key().as_ref()].concat();
        let pem = format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            STANDARD.encode(spki)
        );
        assert_eq!(ed.parse_key(&pem).unwrap(), pair.public_key().as_ref());
    }
}
