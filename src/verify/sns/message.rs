//! The SNS JSON envelope: parsing it strictly and building the exact string SNS signed.
//!
//! The signature covers the *decoded* string values (JSON escapes such as `\n` or `\u00e9` turned
//! back into characters), so the envelope is decoded once and never re-serialised. The string to
//! sign is `key\nvalue\n` for each signed key present, in the fixed byte order of the key names.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::SnsError;

/// The three kinds of SNS HTTP delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SnsType {
    SubscriptionConfirmation,
    Notification,
    UnsubscribeConfirmation,
}

impl SnsType {
    /// The spelling SNS uses in `Type` and in the `x-amz-sns-message-type` header.
    pub fn as_str(self) -> &'static str {
        match self {
            SnsType::SubscriptionConfirmation => "SubscriptionConfirmation",
            SnsType::Notification => "Notification",
            SnsType::UnsubscribeConfirmation => "UnsubscribeConfirmation",
        }
    }

    fn from_wire(text: &str) -> Option<Self> {
        match text {
            "SubscriptionConfirmation" => Some(SnsType::SubscriptionConfirmation),
            "Notification" => Some(SnsType::Notification),
            "UnsubscribeConfirmation" => Some(SnsType::UnsubscribeConfirmation),
            _ => None,
        }
    }
}

/// One decoded SNS envelope. Every field except `unsubscribe_url` and `signing_cert_url` is
/// covered by the signature once [`super::SnsVerifier::verify`] has returned it; keys another
/// `Type` would sign (e.g. `Token` on a Notification) are dropped rather than exposed unsigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnsMessage {
    pub kind: SnsType,
    pub message_id: String,
    pub topic_arn: String,
    pub message: String,
    pub subject: Option<String>,
    /// Exactly as received: re-formatting (e.g. dropping `.000`) would break the signature.
    pub timestamp: String,
    pub timestamp_parsed: OffsetDateTime,
    pub signature_version: String,
    /// Base64 text as received; decoded only when verifying.
    pub signature: String,
    pub signing_cert_url: String,
    pub subscribe_url: Option<String>,
    pub token: Option<String>,
    pub unsubscribe_url: Option<String>,
}

/// SNS→Lambda events spell these keys differently; the AWS validators rename them, and so do we.
const LAMBDA_SPELLINGS: [(&str, &str); 3] = [
    ("SigningCertUrl", "SigningCertURL"),
    ("SubscribeUrl", "SubscribeURL"),
    ("UnsubscribeUrl", "UnsubscribeURL"),
];

impl SnsMessage {
    /// Decodes the raw body. Required: `Message, MessageId, Timestamp, TopicArn, Type, Signature,
    /// SigningCertURL, SignatureVersion`, plus `SubscribeURL, Token` for the two subscription
    /// types. Known keys must hold strings (`null` counts as absent); unknown keys such as
    /// `MessageAttributes` are ignored. Duplicate keys are refused: with two `Message` keys, which
    /// one was signed would be a guess.
    pub fn parse(body: &[u8]) -> Result<Self, SnsError> {
        let UniqueObject(mut map) = serde_json::from_slice(body).map_err(|e| {
            SnsError::InvalidEnvelope(match e.classify() {
                serde_json::error::Category::Data => {
                    "the body is not a JSON object with unique keys"
                }
                _ => "the body is not JSON",
            })
        })?;
        for (lambda, canonical) in LAMBDA_SPELLINGS {
            if let Some(value) = map.remove(lambda) {
                if map.contains_key(canonical) {
                    return Err(SnsError::InvalidEnvelope("a key appears in two spellings"));
                }
                map.insert(canonical.to_owned(), value);
            }
        }
        let mut take = |key: &'static str| -> Result<Option<String>, SnsError> {
            match map.remove(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(_) => Err(SnsError::NotAString(key)),
            }
        };
        let require =
            |key: &'static str, value: Option<String>| value.ok_or(SnsError::MissingKey(key));

        let kind = require("Type", take("Type")?)?;
        let kind = SnsType::from_wire(&kind).ok_or(SnsError::UnsupportedType)?;
        let is_subscription = kind != SnsType::Notification;
        let subject = take("Subject")?;
        let subscribe_url = take("SubscribeURL")?;
        let token = take("Token")?;
        let timestamp = require("Timestamp", take("Timestamp")?)?;
        let timestamp_parsed = OffsetDateTime::parse(&timestamp, &Rfc3339)
            .map_err(|_| SnsError::InvalidEnvelope("Timestamp is not an RFC 3339 time"))?;

