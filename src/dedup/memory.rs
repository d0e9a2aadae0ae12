//! In-memory dedup for a single replica: bounded (oldest entries evicted first) and expiring.
//!
//! Eviction under pressure can only cause a duplicate publish, never a loss, which is the safe
//! direction for a dedup cache. The clock is `Instant`, so wall-clock jumps do not matter.
//!
//! Keys are kept as 128-bit digests, not strings: a key is ~80 bytes of text and the store holds it
//! twice (table and eviction order), which made memory grow ~300 bytes per webhook under sustained
//! load; a digest is 16. Two keys sharing a digest (2^-128 per pair) would only make the later
//! webhook a false duplicate.
//!
//! The rest of an entry is packed too, because the store's size is the gateway's peak memory
//! under load: times are milliseconds after the store's creation, the window whole seconds, and
//! the digest two `u64`s (a `u128` would align each table slot to 16 bytes). A slot is 40 bytes
//! and an eviction record 24, where `Instant`s, a `Duration` and a `u128` made them 64 and 32.

use std::collections::{HashMap, VecDeque};

use sha2::{Digest as _, Sha256};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Claim, DedupError, DedupStore, Revision};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Claimed, being published: another claim is answered `InFlight`.
    Pending,
    /// Published: another claim within the window is a `Duplicate`.
    Done,
}

struct Entry {
    /// Which claim wrote the entry: a confirm or an order record of an earlier claim of the
    /// same key must not act on a later one.
    revision: u64,
    /// Milliseconds after the store's epoch; set at claim time, `confirm` extends it to the
    /// window.
    expires: u64,
    /// The source's window in whole seconds, rounded up: a key is never kept for less.
    window_secs: u32,
    state: State,
}

/// A digest as the table keys it: two `u64`s, aligned to 8 bytes.
type Slot = (u64, u64);

fn slot(key: &str) -> Slot {
    let d = digest(key);
    ((d >> 64) as u64, d as u64)
}

/// The first 128 bits of the key's SHA-256.
pub(super) type KeyDigest = u128;

/// The disk store keys its tables by the same digest, for the same fixed 16 bytes a key.
pub(super) fn digest(key: &str) -> KeyDigest {
    let hash = Sha256::digest(key.as_bytes());
    let mut first = [0u8; 16];
    first.copy_from_slice(&hash[..16]);
    u128::from_be_bytes(first)
}

struct Inner {
    entries: HashMap<Slot, Entry>,
    /// Keys in claim order, for eviction; may hold keys already removed.
    order: VecDeque<(Slot, u64)>,
    /// Only grows; unique within the process, which is all a revision of this store must be.
    next_revision: u64,
}

/// The single-replica store. One `std::sync::Mutex` over table and queue: every operation is a
/// short in-memory update with no `.await` inside, so an async lock would only add cost.
pub struct MemoryDedup {
    capacity: usize,
    /// What entries' times count from.
    epoch: Instant,
    inner: Mutex<Inner>,
    /// Keys evicted while still within their window (a resend would be published again).
    evictions: Option<prometheus::IntCounter>,
}

