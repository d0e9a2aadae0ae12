//! Durable acceptance from the pipeline's side: writing an accepted event to the spool.

use super::*;

impl Pipeline {
    /// Spools an event whose key could not be claimed (store down, or held elsewhere): the
    /// drainer claims it for the source's window once the store answers, and drops the event if
    /// it was published meanwhile.
    pub(super) async fn spool_unclaimed(
        &self,
        spool: &Arc<Spool>,
        source: &Source,
        key: String,
        message: OutboundMessage,
        event_id: EventId,
    ) -> Result<Accepted, PipelineError> {
        // The window travels with the entry: the drainer claims the key for as long as this
        // source's provider may resend.
        let window = Some(source.config.dedup_window);
        self.spool_event(spool, source, key, window, None, message, event_id)
            .await
    }

    /// Writes an accepted event to the spool (fsync'd) for the drainer to publish later.
    /// `revision` is the claim taken on the key; without one, `claim_window` tells the drainer to
    /// claim the key itself before publishing.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn spool_event(
        &self,
        spool: &Arc<Spool>,
        source: &Source,
        key: String,
        claim_window: Option<Duration>,
        revision: Option<Revision>,
        message: OutboundMessage,
        event_id: EventId,
    ) -> Result<Accepted, PipelineError> {
        let entry = SpoolEntry {
            publisher: source.publisher.name.clone(),
            source: source.config.name.clone(),
            dedup_key: key.clone(),
            claim_window,
            message,
        };
        let spool = spool.clone();
        // The push returns only once the commit is fsync'd, which blocks: off the async workers.
        // A panicked spool task counts as a storage failure, never as spooled.
        let pushed = tokio::task::spawn_blocking(move || spool.push(&entry))
            .await
            .unwrap_or_else(|e| Err(SpoolError::Storage(format!("spool task: {e}"))));
        match pushed {
            Ok(_) => {
                // Safe on disk: from the provider's point of view the event is delivered.
                // Confirmed, not left pending: a resend must be answered `duplicate`, not spooled
                // (or published) a second time.
                if let Some(revision) = revision {
                    self.confirm(&key, revision).await;
                }
                Ok(Accepted::Spooled { event_id })
            }
            Err(e) => {
                // Kept nowhere: free the key so the provider's resend after the 503 is published.
                if revision.is_some() {
                    self.release(&key).await;
                }
                Err(PipelineError::Spool(e))
            }
        }
    }
}
