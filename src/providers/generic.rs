//! Providers defined by configuration alone: an HMAC scheme (with presets for GitHub, Stripe and
//! Standard Webhooks), a static token or API key, HTTP basic auth, or a JWT; plus where to find the
//! event type, id, subject and time in the request.
//!
//! A preset is only a set of defaults: `provider = "github"` is `provider = "generic"` with the
//! GitHub values filled in, and any key the source sets wins.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{MapError, Mapped, Provider, Verified, WebhookRequest, resolve_secrets, settings};
use crate::config::{ConfigIssue, Secret, SecretRef};
use crate::event::{CanonicalEvent, EventId};
use crate::verify::hmac::{
    DigestEncoding, HmacAlgorithm, HmacKeyring, SecretEncoding, decode_secrets,
};
use crate::verify::jwt::{JwtSettings, JwtVerifier};
use crate::verify::message_template::{MessageTemplate, Piece};
use crate::verify::signature_format::SignatureFormat;
use crate::verify::signed_message::SignedMessage;
use crate::verify::timestamp::{Window, parse_unix_seconds};
use crate::verify::token;
use crate::verify::{VerifyError, intern};

/// `[sources.NAME.verify]` for the generic family.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// `hmac`, `token`, `basic` or `jwt`.
    scheme: String,
    /// Secrets: HMAC keys, accepted tokens or passwords, or the JWT key (one).
    secrets: Vec<SecretRef>,
    /// Header carrying the signature or credential.
    header: Option<String>,
    /// Query parameter carrying the credential instead of a header (`token` scheme).
    query: Option<String>,
    // --- hmac ---
    algorithm: Option<HmacAlgorithm>,
    encoding: Option<DigestEncoding>,
    /// Text before each signature, such as `sha256=` or `v1,`.
    prefix: Option<String>,
    /// Separator between several signatures in one header (rotation); default `,`.
    separator: Option<String>,
    /// `list` (signatures separated by `separator`) or `kv` (`t=..,v1=..` as Stripe sends).
    signature_format: Option<String>,
    /// With `kv`: the key of the timestamp and of the signatures.
    kv_timestamp_key: Option<String>,
    kv_signature_key: Option<String>,
    /// What is signed: `{body}`, `{timestamp}.{body}`, `{id}.{timestamp}.{body}`, ...
    message: Option<String>,
    timestamp_header: Option<String>,
    id_header: Option<String>,
    /// Accepted age of a signed timestamp, in seconds (default 300).
    tolerance_secs: Option<u64>,
    /// Secrets are stored base64-encoded after this prefix (Standard Webhooks' `whsec_`).
    secret_prefix: Option<String>,
    /// `raw` (default) or `base64`.
    secret_encoding: Option<String>,
    // --- token ---
    /// Accept `Bearer <token>` as well as the bare token.
    strip_bearer: Option<bool>,
    // --- basic ---
    username: Option<String>,
    // --- jwt ---
    jwt: Option<JwtSettings>,
    // --- mapping ---
    /// Header holding the event type (GitHub's `X-GitHub-Event`).
    type_header: Option<String>,
    /// The provider's published event names. An HMAC over the body does not sign a header, so a
    /// type from `type_header` is kept only when it is one of these; anything else becomes
    /// `<provider>.other` (an attacker replaying a signed body cannot mint topics or types).
    type_names: Option<Vec<String>>,
    /// JSON pointer to the event type in the body (`/type`).
    type_pointer: Option<String>,
    /// Fixed event type when the request does not say.
    event_type: Option<String>,
    /// JSON pointer to the event id (dedup key); else `id_header`; else a hash of the body.
    id_pointer: Option<String>,
    /// JSON pointer to what the event is about.
    subject_pointer: Option<String>,
    /// JSON pointer to when it happened (RFC 3339 text or Unix seconds).
    occurred_at_pointer: Option<String>,
}

