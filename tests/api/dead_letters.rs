//! Dead letters and redrive: a webhook that a (mis)configured mapping cannot map is kept on the
//! dead-letter topic; after the mapping is fixed, `hookbridge redrive` publishes it, once.

use std::process::Command;
use std::time::Duration;

use crate::brokers::{NatsServer, TempDir};
use crate::consumers::{read_nats, read_raw_nats};
use crate::helpers::{spawn_with_config, unique};

const TOKEN: &str = "acme-token-5521";

fn config(nats: &str, stream: &str, prefix: &str, type_pointer: &str) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 1\n\n\
         [publishers.nats]\nkind = \"nats\"\nurl = \"{nats}\"\nstream = \"{stream}\"\nsubjects = [\"{prefix}.>\"]\n\n\
         [sources.acme]\nprovider = \"generic\"\npublisher = \"nats\"\ntopic = \"{prefix}.{{source}}.{{type}}\"\n\
         dead_letter_topic = \"{prefix}.dead_letter.{{source}}\"\n\
         [sources.acme.verify]\nscheme = \"token\"\nheader = \"X-Acme-Token\"\nsecrets = [\"env:ACME\"]\n\
         type_pointer = \"{type_pointer}\"\nid_pointer = \"/id\"\n"
    )
}

fn redrive(config_path: &std::path::Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hookbridge"))
        .args([
            "redrive",
            "--source",
            "acme",
            "--idle-ms",
            "700",
            "--config",
        ])
        .arg(config_path)
        .env_clear()
        .env("ACME", TOKEN)
        .output()
        .expect("run hookbridge redrive");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test]
async fn a_dead_letter_is_redriven_once_after_the_mapping_is_fixed() {
    let nats = NatsServer::start();
    let (stream, prefix) = (unique("DL"), unique("dl"));
    let env = std::collections::HashMap::from([("ACME".to_owned(), TOKEN.to_owned())]);
    // The operator points type_pointer at the wrong field: nothing can be mapped.
    let broken = config(&nats.url(), &stream, &prefix, "/kind");
    let app = spawn_with_config(&broken, &env, stream.clone(), prefix.clone()).await;
    let body = r#"{"id":"evt_42","type":"invoice.paid","amount":1200}"#;
    let response = app
        .http
        .post(app.url("/webhooks/acme"))
        .header("X-Acme-Token", TOKEN)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let letters = read_raw_nats(
        &nats.url(),
        &stream,
        &format!("{prefix}.dead_letter.acme"),
        1,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(letters.len(), 1);
    let letter = hookbridge::dead_letter::DeadLetterCodec::get()
        .unwrap()
        .decode(&letters[0].1)
        .unwrap();
    assert_eq!(
        (letter.stage.as_str(), letter.reason_code.as_str()),
        ("map", "missing_field")
    );
    assert!(
        !letter.headers.contains_key("x-acme-token"),
        "a static credential is never kept"
    );
    assert!(!String::from_utf8_lossy(&letters[0].1).contains(TOKEN));

    // The mapping is fixed; redrive publishes the event, and a second redrive adds nothing.
    let dir = TempDir::new("redrive");
    let fixed = dir.path().join("fixed.toml");
    std::fs::write(&fixed, config(&nats.url(), &stream, &prefix, "/type")).unwrap();
    let (ok, out) = redrive(&fixed);
    assert!(ok && out.contains("matched 1, published 1"), "{out}");
    let (ok_again, out_again) = redrive(&fixed);
    assert!(ok_again, "{out_again}");

    let events = read_nats(
        &nats.url(),
        &stream,
        &format!("{prefix}.acme.>"),
        1,
        Duration::from_secs(10),
    )
    .await;
    println!(
        "redrive: dead letters 1, redriven twice, events consumed {}",
        events.len()
    );
    assert_eq!(events.len(), 1, "appears once");
    assert_eq!(events[0].string("type"), "invoice.paid");
    assert_eq!(events[0].string("id"), "evt_42");
}
