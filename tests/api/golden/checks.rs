//! What a golden's answers and records are checked against: the forged request's reply, the
//! record's fields, and no secret of the fixture in what was published.

use std::collections::{BTreeMap, HashMap};

use apache_avro::types::Value as Avro;
use serde_json::Value;

use super::fixtures::{Golden, secrets_of};
use crate::consumers::Consumed;

fn text_of(v: &Avro) -> Option<String> {
    match v {
        Avro::String(s) => Some(s.clone()),
        Avro::Union(_, inner) => text_of(inner),
        Avro::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
}

/// Compares a consumed record with a golden's `expect.record`; returns the mismatches.
pub fn check_record(g: &Golden, event: &Consumed) -> Vec<String> {
    let expect = &g.spec["expect"]["record"];
    let mut problems = Vec::new();
    for key in ["id", "type", "provider_type", "subject", "payload"] {
        if let Some(want) = expect[key].as_str() {
            let got = event.record.get(key).and_then(text_of);
            if got.as_deref() != Some(want) {
                problems.push(format!("{key}: expected {want:?}, got {got:?}"));
            }
        }
    }
    if let Some(attrs) = expect["attributes"].as_object() {
        let got: BTreeMap<String, String> = match event.record.get("attributes") {
            Some(Avro::Map(m)) => m
                .iter()
                .filter_map(|(k, v)| text_of(v).map(|t| (k.clone(), t)))
                .collect(),
            _ => BTreeMap::new(),
        };
        for (k, v) in attrs {
            if got.get(k).map(String::as_str) != v.as_str() {
                problems.push(format!("attribute {k}: expected {v}, got {:?}", got.get(k)));
            }
        }
    }
    if let Some(data) = expect["data"].as_object() {
        let branch = data["branch"].as_str().unwrap_or_default();
        let index = match branch {
            "CalendarChange" => 1,
            "Appointment" => 2,
            "CrmRecord" => 3,
            other => panic!("unknown branch {other}"),
        };
        match event.record.get("data") {
            Some(Avro::Union(i, record)) if *i == index => {
                let fields: HashMap<String, Avro> = match record.as_ref() {
                    Avro::Record(f) => f.iter().cloned().collect(),
                    _ => HashMap::new(),
                };
                for (k, v) in data["fields"].as_object().into_iter().flatten() {
                    let got = fields.get(k).and_then(text_of);
                    if got.as_deref() != v.as_str() {
                        problems.push(format!("data.{k}: expected {v}, got {got:?}"));
                    }
                }
            }
            other => problems.push(format!("data: expected the {branch} branch, got {other:?}")),
        }
    }
    problems
}

/// Compares the forged request's answer with the golden's `forged` status, code and reply.
pub(super) fn forged_problems(g: &Golden, forged_status: u16, forged_reply: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let f = &g.spec["forged"];
    if forged_status != f["status"].as_u64().unwrap_or(401) as u16 {
        problems.push(format!(
            "forged request answered {forged_status}: {forged_reply}"
        ));
    }
    let forged_json: Value = serde_json::from_str(forged_reply).unwrap_or(Value::Null);
    if let Some(code) = f["code"].as_str()
        && forged_json["code"] != code
    {
        problems.push(format!(
            "forged request code {}, expected {code}",
            forged_json["code"]
        ));
    }
    if f["reply"].is_object() && forged_json != f["reply"] {
        problems.push(format!(
            "forged reply {forged_reply}, expected {}",
            f["reply"]
        ));
    }
    problems
}

/// Checks what was read back from `topic`: exactly one record, with the expected fields and no
/// secret of the fixture in its bytes or headers.
pub(super) fn published_problems(g: &Golden, topic: &str, events: &[Consumed]) -> Vec<String> {
    let mut problems = Vec::new();
    if events.len() != 1 {
        problems.push(format!("{} records on {topic}, expected 1", events.len()));
    }
    for event in events {
        problems.extend(check_record(g, event));
        for secret in secrets_of(g) {
            let in_raw = event
                .raw
                .windows(secret.len())
                .any(|w| w == secret.as_bytes());
            let in_headers = event.headers.values().any(|v| v.contains(&secret));
            if in_raw || in_headers {
                problems.push(format!(
                    "a secret of the fixture was published ({} chars)",
                    secret.len()
                ));
            }
        }
    }
    problems
}
