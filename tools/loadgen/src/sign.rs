//! Distinct, correctly signed webhooks for the load generator, one signer per provider kind.
//!
//! Every request carries a unique *tag* (`lg<run>x<seq>x<sent-at-µs>`) in the field the provider's
//! mapping turns into the event subject, so that (a) no two requests share a dedup key and the
//! gateway does the whole job for each, and (b) the consumer can tell, from the published event
//! alone, which request it was and when it was sent (end-to-end latency without shared state).

use hookbridge::providers::{AnyProvider, Provider as _, SampleRequest};

/// A request ready to send: extra headers and the body. `content-type` is always among the headers.
pub struct SignedRequest {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// Signs for one source with the provider the gateway itself builds from the same config (and
/// environment), so the secrets, and the payload shapes, are the gateway's: the provider's
/// [`Provider::sample_webhook`] knows what it sends and how it signs.
pub struct Signer {
    provider: AnyProvider,
    body_bytes: usize,
    event_type: String,
}

impl Signer {
    /// `body_bytes` pads bodies to about that size where the provider's payload allows.
    pub fn for_source(provider: AnyProvider, body_bytes: usize) -> Result<Self, String> {
        let probe = SampleRequest {
            subject: "probe",
            now_unix: 0,
            body_bytes,
        };
        let event_type = provider
            .sample_webhook(&probe)
            .ok_or_else(|| {
                format!(
                    "the load generator cannot sign for provider {:?} as configured \
                     (it needs a secret it can sign with; SNS deliveries only AWS can sign)",
                    provider.kind()
                )
            })?
            .event_type;
        Ok(Signer {
            provider,
            body_bytes,
            event_type,
        })
    }

    /// The canonical event type the generated payload maps to (for topic templates).
    pub fn event_type(&self) -> &str {
        &self.event_type
    }

    /// One request whose subject is `tag`, signed now (`now_unix` seconds, for providers that sign
    /// a timestamp).
    /// `None` only if the provider stopped making samples, which `for_source` checked.
    pub fn sign(&self, tag: &str, now_unix: i64) -> Option<SignedRequest> {
        let request = SampleRequest {
            subject: tag,
            now_unix,
            body_bytes: self.body_bytes,
        };
        let sample = self.provider.sample_webhook(&request)?;
        Some(SignedRequest {
            headers: sample.headers,
            body: sample.body,
        })
    }
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
        let env = std::collections::HashMap::from([("S".to_owned(), "s".to_owned())]);
        let verify: toml::Table = r#"client_secrets = ["env:S"]"#.parse().unwrap();
        let provider = AnyProvider::from_config("v", "cronofy", &verify, &env).unwrap();
        let signer = Signer::for_source(provider, 1024).unwrap();
        let len = signer.sign(&tag(1, 1, 1), 0).unwrap().body.len();
        assert!((950..=1100).contains(&len), "{len}");
    }
}
