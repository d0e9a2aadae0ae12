//! The rows every preset gets (`preset-<name>` goldens, from the preset vectors): its credential
//! removed, its credential nearly right, its body emptied under the original credential, and the
//! size limits. The header names come from the preset's own table, which is what a sender is told
//! to send; the expected codes follow from the scheme alone.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hookbridge::providers::generic::PRESETS;

use super::Row;
use super::requests::{clone, header, same_length_wrong, set_header, with_body};
use super::rows_common::verification;
use crate::golden::{Golden, Prepared};

/// `rows_common`'s verification row, always a 401 here.
fn refused(source: &str, case: &str, request: Prepared, code: &'static str) -> Row {
    verification(source, case, request, 401, code)
}

fn without(p: &Prepared, names: &[String]) -> Prepared {
    let mut p = clone(p);
    p.headers
        .retain(|(k, _)| !names.iter().any(|n| n.eq_ignore_ascii_case(k)));
    p
}

/// `golden`'s preset rows, for `source`, from its valid request.
pub(super) fn preset_rows(g: &Golden, source: &str, valid: &Prepared) -> Vec<Row> {
    let name = g.name.trim_start_matches("preset-");
    let preset = PRESETS
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("no preset {name}"));
    let t: toml::Table = preset.defaults.parse().expect("preset toml");
    let text = |k: &str| t.get(k).and_then(toml::Value::as_str);
    let headers: Vec<String> = match t.get("header") {
        Some(toml::Value::String(h)) => vec![h.clone()],
        Some(toml::Value::Array(hs)) => hs
            .iter()
            .filter_map(|h| h.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    let mut rows = Vec::new();
    match text("scheme").unwrap_or("hmac") {
        "hmac" | "public_key" => {
            if headers.is_empty() {
                // The signature travels in the body (Mailgun): a body without it.
                let mut body: serde_json::Value =
                    serde_json::from_slice(&valid.body).expect("json body");
                body.as_object_mut().expect("object").remove("signature");
                let p = with_body(clone(valid), serde_json::to_vec(&body).unwrap());
                rows.push(refused(
                    source,
                    "signature removed from the body",
                    p,
                    "missing_signature",
                ));
            } else {
                rows.push(refused(
                    source,
                    "signature header removed",
                    without(valid, &headers),
                    "missing_signature",
                ));
            }
            // Under the original signature an empty body is a forgery, unless what is missing
            // first is a value read from the body.
            let empty_code = if headers.is_empty() {
                "missing_signature"
            } else if text("timestamp_pointer").is_some() {
                "missing_timestamp"
            } else {
                "bad_signature"
            };
            rows.push(refused(
                source,
                "empty body, original signature",
                with_body(clone(valid), Vec::new()),
                empty_code,
            ));
        }
        "token" if text("pointer").is_some() => {
            rows.push(refused(
                source,
                "no token in the body",
                with_body(
                    clone(valid),
                    br#"{"value":[{"changeType":"created"}]}"#.to_vec(),
                ),
                "missing_credential",
            ));
        }
        "token" => {
            let h = text("header").expect("token header").to_owned();
            rows.push(refused(
                source,
                "token header removed",
                without(valid, std::slice::from_ref(&h)),
                "missing_credential",
            ));
            let mut wrong = clone(valid);
            let value = header(valid, &h).expect("token").to_owned();
            set_header(&mut wrong, &h, same_length_wrong(&value));
            rows.push(refused(
                source,
                "token of the right length, wrong",
                wrong,
                "bad_credential",
            ));
        }
        "basic" => {
            rows.push(refused(
                source,
                "Authorization removed",
                without(valid, &["Authorization".to_owned()]),
                "missing_credential",
            ));
            let mut wrong = clone(valid);
            let user = g.spec["verify"]["username"].as_str().unwrap_or_default();
            let password = format!("{user}:not-the-password");
            set_header(
                &mut wrong,
                "Authorization",
                format!("Basic {}", STANDARD.encode(password)),
            );
            rows.push(refused(source, "wrong password", wrong, "bad_credential"));
        }
        other => panic!("{name}: no rows for scheme {other}"),
    }
    rows
}