/// The defaults each preset stands for.
fn preset(kind: &str) -> toml::Table {
    let text = match kind {
        // https://docs.github.com/webhooks/using-webhooks/validating-webhook-deliveries
        "github" => {
            r#"scheme = "hmac"
header = "X-Hub-Signature-256"
algorithm = "sha256"
encoding = "hex"
prefix = "sha256="
message = "{body}"
type_header = "X-GitHub-Event"
id_header = "X-GitHub-Delivery"
# https://docs.github.com/webhooks/webhook-events-and-payloads
type_names = ["branch_protection_configuration", "branch_protection_rule", "check_run",
  "check_suite", "code_scanning_alert", "commit_comment", "create", "custom_property",
  "custom_property_values", "delete", "dependabot_alert", "deploy_key", "deployment",
  "deployment_protection_rule", "deployment_review", "deployment_status", "discussion",
  "discussion_comment", "fork", "github_app_authorization", "gollum", "installation",
  "installation_repositories", "installation_target", "issue_comment", "issues", "label",
  "marketplace_purchase", "member", "membership", "merge_group", "meta", "milestone",
  "org_block", "organization", "package", "page_build", "personal_access_token_request", "ping",
  "project", "project_card", "project_column", "projects_v2", "projects_v2_item",
  "projects_v2_status_update", "public", "pull_request", "pull_request_review",
  "pull_request_review_comment", "pull_request_review_thread", "push", "registry_package",
  "release", "repository", "repository_advisory", "repository_dispatch", "repository_import",
  "repository_ruleset", "repository_vulnerability_alert", "secret_scanning_alert",
  "secret_scanning_alert_location", "secret_scanning_scan", "security_advisory",
  "security_and_analysis", "sponsorship", "star", "status", "sub_issues", "team", "team_add",
  "watch", "workflow_dispatch", "workflow_job", "workflow_run"]
"#
        }
        // https://docs.stripe.com/webhooks#verify-manually
        "stripe" => {
            r#"scheme = "hmac"
header = "Stripe-Signature"
algorithm = "sha256"
encoding = "hex"
signature_format = "kv"
kv_timestamp_key = "t"
kv_signature_key = "v1"
message = "{timestamp}.{body}"
tolerance_secs = 300
type_pointer = "/type"
id_pointer = "/id"
occurred_at_pointer = "/created"
"#
        }
        // https://www.standardwebhooks.com/ (spec: "Verifying webhook authenticity")
        "standard_webhooks" => {
            r#"scheme = "hmac"
header = "webhook-signature"
algorithm = "sha256"
encoding = "base64"
prefix = "v1,"
separator = " "
message = "{id}.{timestamp}.{body}"
id_header = "webhook-id"
timestamp_header = "webhook-timestamp"
tolerance_secs = 300
secret_prefix = "whsec_"
secret_encoding = "base64"
type_pointer = "/type"
"#
        }
        _ => "",
    };
    text.parse().unwrap_or_default()
}

#[derive(Debug, Clone)]
enum Scheme {
    Hmac(SignedMessage),
    Token {
        header: Option<String>,
        query: Option<String>,
        strip_bearer: bool,
        tokens: Vec<Secret>,
    },
    Basic {
        username: String,
        passwords: Vec<Secret>,
    },
    Jwt {
        header: String,
        verifier: JwtVerifier,
    },
}

