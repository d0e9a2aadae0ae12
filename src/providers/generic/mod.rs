//! Providers defined by configuration alone: an HMAC scheme (with presets for GitHub, Stripe and
//! Standard Webhooks), a static token or API key, HTTP basic auth, or a JWT; plus where to find the
//! event type, id, subject and time in the request.
//!
//! A preset is only a set of defaults (`presets.rs`): `provider = "github"` is
//! `provider = "generic"` with the GitHub values filled in, and any key the source sets wins.
//! The settings (`settings.rs`) pick one scheme, `assemble.rs` turns it into blocks from
//! `crate::verify`, and `mapping.rs` turns the authentic request into an event. What is left
//! here is the glue.

mod assemble;
mod mapping;
mod presets;
mod settings;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::time::Duration;

use super::any::FromVerifyTable;
use super::{Provider, Verified, WebhookRequest, resolve_secrets};
use crate::providers::{MapError, Mapped};
use crate::secret::Secret;
use crate::section::ConfigIssue;
use crate::verify::VerifyError;
use crate::verify::jwt::JwtVerifier;
use crate::verify::signed_message::SignedMessage;
use crate::verify::token;
use mapping::Mapping;

/// Where a token scheme reads the credential.
#[derive(Debug, Clone)]
enum Presented {
    Header(String),
    Query(String),
}

/// A scheme ready to verify requests. Built once per config load: everything that can be parsed
/// or checked ahead (templates, keys, JWT algorithms) is, so the request path only compares.
#[derive(Debug, Clone)]
enum Scheme {
    Hmac(SignedMessage),
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
        let (settings, mapping) = settings::parse(key, &table)?;
        let secrets = resolve_secrets(&format!("{key}.secrets"), settings.secrets(), env)?;
        // `{id}` in a signed message is read from the mapping's `id_header`: one key, so the id
        // that is signed and the id that is mapped cannot be two different headers.
        let scheme = settings.build(key, secrets, mapping.id_header.clone())?;
        let signed = match &scheme {
            Scheme::Hmac(signed) => Some(signed),
            _ => None,
        };
        let mapping = Mapping::new(key, mapping, signed)?;
        Ok(Generic {
            kind: presets::kind_name(kind),
            scheme,
            mapping,
        })
    }
}

/// The first value of a header. For credentials and mapping, where a repeat changes nothing that
/// is signed; signed values go through the engine's stricter single-value check.
fn first_header<'a>(request: &WebhookRequest<'a>, name: &str) -> Option<&'a str> {
    request.header_values(name).next()
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
        match &self.scheme {
            Scheme::Hmac(signed) => {
                signed.verify(request.headers, request.body, request.received_at)?;
            }
            Scheme::Token {
                from,
                strip_bearer,
                tokens,
            } => {
                let presented = match from {
                    Presented::Header(h) => first_header(request, h).map(|v| {
                        if *strip_bearer {
                            token::strip_bearer(v).to_owned()
                        } else {
                            v.to_owned()
                        }
                    }),
                    Presented::Query(q) => token::query_param(request.query, q),
                };
                // An empty value is no credential: reported as missing, never compared.
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
                // `Bearer ` optional, as for tokens: the verifier sees only the JWT.
                verifier.verify(token::strip_bearer(value))?;
            }
        }
        Ok(Verified::new(request))
    }

    async fn map(&self, source: &str, verified: Verified<'_>) -> Result<Mapped, MapError> {
        self.mapping.map(self.kind, source, verified.request())
    }
}
