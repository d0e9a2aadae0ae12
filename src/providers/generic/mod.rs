//! Providers defined by configuration alone: an HMAC scheme (with presets for GitHub, Stripe and
//! Standard Webhooks), a static token or API key, HTTP basic auth, or a JWT; plus where to find the
//! event type, id, subject and time in the request.
//!
//! A preset is only a set of defaults (`presets.rs`): `provider = "github"` is
//! `provider = "generic"` with the GitHub values filled in, and any key the source sets wins.
//! `mapping.rs` turns the authentic request into an event.

use std::collections::HashMap;

use serde::Deserialize;

mod mapping;
mod presets;
#[cfg(test)]
mod tests;

use super::{MapError, Mapped, Provider, Verified, WebhookRequest, resolve_secrets, settings};
use crate::config::{ConfigIssue, Secret, SecretRef};
use crate::verify::hmac::{
    DigestEncoding, HmacAlgorithm, HmacKeyring, SecretEncoding, decode_secrets,
};
use crate::verify::jwt::{JwtSettings, JwtVerifier};
use crate::verify::message_template::{MessageTemplate, Piece};
use crate::verify::signature_format::SignatureFormat;
use crate::verify::signed_message::SignedMessage;
use crate::verify::timestamp::Window;
use crate::verify::token;
use crate::verify::{VerifyError, intern};
use mapping::Mapping;

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
        let table = presets::with_defaults(kind, verify);
        let s: Settings = settings(key, &table)?;
        let issue =
            |field: &str, reason: &str| vec![ConfigIssue::new(format!("{key}.{field}"), reason)];
        let secrets = resolve_secrets(&format!("{key}.secrets"), &s.secrets, env)?;
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
            kind: presets::kind_name(kind),
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
        self.mapping.map(self.kind, source, verified.request())
    }
}
