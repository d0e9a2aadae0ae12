//! In-memory dedup for a single replica: bounded (oldest claims evicted first) and expiring.
//!
//! Eviction under pressure can only cause a duplicate publish, never a loss, which is the safe
//! direction for a dedup cache. The clock is `Instant`, so wall-clock jumps do not matter.
//!
//! Keys are kept as 128-bit digests, not strings: a key is ~80 bytes of text; a digest is 16. Two
//! keys sharing a digest (2^-128 per pair) would only make the later webhook a false duplicate.
//!
//! The store's size is the gateway's peak memory under load, so its layout is chosen for bytes:
//! - every claim is a 40-byte record in one ring, in claim order. The ring is both the table and
//!   the eviction order, so a key is stored once;
//! - a hash index maps each key held to its record's position: 4 bytes and a control byte a slot.
//!
//! That is ~52 bytes a key at 1 M keys, where a map of entries beside an eviction queue took 111.
//! Times are milliseconds after the store's creation and the window whole seconds, rounded up.

use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hashbrown::HashTable;
use sha2::{Digest as _, Sha256};

use super::{Claim, DedupError, DedupStore, Revision};

/// The most keys a memory store may be configured for: ring positions are 32-bit, and the ring
/// holds at most twice the capacity (see `compact`). It is also far past any pod's memory.
pub const MAX_CAPACITY: usize = 1 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Claimed, being published: another claim is answered `InFlight`.
    Pending,
    /// Published: another claim within the window is a `Duplicate`.
    Done,
    /// Superseded by a later claim of its key, or released: the record only waits to be dropped.
    Gone,
}

/// One claim.
struct Record {
    /// The key's digest, as two `u64`s (a `u128` would align the record to 16 bytes).
    key: Slot,
    /// Which claim this is: a confirm from an earlier claim of the same key must not act on a
    /// later one.
    revision: u64,
    /// Milliseconds after the store's epoch; set at claim time, `confirm` extends it to the
    /// window.
    expires: u64,
    /// The source's window in whole seconds, rounded up: a key is never kept for less.
    window_secs: u32,
    state: State,
}

/// A digest as the store keeps it.
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
    /// Every claim, oldest first. `Gone` records stay until they reach the front or a compaction.
    records: VecDeque<Record>,
    /// The position of `records[0]`. Positions grow by one per claim and wrap at 2^32; an index
    /// entry stays valid while records in front of it are dropped.
    front: u32,
    /// The position of each held key's live record, hashed by the key (keyed SipHash, so webhooks
    /// cannot be shaped to collide).
    index: HashTable<u32>,
    hasher: RandomState,
    /// Only grows; unique within the process, which is all a revision of this store must be.
    next_revision: u64,
}

impl Inner {
    fn offset(&self, position: u32) -> usize {
        position.wrapping_sub(self.front) as usize
    }

    /// Where `key`'s live record is in `records`.
    fn find(&self, key: Slot) -> Option<usize> {
        let hash = self.hasher.hash_one(key);
        self.index
            .find(hash, |&p| self.records[self.offset(p)].key == key)
            .map(|&p| self.offset(p))
    }

    /// Drops `key` from the index and marks its record gone; its place in the ring stays.
    fn forget(&mut self, key: Slot) {
        let hash = self.hasher.hash_one(key);
        let Inner {
            index,
            records,
            front,
            ..
        } = self;
        let at = |p: u32| p.wrapping_sub(*front) as usize;
        if let Ok(entry) = index.find_entry(hash, |&p| records[at(p)].key == key) {
            let (position, _) = entry.remove();
            records[at(position)].state = State::Gone;
        }
    }

    fn push(&mut self, record: Record) {
        let hash = self.hasher.hash_one(record.key);
        let position = self.front.wrapping_add(self.records.len() as u32);
        self.records.push_back(record);
        let Inner {
            index,
            records,
            front,
            hasher,
            ..
        } = self;
        index.insert_unique(hash, position, |&p| {
            hasher.hash_one(records[p.wrapping_sub(*front) as usize].key)
        });
    }

    /// Drops the oldest record, from the index too if it was live.
    fn pop_oldest(&mut self) -> Option<Record> {
        let record = self.records.pop_front()?;
        let position = self.front;
        self.front = self.front.wrapping_add(1);
        if record.state != State::Gone {
            let hash = self.hasher.hash_one(record.key);
            if let Ok(entry) = self.index.find_entry(hash, |&p| p == position) {
                entry.remove();
            }
        }
        Some(record)
    }

    /// Drops every `Gone` record and renumbers the rest: O(n), so it runs only when they are
    /// half the ring, which is at most once per `capacity` claims (amortised constant time).
    fn compact(&mut self) {
        self.records.retain(|r| r.state != State::Gone);
        self.front = 0;
        self.index.clear();
        let Inner {
            index,
            records,
            hasher,
            ..
        } = self;
        for (i, record) in records.iter().enumerate() {
            index.insert_unique(hasher.hash_one(record.key), i as u32, |&p| {
                hasher.hash_one(records[p as usize].key)
            });
        }
    }
}

