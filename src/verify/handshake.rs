//! Handshakes: requests a sender makes before it sends events, to prove the endpoint is the one
//! it was told about (Slack's `url_verification`, Zoom's `endpoint.url_validation`, Dropbox's
//! `challenge`, ...). Each is answered exactly as its sender documents, is never published, and
//! is counted (`hookbridge_handshakes_total`).
//!
//! A handshake the sender authenticates like its events (a signed Slack or Zoom request, Okta's
//! `Authorization` header) is answered only after that check; the others (Dropbox, Asana,
//! Microsoft Graph) carry nothing to check, and their answers reveal nothing but the value they
//! were sent. Values echoed back are bounded and printable: an echo is not a way to make the
//! gateway serve arbitrary content.
//!
//! Each kind is a few lines of its sender's protocol, not settings: the protocols have nothing
//! in common beyond "answer this request this way".

use serde::Deserialize;

use super::RequestParts;
use super::VerifyError;
use super::hmac::{DigestEncoding, HmacAlgorithm, HmacKeyring};

/// The handshake a source answers (`handshake = "..."` in its verify table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Handshake {
    /// https://docs.slack.dev/reference/events/url_verification : a signed POST with
    /// `{"type": "url_verification", "challenge": ...}`; answered with the challenge.
    Slack,
    /// https://developers.zoom.us/docs/api/webhooks/#validate-your-webhook-endpoint : a signed POST
    /// with `event = endpoint.url_validation`; answered with the plain token and its HMAC-SHA256
    /// under the secret token, in hex.
    Zoom,
    /// https://dev.twitch.tv/docs/eventsub/handling-webhook-events/#responding-to-a-challenge-request :
    /// a signed POST with `Twitch-Eventsub-Message-Type: webhook_callback_verification`; answered
    /// with the raw challenge as text.
    Twitch,
    /// https://www.dropbox.com/developers/reference/webhooks : `GET ?challenge=...`, unsigned;
    /// answered with the challenge as text, with `X-Content-Type-Options: nosniff`.
    Dropbox,
    /// https://developers.asana.com/docs/webhooks-guide : a POST with `X-Hook-Secret`, unsigned
    /// (the secret is born in it); answered with the same header.
    Asana,
    /// https://learn.microsoft.com/graph/change-notifications-delivery-webhooks : a POST with
    /// `?validationToken=...`, unsigned; answered with the decoded token as text.
    MicrosoftGraph,
    /// https://developer.okta.com/docs/concepts/event-hooks/#one-time-verification-request : a GET
    /// with `X-Okta-Verification-Challenge`, with the hook's `Authorization`; answered with
    /// `{"verification": ...}`.
    Okta,
    /// https://developer.xero.com/documentation/guides/webhooks/configuring-your-server/ : "intent
    /// to receive", a signed POST whose `events` list is empty; answered 200 with an empty body
    /// (a badly signed one gets the usual 401, which Xero also checks).
    Xero,
    /// https://discord.com/developers/docs/interactions/receiving-and-responding#receiving-an-interaction :
    /// a signed PING (`type` 1); answered with `{"type": 1}`.
    Discord,
}

/// The answer to a handshake, written out as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeReply {
    /// The handshake's name, for the metric and the log.
    pub kind: &'static str,
    pub content_type: &'static str,
    pub body: String,
    /// Extra response headers.
    pub headers: Vec<(&'static str, String)>,
}

/// Longest value echoed back. Challenges are tens of bytes; Graph's tokens about two hundred.
const MAX_ECHO: usize = 1024;

