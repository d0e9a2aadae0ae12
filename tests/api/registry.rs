//! The Kafka publisher with a schema registry (Apicurio's Confluent-compatible API): records in the
//! Confluent wire format, read back by confluent-kafka's group consumer and `AvroDeserializer`
//! (Python, `scripts/consume.py --registry`), every field and header compared with what the
//! gateway's schema says; the registry's compatibility rule accepts every schema version we
//! shipped; and the registry's faults: down at start, down later, refusing our schema.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use crate::brokers::{KafkaBroker, Registry, free_port};
use crate::consumers::read_kafka;
use crate::helpers::{
    CRONOFY_SECRET, TestApp, cronofy_change, cronofy_sign, spawn_with_config, test_env, unique,
};

const WAIT: Duration = Duration::from_secs(20);

fn config(kafka: &str, registry_url: &str, prefix: &str, naming: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 1\npublish_timeout_ms = 3000\nhealth_interval_ms = 200\n\n\
         [publishers.kafka]\nkind = \"kafka\"\nbootstrap_servers = \"{kafka}\"\ntopic_partitions = 1\n\
         [publishers.kafka.schema_registry]\nurl = \"{registry_url}\"\nsubject_naming = \"{naming}\"\ntimeout_ms = 1000\n\n\
         [sources.cronofy]\nprovider = \"cronofy\"\npublisher = \"kafka\"\ntopic = \"{prefix}.{{provider}}.{{type}}\"\n\
         dead_letter_topic = \"{prefix}.dead_letter.{{source}}\"\n\
         [sources.cronofy.verify]\nclient_secrets = [\"env:TEST_CRONOFY_SECRET\"]\n"
    )
}

async fn app(kafka: &str, registry_url: &str, naming: &str) -> TestApp {
    let prefix = unique("rg");
    spawn_with_config(
        &config(kafka, registry_url, &prefix, naming),
        &test_env(),
        unique("RG"),
        prefix,
    )
    .await
}

