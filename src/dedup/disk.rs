//! Dedup for a single replica on its own disk, in a redb file: a window of days fits at realistic
//! rates (about 100 bytes a key, so 10 M keys in about 1 GiB) and survives a restart.
//!
//! Tables: `keys` maps a key's 128-bit digest to its state, expiry and claim revision; `expiry`
//! indexes (expiry, digest), so expired keys are swept oldest first (a few on every claim) and,
//! at the bound, the key closest to its end is the one evicted. An eviction of a key still within
//! its window is counted (`hookbridge_dedup_evictions_total{store="disk"}`) and logged: a resend
//! of that event would be published again.
//!
//! Commits are not fsync'd one by one (two per webhook would cost more than the rest of the
//! request); a background flush makes them durable every second. A crash can forget the last
//! second of keys, which at worst publishes a resend again: the safe direction for dedup, and the
//! broker-side id (`Nats-Msg-Id`) still absorbs it on NATS.
//!
//! Calls are short, in-memory B-tree updates; they run inline on the caller's thread.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{Database, Durability, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::memory::{KeyDigest, digest};
use super::{Claim, DedupError, DedupStore, Revision};

/// Digest → encoded `Record`.
const KEYS: TableDefinition<'_, u128, &[u8]> = TableDefinition::new("keys");
/// (expiry in unix ms, digest), ordered so the first row is the key closest to its end.
const EXPIRY: TableDefinition<'_, (u64, u128), ()> = TableDefinition::new("expiry");
/// Expired keys removed per claim, so the sweep keeps pace with the claims without a long stall.
const SWEEP: usize = 8;
// A record's first byte. The file outlives the binary: these values are the on-disk format and
// must never be renumbered.
const PENDING: u8 = 0;
const DONE: u8 = 1;

fn store_error(e: impl std::fmt::Display) -> DedupError {
    DedupError(format!("disk: {e}"))
}

/// Wall-clock milliseconds, not `Instant` as in memory: expiries are stored in the file and must
/// mean the same after a restart. A clock before 1970 reads as 0.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// A duration in milliseconds, saturating: a huge window means never expiring, not wrapping.
fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A key's record: state, expiry (unix ms), window (ms), revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    state: u8,
    expires: u64,
    window: u64,
    revision: u64,
}

impl Record {
    /// Fixed 25 bytes, little-endian: the layout the file holds, so it must stay readable by
    /// later versions.
    fn encode(&self) -> [u8; 25] {
        let mut out = [0u8; 25];
        out[0] = self.state;
        out[1..9].copy_from_slice(&self.expires.to_le_bytes());
        out[9..17].copy_from_slice(&self.window.to_le_bytes());
        out[17..25].copy_from_slice(&self.revision.to_le_bytes());
        out
    }

    /// A damaged record reads as absent: at worst one event is published again.
    fn decode(bytes: &[u8]) -> Option<Record> {
        let word = |at: usize| -> Option<u64> {
            Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
        };
        Some(Record {
            state: *bytes.first()?,
            expires: word(1)?,
            window: word(9)?,
            revision: word(17)?,
        })
    }
}

/// The redb-backed single-replica store, shared (`Arc`) with its flush thread.
pub struct DiskDedup {
    db: Database,
    path: PathBuf,
    capacity: u64,
    /// The key count, read from the file at open and kept by the writers (under `write`), so
    /// the bound is checked without asking the table.
    keys: AtomicU64,
    /// Seeded from the clock at open; see `open`.
    next_revision: AtomicU64,
    /// Serialises writers, so the key count stays exact.
    write: Mutex<()>,
    evictions: prometheus::IntCounter,
}

impl DiskDedup {
    /// Opens (or creates) `dir/dedup.redb`, holding at most `capacity` keys.
    pub fn open(
        dir: &Path,
        capacity: u64,
        evictions: prometheus::IntCounter,
    ) -> Result<Self, DedupError> {
        std::fs::create_dir_all(dir).map_err(|e| store_error(format!("{}: {e}", dir.display())))?;
        let path = dir.join("dedup.redb");
        let db = Database::create(&path).map_err(store_error)?;
        let txn = db.begin_write().map_err(store_error)?;
        let keys = {
            // Opening both tables in a write transaction creates them in a fresh file; the count is
            // what an earlier run left.
            let table = txn.open_table(KEYS).map_err(store_error)?;
            txn.open_table(EXPIRY).map_err(store_error)?;
            table.len().map_err(store_error)?
        };
        txn.commit().map_err(store_error)?;
        Ok(DiskDedup {
            db,
            path,
            capacity: capacity.max(1),
            keys: AtomicU64::new(keys),
            // Unique across restarts without storing a counter: a revision only has to tell two
            // claims of one key apart, and a claimer from before a restart is gone.
            next_revision: AtomicU64::new(now_ms() << 16),
            write: Mutex::new(()),
            evictions,
        })
    }

