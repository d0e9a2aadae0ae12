//! Reads the TOML file, applies `HOOKBRIDGE__SECTION__KEY=value` environment overrides, and
//! deserializes into [`RawConfig`], reporting the key path of whatever does not fit.
//!
//! The environment is a parameter, not read here, so tests run in parallel without touching
//! process state.

use std::collections::HashMap;
use std::path::Path;

use super::RawConfig;

/// Prefix of environment overrides; `__` separates key path segments.
pub const ENV_PREFIX: &str = "HOOKBRIDGE__";

/// Why a config could not be read into a [`RawConfig`].
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{0}")]
    Syntax(String),
    #[error("{key}: {reason}")]
    Shape { key: String, reason: String },
}

impl LoadError {
    /// The key path the error is about, where known.
    pub fn key(&self) -> Option<&str> {
        match self {
            LoadError::Shape { key, .. } => Some(key),
            _ => None,
        }
    }
}

pub fn load_file(path: &Path, env: &HashMap<String, String>) -> Result<RawConfig, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| LoadError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    load_str(&text, env)
}

pub fn load_str(text: &str, env: &HashMap<String, String>) -> Result<RawConfig, LoadError> {
    let mut table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| LoadError::Syntax(e.to_string()))?;
    apply_env_overrides(&mut table, env)?;
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let key = e.path().to_string();
        LoadError::Shape {
            key: if key == "." {
                "(top level)".into()
            } else {
                key
            },
            reason: e.into_inner().to_string(),
        }
    })
}

/// `HOOKBRIDGE__SERVER__LISTEN=0.0.0.0:9000` sets `server.listen`. A value that parses as a TOML value
/// (`8080`, `true`, `["env:A"]`) is taken as that; anything else is a string. Overrides are applied in
/// key order so the result does not depend on the environment's iteration order.
fn apply_env_overrides(
    table: &mut toml::Table,
    env: &HashMap<String, String>,
) -> Result<(), LoadError> {
    let mut overrides: Vec<(&String, &String)> = env
        .iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    overrides.sort();
    for (name, raw) in overrides {
        let path: Vec<String> = name
            .strip_prefix(ENV_PREFIX)
            .unwrap_or_default()
            .split("__")
            .map(|s| s.to_ascii_lowercase())
            .collect();
        if path.iter().any(String::is_empty) {
            return Err(LoadError::Shape {
                key: name.clone(),
                reason: "empty key segment in environment override".into(),
            });
        }
        let value = parse_override(raw);
        set_path(table, &path, value).map_err(|reason| LoadError::Shape {
            key: path.join("."),
            reason: format!("{reason} (from {name})"),
        })?;
    }
    Ok(())
}

fn parse_override(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()))
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let Some((last, parents)) = path.split_last() else {
        return Err("empty key".into());
    };
    let mut current = table;
    for segment in parents {
        let entry = current
            .entry(segment.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry
            .as_table_mut()
            .ok_or_else(|| format!("`{segment}` is not a table"))?;
    }
    current.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn unknown_key_is_reported_with_its_path() {
        let err = load_str("[server]\nlisten = \"x\"\nlisen = 1\n", &HashMap::new()).unwrap_err();
        assert_eq!(err.key(), Some("server.lisen"), "{err}");
        assert!(err.to_string().contains("unknown field `lisen`"), "{err}");
    }

    #[test]
    fn env_overrides_set_nested_keys_with_typed_values() {
        let raw = load_str(
            "[server]\nlisten = \"0.0.0.0:1\"\n",
            &env(&[
                ("HOOKBRIDGE__SERVER__LISTEN", "127.0.0.1:9"),
                ("HOOKBRIDGE__SERVER__PUBLISH_TIMEOUT_MS", "250"),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(raw.server.listen, "127.0.0.1:9");
        assert_eq!(raw.server.publish_timeout_ms, 250);
    }

    #[test]
    fn wrong_type_names_the_key() {
        let err = load_str("[server]\nbody_limit_bytes = \"big\"\n", &HashMap::new()).unwrap_err();
        assert_eq!(err.key(), Some("server.body_limit_bytes"), "{err}");
    }
}