impl MemoryDedup {
    /// A store of at most `capacity` keys (at least one); evictions are counted only once
    /// `with_evictions` gives it a counter.
    pub fn new(capacity: usize) -> Self {
        MemoryDedup {
            evictions: None,
            capacity: capacity.max(1),
            epoch: Instant::now(),
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                order: VecDeque::new(),
                next_revision: 1,
            }),
        }
    }

    /// Counts evictions of keys still within their window in `counter`.
    pub fn with_evictions(mut self, counter: prometheus::IntCounter) -> Self {
        self.evictions = Some(counter);
        self
    }

    /// Keys held and an estimate of the bytes they take (table entry, its hash slot and the
    /// eviction queue's record).
    pub fn usage(&self) -> (u64, u64) {
        let keys = self.len() as u64;
        let per_key =
            (std::mem::size_of::<(Slot, Entry)>() + 8 + std::mem::size_of::<(Slot, u64)>()) as u64;
        (keys, keys * per_key)
    }

    /// Keys held, expired ones included until they are overwritten or evicted. A poisoned lock
    /// reads as empty: this only feeds the usage gauge and tests.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.entries.len()).unwrap_or(0)
    }

    /// No key held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `at` in the store's milliseconds (an instant before the store reads as its creation).
    fn ms(&self, at: Instant) -> u64 {
        millis(at.saturating_duration_since(self.epoch))
    }

    fn claim_at(
        &self,
        key: &str,
        window: Duration,
        pending_timeout: Duration,
        now: Instant,
    ) -> Result<Claim, DedupError> {
        let key = slot(key);
        let now = self.ms(now);
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| DedupError("memory store lock poisoned".into()))?;
        // An expired entry is absent, whatever its state: a pending one's claimer is presumed dead
        // (taken over), a done one has outlived its window.
        if let Some(entry) = inner.entries.get(&key)
            && entry.expires > now
        {
            return Ok(match entry.state {
                State::Done => Claim::Duplicate,
                State::Pending => Claim::InFlight,
            });
        }
        let revision = inner.next_revision;
        inner.next_revision += 1;
        inner.entries.insert(
            key,
            Entry {
                state: State::Pending,
                expires: now.saturating_add(millis(pending_timeout)),
                window_secs: whole_seconds(window),
                revision,
            },
        );
        inner.order.push_back((key, revision));
        // Evict the oldest claims until within capacity (skipping stale order records).
        while inner.entries.len() > self.capacity {
            let Some((old, rev)) = inner.order.pop_front() else {
                break;
            };
            if inner.entries.get(&old).is_some_and(|e| e.revision == rev)
                && let Some(evicted) = inner.entries.remove(&old)
                // Only a key still inside its window is an eviction worth counting: a resend of it
                // would be published again. An expired one costs nothing.
                && evicted.expires > now
                && let Some(counter) = &self.evictions
            {
                counter.inc();
                // The first eviction and every 10,000th after: a full store must not flood the log.
                if counter.get() % 10_000 == 1 {
                    tracing::warn!(
                        capacity = self.capacity,
                        "the in-memory dedup store is full: keys are forgotten before their window ends (raise [dedup] capacity or use the disk store)"
                    );
                }
            }
        }
        // Keep the order queue from growing without bound when keys are re-claimed.
        // At twice the capacity, the O(n) pass leaves at most `capacity` records, so it runs at
        // most once per `capacity` claims: amortised constant time.
        if inner.order.len() > self.capacity * 2 {
            let Inner { entries, order, .. } = &mut *inner;
            order.retain(|(k, r)| entries.get(k).is_some_and(|e| e.revision == *r));
        }
        Ok(Claim::New(Revision(revision, window)))
    }

    fn confirm_at(&self, key: &str, revision: Revision, now: Instant) -> Result<(), DedupError> {
        let key = slot(key);
        let now = self.ms(now);
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| DedupError("memory store lock poisoned".into()))?;
        if let Some(entry) = inner.entries.get_mut(&key)
            && entry.revision == revision.0
        {
            // The window counts from the publish, not from the claim.
            entry.state = State::Done;
            entry.expires = now.saturating_add(u64::from(entry.window_secs) * 1000);
        }
        Ok(())
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Rounded up and saturating: a window is never shortened.
fn whole_seconds(d: Duration) -> u32 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

impl DedupStore for MemoryDedup {
    async fn claim(
        &self,
        key: &str,
        window: Duration,
        pending_timeout: Duration,
    ) -> Result<Claim, DedupError> {
        self.claim_at(key, window, pending_timeout, Instant::now())
    }

    async fn confirm(&self, key: &str, revision: Revision) -> Result<(), DedupError> {
        self.confirm_at(key, revision, Instant::now())
    }

