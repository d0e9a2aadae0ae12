//! Group commit for the request path's appends.
//!
//! Every spooled webhook waits for its own fsync'd commit before it is answered 2xx. Committed one
//! by one, sixteen concurrent appends queue behind each other's fsync (and behind the drainer's
//! removals), and on a busy disk the last of them waited seconds. Here an append that arrives while
//! a commit is on disk joins the next batch instead, and one of the waiting appenders commits the
//! whole batch in a single transaction: however many arrive at once, each waits for at most the
//! commit in progress and its own batch's.
//!
//! Sequence numbers are taken under the same lock that orders the batches, so they are committed
//! in the order they were given: the drainer's oldest-first is still the order of arrival.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};

use redb::Durability;

use super::{EVENTS, Spool, SpoolError, storage};

/// The appends waiting for a commit, and whether one is on disk now.
#[derive(Default)]
pub(super) struct Appends {
    state: Mutex<State>,
    /// Signalled when a batch's outcome is known.
    committed: Condvar,
}

#[derive(Default)]
struct State {
    /// Appends that arrived while a commit was on disk: the next commit.
    open: Batch,
    /// A leader is committing a batch; whoever finds this false while its own batch waits leads
    /// the next one.
    committing: bool,
    /// Bytes of appends not yet committed, open or on disk: counted against the spool's bound, so
    /// concurrent appends cannot pass it together.
    queued_bytes: u64,
}

#[derive(Default)]
struct Batch {
    rows: Vec<Row>,
    bytes: u64,
    /// Written once, by the batch's leader, under the state lock.
    outcome: Arc<OnceLock<Result<(), SpoolError>>>,
}

struct Row {
    seq: u64,
    bytes: Vec<u8>,
    publisher: String,
}

impl Spool {
    /// Appends encoded `bytes` of an entry for `publisher` and returns its sequence number once
    /// the commit that holds it is on disk.
    pub(super) fn append(&self, bytes: Vec<u8>, publisher: &str) -> Result<u64, SpoolError> {
        let size = bytes.len() as u64;
        let mut state = self.lock_appends()?;
        let used = self.bytes.load(Ordering::Relaxed) + state.queued_bytes;
        // Refuse rather than evict: everything already in here was answered 2xx.
        if used + size > self.max_bytes {
            return Err(SpoolError::Full {
                used,
                max: self.max_bytes,
            });
        }
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        state.queued_bytes += size;
        state.open.bytes += size;
        state.open.rows.push(Row {
            seq,
            bytes,
            publisher: publisher.to_owned(),
        });
        let outcome = state.open.outcome.clone();
        loop {
            if let Some(result) = outcome.get() {
                return result.clone().map(|()| seq);
            }
            if state.committing {
                state = self
                    .appends
                    .committed
                    .wait(state)
                    .map_err(|_| storage("spool append lock poisoned"))?;
                continue;
            }
            // No commit on disk and ours not done: ours is the open batch, and this thread
            // commits it, for everyone in it.
            state.committing = true;
            let batch = std::mem::take(&mut state.open);
            drop(state);
            let result = catch_unwind(AssertUnwindSafe(|| self.commit(&batch.rows)))
                .unwrap_or_else(|_| Err(storage("the spool commit panicked")));
            state = self.lock_appends()?;
            state.committing = false;
            state.queued_bytes -= batch.bytes;
            let Batch {
                rows,
                bytes,
                outcome,
            } = batch;
            if result.is_ok() {
                self.counted(rows, bytes);
            }
            // After the counters: an appender that returns sees its entry counted.
            let _first = outcome.set(result);
            self.appends.committed.notify_all();
        }
    }

    fn lock_appends(&self) -> Result<MutexGuard<'_, State>, SpoolError> {
        self.appends
            .state
            .lock()
            .map_err(|_| storage("spool append lock poisoned"))
    }

    /// One durable transaction for the whole batch: the fsync is paid once.
    fn commit(&self, rows: &[Row]) -> Result<(), SpoolError> {
        // Durable before anyone in the batch returns: a 2xx is the promise that the entry
        // survives a crash or a power cut.
        let mut txn = self.db.begin_write().map_err(storage)?;
        txn.set_durability(Durability::Immediate).map_err(storage)?;
        {
            let mut table = txn.open_table(EVENTS).map_err(storage)?;
            for row in rows {
                table
                    .insert(row.seq, row.bytes.as_slice())
                    .map_err(storage)?;
            }
        }
        txn.commit().map_err(storage)?;
        #[cfg(test)]
        self.commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// The counters follow a batch's commit of `rows`, `bytes` in all.
    fn counted(&self, rows: Vec<Row>, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.events.fetch_add(rows.len() as u64, Ordering::Relaxed);
        if let Ok(mut pending) = self.pending.lock() {
            for row in rows {
                *pending.entry(row.publisher).or_default() += 1;
            }
        }
        // The drainer sleeps while the queue is empty; this starts it at once.
        self.wake.notify_one();
    }
}