async fn post(app: &TestApp, body: &str) -> (u16, Value) {
    let response = app
        .post_cronofy("cronofy", body, Some(&cronofy_sign(CRONOFY_SECRET, body)))
        .await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `scripts/consume.py kafka --registry`: confluent-kafka's group consumer and `AvroDeserializer`
/// with a `SchemaRegistryClient`, one JSON object per record.
fn consume_with_registry(
    bootstrap: &str,
    topic: &str,
    registry_url: &str,
    count: usize,
) -> Vec<Value> {
    let python = std::env::var("HOOKBRIDGE_PYTHON")
        .expect("HOOKBRIDGE_PYTHON: run through scripts/test, which installs confluent-kafka");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/consume.py");
    let output = std::process::Command::new(python)
        .args([script, "kafka", "--bootstrap", bootstrap, "--topic", topic])
        .args([
            "--registry",
            registry_url,
            "--count",
            &count.to_string(),
            "--timeout",
            "30",
        ])
        .output()
        .expect("run scripts/consume.py");
    assert!(
        output.status.success(),
        "consume.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect()
}

/// What hookbridge wrote is what a user's registry-aware consumer reads: the Confluent framing
/// with an id the registry resolves to `schemas/event.avsc`, every field equal to the bare datum,
/// every CloudEvents header there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_in_the_confluent_wire_format_are_read_by_avro_deserializer() {
    let kafka = KafkaBroker::shared();
    let registry = Registry::shared();
    let app = app(&kafka.bootstrap(), &registry.url(), "topic").await;
    let body = cronofy_change("chn_registry_1");
    let (status, reply) = post(&app, &body).await;
    assert_eq!(status, 200, "{reply}");
    let topic = app.cronofy_topic("calendar.changed");

    let raw = read_kafka(&kafka.bootstrap(), &topic, 1, WAIT).await;
    assert_eq!(raw.len(), 1);
    let framed = &raw[0].raw;
    assert_eq!(framed[0], 0, "magic byte");
    let id = u32::from_be_bytes(framed[1..5].try_into().unwrap());
    // The id resolves, in the registry, to our schema.
    let schema: Value = reqwest::get(format!("{}/schemas/ids/{id}", registry.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let theirs = apache_avro::Schema::parse_str(schema["schema"].as_str().unwrap()).unwrap();
    assert_eq!(
        theirs.canonical_form(),
        crate::consumers::event_schema().canonical_form()
    );
    let subjects: Vec<String> = reqwest::get(format!("{}/subjects", registry.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(subjects.contains(&format!("{topic}-value")), "{subjects:?}");

    let read = tokio::task::block_in_place(|| {
        consume_with_registry(&kafka.bootstrap(), &topic, &registry.url(), 1)
    });
    assert_eq!(read.len(), 1, "{read:?}");
    let event = &read[0]["event"];
    assert!(read[0]["decode_error"].is_null(), "{}", read[0]);
    // Every field the schema has, decoded by confluent-kafka, equals the datum after the framing.
    let datum = crate::consumers::decode(&crate::consumers::event_schema(), &framed[5..]);
    let schema_fields: std::collections::BTreeSet<&String> = datum.keys().collect();
    let decoded_fields: std::collections::BTreeSet<&String> =
        event.as_object().expect("a record").keys().collect();
    assert_eq!(
        decoded_fields, schema_fields,
        "every field of the schema, decoded"
    );
    assert_eq!(event["id"], reply["event_id"]);
    assert_eq!(event["source"], "cronofy");
    assert_eq!(event["provider"], "cronofy");
    assert_eq!(event["type"], "calendar.changed");
    assert_eq!(event["subject"], "chn_registry_1");
    assert_eq!(event["payload"], body, "the raw body travels as bytes");
    for header in [
        "ce_specversion",
        "ce_id",
        "ce_source",
        "ce_type",
        "ce_time",
        "ce_dataschema",
        "content-type",
        "hookbridge_dedup_key",
    ] {
        assert!(
            !read[0]["headers"][header].is_null(),
            "header {header}: {}",
            read[0]["headers"]
        );
    }
    assert_eq!(read[0]["key"], "chn_registry_1", "record key");
}

/// The compatibility rule users run (BACKWARD, Confluent's default) accepts every event schema we
/// shipped, in order, ending with today's `event.avsc`.
#[tokio::test]
async fn every_shipped_event_schema_is_backward_compatible_in_the_registry() {
    let registry = Registry::shared();
    let subject = unique("compat-") + "-value";
    let http = reqwest::Client::new();
    let config: Value = http
        .put(format!("{}/config/{subject}", registry.url()))
        .json(&serde_json::json!({"compatibility": "BACKWARD"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["compatibility"], "BACKWARD");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/schemas");
    let mut history: Vec<_> = std::fs::read_dir(format!("{dir}/history"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    history.sort();
    history.push(format!("{dir}/event.avsc").into());
    assert!(history.len() >= 2, "a history to be compatible with");
    for path in &history {
        let schema = std::fs::read_to_string(path).unwrap();
        let response = http
            .post(format!("{}/subjects/{subject}/versions", registry.url()))
            .json(&serde_json::json!({"schema": schema}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(
            status,
            200,
            "{} refused after the versions before it: {text}",
            path.display()
        );
    }
    // And the rule is really on: a schema that drops a field without a default is refused.
    let breaking = r#"{"type":"record","name":"Event","namespace":"io.hookbridge.v1","fields":[{"name":"only","type":"string"}]}"#;
    let response = http
        .post(format!("{}/subjects/{subject}/versions", registry.url()))
        .json(&serde_json::json!({"schema": breaking}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 409);
}

/// Down at start: the gateway starts, unready, and answers 503 (nothing written with a guessed
/// id); once the registry answers, it is ready and publishes. Down later: the cached id keeps
/// publishing to a known subject.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_down_at_start_leaves_the_publisher_unready_and_a_cached_id_survives_it_later() {
    let kafka = KafkaBroker::shared();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/apis/ccompat/v7");
    let app = app(&kafka.bootstrap(), &url, "topic").await;
    app.wait_ready(503, Duration::from_secs(5)).await;
    let (status, reply) = post(&app, &cronofy_change("chn_registry_down")).await;
    assert_eq!(status, 503, "{reply}");
    assert!(
        app.metric(
            "hookbridge_schema_registry_errors_total",
            &[("publisher", "kafka"), ("reason", "unavailable")]
        ) >= 1.0
    );
    let topic = app.cronofy_topic("calendar.changed");

    let mut registry = tokio::task::block_in_place(|| Registry::start_on(port));
    app.wait_ready(200, Duration::from_secs(10)).await;
    let (status, reply) = post(&app, &cronofy_change("chn_registry_up")).await;
    assert_eq!(status, 200, "{reply}");

    registry.stop();
    let (status, reply) = post(&app, &cronofy_change("chn_registry_gone")).await;
    assert_eq!(status, 200, "the id is cached: {reply}");
    let events = read_kafka(&kafka.bootstrap(), &topic, 2, WAIT).await;
    let subjects: Vec<String> = events.iter().map(|e| e.string("subject")).collect();
    println!(
        "registry down, up, down: sent 3, answered 2xx 2, consumed {}",
        events.len()
    );
    assert_eq!(
        subjects,
        ["chn_registry_up", "chn_registry_gone"],
        "nothing from before it answered"
    );
    for event in &events {
        assert_eq!(event.raw[0], 0, "every record framed");
    }
}

/// A registry that refuses our schema as incompatible stops start-up with its reason.
#[tokio::test]
async fn an_incompatible_schema_stops_start_up_with_the_registrys_reason() {
    let kafka = KafkaBroker::shared();
    let registry = Registry::shared();
    let prefix = unique("rgx");
    // Someone registered another record under the subject of one of our topics.
    let subject = format!("{prefix}.cronofy.calendar.changed-value");
    let other = r#"{"type":"record","name":"Other","fields":[{"name":"x","type":"string"}]}"#;
    let http = reqwest::Client::new();
    let status = http
        .post(format!("{}/subjects/{subject}/versions", registry.url()))
        .json(&serde_json::json!({"schema": other}))
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success(), "{status}");
    let text = config(&kafka.bootstrap(), &registry.url(), &prefix, "topic");
    let env: HashMap<String, String> = test_env();
    let raw = hookbridge::config::load_str(&text, &env).unwrap();
    let config = hookbridge::config::Config::validate(raw, &env).unwrap();
    let error = match hookbridge::startup::Application::build(config).await {
        Ok(_) => panic!("started although the registry refuses the schema"),
        Err(e) => e.to_string(),
    };
    assert!(
        error.contains("refuses the schema for subject") && error.contains(&subject),
        "{error}"
    );
}

/// A registry that answers with the id of another schema (a misconfigured proxy, a registry shared
/// wrongly): the id is checked before use, so nothing is published with it; the publisher reports
/// unready with the reason counted.
#[tokio::test]
async fn an_id_that_is_not_our_schema_is_never_used() {
    use actix_web::{App, HttpResponse, HttpServer, web};
    let kafka = KafkaBroker::shared();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(|| {
        App::new()
            .route("/subjects", web::get().to(|| async { HttpResponse::Ok().json(Vec::<String>::new()) }))
            .route(
                "/subjects/{subject}/versions",
                web::post().to(|| async { HttpResponse::Ok().json(serde_json::json!({"id": 7})) }),
            )
            .route(
                "/schemas/ids/{id}",
                web::get().to(|| async {
                    HttpResponse::Ok().json(serde_json::json!({
                        "schema": r#"{"type":"record","name":"Other","fields":[{"name":"x","type":"string"}]}"#
                    }))
                }),
            )
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    tokio::spawn(server);

    let app = app(
        &kafka.bootstrap(),
        &format!("http://127.0.0.1:{port}"),
        "topic",
    )
    .await;
    let (status, reply) = post(&app, &cronofy_change("chn_wrong_id")).await;
    assert_eq!(status, 503, "{reply}");
    assert!(
        app.metric(
            "hookbridge_schema_registry_errors_total",
            &[("publisher", "kafka"), ("reason", "wrong_answer")]
        ) >= 1.0
    );
    app.wait_ready(503, Duration::from_secs(5)).await;
    let topic = app.cronofy_topic("calendar.changed");
    let events = read_kafka(&kafka.bootstrap(), &topic, 1, Duration::from_secs(3)).await;
    assert!(
        events.is_empty(),
        "nothing published with a wrong id: {}",
        events.len()
    );
    handle.stop(false).await;
}
