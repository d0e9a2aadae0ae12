//! Golden fixtures, one per provider (`tests/fixtures/golden/*.json`): a source's config, a request
//! in, and the reply and published record expected out. Every fixture runs end to end through both
//! real brokers, and every reply, record and header is scanned for the secrets the fixture uses.
//!
//! Fixtures whose scheme signs a timestamp carry a `sign` directive instead of a frozen signature:
//! the signature is computed here, at the current time, by code independent of the gateway's.
//!
//! The fixtures are read and signed in `fixtures.rs`, what comes back is checked in `checks.rs`;
//! this file runs them through the gateway.

mod checks;
mod fixtures;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use crate::brokers::{KafkaBroker, NatsServer};
use crate::consumers::{read_kafka, read_nats};
use crate::helpers::{TestApp, spawn_with_config, unique};
use checks::{forged_problems, published_problems};
pub use fixtures::{
    Golden, Prepared, answers_with_an_empty_body, forge, load_goldens, prepare, prepare_at,
    preset_vectors, secrets_of, source_toml,
};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

async fn send(app: &TestApp, source: &str, prepared: Prepared) -> (u16, String) {
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

/// One golden through one broker: the forged request first, then the real one, then the record
/// read back. Returns the real request's status and everything that was wrong.
async fn run_golden(
    app: &TestApp,
    nats: &NatsServer,
    kafka: &KafkaBroker,
    g: &Golden,
    broker: &str,
    suffix: &str,
) -> (u16, Vec<String>) {
    let (stream, prefix) = (&app.stream, &app.prefix);
    let expect = &g.spec["expect"];
    let event_type = expect["topic_type"]
        .as_str()
        .or(expect["record"]["type"].as_str())
        .expect("expected type");
    let source = format!("{}-{suffix}", g.name);
    let mut problems = Vec::new();
    // The forged request goes first: the read-back below then proves it published nothing.
    let forged = forge(g, prepare(g));
    let (forged_status, forged_reply) = send(app, &source, forged).await;
    problems.extend(forged_problems(g, forged_status, &forged_reply));
    let (status, reply) = send(app, &source, prepare(g)).await;
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
        "nats" => read_nats(&nats.url(), stream, &topic, 1, Duration::from_secs(10)).await,
        _ => read_kafka(&kafka.bootstrap(), &topic, 1, Duration::from_secs(10)).await,
    };
    problems.extend(published_problems(g, &topic, &events));
    if secrets_of(g)
        .iter()
        .any(|s| reply.contains(s.as_str()) || forged_reply.contains(s.as_str()))
    {
        problems.push("the reply echoes a secret".into());
    }
    (status, problems)
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
        for (broker, suffix) in [("nats", "n"), ("kafka", "k")] {
            let (status, problems) = run_golden(&app, &nats, kafka, g, broker, suffix).await;
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
