//! What every module's config validator shares: the [`ConfigIssue`] it reports, and reading a TOML
//! table into typed settings with the key path of whatever does not fit.
//!
//! A leaf, so that `providers`, `publish`, `dedup` and the rest validate their own tables where
//! their knowledge lives without importing `config`, which assembles them.

use std::collections::HashMap;
use std::fmt;

use serde::de::DeserializeOwned;

use crate::secret::{Secret, SecretRef};

/// One thing wrong with a config: the key it is about and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub key: String,
    pub reason: String,
}

impl ConfigIssue {
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigIssue {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

/// Deserializes a table (a provider's `verify`, say) into `T`, naming the offending key on error.
/// Choice keys are serde enums, so a wrong choice reads "unknown variant `x`, expected `a` or `b`".
pub fn parse_table<T: DeserializeOwned>(
    key: &str,
    table: &toml::Table,
) -> Result<T, Vec<ConfigIssue>> {
    serde_path_to_error::deserialize(toml::Value::Table(table.clone())).map_err(|e| {
        let path = e.path().to_string();
        let full = if path == "." {
            key.to_owned()
        } else {
            format!("{key}.{path}")
        };
        vec![ConfigIssue::new(full, e.into_inner().to_string())]
    })
}

/// The error of a check that has already pushed its [`ConfigIssue`]: the caller only needs to know
/// that the section is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded;

/// Resolves an optional secret reference, reporting a failure against `key`.
pub fn resolve_optional(
    key: &str,
    reference: &Option<SecretRef>,
    env: &HashMap<String, String>,
    issues: &mut Vec<ConfigIssue>,
) -> Result<Option<Secret>, Recorded> {
    match reference {
        None => Ok(None),
        Some(r) => r.resolve(env).map(Some).map_err(|reason| {
            issues.push(ConfigIssue::new(key, reason));
            Recorded
        }),
    }
}

/// Source and publisher names appear in URLs, metric labels and topic names: keep them plain.
pub fn check_name(key: &str, name: &str, issues: &mut Vec<ConfigIssue>) {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        issues.push(ConfigIssue::new(
            key,
            "names use 1 to 64 of a-z, 0-9, - and _",
        ));
    }
}
