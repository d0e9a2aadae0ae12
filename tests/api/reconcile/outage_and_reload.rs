//! Docplanner's API down while webhooks keep arriving, and config reloads reaching the reconciler.

use std::time::Duration;

use super::{notification, setup, subjects, wait_metric};
use crate::consumers::read_nats;

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
