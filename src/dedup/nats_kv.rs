//! Dedup shared by every replica, in a NATS JetStream key-value bucket.
//!
//! `create` is the atomic create-if-absent; a key's value is `pending` or `done`, and the entry's
//! server timestamp gives its age. Each entry carries a per-message TTL (`Nats-TTL`, NATS 2.11+):
//! a pending mark expires after the pending timeout, a done mark after its source's window, so the
//! bucket holds each key only as long as some source needs it. The bucket is also bounded in bytes
//! (`[dedup] max_bytes`, oldest dropped first) with `max_age` as the longest window; an existing
//! bucket is updated to allow TTLs. On a server that refuses TTLs, windows are enforced by age and
//! keys live for `max_age` (logged at start).
//!
//! Trade-off against Redis: no extra service when NATS is already the broker (and JetStream
//! replicates the bucket like any stream), at the cost of one KV round trip per webhook; the
//! in-memory store costs nothing but only sees one replica.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::{Claim, DedupError, DedupStore, Revision};

// A key's value. The value, not the revision, tells a claim in flight from a published one, so
// every replica reads the same state from the entry alone.
const PENDING: &[u8] = b"pending";
const DONE: &[u8] = b"done";

/// The store shared by every replica.
pub struct NatsKvDedup {
    kv: kv::Store,
    /// For the stream calls and the TTL'd writes that `kv::Store` does not offer.
    js: jetstream::Context,
    bucket: String,
    /// The bucket accepts per-message TTLs.
    ttl: bool,
    /// The bucket's bound, for the warning in `usage`.
    max_bytes: i64,
}

