//! The golden fixtures as data: loading them, building (and signing) each one's request, its
//! forged variant, its source's config, and the secrets it involves.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{KeyInit, Mac};
use serde_json::Value;

use super::FIXTURES;

pub struct Golden {
    pub name: String,
    pub spec: Value,
}

pub fn load_goldens() -> Vec<Golden> {
    let dir = format!("{FIXTURES}/golden");
    let mut goldens: Vec<Golden> = std::fs::read_dir(&dir)
        .expect("golden fixtures directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p)
                .expect("read golden")
                .replace("{{fixtures}}", FIXTURES);
            Golden {
                name: p.file_stem().expect("stem").to_string_lossy().into_owned(),
                spec: serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}", p.display())),
            }
        })
        .collect();
    goldens.extend(preset_goldens());
    goldens.sort_by(|a, b| a.name.cmp(&b.name));
    goldens
}

/// Every preset's computed vector (`tests/fixtures/presets/vectors.json`) as a golden named
/// `preset-<name>`. The vectors are signed for a fixed time, so the golden's source widens the
/// replay window: the window itself is the unit vectors' business, delivery is this test's.
fn preset_goldens() -> Vec<Golden> {
    let mut out = Vec::new();
    for (name, entry) in preset_vectors() {
        let Some(v) = entry["vectors"]
            .as_array()
            .and_then(|vs| vs.iter().find(|v| v["origin"] == "computed"))
        else {
            continue;
        };
        let mut verify = v["verify"].clone();
        verify["tolerance_secs"] = serde_json::json!(4_000_000_000u64);
        let expect = &v["expect"];
        let event_type = expect["type"].as_str().unwrap_or_default();
        let mut record = serde_json::json!({
            "type": event_type,
            "provider_type": event_type,
        });
        for key in ["id", "subject"] {
            if expect[key].is_string() {
                record[key] = expect[key].clone();
            }
        }
        if let Some(delivery) = expect["delivery_id"].as_str() {
            record["attributes"] = serde_json::json!({ "delivery_id": delivery });
        }
        // A reply with an empty body (Xero, Airtable) has no code to compare.
        let empty_reply = answers_with_an_empty_body(&name);
        let mut forged = serde_json::json!({
            "replace": v["forged"]["replace"].clone(),
            "headers": v["forged"]["headers"].clone(),
            "status": 401,
        });
        if !empty_reply {
            forged["code"] = v["forged_code"].clone();
        }
        let topic_type: String = event_type
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        out.push(Golden {
            name: format!("preset-{name}"),
            spec: serde_json::json!({
                "about": v["about"],
                "provider": name,
                "verify": verify,
                "env": v["env"],
                "request": v["request"],
                "expect": { "status": 200, "record": record, "topic_type": topic_type },
                "forged": forged,
            }),
        });
    }
    out
}

/// True for a preset whose defaults answer with an empty body (`reply = "empty"`).
pub fn answers_with_an_empty_body(preset: &str) -> bool {
    hookbridge::providers::generic::PRESETS
        .iter()
        .find(|p| p.name == preset)
        .and_then(|p| p.defaults.parse::<toml::Table>().ok())
        .is_some_and(|t| t.get("reply").and_then(toml::Value::as_str) == Some("empty"))
}