/// The single-replica store. One `std::sync::Mutex` over ring and index: every operation is a
/// short in-memory update with no `.await` inside, so an async lock would only add cost.
pub struct MemoryDedup {
    capacity: usize,
    /// What records' times count from.
    epoch: Instant,
    inner: Mutex<Inner>,
    /// Keys evicted while still within their window (a resend would be published again).
    evictions: Option<prometheus::IntCounter>,
}

impl MemoryDedup {
    /// A store of at most `capacity` keys (at least one, at most [`MAX_CAPACITY`]); evictions are
    /// counted only once `with_evictions` gives it a counter.
    pub fn new(capacity: usize) -> Self {
        MemoryDedup {
            evictions: None,
            capacity: capacity.clamp(1, MAX_CAPACITY),
            epoch: Instant::now(),
            inner: Mutex::new(Inner {
                records: VecDeque::new(),
                front: 0,
                index: HashTable::new(),
                hasher: RandomState::new(),
                next_revision: 1,
            }),
        }
    }

    /// Counts evictions of keys still within their window in `counter`.
    pub fn with_evictions(mut self, counter: prometheus::IntCounter) -> Self {
        self.evictions = Some(counter);
        self
    }

    /// Keys held and the bytes the ring and the index have allocated for them.
    pub fn usage(&self) -> (u64, u64) {
        self.inner.lock().map_or((0, 0), |i| {
            let bytes =
                i.records.capacity() * std::mem::size_of::<Record>() + i.index.allocation_size();
            (i.index.len() as u64, bytes as u64)
        })
    }

