//! Every preset against its vectors (`tests/fixtures/presets/vectors.json`): the provider's own
//! published example where one exists, and one computed by `make_vectors.py`, an implementation
//! of each documented algorithm in Python's `hmac`/`hashlib`/`cryptography` that shares nothing
//! with the gateway. A vector must verify at its time and map to the expected type, dedup key,
//! subject and time; its forged variant must be refused; every handshake must be answered
//! byte for byte as documented, and refused when its credential is wrong.

use std::collections::HashMap;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use bytes::Bytes;
use serde_json::Value;
use time::OffsetDateTime;

use super::*;
use crate::event::EventId;
use crate::providers::block_on;

const VECTORS: &str = include_str!("../../../tests/fixtures/presets/vectors.json");

fn source(name: &str, spec: &Value) -> Result<Generic, String> {
    let env: HashMap<String, String> = spec["env"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect();
    let verify: toml::Table = toml::Table::try_from(&spec["verify"]).map_err(|e| e.to_string())?;
    Generic::from_config("sources.t.verify", name, &verify, &env).map_err(|e| format!("{e:?}"))
}

struct Owned {
    method: String,
    headers: HeaderMap,
    query: String,
    body: Bytes,
    at: OffsetDateTime,
}

fn owned(spec: &Value, body_override: Option<String>) -> Owned {
    let r = &spec["request"];
    let mut headers = HeaderMap::new();
    for (k, v) in r["headers"].as_object().into_iter().flatten() {
        headers.append(
            HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            HeaderValue::from_str(v.as_str().unwrap_or_default()).expect("header value"),
        );
    }
    Owned {
        method: r["method"].as_str().unwrap_or("POST").to_owned(),
        headers,
        query: r["query"].as_str().unwrap_or_default().to_owned(),
        body: Bytes::from(
            body_override.unwrap_or_else(|| r["body"].as_str().unwrap_or_default().to_owned()),
        ),
        at: OffsetDateTime::from_unix_timestamp(spec["at"].as_i64().expect("at")).expect("time"),
    }
}

impl Owned {
    fn request(&self) -> WebhookRequest<'_> {
        WebhookRequest {
            method: &self.method,
            headers: &self.headers,
            query: &self.query,
            body: &self.body,
            peer: None,
            received_at: self.at,
        }
    }
}

/// What was wrong with one vector, or nothing.
fn check_vector(name: &str, v: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let g = match source(name, v) {
        Ok(g) => g,
        Err(e) => return vec![format!("config: {e}")],
    };
    let o = owned(v, None);
    let request = o.request();
    let expect = &v["expect"];
    match block_on(g.verify(&request)) {
        Err(e) => problems.push(format!("refused: {}", e.code())),
        Ok(verified) => match (block_on(g.map("t", verified)), expect["map"].as_str()) {
            (Ok(Mapped::Event(event)), Some("event")) => {
                let want_id = match expect["id"].as_str() {
                    Some(id) => id.to_owned(),
                    None => EventId::from_content("t", &[&o.body]).to_string(),
                };
                let got = [
                    (
                        "type",
                        Some(event.event_type.clone()),
                        expect["type"].as_str().map(str::to_owned),
                    ),
                    ("id", Some(event.id.to_string()), Some(want_id)),
                    (
                        "subject",
                        event.subject.clone(),
                        expect["subject"].as_str().map(str::to_owned),
                    ),
                    (
                        "occurred_at",
                        event.occurred_at.map(|t| t.unix_timestamp().to_string()),
                        expect["occurred_at"].as_i64().map(|t| t.to_string()),
                    ),
                    (
                        "delivery_id",
                        event.attributes.get("delivery_id").cloned(),
                        expect["delivery_id"].as_str().map(str::to_owned),
                    ),
                ];
                for (what, got, want) in got {
                    if got != want {
                        problems.push(format!("{what} {got:?}, expected {want:?}"));
                    }
                }
            }
            (Err(e), Some(code)) if e.code() == code => {}
            (other, want) => problems.push(format!("mapped to {other:?}, expected {want:?}")),
        },
    }
    // The forged variant: the body replaced in one place, and/or headers set.
    let forged = &v["forged"];
    if forged.is_object() {
        let mut body = v["request"]["body"].as_str().unwrap_or_default().to_owned();
        if let Some([from, to]) = forged["replace"].as_array().map(|a| {
            [
                a[0].as_str().unwrap_or_default(),
                a[1].as_str().unwrap_or_default(),
            ]
        }) {
            if !body.contains(from) {
                problems.push("forged.replace is not in the body".into());
            }
            body = body.replacen(from, to, 1);
        }
        let mut o = owned(v, Some(body));
        for (k, value) in forged["headers"].as_object().into_iter().flatten() {
            o.headers.insert(
                HeaderName::from_bytes(k.as_bytes()).expect("header name"),
                HeaderValue::from_str(value.as_str().unwrap_or_default()).expect("header value"),
            );
        }
        match block_on(g.verify(&o.request())) {
            Ok(_) => problems.push("the forged variant was accepted".into()),
            Err(e) if Some(e.code()) != v["forged_code"].as_str() => {
                problems.push(format!(
                    "forged refused with {}, expected {}",
                    e.code(),
                    v["forged_code"]
                ));
            }
            Err(_) => {}
        }
    } else if v["origin"] == "computed" {
        problems.push("a computed vector without a forged variant".into());
    }
    problems
}

