//! The health loop: publisher health checks (feeding `/readyz` and `hookbridge_publisher_up`, and
//! waking the drainer when a publisher is back) and the dedup store's usage gauges.

use super::*;

/// Re-checks every publisher each `interval` for as long as the gateway runs.
pub(super) async fn health_loop(pipeline: Arc<Pipeline>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    // Delay, not burst: after a slow round (a broker timing out) checks do not run back to back.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        check_publishers(&pipeline, interval).await;
    }
}

/// One health round: the dedup store's gauges, then each publisher's check, whose result is its
/// health until the next round or the next publish.
pub(super) async fn check_publishers(pipeline: &Pipeline, interval: Duration) {
    pipeline.export_dedup_usage().await;
    // Bounded, so a hung broker cannot hold up the round (and the other publishers' checks)
    // for longer than 2 s.
    let timeout = interval.clamp(Duration::from_millis(200), Duration::from_secs(2));
    for publisher in pipeline.publishers() {
        let result = publisher.inner.health_check(timeout).await;
        let healthy = result.is_ok();
        let was = publisher.set_healthy(healthy);
        let broker = publisher.inner.broker();
        publisher.metrics.health_checked(healthy);
        match (was, result) {
            (false, Ok(())) => {
                tracing::info!(publisher = %publisher.name, broker, "publisher is up");
                // Wake the drainer now rather than at the end of its back-off.
                if let Some(spool) = pipeline.spool() {
                    spool.resume();
                }
            }
            // Logged on the change only, not on every round of an outage.
            (true, Err(e)) => {
                tracing::warn!(publisher = %publisher.name, broker, error = %e, "publisher is down")
            }
            _ => {}
        }
    }
}
