//! Sample webhooks: what each provider would send, signed with the source's own secret. The load
//! generator (`tools/loadgen`) sends these; they live here because the payload's shape and the
//! signing scheme are the provider's knowledge, next to the mapping that reads them back.

/// What to put in a sample.
#[derive(Debug, Clone, Copy)]
pub struct SampleRequest<'a> {
    /// Becomes the event's subject (the load generator's per-request tag).
    pub subject: &'a str,
    /// Signing time, for schemes that sign a timestamp.
    pub now_unix: i64,
    /// Approximate body size, for providers whose payload can be padded with realistic data.
    pub body_bytes: usize,
}

/// A request ready to send.
#[derive(Debug, Clone)]
pub struct SampleWebhook {
    /// Lowercase names; `content-type` is always among them.
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The canonical event type it maps to (for topic templates).
    pub event_type: String,
}

impl SampleWebhook {
    /// A JSON body with extra headers.
    pub(crate) fn json(body: String, event_type: &str, extra: Vec<(String, String)>) -> Self {
        let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
        headers.extend(extra);
        SampleWebhook {
            headers,
            body,
            event_type: event_type.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
    use bytes::Bytes;

    use super::*;
    use crate::providers::{AnyProvider, Mapped, Provider, WebhookRequest, block_on};

    /// Each provider's sample passes its own verification and maps to an event whose subject is
    /// the one asked for: what the load generator sends is what the gateway accepts.
    #[test]
    fn every_signable_provider_accepts_its_own_sample() {
        let env = HashMap::from([("S".to_owned(), "s3cret".to_owned())]);
        let kinds = [
            ("cronofy", r#"client_secrets = ["env:S"]"#),
            (
                "docplanner",
                r#"api_key_header = "X-Api-Key"
                   api_keys = ["env:S"]"#,
            ),
            ("service_optimizer", r#"tokens = ["env:S"]"#),
            (
                "salesking",
                r#"secrets = ["env:S"]
                   channel = "client.create""#,
            ),
        ];
        for (kind, verify) in kinds {
            let table: toml::Table = verify.parse().unwrap();
            let provider = AnyProvider::from_config("v", kind, &table, &env).unwrap();
            let now = time::OffsetDateTime::now_utc();
            let sample = provider
                .sample_webhook(&SampleRequest {
                    subject: "lg1x2x3",
                    now_unix: now.unix_timestamp(),
                    body_bytes: 1024,
                })
                .unwrap_or_else(|| panic!("{kind} has no sample"));
            let mut headers = HeaderMap::new();
            for (name, value) in &sample.headers {
                headers.insert(
                    HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    HeaderValue::from_str(value).unwrap(),
                );
            }
            let body = Bytes::from(sample.body.clone());
            let request = WebhookRequest {
                method: "POST",
                headers: &headers,
                query: "",
                body: &body,
                peer: None,
                received_at: now,
            };
            let verified = block_on(provider.verify(&request)).unwrap_or_else(|e| {
                panic!("{kind}: its own sample is refused: {}", e.code());
            });
            let Ok(Mapped::Event(event)) = block_on(provider.map("s", verified)) else {
                panic!("{kind}: its sample does not map to an event");
            };
            assert_eq!(event.subject.as_deref(), Some("lg1x2x3"), "{kind}");
            assert_eq!(event.event_type, sample.event_type, "{kind}");
        }
    }

    /// SNS deliveries are signed by AWS: no sample can be made for them.
    #[test]
    fn a_provider_that_cannot_be_signed_for_says_so() {
        let table: toml::Table = r#"topic_arns = ["arn:aws:sns:us-east-1:1:t"]"#.parse().unwrap();
        let provider = AnyProvider::from_config("v", "timetap", &table, &HashMap::new()).unwrap();
        let request = SampleRequest {
            subject: "x",
            now_unix: 0,
            body_bytes: 0,
        };
        assert!(provider.sample_webhook(&request).is_none());
    }
}
