//! Durable acceptance: when the broker cannot take an event in time, a source configured with
//! `on_broker_failure = "spool"` writes it here, fsync'd, and answers 2xx; [`drain`] publishes it
//! later, in order, and removes it only after the broker's acknowledgement.
//!
//! The store is redb: an embedded, crash-safe B-tree whose commits are durable when they return
//! (`Durability::Immediate`), so an event answered 2xx survives `kill -9` and power loss. One table
//! maps a monotonically increasing sequence number to an entry. The spool is bounded in bytes;
//! when full, the gateway answers 503 rather than dropping anything.
//!
//! redb calls block on disk I/O; async callers go through `tokio::task::spawn_blocking`.

mod append;
pub mod config;
pub mod drain;
mod entry;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
};

pub use entry::SpoolEntry;

/// A spooled entry with its sequence number; an entry that does not decode is reported, not hidden.
pub type Spooled = (u64, Result<SpoolEntry, SpoolError>);

/// The queue: sequence number to encoded entry. redb iterates keys in order, so reading from the
/// first key is reading oldest first, which is the order the drainer must keep.
const EVENTS: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("events");
/// Entries that can never be delivered as they are (unreadable, publisher gone, refused for good
/// with their dead letter refused too), moved aside so they block nothing. Value: the reason,
/// length-prefixed, then the entry's bytes exactly as they were spooled.
const QUARANTINE: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("quarantine");

/// One quarantined entry: its sequence number, why it was moved aside, and the entry.
pub type Quarantined = (u64, String, Result<SpoolEntry, SpoolError>);

/// Why the spool could not take or give back an entry. On the request path `Full` answers 503
/// `spool_full`, the others 503 `spool_unavailable`: never a 2xx for an entry not committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpoolError {
    /// The byte bound would be passed: the new entry is refused, nothing older is dropped.
    #[error("the spool is full ({used} of {max} bytes)")]
    Full { used: u64, max: u64 },
    /// redb or the disk failed (or the blocking task did): nothing was committed.
    #[error("spool storage: {0}")]
    Storage(String),
    /// Bytes on disk that do not decode; the drainer quarantines them as `unreadable`.
    #[error("a spooled entry is unreadable: {0}")]
    Corrupt(String),
}

fn storage(e: impl std::fmt::Display) -> SpoolError {
    SpoolError::Storage(e.to_string())
}

/// The spool file, with counters kept beside it in memory so that the request path (room,
/// entries pending per publisher) and the gauges never open a read transaction.
pub struct Spool {
    db: Database,
    max_bytes: u64,
    /// What the queue holds, in encoded bytes and entries; updated only after each commit.
    bytes: AtomicU64,
    events: AtomicU64,
    /// Never reused, not even a quarantined entry's number: the quarantine is keyed by it too,
    /// and a reused number would let a later quarantine overwrite an earlier one.
    next_seq: AtomicU64,
    quarantined: AtomicU64,
    /// Spooled events per publisher: while a publisher has any, new events for it queue behind
    /// them. A std `Mutex`: held for one map update, never across an `.await`.
    pending: Mutex<HashMap<String, u64>>,
    /// Wakes the drainer when something is spooled.
    pub(crate) wake: tokio::sync::Notify,
    /// Wakes a drainer that is backing off, when a publisher is up again.
    pub(crate) resume: tokio::sync::Notify,
    /// The request path's appends, committed in groups.
    appends: append::Appends,
    /// Commits of appends, so tests can see the grouping.
    #[cfg(test)]
    commits: AtomicU64,
}

impl Spool {
    /// Opens (or creates) `dir/spool.redb` and counts what is already in it.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, SpoolError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| SpoolError::Storage(format!("{}: {e}", dir.display())))?;
        let db = Database::create(dir.join("spool.redb")).map_err(storage)?;
        // Make sure the table exists so readers never fail on a fresh file.
        let txn = db.begin_write().map_err(storage)?;
        txn.open_table(EVENTS).map_err(storage)?;
        txn.open_table(QUARANTINE).map_err(storage)?;
        txn.commit().map_err(storage)?;

