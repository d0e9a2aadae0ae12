//! Golden fixtures, one per provider (`tests/fixtures/golden/*.json`): a source's config, a request
//! in, and the reply and published record expected out. Every fixture runs end to end through both
//! real brokers, and every reply, record and header is scanned for the secrets the fixture uses.
//!
//! Fixtures whose scheme signs a timestamp carry a `sign` directive instead of a frozen signature:
//! the signature is computed here, at the current time, by code independent of the gateway's.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use apache_avro::types::Value as Avro;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{KeyInit, Mac};
use serde_json::Value;

use crate::brokers::{KafkaBroker, NatsServer};
use crate::consumers::{Consumed, read_kafka, read_nats};
use crate::helpers::{spawn_with_config, unique};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

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
    goldens.sort_by(|a, b| a.name.cmp(&b.name));
    goldens
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

async fn send(app: &crate::helpers::TestApp, source: &str, prepared: Prepared) -> (u16, String) {
    let mut request = app
        .http
        .post(app.url(&format!("/webhooks/{source}?{}", prepared.query)))
        .body(prepared.body);
    for (k, v) in &prepared.headers {
        request = request.header(k, v);
    }
    let response = request.send().await.expect("request reaches the gateway");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

/// Every golden, through NATS JetStream and through Kafka: status, reply, one record per broker
/// with the expected fields, and no secret anywhere in what left the gateway.
#[tokio::test]
async fn golden_fixtures_publish_once_through_both_brokers_and_forgeries_are_refused() {
    let nats = NatsServer::start();
    let kafka = KafkaBroker::shared();
    let goldens = load_goldens();
    assert!(goldens.len() >= 9, "every provider has a golden fixture");
    let stream = unique("G");
    let prefix = unique("g");
    // Docplanner never resends, so its sources spool (the config check refuses them otherwise).
    let spool = crate::brokers::TempDir::new("golden-spool");
    let mut config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 1\npublish_timeout_ms = 5000\nhealth_interval_ms = 200\n\n\
         [spool]\npath = \"{}\"\n\n\
         [publishers.nats]\nkind = \"nats\"\nurl = \"{}\"\nstream = \"{stream}\"\nsubjects = [\"{prefix}.>\"]\n\n\
         [publishers.kafka]\nkind = \"kafka\"\nbootstrap_servers = \"{}\"\ntopic_partitions = 1\n",
        spool.path().display(),
        nats.url(),
        kafka.bootstrap()
    );
    let mut env = HashMap::new();
    for g in &goldens {
        for (publisher, suffix) in [("nats", "n"), ("kafka", "k")] {
            config.push('\n');
            config.push_str(&source_toml(
                g,
                &format!("{}-{suffix}", g.name),
                publisher,
                &prefix,
            ));
        }
        for (k, v) in g.spec["env"].as_object().into_iter().flatten() {
            env.insert(k.clone(), v.as_str().unwrap_or_default().to_owned());
        }
    }
    let app = spawn_with_config(&config, &env, stream.clone(), prefix.clone()).await;
    app.wait_ready(200, Duration::from_secs(15)).await;

    let mut table = Vec::new();
    let mut failures = Vec::new();
    for g in &goldens {
        let expect = &g.spec["expect"];
        let event_type = expect["record"]["type"].as_str().expect("expected type");
        for (broker, suffix) in [("nats", "n"), ("kafka", "k")] {
            let source = format!("{}-{suffix}", g.name);
            let mut problems = Vec::new();
            // The forged request goes first: the read-back below then proves it published nothing.
            let forged = forge(g, prepare(g));
            let (forged_status, forged_reply) = send(&app, &source, forged).await;
            let f = &g.spec["forged"];
            if forged_status != f["status"].as_u64().unwrap_or(401) as u16 {
                problems.push(format!(
                    "forged request answered {forged_status}: {forged_reply}"
                ));
            }
            let forged_json: Value = serde_json::from_str(&forged_reply).unwrap_or(Value::Null);
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
            let (status, reply) = send(&app, &source, prepare(g)).await;
            if status != expect["status"].as_u64().unwrap_or(200) as u16 {
                problems.push(format!("status {status}: {reply}"));
            }
            if expect["reply"].is_object() {
                let got: Value = serde_json::from_str(&reply).unwrap_or(Value::Null);
                if got != expect["reply"] {
                    problems.push(format!("reply {reply}, expected {}", expect["reply"]));
                }
            }
            let topic = format!("{prefix}.{source}.{event_type}");
            let events = match broker {
                "nats" => read_nats(&nats.url(), &stream, &topic, 1, Duration::from_secs(10)).await,
                _ => read_kafka(&kafka.bootstrap(), &topic, 1, Duration::from_secs(10)).await,
            };
            if events.len() != 1 {
                problems.push(format!("{} records on {topic}, expected 1", events.len()));
            }
            for event in &events {
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
            if secrets_of(g)
                .iter()
                .any(|s| reply.contains(s.as_str()) || forged_reply.contains(s.as_str()))
            {
                problems.push("the reply echoes a secret".into());
            }
            table.push(format!(
                "{:<18} {:<6} {:>3} {}",
                g.name,
                broker,
                status,
                if problems.is_empty() { "ok" } else { "FAILED" }
            ));
            if !problems.is_empty() {
                failures.push(format!("{} via {broker}: {}", g.name, problems.join("; ")));
            }
        }
    }
    println!("golden fixture   broker status\n{}", table.join("\n"));
    assert!(
        failures.is_empty(),
        "golden fixtures failed:\n{}",
        failures.join("\n")
    );
    // The SNS fixtures' certificate came from cert_dir once per source, then from the cache.
    for source in ["timetap-sns-n", "timetap-sns-k"] {
        let hits = app.metric(
            "hookbridge_sns_certificate_cache_hits_total",
            &[("source", source)],
        );
        assert!(hits >= 1.0, "{source}: certificate cache hits {hits}");
        assert_eq!(
            app.metric(
                "hookbridge_sns_certificate_fetches_total",
                &[("source", source)]
            ),
            0.0,
            "no network"
        );
    }
}