    async fn release(&self, key: &str) -> Result<(), DedupError> {
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| DedupError("memory store lock poisoned".into()))?;
        // The key's order record stays behind; eviction and compaction skip it as stale.
        inner.entries.remove(&slot(key));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(60);
    const P: Duration = Duration::from_secs(5);

    fn new(store: &MemoryDedup, key: &str, now: Instant) -> Revision {
        match store.claim_at(key, W, P, now).unwrap() {
            Claim::New(r) => r,
            other => panic!("{key}: {other:?}"),
        }
    }

    #[test]
    fn a_key_costs_a_40_byte_slot_and_a_24_byte_eviction_record() {
        assert_eq!(std::mem::size_of::<(Slot, Entry)>(), 40);
        assert_eq!(std::mem::size_of::<(Slot, u64)>(), 24);
    }

    #[test]
    fn windows_are_kept_in_whole_seconds_rounded_up() {
        let s = MemoryDedup::new(10);
        let t0 = Instant::now();
        let window = Duration::from_millis(1500);
        let Claim::New(r) = s.claim_at("a", window, P, t0).unwrap() else {
            panic!("a new key")
        };
        s.confirm_at("a", r, t0).unwrap();
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(
            s.claim_at("a", window, P, at(1900)).unwrap(),
            Claim::Duplicate
        );
        assert!(matches!(
            s.claim_at("a", window, P, at(2100)).unwrap(),
            Claim::New(_)
        ));
        assert_eq!(whole_seconds(Duration::from_secs(u64::MAX)), u32::MAX);
    }

    #[test]
    fn confirmed_keys_are_duplicates_until_the_window_ends() {
        let s = MemoryDedup::new(10);
        let t0 = Instant::now();
        let r = new(&s, "a", t0);
        s.confirm_at("a", r, t0).unwrap();
        assert_eq!(
            s.claim_at("a", W, P, t0 + Duration::from_secs(59)).unwrap(),
            Claim::Duplicate
        );
        assert!(matches!(
            s.claim_at("a", W, P, t0 + Duration::from_secs(61)).unwrap(),
            Claim::New(_)
        ));
    }

    #[test]
    fn pending_keys_are_in_flight_then_taken_over() {
        let s = MemoryDedup::new(10);
        let t0 = Instant::now();
        new(&s, "a", t0);
        assert_eq!(
            s.claim_at("a", W, P, t0 + Duration::from_secs(1)).unwrap(),
            Claim::InFlight
        );
        // The claimer died: after the pending timeout another attempt may publish.
        let taken = new(&s, "a", t0 + Duration::from_secs(6));
        // A late confirm from the dead claimer does not count for the new one.
        s.confirm_at("a", Revision(taken.0 - 1, W), t0 + Duration::from_secs(7))
            .unwrap();
        assert_eq!(
            s.claim_at("a", W, P, t0 + Duration::from_secs(7)).unwrap(),
            Claim::InFlight
        );
    }

    #[tokio::test]
    async fn released_keys_can_be_claimed_again() {
        let s = MemoryDedup::new(10);
        let t0 = Instant::now();
        new(&s, "a", t0);
        s.release("a").await.unwrap();
        new(&s, "a", t0);
    }

    #[test]
    fn capacity_evicts_the_oldest() {
        let counter = prometheus::IntCounter::new("e", "e").unwrap();
        let s = MemoryDedup::new(3).with_evictions(counter.clone());
        let t0 = Instant::now();
        for k in ["a", "b", "c", "d"] {
            let r = new(&s, k, t0);
            s.confirm_at(k, r, t0).unwrap();
        }
        assert_eq!(s.len(), 3);
        assert!(
            matches!(s.claim_at("a", W, P, t0).unwrap(), Claim::New(_)),
            "a was evicted"
        );
        assert_eq!(s.claim_at("d", W, P, t0).unwrap(), Claim::Duplicate);
        assert!(
            counter.get() >= 1,
            "evicting a key within its window is counted"
        );
    }
}