        Ok(SnsMessage {
            kind,
            message_id: require("MessageId", take("MessageId")?)?,
            topic_arn: require("TopicArn", take("TopicArn")?)?,
            message: require("Message", take("Message")?)?,
            // Only the keys this Type signs are kept (see the struct docs).
            subject: if is_subscription { None } else { subject },
            timestamp,
            timestamp_parsed,
            signature_version: require("SignatureVersion", take("SignatureVersion")?)?,
            signature: require("Signature", take("Signature")?)?,
            signing_cert_url: require("SigningCertURL", take("SigningCertURL")?)?,
            subscribe_url: if is_subscription {
                Some(require("SubscribeURL", subscribe_url)?)
            } else {
                None
            },
            token: if is_subscription {
                Some(require("Token", token)?)
            } else {
                None
            },
            unsubscribe_url: take("UnsubscribeURL")?,
        })
    }

    /// The bytes SNS signed: the per-type key lists of AWS's own validators (Java v2). For
    /// messages SNS actually sends this equals the PHP/Ruby superset list, because the keys the
    /// other list adds are never present.
    pub fn string_to_sign(&self) -> String {
        let fields: &[(&str, Option<&str>)] = match self.kind {
            SnsType::Notification => &[
                ("Message", Some(&self.message)),
                ("MessageId", Some(&self.message_id)),
                ("Subject", self.subject.as_deref()),
                ("Timestamp", Some(&self.timestamp)),
                ("TopicArn", Some(&self.topic_arn)),
                ("Type", Some(self.kind.as_str())),
            ],
            SnsType::SubscriptionConfirmation | SnsType::UnsubscribeConfirmation => &[
                ("Message", Some(&self.message)),
                ("MessageId", Some(&self.message_id)),
                ("SubscribeURL", self.subscribe_url.as_deref()),
                ("Timestamp", Some(&self.timestamp)),
                ("Token", self.token.as_deref()),
                ("TopicArn", Some(&self.topic_arn)),
                ("Type", Some(self.kind.as_str())),
            ],
        };
        let mut out = String::with_capacity(self.message.len() + 512);
        for &(key, value) in fields {
            if let Some(value) = value {
                out.push_str(key);
                out.push('\n');
                out.push_str(value);
                out.push('\n');
            }
        }
        out
    }
}

/// A JSON object whose keys are all distinct (serde_json alone keeps the last duplicate).
struct UniqueObject(BTreeMap<String, Value>);

impl<'de> Deserialize<'de> for UniqueObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = UniqueObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut map = BTreeMap::new();
                while let Some((key, value)) = access.next_entry::<String, Value>()? {
                    if map.insert(key, value).is_some() {
                        return Err(serde::de::Error::custom("duplicate key"));
                    }
                }
                Ok(UniqueObject(map))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"{"Type":"Notification","MessageId":"m","TopicArn":"t",
        "Message":"a\nb \u00e9 \/","Timestamp":"2026-03-06T19:53:21.000Z","SignatureVersion":"1",
        "Signature":"c2ln","SigningCertURL":"https://sns.x-y.amazonaws.com/c.pem",
        "MessageAttributes":{"k":{"Type":"String","Value":"v"}}}"#;

    #[test]
    fn json_escapes_are_decoded_and_the_timestamp_kept_verbatim() {
        let m = SnsMessage::parse(MINIMAL.as_bytes()).unwrap();
        assert_eq!(m.message, "a\nb é /");
        assert_eq!(
            m.string_to_sign(),
            "Message\na\nb é /\nMessageId\nm\nTimestamp\n2026-03-06T19:53:21.000Z\n\
             TopicArn\nt\nType\nNotification\n"
        );
    }

    #[test]
    fn malformed_envelopes_are_refused_with_their_reason() {
        let cases: [(&str, SnsError); 7] = [
            (
                "not json",
                SnsError::InvalidEnvelope("the body is not JSON"),
            ),
            (
                "[1]",
                SnsError::InvalidEnvelope("the body is not a JSON object with unique keys"),
            ),
            (
                r#"{"Type":"Notification","Type":"Notification"}"#,
                SnsError::InvalidEnvelope("the body is not a JSON object with unique keys"),
            ),
            (r#"{"MessageId":"m"}"#, SnsError::MissingKey("Type")),
            (r#"{"Type":"Bogus"}"#, SnsError::UnsupportedType),
            (r#"{"Type":1}"#, SnsError::NotAString("Type")),
            (
                r#"{"Type":"Notification","SigningCertURL":"a","SigningCertUrl":"b"}"#,
                SnsError::InvalidEnvelope("a key appears in two spellings"),
            ),
        ];
        for (body, want) in cases {
            assert_eq!(
                SnsMessage::parse(body.as_bytes()),
                Err(want),
                "body: {body}"
            );
        }
    }

    #[test]
    fn subscription_types_require_token_and_subscribe_url() {
        let body = MINIMAL.replace("\"Notification\"", "\"SubscriptionConfirmation\"");
        assert_eq!(
            SnsMessage::parse(body.as_bytes()),
            Err(SnsError::MissingKey("SubscribeURL"))
        );
    }

    #[test]
    fn numeric_signature_version_and_bad_timestamp_are_refused() {
        let body = MINIMAL.replace(r#""SignatureVersion":"1""#, r#""SignatureVersion":1"#);
        assert_eq!(
            SnsMessage::parse(body.as_bytes()),
            Err(SnsError::NotAString("SignatureVersion"))
        );
        let body = MINIMAL.replace("2026-03-06T19:53:21.000Z", "1435697129");
        assert_eq!(
            SnsMessage::parse(body.as_bytes()).unwrap_err().code(),
            "invalid_envelope"
        );
    }
}
