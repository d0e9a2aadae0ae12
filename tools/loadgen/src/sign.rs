//! Distinct, correctly signed webhooks for the load generator, one signer per provider kind.
//!
//! Every request carries a unique *tag* (`lg<run>x<seq>x<sent-at-µs>`) in the field the provider's
//! mapping turns into the event subject, so that (a) no two requests share a dedup key and the
//! gateway does the whole job for each, and (b) the consumer can tell, from the published event
//! alone, which request it was and when it was sent (end-to-end latency without shared state).

use std::collections::HashMap;

use base64::Engine as _;
use hookbridge::config::{RawSource, SecretRef};
use hookbridge::verify::hmac::HmacAlgorithm;

/// A request ready to send: extra headers and the body. `content-type` is always among the headers.
pub struct SignedRequest {
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// How one provider kind signs, with the secret taken from the gateway's own config.
pub enum Signer {
    Cronofy {
        secret: Vec<u8>,
        padding: String,
    },
    /// The header name is config, leaked once per signer so requests can borrow it.
    Docplanner {
        header: &'static str,
        key: String,
    },
    ServiceOptimizer {
        token: String,
    },
    SalesKing {
        secret: Vec<u8>,
    },
}

impl Signer {
    /// Builds the signer for `source` from the same config (and environment) the gateway reads, so
    /// the secrets are the gateway's. `body_bytes` pads Cronofy bodies to about that size.
    pub fn for_source(
        source: &RawSource,
        env: &HashMap<String, String>,
        body_bytes: usize,
    ) -> Result<Self, String> {
        let secret = |key: &str| -> Result<Vec<u8>, String> {
            let list = source
                .verify
                .get(key)
                .and_then(toml::Value::as_array)
                .ok_or_else(|| format!("verify.{key} is not a list of secret references"))?;
            let first = list
                .first()
                .and_then(toml::Value::as_str)
                .ok_or_else(|| format!("verify.{key} is empty"))?;
            let secret = SecretRef::parse(first)?.resolve(env)?;
            Ok(secret.expose().to_vec())
        };
        let text = |bytes: Vec<u8>| String::from_utf8(bytes).map_err(|_| "secret is not UTF-8");
        match source.provider.as_str() {
            "cronofy" => Ok(Signer::Cronofy {
                secret: secret("client_secrets")?,
                padding: cronofy_padding(body_bytes),
            }),
            "docplanner" => Ok(Signer::Docplanner {
                header: Box::leak(
                    source
                        .verify
                        .get("api_key_header")
                        .and_then(toml::Value::as_str)
                        .ok_or("docplanner source without verify.api_key_header")?
                        .to_ascii_lowercase()
                        .into_boxed_str(),
                ),
                key: text(secret("api_keys")?)?,
            }),
            "service_optimizer" => Ok(Signer::ServiceOptimizer {
                token: text(secret("tokens")?)?,
            }),
            "salesking" => Ok(Signer::SalesKing {
                secret: secret("secrets")?,
            }),
            other => Err(format!(
                "the load generator cannot sign for provider {other:?} \
                 (it can for cronofy, docplanner, service_optimizer, salesking)"
            )),
        }
    }

    /// The canonical event type the generated payload maps to (for topic templates).
    pub fn event_type(&self) -> &'static str {
        match self {
            Signer::Cronofy { .. } => "calendar.changed",
            Signer::Docplanner { .. } | Signer::ServiceOptimizer { .. } => "appointment.booked",
            Signer::SalesKing { .. } => "crm.record_created",
        }
    }