impl Handshake {
    pub fn name(self) -> &'static str {
        match self {
            Handshake::Slack => "slack",
            Handshake::Zoom => "zoom",
            Handshake::Twitch => "twitch",
            Handshake::Dropbox => "dropbox",
            Handshake::Asana => "asana",
            Handshake::MicrosoftGraph => "microsoft_graph",
            Handshake::Okta => "okta",
            Handshake::Xero => "xero",
            Handshake::Discord => "discord",
        }
    }

    /// True when the sender authenticates the handshake as it does its events: it is then
    /// answered only after the source's own check.
    pub fn authenticated(self) -> bool {
        !matches!(
            self,
            Handshake::Dropbox | Handshake::Asana | Handshake::MicrosoftGraph
        )
    }

    /// The method the handshake arrives with; `GET` reaches a source only for its handshake.
    pub fn method(self) -> &'static str {
        match self {
            Handshake::Dropbox | Handshake::Okta => "GET",
            _ => "POST",
        }
    }

    /// The answer when `request` is this handshake, `None` when it is not (an ordinary event).
    /// `hmac` is the source's keyring, for handshakes that sign their answer (Zoom).
    pub fn answer(
        self,
        request: RequestParts<'_>,
        hmac: Option<&HmacKeyring>,
    ) -> Result<Option<HandshakeReply>, VerifyError> {
        if request.method != self.method() {
            return Ok(None);
        }
        let json = || serde_json::from_slice::<serde_json::Value>(request.body).ok();
        let header = |name: &str| {
            request
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let text = |s: &serde_json::Value| s.as_str().map(str::to_owned);
        let reply = |content_type, body, headers| {
            Ok(Some(HandshakeReply {
                kind: self.name(),
                content_type,
                body,
                headers,
            }))
        };
        match self {
            Handshake::Slack => {
                let Some(body) = json().filter(|b| b["type"] == "url_verification") else {
                    return Ok(None);
                };
                let challenge = echoable(text(&body["challenge"]))?;
                reply(
                    JSON,
                    serde_json::json!({ "challenge": challenge }).to_string(),
                    vec![],
                )
            }
            Handshake::Zoom => {
                let Some(body) = json().filter(|b| b["event"] == "endpoint.url_validation") else {
                    return Ok(None);
                };
                let plain = echoable(text(&body["payload"]["plainToken"]))?;
                let key = hmac
                    .and_then(|ring| ring.secrets.first())
                    .ok_or(VerifyError::BadHandshake("no secret token to answer with"))?;
                let encrypted = DigestEncoding::Hex
                    .encode(&HmacAlgorithm::Sha256.mac(key.expose(), &[plain.as_bytes()]));
                let answer =
                    serde_json::json!({ "plainToken": plain, "encryptedToken": encrypted });
                reply(JSON, answer.to_string(), vec![])
            }
            Handshake::Twitch => {
                if header("Twitch-Eventsub-Message-Type").as_deref()
                    != Some("webhook_callback_verification")
                {
                    return Ok(None);
                }
                let challenge = echoable(json().and_then(|b| text(&b["challenge"])))?;
                reply(TEXT, challenge, vec![])
            }
            Handshake::Dropbox => {
                let Some(challenge) = super::token::query_param(request.query, "challenge") else {
                    return Ok(None);
                };
                let challenge = echoable(Some(challenge))?;
                reply(
                    TEXT,
                    challenge,
                    vec![("X-Content-Type-Options", "nosniff".into())],
                )
            }
            Handshake::Asana => {
                let Some(secret) = header("X-Hook-Secret") else {
                    return Ok(None);
                };
                let secret = echoable(Some(secret))?;
                reply(TEXT, String::new(), vec![("X-Hook-Secret", secret)])
            }
            Handshake::MicrosoftGraph => {
                let Some(token) = super::token::query_param(request.query, "validationToken")
                else {
                    return Ok(None);
                };
                reply(TEXT, echoable(Some(token))?, vec![])
            }
            Handshake::Okta => {
                let Some(challenge) = header("X-Okta-Verification-Challenge") else {
                    return Ok(None);
                };
                let challenge = echoable(Some(challenge))?;
                reply(
                    JSON,
                    serde_json::json!({ "verification": challenge }).to_string(),
                    vec![],
                )
            }
            Handshake::Xero => match json() {
                Some(body) if body["events"].as_array().is_some_and(Vec::is_empty) => {
                    reply(TEXT, String::new(), vec![])
                }
                _ => Ok(None),
            },
            Handshake::Discord => match json() {
                Some(body) if body["type"] == 1 => reply(JSON, r#"{"type":1}"#.into(), vec![]),
                _ => Ok(None),
            },
        }
    }
}

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";

/// A value fit to send back: present, short and printable ASCII.
fn echoable(value: Option<String>) -> Result<String, VerifyError> {
    match value {
        Some(v)
            if !v.is_empty()
                && v.len() <= MAX_ECHO
                && v.bytes().all(|b| (0x20..0x7f).contains(&b)) =>
        {
            Ok(v)
        }
        Some(_) => Err(VerifyError::BadHandshake(
            "the value to echo is empty, too long or not printable",
        )),
        None => Err(VerifyError::BadHandshake("the value to echo is missing")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::verify::test_headers as headers;
    use actix_web::http::header::HeaderMap;

    fn parts<'a>(
        method: &'a str,
        headers: &'a HeaderMap,
        query: &'a str,
        body: &'a [u8],
    ) -> RequestParts<'a> {
        RequestParts {
            method,
            headers,
            query,
            body,
            received_at: time::OffsetDateTime::UNIX_EPOCH,
        }
    }

    /// Zoom's documented example: plainToken `qgg8vlvZRS6UYooatFL8Aw` under secret token
    /// `...` is checked by an independent HMAC in the preset vectors; here, the shape.
    #[test]
    fn zoom_answers_with_the_token_and_its_hmac() {
        let ring = HmacKeyring {
            algorithm: HmacAlgorithm::Sha256,
            encoding: DigestEncoding::Hex,
            secrets: vec![Secret::from_bytes("secret")],
        };
        let none = headers(&[]);
        let body = br#"{"event":"endpoint.url_validation","payload":{"plainToken":"abc"}}"#;
        let reply = Handshake::Zoom
            .answer(parts("POST", &none, "", body), Some(&ring))
            .unwrap()
            .unwrap();
        let expected = HmacAlgorithm::Sha256.mac(b"secret", &[b"abc"]);
        assert_eq!(
            reply.body,
            format!(
                r#"{{"encryptedToken":"{}","plainToken":"abc"}}"#,
                hex::encode(expected)
            )
        );
        let event = br#"{"event":"meeting.started","payload":{}}"#;
        assert_eq!(
            Handshake::Zoom.answer(parts("POST", &none, "", event), Some(&ring)),
            Ok(None)
        );
    }

    /// Echoes are bounded and printable; a GET handshake is not answered on POST.
    #[test]
    fn echoes_are_bounded_and_methods_kept_apart() {
        let none = headers(&[]);
        let ok = Handshake::Dropbox.answer(parts("GET", &none, "challenge=a%20b", b""), None);
        assert_eq!(ok.unwrap().unwrap().body, "a b");
        assert_eq!(
            Handshake::Dropbox.answer(parts("POST", &none, "challenge=x", b""), None),
            Ok(None)
        );
        let long = format!("challenge={}", "x".repeat(MAX_ECHO + 1));
        assert!(
            Handshake::Dropbox
                .answer(parts("GET", &none, &long, b""), None)
                .is_err()
        );
        let control = Handshake::MicrosoftGraph
            .answer(parts("POST", &none, "validationToken=a%0Ab", b""), None);
        assert_eq!(control.unwrap_err().code(), "bad_handshake");
        let asana = headers(&[("X-Hook-Secret", "s3")]);
        let reply = Handshake::Asana
            .answer(parts("POST", &asana, "", b""), None)
            .unwrap()
            .unwrap();
        assert_eq!(reply.headers, [("X-Hook-Secret", "s3".to_owned())]);
    }
}
