//! From settings to blocks: each scheme's keys, with their defaults filled in, become the
//! `crate::verify` blocks that check requests. Checks that need several keys at once (a
//! `{timestamp}` with nowhere to read it from) are made here, before the source serves.

use super::settings::{FormatName, Settings, SignedSettings, from_text};
use super::{Presented, Scheme};
use crate::secret::{Secret, SecretRef};
use crate::section::ConfigIssue;
use crate::verify::hmac::{DigestEncoding, HmacAlgorithm, HmacKeyring, decode_secrets};
use crate::verify::intern;
use crate::verify::jwt::JwtVerifier;
use crate::verify::message_template::{MessageTemplate, Piece};
use crate::verify::public_key::{PublicKeyAlgorithm, PublicKeyring};
use crate::verify::signature_format::SignatureFormat;
use crate::verify::signed_message::{Keyring, SignatureSource, SignedMessage, ValueSource};
use crate::verify::timestamp::Window;

impl Settings {
    /// Every scheme has secrets but `public_key`; they are resolved (`env:`, `file:`) before any
    /// scheme's own checks, so a missing secret is reported first, as it always was.
    pub(super) fn secrets(&self) -> Option<&[SecretRef]> {
        match self {
            Settings::Hmac(s) => Some(s.secrets.as_deref().unwrap_or_default()),
            Settings::PublicKey(_) => None,
            Settings::Token(s) => Some(&s.secrets),
            Settings::Basic(s) => Some(&s.secrets),
            Settings::Jwt(s) => Some(&s.secrets),
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
            Settings::Hmac(s) => Scheme::Signed(s.signed_message(key, Some(secrets), id_header)?),
            Settings::PublicKey(s) => Scheme::Signed(s.signed_message(key, None, id_header)?),
            Settings::Token(s) => {
                // Two would leave which one counts to the order of the code, and none would
                // refuse every request: one place, stated.
                let from = match (s.header, s.query, s.pointer) {
                    (Some(header), None, None) => Presented::Header(header),
                    (None, Some(query), None) => Presented::Query(query),
                    (None, None, Some(pointer)) => Presented::Body(pointer),
                    _ => {
                        return Err(issue(
                            "header",
                            "the token scheme needs exactly one of header, query or pointer",
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

impl SignedSettings {
    /// The signed-message engine with the defaults filled in; `secrets` are the HMAC keys, `None`
    /// for `public_key`. The checks run in the order they always have, so a source with several
    /// mistakes is told about the same one first.
    fn signed_message(
        self,
        key: &str,
        secrets: Option<Vec<Secret>>,
        id_header: Option<String>,
    ) -> Result<SignedMessage, Vec<ConfigIssue>> {
        let issue =
            |field: &str, reason: &str| vec![ConfigIssue::new(format!("{key}.{field}"), reason)];
        // No default header: every sender names its own, and guessing one would only turn a
        // missing setting into "missing signature" on every request.
        let signature = match (self.header, self.signature_pointer) {
            (Some(names), None) => {
                let names = names.into_vec();
                if names.is_empty() {
                    return Err(issue("header", "the header list is empty"));
                }
                SignatureSource::Headers(names.into_iter().map(intern).collect())
            }
            (None, Some(pointer)) => SignatureSource::Field {
                pointer: intern(pointer),
            },
            _ => {
                return Err(issue(
                    "header",
                    "a signed scheme needs exactly one of header or signature_pointer",
                ));
            }
        };
        // The defaults are the most common layout: hex SHA-256 over the body, signatures
        // separated by commas, `t=` and `v1=` for key=value headers.
        let message = MessageTemplate::parse(self.message.as_deref().unwrap_or("{body}"))
            .map_err(|e| issue("message", &e))?;
        let pair_separator = match self.kv_separator.as_deref() {
            None => ',',
            Some(text) => {
                let mut chars = text.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => c,
                    _ => return Err(issue("kv_separator", "kv_separator is one character")),
                }
            }
        };
        let format = match self.signature_format.unwrap_or(FormatName::List) {
            FormatName::List => SignatureFormat::List {
                prefix: self.prefix.unwrap_or_default(),
                separator: self.separator.unwrap_or_else(|| ",".into()),
            },
            FormatName::Kv => SignatureFormat::Kv {
                timestamp_key: self.kv_timestamp_key.unwrap_or_else(|| "t".into()),
                signature_key: self.kv_signature_key.unwrap_or_else(|| "v1".into()),
                pair_separator,
            },
        };
        let timestamp = match (self.timestamp_header, self.timestamp_pointer) {
            (Some(header), None) => Some(ValueSource::Header(header)),
            (None, Some(pointer)) => Some(ValueSource::Field(pointer)),
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(issue(
                    "timestamp_header",
                    "give timestamp_header or timestamp_pointer, not both",
                ));
            }
        };
        let tolerance = std::time::Duration::from_secs(self.tolerance_secs.unwrap_or(300));
        let encoding = self.encoding.unwrap_or(DigestEncoding::Hex);
        let algorithm = self.algorithm.as_deref();
        let choice_issue = |e: serde::de::value::Error| issue("algorithm", &e.to_string());
        // The keys are decoded once the template is known to be usable (below).
        let keyring = match &secrets {
            Some(_) => Keyring::Hmac(HmacKeyring {
                algorithm: algorithm
                    .map(from_text::<serde::de::value::Error, HmacAlgorithm>)
                    .transpose()
                    .map_err(choice_issue)?
                    .unwrap_or(HmacAlgorithm::Sha256),
                encoding,
                secrets: Vec::new(),
            }),
            None => {
                let algorithm = algorithm
                    .ok_or_else(|| issue("algorithm", "the public_key scheme needs an algorithm"))
                    .and_then(|a| {
                        from_text::<serde::de::value::Error, PublicKeyAlgorithm>(a)
                            .map_err(choice_issue)
                    })?;
                let keys = self.public_keys.unwrap_or_default();
                Keyring::PublicKey(
                    PublicKeyring::new(algorithm, encoding, &keys)
                        .map_err(|e| issue("public_keys", &e))?,
                )
            }
        };
        let mut engine = SignedMessage {
            signature,
            format,
            message,
            keyring,
            timestamp,
            timestamp_format: self.timestamp_format.unwrap_or_default(),
            id_header,
            url: self.url,
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
                    "{timestamp} needs timestamp_header, timestamp_pointer or the kv format",
                ));
            }
            Some(Piece::Url) => return Err(issue("message", "{url} needs url")),
            Some(_) => return Err(issue("message", "{id} needs id_header")),
            None => {}
        }
        if let (Keyring::Hmac(ring), Some(secrets)) = (&mut engine.keyring, secrets) {
            if secrets.is_empty() {
                return Err(issue("secrets", "the hmac scheme needs its secrets"));
            }
            ring.secrets = decode_secrets(
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
        }
        Ok(engine)
    }
}