    /// One request whose subject is `tag`, signed now (`now_unix` seconds, for providers that sign
    /// a timestamp).
    pub fn sign(&self, tag: &str, now_unix: i64) -> SignedRequest {
        let json = ("content-type", "application/json".to_owned());
        match self {
            Signer::Cronofy { secret, padding } => {
                let body = format!(
                    r#"{{"notification":{{"type":"change","changes_since":"2024-10-14T09:24:16Z"}},"channel":{{"channel_id":"{tag}","callback_url":"https://example.com/cronofy","filters":{{"calendar_ids":[{padding}]}}}}}}"#
                );
                let signature = base64::engine::general_purpose::STANDARD
                    .encode(HmacAlgorithm::Sha256.mac(secret, &[body.as_bytes()]));
                SignedRequest {
                    headers: vec![json, ("cronofy-hmac-sha256", signature)],
                    body,
                }
            }
            Signer::Docplanner { header, key } => {
                let body = format!(
                    r#"{{"name":"slot-booked","data":{{"facility":{{"id":"1"}},"doctor":{{"id":"123"}},"address":{{"id":"111"}},"visit_booking":{{"id":"{tag}","status":"booked","start_at":"2021-05-26T16:00:00+01:00","end_at":"2021-05-26T16:30:00+01:00","duration":30}}}},"created_at":"2021-05-12T10:18:34+01:00"}}"#
                );
                SignedRequest {
                    headers: vec![json, (*header, key.clone())],
                    body,
                }
            }
            Signer::ServiceOptimizer { token } => SignedRequest {
                headers: vec![json, ("authorization", token.clone())],
                body: format!(
                    r#"{{"Type":"0","WorkItemType":"1","WorkItem":{{"Id":"{tag}","WorkStatus":"10"}}}}"#
                ),
            },
            Signer::SalesKing { secret } => {
                let issued_at = time::OffsetDateTime::from_unix_timestamp(now_unix)
                    .ok()
                    .and_then(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .unwrap_or_default();
                let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
                    r#"{{"obj":{{"client":{{"id":"{tag}"}}}},"company_id":"loadgen","issued_at":"{issued_at}","algorithm":"HMAC-SHA256"}}"#
                ));
                let signature =
                    hex::encode(HmacAlgorithm::Sha256.mac(secret, &[payload.as_bytes()]));
                SignedRequest {
                    headers: vec![(
                        "content-type",
                        "application/x-www-form-urlencoded".to_owned(),
                    )],
                    body: format!("signed_request={signature}.{payload}"),
                }
            }
        }
    }
}

/// Calendar ids that bring a Cronofy `change` to about `size` bytes (the benchmark's ~1 KB webhook).
fn cronofy_padding(size: usize) -> String {
    // The envelope without ids is ~190 bytes; each id adds 27.
    let count = size.saturating_sub(190) / 27;
    (0..count.max(1))
        .map(|i| format!("\"cal_{i:020}\""))
        .collect::<Vec<_>>()
        .join(",")
}

/// The tag that makes a request unique and carries its send time.
pub fn tag(run: u32, seq: u64, sent_at_micros: u64) -> String {
    format!("lg{run}x{seq}x{sent_at_micros}")
}

/// Reads a tag back: (run, seq, sent-at µs).
pub fn parse_tag(tag: &str) -> Option<(u32, u64, u64)> {
    let rest = tag.strip_prefix("lg")?;
    let mut parts = rest.split('x');
    let run = parts.next()?.parse().ok()?;
    let seq = parts.next()?.parse().ok()?;
    let sent = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((run, seq, sent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_reads_back_and_rejects_look_alikes() {
        assert_eq!(parse_tag(&tag(7, 42, 1_700_000)), Some((7, 42, 1_700_000)));
        assert_eq!(parse_tag("lg7x42"), None);
        assert_eq!(parse_tag("lg7x42x1x2"), None);
        assert_eq!(parse_tag("chn_54cf7c7cb4ad4c1027000001"), None);
    }

    #[test]
    fn cronofy_bodies_are_about_the_asked_size() {
        let signer = Signer::Cronofy {
            secret: b"s".to_vec(),
            padding: cronofy_padding(1024),
        };
        let len = signer.sign(&tag(1, 1, 1), 0).body.len();
        assert!((950..=1100).contains(&len), "{len}");
    }
}
