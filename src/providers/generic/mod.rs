//! Providers defined by configuration alone: a signed message (HMAC, Ed25519 or ECDSA), a static
//! token or API key, HTTP basic auth, or a JWT; an optional handshake; plus where to find the event
//! type, id, subject and time in the request. Most named providers are presets of these.
//!
//! A preset is only a set of defaults (`presets.rs`): `provider = "github"` is
//! `provider = "generic"` with the GitHub values filled in, and any key the source sets wins.
//! The settings (`settings.rs`) pick one scheme, `assemble.rs` turns it into blocks from
//! `crate::verify`, and `mapping.rs` turns the authentic request into an event. What is left
//! here is the glue.

mod assemble;
pub mod catalogue;
mod extract;
mod mapping;
#[cfg(test)]
mod preset_vectors;
pub mod presets;
mod settings;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::time::Duration;

use super::any::FromVerifyTable;
use super::{Facts, Provider, ReplyStyle, Verified, WebhookRequest, resolve_secrets};
use crate::providers::{MapError, Mapped};
use crate::secret::Secret;
use crate::section::ConfigIssue;
use crate::verify::handshake::{Handshake, HandshakeReply};
use crate::verify::jwt::JwtVerifier;
use crate::verify::signed_message::SignedMessage;
use crate::verify::{RequestParts, VerifyError, token};
use mapping::Mapping;

pub use presets::{PRESETS, Preset};

/// Where a token scheme reads the credential.
#[derive(Debug, Clone)]
enum Presented {
    Header(String),
    Query(String),
    /// A JSON pointer into the body, `*` for every element of an array.
    Body(String),
}

/// A scheme ready to verify requests. Built once per config load: everything that can be parsed
/// or checked ahead (templates, keys, JWT algorithms) is, so the request path only compares.
#[derive(Debug, Clone)]
enum Scheme {
    /// An HMAC or public-key signature over a message built from the request.
    Signed(SignedMessage),
    Token {
        from: Presented,
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
    handshake: Option<Handshake>,
    mapping: Mapping,
}

impl Generic {
    /// Builds a source of provider `kind` (`generic` or a preset's name) from its `verify` table;
    /// `key` is the table's path, for errors.
    pub fn from_config(
        key: &str,
        kind: &str,
        verify: &toml::Table,
        env: &HashMap<String, String>,
    ) -> Result<Self, Vec<ConfigIssue>> {
        // A preset is defaults under the user's keys, read like any hand-written table.
        let table = presets::with_defaults(kind, verify);
        let (settings, mut mapping) = settings::parse(key, &table)?;
        let secrets = match settings.secrets() {
            Some(refs) => resolve_secrets(&format!("{key}.secrets"), refs, env)?,
            None if table.contains_key("secrets") => {
                return Err(vec![ConfigIssue::new(
                    format!("{key}.secrets"),
                    "the public_key scheme takes public_keys, not secrets",
                )]);
            }
            None => Vec::new(),
        };
        // `{id}` in a signed message is read from the mapping's `id_header`: one key, so the id
        // that is signed and the id that is mapped cannot be two different headers.
        let scheme = settings.build(key, secrets, mapping.id_header.clone())?;
        let signed = match &scheme {
            Scheme::Signed(signed) => Some(signed),
            _ => None,
        };
        let handshake = mapping.handshake.take();
        if handshake == Some(Handshake::Zoom) && signed.and_then(|s| s.hmac()).is_none() {
            return Err(vec![ConfigIssue::new(
                format!("{key}.handshake"),
                "the zoom handshake answers with an HMAC: it needs the hmac scheme",
            )]);
        }
        let redact = match &scheme {
            Scheme::Token {
                from: Presented::Body(pointer),
                ..
            } => Some(pointer.clone()),
            _ => None,
        };
        let mapping = Mapping::new(key, mapping, signed, redact)?;
        Ok(Generic {
            kind: presets::kind_name(kind),
            scheme,
            handshake,
            mapping,
        })
    }
}

/// The first value of a header. For credentials and mapping, where a repeat changes nothing that
/// is signed; signed values go through the engine's stricter single-value check.
fn first_header<'a>(request: &WebhookRequest<'a>, name: &str) -> Option<&'a str> {
    request.header_values(name).next()
}

impl Generic {
    fn parts<'a>(request: &'a WebhookRequest<'a>) -> RequestParts<'a> {
        RequestParts {
            method: request.method,
            headers: request.headers,
            query: request.query,
            body: request.body,
            received_at: request.received_at,
        }
    }

