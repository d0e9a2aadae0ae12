//! Docplanner reconciliation against the local model of its API (`docplanner_model.rs`): what the
//! push missed is pulled and published once, release is rate-limited, tokens are refreshed, and an
//! API outage does not touch webhook ingestion.
//!
//! This file starts the gateway on the model; the tests are in `pull.rs` (what is pulled, and
//! what is not), `release_and_tokens.rs` (release rate limits and token lifetimes) and
//! `outage_and_reload.rs` (an API outage, and reloads).

mod outage_and_reload;
mod pull;
mod release_and_tokens;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::brokers::{NatsServer, TempDir};
use crate::docplanner_model::DocplannerModel;
use crate::helpers::{TestApp, spawn_with_config, unique};

const API_KEY: &str = "dp-push-key";
const CLIENT_ID: &str = "hookbridge-client";
const CLIENT_SECRET: &str = "model-client-secret";

fn notification(booking: &str) -> Value {
    json!({"name": "slot-booked", "data": {"visit_booking": {"id": booking, "status": "booked"}, "doctor": {"id": "7"}},
           "created_at": "2024-05-01T10:00:00+02:00"})
}

struct Setup {
    nats: NatsServer,
    model: DocplannerModel,
    app: TestApp,
    _spool: TempDir,
    /// The config the app started with, for reloads.
    text: String,
}

impl Setup {
    /// What a config reload does: the same text validated again with `client_secret`, and the
    /// source table swapped on the running pipeline.
    fn reload(&self, text: &str, client_secret: &str) {
        let env = HashMap::from([
            ("DP_KEY".to_owned(), API_KEY.to_owned()),
            ("DP_CLIENT_ID".to_owned(), CLIENT_ID.to_owned()),
            ("DP_CLIENT_SECRET".to_owned(), client_secret.to_owned()),
        ]);
        let raw = hookbridge::config::load_str(text, &env).unwrap();
        let config = hookbridge::config::Config::validate(raw, &env).unwrap();
        let publisher = self.app.pipeline.publishers()[0].clone();
        let sources = config
            .sources
            .into_iter()
            .map(|(name, c)| {
                let metrics = self.app.pipeline.metrics();
                let source = hookbridge::pipeline::Source::new(c, publisher.clone(), metrics);
                (name, std::sync::Arc::new(source))
            })
            .collect();
        self.app.pipeline.replace_sources(sources);
    }
}

async fn setup(pull: bool, release: bool, token_ttl: Duration) -> Setup {
    setup_with(pull, release, token_ttl, &[]).await
}

/// `failed_pushes`: notifications Docplanner already failed to push before the gateway started.
async fn setup_with(
    pull: bool,
    release: bool,
    token_ttl: Duration,
    failed_pushes: &[Value],
) -> Setup {
    let nats = NatsServer::start();
    let model = DocplannerModel::start(CLIENT_ID, CLIENT_SECRET, token_ttl).await;
    for n in failed_pushes {
        model.add_unprocessed(n.clone());
    }
    let (stream, prefix) = (unique("RC"), unique("rc"));
    // The recommended topology: Docplanner never resends, so its source spools (the default
    // whenever a [spool] exists); the config check refuses `reject` without a release.
    let spool = TempDir::new("rc-spool");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 1\nhealth_interval_ms = 200\n\n\
         [spool]\npath = \"{}\"\n\n\
         [publishers.nats]\nkind = \"nats\"\nurl = \"{}\"\nstream = \"{stream}\"\nsubjects = [\"{prefix}.>\"]\n\n\
         [sources.docplanner]\nprovider = \"docplanner\"\npublisher = \"nats\"\ntopic = \"{prefix}.{{provider}}.{{type}}\"\n\
         dead_letter_topic = \"{prefix}.dead_letter.{{source}}\"\n\
         [sources.docplanner.verify]\napi_key_header = \"X-Api-Key\"\napi_keys = [\"env:DP_KEY\"]\n\
         [sources.docplanner.reconcile]\nbase_url = \"{base}/api/v3/integration\"\ntoken_url = \"{base}/oauth/v2/token\"\n\
         client_id = \"env:DP_CLIENT_ID\"\nclient_secret = \"env:DP_CLIENT_SECRET\"\npull = {pull}\nrelease = {release}\ninterval_secs = 1\nbatch = 2\n",
        spool.path().display(),
        nats.url(),
        base = model.base,
    );
    let env = HashMap::from([
        ("DP_KEY".to_owned(), API_KEY.to_owned()),
        ("DP_CLIENT_ID".to_owned(), CLIENT_ID.to_owned()),
        ("DP_CLIENT_SECRET".to_owned(), CLIENT_SECRET.to_owned()),
    ]);
    let app = spawn_with_config(&text, &env, stream, prefix).await;
    model.push_to(&app.url("/webhooks/docplanner"), API_KEY);
    Setup {
        nats,
        model,
        app,
        _spool: spool,
        text,
    }
}

async fn wait_metric(app: &TestApp, name: &str, labels: &[(&str, &str)], at_least: f64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while app.metric(name, labels) < at_least {
        assert!(
            Instant::now() < deadline,
            "{name}{labels:?} stayed at {}",
            app.metric(name, labels)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn subjects(events: &[crate::consumers::Consumed]) -> Vec<String> {
    let mut s: Vec<String> = events.iter().map(|e| e.string("subject")).collect();
    s.sort();
    s
}