#[derive(Debug, Clone, Default)]
struct Mapping {
    type_header: Option<String>,
    /// Set when the type header is not covered by the signature: the names it may take.
    unsigned_type_names: Option<BTreeSet<String>>,
    /// The id header is not covered by the signature: the dedup key is the body's hash instead,
    /// and the header's value is kept as the `delivery_id` attribute.
    unsigned_id_header: bool,
    type_pointer: Option<String>,
    event_type: Option<String>,
    id_header: Option<String>,
    id_pointer: Option<String>,
    subject_pointer: Option<String>,
    occurred_at_pointer: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Generic {
    kind: &'static str,
    scheme: Scheme,
    mapping: Mapping,
}

impl Generic {
    pub fn from_config(
        key: &str,
        kind: &str,
        verify: &toml::Table,
        env: &HashMap<String, String>,
    ) -> Result<Self, Vec<ConfigIssue>> {
        let mut table = preset(kind);
        for (k, v) in verify {
            table.insert(k.clone(), v.clone());
        }
        let s: Settings = settings(key, &table)?;
        let issue =
            |field: &str, reason: &str| vec![ConfigIssue::new(format!("{key}.{field}"), reason)];
        let secrets = resolve_secrets(&format!("{key}.secrets"), &s.secrets, env)?;
        let kind: &'static str = match kind {
            "github" => "github",
            "stripe" => "stripe",
            "standard_webhooks" => "standard_webhooks",
            _ => "generic",
        };
        let scheme = match s.scheme.as_str() {
            "hmac" => {
                let header = s
                    .header
                    .clone()
                    .ok_or_else(|| issue("header", "the hmac scheme needs a header"))?;
                let message = MessageTemplate::parse(s.message.as_deref().unwrap_or("{body}"))
                    .map_err(|e| issue("message", &e))?;
                let format = match s.signature_format.as_deref().unwrap_or("list") {
                    "list" => SignatureFormat::List {
                        prefix: s.prefix.clone().unwrap_or_default(),
                        separator: s.separator.clone().unwrap_or_else(|| ",".into()),
                    },
                    "kv" => SignatureFormat::Kv {
                        timestamp_key: s.kv_timestamp_key.clone().unwrap_or_else(|| "t".into()),
                        signature_key: s.kv_signature_key.clone().unwrap_or_else(|| "v1".into()),
                    },
                    _ => return Err(issue("signature_format", "expected `list` or `kv`")),
                };
                let tolerance = std::time::Duration::from_secs(s.tolerance_secs.unwrap_or(300));
                let mut engine = SignedMessage {
                    header: intern(header),
                    format,
                    message,
                    // The keys are decoded below, once the template is known to be usable.
                    keyring: HmacKeyring {
                        algorithm: s.algorithm.unwrap_or(HmacAlgorithm::Sha256),
                        encoding: s.encoding.unwrap_or(DigestEncoding::Hex),
                        secrets: Vec::new(),
                    },
                    timestamp_header: s.timestamp_header.clone(),
                    id_header: s.id_header.clone(),
                    window: Window {
                        max_age: tolerance,
                        max_skew: tolerance,
                    },
                };
                match engine.unsourced() {
                    Some(Piece::Timestamp) => {
                        return Err(issue(
                            "message",
                            "{timestamp} needs timestamp_header or the kv format",
                        ));
                    }
                    Some(_) => return Err(issue("message", "{id} needs id_header")),
                    None => {}
                }
                let encoding = match s.secret_encoding.as_deref() {
                    None | Some("raw") => SecretEncoding::Raw,
                    Some("base64") => SecretEncoding::Base64,
                    Some(_) => {
                        return Err(issue("secret_encoding", "expected `raw` or `base64`"));
                    }
                };
                engine.keyring.secrets =
                    decode_secrets(secrets, s.secret_prefix.as_deref(), encoding).ok_or_else(
                        || {
                            issue(
                                "secrets",
                                "secret_encoding is base64 but a secret does not decode",
                            )
                        },
                    )?;
                Scheme::Hmac(engine)
            }
            "token" => {
                if s.header.is_none() == s.query.is_none() {
                    return Err(issue(
                        "header",
                        "the token scheme needs exactly one of header or query",
                    ));
                }
                Scheme::Token {
                    header: s.header.clone(),
                    query: s.query.clone(),
                    strip_bearer: s.strip_bearer.unwrap_or(true),
                    tokens: secrets,
                }
            }
            "basic" => Scheme::Basic {
                username: s
                    .username
                    .clone()
                    .ok_or_else(|| issue("username", "the basic scheme needs a username"))?,
                passwords: secrets,
            },
            "jwt" => {
                let jwt = s
                    .jwt
                    .as_ref()
                    .ok_or_else(|| issue("jwt", "the jwt scheme needs a [jwt] table"))?;
                let first = secrets
                    .first()
                    .ok_or_else(|| issue("secrets", "the jwt scheme needs its key"))?;
                Scheme::Jwt {
                    header: s.header.clone().unwrap_or_else(|| "Authorization".into()),
                    verifier: JwtVerifier::new(jwt, first).map_err(|e| issue("jwt", &e))?,
                }
            }
            _ => {
                return Err(issue(
                    "scheme",
                    "expected `hmac`, `token`, `basic` or `jwt`",
                ));
            }
        };
        // An HMAC signs its message, not the request's other headers: a value taken from one of
        // them is whatever a replayer of one signed delivery wants it to be. (A token, password
        // or JWT authenticates the sender instead; there nothing is signed and nothing is
        // steerable by anyone without the credential.)
        let (unsigned_type_names, unsigned_id_header) = match &scheme {
            Scheme::Hmac(h) => {
                let names = match (&s.type_header, &s.type_names) {
                    (None, _) => None,
                    (Some(_), Some(names)) => Some(names.iter().cloned().collect()),
                    (Some(_), None) => {
                        return Err(issue(
                            "type_names",
                            "type_header is not covered by the signature: list the provider's event names (any other becomes <provider>.other)",
                        ));
                    }
                };
                (names, s.id_header.is_some() && !h.signs(Piece::Id))
            }
            _ => (None, false),
        };
        let mapping = Mapping {
            type_header: s.type_header,
            unsigned_type_names,
            unsigned_id_header,
            type_pointer: s.type_pointer,
            event_type: s.event_type,
            id_header: s.id_header,
            id_pointer: s.id_pointer,
            subject_pointer: s.subject_pointer,
            occurred_at_pointer: s.occurred_at_pointer,
        };
        Ok(Generic {
            kind,
            scheme,
            mapping,
        })
    }
}