    /// Keys held and the file's size in bytes.
    pub fn usage(&self) -> (u64, u64) {
        let bytes = std::fs::metadata(&self.path).map_or(0, |m| m.len());
        (self.keys.load(Ordering::Relaxed), bytes)
    }

    /// Makes every commit so far durable (an empty commit with immediate durability).
    pub fn flush(&self) -> Result<(), DedupError> {
        let _writer = self
            .write
            .lock()
            .map_err(|_| store_error("lock poisoned"))?;
        let mut txn = self.db.begin_write().map_err(store_error)?;
        // redb persists a `Durability::None` commit only with a later durable one, so this empty
        // commit makes every write since the last flush durable at once: one fsync a second.
        txn.set_durability(Durability::Immediate)
            .map_err(store_error)?;
        txn.commit().map_err(store_error)
    }

    /// Runs `f` in one non-durable write transaction.
    fn write<T>(
        &self,
        f: impl FnOnce(
            &mut redb::Table<'_, u128, &[u8]>,
            &mut redb::Table<'_, (u64, u128), ()>,
        ) -> Result<T, DedupError>,
    ) -> Result<T, DedupError> {
        let _writer = self
            .write
            .lock()
            .map_err(|_| store_error("lock poisoned"))?;
        let mut txn = self.db.begin_write().map_err(store_error)?;
        // Not fsync'd: the next flush (within a second) makes it durable, the trade the module
        // docs describe.
        txn.set_durability(Durability::None).map_err(store_error)?;
        let out = {
            let mut keys = txn.open_table(KEYS).map_err(store_error)?;
            let mut expiry = txn.open_table(EXPIRY).map_err(store_error)?;
            f(&mut keys, &mut expiry)?
        };
        txn.commit().map_err(store_error)?;
        Ok(out)
    }

    fn claim_at(
        &self,
        key: &str,
        window: Duration,
        pending_timeout: Duration,
        now: u64,
    ) -> Result<Claim, DedupError> {
        let k = digest(key);
        // Taken before the lock: a revision only has to be unique, not ordered with the write.
        let revision = self.next_revision.fetch_add(1, Ordering::Relaxed);
        let capacity = self.capacity;
        let counted = &self.keys;
        let evictions = &self.evictions;
        self.write(|keys, expiry| {
            let existing = keys
                .get(k)
                .map_err(store_error)?
                .and_then(|v| Record::decode(v.value()));
            // A live record answers the claim; an expired one loses its expiry row and is
            // overwritten below, keeping the count.
            if let Some(r) = existing {
                if r.expires > now {
                    return Ok(if r.state == DONE {
                        Claim::Duplicate
                    } else {
                        Claim::InFlight
                    });
                }
                expiry.remove((r.expires, k)).map_err(store_error)?;
            } else {
                counted.fetch_add(1, Ordering::Relaxed);
            }
            let record = Record {
                state: PENDING,
                expires: now.saturating_add(ms(pending_timeout)),
                window: ms(window),
                revision,
            };
            keys.insert(k, record.encode().as_slice()).map_err(store_error)?;
            expiry.insert((record.expires, k), ()).map_err(store_error)?;
            // Sweep what has expired, then evict (soonest to end first) down to the bound.
            // A few expired keys on every claim keep dead keys from piling up in the file without a
            // background sweep, and the bound holds after every claim, not eventually.
            let mut swept = 0;
            while swept < SWEEP || counted.load(Ordering::Relaxed) > capacity {
                let Some((first, ())) = expiry
                    .first()
                    .map_err(store_error)?
                    .map(|(key, _)| (key.value(), ()))
                else {
                    break;
                };
                let (expires, old) = first;
                let over = counted.load(Ordering::Relaxed) > capacity;
                if expires > now && !over {
                    break;
                }
                if old == k {
                    break; // never evict the key being claimed
                }
                expiry.remove(first).map_err(store_error)?;
                keys.remove(old).map_err(store_error)?;
                counted.fetch_sub(1, Ordering::Relaxed);
                if expires > now {
                    // Inside its window: an eviction, not a sweep. A resend of it would be
                    // published again, so it is counted; logged on the first and every 10,000th
                    // only, so a full store cannot flood the log.
                    evictions.inc();
                    if evictions.get() % 10_000 == 1 {
                        tracing::warn!(
                            capacity,
                            "the disk dedup store is full: keys are forgotten before their window ends (raise [dedup] capacity)"
                        );
                    }
                }
                swept += 1;
            }
            Ok(Claim::New(Revision(revision, window)))
        })
    }

    fn confirm_at(&self, key: &str, revision: Revision, now: u64) -> Result<(), DedupError> {
        let k: KeyDigest = digest(key);
        self.write(|keys, expiry| {
            let existing = keys
                .get(k)
                .map_err(store_error)?
                .and_then(|v| Record::decode(v.value()));
            // A claim that was taken over (its pending mark expired) must not mark the new
            // claimer's key done. The window counts from the publish.
            let Some(mut r) = existing.filter(|r| r.revision == revision.0) else {
                return Ok(());
            };
            expiry.remove((r.expires, k)).map_err(store_error)?;
            r.state = DONE;
            r.expires = now.saturating_add(r.window);
            keys.insert(k, r.encode().as_slice()).map_err(store_error)?;
            expiry.insert((r.expires, k), ()).map_err(store_error)?;
            Ok(())
        })
    }