/// `tests/fixtures/presets/vectors.json`: by preset, its vectors and handshakes.
pub fn preset_vectors() -> serde_json::Map<String, Value> {
    let text = std::fs::read_to_string(format!("{FIXTURES}/presets/vectors.json"))
        .expect("preset vectors");
    serde_json::from_str(&text).expect("vectors.json")
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac =
        <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

fn to_toml(v: &Value) -> toml::Value {
    match v {
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Number(n) => n.as_i64().map_or_else(
            || toml::Value::Float(n.as_f64().unwrap_or(0.0)),
            toml::Value::Integer,
        ),
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Array(a) => toml::Value::Array(a.iter().map(to_toml).collect()),
        Value::Object(o) => {
            toml::Value::Table(o.iter().map(|(k, v)| (k.clone(), to_toml(v))).collect())
        }
        Value::Null => toml::Value::String(String::new()),
    }
}

/// A request ready to send.
pub struct Prepared {
    pub headers: Vec<(String, String)>,
    pub query: String,
    pub body: Vec<u8>,
}

/// Builds the request of a golden, signing it now where the fixture asks.
pub fn prepare(g: &Golden) -> Prepared {
    prepare_at(g, time::OffsetDateTime::now_utc().unix_timestamp())
}

/// Builds the request of a golden, signing it as if at `now` (Unix seconds) where the fixture asks.
pub fn prepare_at(g: &Golden, now: i64) -> Prepared {
    let request = &g.spec["request"];
    let mut headers: Vec<(String, String)> = request["headers"]
        .as_object()
        .map(|h| {
            h.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let query = request["query"].as_str().unwrap_or_default().to_owned();
    let mut body = match (request["body"].as_str(), request["body_file"].as_str()) {
        (Some(b), _) => b.as_bytes().to_vec(),
        (None, Some(f)) => std::fs::read(format!("{FIXTURES}/{f}")).expect("body_file"),
        (None, None) => Vec::new(),
    };
    let sign = &g.spec["sign"];
    if sign.is_object() {
        let secret = g.spec["env"][sign["secret_env"].as_str().expect("secret_env")]
            .as_str()
            .expect("secret")
            .to_owned();
        match sign["scheme"].as_str().expect("scheme") {
            "cronofy" => headers.push((
                "Cronofy-HMAC-SHA256".into(),
                STANDARD.encode(hmac_sha256(secret.as_bytes(), &[&body])),
            )),
            "stripe" => {
                let mac = hmac_sha256(secret.as_bytes(), &[format!("{now}.").as_bytes(), &body]);
                headers.push((
                    "Stripe-Signature".into(),
                    format!("t={now},v1={}", hex::encode(mac)),
                ));
            }
            "standard_webhooks" => {
                let key = STANDARD
                    .decode(secret.trim_start_matches("whsec_"))
                    .expect("whsec secret");
                let id = sign["id"].as_str().expect("id");
                let mac = hmac_sha256(&key, &[format!("{id}.{now}.").as_bytes(), &body]);
                headers.push(("webhook-id".into(), id.to_owned()));
                headers.push(("webhook-timestamp".into(), now.to_string()));
                headers.push((
                    "webhook-signature".into(),
                    format!("v1,{}", STANDARD.encode(mac)),
                ));
            }
            "salesking" => {
                let rfc = |t: i64| {
                    time::OffsetDateTime::from_unix_timestamp(t)
                        .expect("time")
                        .format(&time::format_description::well_known::Rfc3339)
                        .expect("format")
                };
                let json = serde_json::to_string(&sign["json"])
                    .expect("json")
                    .replace("{{now}}", &rfc(now))
                    .replace("{{now+3600}}", &rfc(now + 3600));
                let payload = URL_SAFE_NO_PAD.encode(json.as_bytes());
                let mac = hex::encode(hmac_sha256(secret.as_bytes(), &[payload.as_bytes()]));
                body = format!("signed_request={mac}.{payload}").into_bytes();
            }
            other => panic!("{}: unknown sign scheme {other}", g.name),
        }
    }
    Prepared {
        headers,
        query,
        body,
    }
}

/// The golden's forged variant: the prepared request altered after signing, as an attacker would.
pub fn forge(g: &Golden, mut prepared: Prepared) -> Prepared {
    let f = &g.spec["forged"];
    if let Some([from, to]) = f["replace"].as_array().map(|a| {
        [
            a[0].as_str().unwrap_or_default(),
            a[1].as_str().unwrap_or_default(),
        ]
    }) {
        let body = String::from_utf8_lossy(&prepared.body).into_owned();
        assert!(
            body.contains(from),
            "{}: forged.replace needle not in body",
            g.name
        );
        prepared.body = body.replacen(from, to, 1).into_bytes();
    }
    if f["replace_last_char"].as_bool() == Some(true) {
        let last = prepared.body.last_mut().expect("non-empty body");
        *last = if *last == b'A' { b'B' } else { b'A' };
    }
    if let Some(q) = f["query"].as_str() {
        prepared.query = q.to_owned();
    }
    for name in f["drop_headers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        prepared
            .headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    }
    for (k, v) in f["headers"].as_object().into_iter().flatten() {
        prepared.headers.retain(|(h, _)| !h.eq_ignore_ascii_case(k));
        prepared
            .headers
            .push((k.clone(), v.as_str().unwrap_or_default().to_owned()));
    }
    prepared
}

/// `sources.<name>` for a golden, publishing to `publisher`.
pub fn source_toml(g: &Golden, source: &str, publisher: &str, prefix: &str) -> String {
    let mut table = toml::Table::new();
    table.insert(
        "provider".into(),
        toml::Value::String(g.spec["provider"].as_str().expect("provider").into()),
    );
    table.insert("publisher".into(), toml::Value::String(publisher.into()));
    table.insert(
        "topic".into(),
        toml::Value::String(format!("{prefix}.{{source}}.{{type}}")),
    );
    table.insert("verify".into(), to_toml(&g.spec["verify"]));
    let mut sources = toml::Table::new();
    sources.insert(source.into(), toml::Value::Table(table));
    let mut root = toml::Table::new();
    root.insert("sources".into(), toml::Value::Table(sources));
    toml::to_string(&root).expect("source toml")
}

/// Every secret a golden involves: its env values and any it lists as carried in the request.
pub fn secrets_of(g: &Golden) -> Vec<String> {
    let mut secrets: Vec<String> = g.spec["env"]
        .as_object()
        .map(|e| {
            e.values()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if let Some(extra) = g.spec["secrets_in_request"].as_array() {
        secrets.extend(extra.iter().filter_map(|v| v.as_str().map(str::to_owned)));
    }
    secrets
}