    /// Keys held, expired ones included until they are claimed again or evicted. A poisoned lock
    /// reads as empty: this only feeds the usage gauge and tests.
    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.index.len()).unwrap_or(0)
    }

    /// No key held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `at` in the store's milliseconds (an instant before the store reads as its creation).
    fn ms(&self, at: Instant) -> u64 {
        millis(at.saturating_duration_since(self.epoch))
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, DedupError> {
        self.inner
            .lock()
            .map_err(|_| DedupError("memory store lock poisoned".into()))
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
        let mut inner = self.lock()?;
        // An expired record is absent, whatever its state: a pending one's claimer is presumed
        // dead (taken over), a done one has outlived its window.
        if let Some(at) = inner.find(key) {
            let held = &inner.records[at];
            if held.expires > now {
                // The index holds only live records: pending or done.
                return Ok(if held.state == State::Done {
                    Claim::Duplicate
                } else {
                    Claim::InFlight
                });
            }
            inner.forget(key);
        }
        let revision = inner.next_revision;
        inner.next_revision += 1;
        inner.push(Record {
            key,
            revision,
            state: State::Pending,
            expires: now.saturating_add(millis(pending_timeout)),
            window_secs: whole_seconds(window),
        });
        // Evict the oldest claims until within capacity.
        while inner.index.len() > self.capacity {
            let Some(evicted) = inner.pop_oldest() else {
                break;
            };
            // Only a key still inside its window is an eviction worth counting: a resend of it
            // would be published again. An expired or gone one costs nothing.
            if evicted.state != State::Gone
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
        // Gone records at the front cost nothing to drop. Behind a live one they wait; once they
        // make up half the ring, a compaction drops them all.
        while inner
            .records
            .front()
            .is_some_and(|r| r.state == State::Gone)
        {
            inner.pop_oldest();
        }
        if inner.records.len() > self.capacity.saturating_mul(2) {
            inner.compact();
        }
        Ok(Claim::New(Revision(revision, window)))
    }

    fn confirm_at(&self, key: &str, revision: Revision, now: Instant) -> Result<(), DedupError> {
        let key = slot(key);
        let now = self.ms(now);
        let mut inner = self.lock()?;
        if let Some(at) = inner.find(key) {
            let record = &mut inner.records[at];
            if record.revision == revision.0 {
                // The window counts from the publish, not from the claim.
                record.state = State::Done;
                record.expires = now.saturating_add(u64::from(record.window_secs) * 1000);
            }
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
        // The record's place in the ring stays behind, gone; eviction and compaction drop it.
        self.lock()?.forget(slot(key));
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
    fn a_key_costs_a_40_byte_record_and_a_4_byte_index_slot() {
        assert_eq!(std::mem::size_of::<Record>(), 40);
        let s = MemoryDedup::new(1 << 20);
        let t0 = Instant::now();
        for i in 0..100_000 {
            new(&s, &i.to_string(), t0);
        }
        let (keys, bytes) = s.usage();
        assert_eq!(keys, 100_000);
        // A ring of 131,072 records (the growth slack is most of the difference from 40) and
        // 131,072 index slots of 5 bytes: 59 bytes a key here, where the map and queue took 111.
        assert!(bytes / keys < 64, "{} bytes a key", bytes / keys);
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

    #[test]
    fn gone_records_are_compacted_away_and_revisions_survive_it() {
        let s = MemoryDedup::new(4);
        let t0 = Instant::now();
        // A long-lived key at the front keeps the gone records behind it from being dropped there.
        let head = new(&s, "head", t0);
        // The key claimed before the churn is still pending across the compactions it causes.
        let pending = new(&s, "pending", t0);
        for round in 0..50u64 {
            // Each round the key's earlier claim has expired (6 s > the 5 s pending timeout), so
            // the claim is new and leaves the old record gone.
            new(&s, "churn", t0 + Duration::from_secs(6 * (round + 1)));
            let ring = s.inner.lock().unwrap().records.len();
            assert!(ring <= 2 * 4 + 1, "round {round}: {ring} records");
        }
        assert_eq!(s.len(), 3);
        let late = t0 + Duration::from_secs(1);
        s.confirm_at("head", head, late).unwrap();
        s.confirm_at("pending", pending, late).unwrap();
        let later = t0 + Duration::from_secs(30);
        assert_eq!(s.claim_at("head", W, P, later).unwrap(), Claim::Duplicate);
        assert_eq!(
            s.claim_at("pending", W, P, later).unwrap(),
            Claim::Duplicate
        );
    }

    #[test]
    fn ring_positions_wrap_around() {
        let s = MemoryDedup::new(3);
        s.inner.lock().unwrap().front = u32::MAX - 4;
        let t0 = Instant::now();
        let keys: Vec<String> = (0..12).map(|i| format!("k{i}")).collect();
        for k in &keys {
            let r = new(&s, k, t0);
            s.confirm_at(k, r, t0).unwrap();
        }
        assert_eq!(s.len(), 3);
        for k in &keys[9..] {
            assert_eq!(s.claim_at(k, W, P, t0).unwrap(), Claim::Duplicate, "{k}");
        }
        assert!(matches!(s.claim_at("k8", W, P, t0).unwrap(), Claim::New(_)));
    }

    /// The store against a plain model of its contract (a list of held keys in claim order) over
    /// a long pseudo-random run of claims, confirms, releases and clock steps: what it answers and
    /// how many keys it holds must agree at every step.
    #[tokio::test]
    async fn agrees_with_a_model_of_its_contract() {
        struct Held {
            key: u64,
            revision: u64,
            expires: u64,
            done: bool,
        }
        const CAPACITY: usize = 6;
        let s = MemoryDedup::new(CAPACITY);
        let t0 = s.epoch;
        let mut model: Vec<Held> = Vec::new();
        let mut revisions: Vec<(u64, Revision)> = Vec::new();
        let mut now_ms = 0u64;
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for step in 0..20_000 {
            let key = next() % 10;
            let name = format!("key-{key}");
            let at = t0 + Duration::from_millis(now_ms);
            match next() % 10 {
                0..=4 => {
                    let got = s.claim_at(&name, W, P, at).unwrap();
                    let found = model.iter().position(|h| h.key == key);
                    let want = match found {
                        Some(i) if model[i].expires > now_ms => {
                            if model[i].done {
                                Claim::Duplicate
                            } else {
                                Claim::InFlight
                            }
                        }
                        _ => {
                            if let Some(i) = found {
                                model.remove(i);
                            }
                            let Claim::New(r) = got else {
                                panic!("step {step}: {name} should be new, got {got:?}")
                            };
                            model.push(Held {
                                key,
                                revision: r.0,
                                expires: now_ms + 5_000,
                                done: false,
                            });
                            if model.len() > CAPACITY {
                                model.remove(0);
                            }
                            revisions.push((key, r));
                            got
                        }
                    };
                    assert_eq!(got, want, "step {step}: claim {name}");
                }
                5..=7 => {
                    // Confirm with a revision this key had, current or stale.
                    let Some(&(k, r)) = revisions
                        .iter()
                        .rev()
                        .filter(|(k, _)| *k == key)
                        .nth((next() % 2) as usize)
                    else {
                        continue;
                    };
                    s.confirm_at(&format!("key-{k}"), r, at).unwrap();
                    if let Some(h) = model.iter_mut().find(|h| h.key == k && h.revision == r.0) {
                        h.done = true;
                        h.expires = now_ms + 60_000;
                    }
                }
                8 => {
                    s.release(&name).await.unwrap();
                    model.retain(|h| h.key != key);
                }
                _ => now_ms += next() % 4_000,
            }
            assert_eq!(s.len(), model.len(), "step {step}: keys held");
        }
    }
}
