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
    /// A private epoch, so the failure time fits in one atomic that every request reads without
    /// a lock.
    started: Instant,
    /// Milliseconds after `started` of the last failure; 0 for none.
    failed_at_ms: std::sync::atomic::AtomicU64,
}

impl StoreHealth {
    /// How long the store is left alone after a failure: during an outage, asking it on every
    /// request would make each one wait out the claim's budget.
    const QUIET: Duration = Duration::from_secs(1);

    pub(super) fn new() -> Self {
        StoreHealth {
            started: Instant::now(),
            failed_at_ms: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        // Never 0, which means "no failure": a failure in the first millisecond still counts.
        u64::try_from(self.started.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    fn failed(&self) {
        // Relaxed: a stale read costs one request an extra store call or one skip; nothing else is
        // ordered by this value.
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
        // The pending mark must outlive our own publish attempt: taken over earlier, a retry would
        // publish beside us and the event would reach the broker twice.
        let pending_timeout = self.publish_timeout + PENDING_MARGIN;
        self.bounded_by_store(self.dedup.claim(key, window, pending_timeout))
            .await
    }

    /// Marks `key` done once the event is safe (acknowledged, spooled or dead-lettered): for the
    /// source's window a resend is answered `duplicate`. `revision` ties it to our claim (the KV
    /// revision on NATS) and carries the window the key is kept for.
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

    /// Frees `key` after an attempt that kept the event nowhere, so the provider's resend is
    /// published instead of answered `in_flight` or `duplicate`.
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
        // Each call (the claim before the publish, the confirm or release after it) gets a quarter
        // of the deadline, so a slow store cannot spend the answer's time.
        let budget = self.publish_timeout / 4;
        let result = tokio::time::timeout(budget, call)
            .await
            .unwrap_or_else(|_| Err(DedupError(format!("no answer within {budget:?}"))));
        // A store that does not answer in time counts as down, exactly like one that errs.
        if result.is_err() {
            self.dedup_health.failed();
        }
        result
    }
}
