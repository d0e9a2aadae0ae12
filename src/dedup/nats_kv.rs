//! Dedup shared by every replica, in a NATS JetStream key-value bucket.
//!
//! `create` is the atomic create-if-absent; a key's value is `pending` or `done`, and the entry's
//! server timestamp gives its age. The bucket's `max_age` bounds the longest window; shorter
//! per-source windows are enforced by age. NATS 2.9 has no per-key TTL, so this is the portable way.
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

const PENDING: &[u8] = b"pending";
const DONE: &[u8] = b"done";

pub struct NatsKvDedup {
    kv: kv::Store,
}

impl NatsKvDedup {
    /// Connects and opens (or creates) `bucket` with entries kept for `max_age`.
    pub async fn connect(
        url: &str,
        bucket: &str,
        max_age: Duration,
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
        let kv = match tokio::time::timeout(Duration::from_secs(5), js.get_key_value(bucket)).await
        {
            Ok(Ok(kv)) => kv,
            _ => {
                Self::create_bucket(&js, bucket, max_age).await?;
                tokio::time::timeout(Duration::from_secs(5), js.get_key_value(bucket))
                    .await
                    .map_err(|_| DedupError(format!("timed out opening bucket {bucket}")))?
                    .map_err(|e| DedupError(format!("bucket {bucket}: {e}")))?
            }
        };
        Ok(NatsKvDedup { kv })
    }

    /// Creates the bucket's stream with the key-value conventions (what `create_key_value` would
    /// send). Done by hand because async-nats' `create_key_value` first queries account info in a
    /// shape servers before 2.11 (Debian's 2.9) do not answer, and fails there.
    async fn create_bucket(
        js: &jetstream::Context,
        bucket: &str,
        max_age: Duration,
    ) -> Result<(), DedupError> {
        use jetstream::stream::{Config, DiscardPolicy, StorageType};
        let config = Config {
            name: format!("KV_{bucket}"),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            max_age,
            storage: StorageType::File,
            allow_rollup: true,
            deny_delete: true,
            deny_purge: false,
            allow_direct: true,
            discard: DiscardPolicy::New,
            num_replicas: 1,
            ..Default::default()
        };
        tokio::time::timeout(Duration::from_secs(5), js.get_or_create_stream(config))
            .await
            .map_err(|_| DedupError(format!("timed out creating bucket {bucket}")))?
            .map(|_| ())
            .map_err(|e| DedupError(format!("creating bucket {bucket}: {e}")))
    }

    /// KV keys allow `[-/_=.a-zA-Z0-9]`; event ids may hold `:` and more, so keys are hashed.
    fn kv_key(key: &str) -> String {
        hex::encode(Sha256::digest(key.as_bytes()))
    }
}

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
        match self.kv.create(&k, Bytes::from_static(PENDING)).await {
            Ok(revision) => return Ok(Claim::New(Revision(revision))),
            Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
            Err(e) => return Err(DedupError(format!("create: {e}"))),
        }
        let entry = self
            .kv
            .entry(&k)
            .await
            .map_err(|e| DedupError(format!("entry: {e}")))?;
        let Some(entry) = entry else {
            // Deleted between our create and read: someone released it; try once more.
            return match self.kv.create(&k, Bytes::from_static(PENDING)).await {
                Ok(revision) => Ok(Claim::New(Revision(revision))),
                Err(_) => Ok(Claim::InFlight),
            };
        };
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
            .kv
            .update(&k, Bytes::from_static(PENDING), entry.revision)
            .await
        {
            Ok(revision) => Ok(Claim::New(Revision(revision))),
            Err(_) => Ok(Claim::InFlight),
        }
    }

    async fn confirm(&self, key: &str, revision: Revision) -> Result<(), DedupError> {
        let k = Self::kv_key(key);
        self.kv
            .update(&k, Bytes::from_static(DONE), revision.0)
            .await
            .map(|_| ())
            .map_err(|e| DedupError(format!("confirm: {e}")))
    }

    async fn release(&self, key: &str) -> Result<(), DedupError> {
        self.kv
            .delete(Self::kv_key(key))
            .await
            .map_err(|e| DedupError(format!("release: {e}")))
    }
}