fn check_handshake(name: &str, h: &Value) -> Vec<String> {
    let g = match source(name, h) {
        Ok(g) => g,
        Err(e) => return vec![format!("config: {e}")],
    };
    let o = owned(h, None);
    let request = o.request();
    let status = h["status"].as_u64().unwrap_or(200);
    let verified = block_on(g.verify(&request));
    match (verified, status) {
        (Err(_), 401) => Vec::new(),
        (Err(e), _) => vec![format!("refused: {}", e.code())],
        (Ok(_), 401) => vec!["accepted a handshake with a wrong credential".into()],
        (Ok(verified), _) => match block_on(g.map("t", verified)) {
            Ok(Mapped::Answer(answer)) => {
                let mut problems = Vec::new();
                let want = h["body"].as_str().unwrap_or_default();
                let same = if h["body_is_json"].as_bool() == Some(true) {
                    serde_json::from_str::<Value>(&answer.body).ok()
                        == serde_json::from_str::<Value>(want).ok()
                } else {
                    answer.body == want
                };
                if !same {
                    problems.push(format!("answered {:?}, expected {want:?}", answer.body));
                }
                let media = answer.content_type.split(';').next().unwrap_or_default();
                if let Some(ct) = h["content_type"].as_str()
                    && media != ct
                {
                    problems.push(format!("content type {media}, expected {ct}"));
                }
                for (k, v) in h["headers"].as_object().into_iter().flatten() {
                    let found = answer.headers.iter().any(|(n, value)| {
                        n.eq_ignore_ascii_case(k) && Some(value.as_str()) == v.as_str()
                    });
                    if !found {
                        problems.push(format!("no response header {k}: {v}"));
                    }
                }
                problems
            }
            other => vec![format!("not answered as a handshake: {other:?}")],
        },
    }
}

#[test]
fn every_preset_passes_its_vectors_and_answers_its_handshakes() {
    let all: serde_json::Map<String, Value> = serde_json::from_str(VECTORS).expect("vectors.json");
    let mut failures = Vec::new();
    let mut rows = Vec::new();
    for preset in PRESETS {
        let name = preset.name;
        let Some(entry) = all.get(name) else {
            failures.push(format!("{name}: no vectors"));
            continue;
        };
        let vectors = entry["vectors"].as_array().cloned().unwrap_or_default();
        if !vectors.iter().any(|v| v["origin"] == "computed") {
            failures.push(format!("{name}: no computed vector"));
        }
        let handshakes = entry["handshakes"].as_array().cloned().unwrap_or_default();
        if preset.defaults.contains("handshake =") && handshakes.is_empty() {
            failures.push(format!("{name}: a handshake with no vector"));
        }
        for v in &vectors {
            for p in check_vector(name, v) {
                failures.push(format!(
                    "{name} ({}): {p}",
                    v["origin"].as_str().unwrap_or("?")
                ));
            }
        }
        for h in &handshakes {
            for p in check_handshake(name, h) {
                failures.push(format!(
                    "{name} handshake ({}): {p}",
                    h["about"].as_str().unwrap_or("?")
                ));
            }
        }
        let origins: Vec<&str> = vectors
            .iter()
            .filter_map(|v| v["origin"].as_str())
            .collect();
        rows.push(format!(
            "{name:<18} {:<20} handshakes {}",
            origins.join("+"),
            handshakes.len()
        ));
    }
    println!(
        "preset             vectors              \n{}",
        rows.join("\n")
    );
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