        let spool = Spool {
            db,
            max_bytes,
            bytes: AtomicU64::new(0),
            events: AtomicU64::new(0),
            next_seq: AtomicU64::new(1),
            quarantined: AtomicU64::new(0),
            pending: Mutex::new(HashMap::new()),
            wake: tokio::sync::Notify::new(),
            resume: tokio::sync::Notify::new(),
            appends: append::Appends::default(),
            #[cfg(test)]
            commits: AtomicU64::new(0),
        };
        let txn = spool.db.begin_read().map_err(storage)?;
        let table = txn.open_table(EVENTS).map_err(storage)?;
        let mut pending = HashMap::<String, u64>::new();
        let mut last = 0;
        // Rebuilt from the file, so a restart (even after `kill -9`) resumes with the same bound
        // and the same per-publisher order. An entry that does not decode counts toward the
        // bytes but no publisher: the drainer will quarantine it.
        for item in table.iter().map_err(storage)? {
            let (seq, value) = item.map_err(storage)?;
            last = seq.value();
            spool
                .bytes
                .fetch_add(value.value().len() as u64, Ordering::Relaxed);
            spool.events.fetch_add(1, Ordering::Relaxed);
            if let Ok(entry) = SpoolEntry::decode(value.value()) {
                *pending.entry(entry.publisher).or_default() += 1;
            }
        }
        let quarantine = txn.open_table(QUARANTINE).map_err(storage)?;
        spool
            .quarantined
            .store(quarantine.len().map_err(storage)?, Ordering::Relaxed);
        // Past the quarantine's numbers too (see `next_seq`).
        if let Some(item) = quarantine.last().map_err(storage)? {
            last = last.max(item.0.value());
        }
        spool.next_seq.store(last + 1, Ordering::Relaxed);
        if let Ok(mut p) = spool.pending.lock() {
            *p = pending;
        }
        Ok(spool)
    }

    /// Appends `entry` durably. Returns only once the commit is on disk; appends that arrive
    /// together share one commit (see [`append`]).
    pub fn push(&self, entry: &SpoolEntry) -> Result<u64, SpoolError> {
        self.append(entry.encode(), &entry.publisher)
    }

    /// The oldest `limit` entries, in order. An unreadable entry is returned as an error item so
    /// the drainer can report it instead of silently skipping data.
    pub fn oldest(&self, limit: usize) -> Result<Vec<Spooled>, SpoolError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(EVENTS).map_err(storage)?;
        let mut out = Vec::new();
        for item in table.iter().map_err(storage)?.take(limit) {
            let (seq, value) = item.map_err(storage)?;
            out.push((seq.value(), SpoolEntry::decode(value.value())));
        }
        Ok(out)
    }

    /// Removes a delivered entry.
    pub fn remove(&self, seq: u64, publisher: &str) -> Result<(), SpoolError> {
        self.remove_many(&[(seq, publisher.to_owned())])
    }

    /// Removes delivered entries `(seq, publisher)` in one durable commit: the drainer removes
    /// what a pass delivered in groups, so that its fsyncs do not queue the request path's writes
    /// one entry at a time.
    pub fn remove_many(&self, delivered: &[(u64, String)]) -> Result<(), SpoolError> {
        if delivered.is_empty() {
            return Ok(());
        }
        let mut txn = self.db.begin_write().map_err(storage)?;
        txn.set_durability(Durability::Immediate).map_err(storage)?;
        let mut removed = Vec::with_capacity(delivered.len());
        {
            let mut table = txn.open_table(EVENTS).map_err(storage)?;
            for (seq, publisher) in delivered {
                if let Some(value) = table.remove(*seq).map_err(storage)? {
                    removed.push((value.value().len() as u64, publisher));
                }
            }
        }
        // The counters follow the commit: they never show as gone what is still on disk.
        txn.commit().map_err(storage)?;
        for (size, publisher) in removed {
            self.bytes.fetch_sub(size, Ordering::Relaxed);
            self.events.fetch_sub(1, Ordering::Relaxed);
            self.one_less_pending(publisher);
        }
        Ok(())
    }

    /// Moves an entry that can never be delivered as it is to the quarantine, in one commit, so
    /// the entries behind it (and other publishers') go on. `publisher` is the entry's, when it
    /// could be read.
    pub fn quarantine(
        &self,
        seq: u64,
        publisher: Option<&str>,
        reason: &str,
    ) -> Result<(), SpoolError> {
        let mut txn = self.db.begin_write().map_err(storage)?;
        txn.set_durability(Durability::Immediate).map_err(storage)?;
        let moved = {
            let mut events = txn.open_table(EVENTS).map_err(storage)?;
            let Some(bytes) = events
                .remove(seq)
                .map_err(storage)?
                .map(|v| v.value().to_vec())
            else {
                // Already moved or removed: nothing to do, and no error.
                return Ok(());
            };
            // The entry's bytes stay untouched behind the reason, so a requeue restores exactly
            // what was spooled.
            let mut value = Vec::with_capacity(bytes.len() + reason.len() + 4);
            value.extend_from_slice(&(reason.len() as u32).to_le_bytes());
            value.extend_from_slice(reason.as_bytes());
            value.extend_from_slice(&bytes);
            txn.open_table(QUARANTINE)
                .map_err(storage)?
                .insert(seq, value.as_slice())
                .map_err(storage)?;
            bytes.len() as u64
        };
        txn.commit().map_err(storage)?;
        self.bytes.fetch_sub(moved, Ordering::Relaxed);
        self.events.fetch_sub(1, Ordering::Relaxed);
        self.quarantined.fetch_add(1, Ordering::Relaxed);
        if let Some(publisher) = publisher {
            self.one_less_pending(publisher);
        }
        Ok(())
    }

    /// An entry of `publisher` left the queue.
    fn one_less_pending(&self, publisher: &str) {
        if let Ok(mut p) = self.pending.lock()
            && let Some(n) = p.get_mut(publisher)
        {
            *n = n.saturating_sub(1);
        }
    }

    /// Every quarantined entry, oldest first.
    pub fn quarantined(&self) -> Result<Vec<Quarantined>, SpoolError> {
        let txn = self.db.begin_read().map_err(storage)?;
        let table = txn.open_table(QUARANTINE).map_err(storage)?;
        let mut out = Vec::new();
        for item in table.iter().map_err(storage)? {
            let (seq, value) = item.map_err(storage)?;
            let (reason, bytes) = split_reason(value.value());
            out.push((seq.value(), reason, SpoolEntry::decode(bytes)));
        }
        Ok(out)
    }

    /// Entries in quarantine.
    pub fn quarantined_count(&self) -> u64 {
        self.quarantined.load(Ordering::Relaxed)
    }

    /// Moves quarantined entries (all, or the one numbered `only`) back to the tail of the queue,
    /// for the drainer to try again once what made them undeliverable is fixed. Returns how many.
    pub fn requeue_quarantined(&self, only: Option<u64>) -> Result<u64, SpoolError> {
        let mut txn = self.db.begin_write().map_err(storage)?;
        txn.set_durability(Durability::Immediate).map_err(storage)?;
        let mut moved = Vec::new();
        {
            let mut quarantine = txn.open_table(QUARANTINE).map_err(storage)?;
            // A row that cannot be read stays where it is rather than failing the whole requeue.
            let seqs: Vec<u64> = quarantine
                .iter()
                .map_err(storage)?
                .filter_map(|item| item.ok().map(|(seq, _)| seq.value()))
                .filter(|seq| only.is_none_or(|only| only == *seq))
                .collect();
            let mut events = txn.open_table(EVENTS).map_err(storage)?;
            for seq in seqs {
                let Some(value) = quarantine
                    .remove(seq)
                    .map_err(storage)?
                    .map(|v| v.value().to_vec())
                else {
                    continue;
                };
                let (_reason, bytes) = split_reason(&value);
                // A fresh number: the entry joins the tail, behind what was spooled meanwhile.
                let next = self.next_seq.fetch_add(1, Ordering::Relaxed);
                events.insert(next, bytes).map_err(storage)?;
                moved.push(bytes.to_vec());
            }
        }
        txn.commit().map_err(storage)?;
        for bytes in &moved {
            self.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            self.events.fetch_add(1, Ordering::Relaxed);
            self.quarantined.fetch_sub(1, Ordering::Relaxed);
            if let Ok(entry) = SpoolEntry::decode(bytes)
                && let Ok(mut p) = self.pending.lock()
            {
                *p.entry(entry.publisher).or_default() += 1;
            }
        }
        // The drainer may be asleep on an empty queue.
        self.wake.notify_one();
        Ok(moved.len() as u64)
    }

    /// A publisher is up again: a drainer that backs off tries at once.
    pub fn resume(&self) {
        self.resume.notify_one();
    }

    /// (events, bytes) waiting.
    pub fn depth(&self) -> (u64, u64) {
        (
            self.events.load(Ordering::Relaxed),
            self.bytes.load(Ordering::Relaxed),
        )
    }

    /// True while the spool is below 90 % of its bound: readiness stays green on it. The last 10 %
    /// is headroom: while a broker is down, a replica turns unready before its pushes fail.
    pub fn has_room(&self) -> bool {
        self.bytes.load(Ordering::Relaxed) < self.max_bytes / 10 * 9
    }

    /// Events waiting for `publisher`.
    pub fn pending_for(&self, publisher: &str) -> u64 {
        // A poisoned lock (a panic mid-update) reads as nothing pending: requests then publish
        // directly instead of failing.
        self.pending
            .lock()
            .map(|p| p.get(publisher).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Appends bytes as they are, bypassing encoding: how tests put a damaged entry on disk.
    #[cfg(test)]
    pub fn push_raw_for_tests(&self, bytes: &[u8]) -> Result<u64, SpoolError> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let txn = self.db.begin_write().map_err(storage)?;
        txn.open_table(EVENTS)
            .map_err(storage)?
            .insert(seq, bytes)
            .map_err(storage)?;
        txn.commit().map_err(storage)?;
        self.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.events.fetch_add(1, Ordering::Relaxed);
        Ok(seq)
    }

    /// Number of entries on disk (for tests and start-up logs).
    pub fn len_on_disk(&self) -> Result<u64, SpoolError> {
        let txn = self.db.begin_read().map_err(storage)?;
        txn.open_table(EVENTS)
            .map_err(storage)?
            .len()
            .map_err(storage)
    }
}

/// A quarantine value: the reason and the entry's bytes (a damaged reason reads as `unknown`).
fn split_reason(value: &[u8]) -> (String, &[u8]) {
    let len = value
        .get(..4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(|b| u32::from_le_bytes(b) as usize);
    match len.and_then(|len| Some((value.get(4..4 + len)?, value.get(4 + len..)?))) {
        Some((reason, bytes)) => (String::from_utf8_lossy(reason).into_owned(), bytes),
        None => ("unknown".to_owned(), value),
    }
}

#[cfg(test)]
mod tests;
