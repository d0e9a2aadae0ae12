//! The metrics catalogue in the README is the truth: a running gateway with every feature on
//! exposes every documented metric with the documented type, and nothing undocumented. The
//! exposition is parsed by an independent parser (Python's prometheus_client).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use crate::brokers::{NatsServer, TempDir};
use crate::helpers::{CRONOFY_SECRET, cronofy_change, cronofy_sign, spawn_with_config, unique};

const PARSER: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(open(sys.argv[1]).read()):
    for sample in family.samples:
        out.setdefault(sample.name, family.type)
print(json.dumps(out))
"#;

/// Metric names in the README's catalogue table (a row may list several, comma-separated).
fn documented() -> BTreeSet<String> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut names = BTreeSet::new();
    for line in readme.lines().filter(|l| l.starts_with("| `hookbridge_")) {
        let first_cell = line.split('|').nth(1).unwrap_or_default();
        for part in first_cell.split(',') {
            let name = part.trim().trim_matches('`');
            if name.starts_with("hookbridge_") {
                names.insert(name.to_owned());
            }
        }
    }
    names
}

#[tokio::test]
async fn every_documented_metric_is_exposed_and_every_exposed_metric_is_documented() {
    let python = std::env::var("HOOKBRIDGE_PYTHON").expect(
        "HOOKBRIDGE_PYTHON: run through scripts/test, which installs the independent parser",
    );
    let nats = NatsServer::start();
    let dir = TempDir::new("catalogue");
    let (stream, prefix) = (unique("MC"), unique("mc"));
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sns");
    // Every feature on: spool, an SNS source, a reconciler (pointed at nothing: its errors count too).
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 1\nhealth_interval_ms = 200\n\n[spool]\npath = \"{spool}\"\n\n\
         [publishers.nats]\nkind = \"nats\"\nurl = \"{url}\"\nstream = \"{stream}\"\nsubjects = [\"{prefix}.>\"]\n\n\
         [publishers.kafka]\nkind = \"kafka\"\nbootstrap_servers = \"{kafka}\"\n\
         [publishers.kafka.schema_registry]\nurl = \"{registry}\"\n\n\
         [sources.cronofy]\nprovider = \"cronofy\"\npublisher = \"nats\"\ntopic = \"{prefix}.{{provider}}.{{type}}\"\n\
         dead_letter_topic = \"{prefix}.dead_letter.{{source}}\"\n[sources.cronofy.verify]\nclient_secrets = [\"env:C\"]\n\n\
         [sources.timetap]\nprovider = \"timetap\"\npublisher = \"nats\"\ntopic = \"{prefix}.{{provider}}.{{type}}\"\n\
         [sources.timetap.verify]\ntopic_arns = [\"arn:aws:sns:us-west-2:131990247566:dongie-standard-topic\"]\n\
         cert_dir = \"{fixtures}\"\nfetch_certs = false\ncheck_cert_validity = false\ntimestamp_tolerance_secs = 315360000\n\n\
         [sources.docplanner]\nprovider = \"docplanner\"\npublisher = \"nats\"\ntopic = \"{prefix}.{{provider}}.{{type}}\"\n\
         [sources.docplanner.verify]\napi_key_header = \"X-Api-Key\"\napi_keys = [\"env:C\"]\n\
         [sources.docplanner.reconcile]\nbase_url = \"http://127.0.0.1:9/api\"\ntoken_url = \"http://127.0.0.1:9/token\"\n\
         client_id = \"env:C\"\nclient_secret = \"env:C\"\ninterval_secs = 1\n\n\
         [sources.dropbox]\nprovider = \"dropbox\"\npublisher = \"nats\"\n[sources.dropbox.verify]\nsecrets = [\"env:C\"]\n",
        spool = dir.path().join("spool").display(),
        url = nats.url(),
        kafka = crate::brokers::KafkaBroker::shared().bootstrap(),
        registry = crate::brokers::Registry::shared().url(),
    );
    let env = std::collections::HashMap::from([("C".to_owned(), CRONOFY_SECRET.to_owned())]);
    let app = spawn_with_config(&config, &env, stream, prefix).await;
    app.wait_ready(200, Duration::from_secs(5)).await;

    // Traffic that touches the request-path series: published, forged, dead-lettered, SNS.
    let body = cronofy_change("chn_catalogue");
    app.post_cronofy("cronofy", &body, Some(&cronofy_sign(CRONOFY_SECRET, &body)))
        .await;
    app.post_cronofy("cronofy", &body, Some("forged")).await;
    let bad = "{\"not\":\"cronofy\"}";
    app.post_cronofy("cronofy", bad, Some(&cronofy_sign(CRONOFY_SECRET, bad)))
        .await;
    let sns =
        std::fs::read_to_string(format!("{fixtures}/test-notification-with-subject.json")).unwrap();
    let response = app
        .http
        .post(app.url("/webhooks/timetap"))
        .header("content-type", "text/plain")
        .body(sns)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    // A handshake, for its counter.
    let challenge = app
        .http
        .get(app.url("/webhooks/dropbox?challenge=catalogue"))
        .send()
        .await
        .unwrap();
    assert_eq!(challenge.status().as_u16(), 200);
    tokio::time::sleep(Duration::from_millis(1500)).await; // a reconcile round fails and is counted

    let exposition = app.get("/metrics").await.text().await.unwrap();
    let file = dir.path().join("metrics.txt");
    std::fs::write(&file, &exposition).unwrap();
    let output = Command::new(python)
        .arg("-c")
        .arg(PARSER)
        .arg(&file)
        .output()
        .expect("run the parser");
    assert!(
        output.status.success(),
        "the independent parser refused /metrics: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let samples: BTreeMap<String, String> = serde_json::from_slice(&output.stdout).unwrap();

    let mut problems = Vec::new();
    for name in documented() {
        let found = if name.ends_with("_total") {
            samples.get(&name).is_some_and(|t| t == "counter")
        } else if name.ends_with("_seconds") {
            samples
                .get(&format!("{name}_bucket"))
                .is_some_and(|t| t == "histogram")
        } else {
            samples.get(&name).is_some_and(|t| t == "gauge")
        };
        if !found {
            problems.push(format!(
                "documented but not exposed with the documented type: {name}"
            ));
        }
    }
    let documented = documented();
    for sample in samples.keys().filter(|s| s.starts_with("hookbridge_")) {
        let base = ["_bucket", "_sum", "_count", "_created"]
            .iter()
            .find_map(|suffix| sample.strip_suffix(suffix))
            .filter(|b| documented.contains(*b))
            .unwrap_or(sample);
        if !documented.contains(base) {
            problems.push(format!("exposed but not documented: {sample}"));
        }
    }
    println!(
        "{} documented metrics, {} exposed samples",
        documented.len(),
        samples.len()
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
