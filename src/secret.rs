//! Secrets are referenced from the config, never written into it.
//!
//! A reference is `env:NAME` (read from the environment handed to the loader) or `file:/path` (read from
//! disk, which is how Kubernetes mounts a Secret). The resolved value lives in [`Secret`], whose `Debug`
//! and `Display` are redacted so that logging a config or an error can never print it.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// Where a secret comes from, as written in the config.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    File(PathBuf),
}

impl SecretRef {
    /// Parses `env:NAME` or `file:/path`. Anything else is refused, so that a secret pasted inline by
    /// mistake is rejected at `check-config` time instead of being accepted and later logged.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if let Some(name) = raw.strip_prefix("env:") {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err("env: reference needs a variable name of letters, digits and _".into());
            }
            return Ok(SecretRef::Env(name.to_owned()));
        }
        if let Some(path) = raw.strip_prefix("file:") {
            if !path.starts_with('/') {
                return Err("file: reference needs an absolute path".into());
            }
            return Ok(SecretRef::File(PathBuf::from(path)));
        }
        Err(
            "secrets must be references (`env:NAME` or `file:/absolute/path`), never inline values"
                .into(),
        )
    }

    /// Reads the secret. A file's trailing newline is dropped (editors and `kubectl create secret
    /// --from-file` commonly add one) but other whitespace is kept: it may be part of the secret.
    pub fn resolve(&self, env: &HashMap<String, String>) -> Result<Secret, String> {
        let value = match self {
            SecretRef::Env(name) => env
                .get(name)
                .cloned()
                .ok_or_else(|| format!("environment variable {name} is not set"))?,
            SecretRef::File(path) => {
                let mut text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
                if text.ends_with('\n') {
                    text.pop();
                    if text.ends_with('\r') {
                        text.pop();
                    }
                }
                text
            }
        };
        if value.is_empty() {
            return Err(format!("{self} resolves to an empty value"));
        }
        Ok(Secret(Arc::from(value.into_bytes())))
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "env:{name}"),
            SecretRef::File(path) => write!(f, "file:{}", path.display()),
        }
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<'de> serde::Deserialize<'de> for SecretRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        SecretRef::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// A resolved secret. Cheap to clone; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<[u8]>);

impl Secret {
    /// The secret's bytes, for keying a MAC or comparing a token. Keep the borrow short.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// Builds a secret from bytes already in memory (tests, benchmarks, the load generator).
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(Arc::from(bytes.into()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_secret_is_refused() {
        let err = SecretRef::parse("pDY0Oi7TJSP2hfNmZNkm5").unwrap_err();
        assert!(err.contains("never inline"), "{err}");
        assert!(!err.contains("pDY0"), "the error must not echo the value");
    }

    #[test]
    fn env_reference_resolves_from_the_given_map() {
        let env = HashMap::from([("CRONOFY".to_owned(), "s3cret".to_owned())]);
        let secret = SecretRef::parse("env:CRONOFY")
            .unwrap()
            .resolve(&env)
            .unwrap();
        assert_eq!(secret.expose(), b"s3cret");
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        let missing = SecretRef::parse("env:NOPE")
            .unwrap()
            .resolve(&env)
            .unwrap_err();
        assert!(missing.contains("NOPE is not set"));
    }

    #[test]
    fn file_reference_drops_one_trailing_newline() {
        let dir = std::env::temp_dir().join(format!("hb-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s");
        std::fs::write(&path, "abc \n").unwrap();
        let secret = SecretRef::File(path).resolve(&HashMap::new()).unwrap();
        assert_eq!(secret.expose(), b"abc ");
        assert!(SecretRef::parse("file:relative").is_err());
    }
}
