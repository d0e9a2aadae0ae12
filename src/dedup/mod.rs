//! Deduplication across a provider's retries and across replicas.
//!
//! The protocol is claim → publish → confirm (or release):
//! - `claim` atomically marks a key *pending*. A key already *done* within its window is a
//!   duplicate (answered 2xx, not published again); a key *pending* elsewhere is in flight (answered
//!   503: if that attempt fails, this retry must still be able to go through).
//! - `confirm` marks the key *done* once the broker acknowledged (or the spool accepted) the event.
//! - `release` forgets the key when publishing failed, so the provider's retry is not mistaken for
//!   a duplicate.
//!
//! A pending mark older than the pending timeout is taken over: a replica that crashed between claim
//! and publish must not swallow the event forever.

pub mod config;
pub mod disk;
pub mod memory;
pub mod nats_kv;

use std::time::Duration;

/// What a claim found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// First sighting (or a stale pending mark taken over): go ahead and publish.
    New(Revision),
    /// Already published within the window.
    Duplicate,
    /// Another request with this key is being published right now.
    InFlight,
}

/// Token tying `confirm` to the claim it follows (the KV revision for NATS), with the window the
/// key was claimed for, which `confirm` gives the confirmed key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revision(pub u64, pub Duration);

/// A store that did not answer or failed. There is no permanent class: a store error never says
/// anything about the event, so a spooling source spools it unclaimed and a `reject` source answers
/// 503 `dedup_unavailable`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dedup store: {0}")]
pub struct DedupError(pub String);

/// A dedup store. Keys are scoped by source by the caller.
pub trait DedupStore {
    /// Marks `key` pending, or says why not. `pending_timeout` is the publish deadline plus a
    /// margin (`pipeline/claims.rs`): shorter, and a slow publish would be taken over and published
    /// twice; much longer, and a crashed claimer would hold the provider's retries off as long.
    fn claim(
        &self,
        key: &str,
        window: Duration,
        pending_timeout: Duration,
    ) -> impl Future<Output = Result<Claim, DedupError>>;
    /// Marks the key done for the window its claim carried, only while `revision` is still the
    /// claim on it: a claimer that was taken over must not confirm the new claimer's key.
    fn confirm(
        &self,
        key: &str,
        revision: Revision,
    ) -> impl Future<Output = Result<(), DedupError>>;
    /// Forgets the key after a failed publish, so the provider's retry is published, not answered
    /// as a duplicate.
    fn release(&self, key: &str) -> impl Future<Output = Result<(), DedupError>>;
}

/// Every store kind, chosen by `[dedup] store = ...`.
///
/// An enum, not `dyn DedupStore`: the trait's methods return `impl Future`, so it cannot be a
/// trait object, and boxing every claim's future would cost an allocation per webhook.
pub enum AnyDedupStore {
    Memory(memory::MemoryDedup),
    /// Shared with its flush thread (`disk::spawn_flusher`).
    Disk(std::sync::Arc<disk::DiskDedup>),
    /// Boxed, like the NATS publisher, so the enum stays the size of its small variants.
    NatsKv(Box<nats_kv::NatsKvDedup>),
}

impl AnyDedupStore {
    /// Makes every write so far durable. Only the disk store batches its fsyncs (once a second,
    /// `disk::spawn_flusher`); the memory store has nothing to keep and NATS acknowledged each
    /// write already.
    pub async fn flush(&self) -> Result<(), DedupError> {
        match self {
            AnyDedupStore::Disk(store) => {
                let store = store.clone();
                // An fsync: off the async worker.
                tokio::task::spawn_blocking(move || store.flush())
                    .await
                    .unwrap_or_else(|e| Err(DedupError(format!("flush task: {e}"))))
            }
            AnyDedupStore::Memory(_) | AnyDedupStore::NatsKv(_) => Ok(()),
        }
    }

    /// The `store` label of the dedup metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            AnyDedupStore::Memory(_) => "memory",
            AnyDedupStore::Disk(_) => "disk",
            AnyDedupStore::NatsKv(_) => "nats",
        }
    }

    /// Keys held and bytes taken, where the store can tell (the NATS bucket asks the server).
    /// Called by the health loop for `hookbridge_dedup_keys` and `hookbridge_dedup_bytes`, never
    /// on a request: for NATS it is a server round trip.
    pub async fn usage(&self) -> Option<(u64, u64)> {
        match self {
            AnyDedupStore::Memory(s) => Some(s.usage()),
            AnyDedupStore::Disk(s) => Some(s.usage()),
            AnyDedupStore::NatsKv(s) => s.usage().await,
        }
    }
}

impl DedupStore for AnyDedupStore {
    async fn claim(
        &self,
        key: &str,
        window: Duration,
        pending_timeout: Duration,
    ) -> Result<Claim, DedupError> {
        match self {
            AnyDedupStore::Memory(s) => s.claim(key, window, pending_timeout).await,
            AnyDedupStore::Disk(s) => s.claim(key, window, pending_timeout).await,
            AnyDedupStore::NatsKv(s) => s.claim(key, window, pending_timeout).await,
        }
    }

    async fn confirm(&self, key: &str, revision: Revision) -> Result<(), DedupError> {
        match self {
            AnyDedupStore::Memory(s) => s.confirm(key, revision).await,
            AnyDedupStore::Disk(s) => s.confirm(key, revision).await,
            AnyDedupStore::NatsKv(s) => s.confirm(key, revision).await,
        }
    }

    async fn release(&self, key: &str) -> Result<(), DedupError> {
        match self {
            AnyDedupStore::Memory(s) => s.release(key).await,
            AnyDedupStore::Disk(s) => s.release(key).await,
            AnyDedupStore::NatsKv(s) => s.release(key).await,
        }
    }
}