fn first_header<'a>(request: &WebhookRequest<'a>, name: &str) -> Option<&'a str> {
    request.header_values(name).next()
}

impl Provider for Generic {
    fn kind(&self) -> &'static str {
        self.kind
    }

    async fn verify<'a>(
        &self,
        request: &'a WebhookRequest<'a>,
    ) -> Result<Verified<'a>, VerifyError> {
        match &self.scheme {
            Scheme::Hmac(h) => h.verify(request.headers, request.body, request.received_at)?,
            Scheme::Token {
                header,
                query,
                strip_bearer,
                tokens,
            } => {
                let presented = match (header, query) {
                    (Some(h), _) => first_header(request, h).map(|v| {
                        if *strip_bearer {
                            token::strip_bearer(v).to_owned()
                        } else {
                            v.to_owned()
                        }
                    }),
                    (None, Some(q)) => token::query_param(request.query, q),
                    (None, None) => None,
                };
                let presented = presented
                    .filter(|p| !p.is_empty())
                    .ok_or(VerifyError::MissingCredential("token"))?;
                if !token::matches_any(presented.as_bytes(), tokens) {
                    return Err(VerifyError::BadCredential("token"));
                }
            }
            Scheme::Basic {
                username,
                passwords,
            } => {
                let header = first_header(request, "Authorization")
                    .ok_or(VerifyError::MissingCredential("basic"))?;
                let (user, password) =
                    token::parse_basic(header).ok_or(VerifyError::MissingCredential("basic"))?;
                // Both compared, so a wrong user takes as long as a wrong password.
                let user_ok =
                    token::matches_any(user.as_bytes(), &[Secret::from_bytes(username.as_bytes())]);
                if !(token::matches_any(&password, passwords) & user_ok) {
                    return Err(VerifyError::BadCredential("basic"));
                }
            }
            Scheme::Jwt { header, verifier } => {
                let value =
                    first_header(request, header).ok_or(VerifyError::MissingCredential("jwt"))?;
                verifier.verify(token::strip_bearer(value))?;
            }
        }
        Ok(Verified::new(request))
    }

    async fn map(&self, source: &str, verified: Verified<'_>) -> Result<Mapped, MapError> {
        let request = verified.request();
        let m = &self.mapping;
        let needs_json = m.type_pointer.is_some()
            || m.id_pointer.is_some()
            || m.subject_pointer.is_some()
            || m.occurred_at_pointer.is_some();
        let json: Option<serde_json::Value> = if needs_json {
            Some(serde_json::from_slice(request.body).map_err(|e| MapError::from_json(&e))?)
        } else {
            None
        };
        let pointer = |p: &Option<String>| -> Option<String> {
            let value = json.as_ref()?.pointer(p.as_deref()?)?;
            match value {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            }
        };
        let header = |h: &Option<String>| {
            h.as_deref()
                .and_then(|h| first_header(request, h))
                .map(str::to_owned)
        };
        let unsigned_type = header(&m.type_header).map(|name| match &m.unsigned_type_names {
            Some(known) if !known.contains(&name) => format!("{}.other", self.kind),
            _ => name,
        });
        let event_type = unsigned_type
            .or_else(|| pointer(&m.type_pointer))
            .or_else(|| m.event_type.clone())
            .ok_or(MapError::MissingField("event type"))?;
        let mut attributes = BTreeMap::new();
        let id = match pointer(&m.id_pointer) {
            Some(raw) => EventId::parse(&raw).map_err(|_| MapError::InvalidField("id"))?,
            None => match header(&m.id_header) {
                // Not signed: a replayed body with a fresh id must still be the same event.
                Some(raw) if m.unsigned_id_header => {
                    let kept: String = raw.chars().take(200).collect();
                    attributes.insert("delivery_id".to_owned(), kept);
                    EventId::from_content(source, &[request.body])
                }
                Some(raw) => EventId::parse(&raw).map_err(|_| MapError::InvalidField("id"))?,
                None => EventId::from_content(source, &[request.body]),
            },
        };
        let occurred_at = match pointer(&m.occurred_at_pointer) {
            Some(t) => Some(
                OffsetDateTime::parse(&t, &Rfc3339)
                    .or_else(|_| parse_unix_seconds(&t).map_err(|_| ()))
                    .map_err(|_| MapError::InvalidField("occurred_at"))?,
            ),
            None => None,
        };
        let subject = pointer(&m.subject_pointer);
        Ok(Mapped::Event(Box::new(CanonicalEvent {
            partition_key: subject.clone().unwrap_or_else(|| id.to_string()),
            id,
            source: source.to_owned(),
            provider: self.kind,
            event_type: event_type.clone(),
            provider_type: event_type,
            subject,
            occurred_at,
            received_at: request.received_at,
            data: None,
            payload: request.body.clone(),
            payload_content_type: request
                .headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/octet-stream")
                .to_owned(),
            attributes,
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::{block_on, expect_event};
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
    use bytes::Bytes;

    fn build(kind: &str, extra: &str, secrets: &[(&str, &str)]) -> Generic {
        let env: HashMap<String, String> = secrets
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let table: toml::Table = extra.parse().unwrap();
        Generic::from_config("sources.t.verify", kind, &table, &env)
            .unwrap_or_else(|e| panic!("{e:?}"))
    }

    fn request<'a>(
        headers: &'a HeaderMap,
        body: &'a Bytes,
        query: &'a str,
        now: i64,
    ) -> WebhookRequest<'a> {
        WebhookRequest {
            headers,
            query,
            body,
            peer: None,
            received_at: OffsetDateTime::from_unix_timestamp(now).unwrap(),
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    /// One signed GitHub delivery replayed with fresh delivery ids and invented event names: one
    /// dedup key, and only GitHub's published names as types (the rest `github.other`).
    #[test]
    fn unsigned_headers_steer_neither_the_dedup_key_nor_the_type() {
        let g = build(
            "github",
            r#"secrets = ["env:GH"]"#,
            &[("GH", "It's a Secret to Everybody")],
        );
        let body = Bytes::from_static(b"Hello, World!");
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let mut ids = BTreeSet::new();
        let mut types = BTreeSet::new();
        for (n, event) in ["push", "made-up-1", "made-up-2", "issues"]
            .iter()
            .enumerate()
        {
            let delivery = format!("00000000-0000-0000-0000-{n:012}");
            let h = headers(&[
                ("x-hub-signature-256", sig),
                ("x-github-event", event),
                ("x-github-delivery", &delivery),
            ]);
            let req = request(&h, &body, "", 1_700_000_000);
            let verified = block_on(g.verify(&req)).unwrap();
            let mapped = expect_event(block_on(g.map("gh", verified)).unwrap());
            ids.insert(mapped.id.to_string());
            types.insert(mapped.event_type);
        }
        assert_eq!(ids.len(), 1, "one event whatever the delivery id");
        assert_eq!(
            types.into_iter().collect::<Vec<_>>(),
            ["github.other", "issues", "push"]
        );
        // A generic HMAC source reading its type from a header must list the names.
        let env = HashMap::from([("S".to_owned(), "k".to_owned())]);
        let table: toml::Table =
            "scheme = \"hmac\"\nsecrets = [\"env:S\"]\nheader = \"X-Sig\"\ntype_header = \"X-Type\""
                .parse()
                .unwrap();
        let issues = Generic::from_config("sources.t.verify", "generic", &table, &env).unwrap_err();
        assert!(issues[0].key.ends_with("type_names"), "{issues:?}");
    }

    /// GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!".
    #[test]
    fn github_preset_verifies_the_documented_vector() {
        let g = build(
            "github",
            r#"secrets = ["env:GH"]"#,
            &[("GH", "It's a Secret to Everybody")],
        );
        let body = Bytes::from_static(b"Hello, World!");
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let h = headers(&[
            ("x-hub-signature-256", sig),
            ("x-github-event", "push"),
            ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ]);
        let req = request(&h, &body, "", 1_700_000_000);
        let verified = block_on(g.verify(&req)).unwrap();
        let event = expect_event(block_on(g.map("gh", verified)).unwrap());
        assert_eq!(event.event_type, "push");
        // The delivery id is not signed: kept for tracing, never the dedup key.
        assert_eq!(event.id, EventId::from_content("gh", &[b"Hello, World!"]));
        assert_eq!(
            event.attributes.get("delivery_id").map(String::as_str),
            Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")
        );
        let wrong = headers(&[(
            "x-hub-signature-256",
            "sha256=657107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        )]);
        assert_eq!(
            block_on(g.verify(&request(&wrong, &body, "", 0))).err(),
            Some(VerifyError::BadSignature("X-Hub-Signature-256"))
        );
        let no_prefix = headers(&[(
            "x-hub-signature-256",
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        )]);
        assert!(block_on(g.verify(&request(&no_prefix, &body, "", 0))).is_err());
    }

    /// The Standard Webhooks specification's example (libraries' shared test vector).
    #[test]
    fn standard_webhooks_preset_verifies_the_spec_vector() {
        let g = build(
            "standard_webhooks",
            r#"secrets = ["env:SW"]"#,
            &[("SW", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")],
        );
        let body = Bytes::from_static(br#"{"test": 2432232314}"#);
        let h = headers(&[
            ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
            ("webhook-timestamp", "1614265330"),
            (
                "webhook-signature",
                "v1,bogus v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            ),
        ]);
        assert!(block_on(g.verify(&request(&h, &body, "", 1_614_265_330))).is_ok());
        // Same request, an hour later: outside the 5-minute window.
        assert_eq!(
            block_on(g.verify(&request(&h, &body, "", 1_614_268_930))).err(),
            Some(VerifyError::TimestampTooOld)
        );
        assert_eq!(
            block_on(g.verify(&request(&h, &body, "", 1_614_261_730))).err(),
            Some(VerifyError::TimestampInFuture)
        );
    }

    /// Stripe's scheme: `t=<ts>,v1=<hex>`, message `<ts>.<body>`; the digest computed independently.
    #[test]
    fn stripe_preset_checks_timestamp_and_any_v1() {
        use hmac::{KeyInit, Mac};
        let g = build("stripe", r#"secrets = ["env:ST"]"#, &[("ST", "whsec_test")]);
        let body =
            Bytes::from_static(br#"{"id":"evt_1","type":"invoice.paid","created":1700000000}"#);
        let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(b"whsec_test").unwrap();
        mac.update(b"1700000000.");
        mac.update(&body);
        let v1 = hex::encode(mac.finalize().into_bytes());
        let h = headers(&[(
            "stripe-signature",
            &format!("t=1700000000,v1=deadbeef,v1={v1}"),
        )]);
        let req = request(&h, &body, "", 1_700_000_100);
        let verified = block_on(g.verify(&req)).unwrap();
        let event = expect_event(block_on(g.map("st", verified)).unwrap());
        assert_eq!(
            (event.event_type.as_str(), event.id.as_str()),
            ("invoice.paid", "evt_1")
        );
        assert_eq!(
            event.occurred_at.map(|t| t.unix_timestamp()),
            Some(1_700_000_000)
        );
        let tampered = headers(&[("stripe-signature", &format!("t=1700000001,v1={v1}"))]);
        assert_eq!(
            block_on(g.verify(&request(&tampered, &body, "", 1_700_000_100))).err(),
            Some(VerifyError::BadSignature("Stripe-Signature"))
        );
        let missing_t = headers(&[("stripe-signature", &format!("v1={v1}"))]);
        assert_eq!(
            block_on(g.verify(&request(&missing_t, &body, "", 1_700_000_100))).err(),
            Some(VerifyError::MissingTimestamp)
        );
    }

    #[test]
    fn token_in_query_or_header_and_basic_auth() {
        let t = build(
            "generic",
            r#"scheme = "token"
query = "token"
secrets = ["env:T"]
event_type = "ping""#,
            &[("T", "s3cret")],
        );
        let body = Bytes::from_static(b"{}");
        let none = HeaderMap::new();
        assert!(block_on(t.verify(&request(&none, &body, "token=s3cret", 0))).is_ok());
        assert_eq!(
            block_on(t.verify(&request(&none, &body, "token=nope", 0))).err(),
            Some(VerifyError::BadCredential("token"))
        );
        assert_eq!(
            block_on(t.verify(&request(&none, &body, "", 0))).err(),
            Some(VerifyError::MissingCredential("token"))
        );

        let b = build(
            "generic",
            r#"scheme = "basic"
username = "hook"
secrets = ["env:P"]
event_type = "ping""#,
            &[("P", "pw")],
        );
        let ok = headers(&[("authorization", "Basic aG9vazpwdw==")]);
        assert!(block_on(b.verify(&request(&ok, &body, "", 0))).is_ok());
        let bad = headers(&[("authorization", "Basic aG9vazp4")]);
        assert_eq!(
            block_on(b.verify(&request(&bad, &body, "", 0))).err(),
            Some(VerifyError::BadCredential("basic"))
        );
    }

    #[test]
    fn config_mistakes_name_their_key() {
        let table: toml::Table = r#"scheme = "hmac"
secrets = ["env:X"]
message = "{timestamp}.{body}""#
            .parse()
            .unwrap();
        let env = HashMap::from([("X".to_owned(), "x".to_owned())]);
        let err = Generic::from_config("sources.t.verify", "generic", &table, &env).unwrap_err();
        assert_eq!(err[0].key, "sources.t.verify.header");
        let table: toml::Table = r#"secrets = ["env:X"]
colour = "blue""#
            .parse()
            .unwrap();
        let err = Generic::from_config("sources.t.verify", "github", &table, &env).unwrap_err();
        assert!(err[0].key.starts_with("sources.t.verify"), "{err:?}");
    }
}