impl NatsKvDedup {
    /// Connects and opens (or creates) `bucket` with entries kept for `max_age`.
    pub async fn connect(
        url: &str,
        bucket: &str,
        max_age: Duration,
        max_bytes: i64,
        token: Option<String>,
    ) -> Result<Self, DedupError> {
        let mut options = async_nats::ConnectOptions::new()
            .name("hookbridge-dedup")
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(2));
        if let Some(token) = token {
            options = options.token(token);
        }
        let client = options
            .connect(url)
            .await
            .map_err(|e| DedupError(format!("connect: {e}")))?;
        let js = jetstream::new(client);
        let config = Self::bucket_config(bucket, max_age, max_bytes);
        // Every server call at start is bounded: an unreachable server fails start-up with a reason
        // instead of hanging it.
        let ttl = match tokio::time::timeout(Duration::from_secs(5), js.get_stream(&config.name))
            .await
        {
            // An existing bucket: make it allow TTLs and take the configured bound.
            Ok(Ok(_)) => {
                match tokio::time::timeout(Duration::from_secs(5), js.update_stream(&config)).await
                {
                    Ok(Ok(_)) => true,
                    Ok(Err(e)) => {
                        tracing::warn!(bucket, error = %e, "cannot update the dedup bucket: keys live for max_age, not their window");
                        false
                    }
                    Err(_) => {
                        return Err(DedupError(format!("timed out updating bucket {bucket}")));
                    }
                }
            }
            // Missing, or the look-up failed: create it (`get_or_create_stream` also takes one that
            // exists by then).
            _ => Self::create_bucket(&js, bucket, &config).await?,
        };
        let kv = tokio::time::timeout(Duration::from_secs(5), js.get_key_value(bucket))
            .await
            .map_err(|_| DedupError(format!("timed out opening bucket {bucket}")))?
            .map_err(|e| DedupError(format!("bucket {bucket}: {e}")))?;
        Ok(NatsKvDedup {
            kv,
            js,
            bucket: bucket.to_owned(),
            ttl,
            max_bytes,
        })
    }

    /// The bucket's stream, with the key-value conventions `create_key_value` would send, plus
    /// per-message TTLs and a byte bound that drops the oldest keys first.
    fn bucket_config(bucket: &str, max_age: Duration, max_bytes: i64) -> jetstream::stream::Config {
        use jetstream::stream::{Config, DiscardPolicy, StorageType};
        Config {
            name: format!("KV_{bucket}"),
            subjects: vec![format!("$KV.{bucket}.>")],
            // The settings `create_key_value` sends (one value per key, rollups, direct gets), so
            // `kv::Store` works on the stream as on any bucket.
            max_messages_per_subject: 1,
            max_age,
            max_bytes,
            // On disk: a server restart must not forget which events were published.
            storage: StorageType::File,
            allow_rollup: true,
            deny_delete: true,
            deny_purge: false,
            allow_direct: true,
            allow_message_ttl: true,
            // Old, not New: a full bucket must forget its oldest keys (a possible duplicate),
            // not refuse every claim (an outage of the whole gateway).
            discard: DiscardPolicy::Old,
            num_replicas: 1,
            ..Default::default()
        }
    }

    /// Keys and bytes in the bucket, from the server; warns when the bound is near.
    pub async fn usage(&self) -> Option<(u64, u64)> {
        let mut stream = tokio::time::timeout(
            Duration::from_secs(1),
            self.js.get_stream(format!("KV_{}", self.bucket)),
        )
        .await
        .ok()?
        .ok()?;
        let info = tokio::time::timeout(Duration::from_secs(1), stream.info())
            .await
            .ok()?
            .ok()?;
        let (keys, bytes) = (info.state.messages, info.state.bytes);
        // Near the bound the server discards the oldest keys (DiscardOld), possibly some still
        // inside their window: warned each health tick while it lasts.
        if self.max_bytes > 0 && bytes as f64 >= self.max_bytes as f64 * 0.95 {
            tracing::warn!(bucket = %self.bucket, bytes, max_bytes = self.max_bytes, "the dedup bucket is at its bound: its oldest keys are being dropped before their window ends");
        }
        Some((keys, bytes))
    }

    /// Writes `value` over revision `revision` of key `k` with a TTL: `kv::Store::update` with a
    /// `Nats-TTL` header, which async-nats does not expose.
    async fn update_with_ttl(
        &self,
        k: &str,
        value: &'static [u8],
        revision: u64,
        ttl: Duration,
    ) -> Result<u64, DedupError> {
        // A bucket without TTLs refuses a `Nats-TTL` header, so it gets the plain update and its
        // windows are enforced by age.
        if !self.ttl {
            return self
                .kv
                .update(k, Bytes::from_static(value), revision)
                .await
                .map_err(|e| DedupError(format!("update: {e}")));
        }
        // The compare-and-swap `kv::Store::update` sends: the write fails if anyone wrote the key
        // since `revision`, which is what makes a takeover or a confirm safe between replicas.
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            "Nats-Expected-Last-Subject-Sequence",
            revision.to_string().as_str(),
        );
        headers.insert("Nats-TTL", ttl_secs(ttl).to_string().as_str());
        let subject = format!("$KV.{}.{k}", self.bucket);
        self.js
            // The first await sends, the second waits for the PubAck: only a stored write counts.
            .publish_with_headers(subject, headers, Bytes::from_static(value))
            .await
            .map_err(|e| DedupError(format!("update: {e}")))?
            .await
            .map(|ack| ack.sequence)
            .map_err(|e| DedupError(format!("update: {e}")))
    }

    /// Creates the bucket; true when it takes TTLs. The stream is created by hand, not with
    /// `create_key_value`: its `kv::Config` cannot say that a full bucket drops its oldest keys.
    /// (It also spares us `create_key_value`'s account-info query, which servers before 2.11,
    /// Debian's 2.9 among them, do not answer in the shape async-nats expects.)
    async fn create_bucket(
        js: &jetstream::Context,
        bucket: &str,
        config: &jetstream::stream::Config,
    ) -> Result<bool, DedupError> {
        let created = tokio::time::timeout(
            Duration::from_secs(5),
            js.get_or_create_stream(config.clone()),
        )
        .await
        .map_err(|_| DedupError(format!("timed out creating bucket {bucket}")))?;
        match created {
            Ok(_) => Ok(true),
            Err(e) => {
                // A server before 2.11 refuses `allow_msg_ttl`: fall back to age-enforced windows.
                tracing::warn!(bucket, error = %e, "creating the dedup bucket with per-key TTLs failed; trying without");
                let mut plain = config.clone();
                plain.allow_message_ttl = false;
                tokio::time::timeout(Duration::from_secs(5), js.get_or_create_stream(plain))
                    .await
                    .map_err(|_| DedupError(format!("timed out creating bucket {bucket}")))?
                    .map(|_| false)
                    .map_err(|e| DedupError(format!("creating bucket {bucket}: {e}")))
            }
        }
    }

    /// KV keys allow `[-/_=.a-zA-Z0-9]`; event ids may hold `:` and more, so keys are hashed.
    fn kv_key(key: &str) -> String {
        hex::encode(Sha256::digest(key.as_bytes()))
    }
}

