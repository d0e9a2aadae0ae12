//! Docplanner reconciliation against the local model of its API (`docplanner_model.rs`): what the
//! push missed is pulled and published once, release is rate-limited, tokens are refreshed, and an
//! API outage does not touch webhook ingestion.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::brokers::{NatsServer, TempDir};
use crate::consumers::read_nats;
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

/// Notifications Docplanner could not push (only pullable) are pulled page by page until nothing
/// remains, and published once each.
#[tokio::test]
async fn notifications_only_pullable_are_published_once() {
    let s = setup(true, false, Duration::from_secs(3600)).await;
    for b in ["p1", "p2", "p3", "p4", "p5"] {
        s.model.enqueue(notification(b));
    }
    wait_metric(
        &s.app,
        "hookbridge_reconcile_notifications_total",
        &[("source", "docplanner"), ("outcome", "published")],
        5.0,
    )
    .await;
    let events = read_nats(
        &s.nats.url(),
        &s.app.stream,
        &format!("{}.>", s.app.prefix),
        5,
        Duration::from_secs(10),
    )
    .await;
    println!(
        "pull only: queued 5, pulled {}, consumed {}",
        s.app.metric(
            "hookbridge_reconcile_notifications_total",
            &[("outcome", "pulled")]
        ),
        events.len()
    );
    assert_eq!(subjects(&events), ["p1", "p2", "p3", "p4", "p5"]);
    assert_eq!(
        s.model.queued(),
        0,
        "pulled until remaining was 0 (batch of 2: three pages)"
    );
}

/// The same notification pushed (and answered 200) and also pulled is published once: both copies
/// share the dedup key built from its stable fields.
#[tokio::test]
async fn a_notification_pushed_and_pulled_is_published_once() {
    let s = setup(true, false, Duration::from_secs(3600)).await;
    let n = notification("both-ways");
    assert_eq!(s.model.push(n.clone()).await, 200);
    s.model.enqueue(n);
    wait_metric(
        &s.app,
        "hookbridge_reconcile_notifications_total",
        &[("source", "docplanner"), ("outcome", "duplicate")],
        1.0,
    )
    .await;
    let events = read_nats(
        &s.nats.url(),
        &s.app.stream,
        &format!("{}.>", s.app.prefix),
        1,
        Duration::from_secs(10),
    )
    .await;
    println!(
        "pushed and pulled: sent 2 copies, consumed {}",
        events.len()
    );
    assert_eq!(subjects(&events), ["both-ways"]);
}

