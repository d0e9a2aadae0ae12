//! The pipeline's calls to the dedup store, each bounded so that a store that is slow or gone
//! costs a request neither its deadline nor (when it spools) its event.

use std::time::{Duration, Instant};

use super::Pipeline;
use crate::dedup::{Claim, DedupError, DedupStore, Revision};

/// How much longer than the publish deadline a pending dedup mark holds before another attempt
/// may take it over (the claimer is presumed dead).
const PENDING_MARGIN: Duration = Duration::from_secs(5);

/// When the dedup store last failed, so an outage is met with an immediate answer.
pub(super) struct StoreHealth {
    started: Instant,
    /// Milliseconds after `started` of the last failure; 0 for none.
    failed_at_ms: std::sync::atomic::AtomicU64,
}

impl StoreHealth {
    const QUIET: Duration = Duration::from_secs(1);

    pub(super) fn new() -> Self {
        StoreHealth {
            started: Instant::now(),
            failed_at_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    fn failed(&self) {
        self.failed_at_ms
            .store(self.now_ms(), std::sync::atomic::Ordering::Relaxed);
    }

    fn recently_failed(&self) -> bool {
        let at = self.failed_at_ms.load(std::sync::atomic::Ordering::Relaxed);
        at != 0 && self.now_ms().saturating_sub(at) < Self::QUIET.as_millis() as u64
    }
}

impl Pipeline {
    /// Claims a dedup key within a quarter of the publish deadline, so that a store that is
    /// down costs a request neither its deadline nor (when it spools) its event. After a failure
    /// the store is not asked again for a second: during an outage every request would otherwise
    /// wait out the same bound.
    pub(crate) async fn claim(&self, key: &str, window: Duration) -> Result<Claim, DedupError> {
        let pending_timeout = self.publish_timeout + PENDING_MARGIN;
        self.bounded_by_store(self.dedup.claim(key, window, pending_timeout))
            .await
    }

    pub(crate) async fn confirm(&self, key: &str, revision: Revision) {
        let confirmed = self
            .bounded_by_store(self.dedup.confirm(key, revision))
            .await;
        if let Err(e) = confirmed {
            // The event is safe all the same; the pending mark expires, and at worst a retry is
            // published again, which the broker-side id (Nats-Msg-Id) lets consumers drop.
            tracing::warn!(%key, error = %e, "could not confirm a dedup key");
        }
    }

    pub(crate) async fn release(&self, key: &str) {
        if let Err(e) = self.bounded_by_store(self.dedup.release(key)).await {
            // The pending mark expires after the publish deadline; until then a retry is 503.
            tracing::warn!(%key, error = %e, "could not release a dedup key after a failed publish");
        }
    }

    /// A dedup store call under the claim's budget, skipped while the store is known down: an
    /// answer must not wait for a store that is gone, before or after the publish.
    async fn bounded_by_store<T>(
        &self,
        call: impl Future<Output = Result<T, DedupError>>,
    ) -> Result<T, DedupError> {
        if self.dedup_health.recently_failed() {
            return Err(DedupError("the dedup store failed moments ago".into()));
        }
        let budget = self.publish_timeout / 4;
        let result = tokio::time::timeout(budget, call)
            .await
            .unwrap_or_else(|_| Err(DedupError(format!("no answer within {budget:?}"))));
        if result.is_err() {
            self.dedup_health.failed();
        }
        result
    }
}
