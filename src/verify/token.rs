//! Fixed credentials: a static token, an API key in a header or query parameter, HTTP basic auth.
//!
//! Both sides are hashed before the constant-time comparison, so neither the content nor the length
//! of a configured secret leaks through timing.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// True when `presented` equals any of `secrets`, in time independent of where they differ.
pub fn matches_any(presented: &[u8], secrets: &[Secret]) -> bool {
    let presented = Sha256::digest(presented);
    let mut matched = subtle::Choice::from(0);
    for secret in secrets {
        matched |= Sha256::digest(secret.expose()).ct_eq(&presented);
    }
    bool::from(matched)
}

/// `Authorization: Basic base64(user:password)` → (user, password), or None when malformed.
pub fn parse_basic(header: &str) -> Option<(String, Vec<u8>)> {
    let encoded = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))?;
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let colon = decoded.iter().position(|b| *b == b':')?;
    let user = String::from_utf8(decoded.get(..colon)?.to_vec()).ok()?;
    Some((user, decoded.get(colon + 1..)?.to_vec()))
}

/// Strips an optional `Bearer ` prefix (case-insensitive), which some operators add.
pub fn strip_bearer(value: &str) -> &str {
    let trimmed = value.trim();
    match trimmed.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("bearer ") => trimmed.get(7..).unwrap_or_default().trim(),
        _ => trimmed,
    }
}

/// The first value of query parameter `name`, percent-decoded.
pub fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The texts at `pointer` in a JSON document, where `*` stands for every element of an array:
/// `/value/*/clientState` is each notification's `clientState`. An element without the value
/// gives an empty text, so a batch with one unauthenticated element is refused, not filtered.
pub fn values_at(json: &serde_json::Value, pointer: &str) -> Vec<String> {
    match pointer.split_once("/*") {
        Some((head, tail)) => match json.pointer(head).and_then(|v| v.as_array()) {
            Some(items) => items
                .iter()
                .flat_map(|item| {
                    let found = values_at(item, tail);
                    if found.is_empty() {
                        vec![String::new()]
                    } else {
                        found
                    }
                })
                .collect(),
            None => Vec::new(),
        },
        None => match json.pointer(pointer) {
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            Some(_) => vec![String::new()],
            None => Vec::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_pointers_reach_every_element() {
        let json = serde_json::json!({"value": [{"c": "a"}, {"c": "b"}, {"d": 1}]});
        assert_eq!(values_at(&json, "/value/*/c"), ["a", "b", ""]);
        assert_eq!(values_at(&json, "/value/0/c"), ["a"]);
        assert!(values_at(&json, "/missing/*/c").is_empty());
    }

    #[test]
    fn tokens_match_only_exactly() {
        let secrets = [Secret::from_bytes("abc"), Secret::from_bytes("def")];
        assert!(matches_any(b"def", &secrets));
        assert!(!matches_any(b"de", &secrets));
        assert!(!matches_any(b"", &secrets));
    }

    #[test]
    fn basic_auth_parses_and_refuses_junk() {
        assert_eq!(
            parse_basic("Basic dXNlcjpwYTpzcw=="),
            Some(("user".into(), b"pa:ss".to_vec()))
        );
        assert_eq!(parse_basic("Basic !!!"), None);
        assert_eq!(parse_basic("Bearer x"), None);
        assert_eq!(parse_basic("Basic dXNlcg=="), None, "no colon");
    }

    #[test]
    fn bearer_prefix_is_optional() {
        assert_eq!(strip_bearer("Bearer abc"), "abc");
        assert_eq!(strip_bearer("abc"), "abc");
        assert_eq!(strip_bearer("bEaReR  abc "), "abc");
    }

    #[test]
    fn query_params_are_decoded() {
        assert_eq!(
            query_param("a=1&token=x%2By", "token").as_deref(),
            Some("x+y")
        );
        assert_eq!(query_param("a=1", "token"), None);
    }
}
