//! A Kafka publisher's view of its schema registry: whether it answered since its last failure,
//! and the subject the health check must resolve before the publisher is ready again.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::publish::registry::{RegistryError, SchemaRegistry, Writer};

/// The registry, whether it answered since its last failure, and the error counter (by reason).
pub(super) struct Registry {
    pub(super) client: SchemaRegistry,
    /// False before the registry first answers and after a failure: the publisher is unready
    /// then, until the health check's `recover` succeeds.
    pub(super) ready: AtomicBool,
    /// The subject whose id could not be resolved last, which the health check retries: the
    /// publisher stays unready until it resolves.
    pub(super) failed_subject: Mutex<Option<(String, Writer)>>,
    pub(super) metrics: crate::metrics::Metrics,
    pub(super) publisher: String,
}

impl Registry {
    /// Ready again when the subject that failed resolves (or, failing none, the registry answers).
    pub(super) async fn recover(&self) -> Result<(), RegistryError> {
        let failed = self.failed_subject.lock().ok().and_then(|f| f.clone());
        match failed {
            Some((subject, writer)) => self.client.id(&subject, writer).await.map(|_| ()),
            None => self.client.reachable().await,
        }?;
        if let Ok(mut f) = self.failed_subject.lock() {
            *f = None;
        }
        self.ready.store(true, Ordering::Relaxed);
        Ok(())
    }

    pub(super) fn failed_for(&self, subject: String, writer: Writer, e: &RegistryError) {
        if let Ok(mut f) = self.failed_subject.lock() {
            *f = Some((subject, writer));
        }
        self.failed(e);
    }

    /// Marks the publisher unready and counts the failure by reason. Logged as an error: until the
    /// registry answers, events to subjects not yet cached wait (spooled or 503).
    pub(super) fn failed(&self, e: &RegistryError) {
        self.ready.store(false, Ordering::Relaxed);
        self.metrics.registry_error(&self.publisher, e.code());
        tracing::error!(publisher = %self.publisher, error = %e, "schema registry: nothing is published to new subjects until it answers");
    }
}
