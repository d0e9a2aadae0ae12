//! `[sources.NAME.verify]` for the generic family, read as an enum tagged by `scheme`: each
//! scheme has its own keys, and the mapping keys (`mapping.rs`) go with every scheme. What the
//! keys become is `assemble.rs`.
//!
//! Read in two steps rather than with `#[serde(tag = "scheme")]`: an internally tagged enum is
//! buffered before its variant is read, and errors from the buffer lose their key path
//! (`sources.x.verify: unknown variant` instead of `sources.x.verify.algorithm: ...`). So the
//! tag is read first, then the rest of the table as that scheme's struct through the same
//! path-keeping [`settings`] as every provider.
//!
//! A key that belongs to another scheme is ignored, as it was when the settings were one flat
//! struct: configs that loaded before still load.

use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer, IntoDeserializer, Visitor};

use super::mapping::MappingSettings;
use crate::providers::settings;
use crate::secret::SecretRef;
use crate::section::ConfigIssue;
use crate::verify::hmac::{DigestEncoding, SecretEncoding};
use crate::verify::jwt::JwtSettings;
use crate::verify::timestamp::TimestampFormat;

/// The `scheme` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SchemeName {
    Hmac,
    PublicKey,
    Token,
    Basic,
    Jwt,
}

/// Only the tag: the table's other keys are read in the second step, so none is refused here.
#[derive(Deserialize)]
struct Tag {
    #[serde(deserialize_with = "choice")]
    scheme: SchemeName,
}

/// A generic source's scheme, with its own keys.
#[derive(Debug)]
pub(super) enum Settings {
    Hmac(SignedSettings),
    PublicKey(SignedSettings),
    Token(TokenSettings),
    Basic(BasicSettings),
    Jwt(JwtSchemeSettings),
}

/// `scheme = "hmac"`: an HMAC over a message built from the request; `scheme = "public_key"`:
/// an Ed25519 or ECDSA signature over it. The two differ only in their keys and algorithms.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SignedSettings {
    /// The HMAC keys (several during a rotation); `hmac` only.
    pub(super) secrets: Option<Vec<SecretRef>>,
    /// The sender's public keys (hex, base64, or PEM); `public_key` only. Not secret.
    pub(super) public_keys: Option<Vec<String>>,
    /// Header(s) carrying the signatures: one name, or several (a primary and a secondary).
    pub(super) header: Option<OneOrMany>,
    /// Or: a JSON pointer to the signature inside the body.
    pub(super) signature_pointer: Option<String>,
    /// `sha1`, `sha256`, `sha512` (hmac); `ed25519`, `ecdsa_p256_sha256` (public_key). Read as
    /// text and checked against the scheme's list when assembled.
    pub(super) algorithm: Option<String>,
    pub(super) encoding: Option<DigestEncoding>,
    /// Text before each signature, such as `sha256=` or `v1,` (with the list format).
    pub(super) prefix: Option<String>,
    /// Separator between several signatures in one header (rotation); default `,`.
    pub(super) separator: Option<String>,
    /// `list` (default) or `kv` (`t=..,v1=..` pairs).
    #[serde(default, deserialize_with = "optional_choice")]
    pub(super) signature_format: Option<FormatName>,
    /// With `kv`: the key of the timestamp and of the signatures, and the pair separator
    /// (one character, default `,`).
    pub(super) kv_timestamp_key: Option<String>,
    pub(super) kv_signature_key: Option<String>,
    pub(super) kv_separator: Option<String>,
    /// What is signed: `{body}`, `{timestamp}.{body}`, `{id}.{timestamp}.{body}`, ...
    pub(super) message: Option<String>,
    pub(super) timestamp_header: Option<String>,
    /// Or: a JSON pointer to the signed timestamp inside the body.
    pub(super) timestamp_pointer: Option<String>,
    /// `unix` (default), `unix_ms` or `rfc3339`.
    #[serde(default, deserialize_with = "optional_choice")]
    pub(super) timestamp_format: Option<TimestampFormat>,
    /// The URL the sender calls (as registered with it), for `{url}`.
    pub(super) url: Option<String>,
    /// Accepted age of a signed timestamp, in seconds (default 300).
    pub(super) tolerance_secs: Option<u64>,
    /// Secrets are stored after this prefix (Standard Webhooks' `whsec_`).
    pub(super) secret_prefix: Option<String>,
    /// `raw` (default) or `base64`.
    #[serde(default, deserialize_with = "optional_choice")]
    pub(super) secret_encoding: Option<SecretEncoding>,
}

