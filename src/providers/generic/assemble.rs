//! From settings to blocks: each scheme's keys, with their defaults filled in, become the
//! `crate::verify` blocks that check requests. Checks that need several keys at once (a
//! `{timestamp}` with nowhere to read it from) are made here, before the source serves.

use super::settings::{FormatName, HmacSettings, Settings};
use super::{Presented, Scheme};
use crate::secret::{Secret, SecretRef};
use crate::section::ConfigIssue;
use crate::verify::hmac::{DigestEncoding, HmacAlgorithm, HmacKeyring, decode_secrets};
use crate::verify::intern;
use crate::verify::jwt::JwtVerifier;
use crate::verify::message_template::{MessageTemplate, Piece};
use crate::verify::signature_format::SignatureFormat;
use crate::verify::signed_message::SignedMessage;
use crate::verify::timestamp::Window;

impl Settings {
    /// Every scheme has secrets; they are resolved (`env:`, `file:`) before any scheme's own
    /// checks, so a missing secret is reported first, as it always was.
    pub(super) fn secrets(&self) -> &[SecretRef] {
        match self {
            Settings::Hmac(s) => &s.secrets,
            Settings::Token(s) => &s.secrets,
            Settings::Basic(s) => &s.secrets,
            Settings::Jwt(s) => &s.secrets,
        }
    }

    /// The scheme ready to verify, from `secrets` (resolved from [`Self::secrets`]).
    /// `id_header` is the mapping's, which is also where `{id}` is read from.
    pub(super) fn build(
        self,
        key: &str,
        secrets: Vec<Secret>,
        id_header: Option<String>,
    ) -> Result<Scheme, Vec<ConfigIssue>> {
        let issue =
            |field: &str, reason: &str| vec![ConfigIssue::new(format!("{key}.{field}"), reason)];
        Ok(match self {
            Settings::Hmac(s) => Scheme::Hmac(s.signed_message(key, secrets, id_header)?),
            Settings::Token(s) => {
                // Both would leave which one counts to the order of the code, and neither would
                // refuse every request: one place, stated.
                let from = match (s.header, s.query) {
                    (Some(header), None) => Presented::Header(header),
                    (None, Some(query)) => Presented::Query(query),
                    _ => {
                        return Err(issue(
                            "header",
                            "the token scheme needs exactly one of header or query",
                        ));
                    }
                };
                Scheme::Token {
                    from,
                    // On by default: some operators add `Bearer ` in front of the token.
                    strip_bearer: s.strip_bearer.unwrap_or(true),
                    tokens: secrets,
                }
            }
            Settings::Basic(s) => Scheme::Basic {
                username: s
                    .username
                    .ok_or_else(|| issue("username", "the basic scheme needs a username"))?,
                passwords: secrets,
            },
            Settings::Jwt(s) => {
                let jwt = s
                    .jwt
                    .as_ref()
                    .ok_or_else(|| issue("jwt", "the jwt scheme needs a [jwt] table"))?;
                // A verifier holds one key; the first secret is it. (`resolve_secrets` already
                // refuses an empty list; this keeps the key's absence an issue, not a panic.)
                let first = secrets
                    .first()
                    .ok_or_else(|| issue("secrets", "the jwt scheme needs its key"))?;
                Scheme::Jwt {
                    header: s.header.unwrap_or_else(|| "Authorization".into()),
                    verifier: JwtVerifier::new(jwt, first).map_err(|e| issue("jwt", &e))?,
                }
            }
        })
    }
}

impl HmacSettings {
    /// The signed-message engine with the defaults filled in. The checks run in the order they
    /// always have, so a source with several mistakes is told about the same one first.
    fn signed_message(
        self,
        key: &str,
        secrets: Vec<Secret>,
        id_header: Option<String>,
    ) -> Result<SignedMessage, Vec<ConfigIssue>> {
        let issue =
            |field: &str, reason: &str| vec![ConfigIssue::new(format!("{key}.{field}"), reason)];
        // No default header: every sender names its own, and guessing one would only turn a
        // missing setting into "missing signature" on every request.
        let header = self
            .header
            .ok_or_else(|| issue("header", "the hmac scheme needs a header"))?;
        // The defaults are the most common layout: hex SHA-256 over the body, signatures
        // separated by commas, `t=` and `v1=` for key=value headers.
        let message = MessageTemplate::parse(self.message.as_deref().unwrap_or("{body}"))
            .map_err(|e| issue("message", &e))?;
        let format = match self.signature_format.unwrap_or(FormatName::List) {
            FormatName::List => SignatureFormat::List {
                prefix: self.prefix.unwrap_or_default(),
                separator: self.separator.unwrap_or_else(|| ",".into()),
            },
            FormatName::Kv => SignatureFormat::Kv {
                timestamp_key: self.kv_timestamp_key.unwrap_or_else(|| "t".into()),
                signature_key: self.kv_signature_key.unwrap_or_else(|| "v1".into()),
            },
        };
        let tolerance = std::time::Duration::from_secs(self.tolerance_secs.unwrap_or(300));
        let mut engine = SignedMessage {
            header: intern(header),
            format,
            message,
            // The keys are decoded below, once the template is known to be usable.
            keyring: HmacKeyring {
                algorithm: self.algorithm.unwrap_or(HmacAlgorithm::Sha256),
                encoding: self.encoding.unwrap_or(DigestEncoding::Hex),
                secrets: Vec::new(),
            },
            timestamp_header: self.timestamp_header,
            id_header,
            // One tolerance both ways: senders document a single "within N seconds".
            window: Window {
                max_age: tolerance,
                max_skew: tolerance,
            },
        };
        // A template signing what no setting locates would refuse every request: refuse the
        // config instead, naming the template.
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
        engine.keyring.secrets = decode_secrets(
            secrets,
            self.secret_prefix.as_deref(),
            self.secret_encoding.unwrap_or_default(),
        )
        .ok_or_else(|| {
            issue(
                "secrets",
                "secret_encoding is base64 but a secret does not decode",
            )
        })?;
        Ok(engine)
    }
}
