//! Pulling: notifications only pullable, pushed and pulled, expired, and pages too large to read.

use std::time::Duration;

use super::{notification, setup, subjects, wait_metric};
use crate::consumers::read_nats;

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