/// TTLs are whole seconds, at least one.
/// Rounded up, so a mark never lives less than it was given.
impl NatsKvDedup {
    /// Writes a pending mark where the key has no value, expiring with the pending timeout on a
    /// server that takes per-message TTLs.
    async fn create_pending(
        &self,
        k: &str,
        pending_timeout: Duration,
    ) -> Result<u64, kv::CreateError> {
        let value = Bytes::from_static(PENDING);
        if self.ttl {
            let ttl = pending_ttl(pending_timeout);
            self.kv.create_with_ttl(k, value, ttl).await
        } else {
            self.kv.create(k, value).await
        }
    }
}

fn ttl_secs(ttl: Duration) -> u64 {
    ttl.as_secs_f64().ceil().max(1.0) as u64
}

/// A pending mark outlives its claimer's deadline, then the server drops it.
fn pending_ttl(pending_timeout: Duration) -> Duration {
    Duration::from_secs(ttl_secs(pending_timeout))
}

/// The server's timestamp against our clock: a skew between them shifts windows by as much,
/// and a negative age reads as zero.
fn age(created: OffsetDateTime) -> Duration {
    let elapsed = OffsetDateTime::now_utc() - created;
    Duration::try_from(elapsed).unwrap_or(Duration::ZERO)
}

impl DedupStore for NatsKvDedup {
    async fn claim(
        &self,
        key: &str,
        window: Duration,
        pending_timeout: Duration,
    ) -> Result<Claim, DedupError> {
        let k = Self::kv_key(key);
        // `create` writes only where the key has no value (an expected revision of 0, or over a
        // delete marker), so of two replicas claiming at once exactly one gets `New`.
        match self.create_pending(&k, pending_timeout).await {
            Ok(revision) => return Ok(Claim::New(Revision(revision, window))),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
            // Anything else is the store failing, which says nothing about the event.
            Err(e) => return Err(DedupError(format!("create: {e}"))),
        }
        let entry = self
            .kv
            .entry(&k)
            .await
            .map_err(|e| DedupError(format!("entry: {e}")))?;
        let Some(entry) = entry else {
            // Deleted between our create and read: someone released it; try once more, with the
            // same TTL, so that a claimer that dies now leaves no mark the server never drops.
            return match self.create_pending(&k, pending_timeout).await {
                Ok(revision) => Ok(Claim::New(Revision(revision, window))),
                Err(_) => Ok(Claim::InFlight),
            };
        };
        // A delete marker (a release) is no claim, whatever its age. Without TTLs these age checks
        // are the only windows; with them the server drops the key at about the same time.
        let live = entry.operation == kv::Operation::Put;
        let age = age(entry.created);
        if live && entry.value.as_ref() == DONE && age < window {
            return Ok(Claim::Duplicate);
        }
        if live && entry.value.as_ref() == PENDING && age < pending_timeout {
            return Ok(Claim::InFlight);
        }
        // Expired for this source's window, or a stale pending mark: take it over, unless another
        // replica does so first (then it is in flight there).
        match self
            .update_with_ttl(&k, PENDING, entry.revision, pending_ttl(pending_timeout))
            .await
        {
            Ok(revision) => Ok(Claim::New(Revision(revision, window))),
            Err(_) => Ok(Claim::InFlight),
        }
    }

    /// Done, with the source's window as its TTL, over the claim's revision: if another replica
    /// took the key over meanwhile, this fails and the caller logs it (the event is safe).
    async fn confirm(&self, key: &str, revision: Revision) -> Result<(), DedupError> {
        let k = Self::kv_key(key);
        let Revision(revision, window) = revision;
        self.update_with_ttl(&k, DONE, revision, window)
            .await
            .map(|_| ())
            .map_err(|e| DedupError(format!("confirm: {}", e.0)))
    }

    /// A delete marker, which `claim` reads as free.
    async fn release(&self, key: &str) -> Result<(), DedupError> {
        self.kv
            .delete(Self::kv_key(key))
            .await
            .map_err(|e| DedupError(format!("release: {e}")))
    }
}