/// Release is called once, then not again within the hour; a 429 from Docplanner (another client
/// released) is respected. A push that failed is delivered by the release.
#[tokio::test]
async fn release_is_never_called_twice_within_an_hour() {
    // A push that failed earlier is kept by Docplanner as not processed correctly.
    let s = setup_with(
        false,
        true,
        Duration::from_secs(3600),
        &[notification("released")],
    )
    .await;
    wait_metric(
        &s.app,
        "hookbridge_reconcile_releases_total",
        &[("source", "docplanner"), ("outcome", "released")],
        1.0,
    )
    .await;
    let events = read_nats(
        &s.nats.url(),
        &s.app.stream,
        &format!("{}.>", s.app.prefix),
        1,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        subjects(&events),
        ["released"],
        "the release re-pushed the failed notification"
    );
    // Several reconcile rounds (1 s apart) later, still one call.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(s.model.release_calls(), (1, 1));

    // Another client released a minute ago: our first call gets 429 and is not repeated.
    let t = setup(false, true, Duration::from_secs(3600)).await;
    t.model.mark_released_now();
    wait_metric(
        &t.app,
        "hookbridge_reconcile_releases_total",
        &[("source", "docplanner"), ("outcome", "rate_limited")],
        1.0,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(t.model.release_calls(), (1, 0), "Retry-After respected");
}

/// Tokens expire and can be revoked: the reconciler fetches a new one and carries on, with no
/// failed API calls.
#[tokio::test]
async fn token_expiry_and_revocation_are_handled() {
    let s = setup(true, false, Duration::from_secs(2)).await;
    s.model.enqueue(notification("t1"));
    wait_metric(
        &s.app,
        "hookbridge_reconcile_notifications_total",
        &[("outcome", "published")],
        1.0,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await; // the first token has expired
    s.model.enqueue(notification("t2"));
    wait_metric(
        &s.app,
        "hookbridge_reconcile_notifications_total",
        &[("outcome", "published")],
        2.0,
    )
    .await;
    s.model.revoke_tokens(); // the next call gets 401 and must fetch a new token
    s.model.enqueue(notification("t3"));
    wait_metric(
        &s.app,
        "hookbridge_reconcile_notifications_total",
        &[("outcome", "published")],
        3.0,
    )
    .await;
    assert!(
        s.model.token_requests() >= 3,
        "tokens were refreshed: {}",
        s.model.token_requests()
    );
    assert_eq!(
        s.app.metric(
            "hookbridge_reconcile_errors_total",
            &[("source", "docplanner")]
        ),
        0.0
    );
    let events = read_nats(
        &s.nats.url(),
        &s.app.stream,
        &format!("{}.>", s.app.prefix),
        3,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(subjects(&events), ["t1", "t2", "t3"]);
}

/// Docplanner's API is down: reconciliation fails and backs off, while pushed webhooks are still
/// published and readiness stays green.
#[tokio::test]
async fn a_provider_api_outage_does_not_affect_webhook_ingestion() {
    let s = setup(true, true, Duration::from_secs(3600)).await;
    s.model.set_outage(true);
    wait_metric(
        &s.app,
        "hookbridge_reconcile_errors_total",
        &[("source", "docplanner"), ("operation", "pull")],
        1.0,
    )
    .await;
    assert_eq!(s.app.get("/readyz").await.status().as_u16(), 200);
    assert_eq!(
        s.model.push(notification("pushed-during-outage")).await,
        200
    );
    let events = read_nats(
        &s.nats.url(),
        &s.app.stream,
        &format!("{}.>", s.app.prefix),
        1,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(subjects(&events), ["pushed-during-outage"]);
    // And when the API is back, pulling resumes.
    s.model.set_outage(false);
    s.model.enqueue(notification("after-outage"));
    wait_metric(
        &s.app,
        "hookbridge_reconcile_notifications_total",
        &[("outcome", "published")],
        1.0,
    )
    .await;
}

/// The model itself keeps the documented 72 h expiry: an old notification is never pulled.
#[tokio::test]
async fn notifications_expire_after_72_hours() {
    let s = setup(true, false, Duration::from_secs(3600 * 100)).await;
    s.model.enqueue(notification("stale"));
    s.model.advance_clock(Duration::from_secs(73 * 3600));
    s.model.enqueue(notification("fresh"));
    wait_metric(
        &s.app,
        "hookbridge_reconcile_notifications_total",
        &[("outcome", "published")],
        1.0,
    )
    .await;
    let events = read_nats(
        &s.nats.url(),
        &s.app.stream,
        &format!("{}.>", s.app.prefix),
        1,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(subjects(&events), ["fresh"]);
}

/// A reload reaches the reconciler: a rotated client secret takes effect without a restart, a
/// reload that drops the reconcile table stops pulling, and one that brings it back starts again.
#[tokio::test]
async fn a_reload_reaches_the_reconciler() {
    let s = setup(true, false, Duration::from_secs(3600)).await;
    s.model.enqueue(notification("r1"));
    let published = [("source", "docplanner"), ("outcome", "published")];
    wait_metric(
        &s.app,
        "hookbridge_reconcile_notifications_total",
        &published,
        1.0,
    )
    .await;

    // Docplanner rotates the secret: the running one is refused from now on.
    s.model.set_client_secret("rotated-secret");
    s.model.revoke_tokens();
    s.model.enqueue(notification("r2"));
    wait_metric(
        &s.app,
        "hookbridge_reconcile_errors_total",
        &[("source", "docplanner"), ("operation", "pull")],
        1.0,
    )
    .await;
    assert_eq!(s.model.queued(), 1, "nothing pulled with the old secret");
    s.reload(&s.text, "rotated-secret");
    wait_metric(
        &s.app,
        "hookbridge_reconcile_notifications_total",
        &published,
        2.0,
    )
    .await;

    // Reconciliation removed by a reload: the notification stays in Docplanner's queue.
    let without: String = s
        .text
        .split("[sources.docplanner.reconcile]")
        .next()
        .unwrap()
        .to_owned();
    s.reload(&without, "rotated-secret");
    tokio::time::sleep(Duration::from_millis(1500)).await; // a round in flight finishes
    s.model.enqueue(notification("r3"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        s.model.queued(),
        1,
        "no reconciler pulls once the table is gone"
    );

    // Back again: a new reconciler picks up where the queue is.
    s.reload(&s.text, "rotated-secret");
    wait_metric(
        &s.app,
        "hookbridge_reconcile_notifications_total",
        &published,
        3.0,
    )
    .await;
    assert_eq!(s.model.queued(), 0);
}

/// A token endpoint that claims a lifetime past the clock's range (`expires_in` near `u64::MAX`)
/// once panicked the reconciler on `Instant` arithmetic: now the lifetime is capped and pulling
/// goes on.
#[tokio::test]
async fn an_absurd_token_lifetime_does_not_stop_the_reconciler() {
    let s = setup(true, false, Duration::from_secs(u64::MAX)).await;
    s.model.enqueue(notification("forever"));
    wait_metric(
        &s.app,
        "hookbridge_reconcile_notifications_total",
        &[("source", "docplanner"), ("outcome", "published")],
        1.0,
    )
    .await;
    s.model.enqueue(notification("still-pulling"));
    wait_metric(
        &s.app,
        "hookbridge_reconcile_notifications_total",
        &[("source", "docplanner"), ("outcome", "published")],
        2.0,
    )
    .await;
}

/// A page far larger than the API ever sends is refused as it streams in (counted as a pull
/// error), not buffered whole; once pages are sane again, pulling resumes.
#[tokio::test]
async fn an_oversized_page_is_refused_before_it_is_buffered() {
    let s = setup(true, false, Duration::from_secs(3600)).await;
    s.model.set_flood(true);
    s.model.enqueue(notification("after-the-flood"));
    wait_metric(
        &s.app,
        "hookbridge_reconcile_errors_total",
        &[("source", "docplanner"), ("operation", "pull")],
        1.0,
    )
    .await;
    assert_eq!(
        s.model.queued(),
        1,
        "the flood removed nothing from the queue"
    );
    s.model.set_flood(false);
    wait_metric(
        &s.app,
        "hookbridge_reconcile_notifications_total",
        &[("source", "docplanner"), ("outcome", "published")],
        1.0,
    )
    .await;
}
