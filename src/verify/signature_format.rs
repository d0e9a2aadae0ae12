//! How signatures are written in their header: which parts of the value are candidate
//! signatures (several of them while the sender rotates its secret), and whether the value also
//! carries the signed timestamp.
//!
//! Two layouts cover the senders seen so far: a plain list (`sha256=<hex>`, `v1,<b64> v1,<b64>`)
//! and `key=value` pairs (`t=<unix>,v1=<sig>,v1=<sig>`). Decoding the digest text (hex, base64)
//! is the keyring's business, not this module's.

use super::VerifyError;
use super::hmac::split_list;

/// The layout of a signature header's value.
#[derive(Debug, Clone)]
pub enum SignatureFormat {
    /// Signatures separated by `separator`, each written after `prefix` (which may be empty).
    List { prefix: String, separator: String },
    /// Comma-separated `key=value` pairs: every pair under `signature_key` is a candidate, and
    /// the pair under `timestamp_key` is the signed timestamp.
    Kv {
        timestamp_key: String,
        signature_key: String,
        /// Between pairs: `,` for most, `;` for Paddle.
        pair_separator: char,
    },
}

/// What the signature header carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted<'v> {
    /// Candidate signatures, still encoded. Empty when the header had none.
    pub candidates: Vec<&'v str>,
    /// The signed timestamp, when the layout carries one and the header had it.
    pub timestamp: Option<&'v str>,
}

impl SignatureFormat {
    /// True when the signature header itself carries the signed timestamp, so a message that
    /// signs `{timestamp}` needs no separate timestamp header.
    pub fn carries_timestamp(&self) -> bool {
        matches!(self, SignatureFormat::Kv { .. })
    }

    /// Splits every value of the signature header (a repeated header is one list, RFC 9110
    /// §5.3) into candidates.
    pub fn extract<'v>(&self, values: &[&'v str]) -> Result<Extracted<'v>, VerifyError> {
        match self {
            SignatureFormat::List { prefix, separator } => Ok(Extracted {
                candidates: values
                    .iter()
                    .flat_map(|v| v.split(separator.as_str()))
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    // Without its prefix a candidate stays, as an empty one that never decodes:
                    // the request is answered "malformed", not "missing", and a bare digest is
                    // not accepted where the sender always writes the prefix.
                    .map(|c| c.strip_prefix(prefix.as_str()).unwrap_or(""))
                    .collect(),
                timestamp: None,
            }),
            SignatureFormat::Kv {
                timestamp_key,
                signature_key,
                pair_separator,
            } => {
                let pairs: Vec<(&str, &str)> = values
                    .iter()
                    .flat_map(|v| split_list(v, *pair_separator))
                    .filter_map(|p| p.split_once('='))
                    .collect();
                let mut timestamps = pairs
                    .iter()
                    .filter(|(k, _)| k.trim() == timestamp_key)
                    .map(|(_, v)| v.trim());
                let timestamp = timestamps.next();
                // Two different timestamps: which one the signature covers is ambiguous, and
                // believing the wrong one would stretch the replay window at will.
                if timestamps.any(|t| Some(t) != timestamp) {
                    return Err(VerifyError::Conflicting("signed timestamp"));
                }
                Ok(Extracted {
                    candidates: pairs
                        .iter()
                        .filter(|(k, _)| k.trim() == signature_key)
                        .map(|(_, v)| v.trim())
                        .collect(),
                    timestamp,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_strips_prefixes_and_keeps_unprefixed_items_as_malformed() {
        let f = SignatureFormat::List {
            prefix: "v1,".into(),
            separator: " ".into(),
        };
        let got = f.extract(&["v1,a v1,b", "c"]).unwrap();
        assert_eq!(got.candidates, ["a", "b", ""]);
        assert_eq!(got.timestamp, None);
    }

    #[test]
    fn kv_pairs_give_the_timestamp_and_every_signature() {
        let f = SignatureFormat::Kv {
            timestamp_key: "t".into(),
            signature_key: "v1".into(),
            pair_separator: ',',
        };
        let got = f.extract(&["t=17, v1=a,v0=x", "v1=b,t=17"]).unwrap();
        assert_eq!(got.candidates, ["a", "b"]);
        assert_eq!(got.timestamp, Some("17"));
        assert_eq!(
            f.extract(&["t=17,t=18,v1=a"]),
            Err(VerifyError::Conflicting("signed timestamp"))
        );
    }
}