    /// The handshake's answer when `request` is one, checked `authenticated` or not.
    fn handshake(
        &self,
        request: &WebhookRequest<'_>,
        authenticated: bool,
    ) -> Result<Option<HandshakeReply>, VerifyError> {
        match self.handshake {
            Some(h) if h.authenticated() == authenticated => {
                let hmac = match &self.scheme {
                    Scheme::Signed(signed) => signed.hmac(),
                    _ => None,
                };
                h.answer(Self::parts(request), hmac)
            }
            _ => Ok(None),
        }
    }

    /// Checks the credential of the source's scheme.
    fn check_scheme(&self, request: &WebhookRequest<'_>) -> Result<(), VerifyError> {
        match &self.scheme {
            Scheme::Signed(signed) => signed.verify(Self::parts(request)),
            Scheme::Token {
                from,
                strip_bearer,
                tokens,
            } => {
                let presented: Vec<String> = match from {
                    Presented::Header(h) => first_header(request, h)
                        .map(|v| {
                            if *strip_bearer {
                                token::strip_bearer(v).to_owned()
                            } else {
                                v.to_owned()
                            }
                        })
                        .into_iter()
                        .collect(),
                    Presented::Query(q) => {
                        token::query_param(request.query, q).into_iter().collect()
                    }
                    Presented::Body(pointer) => serde_json::from_slice(request.body)
                        .map(|json| token::values_at(&json, pointer))
                        .unwrap_or_default(),
                };
                // An empty value is no credential: reported as missing, never compared. In a
                // batch, every element carries the token, or the batch is not authentic.
                if presented.is_empty() || presented.iter().any(String::is_empty) {
                    return Err(VerifyError::MissingCredential("token"));
                }
                if !presented
                    .iter()
                    .all(|p| token::matches_any(p.as_bytes(), tokens))
                {
                    return Err(VerifyError::BadCredential("token"));
                }
                Ok(())
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
                Ok(())
            }
            Scheme::Jwt { header, verifier } => {
                let value =
                    first_header(request, header).ok_or(VerifyError::MissingCredential("jwt"))?;
                // `Bearer ` optional, as for tokens: the verifier sees only the JWT.
                verifier.verify(token::strip_bearer(value))?;
                Ok(())
            }
        }
    }
}

impl FromVerifyTable for Generic {
    fn kinds() -> Vec<&'static str> {
        std::iter::once("generic").chain(presets::kinds()).collect()
    }

    fn from_verify_table(
        key: &str,
        kind: &str,
        verify: &toml::Table,
        env: &HashMap<String, String>,
    ) -> Result<Self, Vec<ConfigIssue>> {
        Self::from_config(key, kind, verify, env)
    }
}

impl Provider for Generic {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn default_dedup_window(&self) -> Duration {
        Duration::from_secs(72 * 3600)
    }

    fn dead_letter_headers(&self) -> &'static [&'static str] {
        &[
            "x-github-event",
            "x-github-delivery",
            "x-hub-signature-256",
            "stripe-signature",
            // Standard Webhooks: the signature covers id, timestamp and body.
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
        ]
    }

    async fn verify<'a>(
        &self,
        request: &'a WebhookRequest<'a>,
    ) -> Result<Verified<'a>, VerifyError> {
        // A handshake the sender does not authenticate is answered before any check: it carries
        // nothing to check (the Asana secret is born in it).
        if let Some(reply) = self.handshake(request, false)? {
            return Ok(Verified::with_facts(
                request,
                Facts::Handshake(Box::new(reply)),
            ));
        }
        self.check_scheme(request)?;
        if let Some(reply) = self.handshake(request, true)? {
            return Ok(Verified::with_facts(
                request,
                Facts::Handshake(Box::new(reply)),
            ));
        }
        // Only a handshake comes as a GET: anything else would be an event with no body.
        if request.method != "POST" {
            return Err(VerifyError::MethodNotAllowed);
        }
        Ok(Verified::new(request))
    }

    fn accepts_method(&self, method: &str) -> bool {
        method == "POST" || self.handshake.is_some_and(|h| h.method() == method)
    }

    fn reply_style(&self) -> ReplyStyle {
        self.mapping.reply_style()
    }

    async fn map(&self, source: &str, verified: Verified<'_>) -> Result<Mapped, MapError> {
        let request = verified.request();
        match verified.into_facts() {
            Facts::Handshake(reply) => Ok(Mapped::Answer(reply)),
            _ => self.mapping.map(self.kind, source, request),
        }
    }

    fn redact_for_dead_letter(&self, body: &bytes::Bytes) -> bytes::Bytes {
        self.mapping.redact(body)
    }
}
