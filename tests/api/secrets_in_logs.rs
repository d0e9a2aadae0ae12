//! No secret in any log line: the real binary, at debug level, handles every golden fixture
//! (genuine and forged) and its whole output is scanned for every secret the fixtures use.

use std::collections::HashMap;

use crate::brokers::{NatsServer, TempDir, free_port};
use crate::golden::{forge, load_goldens, prepare, secrets_of, source_toml};
use crate::helpers::{spawn_binary, unique, wait_for_status};

#[tokio::test]
async fn debug_logs_of_every_provider_contain_no_secret() {
    let nats = NatsServer::start();
    let dir = TempDir::new("logs");
    let port = free_port();
    let stream = unique("L");
    let prefix = unique("l");
    let goldens = load_goldens();
    let mut config = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nworkers = 1\nlog_format = \"json\"\n\n\
         [spool]\npath = \"{}\"\n\n\
         [publishers.nats]\nkind = \"nats\"\nurl = \"{}\"\nstream = \"{stream}\"\nsubjects = [\"{prefix}.>\"]\n",
        dir.path().join("spool").display(),
        nats.url()
    );
    let mut env = HashMap::new();
    let mut forbidden = Vec::new();
    for g in &goldens {
        config.push('\n');
        config.push_str(&source_toml(g, &g.name, "nats", &prefix));
        for (k, v) in g.spec["env"].as_object().into_iter().flatten() {
            env.insert(k.clone(), v.as_str().unwrap_or_default().to_owned());
        }
        forbidden.extend(secrets_of(g));
    }
    let config_path = dir.path().join("hookbridge.toml");
    std::fs::write(&config_path, config).unwrap();
    let log_path = dir.path().join("hookbridge.log");
    let env_pairs: Vec<(&str, &str)> = env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain([("RUST_LOG", "debug")])
        .collect();
    let mut child = spawn_binary(&config_path, &env_pairs, &log_path);
    hookbridge::startup::install_crypto_provider();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    wait_for_status(&http, &format!("{base}/readyz"), 200, Some(&log_path)).await;
    let mut published = 0;
    for g in &goldens {
        // A body that carries a secret inside (SalesKing's token, base64) must not be logged either.
        if g.spec["secrets_in_request"].is_array() {
            forbidden.push(String::from_utf8_lossy(&prepare(g).body).into_owned());
        }
        for prepared in [forge(g, prepare(g)), prepare(g)] {
            let mut request = http
                .post(format!("{base}/webhooks/{}?{}", g.name, prepared.query))
                .body(prepared.body);
            for (k, v) in &prepared.headers {
                request = request.header(k, v);
            }
            if request.send().await.expect("request").status().is_success() {
                published += 1;
            }
        }
    }
    let _stopped = child.kill();
    let _reaped = child.wait();
    let logs = std::fs::read_to_string(&log_path).unwrap();

    assert_eq!(
        published,
        goldens.len(),
        "each genuine request published, each forgery refused"
    );
    // The scan only means something if the gateway did log what happened.
    assert!(
        logs.matches("\"published\"").count() >= goldens.len(),
        "expected a log line per published event:\n{logs}"
    );
    assert!(
        logs.contains("webhook not published"),
        "expected the refusals to be logged:\n{logs}"
    );
    for secret in &forbidden {
        assert!(
            !logs.contains(secret.as_str()),
            "a secret ({} chars) appears in the logs",
            secret.len()
        );
    }
    println!(
        "scanned {} log bytes for {} secrets: none found",
        logs.len(),
        forbidden.len()
    );
}