/// A header name, or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub(super) fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

/// `signature_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum FormatName {
    List,
    Kv,
}

/// `scheme = "token"`: a static token or API key in a header or query parameter.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TokenSettings {
    /// The accepted tokens.
    pub(super) secrets: Vec<SecretRef>,
    pub(super) header: Option<String>,
    /// Query parameter carrying the token instead of a header.
    pub(super) query: Option<String>,
    /// Or: a JSON pointer to the token inside the body; `*` stands for every element of an
    /// array, and then every element must carry it (Microsoft Graph's `clientState`).
    pub(super) pointer: Option<String>,
    /// Accept `Bearer <token>` as well as the bare token (default true).
    pub(super) strip_bearer: Option<bool>,
}

/// `scheme = "basic"`: HTTP basic auth.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BasicSettings {
    /// The accepted passwords.
    pub(super) secrets: Vec<SecretRef>,
    pub(super) username: Option<String>,
}

/// `scheme = "jwt"`: a JWT in a header, checked per the `[jwt]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct JwtSchemeSettings {
    /// One: the HMAC secret or the PEM public key.
    pub(super) secrets: Vec<SecretRef>,
    /// Default `Authorization`.
    pub(super) header: Option<String>,
    pub(super) jwt: Option<JwtSettings>,
}

impl SchemeName {
    const ALL: [SchemeName; 5] = [
        Self::Hmac,
        Self::PublicKey,
        Self::Token,
        Self::Basic,
        Self::Jwt,
    ];

    fn keys(self) -> &'static [&'static str] {
        match self {
            SchemeName::Hmac | SchemeName::PublicKey => keys_of::<SignedSettings>(),
            SchemeName::Token => keys_of::<TokenSettings>(),
            SchemeName::Basic => keys_of::<BasicSettings>(),
            SchemeName::Jwt => keys_of::<JwtSchemeSettings>(),
        }
    }
}

/// Reads the (preset-merged) `verify` table; `key` is its path, for errors.
pub(super) fn parse(
    key: &str,
    table: &toml::Table,
) -> Result<(Settings, MappingSettings), Vec<ConfigIssue>> {
    let Tag { scheme } = settings(key, table)?;
    let own = scheme.keys();
    let mapping_keys = keys_of::<MappingSettings>();
    let (mut mine, mut mapping) = (toml::Table::new(), toml::Table::new());
    for (k, v) in table {
        let name = k.as_str();
        if mapping_keys.contains(&name) {
            mapping.insert(k.clone(), v.clone());
        } else if own.contains(&name) {
            mine.insert(k.clone(), v.clone());
        } else if name == "scheme" || SchemeName::ALL.iter().any(|s| s.keys().contains(&name)) {
            // Read already, or another scheme's key: ignored, as the flat struct ignored it.
        } else {
            // Listed by hand, in serde's words, so that the mapping keys are offered too.
            let expected: Vec<String> = ["scheme"]
                .iter()
                .chain(own)
                .chain(mapping_keys)
                .map(|k| format!("`{k}`"))
                .collect();
            let reason = format!(
                "unknown field `{k}`, expected one of {}",
                expected.join(", ")
            );
            return Err(vec![ConfigIssue::new(format!("{key}.{k}"), reason)]);
        }
    }
    let scheme = match scheme {
        SchemeName::Hmac => Settings::Hmac(settings(key, &mine)?),
        SchemeName::PublicKey => Settings::PublicKey(settings(key, &mine)?),
        SchemeName::Token => Settings::Token(settings(key, &mine)?),
        SchemeName::Basic => Settings::Basic(settings(key, &mine)?),
        SchemeName::Jwt => Settings::Jwt(settings(key, &mine)?),
    };
    Ok((scheme, settings(key, &mapping)?))
}

