//! The background task that empties the spool into the brokers, oldest first.
//!
//! Per publisher, order is kept: once one of a publisher's events must wait in a pass, its later
//! events wait for the next pass, while other publishers' events go ahead. Passes that make no
//! progress back off exponentially (100 ms to 5 s), and a publisher coming back up ends the wait;
//! any progress resets the back-off. An entry
//! is removed from disk only after the broker acknowledged it, so a crash mid-drain can publish an
//! event twice (the source-scoped id in `Nats-Msg-Id` / `hookbridge_dedup_key` absorbs that) but
//! never lose one.
//!
//! An entry that can never be delivered as it is (unreadable, its publisher gone from the config,
//! refused for good with its dead letter refused too) is moved to the spool's quarantine: waiting
//! for it would stop every entry behind it, for good. Quarantined entries are counted in
//! `hookbridge_spool_quarantined`, listed and requeued with `hookbridge spool`.
//!
//! What delivering one entry means (claiming its dedup key, publishing under the deadline,
//! dead-lettering a refusal) is the [`SpoolSink`]'s business: the pipeline implements it, so the
//! drainer publishes exactly the way a request does.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::{Spool, SpoolEntry, Spooled};
use crate::metrics::Metrics;

const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// A drainer waiting for a publisher is woken when it is up again ([`Spool::resume`]); this bounds
/// the wait for everything else (a dedup store back, a full disk freed).
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Entries read per pass: a full spool (a gigabyte by default) is never read into memory at once.
const BATCH: usize = 256;
/// Delivered entries are removed this many at a time (one fsync), and at the end of each pass.
/// A crash before their removal publishes them again, which the source-scoped broker id absorbs.
const REMOVE_GROUP: usize = 32;

/// A delivered entry waiting for its removal.
struct Done {
    seq: u64,
    publisher: String,
    source: String,
    /// Dropped as already published: counted in `hookbridge_spool_duplicates_total`, not as
    /// drained.
    duplicate: bool,
}

/// What became of one spooled entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Published (or dead-lettered): safe, remove it.
    Delivered,
    /// Its dedup key was already published by the time the drainer claimed it: remove it.
    Duplicate,
    /// Not now (broker or dedup store unavailable): keep it, and keep its publisher's later
    /// entries behind it.
    Wait(String),
    /// Never as it is: quarantine it, for this reason (a metric label, one word).
    Poison(&'static str),
}

/// Delivers one spooled entry the way the gateway delivers a request.
pub trait SpoolSink: Send + Sync {
    fn deliver(&self, entry: &SpoolEntry) -> impl Future<Output = Delivery> + Send;
}

impl<T: SpoolSink> SpoolSink for Arc<T> {
    fn deliver(&self, entry: &SpoolEntry) -> impl Future<Output = Delivery> + Send {
        T::deliver(self, entry)
    }
}

/// The spool's only consumer: one task per process, so a publisher's entries leave in order.
pub struct Drainer<S> {
    pub spool: Arc<Spool>,
    pub sink: S,
    pub metrics: Metrics,
}

