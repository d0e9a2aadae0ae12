//! The background task that empties the spool into the brokers, oldest first.
//!
//! Per publisher, order is kept: once one of a publisher's events fails in a pass, its later
//! events wait for the next pass, while other publishers' events go ahead. Passes that make no
//! progress back off exponentially (100 ms to 30 s); any progress resets the back-off. An entry
//! is removed from disk only after the broker acknowledged it, so a crash mid-drain can publish an
//! event twice (the dedup key in `Nats-Msg-Id` / `hookbridge_dedup_key` absorbs that) but never
//! lose one.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use super::{Spool, SpoolEntry, Spooled};
use crate::metrics::Metrics;
use crate::publish::{NamedPublisher, PublishError, Publisher};

const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const BATCH: usize = 256;

/// What to do with an entry the broker refuses for good (too large, not authorised): it must go
/// somewhere visible, never be dropped. Returns true when it was taken care of.
pub type OnRejected = Arc<
    dyn Fn(&SpoolEntry, &PublishError) -> futures_util::future::BoxFuture<'static, bool>
        + Send
        + Sync,
>;

pub struct Drainer {
    pub spool: Arc<Spool>,
    pub publishers: HashMap<String, Arc<NamedPublisher>>,
    pub publish_timeout: Duration,
    pub metrics: Metrics,
    pub on_rejected: Option<OnRejected>,
}

impl Drainer {
    pub async fn run(self) {
        let mut backoff = MIN_BACKOFF;
        loop {
            self.export_depth();
            let spool = self.spool.clone();
            let batch = match tokio::task::spawn_blocking(move || spool.oldest(BATCH)).await {
                Ok(Ok(batch)) => batch,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "cannot read the spool");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "spool reader task failed");
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            };
            if batch.is_empty() {
                // Nothing waits: sleep until something is spooled (or a periodic look).
                let _woken =
                    tokio::time::timeout(Duration::from_secs(1), self.spool.wake.notified()).await;
                backoff = MIN_BACKOFF;
                continue;
            }
            if self.pass(batch).await {
                backoff = MIN_BACKOFF;
            } else {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }

    /// One pass over a batch; true when anything was delivered.
    async fn pass(&self, batch: Vec<Spooled>) -> bool {
        let mut blocked: HashSet<String> = HashSet::new();
        let mut progressed = false;
        for (seq, entry) in batch {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    // Kept on disk for an operator: deleting it would lose an accepted event.
                    tracing::error!(seq, error = %e, "unreadable spool entry left in place");
                    continue;
                }
            };
            if blocked.contains(&entry.publisher) {
                continue;
            }
            let Some(publisher) = self.publishers.get(&entry.publisher) else {
                tracing::error!(seq, publisher = %entry.publisher, "spooled for a publisher that is no longer configured");
                blocked.insert(entry.publisher.clone());
                continue;
            };
            let result = match tokio::time::timeout(
                self.publish_timeout,
                publisher.inner.publish(&entry.message),
            )
            .await
            {
                Ok(r) => r,
                Err(_) => Err(PublishError::Timeout(self.publish_timeout)),
            };
            let delivered = match &result {
                Ok(()) => true,
                Err(e @ PublishError::Rejected(_)) => match &self.on_rejected {
                    Some(handler) => handler(&entry, e).await,
                    None => false,
                },
                Err(_) => false,
            };
            if delivered {
                let spool = self.spool.clone();
                let name = entry.publisher.clone();
                match tokio::task::spawn_blocking(move || spool.remove(seq, &name)).await {
                    Ok(Ok(())) => {
                        progressed = true;
                        self.metrics
                            .spool_drained
                            .with_label_values(&[&entry.source])
                            .inc();
                    }
                    _ => {
                        tracing::error!(
                            seq,
                            "delivered but could not remove from the spool; it will be sent again"
                        );
                        blocked.insert(entry.publisher.clone());
                    }
                }
            } else {
                if let Err(e) = result {
                    tracing::debug!(seq, publisher = %entry.publisher, error = %e, "spool drain waits for the broker");
                }
                blocked.insert(entry.publisher.clone());
            }
        }
        progressed
    }

    fn export_depth(&self) {
        let (events, bytes) = self.spool.depth();
        self.metrics.spool_events.set(events as i64);
        self.metrics.spool_bytes.set(bytes as i64);
    }
}