/// A choice key (`scheme`, `signature_format`, `secret_encoding`), read as text and then as its
/// enum. A value of the wrong type is then "expected a string", as when these keys were plain
/// strings, instead of what toml says of a non-string enum ("invalid type: unit variant").
fn choice<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<T, D::Error> {
    from_text(&String::deserialize(d)?)
}

pub(super) fn optional_choice<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|text| from_text(&text))
        .transpose()
}

pub(super) fn from_text<E: serde::de::Error, T: DeserializeOwned>(text: &str) -> Result<T, E> {
    T::deserialize(text.into_deserializer()).map_err(|e: serde::de::value::Error| E::custom(e))
}

/// The keys a settings struct accepts, exactly as serde's derive lists them, so the split of a
/// table between schemes cannot drift from the structs above. A derived `Deserialize` hands its
/// field names to `deserialize_struct` before reading anything; this deserializer only keeps
/// them.
fn keys_of<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Probe<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Probe<'_> {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(serde::de::Error::custom("only the field names were wanted"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    // Always an error: the probe stops the derive as soon as it has the names.
    let _probed = T::deserialize(Probe(&mut fields));
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issue(text: &str) -> ConfigIssue {
        let table: toml::Table = text.parse().unwrap();
        parse("sources.t.verify", &table).unwrap_err().remove(0)
    }

    /// The reason for two steps: a bad value inside a scheme still names its own key.
    #[test]
    fn errors_name_the_key_and_list_the_choices() {
        let bad = issue("scheme = \"hmac\"\nsecrets = []\nencoding = \"octal\"");
        assert_eq!(bad.key, "sources.t.verify.encoding");
        let bad = issue("scheme = \"hmca\"\nsecrets = []");
        assert_eq!(bad.key, "sources.t.verify.scheme");
        assert!(
            bad.reason
                .contains("`hmac`, `public_key`, `token`, `basic`, `jwt`"),
            "{bad:?}"
        );
        let bad = issue("scheme = \"hmac\"\nsecrets = []\nsignature_format = \"pairs\"");
        assert!(bad.reason.contains("expected `list` or `kv`"), "{bad:?}");
        let bad = issue("scheme = \"basic\"\nsecrets = []\ntype_pointr = \"/t\"");
        assert_eq!(bad.key, "sources.t.verify.type_pointr");
        assert!(bad.reason.contains("`username`, `type_header`"), "{bad:?}");
    }

    /// As with the flat struct: another scheme's key is not an error.
    #[test]
    fn another_schemes_keys_are_ignored() {
        let table: toml::Table = "scheme = \"token\"\nsecrets = []\nquery = \"t\"\nprefix = \"x\""
            .parse()
            .unwrap();
        let (scheme, _) = parse("k", &table).unwrap();
        assert!(matches!(scheme, Settings::Token(t) if t.query.as_deref() == Some("t")));
    }

    /// A key in both the mapping and a scheme would reach only the mapping: the split in
    /// `parse` needs them apart.
    #[test]
    fn keys_are_read_off_the_structs_and_kept_apart() {
        assert_eq!(keys_of::<BasicSettings>(), ["secrets", "username"]);
        let mapping = keys_of::<MappingSettings>();
        assert!(mapping.contains(&"id_header"));
        for scheme in SchemeName::ALL {
            assert!(
                scheme.keys().iter().all(|k| !mapping.contains(k)),
                "{scheme:?}"
            );
        }
    }
}