    /// Forgets the key and its expiry row, whatever claim holds it.
    fn release_now(&self, key: &str) -> Result<(), DedupError> {
        let k = digest(key);
        let counted = &self.keys;
        self.write(|keys, expiry| {
            let removed = keys
                .remove(k)
                .map_err(store_error)?
                .and_then(|v| Record::decode(v.value()));
            if let Some(r) = removed {
                expiry.remove((r.expires, k)).map_err(store_error)?;
                counted.fetch_sub(1, Ordering::Relaxed);
            }
            Ok(())
        })
    }
}

// Synchronous inside `async fn`s: a write is a short B-tree update in redb's cache (the fsync
// is the flusher's), cheaper inline than a hop to the blocking pool.
impl DedupStore for DiskDedup {
    async fn claim(
        &self,
        key: &str,
        window: Duration,
        pending_timeout: Duration,
    ) -> Result<Claim, DedupError> {
        self.claim_at(key, window, pending_timeout, now_ms())
    }

    async fn confirm(&self, key: &str, revision: Revision) -> Result<(), DedupError> {
        self.confirm_at(key, revision, now_ms())
    }

    async fn release(&self, key: &str) -> Result<(), DedupError> {
        self.release_now(key)
    }
}

/// Flushes `store` every second until the process ends.
pub fn spawn_flusher(store: std::sync::Arc<DiskDedup>) {
    // A thread of its own, not a tokio task: the flush waits for an fsync, which must not stall
    // an async worker, and it takes the writer lock that claims wait on.
    let spawned = std::thread::Builder::new()
        .name("dedup-flush".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_secs(1));
                if let Err(e) = store.flush() {
                    tracing::warn!(error = %e, "could not flush the disk dedup store");
                }
            }
        });
    // Not fatal: the store still answers; only the once-a-second durability is lost.
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the dedup flush thread: keys are made durable at a clean shutdown only");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(60);
    const P: Duration = Duration::from_secs(5);

    fn open(name: &str, capacity: u64) -> (DiskDedup, PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("hookbridge-dedup-{name}-{}", std::process::id()));
        let _fresh = std::fs::remove_dir_all(&dir);
        let counter = prometheus::IntCounter::new("e", "e").unwrap();
        (DiskDedup::open(&dir, capacity, counter).unwrap(), dir)
    }

    fn new(s: &DiskDedup, key: &str, now: u64) -> Revision {
        match s.claim_at(key, W, P, now).unwrap() {
            Claim::New(r) => r,
            other => panic!("{key}: {other:?}"),
        }
    }

    #[test]
    fn confirmed_keys_are_duplicates_for_their_window_and_survive_reopening() {
        let (s, dir) = open("reopen", 100);
        let t0 = now_ms();
        let r = new(&s, "a", t0);
        assert_eq!(s.claim_at("a", W, P, t0 + 1).unwrap(), Claim::InFlight);
        s.confirm_at("a", r, t0).unwrap();
        s.flush().unwrap();
        drop(s);
        let counter = prometheus::IntCounter::new("e", "e").unwrap();
        let s = DiskDedup::open(&dir, 100, counter).unwrap();
        assert_eq!(s.usage().0, 1);
        assert_eq!(
            s.claim_at("a", W, P, t0 + 59_000).unwrap(),
            Claim::Duplicate
        );
        assert!(matches!(
            s.claim_at("a", W, P, t0 + 61_000).unwrap(),
            Claim::New(_)
        ));
        // A late confirm of the old claim does not count for the new one.
        s.confirm_at("a", r, t0 + 61_000).unwrap();
        assert_eq!(s.claim_at("a", W, P, t0 + 61_001).unwrap(), Claim::InFlight);
        s.release_now("a").unwrap();
        assert!(matches!(
            s.claim_at("a", W, P, t0 + 61_002).unwrap(),
            Claim::New(_)
        ));
        let _cleanup = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn expired_keys_are_swept_and_the_bound_evicts_with_a_count() {
        let (s, dir) = open("bound", 3);
        let t0 = now_ms();
        for k in ["a", "b", "c"] {
            let r = new(&s, k, t0);
            s.confirm_at(k, r, t0).unwrap();
        }
        // After their window, new claims sweep them out.
        for k in ["d", "e"] {
            new(&s, k, t0 + 120_000);
        }
        assert_eq!(s.usage().0, 2, "a, b and c expired and were swept");
        assert_eq!(s.evictions.get(), 0);
        // Within the window, the bound evicts, and says so.
        for k in ["f", "g", "h"] {
            new(&s, k, t0 + 120_001);
        }
        assert_eq!(s.usage().0, 3);
        assert_eq!(s.evictions.get(), 2);
        let _cleanup = std::fs::remove_dir_all(dir);
    }
}