impl<S: SpoolSink> Drainer<S> {
    pub async fn run(self) {
        let mut backoff = MIN_BACKOFF;
        loop {
            self.export_depth();
            let spool = self.spool.clone();
            // redb reads block on disk: off the async workers.
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
                // No progress: wait, but a publisher coming back (the health loop's `resume`) ends
                // the wait at once instead of at the end of a long back-off.
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = self.spool.resume.notified() => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }

    /// One pass over a batch; true when any entry left the queue.
    pub async fn pass(&self, batch: Vec<Spooled>) -> bool {
        let mut blocked: HashSet<String> = HashSet::new();
        let mut progressed = false;
        let mut done: Vec<Done> = Vec::new();
        for (seq, entry) in batch {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    tracing::error!(seq, error = %e, "unreadable spool entry: quarantined");
                    // Bytes that do not decode never will: moved aside so they hold nothing up.
                    progressed |= self.quarantine(seq, None, "unreadable").await;
                    continue;
                }
            };
            // An earlier entry of this publisher could not leave the queue: delivering a later one
            // would break its order.
            if blocked.contains(&entry.publisher) {
                continue;
            }
            match self.sink.deliver(&entry).await {
                delivered @ (Delivery::Delivered | Delivery::Duplicate) => {
                    done.push(Done {
                        seq,
                        publisher: entry.publisher.clone(),
                        source: entry.source.clone(),
                        duplicate: delivered == Delivery::Duplicate,
                    });
                    if done.len() >= REMOVE_GROUP {
                        progressed |= self.remove(&mut done, &mut blocked).await;
                    }
                }
                Delivery::Wait(why) => {
                    tracing::debug!(seq, publisher = %entry.publisher, why, "spool drain waits");
                    blocked.insert(entry.publisher.clone());
                }
                Delivery::Poison(reason) => {
                    tracing::error!(seq, source = %entry.source, publisher = %entry.publisher, reason, "spooled event can never be delivered as it is: quarantined");
                    if self
                        .quarantine(seq, Some(entry.publisher.as_str()), reason)
                        .await
                    {
                        progressed = true;
                    } else {
                        // Could not move it aside: hold this publisher for the pass rather than
                        // skip past an entry that is still at its head.
                        blocked.insert(entry.publisher.clone());
                    }
                }
            }
        }
        // The rest of the last group: nothing delivered waits for another pass to be removed.
        progressed |= self.remove(&mut done, &mut blocked).await;
        progressed
    }

    /// Removes the delivered entries in one commit and counts them; false (their publishers
    /// blocked for this pass) when the spool cannot.
    async fn remove(&self, done: &mut Vec<Done>, blocked: &mut HashSet<String>) -> bool {
        if done.is_empty() {
            return false;
        }
        let group = std::mem::take(done);
        let spool = self.spool.clone();
        let keys: Vec<(u64, String)> = group.iter().map(|d| (d.seq, d.publisher.clone())).collect();
        match tokio::task::spawn_blocking(move || spool.remove_many(&keys)).await {
            Ok(Ok(())) => {
                for d in &group {
                    self.metrics.spool_delivered(&d.source, d.duplicate);
                }
                true
            }
            _ => {
                tracing::error!(
                    entries = group.len(),
                    "delivered but could not remove from the spool; they will be sent again"
                );
                // Still on disk, so they are sent again on a later pass (the source-scoped broker
                // id absorbs the repeat); their publishers stop for this one.
                blocked.extend(group.into_iter().map(|d| d.publisher));
                false
            }
        }
    }

    async fn quarantine(&self, seq: u64, publisher: Option<&str>, reason: &'static str) -> bool {
        let spool = self.spool.clone();
        let publisher = publisher.map(str::to_owned);
        let moved = tokio::task::spawn_blocking(move || {
            spool.quarantine(seq, publisher.as_deref(), reason)
        })
        .await;
        match moved {
            Ok(Ok(())) => {
                self.metrics.spool_quarantined(reason);
                self.export_depth();
                true
            }
            Ok(Err(e)) => {
                tracing::error!(seq, error = %e, "cannot quarantine a spool entry");
                false
            }
            Err(e) => {
                tracing::error!(seq, error = %e, "spool quarantine task failed");
                false
            }
        }
    }

    /// Gauges from the spool's in-memory counters: no read transaction for a metric.
    fn export_depth(&self) {
        let (events, bytes) = self.spool.depth();
        self.metrics.spool_events.set(events as i64);
        self.metrics.spool_bytes.set(bytes as i64);
        self.metrics
            .spool_quarantined
            .set(self.spool.quarantined_count() as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::cloudevents::CloudEventAttributes;
    use crate::publish::OutboundMessage;
    use std::sync::Mutex;

    /// Delivers everything except what it was told is poison or must wait, and records the order.
    #[derive(Default)]
    struct Recorder {
        poison: Vec<String>,
        waiting: Vec<String>,
        delivered: Mutex<Vec<String>>,
    }

    impl SpoolSink for Recorder {
        async fn deliver(&self, entry: &SpoolEntry) -> Delivery {
            let key = entry.message.key.clone();
            if self.poison.contains(&key) {
                return Delivery::Poison("broker_rejected");
            }
            if self.waiting.contains(&key) {
                return Delivery::Wait("broker down".into());
            }
            self.delivered.lock().unwrap().push(key);
            Delivery::Delivered
        }
    }

    fn entry(publisher: &str, key: &str) -> SpoolEntry {
        SpoolEntry {
            publisher: publisher.into(),
            source: "s".into(),
            dedup_key: format!("s/{key}"),
            claim_window: None,
            message: OutboundMessage {
                topic: "t".into(),
                key: key.into(),
                dedup_key: format!("s/{key}"),
                cloudevent: CloudEventAttributes {
                    attributes: vec![("id", key.into())],
                    content_type: crate::event::avro::EVENT_CONTENT_TYPE,
                },
                payload: vec![1],
            },
        }
    }

    fn drainer(name: &str, sink: Recorder) -> Drainer<Recorder> {
        let d =
            std::env::temp_dir().join(format!("hookbridge-drain-{name}-{}", std::process::id()));
        let _fresh = std::fs::remove_dir_all(&d);
        let registry = prometheus::Registry::new();
        Drainer {
            spool: Arc::new(Spool::open(&d, 1 << 20).unwrap()),
            sink,
            metrics: Metrics::register(&registry).unwrap(),
        }
    }

    #[tokio::test]
    async fn a_poison_head_is_quarantined_and_blocks_nothing_behind_it() {
        let d = drainer(
            "poison",
            Recorder {
                poison: vec!["bad".into()],
                ..Recorder::default()
            },
        );
        for key in ["bad", "a", "b"] {
            d.spool.push(&entry("nats", key)).unwrap();
        }
        // Bytes that do not decode, as a damaged disk would leave them, at the head of the rest.
        d.spool.push_raw_for_tests(&[42, 0, 1]).unwrap();
        d.spool.push(&entry("nats", "c")).unwrap();
        assert!(d.pass(d.spool.oldest(10).unwrap()).await);
        assert_eq!(*d.sink.delivered.lock().unwrap(), ["a", "b", "c"]);
        assert_eq!(d.spool.depth().0, 0);
        assert_eq!(d.spool.quarantined_count(), 2);
        let reasons: Vec<String> = d
            .spool
            .quarantined()
            .unwrap()
            .into_iter()
            .map(|(_, reason, _)| reason)
            .collect();
        assert_eq!(reasons, ["broker_rejected", "unreadable"]);
        let text = d.metrics.render().unwrap();
        assert!(text.contains("hookbridge_spool_quarantined 2"), "{text}");
    }

    #[tokio::test]
    async fn an_entry_that_must_wait_holds_its_publisher_only() {
        let d = drainer(
            "wait",
            Recorder {
                waiting: vec!["n1".into()],
                ..Recorder::default()
            },
        );
        d.spool.push(&entry("nats", "n1")).unwrap();
        d.spool.push(&entry("nats", "n2")).unwrap();
        d.spool.push(&entry("kafka", "k1")).unwrap();
        d.pass(d.spool.oldest(10).unwrap()).await;
        assert_eq!(
            *d.sink.delivered.lock().unwrap(),
            ["k1"],
            "n2 stays behind n1, in order; kafka goes ahead"
        );
        assert_eq!(d.spool.depth().0, 2);
        assert_eq!(d.spool.quarantined_count(), 0);
    }
}
