//! Release, at most once an hour, and OAuth tokens that expire, are revoked, or claim an absurd
//! lifetime.

use std::time::Duration;

use super::{notification, setup, setup_with, subjects, wait_metric};
use crate::consumers::read_nats;

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
