//! Handshakes over HTTP: every preset's handshake vectors (`tests/fixtures/presets/vectors.json`,
//! computed by `make_vectors.py` from each provider's documentation) sent to a running gateway.
//! Each is answered exactly as documented (status, media type, body, headers), a handshake with a
//! wrong credential is refused, every answer is counted in `hookbridge_handshakes_total`, and
//! nothing reaches the broker. A GET to a source whose handshake is not a GET is refused 405.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use crate::brokers::NatsServer;
use crate::consumers::read_nats;
use crate::golden::preset_vectors;
use crate::helpers::{spawn_with_config, unique};

#[tokio::test]
async fn handshakes_are_answered_as_documented_counted_and_never_published() {
    let nats = NatsServer::start();
    let stream = unique("H");
    let prefix = unique("h");
    let all = preset_vectors();
    let mut config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 1\n\n\
         [publishers.nats]\nkind = \"nats\"\nurl = \"{}\"\nstream = \"{stream}\"\nsubjects = [\"{prefix}.>\"]\n",
        nats.url()
    );
    let mut env = HashMap::new();
    let mut cases = Vec::new();
    for (name, entry) in &all {
        for (i, h) in entry["handshakes"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let source = format!("hs-{name}-{i}");
            let mut verify = h["verify"].clone();
            // Signed for a fixed time: the window is the unit vectors' business.
            verify["tolerance_secs"] = serde_json::json!(4_000_000_000u64);
            let table = serde_json::json!({ "sources": { source.clone(): {
                "provider": name, "publisher": "nats",
                "topic": format!("{prefix}.{{source}}.{{type}}"),
                "verify": verify,
            }}});
            let table: toml::Table = toml::Table::try_from(&table).expect("toml");
            config.push('\n');
            config.push_str(&toml::to_string(&table).expect("toml text"));
            for (k, v) in h["env"].as_object().into_iter().flatten() {
                env.insert(k.clone(), v.as_str().unwrap_or_default().to_owned());
            }
            cases.push((name.clone(), source, h.clone()));
        }
    }
    assert!(
        cases.len() >= 9,
        "the nine handshakes have vectors: {}",
        cases.len()
    );
    let app = spawn_with_config(&config, &env, stream.clone(), prefix.clone()).await;
    app.wait_ready(200, Duration::from_secs(15)).await;

    let mut failures = Vec::new();
    let mut table = Vec::new();
    let mut answered: HashMap<String, f64> = HashMap::new();
    for (name, source, h) in &cases {
        let r = &h["request"];
        let query = r["query"].as_str().unwrap_or_default();
        let url = app.url(&format!("/webhooks/{source}?{query}"));
        let mut request = match r["method"].as_str() {
            Some("GET") => app.http.get(url),
            _ => app.http.post(url),
        };
        for (k, v) in r["headers"].as_object().into_iter().flatten() {
            request = request.header(k, v.as_str().unwrap_or_default());
        }
        let response = request
            .body(r["body"].as_str().unwrap_or_default().to_owned())
            .send()
            .await
            .expect("gateway answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.unwrap_or_default();
        let mut problems = Vec::new();
        let want_status = h["status"].as_u64().unwrap_or(200) as u16;
        if status != want_status {
            problems.push(format!("status {status}, expected {want_status}: {body}"));
        }
        if want_status == 200 {
            *answered.entry(source.clone()).or_default() += 1.0;
            let want = h["body"].as_str().unwrap_or_default();
            let same = if h["body_is_json"].as_bool() == Some(true) {
                serde_json::from_str::<Value>(&body).ok()
                    == serde_json::from_str::<Value>(want).ok()
            } else {
                body == want
            };
            if !same {
                problems.push(format!("body {body:?}, expected {want:?}"));
            }
            let media = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(';').next())
                .unwrap_or_default();
            if let Some(ct) = h["content_type"].as_str()
                && media != ct
            {
                problems.push(format!("content type {media:?}, expected {ct}"));
            }
            for (k, v) in h["headers"].as_object().into_iter().flatten() {
                if headers.get(k.as_str()).and_then(|x| x.to_str().ok()) != v.as_str() {
                    problems.push(format!("response header {k} is not {v}"));
                }
            }
        }
        table.push(format!(
            "{name:<16} {status:>3} {}",
            if problems.is_empty() { "ok" } else { "FAILED" }
        ));
        if !problems.is_empty() {
            failures.push(format!("{name} ({}): {}", h["about"], problems.join("; ")));
        }
    }
    println!("handshake        status\n{}", table.join("\n"));
    for (source, count) in &answered {
        let kind = source
            .trim_start_matches("hs-")
            .rsplit_once('-')
            .map_or("", |(k, _)| k);
        let got = app.metric(
            "hookbridge_handshakes_total",
            &[("source", source), ("handshake", kind)],
        );
        if got != *count {
            failures.push(format!(
                "{source}: hookbridge_handshakes_total {got}, expected {count}"
            ));
        }
    }
    // A GET where the handshake is a POST (Slack's) is not a way in.
    let get = app
        .http
        .get(app.url("/webhooks/hs-slack-0"))
        .send()
        .await
        .expect("gateway answers");
    if get.status().as_u16() != 405 {
        failures.push(format!("GET on a POST-handshake source: {}", get.status()));
    }
    let published = read_nats(
        &nats.url(),
        &stream,
        &format!("{prefix}.>"),
        1,
        Duration::from_secs(2),
    )
    .await;
    if !published.is_empty() {
        failures.push(format!("{} handshakes were published", published.len()));
    }
    assert!(
        failures.is_empty(),
        "handshakes failed:\n{}",
        failures.join("\n")
    );
}
